//! The supervisor: host side of a run. It stays single-threaded until the clone, then
//! writes the id maps, releases the child, and waits on one poll loop (status pipe,
//! pidfd, signalfd, timeout): it forwards signals, enforces the timeout, observes what the
//! kernel applied, and collects the payload's status.
//!
//! Nothing here runs in the child: the child's code is in `sandbox`.

use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::layers::cgroups::{self, ActiveCgroup, CgroupError, Placement, Usage};
use crate::layers::{filesystem, namespaces};
use crate::observe::{self, Observation};
use crate::sandbox::init::{waited_signals, Ended, FORWARDED};
use crate::sandbox::{child_main, Armed, ChildFds};
use crate::sys::{self, Forked};

/// A failure reported by the child before execve.
#[derive(Debug, Clone)]
pub struct ChildFailure {
    pub layer: String,
    pub step: String,
    pub errno: Errno,
    pub detail: String,
}

impl ChildFailure {
    fn decode(bytes: &[u8]) -> ChildFailure {
        let text = String::from_utf8_lossy(bytes);
        let mut parts = text.splitn(4, '\t');
        let layer = parts.next().unwrap_or("child").to_string();
        let step = parts.next().unwrap_or("setup").to_string();
        let errno = parts
            .next()
            .and_then(|n| n.parse::<i32>().ok())
            .map(Errno::from_raw)
            .unwrap_or(Errno::UnknownErrno);
        // Show paths as the user wrote them, not the child's staging paths.
        let raw = parts.next().unwrap_or("");
        let detail = if let Some(host) = raw.strip_prefix("/oldroot") {
            format!("host {host}")
        } else if let Some(inside) = raw.strip_prefix("/newroot") {
            if inside.is_empty() {
                "/".to_string()
            } else {
                inside.to_string()
            }
        } else {
            raw.to_string()
        };
        ChildFailure {
            layer,
            step,
            errno,
            detail,
        }
    }
}

impl std::fmt::Display for ChildFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.layer, self.step)?;
        if !self.detail.is_empty() {
            write!(f, " {}", crate::text::escape(&self.detail))?;
        }
        if self.errno != Errno::UnknownErrno {
            write!(f, ": {} ({:?})", self.errno.desc(), self.errno)?;
        }
        Ok(())
    }
}

/// How a run ended.
#[derive(Debug)]
pub struct Outcome {
    pub ended: Option<Ended>,
    pub failure: Option<ChildFailure>,
    pub timed_out: bool,
    pub signals_forwarded: Vec<i32>,
    pub observation: Observation,
    /// Usage of the sandbox's cgroup, when the cgroups layer made one.
    pub usage: Option<Usage>,
    /// `killed: memory limit 256 MiB reached`, when the kernel OOM-killed in the cgroup.
    pub oom: Option<String>,
    /// What the cgroups layer did outside its own cgroup (e.g. subtree_control).
    pub cgroup_notes: Vec<String>,
    /// What went wrong after the payload ran, without changing its outcome.
    pub warnings: Vec<String>,
    pub wall: Duration,
    pub exit_code: i32,
}

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("{step}: {source}")]
    Sys {
        step: &'static str,
        #[source]
        source: Errno,
    },
    #[error("namespaces: write uid/gid maps: {0}")]
    Maps(#[source] std::io::Error),
    #[error("{0}")]
    Cgroup(#[from] CgroupError),
    #[error("{0}")]
    HostFs(String),
}

fn sys_err(step: &'static str) -> impl FnOnce(Errno) -> LaunchError {
    move |source| LaunchError::Sys { step, source }
}

/// Start the sandbox and wait for it. `armed` was fully prepared; nothing is created
/// before this function.
pub fn launch(armed: &Armed) -> Result<Outcome, LaunchError> {
    let start = Instant::now();
    // 1. Mount points a profile entry needs inside a bound host directory, made through
    //    descriptors (the plan walked there without following links) and undone after.
    let host_changes = if armed.host_creates.is_empty() {
        None
    } else {
        Some(
            filesystem::HostChanges::apply(&armed.host_creates, armed.host_owner)
                .map_err(LaunchError::HostFs)?,
        )
    };
    //    The cgroup and its limits exist before the payload's first instruction. Our own
    //    stale cgroups (a supervisor that was SIGKILLed) are swept first.
    let mut cgroup = match &armed.cgroup {
        Some(plan) => {
            cgroups::sweep_stale(&armed.cgroup_sweep);
            Some(ActiveCgroup::create(plan)?)
        }
        None => None,
    };
    let cloexec = OFlag::O_CLOEXEC;
    let (release_r, release_w) = nix::unistd::pipe2(cloexec).map_err(sys_err("create pipe"))?;
    let (status_r, status_w) = nix::unistd::pipe2(cloexec).map_err(sys_err("create pipe"))?;
    let (result_r, result_w) = nix::unistd::pipe2(cloexec).map_err(sys_err("create pipe"))?;

    // Signals to forward are blocked and read from a signalfd; init inherits the mask.
    let waited = waited_signals();
    let mut previous_mask = SigSet::empty();
    nix::sys::signal::sigprocmask(
        SigmaskHow::SIG_BLOCK,
        Some(&waited),
        Some(&mut previous_mask),
    )
    .map_err(sys_err("block signals"))?;
    let mut forwarded = SigSet::empty();
    for s in FORWARDED {
        forwarded.add(s);
    }
    let sigfd = SignalFd::with_flags(&forwarded, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(sys_err("create signalfd"))?;

    if armed.identity.maps.is_some() && nix::unistd::geteuid().is_root() {
        // Root's supplementary groups would be inherited by the sandbox and still count
        // for host permission checks; setgroups is denied inside, so drop them here.
        nix::unistd::setgroups(&[]).map_err(sys_err("drop supplementary groups"))?;
    }

    // 2. Clone with the namespace flags. The process is single-threaded here.
    let into = cgroup.as_ref().and_then(|c| c.clone_into_fd());
    let placement = if into.is_some() {
        Placement::ClonedInto
    } else {
        Placement::NotPlaced
    };
    let cgroup_join = cgroup
        .as_ref()
        .map(ActiveCgroup::join_fds)
        .unwrap_or_default();
    let v1_joined = !cgroup_join.is_empty();
    let (child, pidfd) = match sys::clone_fork(armed.clone_flags, into).map_err(sys_err("clone"))? {
        Forked::Child => {
            drop(release_w);
            drop(status_r);
            drop(result_r);
            drop(sigfd);
            child_main(
                armed,
                ChildFds {
                    release: release_r,
                    status: status_w,
                    result: result_w,
                    cgroup_join,
                },
            )
        }
        Forked::Parent { pid, pidfd } => (pid, pidfd),
    };
    drop(release_r);
    drop(status_w);
    drop(result_w);

    // 3. Maps (only the parent namespace may write them), then release the child.
    if let Some(maps) = &armed.identity.maps {
        if let Err(e) = namespaces::write_id_maps(child, maps) {
            let _ = sys::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
            let _ = waitpid(child, None);
            return Err(LaunchError::Maps(e));
        }
    }
    // EPIPE: the child already failed and exited; its message is on the status pipe, which
    // the wait loop reads, so it is not an error here.
    let release = |fd: &OwnedFd| match sys::write_all(fd.as_fd(), b"1") {
        Ok(()) | Err(Errno::EPIPE) => Ok(()),
        Err(e) => Err(LaunchError::Sys {
            step: "release child",
            source: e,
        }),
    };
    release(&release_w)?;
    // The child builds its filesystem meanwhile; a v1 attach may wait for an RCU grace period.
    let mut attach_error = None;
    if let Some(cg) = &cgroup {
        if let Err(e) = cg.attach(child, placement, v1_joined) {
            // The wait loop still collects a failure the child may have reported first.
            let _ = sys::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
            attach_error = Some(e);
        }
    }
    if let Some(cg) = &mut cgroup {
        cg.close_join_fds();
    }
    if attach_error.is_none() {
        release(&release_w)?;
    }
    drop(release_w);

    let mut outcome = wait_loop(
        armed,
        child,
        &pidfd,
        status_r,
        result_r,
        &sigfd,
        start,
        cgroup.as_mut(),
    );
    if let (Some(e), None) = (attach_error, &outcome.failure) {
        if let Some(cg) = cgroup.take() {
            let _ = cg.teardown();
        }
        return Err(LaunchError::Cgroup(e));
    }
    if let Some(mut cg) = cgroup.take() {
        outcome.usage = Some(cg.observe());
        outcome.oom = cg.oom_killed().map(|o| o.message());
        outcome.cgroup_notes = cg.notes().to_vec();
        // Ends whatever is left (processes outside the pid namespace, double forks).
        cg.teardown()?;
    }
    if let Some(changes) = host_changes {
        outcome.warnings.extend(changes.undo());
    }
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&previous_mask), None);
    outcome.wall = start.elapsed();
    Ok(outcome)
}

#[allow(clippy::too_many_arguments)]
fn wait_loop(
    armed: &Armed,
    child: Pid,
    pidfd: &OwnedFd,
    status_r: OwnedFd,
    result_r: OwnedFd,
    sigfd: &SignalFd,
    start: Instant,
    mut cgroup: Option<&mut ActiveCgroup>,
) -> Outcome {
    let deadline = armed.timeout.map(|t| start + t);
    let mut status_r = Some(status_r);
    let mut message = Vec::new();
    let mut observation = Observation::default();
    let mut timed_out = false;
    let mut forwarded_list = Vec::new();
    let mut child_exited = false;
    let mut result_r = Some(result_r);
    let mut ended = None;
    // init reports the payload's status once the sandbox is empty; its own exit (the
    // namespace teardown) is not waited for then.
    while !child_exited && ended.is_none() {
        if let Some(cg) = cgroup.as_deref_mut() {
            cg.sample();
        }
        // With a cgroup, wake up now and then to sample usage that v1 keeps no peak of.
        let sample_every = cgroup.as_ref().map(|_| Duration::from_millis(100));
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let timeout = match (left, sample_every) {
            (Some(l), Some(s)) => Some(l.min(s)),
            (l, s) => l.or(s),
        };
        let timeout = match timeout {
            Some(t) => PollTimeout::try_from(t.as_millis().min(i32::MAX as u128) as i32)
                .unwrap_or(PollTimeout::MAX),
            None => PollTimeout::NONE,
        };
        let mut fds = vec![
            PollFd::new(pidfd.as_fd(), PollFlags::POLLIN),
            PollFd::new(sigfd.as_fd(), PollFlags::POLLIN),
        ];
        let status_at = status_r.as_ref().map(|s| {
            fds.push(PollFd::new(s.as_fd(), PollFlags::POLLIN));
            fds.len() - 1
        });
        let result_at = result_r.as_ref().map(|r| {
            fds.push(PollFd::new(r.as_fd(), PollFlags::POLLIN));
            fds.len() - 1
        });
        match poll(&mut fds, timeout) {
            Err(Errno::EINTR) => continue,
            Err(_) => break,
            Ok(0) => {
                if deadline.is_some_and(|d| Instant::now() >= d) && !timed_out {
                    timed_out = true;
                    // Killing init ends the whole pid namespace.
                    let _ = sys::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
                    if let Some(p) = observation.payload_pid {
                        // Without a pid namespace, the payload's process group too (it is
                        // its own session leader when the process layer is on).
                        let _ = nix::sys::signal::kill(Pid::from_raw(-p), Signal::SIGKILL);
                        let _ = nix::sys::signal::kill(Pid::from_raw(p), Signal::SIGKILL);
                    }
                    // Every process in the cgroup, double forks outside the pid ns included.
                    if let Some(cg) = cgroup.as_deref() {
                        let _ = cg.kill_all();
                    }
                }
                continue;
            }
            Ok(_) => {}
        }
        let ready = |i: usize| {
            fds.get(i)
                .and_then(|f| f.revents())
                .is_some_and(|r| !r.is_empty())
        };
        let (pid_ready, sig_ready) = (ready(0), ready(1));
        let status_ready = status_at.is_some_and(ready);
        let result_ready = result_at.is_some_and(ready);
        drop(fds);
        if sig_ready {
            while let Ok(Some(info)) = sigfd.read_signal() {
                let sig = info.ssi_signo as i32;
                forwarded_list.push(sig);
                let _ = sys::pidfd_send_signal(pidfd.as_fd(), sig);
            }
        }
        if status_ready {
            let mut buf = [0u8; 1024];
            let fd = status_r.as_ref().expect("polled status pipe is open");
            match nix::unistd::read(fd.as_fd(), &mut buf) {
                Ok(0) => {
                    status_r = None;
                    if message.is_empty() {
                        // EOF without a message: execve succeeded.
                        observation = if armed.observe {
                            observe::observe(child, &armed.plan)
                        } else if armed.timeout.is_some() {
                            // Only the pid, which the timeout needs.
                            Observation {
                                payload_pid: observe::payload_of(child),
                                ..Observation::default()
                            }
                        } else {
                            Observation::default()
                        };
                    }
                }
                Ok(n) => message.extend_from_slice(&buf[..n]),
                Err(Errno::EINTR) | Err(Errno::EAGAIN) => {}
                Err(_) => status_r = None,
            }
        }
        if result_ready {
            let fd = result_r.take().expect("polled result pipe is open");
            ended = read_result(&fd);
        }
        if pid_ready {
            child_exited = true;
        }
    }
    // With a cgroup, its teardown needs init gone anyway: waiting for the exit here is
    // quicker than polling the cgroup until it empties.
    let wait = if child_exited || cgroup.is_some() {
        loop {
            match waitpid(child, None) {
                Err(Errno::EINTR) => continue,
                other => break other,
            }
        }
    } else {
        // init is exiting; a zombie left here is reaped by whoever inherits it.
        waitpid(child, Some(WaitPidFlag::WNOHANG))
    };
    // Drain whatever the status pipe still holds (the payload may have failed fast).
    if let Some(fd) = status_r.take() {
        let mut buf = [0u8; 1024];
        while let Ok(n) = nix::unistd::read(fd.as_fd(), &mut buf) {
            if n == 0 {
                break;
            }
            message.extend_from_slice(&buf[..n]);
        }
    }
    if let Some(fd) = result_r.take() {
        ended = read_result(&fd);
    }
    let mut failure = (!message.is_empty()).then(|| ChildFailure::decode(&message));
    if failure.is_none() && ended.is_none() && !timed_out {
        // init died before reporting the payload's status, without a message.
        let what = match wait {
            Ok(WaitStatus::Exited(_, c)) => format!("exited with {c}"),
            Ok(WaitStatus::Signaled(_, s, _)) => format!("was killed by {s:?}"),
            _ => "vanished".to_string(),
        };
        failure = Some(ChildFailure {
            layer: "init".into(),
            step: format!("sandbox init {what} before the payload's status was known"),
            errno: Errno::UnknownErrno,
            detail: String::new(),
        });
    }
    // init exits with the code it reports; its own status counts when it reported none.
    let init_code = match (ended, wait) {
        (Some(e), _) => e.exit_code(),
        (None, Ok(WaitStatus::Exited(_, c))) => c,
        (None, Ok(WaitStatus::Signaled(_, s, _))) => 128 + s as i32,
        _ => crate::sandbox::EXIT_SETUP_FAILED,
    };
    let exit_code = if timed_out {
        124
    } else if let Some(f) = &failure {
        match f.layer.as_str() {
            "exec" => init_code,
            _ => crate::sandbox::EXIT_SETUP_FAILED,
        }
    } else if let Some(e) = ended {
        e.exit_code()
    } else {
        init_code
    };
    Outcome {
        ended,
        failure,
        timed_out,
        signals_forwarded: forwarded_list,
        observation,
        usage: None,
        oom: None,
        cgroup_notes: Vec::new(),
        warnings: Vec::new(),
        wall: Duration::ZERO,
        exit_code,
    }
}

/// The payload's status as init reports it: 8 bytes, or nothing if init died first.
fn read_result(fd: &OwnedFd) -> Option<Ended> {
    let mut result = [0u8; 8];
    loop {
        match nix::unistd::read(fd.as_fd(), &mut result) {
            Err(Errno::EINTR) => continue,
            Ok(8) => return Ended::decode(&result),
            _ => return None,
        }
    }
}
