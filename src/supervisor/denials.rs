//! `--explain-denials`: what the payload was refused, by layer. One thread, started after
//! the clone (the supervisor is single-threaded until then), serves two sources:
//!
//! - seccomp: the payload passes out the listener of its notifying filter (step 9); each
//!   notification is answered with the errno the original filter gives and counted by
//!   call and errno. The payload can tell (README): a signal before the read interrupts
//!   the call; after it the wait is killable only (Linux 5.19), so nothing is counted twice;
//! - Landlock: the kernel's audit records, from a socket opened before the clone, kept for
//!   the domains the payload's process created.
//!
//! Nothing of this exists without the flag.

use std::collections::BTreeMap;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use seccompiler::sock_filter;
use serde::Serialize;

use crate::launch::Layer;
use crate::layers::landlock::audit::{self, Record};
use crate::layers::seccomp::notify;
use crate::sys;

/// One kind of denial and how often the payload met it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Denial {
    pub layer: Layer,
    /// The system call (seccomp) or the access right (Landlock: `fs.read_file`,
    /// `net.connect_tcp`, ...).
    pub operation: String,
    /// The path or address (Landlock).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// What the call returned (seccomp).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errno: Option<String>,
    pub count: u64,
}

pub struct Settings {
    /// The supervisor's end of the socketpair the payload passes its listener on.
    pub channel: Option<OwnedFd>,
    /// The payload's original filter, to find each call's errno.
    pub program: Vec<sock_filter>,
    /// The audit log socket (Landlock).
    pub audit: Option<OwnedFd>,
}

pub struct Running {
    stop: OwnedFd,
    thread: JoinHandle<Collected>,
}

/// What the thread saw, bounded whatever the payload does: at most [`MAX_CALLS`] kinds of
/// denied call (a payload can name 2^32 syscall numbers) and the Landlock [`audit::Tally`]'s
/// bound; the rest is counted only.
#[derive(Default)]
struct Collected {
    seccomp: BTreeMap<(String, i32), u64>,
    /// Denied calls of kinds beyond [`MAX_CALLS`].
    seccomp_unlisted: u64,
    landlock: audit::Tally,
}

/// Distinct (call, errno) kinds kept.
const MAX_CALLS: usize = 256;
/// After the run: audit records are delivered by a kernel thread, a little later than the
/// denial. The thread waits for this much quiet, at most `LAG_MAX` in all.
const LAG_QUIET: Duration = Duration::from_millis(100);
const LAG_MAX: Duration = Duration::from_secs(1);

pub fn start(settings: Settings) -> io::Result<Running> {
    let (stop_r, stop_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let thread = std::thread::Builder::new()
        .name("denials".into())
        .spawn(move || serve(settings, stop_r))?;
    Ok(Running {
        stop: stop_w,
        thread,
    })
}

impl Running {
    /// Stop serving (the sandbox is empty) and list what was denied, Landlock's for the
    /// domains `payload` created; and a note for each layer whose kinds went past the bound.
    pub fn stop(self, payload: Option<i32>) -> (Vec<Denial>, Vec<String>) {
        drop(self.stop);
        let c = self.thread.join().unwrap_or_default();
        let mut out: Vec<Denial> = c
            .seccomp
            .into_iter()
            .map(|((call, errno), count)| Denial {
                layer: Layer::Seccomp,
                operation: call,
                target: None,
                errno: Some(format!("{:?}", Errno::from_raw(errno))),
                count,
            })
            .collect();
        if let Some(pid) = payload.and_then(|p| u32::try_from(p).ok()) {
            out.extend(
                c.landlock
                    .of(pid)
                    .into_iter()
                    .map(|((what, target), count)| Denial {
                        layer: Layer::Landlock,
                        operation: what,
                        target: Some(target),
                        errno: None,
                        count,
                    }),
            );
        }
        let mut notes = Vec::new();
        if c.seccomp_unlisted > 0 {
            notes.push(format!(
                "seccomp: and {} denied calls of other kinds (only the first {MAX_CALLS} kinds are listed)",
                c.seccomp_unlisted
            ));
        }
        if c.landlock.unlisted > 0 {
            notes.push(format!(
                "landlock: and {} denials of other kinds (only the first {} kinds are listed)",
                c.landlock.unlisted,
                audit::MAX_KINDS
            ));
        }
        (out, notes)
    }
}

fn serve(settings: Settings, stop: OwnedFd) -> Collected {
    let Settings {
        mut channel,
        program,
        audit,
    } = settings;
    let mut listener: Option<OwnedFd> = None;
    let mut c = Collected::default();
    let mut stopping: Option<Instant> = None;
    let mut last_record = Instant::now();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if let Some(since) = stopping {
            let now = Instant::now();
            if audit.is_none() || now - since >= LAG_MAX || now - last_record >= LAG_QUIET {
                return c;
            }
        }
        let mut fds = Vec::with_capacity(4);
        if stopping.is_none() {
            fds.push(PollFd::new(stop.as_fd(), PollFlags::POLLIN));
        }
        let channel_at = slot(&mut fds, channel.as_ref());
        let listener_at = slot(&mut fds, listener.as_ref());
        let audit_at = slot(&mut fds, audit.as_ref());
        let timeout = if stopping.is_some() {
            PollTimeout::from(20u16)
        } else {
            PollTimeout::NONE
        };
        match poll(&mut fds, timeout) {
            Err(Errno::EINTR) | Ok(0) => continue,
            Err(_) => return c,
            Ok(_) => {}
        }
        let events = |i: Option<usize>| {
            i.and_then(|i| fds.get(i))
                .and_then(|f| f.revents())
                .unwrap_or(PollFlags::empty())
        };
        let stop_ev = if stopping.is_none() {
            events(Some(0))
        } else {
            PollFlags::empty()
        };
        let (channel_ev, listener_ev, audit_ev) =
            (events(channel_at), events(listener_at), events(audit_at));
        drop(fds);
        if !stop_ev.is_empty() {
            stopping = Some(Instant::now());
            last_record = Instant::now();
        }
        if !channel_ev.is_empty() {
            if let Some(ch) = channel.take() {
                if let Ok(Some(fd)) = sys::recv_fd(ch.as_fd()) {
                    listener = Some(fd);
                }
            }
        }
        if listener_ev.contains(PollFlags::POLLIN) {
            if let Some(l) = &listener {
                answer(l, &program, &mut c);
            }
        } else if !listener_ev.is_empty() {
            // POLLHUP: every task of the filter is gone.
            listener = None;
        }
        if !audit_ev.is_empty() {
            if let Some(a) = &audit {
                if read_records(a, &mut buf, &mut c) {
                    last_record = Instant::now();
                }
            }
        }
    }
}

/// Poll `fd` too, when there is one; its index.
fn slot<'a>(fds: &mut Vec<PollFd<'a>>, fd: Option<&'a OwnedFd>) -> Option<usize> {
    let f = fd?;
    fds.push(PollFd::new(f.as_fd(), PollFlags::POLLIN));
    Some(fds.len() - 1)
}

/// One notification: the errno the original filter gives, counted.
fn answer(listener: &OwnedFd, program: &[sock_filter], c: &mut Collected) {
    let n = match sys::seccomp::notif_recv(listener.as_fd()) {
        Ok(n) => n,
        // The task was killed before it was read, or an interrupted wait.
        Err(_) => return,
    };
    // Only errno actions notify; a program that says otherwise is refused as EPERM.
    let errno = notify::errno_of(program, &n.data).unwrap_or(libc::EPERM);
    let _ = sys::seccomp::notif_fail(listener.as_fd(), n.id, errno);
    let key = (notify::call_name(&n.data), errno);
    if let Some(count) = c.seccomp.get_mut(&key) {
        *count += 1;
    } else if c.seccomp.len() < MAX_CALLS {
        c.seccomp.insert(key, 1);
    } else {
        c.seccomp_unlisted += 1;
    }
}

/// Everything the audit socket holds now; whether a Landlock record came.
fn read_records(sock: &OwnedFd, buf: &mut [u8], c: &mut Collected) -> bool {
    let mut any = false;
    loop {
        let n = match nix::sys::socket::recv(
            sock.as_raw_fd(),
            buf,
            nix::sys::socket::MsgFlags::MSG_DONTWAIT,
        ) {
            Ok(0) | Err(_) => return any,
            Ok(n) => n,
        };
        for (kind, body) in audit::messages(&buf[..n]) {
            if let Some(r) = Record::parse(kind, body) {
                any = true;
                c.landlock.add(&r);
            }
        }
    }
}
