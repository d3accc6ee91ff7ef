//! Child side: the fixed launch sequence (steps 4–10 of ARCHITECTURE.md) and lasagna's
//! init. Everything here runs after the clone, in a copy of the single-threaded supervisor:
//! it works only on data prepared before the clone ([`Armed`]) and never returns into the
//! supervisor's code. A failure is one structured message on the status pipe, then `_exit`.

pub mod init;

use std::ffi::CStr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::errno::Errno;

use crate::arm::{Armed, ChildFds};
use crate::launch::At;
use crate::launch::{ChildContext, ChildError};
use crate::layers::{capabilities, filesystem, landlock, process, seccomp};
use crate::plan::{Identity, Switch};
use crate::sys;

pub use crate::launch::{EXIT_NOT_EXECUTABLE, EXIT_NOT_FOUND, EXIT_SETUP_FAILED};
pub use crate::layers::process::MAX_PASS_FDS;

/// Send a child-side failure to the supervisor and exit.
pub fn fail(status: &OwnedFd, err: ChildError<'_>, code: i32) -> ! {
    let mut buf = [0u8; 1024];
    let n = err.encode(&mut buf);
    let _ = sys::write_all(status.as_fd(), &buf[..n]);
    sys::exit_now(code)
}

/// The child after clone: steps 4 and 5, then init. Never returns, and never unwinds into
/// the supervisor's code it is a copy of: a panic here ends the child with 125.
pub fn child_main(armed: &Armed, mut fds: ChildFds, one: sys::OneThread) -> ! {
    let status = fds.status.as_raw_fd();
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let children = match setup(armed, &mut fds) {
            Ok(children) => children,
            Err(e) => fail(&fds.status, e, EXIT_SETUP_FAILED),
        };
        init::run(armed, fds, children, one)
    }));
    let _ = status;
    sys::exit_now(EXIT_SETUP_FAILED)
}

/// Close every fd from 3 up except those in `keep` (at most 64, sorted here in place).
fn close_all_but(keep: &mut [i32]) -> Result<(), Errno> {
    keep.sort_unstable();
    let mut next: u32 = 3;
    for &fd in keep.iter() {
        if fd < 3 || (fd as u32) < next {
            continue;
        }
        sys::close_range(next, fd as u32 - 1)?;
        next = fd as u32 + 1;
    }
    sys::close_range(next, u32::MAX)
}

/// Steps 4a–4i. Returns, without a pid namespace, init's own `children` file (opened from
/// the host's /proc before the filesystem is built): at the end init kills what descends
/// from the payload through it, since `kill(-1)` would reach the user's host processes.
fn setup<'a>(armed: &'a Armed, fds: &mut ChildFds) -> Result<Option<OwnedFd>, ChildError<'a>> {
    // 4a. Die with the supervisor: nothing must outlive it.
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
        .step(At::ParentDeath, "set parent-death signal")?;
    //     Join the v1 cgroups: moving oneself needs no RCU grace period (see
    //     `ActiveCgroup::join_fds`); everything forked later starts inside them.
    for &fd in &fds.cgroup_join {
        // Open until the close_range below: the supervisor opened it before the clone.
        sys::write_all(sys::borrow_raw(fd), b"0")
            .step(At::CgroupJoin, "join cgroup (write 0 to tasks)")?;
    }
    // 4b. Keep only our pipes, stdio and the fds the profile passes: everything else the
    //     supervisor inherited stays outside.
    let mut keep = [-1i32; MAX_PASS_FDS + 5 + filesystem::idmap::MAX_TREES];
    keep[0] = fds.release.as_raw_fd();
    keep[1] = fds.status.as_raw_fd();
    keep[2] = fds.result.as_raw_fd();
    keep[3] = fds.proxy.as_ref().map_or(-1, |p| p.as_raw_fd());
    keep[4] = fds.denials.as_ref().map_or(-1, |p| p.as_raw_fd());
    for (slot, fd) in keep[5..].iter_mut().zip(&armed.pass_fds) {
        *slot = *fd;
    }
    for (slot, fd) in keep[5 + MAX_PASS_FDS..].iter_mut().zip(&fds.trees) {
        *slot = fd.as_raw_fd();
    }
    close_all_but(&mut keep).step(At::CloseInherited, "close inherited fds")?;
    // 4c. Wait until the supervisor wrote the uid/gid maps (and attached the cgroup).
    let mut byte = [0u8; 1];
    match nix::unistd::read(fds.release.as_fd(), &mut byte) {
        Ok(1) => {}
        Ok(_) => sys::exit_now(EXIT_SETUP_FAILED),
        Err(e) => return Err(ChildError::new(At::WaitRelease, "wait for release", e)),
    }
    //     No user namespace below this one: the limit of the sandbox's own namespace,
    //     written while the child holds CAP_SYS_RESOURCE in it (the file under /proc/sys
    //     is the opener's user namespace's).
    if armed.userns_limit {
        let f = nix::fcntl::open(
            c"/proc/sys/user/max_user_namespaces",
            nix::fcntl::OFlag::O_WRONLY | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .step(At::UsernsLimit, "open /proc/sys/user/max_user_namespaces")?;
        sys::write_all(f.as_fd(), b"0").step(At::UsernsLimit, "write max_user_namespaces")?;
    }
    // 4d. As host root in a user namespace, take the mapped ids now: uid 0 is unmapped
    //     inside, and nothing can be created on a filesystem until the fsuid is mapped.
    if armed.identity.switch == Switch::InInit {
        switch_identity(&armed.identity, At::IdentityInit)?;
    }
    //     Without a pid namespace, init's own list of children, from the host's /proc (opened
    //     with the ids init keeps: procfs checks the opener's).
    let children = if armed.reap_by_children {
        Some(
            nix::fcntl::open(
                c"/proc/thread-self/children",
                nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            )
            .step(At::ReapList, "open /proc/thread-self/children")?,
        )
    } else {
        None
    };
    // 4e. Namespaces: hostname and loopback.
    if let Some(name) = &armed.hostname {
        nix::unistd::sethostname(name).step(At::Hostname, "sethostname")?;
    }
    if armed.loopback {
        sys::loopback_up().step(At::Loopback, "bring loopback up")?;
    }
    //     The proxy's listener belongs to this namespace; the supervisor serves it.
    if let (Some(p), Some(channel)) = (&armed.proxy, fds.proxy.take()) {
        let listener =
            sys::loopback_listener(p.port).step(At::ProxyListener, "listen on the proxy's port")?;
        sys::send_fd(channel.as_fd(), listener.as_fd())
            .step(At::ProxyListener, "pass the proxy's listener out")?;
    }
    // 4f. The filesystem view, ending in pivot_root with the old root detached.
    if let Some(fs) = &armed.filesystem {
        filesystem::child_apply(fs, &fds.trees)?;
    }
    //     The trees are attached: their descriptors never reach the payload.
    fds.trees.clear();
    // 4g. The supervisor attached us to the cgroup while we built the filesystem (a v1
    //     attach can wait for an RCU grace period); the payload must start inside it.
    //     A credential change (the uid switch above) clears the parent-death signal, so
    //     it is armed again first; EOF here then means the supervisor is already gone.
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
        .step(At::ParentDeathRearm, "set parent-death signal")?;
    match nix::unistd::read(fds.release.as_fd(), &mut byte) {
        Ok(1) => {}
        Ok(_) => sys::exit_now(EXIT_SETUP_FAILED),
        Err(e) => return Err(ChildError::new(At::WaitAttach, "wait for attach", e)),
    }
    // 4h. Time and cgroup namespaces apply to the payload (unshare affects children for
    //     time; cgroup must come after the cgroup attach, which happened before release).
    if !armed.unshare_for_payload.is_empty() {
        nix::sched::unshare(armed.unshare_for_payload)
            .step(At::UnshareTimeCgroup, "unshare time/cgroup")?;
    }
    // 4i. init cannot be ptraced or have its memory read by the payload.
    nix::sys::prctl::set_dumpable(false).step(At::NonDumpable, "set non-dumpable")?;
    Ok(children)
}

/// The payload, after fork from init: steps 6–10. Never returns.
pub fn payload_main(armed: &Armed, status: &OwnedFd, denials: Option<&OwnedFd>) -> ! {
    match prepare_payload(armed, status, denials) {
        Ok(()) => exec(armed, status),
        Err(e) => fail(status, e, EXIT_SETUP_FAILED),
    }
}

fn prepare_payload<'a>(
    armed: &'a Armed,
    status: &OwnedFd,
    denials: Option<&OwnedFd>,
) -> Result<(), ChildError<'a>> {
    let parent = nix::unistd::getppid();
    // 6. Hygiene that needs privileges or must precede the identity switch.
    sys::reset_signal_dispositions();
    nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&nix::sys::signal::SigSet::empty()),
        None,
    )
    .step(At::PayloadSignals, "unblock signals")?;
    if let Some(p) = &armed.process {
        process::child_apply_early(p)?;
    }
    // Passed fds stay open across execve (they are the only ones).
    for fd in &armed.pass_fds {
        sys::keep_across_exec(*fd).step(At::ProcessEarly, "keep a passed fd open")?;
    }
    crate::layers::rlimits::child_apply(&armed.rlimits)?;
    nix::unistd::chdir(armed.cwd.as_c_str()).step_on(At::Chdir, "chdir", armed.cwd.to_bytes())?;
    // 7. Capabilities: bounding set first, while CAP_SETPCAP is held; then the uid switch;
    //    then the remaining sets (a kept capability survives the switch via keepcaps).
    if let Some(c) = &armed.capabilities {
        capabilities::child_apply_bounding(c)?;
        if c.keep_mask != 0 {
            nix::sys::prctl::set_keepcaps(true).step(At::CapsBounding, "set keepcaps")?;
        }
    }
    if armed.identity.switch == Switch::InPayload {
        switch_identity(&armed.identity, At::IdentityPayload)?;
    }
    if let Some(c) = &armed.capabilities {
        capabilities::child_apply_sets(c)?;
    }
    if let Some(p) = &armed.process {
        process::child_apply_no_new_privs(p)?;
        // The uid switch and capset cleared the parent-death signal: arm it again, and
        // stop if init died in between.
        process::child_rearm_parent_death(p, parent)?;
    }
    // 8. Landlock after the mounts and pivot_root it would otherwise forbid.
    //    What the kernel enforced goes to the supervisor: the report shows it beside the plan.
    if let Some(l) = &armed.landlock {
        let applied = landlock::child_apply(l)?;
        let mut buf = [0u8; 64];
        let n = landlock::encode_status(&applied, &mut buf);
        let _ = sys::write_all(status.as_fd(), &buf[..n]);
    }
    // 9. seccomp last: the steps above need prctl, capset, setrlimit, landlock_*.
    //    The kernel requires no_new_privs for a filter without CAP_SYS_ADMIN.
    //    With --explain-denials the filter's listener goes out to the supervisor, which
    //    answers each denied call; the policy was checked to allow sendmsg and close.
    if let Some(s) = &armed.seccomp {
        nix::sys::prctl::set_no_new_privs().step(At::Seccomp, "set no_new_privs")?;
        match denials {
            Some(channel) if s.notifies() => {
                let listener = seccomp::install_listening(s)?;
                sys::send_fd(channel.as_fd(), listener.as_fd())
                    .step(At::Seccomp, "pass the filter's listener out")?;
            }
            _ => seccomp::install(s)?,
        }
    }
    Ok(())
}

fn switch_identity(id: &Identity, at: At) -> Result<(), ChildError<'static>> {
    if id.maps.is_none() {
        // Real host ids: drop root's supplementary groups too.
        nix::unistd::setgroups(&[]).step(at, "setgroups")?;
    }
    let gid = nix::unistd::Gid::from_raw(id.gid);
    let uid = nix::unistd::Uid::from_raw(id.uid);
    nix::unistd::setresgid(gid, gid, gid).step(at, "setresgid")?;
    nix::unistd::setresuid(uid, uid, uid).step(at, "setresuid")?;
    Ok(())
}

/// 10. execve each candidate path: the first that exists wins.
fn exec(armed: &Armed, status: &OwnedFd) -> ! {
    let e = &armed.exec;
    let mut denied: Option<(Errno, &CStr)> = None;
    let mut last = Errno::ENOENT;
    for path in &e.candidates {
        let err = sys::execve(path, &e.args);
        match err {
            Errno::ENOENT | Errno::ENOTDIR => last = err,
            Errno::EACCES | Errno::EPERM | Errno::ENOEXEC | Errno::EISDIR => {
                denied.get_or_insert((err, path));
            }
            other => {
                fail(
                    status,
                    ChildError::new(At::Exec, "execve", other).with_detail(path.to_bytes()),
                    EXIT_NOT_EXECUTABLE,
                );
            }
        }
    }
    match denied {
        Some((err, path)) => fail(
            status,
            ChildError::new(At::Exec, "execve", err).with_detail(path.to_bytes()),
            EXIT_NOT_EXECUTABLE,
        ),
        None => fail(
            status,
            ChildError::new(At::Exec, "execve", last).with_detail(e.program.as_bytes()),
            EXIT_NOT_FOUND,
        ),
    }
}
