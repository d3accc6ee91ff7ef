//! The defense layers. Each module owns one layer: its profile section, what it needs from
//! the host, how it is prepared in the supervisor, what the child applies, and what it
//! observes afterwards. Nothing outside a layer's module knows how that layer works.

use std::fmt;
use std::io::Write;

use nix::errno::Errno;
use serde::Serialize;

use crate::launch::At;

pub mod capabilities;
pub mod cgroups;
pub mod filesystem;
pub mod landlock;
pub mod namespaces;
pub mod process;
pub mod rlimits;
pub mod seccomp;

/// Every layer, in launch order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layer {
    Namespaces,
    Filesystem,
    Cgroups,
    Capabilities,
    Rlimits,
    Process,
    Landlock,
    Seccomp,
}

impl Layer {
    pub const ALL: [Layer; 8] = [
        Layer::Namespaces,
        Layer::Filesystem,
        Layer::Cgroups,
        Layer::Capabilities,
        Layer::Rlimits,
        Layer::Process,
        Layer::Landlock,
        Layer::Seccomp,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Layer::Namespaces => "namespaces",
            Layer::Filesystem => "filesystem",
            Layer::Cgroups => "cgroups",
            Layer::Capabilities => "capabilities",
            Layer::Rlimits => "rlimits",
            Layer::Process => "process",
            Layer::Landlock => "landlock",
            Layer::Seccomp => "seccomp",
        }
    }

    pub fn from_name(name: &str) -> Option<Layer> {
        Layer::ALL.into_iter().find(|l| l.name() == name)
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the plan decided for one layer, before anything is created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "decision", content = "reason", rename_all = "kebab-case")]
pub enum Decision {
    /// Applied in full.
    Apply,
    /// Applied in part (best-effort); the reason says what was dropped.
    Degrade(String),
    /// Not applied (mode off, `--without`, or best-effort with nothing to give).
    Skip(String),
    /// Required but the host cannot give it: the run stops with exit 125.
    Refuse(String),
}

impl Decision {
    pub fn applies(&self) -> bool {
        matches!(self, Decision::Apply | Decision::Degrade(_))
    }
}

/// A failure in the child, before execve. Formatted into a fixed buffer and sent to the
/// supervisor over the status pipe: no allocation on the child side.
#[derive(Debug, Clone, Copy)]
pub struct ChildError<'a> {
    /// The launch step that failed (its layer, if any, comes from the launch table).
    pub at: At,
    /// What the step was doing.
    pub step: &'static str,
    pub errno: Errno,
    /// The item the step was working on (a path, a name), or empty.
    pub detail: &'a [u8],
}

impl<'a> ChildError<'a> {
    pub fn new(at: At, step: &'static str, errno: Errno) -> ChildError<'a> {
        ChildError {
            at,
            step,
            errno,
            detail: b"",
        }
    }

    pub fn with_detail(mut self, detail: &'a [u8]) -> ChildError<'a> {
        self.detail = detail;
        self
    }

    /// Encode as `F` then `at\tstep\terrno\tdetail` into `buf`; returns the bytes written.
    pub fn encode(&self, buf: &mut [u8]) -> usize {
        let mut cursor = std::io::Cursor::new(buf);
        let _ = write!(
            cursor,
            "F{}\t{}\t{}\t",
            self.at as u8, self.step, self.errno as i32
        );
        let _ = cursor.write(self.detail);
        cursor.position() as usize
    }
}

/// Map an `Errno` result into a `ChildError` for a launch step.
pub trait ChildContext<T> {
    fn step(self, at: At, step: &'static str) -> Result<T, ChildError<'static>>;
    fn step_on<'a>(self, at: At, step: &'static str, detail: &'a [u8])
        -> Result<T, ChildError<'a>>;
}

impl<T> ChildContext<T> for Result<T, Errno> {
    fn step(self, at: At, step: &'static str) -> Result<T, ChildError<'static>> {
        self.map_err(|e| ChildError::new(at, step, e))
    }

    fn step_on<'a>(
        self,
        at: At,
        step: &'static str,
        detail: &'a [u8],
    ) -> Result<T, ChildError<'a>> {
        self.map_err(|e| ChildError::new(at, step, e).with_detail(detail))
    }
}
