//! The seccomp system calls: installing a filter and asking whether the kernel has seccomp.
//! Child side: `set_mode_filter` allocates nothing.

use nix::errno::Errno;
use seccompiler::sock_filter;

/// `struct sock_fprog` from linux/filter.h.
#[repr(C)]
struct SockFprog {
    len: libc::c_ushort,
    filter: *const sock_filter,
}

/// seccomp(SECCOMP_SET_MODE_FILTER, 0, prog): add `prog` to the calling thread's filters.
/// The kernel refuses with EACCES unless no_new_privs is set or the caller holds
/// CAP_SYS_ADMIN in its user namespace, and with EINVAL for a malformed program.
pub fn set_mode_filter(prog: &[sock_filter]) -> Result<(), Errno> {
    mode_filter(prog, 0).map(drop)
}

/// seccomp(SECCOMP_SET_MODE_FILTER, flags, prog): the call's return value. Allocates nothing.
fn mode_filter(prog: &[sock_filter], flags: libc::c_ulong) -> Result<libc::c_long, Errno> {
    let len = libc::c_ushort::try_from(prog.len()).map_err(|_| Errno::EINVAL)?;
    let fprog = SockFprog {
        len,
        filter: prog.as_ptr(),
    };
    // SAFETY: `fprog` points at `prog.len()` initialised `sock_filter`s (same layout as the
    // kernel's struct sock_filter: u16, u8, u8, u32), alive for the whole call; the kernel copies
    // the program (copy_from_user) and keeps no pointer into it.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER as libc::c_ulong,
            flags,
            &fprog as *const SockFprog,
        )
    };
    Errno::result(rc)
}

/// prctl(PR_GET_SECCOMP): 0 = not filtered, 2 = in filter mode; EINVAL without CONFIG_SECCOMP.
pub fn get_seccomp_mode() -> Result<i32, Errno> {
    // SAFETY: PR_GET_SECCOMP takes no pointer arguments and changes no state.
    let rc = unsafe { libc::prctl(libc::PR_GET_SECCOMP, 0, 0, 0, 0) };
    Errno::result(rc)
}

/// Test support: run `body` in a forked child and return how it ended. The child calls
/// `_exit` with `body`'s result and never returns into the test harness.
#[cfg(test)]
pub fn in_child(body: impl FnOnce() -> i32) -> nix::sys::wait::WaitStatus {
    use nix::unistd::ForkResult;
    // SAFETY: the child runs `body` and then `_exit`s without unwinding into the parent's
    // code; the tests keep `body` to syscalls, exec and glibc calls that are fork-safe.
    match unsafe { nix::unistd::fork() }.expect("fork") {
        ForkResult::Child => {
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)).unwrap_or(101);
            // SAFETY: _exit ends the child without running the parent's atexit handlers.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => nix::sys::wait::waitpid(child, None).expect("waitpid"),
    }
}

/// Test support: a raw syscall with up to six arguments; returns the result or errno.
#[cfg(test)]
pub fn raw_syscall(nr: libc::c_long, args: [u64; 6]) -> Result<libc::c_long, Errno> {
    // SAFETY: the tests pass only null pointers, invalid fds or plain integers, so the kernel
    // reads or writes no memory of this process.
    let rc = unsafe { libc::syscall(nr, args[0], args[1], args[2], args[3], args[4], args[5]) };
    Errno::result(rc)
}

/// Test support: an argument-less syscall through the i386 entry point (`int 0x80`), which
/// reaches seccomp with AUDIT_ARCH_I386.
#[cfg(all(test, target_arch = "x86_64"))]
pub fn int80_syscall(nr: u32) -> i64 {
    let mut rax = u64::from(nr);
    // SAFETY: `int 0x80` with a syscall number that takes no arguments (getpid); it clobbers
    // only the registers declared here and the flags; no memory is passed.
    unsafe {
        std::arch::asm!("int 0x80", inout("rax") rax, out("r8") _, out("r9") _,
                        out("r10") _, out("r11") _, options(nostack));
    }
    rax as i64
}

/// `SECCOMP_FILTER_FLAG_NEW_LISTENER` (Linux 5.0): the filter's user notifications go to a
/// new fd, returned by the call.
const FILTER_FLAG_NEW_LISTENER: libc::c_ulong = 1 << 3;

/// `SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV` (Linux 5.19): once the supervisor has received
/// a notification, the waiting task is woken only by a fatal signal, so a signal handler
/// cannot turn an answered call into EINTR.
const FILTER_FLAG_WAIT_KILLABLE_RECV: libc::c_ulong = 1 << 5;

/// As [`set_mode_filter`], and return the listener of the filter's `SECCOMP_RET_USER_NOTIF`
/// actions (close-on-exec), in a killable wait where the kernel has it (5.19; EINVAL
/// before: installed without); whether it is. Allocates nothing.
pub fn set_mode_filter_listener(
    prog: &[sock_filter],
) -> Result<(std::os::fd::OwnedFd, bool), Errno> {
    use std::os::fd::FromRawFd;
    let (fd, killable) = match mode_filter(
        prog,
        FILTER_FLAG_NEW_LISTENER | FILTER_FLAG_WAIT_KILLABLE_RECV,
    ) {
        Ok(fd) => (fd, true),
        Err(Errno::EINVAL) => (mode_filter(prog, FILTER_FLAG_NEW_LISTENER)?, false),
        Err(e) => return Err(e),
    };
    // SAFETY: with NEW_LISTENER a non-negative return is a new fd nothing else owns.
    Ok((
        unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as libc::c_int) },
        killable,
    ))
}

/// `struct seccomp_data` from linux/seccomp.h: what a filter sees of a system call.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct SeccompData {
    pub nr: i32,
    pub arch: u32,
    pub instruction_pointer: u64,
    pub args: [u64; 6],
}

/// `struct seccomp_notif`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct Notif {
    pub id: u64,
    pub pid: u32,
    pub flags: u32,
    pub data: SeccompData,
}

/// `struct seccomp_notif_resp`.
#[repr(C)]
struct NotifResp {
    id: u64,
    val: i64,
    error: i32,
    flags: u32,
}

/// `_IOWR('!', 0, struct seccomp_notif)` and `_IOWR('!', 1, struct seccomp_notif_resp)`.
const IOCTL_NOTIF_RECV: libc::c_ulong = 0xc050_2100;
const IOCTL_NOTIF_SEND: libc::c_ulong = 0xc018_2101;

/// The next user notification of `listener` (blocks until there is one; ENOENT when the
/// task went away before it was read).
pub fn notif_recv(listener: std::os::fd::BorrowedFd<'_>) -> Result<Notif, Errno> {
    use std::os::fd::AsRawFd;
    // The kernel requires a zeroed buffer.
    let mut notif = Notif::default();
    // SAFETY: `notif` is a live, zeroed `struct seccomp_notif` (80 bytes, the size the ioctl
    // number encodes) that the kernel fills in.
    let rc = unsafe { libc::ioctl(listener.as_raw_fd(), IOCTL_NOTIF_RECV as _, &mut notif) };
    Errno::result(rc).map(|_| notif)
}

/// Answer notification `id`: the system call fails with `errno` (never runs).
pub fn notif_fail(listener: std::os::fd::BorrowedFd<'_>, id: u64, errno: i32) -> Result<(), Errno> {
    use std::os::fd::AsRawFd;
    let resp = NotifResp {
        id,
        val: 0,
        error: -errno,
        flags: 0,
    };
    // SAFETY: `resp` is a live `struct seccomp_notif_resp` (24 bytes, the size the ioctl
    // number encodes) that the kernel only reads.
    let rc = unsafe { libc::ioctl(listener.as_raw_fd(), IOCTL_NOTIF_SEND as _, &resp) };
    Errno::result(rc).map(drop)
}
