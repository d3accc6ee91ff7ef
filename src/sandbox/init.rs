//! lasagna's init: pid 1 of the sandbox's pid namespace. It starts the payload, forwards
//! the supervisor's signals to it, reaps every child (orphans included), and exits with the
//! payload's status once the payload is gone. In a pid namespace it first kills and reaps
//! every other process in it, so its report means the sandbox is empty. The payload is never
//! pid 1, so it keeps default signal semantics.

use std::os::fd::AsFd;

use nix::errno::Errno;
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::{fail, payload_main, EXIT_SETUP_FAILED};
use crate::arm::{Armed, ChildFds};
use crate::launch::At;
use crate::launch::ChildError;
use crate::sys;

/// Signals the supervisor forwards to the payload (through init).
pub const FORWARDED: [Signal; 7] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
];

/// The set init waits on: forwarded signals and SIGCHLD.
pub fn waited_signals() -> SigSet {
    let mut set = SigSet::empty();
    for s in FORWARDED {
        set.add(s);
    }
    set.add(Signal::SIGCHLD);
    set
}

/// How the payload ended, as sent to the supervisor over the result pipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    Exited(i32),
    Signaled(i32),
}

impl Ended {
    /// The shell-style exit code: the status, or 128+N for signal N.
    pub fn exit_code(self) -> i32 {
        match self {
            Ended::Exited(c) => c,
            Ended::Signaled(s) => 128 + s,
        }
    }
}

/// The result message init sends the supervisor: how the payload ended, the CPU time
/// (microseconds) and the largest resident set (bytes) the kernel accounted to the
/// payload's process and the children it reaped (`wait4`'s rusage). The payload's address
/// space is gone by then (a zombie has no memory map), so its resident peak is the one
/// memory figure that outlives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finished {
    pub ended: Ended,
    pub cpu_usec: u64,
    pub peak_rss: u64,
}

impl Finished {
    pub const LEN: usize = 24;

    pub fn encode(self) -> [u8; Self::LEN] {
        let (kind, value) = match self.ended {
            Ended::Exited(c) => (1u32, c as u32),
            Ended::Signaled(s) => (2u32, s as u32),
        };
        let mut out = [0u8; Self::LEN];
        out[..4].copy_from_slice(&kind.to_le_bytes());
        out[4..8].copy_from_slice(&value.to_le_bytes());
        out[8..16].copy_from_slice(&self.cpu_usec.to_le_bytes());
        out[16..].copy_from_slice(&self.peak_rss.to_le_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<Finished> {
        if bytes.len() != Self::LEN {
            return None;
        }
        let word = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap_or([0; 8]));
        let kind = u32::from_le_bytes(bytes[..4].try_into().ok()?);
        let value = u32::from_le_bytes(bytes[4..8].try_into().ok()?) as i32;
        let ended = match kind {
            1 => Ended::Exited(value),
            2 => Ended::Signaled(value),
            _ => return None,
        };
        Some(Finished {
            ended,
            cpu_usec: word(8),
            peak_rss: word(16),
        })
    }
}

pub fn run(
    armed: &Armed,
    fds: ChildFds,
    children: Option<std::os::fd::OwnedFd>,
    one: sys::OneThread,
) -> ! {
    // 5. Block what init waits for, its own session, subreaper; fork the payload; init's
    //    own filter after the fork (filters are inherited).
    let waited = waited_signals();
    if let Err(e) = waited.thread_block() {
        fail(
            &fds.status,
            ChildError::new(At::InitSignals, "block signals", e),
            EXIT_SETUP_FAILED,
        );
    }
    // Our own session: the terminal's signals reach lasagna only, which forwards them once.
    let _ = nix::unistd::setsid();
    // Without a pid namespace, orphans are still reparented to us and reaped.
    let _ = nix::sys::prctl::set_child_subreaper(true);
    let payload = match sys::fork(&one) {
        Ok(None) => payload_main(armed, &fds.status, fds.denials.as_ref()),
        Ok(Some(pid)) => pid,
        Err(e) => fail(
            &fds.status,
            ChildError::new(At::ForkPayload, "fork payload", e),
            EXIT_SETUP_FAILED,
        ),
    };
    // init's own filter: only what reaping and forwarding need. Filters are inherited, so
    // this comes after the payload's fork.
    if let Some(filter) = &armed.init_seccomp {
        let installed = nix::sys::prctl::set_no_new_privs()
            .map_err(|e| ChildError::new(At::InitSeccomp, "init no_new_privs", e))
            .and_then(|()| crate::layers::seccomp::install_at(filter, At::InitSeccomp));
        if let Err(e) = installed {
            let _ = kill(payload, Signal::SIGKILL);
            fail(&fds.status, e, EXIT_SETUP_FAILED);
        }
    }
    // Our copy of the status pipe closes: the supervisor sees EOF once the payload execs.
    let ChildFds {
        release,
        status,
        result,
        denials,
        ..
    } = fds;
    drop(status);
    drop(release);
    drop(denials);
    let finished = wait_for(payload, &waited);
    end_the_rest(children.as_ref());
    let _ = sys::write_all(result.as_fd(), &finished.encode());
    sys::exit_now(finished.ended.exit_code())
}

/// Kill what the payload left behind and reap it before reporting: once the supervisor
/// reads the result, no process of the sandbox runs. As pid 1 of the sandbox's pid
/// namespace, `kill(-1)` reaches every process in it. Without a pid namespace that would
/// reach every process of the user on the host, so init (a child subreaper: every orphan
/// of the payload's tree is reparented to it) kills its own children, read from its
/// `children` file, round after round until none is left.
fn end_the_rest(children: Option<&std::os::fd::OwnedFd>) {
    if nix::unistd::getpid() == Pid::from_raw(1) {
        // init holds CAP_KILL in the sandbox's user namespace (or is real root without
        // one), so the signal reaches every process here; ESRCH means there was none.
        if kill(Pid::from_raw(-1), Signal::SIGKILL).is_ok() {
            // Orphans are reparented to us before their parent is reaped: ECHILD means
            // none is left.
            while let Ok(_) | Err(Errno::EINTR) = waitpid(None, None) {}
        }
        return;
    }
    let Some(children) = children else { return };
    let mut buf = [0u8; 4096];
    for _ in 0..10_000 {
        let n = match nix::sys::uio::pread(children, &mut buf, 0) {
            Ok(n) => n,
            Err(_) => return,
        };
        let mut any = false;
        // Space-separated pids; a pid cut at the end of the buffer is read next round.
        let complete = buf[..n]
            .iter()
            .rposition(|b| *b == b' ')
            .map_or(0, |i| i + 1);
        for word in buf[..complete].split(|b| *b == b' ') {
            let pid = word
                .iter()
                .try_fold(0i32, |acc, d| {
                    d.is_ascii_digit()
                        .then(|| acc.wrapping_mul(10).wrapping_add((d - b'0') as i32))
                })
                .filter(|p| *p > 0);
            if let Some(pid) = pid {
                any = true;
                // Our own unreaped child: its pid cannot have been reused.
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
        if !any {
            // Nothing listed; reap what may still be exiting.
            while let Ok(s) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                if s == WaitStatus::StillAlive {
                    break;
                }
            }
            return;
        }
        // Reap what was killed; its own children are reparented to us meanwhile.
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => {
                    // Killed but not yet dead: wait for one.
                    let _ = waitpid(None, None);
                    break;
                }
                Ok(_) => continue,
                Err(Errno::EINTR) => continue,
                Err(_) => break,
            }
        }
    }
}

/// How the payload ended, with its CPU time and resident peak (`wait4`'s rusage: the
/// payload's process and the children it reaped itself).
fn wait_for(payload: Pid, waited: &SigSet) -> Finished {
    loop {
        let sig = match waited.wait() {
            Ok(s) => s,
            Err(_) => continue,
        };
        if sig != Signal::SIGCHLD {
            let _ = kill(payload, sig);
            continue;
        }
        loop {
            match sys::reap_any(false) {
                Ok(Some(r)) if r.pid == payload => {
                    let ended = match r.status {
                        WaitStatus::Exited(_, code) => Ended::Exited(code),
                        WaitStatus::Signaled(_, s, _) => Ended::Signaled(s as i32),
                        _ => continue,
                    };
                    return Finished {
                        ended,
                        cpu_usec: r.cpu_usec,
                        peak_rss: r.peak_rss,
                    };
                }
                Ok(None) | Err(_) => break,
                Ok(Some(_)) => {}
            }
        }
    }
}
