//! Plan → [`Armed`]: everything the child will need, prepared in the supervisor before the
//! clone (step 0), from the plan alone. No side effects: this only computes.

use std::ffi::CString;
use std::os::fd::{OwnedFd, RawFd};
use std::time::Duration;

use nix::sched::CloneFlags;

use crate::launch::Layer;
use crate::layers::namespaces::Kind;
use crate::layers::rlimits::Limit;
use crate::layers::{capabilities, cgroups, filesystem, landlock, network, process, seccomp};
use crate::plan::{Identity, Plan};
use crate::profile::Requirement;
use crate::sys;

/// The command to execute, resolved to candidate paths before the clone.
#[derive(Debug)]
pub struct Exec {
    /// What the user typed as the program.
    pub program: String,
    /// Paths to try in order (one when the program contains '/', else each $PATH entry).
    pub candidates: Vec<CString>,
    pub args: sys::ExecArgs,
}

impl Exec {
    pub fn new(command: &[String], envp: Vec<CString>) -> Result<Exec, String> {
        let program = command.first().ok_or("no command to run")?.clone();
        let argv: Vec<CString> = command
            .iter()
            .map(|a| {
                CString::new(a.as_bytes())
                    .map_err(|_| format!("argument {a:?} contains a NUL byte"))
            })
            .collect::<Result<_, _>>()?;
        let path = envp
            .iter()
            .find_map(|e| e.to_bytes().strip_prefix(b"PATH="))
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .unwrap_or_else(|| process::DEFAULT_PATH.to_string());
        let candidates = if program.contains('/') {
            vec![argv[0].clone()]
        } else {
            path.split(':')
                .filter(|d| !d.is_empty())
                .filter_map(|d| CString::new(format!("{d}/{program}")).ok())
                .collect()
        };
        Ok(Exec {
            program,
            candidates,
            args: sys::ExecArgs::new(argv, envp),
        })
    }
}

/// Everything the child needs, prepared by the supervisor before the clone.
#[derive(Debug)]
pub struct Armed {
    pub plan: Plan,
    /// CLONE_NEW* flags for the clone itself.
    pub clone_flags: u64,
    /// Namespaces init creates with unshare, for the payload (time, cgroup).
    pub unshare_for_payload: CloneFlags,
    pub hostname: Option<String>,
    pub loopback: bool,
    /// Set `user.max_user_namespaces = 0` in the sandbox's user namespace (step 4c).
    pub userns_limit: bool,
    pub filesystem: Option<filesystem::Prepared>,
    /// What the supervisor makes in bound host directories before the clone (and removes
    /// after the run).
    pub host_creates: Vec<filesystem::view::Create>,
    /// The payload's host ids, for what it makes there, when lasagna runs as root.
    pub host_owner: Option<(u32, u32)>,
    pub capabilities: Option<capabilities::Prepared>,
    pub rlimits: Vec<(Limit, Option<u64>)>,
    pub process: Option<process::Prepared>,
    pub landlock: Option<landlock::Prepared>,
    /// The payload's filter, installed last, right before execve.
    pub seccomp: Option<seccomp::Prepared>,
    /// init's own filter, installed once the payload is forked.
    pub init_seccomp: Option<seccomp::Prepared>,
    /// The cgroup the supervisor creates before the clone (step 1).
    pub cgroup: Option<cgroups::Plan>,
    /// Where our own stale cgroups may be (swept before the new one is made).
    pub cgroup_sweep: Vec<std::path::PathBuf>,
    pub identity: Identity,
    pub cwd: CString,
    pub exec: Exec,
    pub timeout: Option<Duration>,
    /// Read what the kernel applied after execve (for `-v` and `--report`).
    pub observe: bool,
    /// `--explain-denials`: the payload's seccomp listener is passed out and Landlock logs
    /// after execve ([`Armed::explain_denials`]).
    pub explain_denials: bool,
    /// No pid namespace: init kills what descends from the payload through its `children`
    /// file (as pid 1 it would use `kill(-1)`).
    pub reap_by_children: bool,
    /// Inherited fds that stay open in the payload (`--pass-fd`, `process.pass-fds`).
    pub pass_fds: Vec<i32>,
    /// `net: proxy`: the port the child listens on inside, and what the proxy lets through.
    pub proxy: Option<Proxy>,
    /// `net: user`: how the supervisor starts pasta.
    pub pasta: Option<Pasta>,
}

/// `net: proxy`, armed.
#[derive(Debug)]
pub struct Proxy {
    pub port: u16,
    pub allow: Vec<network::Entry>,
    /// `-v`: each connection on stderr as it ends (set by `run`).
    pub log_stderr: bool,
}

/// `net: user`, armed.
#[derive(Debug)]
pub struct Pasta {
    pub bin: std::path::PathBuf,
    pub forward: Vec<(u16, u16)>,
    /// pasta joins the sandbox's user namespace.
    pub userns: bool,
}

/// The child's ends of the supervisor's pipes.
pub struct ChildFds {
    /// Read: one byte once the supervisor has written the id maps, a second once the
    /// cgroup attach is done; EOF = supervisor gone.
    pub release: OwnedFd,
    /// Write, CLOEXEC: a failure message; EOF at the supervisor = execve succeeded.
    pub status: OwnedFd,
    /// Write: the payload's raw wait status, from init, before it exits.
    pub result: OwnedFd,
    /// v1 `tasks` files to write "0" into (join the cgroup), owned by the supervisor's
    /// `ActiveCgroup`; closed by the child once written.
    pub cgroup_join: Vec<RawFd>,
    /// `--explain-denials` with seccomp: the payload's end of the socketpair its filter's
    /// listener is passed out on; closed once sent (step 9).
    pub denials: Option<OwnedFd>,
    /// `net: proxy`: the child's end of the socketpair the listener is passed out on;
    /// closed once sent (step 4e).
    pub proxy: Option<OwnedFd>,
    /// As root: the idmapped binds' trees (step 1), attached in 4f and closed then.
    pub trees: Vec<OwnedFd>,
}

/// Why a plan could not be armed: each names what the user gave that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ArmError {
    /// The command line asks for something impossible (exit 2).
    #[error("{0}")]
    Usage(String),
    /// A filter or other child data could not be built (exit 125).
    #[error("{layer}: {what}")]
    Prepare { layer: Layer, what: String },
}

pub fn arm(plan: Plan, command: &[String], pass_fds: &[i32]) -> Result<Armed, ArmError> {
    let clone_flags = plan
        .namespaces
        .iter()
        .filter_map(|k| k.clone_flag())
        .fold(0u64, |f, k| f | k);
    let mut unshare_for_payload = CloneFlags::empty();
    if plan.has(Kind::Time) {
        unshare_for_payload |= CloneFlags::from_bits_retain(libc::CLONE_NEWTIME);
    }
    if plan.has(Kind::Cgroup) {
        unshare_for_payload |= CloneFlags::CLONE_NEWCGROUP;
    }
    let fs_required = plan.get(Layer::Filesystem).requested == Requirement::Required;
    let filesystem = plan
        .filesystem
        .as_ref()
        .map(|fs| filesystem::prepare(fs, fs_required));
    let host_creates = plan
        .filesystem
        .as_ref()
        .map(|fs| fs.creates.clone())
        .unwrap_or_default();
    let cfg = &plan.config;
    let capabilities = cfg
        .capabilities
        .as_ref()
        .map(|c| capabilities::prepare(c, plan.cap_last_cap));
    let caller_env: Vec<_> = std::env::vars_os().collect();
    let mut envp = process::build_env(cfg.process.as_ref(), &caller_env);
    let proxy_port = cfg.network.as_ref().and_then(network::Config::proxy_listen);
    if let Some(port) = proxy_port {
        network::proxy_env(&mut envp, port);
    }
    let exec = Exec::new(command, envp).map_err(ArmError::Usage)?;
    let landlock = plan.landlock.as_ref().map(landlock::prepare);
    let prepare = |what: String| ArmError::Prepare {
        layer: Layer::Seccomp,
        what,
    };
    let (seccomp, init_seccomp) = match &cfg.seccomp {
        Some(policy) => (
            Some(
                seccomp::prepare(policy, plan.landlock_net_rules)
                    .map_err(|e| prepare(format!("prepare: {e}")))?,
            ),
            Some(
                seccomp::prepare_init()
                    .map_err(|e| prepare(format!("prepare init filter: {e}")))?,
            ),
        ),
        None => (None, None),
    };
    // Fds that stay open in the payload: the profile's and the command line's, each open
    // now (a closed one would be a silent no-op).
    let mut pass: Vec<i32> = cfg
        .process
        .as_ref()
        .map(|c| c.pass_fds.clone())
        .unwrap_or_default();
    for fd in pass_fds {
        if !pass.contains(fd) {
            pass.push(*fd);
        }
    }
    if pass.len() > process::MAX_PASS_FDS {
        return Err(ArmError::Usage(format!(
            "{} fds to pass; at most {} can be passed",
            pass.len(),
            process::MAX_PASS_FDS
        )));
    }
    for fd in &pass {
        if !crate::sys::fd_is_open(*fd) {
            return Err(ArmError::Usage(format!(
                "--pass-fd {fd}: fd {fd} is not open"
            )));
        }
    }
    let cwd = CString::new(plan.cwd.as_str())
        .map_err(|_| ArmError::Usage("working directory contains a NUL byte".into()))?;
    Ok(Armed {
        reap_by_children: !plan.has(Kind::Pid),
        pass_fds: pass,
        clone_flags,
        unshare_for_payload,
        hostname: plan.hostname.clone(),
        loopback: plan.has(Kind::Net),
        userns_limit: plan.has(Kind::User)
            && cfg.namespaces.as_ref().is_some_and(|n| !n.nested_userns),
        filesystem,
        host_creates,
        host_owner: plan.identity.host_ids_if_root(),
        capabilities,
        rlimits: plan.rlimits.clone(),
        process: cfg.process.as_ref().map(process::prepare),
        landlock,
        seccomp,
        init_seccomp,
        cgroup: plan.cgroup.clone(),
        cgroup_sweep: plan.cgroup_sweep.clone(),
        identity: plan.identity.clone(),
        cwd,
        exec,
        timeout: plan.timeout,
        observe: true,
        explain_denials: false,
        proxy: proxy_port.map(|port| Proxy {
            port,
            allow: cfg
                .network
                .as_ref()
                .map(|n| n.allow.clone())
                .unwrap_or_default(),
            log_stderr: false,
        }),
        pasta: plan.pasta.clone().map(|bin| Pasta {
            bin,
            forward: cfg
                .network
                .as_ref()
                .map(|n| n.forward.clone())
                .unwrap_or_default(),
            userns: plan.has(Kind::User),
        }),
        plan,
    })
}

impl Armed {
    /// `--explain-denials`: seccomp's errno actions become notifications the supervisor
    /// answers with the same errno, and Landlock (ABI 7) logs the denials of the programs
    /// the payload runs. Refused when the filter would deny, by errno, a call the payload
    /// makes to pass its listener out: it would wait for an answer that needs the listener.
    pub fn explain_denials(&mut self) -> Result<(), ArmError> {
        self.explain_denials = true;
        if let Some(s) = &mut self.seccomp {
            for call in ["sendmsg", "close"] {
                let table = seccomp::Arch::NATIVE.table();
                let Some(nr) = table.nr(call) else { continue };
                let data = crate::sys::seccomp::SeccompData {
                    nr: nr as i32,
                    arch: seccomp::Arch::NATIVE.audit_arch(),
                    ..Default::default()
                };
                if seccomp::notify::errno_of(s.program(), &data).is_some() {
                    return Err(ArmError::Usage(format!(
                        "--explain-denials: the seccomp policy denies {call}, which the payload needs to pass the filter's listener out; leave the flag out or allow {call}"
                    )));
                }
            }
            s.notify_denials();
        }
        if let Some(l) = &mut self.landlock {
            l.log_new_exec = l.abi >= 7;
        }
        Ok(())
    }
}
