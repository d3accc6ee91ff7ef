//! The raw calls `lasagna test`'s probes make from inside a sandbox, each with the buffers
//! it needs built here, so no caller can hand the kernel a pointer of its own. A probe is an
//! attempt: every wrapper returns what the kernel answered and does nothing else.

use std::ffi::CStr;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;

fn fd_result(rc: libc::c_long) -> Result<OwnedFd, Errno> {
    let fd = Errno::result(rc)? as RawFd;
    // SAFETY: the kernel just returned `fd` as a new descriptor of this process; nothing else
    // owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `bpf(BPF_MAP_CREATE)` of a one-entry array map.
pub fn bpf_map_create() -> Result<OwnedFd, Errno> {
    let mut attr = [0u32; 32];
    attr[0] = 2; // BPF_MAP_TYPE_ARRAY
    attr[1] = 4; // key_size
    attr[2] = 4; // value_size
    attr[3] = 1; // max_entries
                 // SAFETY: `attr` is a zeroed 128-byte union bpf_attr that lives across the call; the
                 // kernel reads `size_of_val(&attr)` bytes of it.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            0,
            attr.as_mut_ptr(),
            std::mem::size_of_val(&attr),
        )
    };
    fd_result(rc)
}

/// `io_uring_setup` with one entry.
pub fn io_uring_setup() -> Result<OwnedFd, Errno> {
    let mut params = [0u32; 30]; // struct io_uring_params, 120 bytes
                                 // SAFETY: `params` is a zeroed io_uring_params the kernel fills in; it outlives the call.
    let rc = unsafe { libc::syscall(libc::SYS_io_uring_setup, 1u32, params.as_mut_ptr()) };
    fd_result(rc)
}

/// `add_key("user", description, payload, KEY_SPEC_PROCESS_KEYRING)`.
pub fn add_key(description: &CStr, payload: &[u8]) -> Result<i32, Errno> {
    // SAFETY: the type and description are NUL-terminated strings, the payload a buffer of
    // the length passed; all outlive the call, and the kernel only reads them.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_add_key,
            c"user".as_ptr(),
            description.as_ptr(),
            payload.as_ptr(),
            payload.len(),
            -2i32, // KEY_SPEC_PROCESS_KEYRING
        )
    };
    Errno::result(rc).map(|k| k as i32)
}

/// `perf_event_open` of a software CPU clock on this process, user space only (what a
/// `perf_event_paranoid` of 2 still allows an unprivileged process).
pub fn perf_event_open() -> Result<OwnedFd, Errno> {
    let mut attr = [0u8; 128];
    attr[0..4].copy_from_slice(&1u32.to_ne_bytes()); // PERF_TYPE_SOFTWARE
    attr[4..8].copy_from_slice(&128u32.to_ne_bytes()); // size
                                                       // config 0 = PERF_COUNT_SW_CPU_CLOCK; flags at 40: disabled, exclude_kernel, exclude_hv.
    attr[40..48].copy_from_slice(&(1u64 | 1 << 5 | 1 << 6).to_ne_bytes());
    // SAFETY: `attr` is a 128-byte perf_event_attr with its size field set, read by the
    // kernel during the call; the other arguments are integers.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            attr.as_mut_ptr(),
            0,
            -1,
            -1,
            8u64,
        ) // PERF_FLAG_FD_CLOEXEC
    };
    fd_result(rc)
}

/// `userfaultfd(O_CLOEXEC | UFFD_USER_MODE_ONLY)`.
pub fn userfaultfd() -> Result<OwnedFd, Errno> {
    // SAFETY: integer flags only.
    let rc = unsafe { libc::syscall(libc::SYS_userfaultfd, libc::O_CLOEXEC | 1) };
    fd_result(rc)
}

/// `name_to_handle_at(path)` then `open_by_handle_at` on it (the call that needs
/// CAP_DAC_READ_SEARCH and reaches files by handle, around every path check).
pub fn open_by_handle(path: &CStr) -> Result<OwnedFd, Errno> {
    // struct file_handle { u32 handle_bytes; i32 handle_type; u8 f_handle[128]; }
    let mut handle = [0u32; 2 + 32];
    handle[0] = 128;
    let mut mount_id: libc::c_int = 0;
    // SAFETY: `path` is NUL-terminated; `handle` has room for the 128 bytes it announces
    // plus its header, and `mount_id` is an int; all outlive the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_name_to_handle_at,
            libc::AT_FDCWD,
            path.as_ptr(),
            handle.as_mut_ptr(),
            &mut mount_id as *mut libc::c_int,
            0,
        )
    };
    Errno::result(rc)?;
    // SAFETY: `handle` was filled in by name_to_handle_at above and lives across the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_open_by_handle_at,
            libc::AT_FDCWD,
            handle.as_mut_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    fd_result(rc)
}

/// `getpid` through the x32 entry point (the syscall number with bit 30 set).
#[cfg(target_arch = "x86_64")]
pub fn x32_getpid() -> Result<i64, Errno> {
    // SAFETY: getpid takes no arguments and touches no memory.
    let rc = unsafe { libc::syscall(libc::SYS_getpid | 0x4000_0000) };
    Errno::result(rc)
}

/// `ioctl(fd, TIOCSTI, &byte)`: push one byte into a terminal's input queue.
pub fn tiocsti(fd: RawFd, byte: u8) -> Result<(), Errno> {
    // SAFETY: TIOCSTI reads one byte from the pointer, which points at a local.
    let rc = unsafe { libc::ioctl(fd, libc::TIOCSTI, &byte as *const u8) };
    Errno::result(rc).map(drop)
}

/// `ptrace(PTRACE_SEIZE, pid)`, then detach: whether this process may trace `pid`.
pub fn ptrace_seize(pid: i32) -> Result<(), Errno> {
    // SAFETY: PTRACE_SEIZE and PTRACE_DETACH take a pid and integers; no memory is passed.
    let rc = unsafe { libc::ptrace(libc::PTRACE_SEIZE, pid, 0, 0) };
    Errno::result(rc)?;
    // SAFETY: as above.
    unsafe { libc::ptrace(libc::PTRACE_DETACH, pid, 0, 0) };
    Ok(())
}

/// Make `tty` the controlling terminal of the process `cmd` starts (a new session, then
/// TIOCSCTTY), so that a probe inside inherits it as the payload of a terminal would.
pub fn with_controlling_tty(cmd: &mut std::process::Command, tty: RawFd) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs between fork and exec of the spawned child and makes only
    // async-signal-safe calls (setsid, ioctl) on an fd the parent keeps open until spawn.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 || libc::ioctl(tty, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Map and touch `bytes` of anonymous memory in 256 MiB pieces (asking for huge pages, so
/// the kernel spends its time on the limit, not on 4 KiB faults). Returns how much was
/// touched when a mapping failed; the process may also be killed by a memory limit.
pub fn touch_memory(bytes: usize) -> Result<usize, (usize, Errno)> {
    const PIECE: usize = 256 << 20;
    let mut done = 0;
    while done < bytes {
        // SAFETY: a fresh private anonymous mapping; no existing memory is touched. It is
        // never unmapped: the probe exits after this call.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                PIECE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err((done, Errno::last()));
        }
        // SAFETY: `p` is the mapping of PIECE bytes just made; madvise only changes how the
        // kernel backs it, and the writes stay inside it.
        unsafe {
            libc::madvise(p, PIECE, libc::MADV_HUGEPAGE);
            let base = p as *mut u8;
            let mut off = 0;
            while off < PIECE {
                std::ptr::write_volatile(base.add(off), 1);
                off += 4096;
            }
        }
        done += PIECE;
    }
    Ok(done)
}
