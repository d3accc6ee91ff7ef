//! The `seccomp` layer: a syscall allow-list compiled to classic BPF, plus a fixed set of
//! "dangerous edges" that every policy blocks (io_uring, namespaces, the mount API, keyrings,
//! bpf, ptrace, modules, x32 and foreign-arch entry points, TIOCSTI...).
//!
//! Phases: `validate` (profile → `Config`, pure, errors carry line:col), `plan` (what the
//! host supports), `prepare` (supervisor: `Config` → BPF program), `install` (child, last step
//! before execve: no allocation). `prepare_init` builds the small filter for pid 1.
//!
//! Names and groups come from generated files (see `tables`); the profile's `allow` entries are
//! syscall names or systemd group names (`@system-service`, `@basic-io`, ...).
//!
//! Files: `section` (the section as written, its merge, and its check into `Config`), `plan`
//! (the host check and the filters compiled before the clone, with the always-blocked edges),
//! `apply` (the child side: `install`), `explain` (plain words, `doctor`'s host facts, the
//! syscall groups).

mod apply;
mod bpf;
mod explain;
pub mod notify;
mod oci;
mod plan;
mod section;
mod tables;
#[cfg(test)]
mod tests;

pub use apply::{install, install_at, install_listening};
pub use bpf::{CmpOp, Width};
pub use explain::{doctor, explain, needs, syscall_groups};
pub use plan::{plan, prepare, prepare_init, Prepared};
pub use section::{validate_for, AllowIf, ArgSpec, Config, Dangerous, Deny, Section};
pub use tables::Arch;
