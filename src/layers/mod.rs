//! The defense layers. Each module owns one layer: its profile section, what it needs from
//! the host, how it is prepared in the supervisor, what the child applies, and what it
//! observes afterwards. Nothing outside a layer's module knows how that layer works.

pub mod capabilities;
pub mod cgroups;
pub mod filesystem;
pub mod landlock;
pub mod namespaces;
pub mod network;
pub mod process;
pub mod rlimits;
pub mod seccomp;
