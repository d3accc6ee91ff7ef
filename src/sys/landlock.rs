//! Raw Landlock calls the `landlock` crate keeps private: the ABI version probe.
//!
//! Everything else (creating a ruleset, adding rules, restricting) goes through the crate.

use nix::errno::Errno;

/// `LANDLOCK_CREATE_RULESET_VERSION` from `<linux/landlock.h>`.
const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1 << 0;

/// The Landlock ABI version of the running kernel: `landlock_create_ruleset(NULL, 0,
/// LANDLOCK_CREATE_RULESET_VERSION)` (landlock_create_ruleset(2)).
///
/// `Err(ENOSYS)`: the kernel is built without Landlock; `Err(EOPNOTSUPP)`: built in but not
/// enabled at boot (not in `lsm=`). A seccomp filter can also make it fail with anything.
pub fn abi_version() -> Result<u32, Errno> {
    // SAFETY: with a NULL attr and size 0 the kernel reads no user memory; the VERSION flag
    // only returns an integer and creates no fd.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    if ret < 0 {
        Err(Errno::last())
    } else {
        Ok(u32::try_from(ret).unwrap_or(u32::MAX))
    }
}

/// `fork(2)` for tests that restrict a throwaway process and report through its exit status.
#[cfg(test)]
pub fn fork_for_test() -> nix::Result<nix::unistd::ForkResult> {
    // SAFETY: the test harness is multi-threaded; the child only builds and applies a ruleset
    // (glibc keeps malloc usable after fork), makes raw syscalls and ends with `_exit`, never
    // returning into the harness or touching its locks (no printing).
    unsafe { nix::unistd::fork() }
}

/// `_exit(2)` for a forked test child: no atexit handlers, no flushing of the harness' buffers.
#[cfg(test)]
pub fn exit_now(code: i32) -> ! {
    // SAFETY: `_exit` takes a plain integer and does not return; skipping destructors and
    // atexit handlers is what a forked child of the test harness wants.
    unsafe { libc::_exit(code) }
}
