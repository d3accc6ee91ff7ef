//! The child side, run between clone and execve: install the filter prepared before the
//! clone. Allocates nothing.

use nix::errno::Errno;

use crate::launch::{ChildContext, ChildError};
use crate::sys::seccomp as sys;

use super::plan::Prepared;

/// Child side, the last step before execve: add the filter. Allocates nothing.
/// no_new_privs must already be set (or CAP_SYS_ADMIN held): otherwise the kernel says EACCES.
pub fn install(prepared: &Prepared) -> Result<(), ChildError<'static>> {
    install_at(prepared, crate::launch::At::Seccomp)
}

/// Install a filter as launch step `at` (init's own filter, or the payload's).
pub fn install_at(prepared: &Prepared, at: crate::launch::At) -> Result<(), ChildError<'static>> {
    installed(sys::set_mode_filter(&prepared.program), at, "install")
}

/// The install's result as the launch step's: EACCES says why.
fn installed<T>(
    result: Result<T, Errno>,
    at: crate::launch::At,
    what: &'static str,
) -> Result<T, ChildError<'static>> {
    match result {
        Err(Errno::EACCES) => Err(ChildError::new(at, what, Errno::EACCES)
            .with_detail(b"no_new_privs is not set and CAP_SYS_ADMIN is not held")),
        other => other.step(at, what),
    }
}

/// Child side, `--explain-denials`: add the notifying filter and return its listener, for
/// the supervisor (which answers each notification). Allocates nothing.
pub fn install_listening(prepared: &Prepared) -> Result<std::os::fd::OwnedFd, ChildError<'static>> {
    let program = prepared.notifying.as_deref().unwrap_or(&prepared.program);
    installed(
        sys::set_mode_filter_listener(program).map(|(listener, _killable)| listener),
        crate::launch::At::Seccomp,
        "install with a listener",
    )
}
