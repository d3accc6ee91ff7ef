//! The supervisor: host side of a run. It stays single-threaded until the clone, then
//! writes the id maps, releases the child, and waits on one poll loop (status pipe,
//! pidfd, signalfd, timeout): it forwards signals, enforces the timeout, observes what the
//! kernel applied, and collects the payload's status.
//!
//! Nothing here runs in the child: the child's code is in `sandbox`.

pub mod denials;
pub mod hostids;
pub mod verdict;

use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::arm::{Armed, ChildFds};
use crate::launch::At;
use crate::layers::cgroups::{self, ActiveCgroup, CgroupError, Placement, Usage};
use crate::layers::network::{pasta, proxy};
use crate::layers::{filesystem, namespaces};
use crate::observe::{self, Observation};
use crate::sandbox::child_main;
use crate::sandbox::init::{waited_signals, Ended, Finished, FORWARDED};
use crate::sys::{self, Forked};

/// A failure reported by the child before execve.
#[derive(Debug, Clone)]
pub struct ChildFailure {
    /// The launch step that failed.
    pub at: At,
    /// The name it is reported under: its layer's, or `init`, `identity`, `exec`.
    pub layer: String,
    pub step: String,
    pub errno: Errno,
    pub detail: String,
}

impl ChildFailure {
    /// `at\tstep\terrno\tdetail` (after the `F` that starts a failure record).
    fn decode(bytes: &[u8]) -> ChildFailure {
        let text = String::from_utf8_lossy(bytes);
        let mut parts = text.splitn(4, '\t');
        let at = parts
            .next()
            .and_then(|n| n.parse::<u8>().ok())
            .and_then(At::from_byte)
            .unwrap_or(At::WaitRelease);
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
            at,
            layer: at.label().to_string(),
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

pub use crate::layers::landlock::LandlockSeen;

/// The status pipe's records: `L…\n` (Landlock's status, from the payload), then at most
/// one `F…` failure (the writer exits after it). EOF with no failure: execve succeeded.
fn decode_status(bytes: &[u8]) -> (Option<LandlockSeen>, Option<ChildFailure>) {
    let mut landlock = None;
    let mut rest = bytes;
    while let Some((&kind, body)) = rest.split_first() {
        match kind {
            b'L' => {
                let end = body.iter().position(|b| *b == b'\n').unwrap_or(body.len());
                landlock = crate::layers::landlock::decode_status(&body[..end]);
                rest = body.get(end + 1..).unwrap_or(&[]);
            }
            b'F' => return (landlock, Some(ChildFailure::decode(body))),
            _ => break,
        }
    }
    (landlock, None)
}

/// How a run ended.
#[derive(Debug)]
pub struct Outcome {
    pub ended: Option<Ended>,
    pub failure: Option<ChildFailure>,
    pub timed_out: bool,
    pub signals_forwarded: Vec<i32>,
    pub observation: Observation,
    /// What the payload's Landlock step saw the kernel enforce.
    pub landlock: Option<LandlockSeen>,
    /// Usage of the sandbox's cgroup, when the cgroups layer made one.
    pub usage: Option<Usage>,
    /// `killed: memory limit 256 MiB reached`, when the kernel OOM-killed in the cgroup.
    pub oom: Option<String>,
    /// CPU time of the payload's process (and the children it reaped), from init's `wait4`.
    pub payload_cpu_usec: Option<u64>,
    /// The largest resident set of the same, in bytes.
    pub payload_peak_rss: Option<u64>,
    /// Every limit the run met, the one that ended it first.
    pub limits: Vec<verdict::LimitHit>,
    /// `--explain-denials`: what the payload was refused, by layer.
    pub denials: Option<Vec<denials::Denial>>,
    /// `--explain-denials`: what could not be listed, and why.
    pub denial_notes: Vec<String>,
    /// What the cgroups layer did outside its own cgroup (e.g. subtree_control).
    pub cgroup_notes: Vec<String>,
    /// What went wrong around the payload without changing its outcome (a cgroup that
    /// could not be removed, an entry left in a host directory, init stopped by someone).
    pub warnings: Vec<String>,
    /// The host uid and gid picked for this run (`host-uid: auto`).
    pub host_ids: Option<u32>,
    /// `net: proxy`: every connection the sandbox made to the proxy.
    pub connections: Vec<proxy::Connection>,
    /// Connections beyond the log's size, counted only.
    pub connections_unlogged: u64,
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
    #[error("namespaces: {0}")]
    HostIds(String),
    #[error("network: {0}")]
    Network(String),
    #[error("the supervisor has {0} threads before the clone; a clone of a multi-threaded process can deadlock the child")]
    Threads(u64),
}

/// Proof that the supervisor runs one thread, which a clone needs (the idmapped trees'
/// user namespaces, the sandbox itself).
fn one_thread() -> Result<sys::OneThread, LaunchError> {
    match sys::OneThread::check() {
        Ok(one) => Ok(one),
        Err(sys::NotOneThread::Threads(n)) => Err(LaunchError::Threads(n)),
        Err(sys::NotOneThread::Unknown(e)) => Err(sys_err("count threads")(e)),
    }
}

fn sys_err(step: &'static str) -> impl FnOnce(Errno) -> LaunchError {
    move |source| LaunchError::Sys { step, source }
}

/// How long the supervisor gives init to report once the payload is gone (it may still
/// be killing what the payload left), or once a timeout killed the payload.
const INIT_GRACE: Duration = Duration::from_secs(5);

/// Start the sandbox and wait for it. `armed` was fully prepared; nothing is created
/// before this function. It returns when nothing it created is left: init is reaped, its
/// cgroup and what it made in host directories are removed.
pub fn launch(armed: &mut Armed) -> Result<Outcome, LaunchError> {
    let start = Instant::now();
    // 1. `host-uid: auto`: a host uid of this run's own, locked until it ends.
    let picked = match armed.identity.pick_host_ids {
        Some((first, last)) => {
            let p = hostids::pick(first, last).map_err(LaunchError::HostIds)?;
            armed.identity.set_host_ids(p.id, p.id);
            armed.host_owner = armed.identity.host_ids_if_root();
            Some(p)
        }
        None => None,
    };
    let armed: &Armed = armed;
    // 1. Mount points a profile entry needs inside a bound host directory, made through
    //    descriptors (the plan walked there without following links) and undone after.
    let host_changes = if armed.host_creates.is_empty() {
        None
    } else {
        Some(
            filesystem::HostChanges::apply(
                &armed.host_creates,
                armed.host_owner,
                &armed
                    .filesystem
                    .iter()
                    .flat_map(|fs| &fs.trees)
                    .filter_map(|t| t.owner.map(|o| (t.source.clone(), o)))
                    .collect::<Vec<_>>(),
            )
            .map_err(LaunchError::HostFs)?,
        )
    };
    //    As root, the binds' trees: the supervisor opens each source (the caller chose it),
    //    and only init's user namespace may idmap a host filesystem; the child attaches.
    let trees = match &armed.filesystem {
        Some(fs) if !fs.trees.is_empty() => {
            let one = one_thread()?;
            let mut warnings = Vec::new();
            let trees =
                filesystem::idmap::make_trees(&fs.trees, armed.host_owner, &one, &mut warnings)
                    .map_err(LaunchError::HostFs)?;
            for w in warnings {
                eprintln!("lasagna: warning: {w}");
            }
            Some(trees)
        }
        _ => None,
    };
    let mut trees = trees;
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
    // `net: proxy`: the child passes its listener out on this socketpair (step 4e).
    let (proxy_ours, proxy_theirs) = match &armed.proxy {
        Some(_) => {
            let (a, b) = unix_pair()?;
            (Some(a), Some(b))
        }
        None => (None, None),
    };
    // `--explain-denials`: the payload passes its filter's listener out on this socketpair
    // (step 9); Landlock's audit records are read from a socket opened now.
    let (denials_ours, denials_theirs) = match &armed.seccomp {
        Some(s) if armed.explain_denials && s.notifies() => {
            let (a, b) = unix_pair()?;
            (Some(a), Some(b))
        }
        _ => (None, None),
    };
    let mut denial_notes = Vec::new();
    let audit = match &armed.landlock {
        Some(l) if armed.explain_denials => {
            match crate::layers::landlock::audit::open_reader(l.abi) {
                Ok(sock) => Some(sock),
                Err(why) => {
                    denial_notes.push(why);
                    None
                }
            }
        }
        _ => None,
    };

    // Signals to forward are blocked and read from a signalfd, with SIGCHLD (init stopped
    // or gone); init inherits the mask.
    let waited = waited_signals();
    let mut previous_mask = SigSet::empty();
    nix::sys::signal::sigprocmask(
        SigmaskHow::SIG_BLOCK,
        Some(&waited),
        Some(&mut previous_mask),
    )
    .map_err(sys_err("block signals"))?;
    let mut watched = SigSet::empty();
    for s in FORWARDED {
        watched.add(s);
    }
    watched.add(Signal::SIGCHLD);
    let sigfd = SignalFd::with_flags(&watched, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(sys_err("create signalfd"))?;

    if armed.identity.maps.is_some() && nix::unistd::geteuid().is_root() {
        // Root's supplementary groups would be inherited by the sandbox and still count
        // for host permission checks; setgroups is denied inside, so drop them here.
        nix::unistd::setgroups(&[]).map_err(sys_err("drop supplementary groups"))?;
    }

    // 2. Clone with the namespace flags. The process must be single-threaded here: the
    //    child is a copy of this one thread, and a lock another thread held stays held.
    let one = one_thread()?;
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
    let (child, pidfd) =
        match sys::clone_fork(&one, armed.clone_flags, into).map_err(sys_err("clone"))? {
            Forked::Child(one) => {
                drop(release_w);
                drop(status_r);
                drop(result_r);
                drop(sigfd);
                drop(proxy_ours);
                drop(denials_ours);
                drop(audit);
                child_main(
                    armed,
                    ChildFds {
                        release: release_r,
                        status: status_w,
                        result: result_w,
                        cgroup_join,
                        proxy: proxy_theirs,
                        denials: denials_theirs,
                        trees: trees.take().unwrap_or_default(),
                    },
                    one,
                )
            }
            Forked::Parent { pid, pidfd } => (pid, pidfd),
        };
    drop(release_r);
    drop(status_w);
    drop(result_w);
    drop(proxy_theirs);
    drop(denials_theirs);
    drop(trees.take());
    let mut sandbox = Sandbox {
        init: child,
        pidfd,
        reaped: false,
    };

    // 3. Maps (only the parent namespace may write them), then release the child.
    if let Some(maps) = &armed.identity.maps {
        if let Err(e) = namespaces::write_id_maps(child, maps) {
            let _ = sys::pidfd_send_signal(sandbox.pidfd.as_fd(), libc::SIGKILL);
            sandbox.reap();
            // The child may have failed first (the maps then find it gone): its own message
            // is the cause.
            let (_, failure) = decode_status(&drain(&status_r));
            restore_mask(&previous_mask);
            return match failure {
                Some(f) => Ok(setup_failed(f, start)),
                None => Err(LaunchError::Maps(e)),
            };
        }
    }
    //    The network: the proxy's thread receives the listener the child opens at 4e;
    //    pasta attaches to the child's namespaces through descriptors.
    let (proxy, mut pasta) = match start_network(armed, child, proxy_ours) {
        Ok(started) => started,
        Err(e) => {
            sandbox.kill();
            sandbox.reap();
            restore_mask(&previous_mask);
            return Err(e);
        }
    };
    //    --explain-denials: the thread that answers the payload's filter and reads the
    //    audit records. Without it a denied call would wait forever: no thread, no run.
    let denials_running = match (denials_ours, audit) {
        (None, None) => None,
        (channel, audit) => match denials::start(denials::Settings {
            channel,
            program: armed
                .seccomp
                .as_ref()
                .map(|s| s.program().to_vec())
                .unwrap_or_default(),
            audit,
        }) {
            Ok(r) => Some(r),
            Err(e) => {
                sandbox.kill();
                sandbox.reap();
                restore_mask(&previous_mask);
                return Err(LaunchError::Sys {
                    step: "start the thread that explains denials",
                    source: e.raw_os_error().map_or(Errno::EAGAIN, Errno::from_raw),
                });
            }
        },
    };
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
            let _ = sys::pidfd_send_signal(sandbox.pidfd.as_fd(), libc::SIGKILL);
            attach_error = Some(e);
        }
    }
    if let Some(cg) = &mut cgroup {
        cg.close_join_fds();
    }
    // pasta's interface is up with its route before the payload can start.
    let mut network_error = None;
    if let (Some(p), None) = (pasta.as_mut(), &attach_error) {
        if let Err(e) = p.wait_ready(child.as_raw()) {
            sandbox.kill();
            network_error = Some(e);
        }
    }
    if attach_error.is_none() && network_error.is_none() {
        release(&release_w)?;
    }
    drop(release_w);

    let mut outcome = wait_loop(
        armed,
        &mut sandbox,
        status_r,
        result_r,
        &sigfd,
        start,
        cgroup.as_mut(),
    );
    // The network is stopped first: the proxy's log is final once its threads are done.
    if let Some(p) = proxy {
        let log = p.stop();
        outcome.connections = log.connections;
        outcome.connections_unlogged = log.unlogged;
    }
    drop(pasta.take());
    if armed.explain_denials {
        let (listed, note) = denials_running
            .map(|d| d.stop(outcome.observation.payload_pid))
            .unwrap_or_default();
        outcome.denials = Some(listed);
        denial_notes.extend(note);
    }
    outcome.denial_notes = denial_notes;
    if let (Some(e), None) = (attach_error, &outcome.failure) {
        if let Some(cg) = cgroup.take() {
            let _ = cg.teardown();
        }
        sandbox.reap();
        restore_mask(&previous_mask);
        return Err(LaunchError::Cgroup(e));
    }
    // The child was killed for it: its own report of that is not the cause.
    if let Some(e) = network_error {
        if let Some(cg) = cgroup.take() {
            let _ = cg.teardown();
        }
        sandbox.reap();
        restore_mask(&previous_mask);
        return Err(LaunchError::Network(e));
    }
    let mut facts = verdict::Facts {
        ended: outcome.ended,
        payload_cpu_usec: outcome.payload_cpu_usec,
        payload_peak_rss: outcome.payload_peak_rss,
        address_space: verdict::AddressSpaceBound::of(&armed.plan),
        timed_out: outcome.timed_out,
        timeout: armed.timeout,
        rlimits: armed.rlimits.clone(),
        cpu_from_rlimits_layer: armed.plan.config.rlimits.as_ref().is_some_and(|r| {
            r.limits
                .iter()
                .any(|(l, _)| *l == crate::layers::rlimits::Limit::Cpu)
        }),
        ..verdict::Facts::default()
    };
    if let Some(mut cg) = cgroup.take() {
        let usage = cg.observe();
        let oom = cg.oom_killed();
        facts.oom_kills = oom.map(|o| o.kills);
        facts.memory_max = oom.and_then(|o| o.limit);
        facts.fork_refusals = usage.fork_refusals;
        facts.pids_max = armed.cgroup.as_ref().and_then(|c| c.limits.pids_max);
        outcome.usage = Some(usage);
        outcome.oom = oom.map(|o| o.message());
        outcome.cgroup_notes = cg.notes().to_vec();
        // Ends whatever is left (processes outside the pid namespace, double forks). The
        // payload's outcome stands whatever happens here.
        if let Err(e) = cg.teardown() {
            outcome.warnings.push(e.to_string());
        }
    }
    // Nothing of the run is left to anyone: a caller that is pid 1 of its namespace (a
    // container's service) would otherwise inherit one zombie per run.
    sandbox.reap();
    if let Some(changes) = host_changes {
        outcome.warnings.extend(changes.undo());
    }
    restore_mask(&previous_mask);
    outcome.limits = verdict::decide(&facts);
    outcome.host_ids = picked.as_ref().map(|p| p.id);
    drop(picked);
    outcome.wall = start.elapsed();
    Ok(outcome)
}

/// Step 3's network part: the proxy's thread (given the socketpair's end), or pasta.
fn start_network(
    armed: &Armed,
    child: Pid,
    proxy_channel: Option<OwnedFd>,
) -> Result<(Option<proxy::Running>, Option<pasta::Running>), LaunchError> {
    let proxy = match (&armed.proxy, proxy_channel) {
        (Some(p), Some(channel)) => Some(
            proxy::start(
                channel,
                proxy::Settings {
                    allow: p.allow.clone(),
                    log_stderr: p.log_stderr,
                },
            )
            .map_err(|e| LaunchError::Network(format!("start the proxy: {e}")))?,
        ),
        _ => None,
    };
    let pasta = match &armed.pasta {
        Some(p) => Some(
            pasta::start(&p.bin, child.as_raw(), p.userns, &p.forward)
                .map_err(LaunchError::Network)?,
        ),
        None => None,
    };
    Ok((proxy, pasta))
}

/// A connected pair of unix stream sockets (close-on-exec): the supervisor's end and the
/// child's, for a descriptor the child passes out.
fn unix_pair() -> Result<(OwnedFd, OwnedFd), LaunchError> {
    nix::sys::socket::socketpair(
        nix::sys::socket::AddressFamily::Unix,
        nix::sys::socket::SockType::Stream,
        None,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
    )
    .map_err(sys_err("create socketpair"))
}

fn restore_mask(previous: &SigSet) {
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(previous), None);
}

/// Everything left on a pipe whose writers are gone.
fn drain(fd: &OwnedFd) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match nix::unistd::read(fd.as_fd(), &mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(Errno::EINTR) => continue,
            Err(_) => return out,
        }
    }
}

/// The outcome of a run that failed before the payload started.
fn setup_failed(failure: ChildFailure, start: Instant) -> Outcome {
    Outcome {
        ended: None,
        failure: Some(failure),
        timed_out: false,
        signals_forwarded: Vec::new(),
        observation: Observation::default(),
        landlock: None,
        usage: None,
        oom: None,
        payload_cpu_usec: None,
        payload_peak_rss: None,
        limits: Vec::new(),
        denials: None,
        denial_notes: Vec::new(),
        cgroup_notes: Vec::new(),
        warnings: Vec::new(),
        host_ids: None,
        connections: Vec::new(),
        connections_unlogged: 0,
        wall: start.elapsed(),
        exit_code: crate::launch::EXIT_SETUP_FAILED,
    }
}

/// The child (init) as the supervisor holds it: its pid, its pidfd, whether it is reaped.
struct Sandbox {
    init: Pid,
    pidfd: OwnedFd,
    reaped: bool,
}

impl Sandbox {
    /// Wait for init's exit and collect it (blocking).
    fn reap(&mut self) -> Option<WaitStatus> {
        if self.reaped {
            return None;
        }
        loop {
            match waitpid(self.init, None) {
                Err(Errno::EINTR) => continue,
                Ok(WaitStatus::Stopped(..)) | Ok(WaitStatus::Continued(..)) => continue,
                other => {
                    self.reaped = true;
                    return other.ok();
                }
            }
        }
    }

    fn kill(&self) {
        let _ = sys::pidfd_send_signal(self.pidfd.as_fd(), libc::SIGKILL);
    }
}

impl Drop for Sandbox {
    /// An error path must not leave init (or a zombie of it) behind.
    fn drop(&mut self) {
        if !self.reaped {
            self.kill();
            let _ = self.reap();
        }
    }
}

/// The payload, once execve succeeded: its host pid and a pidfd, so that its end is seen
/// without init's help (a stopped or killed init must not hang the run) and the timeout
/// reaches it without a pid that could have been reused.
struct Payload {
    pid: i32,
    pidfd: OwnedFd,
}

impl Payload {
    /// init's first child, as a pidfd; checked to still be init's child after the open.
    fn find(init: Pid) -> Option<Payload> {
        let pid = observe::payload_of(init)?;
        let pidfd = sys::pidfd_open(pid).ok()?;
        (observe::payload_of(init) == Some(pid)).then_some(Payload { pid, pidfd })
    }
}

fn wait_loop(
    armed: &Armed,
    sandbox: &mut Sandbox,
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
    let mut warnings = Vec::new();
    let mut init_exited = false;
    let mut result_r = Some(result_r);
    let mut finished: Option<Finished> = None;
    let mut payload: Option<Payload> = None;
    // Set when the payload is gone (or was killed) and init has not reported yet.
    let mut grace_until: Option<Instant> = None;
    let mut init_unresponsive = false;
    // init reports the payload's status once the sandbox is empty.
    while !init_exited && finished.is_none() {
        if let Some(cg) = cgroup.as_deref_mut() {
            cg.sample();
        }
        let now = Instant::now();
        if grace_until.is_some_and(|g| now >= g) {
            // init does not report: stopped for good, or stuck. It is killed, which ends
            // the pid namespace; the payload's status is not known.
            init_unresponsive = true;
            sandbox.kill();
            if let Some(cg) = cgroup.as_deref() {
                let _ = cg.kill_all();
            }
            break;
        }
        // With a cgroup, wake up now and then to sample usage that v1 keeps no peak of.
        let wakeups = [
            deadline.filter(|_| !timed_out),
            grace_until,
            cgroup.as_ref().map(|_| now + Duration::from_millis(100)),
        ];
        let timeout = match wakeups.iter().flatten().min() {
            Some(t) => PollTimeout::try_from(
                t.saturating_duration_since(now)
                    .as_millis()
                    .min(i32::MAX as u128) as i32,
            )
            .unwrap_or(PollTimeout::MAX),
            None => PollTimeout::NONE,
        };
        let mut fds = vec![
            PollFd::new(sandbox.pidfd.as_fd(), PollFlags::POLLIN),
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
        let payload_at = payload.as_ref().filter(|_| grace_until.is_none()).map(|p| {
            fds.push(PollFd::new(p.pidfd.as_fd(), PollFlags::POLLIN));
            fds.len() - 1
        });
        match poll(&mut fds, timeout) {
            Err(Errno::EINTR) => continue,
            Err(_) => break,
            Ok(0) => {
                if deadline.is_some_and(|d| Instant::now() >= d) && !timed_out {
                    timed_out = true;
                    kill_at_timeout(armed, sandbox, payload.as_ref(), cgroup.as_deref());
                    grace_until = Some(Instant::now() + INIT_GRACE);
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
        let (init_ready, sig_ready) = (ready(0), ready(1));
        let status_ready = status_at.is_some_and(ready);
        let result_ready = result_at.is_some_and(ready);
        let payload_ready = payload_at.is_some_and(ready);
        drop(fds);
        if sig_ready {
            while let Ok(Some(info)) = sigfd.read_signal() {
                let sig = info.ssi_signo as i32;
                if sig == libc::SIGCHLD {
                    // Someone stopped init (a host process of the same uid can): it is
                    // resumed, so that it reaps and reports.
                    // WSTOPPED alone: an exit is left for `reap`.
                    if let Ok(WaitStatus::Stopped(..)) = nix::sys::wait::waitid(
                        nix::sys::wait::Id::Pid(sandbox.init),
                        WaitPidFlag::WSTOPPED | WaitPidFlag::WNOHANG,
                    ) {
                        let _ = sys::pidfd_send_signal(sandbox.pidfd.as_fd(), libc::SIGCONT);
                        let w = "init was stopped by another process and resumed".to_string();
                        if !warnings.contains(&w) {
                            warnings.push(w);
                        }
                    }
                    continue;
                }
                forwarded_list.push(sig);
                let _ = sys::pidfd_send_signal(sandbox.pidfd.as_fd(), sig);
            }
        }
        if status_ready {
            let mut buf = [0u8; 1024];
            let fd = status_r.as_ref().expect("polled status pipe is open");
            match nix::unistd::read(fd.as_fd(), &mut buf) {
                Ok(0) => {
                    status_r = None;
                    if decode_status(&message).1.is_none() {
                        // EOF without a failure: execve succeeded.
                        payload = Payload::find(sandbox.init);
                        if armed.observe {
                            observation = observe::observe(sandbox.init, &armed.plan);
                        }
                        observation.payload_pid = payload.as_ref().map(|p| p.pid);
                    }
                }
                Ok(n) => message.extend_from_slice(&buf[..n]),
                Err(Errno::EINTR) | Err(Errno::EAGAIN) => {}
                Err(_) => status_r = None,
            }
        }
        if result_ready {
            let fd = result_r.take().expect("polled result pipe is open");
            finished = read_result(&fd);
        }
        if payload_ready {
            // The payload is gone; init reaps it and reports, or is given a grace to.
            grace_until = Some(Instant::now() + INIT_GRACE);
        }
        if init_ready {
            init_exited = true;
        }
    }
    // Drain whatever the status pipe still holds (the payload may have failed fast).
    if let Some(fd) = status_r.take() {
        if init_exited || init_unresponsive {
            message.extend(drain(&fd));
        }
    }
    if let Some(fd) = result_r.take() {
        if init_exited {
            finished = read_result(&fd);
        }
    }
    let ended = finished.map(|f| f.ended);
    // With a cgroup, or when init already exited or was killed, its exit is collected now
    // (teardown needs the cgroup empty); otherwise at the end of `launch`.
    let wait = if init_exited || init_unresponsive || cgroup.is_some() {
        sandbox.reap()
    } else {
        None
    };
    let (landlock, mut failure) = decode_status(&message);
    if failure.is_none() && ended.is_none() && !timed_out {
        let what = if init_unresponsive {
            format!(
                "did not report the payload's status within {} s after the payload ended, and was killed (stopped or stuck)",
                INIT_GRACE.as_secs()
            )
        } else {
            match wait {
                Some(WaitStatus::Exited(_, c)) => format!("exited with {c}"),
                Some(WaitStatus::Signaled(_, s, _)) => format!("was killed by {s:?}"),
                _ => "vanished".to_string(),
            }
        };
        failure = Some(ChildFailure {
            at: At::ForkPayload,
            layer: "init".into(),
            step: format!("sandbox init {what} before the payload's status was known"),
            errno: Errno::UnknownErrno,
            detail: String::new(),
        });
    }
    // init exits with the code it reports; its own status counts when it reported none.
    let init_code = match (ended, wait) {
        (Some(e), _) => e.exit_code(),
        (None, Some(WaitStatus::Exited(_, c))) => c,
        (None, Some(WaitStatus::Signaled(_, s, _))) => 128 + s as i32,
        _ => crate::launch::EXIT_SETUP_FAILED,
    };
    let exit_code = if timed_out {
        124
    } else if let Some(f) = &failure {
        match f.at {
            At::Exec => init_code,
            _ => crate::launch::EXIT_SETUP_FAILED,
        }
    } else if let Some(e) = ended {
        e.exit_code()
    } else {
        init_code
    };
    Outcome {
        ended,
        payload_cpu_usec: finished.map(|f| f.cpu_usec),
        payload_peak_rss: finished.map(|f| f.peak_rss),
        failure,
        timed_out,
        signals_forwarded: forwarded_list,
        observation,
        landlock,
        usage: None,
        oom: None,
        limits: Vec::new(),
        denials: None,
        denial_notes: Vec::new(),
        cgroup_notes: Vec::new(),
        warnings,
        host_ids: None,
        connections: Vec::new(),
        connections_unlogged: 0,
        wall: Duration::ZERO,
        exit_code,
    }
}

/// The timeout: with a pid namespace, killing init ends every process in it; without one
/// the payload is killed through its pidfd and init, a child subreaper, kills and reaps
/// what descends from it before it reports. The cgroup, when there is one, ends every
/// process in it. No raw pid is signalled.
fn kill_at_timeout(
    armed: &Armed,
    sandbox: &Sandbox,
    payload: Option<&Payload>,
    cgroup: Option<&ActiveCgroup>,
) {
    if armed.plan.has(crate::layers::namespaces::Kind::Pid) {
        sandbox.kill();
    } else if let Some(p) = payload {
        let _ = sys::pidfd_send_signal(p.pidfd.as_fd(), libc::SIGKILL);
    } else {
        sandbox.kill();
    }
    if let Some(cg) = cgroup {
        let _ = cg.kill_all();
    }
}

/// The payload's end as init reports it, or nothing if init died first.
fn read_result(fd: &OwnedFd) -> Option<Finished> {
    let mut result = [0u8; Finished::LEN];
    loop {
        match nix::unistd::read(fd.as_fd(), &mut result) {
            Err(Errno::EINTR) => continue,
            Ok(Finished::LEN) => return Finished::decode(&result),
            _ => return None,
        }
    }
}
