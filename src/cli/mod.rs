//! Command line: clap definitions and one module per subcommand. Each returns an exit
//! code or an [`Error`]; `main` prints the error once and maps it to its exit code.

mod doctor;
mod inspect;
mod install;
mod run;
mod score;
mod test;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::launch::Layer;
use crate::profile::ProfileError;

#[derive(Debug, Parser)]
#[command(
    name = "lasagna",
    version,
    about = "Run one command inside a stack of independent defense layers",
    long_about = "Run one command inside a stack of independent defense layers described by a \
YAML profile: namespaces, a pivot_root filesystem view, cgroups, capabilities, rlimits, \
process hygiene, Landlock and seccomp. Each layer is switched on or off alone and reported \
as applied, degraded, skipped or refused."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// The subcommand only prints (everything but `run` and `test`, which start sandboxes
    /// and must clean up whatever happens to their output): a closed pipe on its stdout
    /// (`lasagna explain strict | head`) ends it quietly, as it does `cat`.
    pub fn only_prints(&self) -> bool {
        !matches!(self.command, Command::Run(_) | Command::Test(_))
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a command in the sandbox a profile describes.
    Run(Box<RunArgs>),
    /// Validate profiles and plan them against this host; exit 1 on findings.
    Check {
        #[arg(required = true)]
        profiles: Vec<String>,
    },
    /// Say, per layer and in plain words, what a profile will do, stop, and not stop.
    Explain {
        profile: String,
        /// Layers to consider switched off, as with `run --without`.
        #[arg(long = "without", value_name = "LAYER", value_parser = parse_layer)]
        without: Vec<Layer>,
    },
    /// Check what this host supports, layer by layer, and how to fix what it does not; with
    /// PROFILE, what that profile needs of this host as this caller, and whether each of its
    /// layers is applied, degraded, skipped or refused (exit 1 when it cannot run here).
    Doctor {
        /// Profile name (shipped or user) or path to a YAML file: only what it needs.
        profile: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Attack a profile's live sandbox with a battery of probes, layer by layer; exit 1 when
    /// a probe gets through the whole profile.
    Test(TestArgs),
    /// Rate a profile's exposure offline, from 0 (nothing open) to 10; exit 1 above
    /// --threshold.
    Score {
        profile: String,
        /// Exit 1 when the exposure is above N.
        #[arg(long, value_name = "N")]
        threshold: Option<f64>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// One probe of `lasagna test`, run inside the sandbox by the harness.
    #[command(hide = true)]
    Probe {
        name: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// List, show, locate or adjust profiles.
    Profiles {
        #[command(subcommand)]
        action: ProfilesAction,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions { shell: clap_complete::Shell },
    /// Write the man pages (lasagna(1), one per subcommand, lasagna-profile(5)) into DIR.
    #[command(hide = true)]
    Man { dir: PathBuf },
    /// Print the profile format reference (commented YAML), or with --json its JSON Schema.
    Schema {
        /// The JSON Schema, derived from the section types (for editors and validators).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ProfilesAction {
    /// List every profile found: the user's, the system's and the shipped ones.
    List,
    /// Print a profile's YAML (the file that NAME finds).
    Show { name: String },
    /// Print each file that makes up a profile, in merge order (its `extends` chain root
    /// first, then its `.local.yaml` overlays).
    Which { name: String },
    /// Open the user's NAME.local.yaml (created with a header if missing) in $VISUAL or
    /// $EDITOR, then check the merged profile.
    Edit { name: String },
}

#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// Profile name (shipped or user) or path to a YAML file.
    pub profile: String,
    /// Test the profile with this layer already off (repeatable).
    #[arg(long = "without", value_name = "LAYER", value_parser = parse_layer)]
    pub without: Vec<Layer>,
    /// Also run each layer on its own, and count the layers that stop each probe.
    #[arg(long, conflicts_with = "quick")]
    pub alone: bool,
    /// Only the full profile: no leave-one-out columns (does the profile hold?).
    #[arg(long)]
    pub quick: bool,
    /// Only the probes whose name contains this (repeatable).
    #[arg(long = "probe", value_name = "NAME")]
    pub probes: Vec<String>,
    /// Print the matrix as versioned JSON.
    #[arg(long)]
    pub json: bool,
    /// Runs at once (default: twice the number of CPUs, at least 4).
    #[arg(long, short = 'j', value_name = "N")]
    pub jobs: Option<usize>,
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Profile name (shipped or user) or path to a YAML file.
    #[arg(short, long, default_value = "strict")]
    pub profile: String,
    /// Switch a layer off for this run (repeatable).
    #[arg(long = "without", value_name = "LAYER", value_parser = parse_layer)]
    pub without: Vec<Layer>,
    /// Print the plan and exit without running anything.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the per-layer report on stderr.
    #[arg(short, long)]
    pub verbose: bool,
    /// After the run, list what the payload was denied, by layer: seccomp's calls (each
    /// answered with the errno the filter gives), Landlock's accesses with their paths and
    /// addresses (from the kernel's audit records, where readable); also in the report.
    #[arg(long)]
    pub explain_denials: bool,
    /// Write the JSON report to FILE (opened before anything runs; created 0600; never
    /// through a symlink).
    #[arg(long, value_name = "FILE", conflicts_with = "report_fd")]
    pub report: Option<PathBuf>,
    /// Write the JSON report to file descriptor N, which the caller opened for writing.
    #[arg(long, value_name = "N")]
    pub report_fd: Option<i32>,
    /// Wall-clock limit, e.g. 30s, 5m (overrides the profile).
    #[arg(long, value_name = "DURATION", value_parser = parse_timeout)]
    pub timeout: Option<std::time::Duration>,
    /// Keep inherited fd N open in the payload (repeatable); every other fd above 2 is closed.
    #[arg(long = "pass-fd", value_name = "N")]
    pub pass_fd: Vec<i32>,
    /// The sandbox's network: none (only its own loopback), host (the host's network),
    /// user (pasta: outbound through the host's stack, not its loopback) or proxy (only
    /// the --allow list); overrides the profile's `network:` section.
    #[arg(long = "net", value_name = "MODE", value_parser = parse_net)]
    pub net: Option<crate::layers::network::Net>,
    /// Bind host SRC read-write at DST (default: the same path), and grant it Landlock's
    /// read, write and execute rights when the profile has Landlock (repeatable).
    #[arg(long = "bind", value_name = "SRC[:DST]")]
    pub bind: Vec<String>,
    /// Bind host SRC read-only at DST, with Landlock's read and execute rights (repeatable).
    #[arg(long = "ro-bind", value_name = "SRC[:DST]")]
    pub ro_bind: Vec<String>,
    /// A fresh tmpfs at DST (256M), writable (repeatable).
    #[arg(long = "tmpfs", value_name = "DST")]
    pub tmpfs: Vec<String>,
    /// Bind the current directory read-write at the same path, and start there.
    #[arg(long = "bind-cwd", conflicts_with = "ro_bind_cwd")]
    pub bind_cwd: bool,
    /// Bind the current directory read-only at the same path, and start there.
    #[arg(long = "ro-bind-cwd")]
    pub ro_bind_cwd: bool,
    /// Set NAME=VALUE in the payload's environment (repeatable).
    #[arg(long = "env", value_name = "NAME=VALUE")]
    pub env: Vec<String>,
    /// Keep the caller's NAME in the payload's environment (repeatable; `*` ends a prefix).
    #[arg(long = "keep-env", value_name = "NAME")]
    pub keep_env: Vec<String>,
    /// Memory limit for the whole sandbox, e.g. 512M (cgroups; an rlimit where the host has
    /// no cgroup to give).
    #[arg(long = "memory", value_name = "SIZE")]
    pub memory: Option<String>,
    /// Limit on processes and threads in the sandbox.
    #[arg(long = "pids", value_name = "N")]
    pub pids: Option<u64>,
    /// CPU bandwidth in cores, e.g. 0.5.
    #[arg(long = "cpus", value_name = "N")]
    pub cpus: Option<f64>,
    /// Let the proxy through to HOST:PORT (repeatable; `*.domain:port`, `address/prefix:port`
    /// and port ranges too); implies --net proxy.
    #[arg(long = "allow", value_name = "HOST:PORT")]
    pub allow: Vec<String>,
    /// Print the merged profile (with --bind and the other ad-hoc flags) as YAML, each
    /// value with the file and line, or the flag, it comes from; run nothing.
    #[arg(long)]
    pub print_profile: bool,
    /// With --without: a layer that needs a switched-off one degrades instead of refusing
    /// the run (the fresh /proc without a pid namespace, Landlock rule paths without the view).
    #[arg(long)]
    pub degrade_dependents: bool,
    /// Refused: chroot is not a security boundary.
    #[arg(long, value_name = "DIR", hide = true)]
    pub chroot: Option<String>,
    /// The command and its arguments (default: the profile's `command`). Everything from
    /// the first word that is not one of lasagna's options is the command's, as with
    /// bwrap; `--` before it is accepted too.
    #[arg(trailing_var_arg = true)]
    pub command: Vec<String>,
}

fn parse_layer(s: &str) -> Result<Layer, String> {
    if s == "chroot" {
        return Err(format!(
            "chroot is not a layer: {}",
            crate::profile::CHROOT_REFUSAL
        ));
    }
    Layer::from_name(s).ok_or_else(|| {
        let names: Vec<&str> = Layer::ALL.iter().map(|l| l.name()).collect();
        format!(
            "unknown layer {s:?}{}; layers: {}",
            crate::text::did_you_mean(s, names.iter().copied()),
            names.join(", ")
        )
    })
}

fn parse_net(s: &str) -> Result<crate::layers::network::Net, String> {
    crate::layers::network::Net::parse(s)
}

fn parse_timeout(s: &str) -> Result<std::time::Duration, String> {
    crate::types::parse_duration(s)
}

/// Errors that end a command, each with its exit code.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Profile(#[from] ProfileError),
    /// Required layers the host cannot give: nothing was created.
    #[error("refused before anything was created:\n{}", .0.join("\n"))]
    Refused(Vec<String>),
    #[error(
        "chroot refused: {}\n  hint: {}",
        crate::profile::CHROOT_REFUSAL,
        crate::profile::CHROOT_HINT
    )]
    Chroot,
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Arm(#[from] crate::arm::ArmError),
    #[error("launch failed: {0}")]
    Launch(#[from] crate::supervisor::LaunchError),
    #[error("{0}")]
    Io(String),
    /// The profile's program is not on this host (exit 127, as a shell's command not found).
    #[error("{0}")]
    NotInstalled(String),
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) | Error::Arm(crate::arm::ArmError::Usage(_)) => 2,
            Error::Profile(_)
            | Error::Refused(_)
            | Error::Chroot
            | Error::Arm(crate::arm::ArmError::Prepare { .. })
            | Error::Launch(_)
            | Error::Io(_) => crate::launch::EXIT_SETUP_FAILED,
            Error::NotInstalled(_) => crate::launch::EXIT_NOT_FOUND,
        }
    }
}

pub fn main(cli: Cli) -> Result<i32, Error> {
    match cli.command {
        Command::Run(args) => run::run(*args),
        Command::Check { profiles } => inspect::check(&profiles),
        Command::Explain { profile, without } => inspect::explain(&profile, &without),
        Command::Doctor { profile, json } => doctor::doctor(profile.as_deref(), json),
        Command::Profiles { action } => inspect::profiles(action),
        Command::Test(args) => test::test(args),
        Command::Score {
            profile,
            threshold,
            json,
        } => score::score(&profile, threshold, json),
        Command::Probe { name, args } => Ok(crate::probe::run_inside(&name, &args)),
        Command::Completions { shell } => install::completions(shell),
        Command::Man { dir } => install::man(&dir),
        Command::Schema { json } => {
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&crate::profile::schema::json())
                        .expect("the schema serializes")
                );
            } else {
                print!("{}", include_str!("../../profiles/REFERENCE.yaml"));
            }
            Ok(0)
        }
    }
}
