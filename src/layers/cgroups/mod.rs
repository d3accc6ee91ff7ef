//! The `cgroups` layer: memory, pids, cpu and io limits on the whole sandbox tree.
//!
//! Owns the `layers: cgroups:` profile section, the host probe (v1, v2 or hybrid, decided by
//! what is mounted), delegation checks for unprivileged users, creating the cgroup
//! `lasagna-<pid>-<nonce>` with its limits before the payload exists, placing the child in
//! it (v2: an O_PATH fd for clone3 CLONE_INTO_CGROUP; v1: `attach`), reading usage, killing
//! every process in it, and removing every directory it made.
//!
//! Supervisor side only: nothing here runs in the child. cgroups-rs is used through its
//! filesystem controllers only; its systemd (D-Bus) manager starts threads, and the
//! supervisor must stay single-threaded until the clone.
//!
//! Where a limit lands:
//! - v2 (unified): one directory; controllers enabled in the parent's `cgroup.subtree_control`
//!   only where missing (reported).
//! - v1 / hybrid: one directory per controller hierarchy the profile needs. On a hybrid host
//!   a controller-less v2 cgroup of the same name is added when the v2 parent is writable: it
//!   gives CLONE_INTO_CGROUP placement, `cgroup.kill` and `cpu.stat` without the freezer.

mod active;
mod error;
mod explain;
mod plan;
mod section;
pub mod v1;
pub mod v2;

#[cfg(test)]
mod tests;

pub use crate::host::cgroups::{CgroupHost, Layout};
pub use active::{sweep_parents, sweep_stale, ActiveCgroup, OomKill, Placement, Usage};
pub use error::CgroupError;
pub use explain::{doctor, explain, human, needs};
pub use plan::{plan, rlimit_fallback, unenforced, Backend, Plan, Planned, RlimitFallback};
pub use section::{
    Config, Controller, CpuSection, IoSection, Limits, MemorySection, PidsSection, Section,
};

/// cpu.max / cfs period: 100 ms, the kernel default.
pub const CPU_PERIOD_US: u64 = 100_000;
