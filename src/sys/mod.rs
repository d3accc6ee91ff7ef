//! The only place with `unsafe`: thin wrappers over the syscalls the safe crates do not
//! cover (clone3, mount_setattr, close_range, capability prctls, execve with prepared
//! pointer arrays, signal dispositions, the loopback ioctl). Every block says why it is sound.
//! Wrappers return `Errno` and never allocate, so the child may call them before execve.
//!
//! Where a wrapper's soundness depends on its caller, the duty is a type, not a comment:
//! `clone_fork` and `fork` take a [`OneThread`] proof, `execve` takes [`ExecArgs`], whose
//! pointer arrays can only be built from the strings they point into. These are safe
//! functions: callers outside this module cannot write `unsafe` (the crate denies it), so
//! an `unsafe fn` here would only move the obligation to a place that cannot discharge it.

pub mod landlock;
pub mod probe;
pub mod seccomp;

use std::ffi::{CStr, CString};
use std::marker::PhantomData;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;

const CLONE_PIDFD: u64 = 0x1000;
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// `struct clone_args` from linux/sched.h (version 2, 88 bytes).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// Proof that this process runs one thread, which `clone_fork` and `fork` require: the
/// child is a copy of the calling thread alone, and a lock another thread held (the
/// allocator's, stdio's) would stay held in it forever. Made by [`OneThread::check`], or
/// handed to the child of a fork, which has one thread by construction. Neither `Send` nor
/// `Clone`: it stays with the process it was proven in.
#[derive(Debug)]
pub struct OneThread(PhantomData<*const ()>);

/// Why [`OneThread::check`] gave no proof.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotOneThread {
    /// This many threads run.
    Threads(u64),
    /// procfs could not tell.
    Unknown(Errno),
}

impl OneThread {
    /// Count this process's threads (procfs keeps one link of `/proc/self/task` per thread,
    /// plus two).
    pub fn check() -> Result<OneThread, NotOneThread> {
        match thread_count() {
            Ok(1) => Ok(OneThread(PhantomData)),
            Ok(n) => Err(NotOneThread::Threads(n)),
            Err(e) => Err(NotOneThread::Unknown(e)),
        }
    }
}

#[cfg(test)]
impl OneThread {
    /// For unit tests, which run in the harness's threads: the forked child of such a test
    /// must only make syscalls and `_exit` (the allocator stays usable after fork with
    /// glibc and musl's; nothing locks stdio).
    pub fn in_test() -> OneThread {
        OneThread(PhantomData)
    }
}

/// Which side of a fork-like clone we are on.
pub enum Forked {
    /// The child: one thread, a copy of the caller's.
    Child(OneThread),
    Parent {
        pid: Pid,
        pidfd: OwnedFd,
    },
}

/// Fork-like `clone3`: new namespaces per `flags` (CLONE_NEW*), a pidfd for the child, and
/// optionally start the child inside a cgroup v2 directory (CLONE_INTO_CGROUP).
pub fn clone_fork(
    _one: &OneThread,
    flags: u64,
    cgroup: Option<BorrowedFd<'_>>,
) -> Result<Forked, Errno> {
    let mut pidfd: RawFd = -1;
    let mut args = CloneArgs {
        flags: flags | CLONE_PIDFD,
        pidfd: &mut pidfd as *mut RawFd as u64,
        exit_signal: libc::SIGCHLD as u64,
        ..CloneArgs::default()
    };
    if let Some(fd) = cgroup {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = fd.as_raw_fd() as u64;
    }
    // SAFETY: clone3 with no stack behaves like fork: the child continues on a copy of this
    // stack. `args` and `pidfd` are valid for the call; the kernel writes the pidfd into
    // `pidfd` in the parent. The process is single-threaded here (`OneThread`).
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match ret {
        -1 => Err(Errno::last()),
        0 => Ok(Forked::Child(OneThread(PhantomData))),
        pid => Ok(Forked::Parent {
            pid: Pid::from_raw(pid as i32),
            // SAFETY: with CLONE_PIDFD the kernel stored a new, owned pidfd for the child.
            pidfd: unsafe { OwnedFd::from_raw_fd(pidfd) },
        }),
    }
}

/// Plain fork, for init starting the payload.
pub fn fork(_one: &OneThread) -> Result<Option<Pid>, Errno> {
    // SAFETY: the process is single-threaded (`OneThread`), so the child cannot inherit a
    // lock held by another thread.
    match unsafe { nix::unistd::fork() }? {
        nix::unistd::ForkResult::Child => Ok(None),
        nix::unistd::ForkResult::Parent { child } => Ok(Some(child)),
    }
}

/// One child reaped by `wait4` (any child; `WNOHANG` when `block` is false), with the CPU
/// time (user + system) the kernel accounted to it and to the children it reaped. `None`:
/// children exist and none has changed state (only without `block`).
pub fn reap_any(block: bool) -> Result<Option<Reaped>, Errno> {
    let mut status: libc::c_int = 0;
    // SAFETY: an all-zero rusage is a valid value of the plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let flags = if block { 0 } else { libc::WNOHANG };
    // SAFETY: wait4 writes to the two locals we pass, both of the right type and alive.
    let pid = Errno::result(unsafe { libc::wait4(-1, &mut status, flags, &mut usage) })?;
    if pid == 0 {
        return Ok(None);
    }
    let micros = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    Ok(Some(Reaped {
        pid: Pid::from_raw(pid),
        status: WaitStatus::from_raw(Pid::from_raw(pid), status)?,
        cpu_usec: micros(usage.ru_utime) + micros(usage.ru_stime),
        // ru_maxrss is in KiB on Linux.
        peak_rss: (usage.ru_maxrss.max(0) as u64).saturating_mul(1024),
    }))
}

/// What `reap_any` collected.
#[derive(Debug, Clone, Copy)]
pub struct Reaped {
    pub pid: Pid,
    pub status: WaitStatus,
    pub cpu_usec: u64,
    /// The largest resident set of the process and the children it reaped, in bytes.
    pub peak_rss: u64,
}

/// A pidfd for `pid` (`pidfd_open`, Linux 5.3), close-on-exec.
pub fn pidfd_open(pid: i32) -> Result<OwnedFd, Errno> {
    // SAFETY: plain syscall with integer arguments; returns a new fd or an error.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    // SAFETY: a non-negative return is a new fd that nothing else owns.
    Errno::result(fd).map(|fd| unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// The number of threads of this process: procfs counts them in the link count of
/// `/proc/self/task` (two plus one per thread).
fn thread_count() -> Result<u64, Errno> {
    let st = nix::sys::stat::stat(c"/proc/self/task")?;
    Ok((st.st_nlink as u64).saturating_sub(2))
}

/// Send a signal through a pidfd (no pid-reuse race).
pub fn pidfd_send_signal(pidfd: BorrowedFd<'_>, signal: i32) -> Result<(), Errno> {
    // SAFETY: plain syscall with an fd we borrow, a signal number and null info.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    Errno::result(ret).map(drop)
}

pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;
const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
const AT_RECURSIVE: u32 = 0x8000;

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// Set mount attributes on a mount and every mount below it (`mount_setattr` with
/// AT_RECURSIVE, Linux 5.12+). Locked flags of the source are kept because they are not cleared.
pub fn mount_setattr_recursive(path: &CStr, set: u64) -> Result<(), Errno> {
    let mut attr = MountAttr {
        attr_set: set,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: `path` is a valid C string and `attr` a valid struct of the size passed.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            path.as_ptr(),
            AT_RECURSIVE,
            &mut attr as *mut MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    Errno::result(ret).map(drop)
}

/// Mark every fd from `first` up as close-on-exec (close_range with CLOSE_RANGE_CLOEXEC).
pub fn cloexec_from(first: u32) -> Result<(), Errno> {
    // SAFETY: close_range only changes fd flags; no memory is involved.
    let ret = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, 4u32) };
    Errno::result(ret).map(drop)
}

/// Close every fd in `first..=last`.
pub fn close_range(first: u32, last: u32) -> Result<(), Errno> {
    if first > last {
        return Ok(());
    }
    // SAFETY: closing fds this process owns by number; callers pass ranges holding no fd
    // that Rust code still owns as an `OwnedFd`.
    let ret = unsafe { libc::syscall(libc::SYS_close_range, first, last, 0u32) };
    Errno::result(ret).map(drop)
}

/// Drop one capability from the bounding set (PR_CAPBSET_DROP). Works for numbers newer than
/// any crate's table. EINVAL means the kernel does not know the number.
pub fn capbset_drop(cap: u32) -> Result<(), Errno> {
    // SAFETY: prctl with integer arguments only.
    let ret = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
    Errno::result(ret).map(drop)
}

/// Whether `cap` is still in the bounding set.
pub fn capbset_read(cap: u32) -> Result<bool, Errno> {
    // SAFETY: prctl with integer arguments only.
    let ret = unsafe { libc::prctl(libc::PR_CAPBSET_READ, cap as libc::c_ulong, 0, 0, 0) };
    Errno::result(ret).map(|v| v == 1)
}

/// Clear the ambient capability set.
pub fn ambient_clear_all() -> Result<(), Errno> {
    // SAFETY: prctl with integer arguments only.
    let ret = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    Errno::result(ret).map(drop)
}

/// Raise one capability in the ambient set (it must be permitted and inheritable).
pub fn ambient_raise(cap: u32) -> Result<(), Errno> {
    // SAFETY: prctl with integer arguments only.
    let ret = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
            cap as libc::c_ulong,
            0,
            0,
        )
    };
    Errno::result(ret).map(drop)
}

/// Set permitted, effective and inheritable sets to exactly `keep` (a bitmask over cap
/// numbers 0..64) with capset(2), version 3.
pub fn capset_exact(keep: u64) -> Result<(), Errno> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let mut header = Header {
        version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
        pid: 0,
    };
    let lo = keep as u32;
    let hi = (keep >> 32) as u32;
    let data = [
        Data {
            effective: lo,
            permitted: lo,
            inheritable: lo,
        },
        Data {
            effective: hi,
            permitted: hi,
            inheritable: hi,
        },
    ];
    // SAFETY: header and a two-element data array as capset v3 requires; both live for the call.
    let ret = unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) };
    Errno::result(ret).map(drop)
}

/// The arguments and environment of an execve, with the NULL-terminated pointer arrays
/// the call takes, built before the clone (the child must not allocate). The arrays point
/// into the strings held here, whose heap buffers do not move with the struct; nothing
/// can change the strings once built.
#[derive(Debug)]
pub struct ExecArgs {
    argv: Vec<CString>,
    envp: Vec<CString>,
    argv_ptrs: Vec<*const libc::c_char>,
    envp_ptrs: Vec<*const libc::c_char>,
}

impl ExecArgs {
    pub fn new(argv: Vec<CString>, envp: Vec<CString>) -> ExecArgs {
        let pointers = |v: &[CString]| {
            let mut p: Vec<*const libc::c_char> = v.iter().map(|s| s.as_ptr()).collect();
            p.push(std::ptr::null());
            p
        };
        ExecArgs {
            argv_ptrs: pointers(&argv),
            envp_ptrs: pointers(&envp),
            argv,
            envp,
        }
    }

    pub fn argv(&self) -> &[CString] {
        &self.argv
    }

    pub fn envp(&self) -> &[CString] {
        &self.envp
    }
}

/// execve `path` with `args`. Returns only on failure.
pub fn execve(path: &CStr, args: &ExecArgs) -> Errno {
    // SAFETY: path is a valid C string; argv_ptrs/envp_ptrs are null-terminated arrays of
    // pointers into C strings owned by `args`, which outlives the call (`ExecArgs::new`).
    unsafe {
        libc::execve(
            path.as_ptr(),
            args.argv_ptrs.as_ptr(),
            args.envp_ptrs.as_ptr(),
        )
    };
    Errno::last()
}

/// SIGPIPE's default action (Rust's runtime ignores it, so a write to a closed pipe is an
/// error that `println!` turns into a panic).
pub fn default_sigpipe() {
    // SAFETY: installing SIG_DFL for one signal; no handler code is involved.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Reset every catchable signal to its default action, so the payload does not inherit
/// ignored signals (e.g. the SIGPIPE that Rust's runtime ignores).
pub fn reset_signal_dispositions() {
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: installing SIG_DFL with an empty mask; no handler code is involved.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = libc::SIG_DFL;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(sig, &action, std::ptr::null_mut());
        }
    }
}

/// Bring the loopback interface of the current network namespace up (SIOCSIFFLAGS).
pub fn loopback_up() -> Result<(), Errno> {
    #[repr(C)]
    struct IfReqFlags {
        name: [u8; 16],
        flags: libc::c_short,
        _pad: [u8; 22],
    }
    // SAFETY: creating a datagram socket; the fd is owned below.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    let sock = Errno::result(raw)?;
    // SAFETY: `sock` is a fresh fd we own.
    let sock = unsafe { OwnedFd::from_raw_fd(sock) };
    let mut req = IfReqFlags {
        name: [0; 16],
        flags: 0,
        _pad: [0; 22],
    };
    req.name[..2].copy_from_slice(b"lo");
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write a struct ifreq; IfReqFlags has its
    // layout (16-byte name, then the flags union member, padded to 40 bytes).
    unsafe {
        Errno::result(libc::ioctl(
            sock.as_raw_fd(),
            libc::SIOCGIFFLAGS as _,
            &mut req,
        ))?;
        req.flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        Errno::result(libc::ioctl(
            sock.as_raw_fd(),
            libc::SIOCSIFFLAGS as _,
            &mut req,
        ))?;
    }
    Ok(())
}

/// A listening TCP socket on `127.0.0.1:port` in the current network namespace (the
/// proxy's, opened by the child at step 4e). No allocation.
pub fn loopback_listener(port: u16) -> Result<OwnedFd, Errno> {
    // SAFETY: creating a stream socket; the fd is owned below.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    let raw = Errno::result(raw)?;
    // SAFETY: `raw` is a fresh fd we own.
    let sock = unsafe { OwnedFd::from_raw_fd(raw) };
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(std::net::Ipv4Addr::LOCALHOST).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: `addr` is a valid sockaddr_in and the length is its size.
    let ret = unsafe {
        libc::bind(
            sock.as_raw_fd(),
            (&addr as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    Errno::result(ret)?;
    // SAFETY: listen on a socket we own.
    Errno::result(unsafe { libc::listen(sock.as_raw_fd(), 256) })?;
    Ok(sock)
}

/// Send `fd` over the unix socket `sock` (SCM_RIGHTS) with one byte of data. No
/// allocation: the control message is built on the stack.
pub fn send_fd(sock: BorrowedFd<'_>, fd: BorrowedFd<'_>) -> Result<(), Errno> {
    #[repr(C)]
    union Control {
        buf: [u8; 64],
        _align: libc::cmsghdr,
    }
    let mut data = [b'L'];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut control = Control { buf: [0; 64] };
    // SAFETY: CMSG_SPACE and CMSG_LEN are pure arithmetic.
    let (space, len) = unsafe {
        (
            libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32),
            libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32),
        )
    };
    // SAFETY: a zeroed msghdr is valid; its pointers are set below to live stack buffers.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    // SAFETY: the union's buffer is 64 bytes, larger than CMSG_SPACE of one fd (24), and
    // aligned for cmsghdr; CMSG_FIRSTHDR returns its start, written within bounds.
    unsafe {
        msg.msg_control = control.buf.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = len as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>(), fd.as_raw_fd());
    }
    loop {
        // SAFETY: `msg` points at live buffers for the duration of the call.
        let ret = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
        match Errno::result(ret) {
            Ok(_) => return Ok(()),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Receive one fd sent by [`send_fd`]; `None` at EOF (the sender is gone).
pub fn recv_fd(sock: BorrowedFd<'_>) -> Result<Option<OwnedFd>, Errno> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let mut data = [0u8; 1];
    let mut iov = [std::io::IoSliceMut::new(&mut data)];
    let mut space = nix::cmsg_space!(RawFd);
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    let mut got = None;
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            for fd in fds {
                // SAFETY: the kernel installed this fd in our table for this message;
                // nothing else owns it.
                let owned = unsafe { OwnedFd::from_raw_fd(fd) };
                if got.is_none() {
                    got = Some(owned);
                }
            }
        }
    }
    Ok(got)
}

/// An anonymous in-memory file (close-on-exec).
pub fn memfd(name: &str) -> Result<OwnedFd, Errno> {
    let name = CString::new(name).map_err(|_| Errno::EINVAL)?;
    nix::sys::memfd::memfd_create(name.as_c_str(), nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
}

/// A helper process started with `cmd` gets SIGKILL when the thread that started it ends
/// (the supervisor killed before it could stop the helper).
pub fn die_with_parent(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the forked child before execve and calls only prctl,
    // which is async-signal-safe; it allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Write all of `buf` to `fd`, retrying on EINTR. No allocation.
pub fn write_all(fd: BorrowedFd<'_>, mut buf: &[u8]) -> Result<(), Errno> {
    while !buf.is_empty() {
        match nix::unistd::write(fd, buf) {
            Ok(0) => return Err(Errno::EIO),
            Ok(n) => buf = &buf[n..],
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Borrow a raw fd number that the caller knows is open for the duration of the borrow.
pub fn borrow_raw(fd: RawFd) -> BorrowedFd<'static> {
    // SAFETY: callers only pass fds they hold open (stdio, or fds owned by the launch data
    // for the life of the process).
    unsafe { BorrowedFd::borrow_raw(fd) }
}

/// A close-on-exec duplicate (numbered 3 or above) of fd `n`, which the caller inherited,
/// with its access mode (`O_RDONLY`, `O_WRONLY` or `O_RDWR`). EBADF when `n` is not open.
pub fn dup_inherited(n: RawFd) -> Result<(OwnedFd, i32), Errno> {
    // SAFETY: fcntl on an fd number reads its flags; an fd that is not open gives EBADF.
    let flags = Errno::result(unsafe { libc::fcntl(n, libc::F_GETFL) })?;
    // SAFETY: F_DUPFD_CLOEXEC makes a new fd that nothing else owns, or fails.
    let fd = Errno::result(unsafe { libc::fcntl(n, libc::F_DUPFD_CLOEXEC, 3) })?;
    // SAFETY: `fd` was just created by fcntl and is owned by nothing else.
    Ok((unsafe { OwnedFd::from_raw_fd(fd) }, flags & libc::O_ACCMODE))
}

/// `flock(fd, op)` (`LOCK_SH`/`LOCK_EX`, optionally `| LOCK_NB`), retried on EINTR.
pub fn flock(fd: BorrowedFd<'_>, op: i32) -> Result<(), Errno> {
    loop {
        // SAFETY: flock on an open fd with integer flags; no memory is involved.
        match Errno::result(unsafe { libc::flock(fd.as_raw_fd(), op) }) {
            Err(Errno::EINTR) => continue,
            other => return other.map(drop),
        }
    }
}

/// Whether fd `n` is open in this process.
pub fn fd_is_open(n: RawFd) -> bool {
    // SAFETY: F_GETFD reads the fd's flags; an fd that is not open gives EBADF.
    unsafe { libc::fcntl(n, libc::F_GETFD) >= 0 }
}

/// Clear close-on-exec on fd `n`, so that it stays open across execve.
pub fn keep_across_exec(n: RawFd) -> Result<(), Errno> {
    // SAFETY: F_SETFD with 0 changes only the fd's flags.
    Errno::result(unsafe { libc::fcntl(n, libc::F_SETFD, 0) }).map(drop)
}

/// Make `fd` the process's stdin/stdout/stderr-compatible duplicate at `target`.
pub fn dup2(fd: RawFd, target: RawFd) -> Result<(), Errno> {
    // SAFETY: dup2 on fd numbers; no memory is involved.
    Errno::result(unsafe { libc::dup2(fd, target) }).map(drop)
}

/// readlink into a caller's buffer; returns the length (not NUL-terminated).
pub fn readlink(path: &CStr, buf: &mut [u8]) -> Result<usize, Errno> {
    // SAFETY: `buf` is a valid writable buffer of the length passed.
    let n = unsafe { libc::readlink(path.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    let n = Errno::result(n)? as usize;
    if n >= buf.len() {
        return Err(Errno::ENAMETOOLONG);
    }
    Ok(n)
}

/// An O_PATH fd of `path` resolved without following any symlink (openat2
/// RESOLVE_NO_SYMLINKS, Linux 5.6: ELOOP if a component is one).
pub fn open_no_symlinks(path: &CStr) -> Result<OwnedFd, Errno> {
    #[repr(C)]
    struct OpenHow {
        flags: u64,
        mode: u64,
        resolve: u64,
    }
    const RESOLVE_NO_SYMLINKS: u64 = 0x04;
    let how = OpenHow {
        flags: (libc::O_PATH | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: RESOLVE_NO_SYMLINKS,
    };
    // SAFETY: `path` is a valid C string and `how` a valid open_how of the size passed.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            libc::AT_FDCWD,
            path.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    // SAFETY: openat2 returned a new fd that nothing else owns.
    Errno::result(fd).map(|fd| unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// A detached recursive copy of the mount tree at the object `fd` names (`open_tree` with
/// AT_EMPTY_PATH | OPEN_TREE_CLONE | AT_RECURSIVE), to attach with `move_mount_fd`.
pub fn open_tree_clone_fd(fd: BorrowedFd<'_>) -> Result<OwnedFd, Errno> {
    const OPEN_TREE_CLONE: u32 = 1;
    const OPEN_TREE_CLOEXEC: u32 = libc::O_CLOEXEC as u32;
    // SAFETY: `fd` is open and the path is an empty C string (AT_EMPTY_PATH); open_tree
    // returns a new fd or an error.
    let tree = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            fd.as_raw_fd(),
            c"".as_ptr(),
            OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE | libc::AT_EMPTY_PATH as u32,
        )
    };
    // SAFETY: a non-negative return is a new fd that nothing else owns.
    Errno::result(tree).map(|t| unsafe { OwnedFd::from_raw_fd(t as RawFd) })
}

/// A detached recursive copy of the mount tree at `path` (`open_tree` with
/// OPEN_TREE_CLONE | AT_RECURSIVE, Linux 5.2), to attach elsewhere with `move_mount_fd`.
pub fn open_tree_clone(path: &CStr) -> Result<OwnedFd, Errno> {
    const OPEN_TREE_CLONE: u32 = 1;
    const OPEN_TREE_CLOEXEC: u32 = libc::O_CLOEXEC as u32;
    // SAFETY: `path` is a valid C string; open_tree returns a new fd or an error.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            path.as_ptr(),
            OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE,
        )
    };
    // SAFETY: a non-negative return is a new fd that nothing else owns.
    Errno::result(fd).map(|fd| unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `mount_setattr` on a detached tree from `open_tree_clone`, and every mount in it.
pub fn mount_setattr_fd(tree: BorrowedFd<'_>, set: u64) -> Result<(), Errno> {
    let mut attr = MountAttr {
        attr_set: set,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: `tree` is an open fd, the path is an empty C string (AT_EMPTY_PATH) and `attr`
    // a valid struct of the size passed.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            AT_RECURSIVE | libc::AT_EMPTY_PATH as u32,
            &mut attr as *mut MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    Errno::result(ret).map(drop)
}

/// Idmap a detached tree from `open_tree_clone_fd`, and every mount in it, through the user
/// namespace `userns` (`mount_setattr` with MOUNT_ATTR_IDMAP, Linux 5.12), setting `set`
/// beside it. The caller must hold CAP_SYS_ADMIN over the filesystem's user namespace
/// (init's, for a host filesystem); EINVAL: the filesystem cannot be idmapped.
pub fn mount_setattr_idmap_fd(
    tree: BorrowedFd<'_>,
    set: u64,
    userns: BorrowedFd<'_>,
) -> Result<(), Errno> {
    let mut attr = MountAttr {
        attr_set: set | MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.as_raw_fd() as u64,
    };
    // SAFETY: `tree` and `userns` are open fds, the path is an empty C string
    // (AT_EMPTY_PATH) and `attr` a valid struct of the size passed.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH as u32 | AT_RECURSIVE,
            &mut attr as *mut MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    Errno::result(ret).map(drop)
}

/// A user namespace with these one-line id maps (`inside outside 1`), held by its
/// descriptor only: a child is cloned into a new user namespace, the maps are written
/// for it, its namespace is opened, and it is killed and reaped. The namespace lives as
/// long as the descriptor (an idmapped mount keeps its own reference).
pub fn userns_with_maps(
    one: &OneThread,
    uid_map: (u32, u32),
    gid_map: (u32, u32),
) -> Result<OwnedFd, Errno> {
    let (hold_r, hold_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let (pid, pidfd) = match clone_fork(one, libc::CLONE_NEWUSER as u64, None)? {
        Forked::Child(_) => {
            // Wait for the parent to be done with this namespace (EOF), then leave. Only
            // a read and _exit: nothing here allocates or locks.
            drop(hold_w);
            let mut b = [0u8; 1];
            let _ = nix::unistd::read(hold_r.as_fd(), &mut b);
            exit_now(0)
        }
        Forked::Parent { pid, pidfd } => (pid, pidfd),
    };
    drop(hold_r);
    let done = |r: Result<OwnedFd, Errno>| {
        let _ = pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
        drop(hold_w);
        let _ = nix::sys::wait::waitpid(pid, None);
        r
    };
    let write = |file: &str, text: String| -> Result<(), Errno> {
        let path =
            CString::new(format!("/proc/{}/{file}", pid.as_raw())).map_err(|_| Errno::EINVAL)?;
        let f = nix::fcntl::open(
            path.as_c_str(),
            nix::fcntl::OFlag::O_WRONLY | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )?;
        write_all(f.as_fd(), text.as_bytes())
    };
    let made = (|| {
        write("uid_map", format!("{} {} 1\n", uid_map.0, uid_map.1))?;
        write("setgroups", "deny".to_string())?;
        write("gid_map", format!("{} {} 1\n", gid_map.0, gid_map.1))?;
        let path =
            CString::new(format!("/proc/{}/ns/user", pid.as_raw())).map_err(|_| Errno::EINVAL)?;
        nix::fcntl::open(
            path.as_c_str(),
            nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
    })();
    done(made)
}

/// Attach the detached tree `tree` onto the directory or file `onto` was opened on
/// (`move_mount` with both paths empty): the mount lands on that very inode, wherever a
/// path to it might have been redirected since.
pub fn move_mount_fd(tree: BorrowedFd<'_>, onto: BorrowedFd<'_>) -> Result<(), Errno> {
    const MOVE_MOUNT_F_EMPTY_PATH: u32 = 0x4;
    const MOVE_MOUNT_T_EMPTY_PATH: u32 = 0x40;
    // SAFETY: both fds are open and both paths are empty C strings.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            onto.as_raw_fd(),
            c"".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    Errno::result(ret).map(drop)
}

/// A new, detached tmpfs with `options` (fsconfig key/value strings) and mount attributes
/// `attrs` (`fsopen`, `fsconfig`, `fsmount`, Linux 5.2), to attach with `move_mount_fd`.
pub fn fsmount_tmpfs(options: &[(CString, CString)], attrs: u64) -> Result<OwnedFd, Errno> {
    const FSOPEN_CLOEXEC: u32 = 1;
    const FSCONFIG_SET_STRING: u32 = 1;
    const FSCONFIG_CMD_CREATE: u32 = 6;
    const FSMOUNT_CLOEXEC: u32 = 1;
    // SAFETY: the filesystem name is a valid C string; fsopen returns a new fd or an error.
    let fs = Errno::result(unsafe {
        libc::syscall(libc::SYS_fsopen, c"tmpfs".as_ptr(), FSOPEN_CLOEXEC)
    })?;
    // SAFETY: a non-negative return is a new fd that nothing else owns.
    let fs = unsafe { OwnedFd::from_raw_fd(fs as RawFd) };
    for (key, value) in options {
        // SAFETY: `fs` is open; key and value are valid C strings.
        Errno::result(unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                fs.as_raw_fd(),
                FSCONFIG_SET_STRING,
                key.as_ptr(),
                value.as_ptr(),
                0,
            )
        })?;
    }
    // SAFETY: `fs` is open; CMD_CREATE takes no key or value.
    Errno::result(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0,
        )
    })?;
    // SAFETY: `fs` is open and configured; fsmount returns a new fd or an error.
    let mnt = Errno::result(unsafe {
        libc::syscall(libc::SYS_fsmount, fs.as_raw_fd(), FSMOUNT_CLOEXEC, attrs)
    })?;
    // SAFETY: a non-negative return is a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(mnt as RawFd) })
}

/// Exit immediately without running atexit handlers or flushing stdio buffers that the
/// supervisor's copy also holds.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit is async-signal-safe and takes only an integer.
    unsafe { libc::_exit(code) }
}

/// The extended attribute `name` of the object an `O_PATH` descriptor names, read through
/// its `/proc/self/fd` magic link (fgetxattr refuses `O_PATH` descriptors); the length
/// written to `buf`. ENODATA: the object has no such attribute.
pub fn getxattr_fd(fd: BorrowedFd<'_>, name: &CStr, buf: &mut [u8]) -> Result<usize, Errno> {
    let path = CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd())).expect("no NUL");
    // SAFETY: `path` and `name` are valid C strings and `buf` a writable buffer of the
    // length passed; getxattr writes at most that many bytes.
    let n = unsafe {
        libc::getxattr(
            path.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    Errno::result(n).map(|n| n as usize)
}
