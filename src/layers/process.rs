//! The `process` layer: process hygiene for the payload. no_new_privs, a new session
//! (no controlling terminal, so TIOCSTI cannot push keystrokes into the caller's shell),
//! die-with-parent, every fd above 2 closed at execve, an environment cleared to an
//! allow-list plus `set:`, the working directory, and the wall-clock timeout.

use std::collections::BTreeMap;
use std::ffi::{CString, OsString};
use std::os::unix::ffi::OsStrExt;
use std::time::Duration;

use crate::types::Spanned;
use serde::Deserialize;

use crate::launch::At;
use crate::launch::{ChildContext, ChildError};
use crate::sys;
use crate::types::{parse_duration, parse_path, Loc, ProfileError, Requirement, SandboxPath};

/// Names kept from the caller's environment when the profile gives no `env.allow`.
pub const DEFAULT_ENV_ALLOW: &[&str] = &[
    "TERM",
    "LANG",
    "LANGUAGE",
    "LC_*",
    "TZ",
    "COLORTERM",
    "NO_COLOR",
];
pub const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";
/// Most fds a profile or the command line may pass into the sandbox (the child keeps them
/// in a fixed array while it closes everything else).
pub const MAX_PASS_FDS: usize = 61;

// ---- section: the profile's keys, merged over `extends`, checked into `Config` ----------

#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct EnvSection {
    pub allow: Option<Vec<Spanned<String>>>,
    pub set: Option<BTreeMap<String, String>>,
    /// `false`: none of the caller's variables but those `allow` names (the default list
    /// of terminal and locale variables is not kept either).
    pub inherit: Option<bool>,
}

crate::merge_fields!(EnvSection {
    allow: append,
    set: append,
    inherit: or
});

#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Section {
    pub mode: Option<Requirement>,
    pub no_new_privs: Option<bool>,
    pub new_session: Option<bool>,
    pub die_with_parent: Option<bool>,
    /// Gone: every fd above 2 is always closed. Kept only to say so, with the fix.
    #[schemars(skip)]
    pub close_fds: Option<Spanned<bool>>,
    /// Inherited fds that stay open in the payload; every other fd above 2 is closed.
    pub pass_fds: Option<Vec<Spanned<i64>>>,
    pub env: Option<EnvSection>,
    pub cwd: Option<Spanned<String>>,
    #[schemars(with = "Option<crate::types::Scalar>")]
    pub timeout: Option<Spanned<String>>,
}

crate::merge_fields!(Section {
    mode: or,
    no_new_privs: or,
    new_session: or,
    die_with_parent: or,
    close_fds: or,
    pass_fds: append,
    env: nested,
    cwd: or,
    timeout: or
});

impl Section {
    fn checked(self) -> Result<Config, ProfileError> {
        if let Some(c) = &self.close_fds {
            return Err(ProfileError::at(
                Loc::of(c),
                "close-fds is no longer a setting: every fd above 2 is closed before the payload starts",
            )
            .hint("remove it; list fds that must stay open in `pass-fds: [3]` (or `run --pass-fd 3`)"));
        }
        let mut pass_fds = Vec::new();
        for raw in self.pass_fds.unwrap_or_default() {
            if !(3..=4095).contains(&raw.value) {
                return Err(ProfileError::at(
                    Loc::of(&raw),
                    format!(
                        "pass-fds: {} is not an fd above stderr (3 to 4095)",
                        raw.value
                    ),
                ));
            }
            if !pass_fds.contains(&(raw.value as i32)) {
                pass_fds.push(raw.value as i32);
            }
        }
        if pass_fds.len() > MAX_PASS_FDS {
            return Err(ProfileError {
                file: Default::default(),
                loc: None,
                message: format!(
                    "pass-fds lists {} fds; at most {} can be passed",
                    pass_fds.len(),
                    MAX_PASS_FDS
                ),
                hint: None,
            });
        }
        let env = self.env.unwrap_or_default();
        let mut allow = Vec::new();
        for raw in env.allow.unwrap_or_default() {
            let name = raw.value.as_str();
            let body = name.strip_suffix('*').unwrap_or(name);
            if body.is_empty() || !body.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(ProfileError::at(
                    Loc::of(&raw),
                    format!("{name:?} is not an environment variable name"),
                )
                .hint("letters, digits and '_', optionally ending in '*' for a prefix"));
            }
            allow.push(name.to_string());
        }
        let default_allow = allow.is_empty() && env.inherit != Some(false);
        if default_allow {
            allow = DEFAULT_ENV_ALLOW.iter().map(|s| s.to_string()).collect();
        }
        let mut set = env.set.unwrap_or_default();
        for (k, v) in &set {
            if k.is_empty() || k.contains('=') || k.contains('\0') || v.contains('\0') {
                return Err(ProfileError {
                    file: Default::default(),
                    loc: None,
                    message: format!("env.set: {k:?} is not a valid variable"),
                    hint: Some("names contain no '=' or NUL".into()),
                });
            }
        }
        set.entry("PATH".into())
            .or_insert_with(|| DEFAULT_PATH.into());
        let cwd = self.cwd.as_ref().map(parse_path).transpose()?;
        let timeout = match &self.timeout {
            Some(raw) => Some(
                parse_duration(&raw.value)
                    .map_err(|m| ProfileError::at(Loc::of(raw), m).hint("e.g. 30s, 5m, 1h"))?,
            ),
            None => None,
        };
        Ok(Config {
            mode: self.mode.unwrap_or_default(),
            no_new_privs: self.no_new_privs.unwrap_or(true),
            new_session: self.new_session.unwrap_or(true),
            die_with_parent: self.die_with_parent.unwrap_or(true),
            pass_fds,
            env_allow: allow,
            env_set: set,
            cwd,
            timeout,
        })
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub mode: Requirement,
    pub no_new_privs: bool,
    pub new_session: bool,
    pub die_with_parent: bool,
    /// Inherited fds kept open in the payload.
    pub pass_fds: Vec<i32>,
    pub env_allow: Vec<String>,
    pub env_set: BTreeMap<String, String>,
    pub cwd: Option<SandboxPath>,
    pub timeout: Option<Duration>,
}

impl crate::types::LayerSection for Section {
    type Config = Config;
    fn validate(&self, _dir: &std::path::Path) -> Result<Config, ProfileError> {
        self.clone().checked()
    }
}

// ---- plan: what the layer decides and prepares before the clone -------------------------

fn allowed(name: &[u8], allow: &[String]) -> bool {
    allow.iter().any(|a| match a.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix.as_bytes()),
        None => name == a.as_bytes(),
    })
}

/// The payload's environment: the caller's variables on the allow-list, then `set`.
/// With the layer off, the caller's environment passes unchanged.
pub fn build_env(cfg: Option<&Config>, caller: &[(OsString, OsString)]) -> Vec<CString> {
    let mut out: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    for (k, v) in caller {
        let k = k.as_bytes();
        if cfg.is_none_or(|c| allowed(k, &c.env_allow)) {
            out.insert(k.to_vec(), v.as_bytes().to_vec());
        }
    }
    if let Some(c) = cfg {
        for (k, v) in &c.env_set {
            out.insert(k.as_bytes().to_vec(), v.as_bytes().to_vec());
        }
    }
    out.into_iter()
        .filter_map(|(mut k, v)| {
            k.push(b'=');
            k.extend(v);
            CString::new(k).ok()
        })
        .collect()
}

/// Prepared hygiene steps for the payload.
#[derive(Debug, Clone, Copy)]
pub struct Prepared {
    pub no_new_privs: bool,
    pub new_session: bool,
    pub die_with_parent: bool,
}

pub fn prepare(cfg: &Config) -> Prepared {
    Prepared {
        no_new_privs: cfg.no_new_privs,
        new_session: cfg.new_session,
        die_with_parent: cfg.die_with_parent,
    }
}

// ---- apply: the child, between clone and execve (async-signal-safe) ---------------------

/// Child side, early (payload step 6): session, parent-death signal, fd sweep.
pub fn child_apply_early(prep: &Prepared) -> Result<(), ChildError<'static>> {
    if prep.die_with_parent {
        nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
            .step(At::ProcessEarly, "set parent-death signal")?;
    }
    if prep.new_session {
        nix::unistd::setsid().step(At::ProcessEarly, "setsid")?;
    }
    // Close-on-exec for everything above stderr: the status pipe still reports a failure
    // before execve, and execve itself closes them all (CVE-2024-21626 class). Passed fds
    // are opened again right before execve.
    sys::cloexec_from(3).step(At::ProcessEarly, "close fds")?;
    let _ = prep;
    Ok(())
}

/// Child side, after the uid switch and capset, which clear the parent-death signal
/// (credentials changed): arm it again, then make sure `parent` (init) is still there.
pub fn child_rearm_parent_death(
    prep: &Prepared,
    parent: nix::unistd::Pid,
) -> Result<(), ChildError<'static>> {
    if prep.die_with_parent {
        nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
            .step(At::PayloadParentDeath, "set parent-death signal")?;
        if nix::unistd::getppid() != parent {
            sys::exit_now(crate::launch::EXIT_SETUP_FAILED);
        }
    }
    Ok(())
}

/// Child side, after capabilities (payload step 7).
pub fn child_apply_no_new_privs(prep: &Prepared) -> Result<(), ChildError<'static>> {
    if prep.no_new_privs {
        nix::sys::prctl::set_no_new_privs().step(At::NoNewPrivs, "set no_new_privs")?;
    }
    Ok(())
}

// ---- explain: plain words for `explain` and `doctor` ------------------------------------

pub fn explain(cfg: &Config) -> Vec<String> {
    let mut out = Vec::new();
    if cfg.no_new_privs {
        out.push("no_new_privs: setuid/setgid binaries and file capabilities grant nothing".into());
    }
    if cfg.new_session {
        out.push("the payload leads its own session, without a controlling terminal: TIOCSTI cannot inject keystrokes into your shell (lasagna's init also runs in a session of its own, so this holds even with this layer off)".into());
    }
    if cfg.die_with_parent {
        out.push("dies with lasagna: a SIGKILLed launcher takes the payload with it (what the payload started ends with the pid namespace or the cgroup, when there is one)".into());
    }
    if cfg.pass_fds.is_empty() {
        out.push("every inherited fd above 2 is closed at execve: no leaked files, sockets or directories".into());
    } else {
        let list: Vec<String> = cfg.pass_fds.iter().map(i32::to_string).collect();
        out.push(format!(
            "every inherited fd above 2 is closed at execve except {} (pass-fds)",
            list.join(", ")
        ));
    }
    out.push(format!(
        "environment cleared; kept from yours: {}; set: {}",
        cfg.env_allow.join(", "),
        cfg.env_set.keys().cloned().collect::<Vec<_>>().join(", ")
    ));
    if let Some(cwd) = &cfg.cwd {
        out.push(format!("working directory {cwd}"));
    }
    if let Some(t) = cfg.timeout {
        out.push(format!(
            "killed after {:?} of wall-clock time (exit 124)",
            t
        ));
    }
    out
}
