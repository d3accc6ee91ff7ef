//! Plan → [`Armed`]: everything the child will need, prepared in the supervisor before the
//! clone (step 0), from the plan alone. No side effects: this only computes.

use std::ffi::CString;

use nix::sched::CloneFlags;

use crate::launch::Layer;
use crate::layers::namespaces::Kind;
use crate::layers::{capabilities, filesystem, landlock, process, seccomp};
use crate::plan::Plan;
use crate::profile::Requirement;
use crate::sandbox::{Armed, Exec};

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
    let envp = process::build_env(cfg.process.as_ref(), &caller_env);
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
    if pass.len() > crate::sandbox::MAX_PASS_FDS {
        return Err(ArmError::Usage(format!(
            "{} fds to pass; at most {} can be passed",
            pass.len(),
            crate::sandbox::MAX_PASS_FDS
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
        plan,
    })
}
