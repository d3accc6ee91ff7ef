//! The `filesystem` layer: a mount namespace whose root is an empty tmpfs, filled with
//! read-only and read-write binds, tmpfs, directories, symlinks, inline files and masks,
//! a fresh `/proc` with its dangerous files read-only or masked, and a minimal `/dev`.
//!
//! The child switches root with `pivot_root` and detaches the old root, so no path leads
//! back to the host tree (unlike chroot).
//!
//! - [`section`]: the section as written, its validation into [`Config`] and its [`Op`]s;
//! - [`plan`]: the layer's decision on this host and the child's steps prepared from the view;
//! - [`view`]: the plan, made before anything exists: every bind source resolved on the
//!   host through descriptors ([`crate::hostfs`]), every mount point placed (on lasagna's
//!   own tmpfs, or in a bound host directory), what must be created on the host, and how a
//!   path inside the sandbox maps to the host (for Landlock's rule paths);
//! - [`idmap`]: as root, the idmapped binds' trees, made by the supervisor before the clone;
//! - [`host`]: the supervisor's only writes to host directories (mount points a profile
//!   needs inside a bound directory), through descriptors, undone after the run;
//! - [`apply`]: the child side, run between clone and execve on what [`prepare`] made;
//! - [`explain`]: the plain-words lines.

pub mod apply;
pub mod explain;
mod guard;
pub mod host;
pub mod idmap;
mod plan;
mod section;
#[cfg(test)]
mod tests;
pub mod view;

pub use apply::child_apply;
pub use explain::explain;
pub use guard::Kept;
pub use host::HostChanges;
pub use plan::{plan, prepare, Prepared, DEV_NODES, PROC_MASKED, PROC_READ_ONLY};
pub use section::*;
pub use view::{FsPlan, Place};

const LAYER: &str = "filesystem";
