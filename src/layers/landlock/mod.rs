//! The `landlock` layer: an allow-list of filesystem rights per path, TCP ports for bind and
//! connect, and IPC scopes, enforced by the kernel's Landlock LSM on the payload and every
//! process it starts. It holds even when the mount view is wrong: a file the filesystem layer
//! binds in by mistake is still out of reach unless a rule here grants it.
//!
//! # Profile section (`layers: landlock:`)
//! ```yaml
//! mode: required            # required | best-effort | off
//! abi: 4                    # optional: use at most this Landlock ABI (to test degradation)
//! allow-missing: false      # true: every rule path may be absent inside the sandbox
//! read: [/usr, /etc]
//! write: [/tmp]
//! exec: [/usr/bin]
//! rules:
//!   - { path: /dev/null, access: [read-file, write-file] }
//!   - { path: /opt/tool, access: [exec], optional: true }
//! net: { bind: [8080], connect: [443] }
//! scope: [abstract-unix-socket, signal]
//! ```
//! Paths are as seen inside the sandbox (after the filesystem layer's `pivot_root`).
//!
//! # What the intents grant
//! A rule on a directory covers everything below it; on a file, only that file (and only the
//! file rights of the set: `read-dir`, `remove-*`, `make-*` and `refer` are dropped there).
//! - `read`  = `read-file` + `read-dir`.
//! - `exec`  = `execute` + `read-file` (an interpreter or a loader reads what it runs).
//! - `write` = `read` + `write-file` + `truncate` + `remove-dir` + `remove-file` + every
//!   `make-*` + `refer` + `ioctl-dev` + `resolve-unix`: a tree the payload owns. A write-only
//!   tree is written as a `rules:` entry with exact rights.
//!
//! `rules: access:` takes exact rights (`read-file`, `write-file`, `execute`, `read-dir`,
//! `remove-dir`, `remove-file`, `make-char`, `make-dir`, `make-reg`, `make-sock`, `make-fifo`,
//! `make-block`, `make-sym`, `refer`, `truncate`, `ioctl-dev`, `resolve-unix`) and the intent
//! words above. Several rules on one path are merged into one.
//!
//! # Handled rights
//! Every filesystem right the ABI in use knows is handled, so a right not granted is denied.
//! TCP bind and connect are handled when `net` is present (so `net: {}` denies all TCP bind
//! and connect); scopes only when `scope` lists them.
//!
//! # Negotiation (supervisor, before the clone)
//! [`plan`] compares what the profile names with the ABI in use (the host's, lowered by
//! `abi:`). `required`: anything named that the ABI cannot enforce refuses the run, naming the
//! missing piece and the fix. `best-effort`: it is dropped and the decision says exactly what
//! (`net rules dropped: ABI 3 < 4`). Rights a newer ABI would restrict but this one leaves open
//! (e.g. `truncate` below ABI 3) are listed in [`Plan::unrestricted`] in both modes.
//!
//! # Child side
//! [`child_apply`] runs in the payload after the mounts and `pivot_root`, right before seccomp:
//! it opens each rule path `O_PATH|O_CLOEXEC`, adds the rules to one ruleset and calls
//! `landlock_restrict_self`. A missing rule path is an error unless the rule is optional. It
//! never panics; every failure is a [`ChildError`] naming the step and the path. The crate
//! allocates while building the ruleset; every path and mask is prepared in [`prepare`].
//!
//! Files: `section` (the section and its check), `plan` (negotiation and the prepared rules),
//! `apply` (the child side), `explain` (plain words and host facts).

mod apply;
pub mod audit;
mod explain;
mod plan;
mod section;
#[cfg(test)]
mod tests;

pub use apply::{
    child_apply, decode_status, encode_status, AppliedStatus, Enforcement, LandlockSeen,
};
pub use explain::{describe_access, doctor, explain, host_abi, needs};
pub use plan::{plan, prepare, Plan, Prepared, PreparedRule};
pub use section::{
    mptcp_gap, uses_net_rules, Config, Missing, NetPolicy, NetSection, PathRule, RuleSection,
    Section,
};

use landlock::{make_bitflags, AccessFs, AccessNet, BitFlags, Scope};

pub(super) const LAYER: crate::launch::At = crate::launch::At::Landlock;

/// The highest Landlock ABI whose rights this module knows how to name and grant.
pub const MAX_KNOWN_ABI: u32 = 9;

/// First ABI with TCP port rules.
pub(super) const NET_ABI: u32 = 4;
/// First ABI with scopes.
pub(super) const SCOPE_ABI: u32 = 6;

/// Every filesystem right with its profile name and the first ABI that knows it.
pub(super) const FS_RIGHTS: [(&str, AccessFs, u32); 17] = [
    ("execute", AccessFs::Execute, 1),
    ("write-file", AccessFs::WriteFile, 1),
    ("read-file", AccessFs::ReadFile, 1),
    ("read-dir", AccessFs::ReadDir, 1),
    ("remove-dir", AccessFs::RemoveDir, 1),
    ("remove-file", AccessFs::RemoveFile, 1),
    ("make-char", AccessFs::MakeChar, 1),
    ("make-dir", AccessFs::MakeDir, 1),
    ("make-reg", AccessFs::MakeReg, 1),
    ("make-sock", AccessFs::MakeSock, 1),
    ("make-fifo", AccessFs::MakeFifo, 1),
    ("make-block", AccessFs::MakeBlock, 1),
    ("make-sym", AccessFs::MakeSym, 1),
    ("refer", AccessFs::Refer, 2),
    ("truncate", AccessFs::Truncate, 3),
    ("ioctl-dev", AccessFs::IoctlDev, 5),
    ("resolve-unix", AccessFs::ResolveUnix, 9),
];

pub(super) const SCOPES: [(&str, Scope); 2] = [
    ("abstract-unix-socket", Scope::AbstractUnixSocket),
    ("signal", Scope::Signal),
];

/// The kernel release that brought each ABI, for hints.
pub(super) fn linux_release(abi: u32) -> &'static str {
    match abi {
        0 | 1 => "5.13",
        2 => "5.19",
        3 => "6.2",
        4 => "6.7",
        5 => "6.10",
        6 => "6.12",
        7 => "6.15",
        8 => "7.0",
        _ => "7.1",
    }
}

/// `read`: list directories and read files.
pub fn read_rights() -> BitFlags<AccessFs> {
    make_bitflags!(AccessFs::{ReadFile | ReadDir})
}

/// `exec`: run files, and read them (loaders and interpreters do).
pub fn exec_rights() -> BitFlags<AccessFs> {
    make_bitflags!(AccessFs::{Execute | ReadFile})
}

/// `write`: `read` plus every right that changes the tree or a file's content.
pub fn write_rights() -> BitFlags<AccessFs> {
    read_rights()
        | make_bitflags!(AccessFs::{
            WriteFile | Truncate | RemoveDir | RemoveFile | MakeChar | MakeDir | MakeReg
            | MakeSock | MakeFifo | MakeBlock | MakeSym | Refer | IoctlDev | ResolveUnix
        })
}

/// Whether a profile's access name (`write`, or a fine-grained one) grants more than `read`
/// and `exec` do: what a read-only bind given on the command line takes from the rules on
/// its path, so that its Landlock rights are those of `--ro-bind`.
pub fn grants_beyond_read_exec(name: &str) -> bool {
    let beyond = write_rights() & !(read_rights() | exec_rights());
    match name {
        "write" => true,
        "read" | "exec" => false,
        _ => FS_RIGHTS
            .iter()
            .any(|(n, right, _)| *n == name && beyond.contains(*right)),
    }
}

/// Rights that mean something on a non-directory (the kernel rejects the others with EINVAL).
pub(super) fn file_rights() -> BitFlags<AccessFs> {
    make_bitflags!(AccessFs::{
        ReadFile | WriteFile | Execute | Truncate | IoctlDev | ResolveUnix
    })
}

/// The filesystem rights an ABI knows (as far as this module names them).
pub(super) fn fs_rights_of(abi: u32) -> BitFlags<AccessFs> {
    FS_RIGHTS
        .iter()
        .filter(|(_, _, since)| *since <= abi)
        .fold(BitFlags::EMPTY, |acc, (_, right, _)| acc | *right)
}

pub(super) fn tcp_rights() -> BitFlags<AccessNet> {
    AccessNet::BindTcp | AccessNet::ConnectTcp
}
