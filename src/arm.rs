//! Plan → [`Armed`]: everything the child will need, prepared in the supervisor before the
//! clone (step 0). No side effects: this only computes.

use std::ffi::CString;
use std::time::Duration;

use nix::sched::CloneFlags;

use crate::launch::Layer;
use crate::layers::namespaces::Kind;
use crate::layers::rlimits::Limit;
use crate::layers::{capabilities, filesystem, landlock, process, seccomp};
use crate::plan::Plan;
use crate::profile::{Profile, Requirement};
use crate::sandbox::{Armed, Exec};

pub fn arm(
    profile: &Profile,
    plan: Plan,
    command: &[String],
    timeout: Option<Duration>,
    pass_fds: &[i32],
) -> Result<Armed, String> {
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
    let ns = profile.namespaces.as_ref();
    let hostname = if plan.has(Kind::Uts) {
        ns.map(|c| c.hostname.clone())
    } else {
        None
    };
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
    let capabilities = plan
        .applies(Layer::Capabilities)
        .then_some(profile.capabilities.as_ref())
        .flatten()
        .map(capabilities::prepare);
    let mut rlimits = plan
        .applies(Layer::Rlimits)
        .then_some(profile.rlimits.as_ref())
        .flatten()
        .map(|c| c.limits.clone())
        .unwrap_or_default();
    // cgroup limits the host cannot give, approximated by rlimits (best-effort cgroups).
    for f in &plan.cgroup_fallback {
        use nix::sys::resource::Resource;
        let limit = match f.resource {
            Resource::RLIMIT_AS => Limit::As,
            Resource::RLIMIT_NPROC => Limit::Nproc,
            Resource::RLIMIT_CPU => Limit::Cpu,
            _ => continue,
        };
        match rlimits.iter_mut().find(|(l, _)| *l == limit) {
            Some((_, v)) => *v = Some(v.map_or(f.limit, |old| old.min(f.limit))),
            None => rlimits.push((limit, Some(f.limit))),
        }
    }
    let process_cfg = plan
        .applies(Layer::Process)
        .then_some(profile.process.as_ref())
        .flatten();
    let caller_env: Vec<_> = std::env::vars_os().collect();
    let envp = process::build_env(process_cfg, &caller_env);
    let cwd = match process_cfg.and_then(|c| c.cwd.as_ref()) {
        Some(p) => p.as_str().to_string(),
        None if filesystem.is_some() => "/".to_string(),
        None => std::env::current_dir()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "/".into()),
    };
    // The supervisor enforces the timeout: it holds even with the process layer off.
    let timeout = timeout.or(profile.process.as_ref().and_then(|c| c.timeout));
    let exec = Exec::new(command, envp)?;
    let landlock = plan.landlock.as_ref().map(landlock::prepare);
    let (seccomp, init_seccomp) = match profile
        .seccomp
        .as_ref()
        .filter(|_| plan.applies(Layer::Seccomp))
    {
        Some(policy) => (
            Some(
                seccomp::prepare(policy, plan.landlock_net_rules)
                    .map_err(|e| format!("seccomp: prepare: {e}"))?,
            ),
            Some(
                seccomp::prepare_init()
                    .map_err(|e| format!("seccomp: prepare init filter: {e}"))?,
            ),
        ),
        None => (None, None),
    };
    // Fds that stay open in the payload: the profile's and the command line's, each open
    // now (a closed one would be a silent no-op).
    let mut pass: Vec<i32> = process_cfg.map(|c| c.pass_fds.clone()).unwrap_or_default();
    for fd in pass_fds {
        if !pass.contains(fd) {
            pass.push(*fd);
        }
    }
    if pass.len() > crate::sandbox::MAX_PASS_FDS {
        return Err(format!(
            "{} fds to pass; at most {} can be passed",
            pass.len(),
            crate::sandbox::MAX_PASS_FDS
        ));
    }
    for fd in &pass {
        if !crate::sys::fd_is_open(*fd) {
            return Err(format!("--pass-fd {fd}: fd {fd} is not open"));
        }
    }
    Ok(Armed {
        reap_by_children: !plan.has(Kind::Pid),
        pass_fds: pass,
        clone_flags,
        unshare_for_payload,
        hostname,
        loopback: plan.has(Kind::Net),
        filesystem,
        host_creates,
        host_owner: plan.identity.host_ids_if_root(),
        capabilities,
        rlimits,
        process: process_cfg.map(process::prepare),
        landlock,
        seccomp,
        init_seccomp,
        cgroup: plan.cgroup.clone(),
        cgroup_sweep: plan.cgroup_sweep.clone(),
        identity: plan.identity.clone(),
        cwd: CString::new(cwd).map_err(|_| "working directory contains a NUL byte")?,
        exec,
        timeout,
        observe: true,
        plan,
    })
}
