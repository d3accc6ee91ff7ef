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

use std::collections::BTreeMap;
use std::ffi::CString;

use crate::types::Spanned;
use landlock::{
    make_bitflags, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, NetPort, PathBeneath,
    Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetError, RulesetStatus, Scope,
};
use nix::errno::Errno;
use nix::sys::stat::SFlag;
use serde::{Deserialize, Serialize};

use crate::launch::{ChildContext, ChildError, Decision};
use crate::types::{parse_path, Loc, ProfileError, Requirement, SandboxPath};

const LAYER: crate::launch::At = crate::launch::At::Landlock;

/// The highest Landlock ABI whose rights this module knows how to name and grant.
pub const MAX_KNOWN_ABI: u32 = 9;

/// First ABI with TCP port rules.
const NET_ABI: u32 = 4;
/// First ABI with scopes.
const SCOPE_ABI: u32 = 6;

/// Every filesystem right with its profile name and the first ABI that knows it.
const FS_RIGHTS: [(&str, AccessFs, u32); 17] = [
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

const SCOPES: [(&str, Scope); 2] = [
    ("abstract-unix-socket", Scope::AbstractUnixSocket),
    ("signal", Scope::Signal),
];

/// The kernel release that brought each ABI, for hints.
fn linux_release(abi: u32) -> &'static str {
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

/// Rights that mean something on a non-directory (the kernel rejects the others with EINVAL).
fn file_rights() -> BitFlags<AccessFs> {
    make_bitflags!(AccessFs::{
        ReadFile | WriteFile | Execute | Truncate | IoctlDev | ResolveUnix
    })
}

/// The filesystem rights an ABI knows (as far as this module names them).
fn fs_rights_of(abi: u32) -> BitFlags<AccessFs> {
    FS_RIGHTS
        .iter()
        .filter(|(_, _, since)| *since <= abi)
        .fold(BitFlags::EMPTY, |acc, (_, right, _)| acc | *right)
}

fn tcp_rights() -> BitFlags<AccessNet> {
    AccessNet::BindTcp | AccessNet::ConnectTcp
}

// ---------------------------------------------------------------------------------------------
// Profile section

/// `layers: landlock:` as written.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Section {
    /// `None` when not written: `extends` then keeps the parent's mode (default required).
    #[serde(default)]
    pub mode: Option<Requirement>,
    /// Use at most this ABI, even if the host has a newer one.
    #[serde(default)]
    pub abi: Option<Spanned<u32>>,
    /// Every rule path may be absent inside the sandbox (default: absent = error).
    #[serde(default)]
    pub allow_missing: Option<bool>,
    #[serde(default)]
    pub read: Vec<Spanned<String>>,
    #[serde(default)]
    pub write: Vec<Spanned<String>>,
    #[serde(default)]
    pub exec: Vec<Spanned<String>>,
    #[serde(default)]
    pub rules: Vec<RuleSection>,
    #[serde(default)]
    pub net: Option<NetSection>,
    #[serde(default)]
    pub scope: Option<Vec<Spanned<String>>>,
}

crate::merge_fields!(Section {
    mode: or,
    abi: or,
    allow_missing: or,
    read: append,
    write: append,
    exec: append,
    rules: append,
    net: nested,
    scope: append
});

/// One `rules:` entry: exact rights on one path.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RuleSection {
    pub path: Spanned<String>,
    pub access: Vec<Spanned<String>>,
    /// The path may be absent inside the sandbox; the rule is then skipped.
    #[serde(default)]
    pub optional: bool,
}

/// `net:` TCP ports the payload may bind and connect to; every other port is denied.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct NetSection {
    #[serde(default)]
    pub bind: Vec<Spanned<u32>>,
    #[serde(default)]
    pub connect: Vec<Spanned<u32>>,
}

crate::merge_fields!(NetSection {
    bind: append,
    connect: append
});

// ---------------------------------------------------------------------------------------------
// Validated policy

/// What to do when a rule path does not exist inside the sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Missing {
    /// The run fails (the default: a typo must not silently narrow or widen the policy).
    Error,
    /// The rule is skipped (`optional: true` or `allow-missing: true`).
    Skip,
}

/// Rights granted beneath one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathRule {
    pub path: SandboxPath,
    pub access: BitFlags<AccessFs>,
    pub missing: Missing,
}

/// TCP ports, sorted and without duplicates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetPolicy {
    pub bind: Vec<u16>,
    pub connect: Vec<u16>,
}

/// The checked section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub mode: Requirement,
    pub abi_cap: Option<u32>,
    /// One rule per path, in the order the paths first appear.
    pub paths: Vec<PathRule>,
    /// `None`: TCP is not handled.
    pub net: Option<NetPolicy>,
    /// `None` or empty: no scope is handled.
    pub scopes: Option<BitFlags<Scope>>,
}

/// Check the section: absolute paths, known rights and scopes, ports in range.
fn checked(section: &Section) -> Result<Config, ProfileError> {
    let abi_cap = match &section.abi {
        None => None,
        Some(abi) if (1..=MAX_KNOWN_ABI).contains(&abi.value) => Some(abi.value),
        Some(abi) => {
            return Err(ProfileError::at(
                Loc::of(abi),
                format!(
                    "landlock abi {} is not one this build knows (1 to {MAX_KNOWN_ABI})",
                    abi.value
                ),
            )
            .hint("remove `abi:` to use the host's ABI"))
        }
    };
    let default_missing = match section.allow_missing {
        Some(true) => Missing::Skip,
        _ => Missing::Error,
    };

    let mut paths: Vec<PathRule> = Vec::new();
    let mut add = |path: SandboxPath, access: BitFlags<AccessFs>, missing: Missing| {
        match paths.iter_mut().find(|r| r.path == path) {
            Some(rule) => {
                rule.access |= access;
                // A path some entry requires stays required.
                if missing == Missing::Error {
                    rule.missing = Missing::Error;
                }
            }
            None => paths.push(PathRule {
                path,
                access,
                missing,
            }),
        }
    };
    for (list, access) in [
        (&section.read, read_rights()),
        (&section.write, write_rights()),
        (&section.exec, exec_rights()),
    ] {
        for raw in list {
            add(parse_path(raw)?, access, default_missing);
        }
    }
    for rule in &section.rules {
        let path = parse_path(&rule.path)?;
        if rule.access.is_empty() {
            return Err(ProfileError::at(
                Loc::of(&rule.path),
                format!("landlock rule for {path} grants no access"),
            )
            .hint("list rights under access:, e.g. access: [read-file]"));
        }
        let mut access = BitFlags::EMPTY;
        for name in &rule.access {
            access |= parse_access(name)?;
        }
        let missing = if rule.optional {
            Missing::Skip
        } else {
            default_missing
        };
        add(path, access, missing);
    }

    let net = match &section.net {
        None => None,
        Some(net) => Some(NetPolicy {
            bind: parse_ports(&net.bind)?,
            connect: parse_ports(&net.connect)?,
        }),
    };
    let scopes = match &section.scope {
        None => None,
        Some(names) => {
            let mut scopes = BitFlags::EMPTY;
            for name in names {
                scopes |= parse_scope(name)?;
            }
            Some(scopes)
        }
    };
    Ok(Config {
        mode: section.mode.unwrap_or_default(),
        abi_cap,
        paths,
        net,
        scopes,
    })
}

fn parse_access(name: &Spanned<String>) -> Result<BitFlags<AccessFs>, ProfileError> {
    let word = name.value.as_str();
    match word {
        "read" => return Ok(read_rights()),
        "write" => return Ok(write_rights()),
        "exec" => return Ok(exec_rights()),
        _ => {}
    }
    if let Some((_, right, _)) = FS_RIGHTS.iter().find(|(n, _, _)| *n == word) {
        return Ok((*right).into());
    }
    let known = FS_RIGHTS
        .iter()
        .map(|(n, _, _)| *n)
        .chain(["read", "write", "exec"]);
    Err(unknown_name(name, "access right", known))
}

fn parse_scope(name: &Spanned<String>) -> Result<Scope, ProfileError> {
    SCOPES
        .iter()
        .find(|(n, _)| *n == name.value)
        .map(|(_, s)| *s)
        .ok_or_else(|| unknown_name(name, "scope", SCOPES.iter().map(|(n, _)| *n)))
}

fn parse_ports(raw: &[Spanned<u32>]) -> Result<Vec<u16>, ProfileError> {
    let mut ports = Vec::with_capacity(raw.len());
    for port in raw {
        let value = u16::try_from(port.value).map_err(|_| {
            ProfileError::at(
                Loc::of(port),
                format!("tcp port {} is out of range (0 to 65535)", port.value),
            )
        })?;
        ports.push(value);
    }
    ports.sort_unstable();
    ports.dedup();
    Ok(ports)
}

/// `unknown access right "read-fil"` with the closest known name as a hint.
fn unknown_name<'a>(
    name: &Spanned<String>,
    what: &str,
    known: impl Iterator<Item = &'a str> + Clone,
) -> ProfileError {
    let err = ProfileError::at(
        Loc::of(name),
        format!("unknown landlock {what} {:?}", name.value),
    );
    match crate::text::suggest(&name.value, known.clone()) {
        Some(k) => err.hint(format!("did you mean {k:?}?")),
        None => err.hint(format!("known: {}", known.collect::<Vec<_>>().join(", "))),
    }
}

/// Whether the policy restricts TCP ports. Landlock's TCP rules do not cover MPTCP sockets
/// (landlock-lsm/linux#54), so the seccomp layer must deny `socket(.., IPPROTO_MPTCP)`.
pub fn uses_net_rules(policy: &Config) -> bool {
    policy.net.is_some()
}

/// The report line for the MPTCP gap, when TCP ports are restricted but seccomp, which would
/// close it, is not applied.
pub fn mptcp_gap(policy: &Config, seccomp: &Decision) -> Option<String> {
    (uses_net_rules(policy) && !seccomp.applies()).then(|| {
        "landlock: tcp port rules do not cover MPTCP sockets (IPPROTO_MPTCP) and seccomp, \
         which would deny them, is not applied"
            .to_string()
    })
}

// ---------------------------------------------------------------------------------------------
// Host

/// The host's Landlock ABI; 0 when Landlock is not built in or not enabled.
pub fn host_abi() -> u32 {
    crate::sys::landlock::abi_version().unwrap_or(0)
}

/// Facts for `lasagna doctor`.
pub fn doctor() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let abi = match crate::sys::landlock::abi_version() {
        Ok(abi) => format!(
            "{abi} (Linux {}+ feature set; lasagna uses up to {MAX_KNOWN_ABI})",
            linux_release(abi.min(MAX_KNOWN_ABI))
        ),
        Err(Errno::EOPNOTSUPP) => {
            "unavailable: built into the kernel but not enabled (EOPNOTSUPP); add landlock to \
             the lsm= boot parameter"
                .to_string()
        }
        Err(Errno::ENOSYS) => "unavailable: kernel built without Landlock (ENOSYS)".to_string(),
        Err(e) => format!("unknown: the version probe failed with {e}"),
    };
    out.push(("landlock abi".to_string(), abi));
    let lsm = match std::fs::read_to_string("/sys/kernel/security/lsm") {
        Ok(list) => {
            let list = list.trim();
            if list.split(',').any(|l| l == "landlock") {
                format!("yes ({list})")
            } else {
                format!("no ({list})")
            }
        }
        Err(e) => format!(
            "unknown: cannot read /sys/kernel/security/lsm ({e}; securityfs not mounted?); \
             relying on the abi probe"
        ),
    };
    out.push(("landlock in active lsm list".to_string(), lsm));
    out
}

// ---------------------------------------------------------------------------------------------
// Negotiation (supervisor side)

/// What will be enforced, decided from the policy and the ABI in use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The host's ABI (0: no Landlock).
    pub host_abi: u32,
    /// The ABI the ruleset is built for: the host's, lowered by `abi:`.
    pub abi: u32,
    pub handled_fs: BitFlags<AccessFs>,
    pub handled_net: BitFlags<AccessNet>,
    pub scopes: BitFlags<Scope>,
    /// Path rules with their rights cut to `handled_fs`.
    pub paths: Vec<PathRule>,
    /// Ports, empty when TCP is not handled.
    pub net: NetPolicy,
    /// What the profile names that this ABI cannot enforce (dropped in best-effort).
    pub dropped: Vec<String>,
    /// Rights a newer ABI would deny that this one leaves open to the payload.
    pub unrestricted: Vec<String>,
}

/// Decide, before the clone, what this host (or the `abi:` cap) can enforce.
pub fn plan(
    policy: &Config,
    mode: Requirement,
    host_abi: u32,
    abi_cap: Option<u32>,
) -> (Decision, Plan) {
    let abi = host_abi.min(abi_cap.unwrap_or(u32::MAX)).min(MAX_KNOWN_ABI);
    let capped = abi < host_abi.min(MAX_KNOWN_ABI);
    let handled_fs = fs_rights_of(abi);
    let mut dropped = Vec::new();

    // Rights the profile grants that the ABI does not know.
    let mut missing_rights: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for (name, right, since) in FS_RIGHTS {
        if since <= abi {
            continue;
        }
        let on: Vec<&str> = policy
            .paths
            .iter()
            .filter(|r| explicit(r.access).contains(right))
            .map(|r| r.path.as_str())
            .collect();
        if !on.is_empty() {
            missing_rights
                .entry(since)
                .or_default()
                .push(format!("{name} on {}", on.join(", ")));
        }
    }
    for (since, items) in missing_rights {
        dropped.push(format!(
            "rights dropped ({}): ABI {abi} < {since}",
            items.join("; ")
        ));
    }
    let handled_net = match &policy.net {
        Some(_) if abi >= NET_ABI => tcp_rights(),
        Some(_) => {
            dropped.push(format!("net rules dropped: ABI {abi} < {NET_ABI}"));
            BitFlags::EMPTY
        }
        None => BitFlags::EMPTY,
    };
    let scopes = match policy.scopes {
        Some(s) if !s.is_empty() && abi < SCOPE_ABI => {
            dropped.push(format!("scopes dropped: ABI {abi} < {SCOPE_ABI}"));
            BitFlags::EMPTY
        }
        Some(s) => s,
        None => BitFlags::EMPTY,
    };

    let unrestricted = if abi == 0 {
        Vec::new()
    } else {
        FS_RIGHTS
            .iter()
            .filter(|(_, _, since)| *since > abi)
            .map(|(name, right, since)| {
                if *right == AccessFs::Refer {
                    // ABI 1 denies every cross-directory rename and link instead.
                    format!(
                        "refer cannot be granted (cross-directory rename and link are always \
                         denied): ABI {abi} < {since}"
                    )
                } else {
                    format!("{name} is not restricted: ABI {abi} < {since}")
                }
            })
            .collect()
    };
    let paths = policy
        .paths
        .iter()
        .filter_map(|r| {
            let access = r.access & handled_fs;
            (!access.is_empty()).then(|| PathRule {
                access,
                ..r.clone()
            })
        })
        .collect();
    let net = if handled_net.is_empty() {
        NetPolicy::default()
    } else {
        policy.net.clone().unwrap_or_default()
    };
    let plan = Plan {
        host_abi,
        abi,
        handled_fs,
        handled_net,
        scopes,
        paths,
        net,
        dropped,
        unrestricted,
    };

    let cap_note = if capped {
        format!(" (abi: {abi} caps the host's ABI {host_abi})")
    } else {
        String::new()
    };
    let decision = match mode {
        Requirement::Off => Decision::Skip("mode: off".into()),
        Requirement::Required if host_abi == 0 => Decision::Refuse(
            "landlock: not available on this kernel (the ABI probe failed); \
             fix: enable Landlock (lsm= boot parameter) or set mode: best-effort"
                .into(),
        ),
        Requirement::BestEffort if host_abi == 0 => {
            Decision::Skip("landlock is not available on this kernel; nothing enforced".into())
        }
        Requirement::Required if !plan.dropped.is_empty() => {
            let needed = required_abi(policy);
            let fix = if capped && needed <= host_abi {
                format!("raise or remove `abi: {abi}` (the host has {host_abi})")
            } else {
                format!(
                    "run on Linux {}+ (Landlock ABI {needed})",
                    linux_release(needed)
                )
            };
            Decision::Refuse(format!(
                "landlock: {}{cap_note}; fix: {fix}, or set mode: best-effort",
                plan.dropped.join("; ")
            ))
        }
        Requirement::BestEffort if !plan.dropped.is_empty() => {
            Decision::Degrade(format!("{}{cap_note}", plan.dropped.join("; ")))
        }
        Requirement::Required | Requirement::BestEffort => Decision::Apply,
    };
    (decision, plan)
}

/// Rights a rule names on its own, not through the `write` intent's reach into newer ABIs:
/// `write` on ABI 7 is not a request for `resolve-unix`, only a grant of it where known.
fn explicit(access: BitFlags<AccessFs>) -> BitFlags<AccessFs> {
    if access.contains(write_rights()) {
        access & !write_rights()
    } else {
        access
    }
}

/// The lowest ABI that enforces everything the policy names.
fn required_abi(policy: &Config) -> u32 {
    let rights = FS_RIGHTS
        .iter()
        .filter(|(_, right, _)| {
            policy
                .paths
                .iter()
                .any(|r| explicit(r.access).contains(*right))
        })
        .map(|(_, _, since)| *since)
        .max()
        .unwrap_or(1);
    let net = if policy.net.is_some() { NET_ABI } else { 1 };
    let scope = match policy.scopes {
        Some(s) if !s.is_empty() => SCOPE_ABI,
        _ => 1,
    };
    rights.max(net).max(scope)
}

// ---------------------------------------------------------------------------------------------
// Prepared data and the child side

/// One path rule, ready for the child: a C path and a mask.
#[derive(Debug, Clone)]
pub struct PreparedRule {
    pub path: CString,
    pub access: BitFlags<AccessFs>,
    pub missing: Missing,
}

/// Everything [`child_apply`] needs, built in the supervisor.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub abi: u32,
    /// The plan dropped something the profile named (best-effort).
    pub degraded: bool,
    pub handled_fs: BitFlags<AccessFs>,
    pub handled_net: BitFlags<AccessNet>,
    pub scopes: BitFlags<Scope>,
    pub rules: Vec<PreparedRule>,
    /// One entry per port, with the union of bind/connect rights on it.
    pub ports: Vec<(u16, BitFlags<AccessNet>)>,
}

/// Turn the plan into C paths and masks.
pub fn prepare(plan: &Plan) -> Prepared {
    let rules = plan
        .paths
        .iter()
        .map(|r| PreparedRule {
            // A SandboxPath never holds a NUL byte.
            path: CString::new(r.path.as_str()).unwrap_or_default(),
            access: r.access,
            missing: r.missing,
        })
        .collect();
    let mut ports: BTreeMap<u16, BitFlags<AccessNet>> = BTreeMap::new();
    for port in &plan.net.bind {
        *ports.entry(*port).or_default() |= AccessNet::BindTcp;
    }
    for port in &plan.net.connect {
        *ports.entry(*port).or_default() |= AccessNet::ConnectTcp;
    }
    Prepared {
        abi: plan.abi,
        degraded: !plan.dropped.is_empty(),
        handled_fs: plan.handled_fs,
        handled_net: plan.handled_net,
        scopes: plan.scopes,
        rules,
        ports: ports.into_iter().collect(),
    }
}

/// How much of the profile's Landlock policy holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Enforcement {
    Full,
    Partial,
    None,
}

/// What the payload's Landlock step reported before execve: the kernel's own status of
/// the ruleset it enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct LandlockSeen {
    pub enforcement: crate::layers::landlock::Enforcement,
    pub abi: u32,
    pub path_rules: u32,
    pub port_rules: u32,
    pub skipped_missing: u32,
}

/// `L` record of the status pipe: what the kernel said it enforced, written by the payload
/// right after `landlock_restrict_self` into a stack buffer (no allocation).
pub fn encode_status(st: &AppliedStatus, buf: &mut [u8]) -> usize {
    use std::io::Write;
    let enforcement = match st.enforcement {
        Enforcement::Full => 'F',
        Enforcement::Partial => 'P',
        Enforcement::None => 'N',
    };
    let mut cursor = std::io::Cursor::new(buf);
    let _ = writeln!(
        cursor,
        "L{enforcement}\t{}\t{}\t{}\t{}",
        st.abi, st.path_rules, st.port_rules, st.skipped_missing
    );
    cursor.position() as usize
}

/// The supervisor's side of [`encode_status`] (without the `L` and the newline).
pub fn decode_status(body: &[u8]) -> Option<LandlockSeen> {
    let text = std::str::from_utf8(body).ok()?;
    let mut parts = text.split('\t');
    let enforcement = match parts.next()? {
        "F" => Enforcement::Full,
        "P" => Enforcement::Partial,
        "N" => Enforcement::None,
        _ => return None,
    };
    let mut num = || parts.next()?.parse::<u32>().ok();
    Some(LandlockSeen {
        enforcement,
        abi: num()?,
        path_rules: num()?,
        port_rules: num()?,
        skipped_missing: num()?,
    })
}

/// What the child enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AppliedStatus {
    pub abi: u32,
    pub enforcement: Enforcement,
    pub path_rules: u32,
    pub port_rules: u32,
    /// Optional rule paths that did not exist and were skipped.
    pub skipped_missing: u32,
    pub no_new_privs: bool,
}

/// Child side, after `pivot_root`, before seccomp: build one ruleset and restrict the process.
///
/// Compatibility is a hard requirement here: [`plan`] already cut the request to the ABI
/// in use, so anything the kernel refuses now is an error, not a silent downgrade.
pub fn child_apply(prepared: &Prepared) -> Result<AppliedStatus, ChildError<'_>> {
    let fail =
        |step: &'static str| move |e: RulesetError| ChildError::new(LAYER, step, errno_of(&e));

    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(prepared.handled_fs)
        .map_err(fail("handle filesystem access"))?;
    if !prepared.handled_net.is_empty() {
        ruleset = ruleset
            .handle_access(prepared.handled_net)
            .map_err(fail("handle network access"))?;
    }
    if !prepared.scopes.is_empty() {
        ruleset = ruleset.scope(prepared.scopes).map_err(fail("set scopes"))?;
    }
    let mut ruleset = ruleset.create().map_err(fail("create ruleset"))?;

    let mut path_rules = 0;
    let mut skipped_missing = 0;
    for rule in &prepared.rules {
        let detail = rule.path.to_bytes();
        // Never through a link: the plan resolved the links the view makes, so one met here
        // was planted since, and a rule must not follow it to another tree.
        let fd = match crate::sys::open_no_symlinks(rule.path.as_c_str()) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) if rule.missing == Missing::Skip => {
                skipped_missing += 1;
                continue;
            }
            Err(Errno::ELOOP) => {
                return Err(ChildError::new(
                    LAYER,
                    "rule path passes through a symlink",
                    Errno::ELOOP,
                )
                .with_detail(detail))
            }
            Err(e) => return Err(ChildError::new(LAYER, "open rule path", e).with_detail(detail)),
        };
        let stat = nix::sys::stat::fstat(&fd).step_on(LAYER, "stat rule path", detail)?;
        let is_dir = stat.st_mode & SFlag::S_IFMT.bits() == SFlag::S_IFDIR.bits();
        let access = if is_dir {
            rule.access
        } else {
            rule.access & file_rights()
        };
        if access.is_empty() {
            return Err(ChildError::new(
                LAYER,
                "rule grants only directory rights to a file",
                Errno::ENOTDIR,
            )
            .with_detail(detail));
        }
        ruleset = ruleset
            .add_rule(PathBeneath::new(fd, access))
            .map_err(|e| {
                ChildError::new(LAYER, "add path rule", errno_of(&e)).with_detail(detail)
            })?;
        path_rules += 1;
    }
    for (port, access) in &prepared.ports {
        ruleset = ruleset
            .add_rule(NetPort::new(*port, *access))
            .map_err(fail("add port rule"))?;
    }
    let status = ruleset.restrict_self().map_err(fail("restrict self"))?;
    let enforcement = match status.ruleset {
        RulesetStatus::FullyEnforced if prepared.degraded => Enforcement::Partial,
        RulesetStatus::FullyEnforced => Enforcement::Full,
        RulesetStatus::PartiallyEnforced => Enforcement::Partial,
        RulesetStatus::NotEnforced => Enforcement::None,
    };
    Ok(AppliedStatus {
        abi: prepared.abi,
        enforcement,
        path_rules,
        port_rules: prepared.ports.len() as u32,
        skipped_missing,
        no_new_privs: status.no_new_privs,
    })
}

/// The errno under a crate error; EOPNOTSUPP when the crate refused a feature itself.
fn errno_of(err: &RulesetError) -> Errno {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(raw) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.raw_os_error())
        {
            return Errno::from_raw(raw);
        }
        cur = e.source();
    }
    Errno::EOPNOTSUPP
}

// ---------------------------------------------------------------------------------------------
// Explain

/// Name a mask with intent words where they fit, then the remaining exact rights.
pub fn describe_access(access: BitFlags<AccessFs>) -> String {
    let mut words = Vec::new();
    let mut rest = access;
    for (word, set) in [
        ("write", write_rights()),
        ("read", read_rights()),
        ("exec", exec_rights()),
    ] {
        if access.contains(set) && !(word == "read" && words.contains(&"write")) {
            words.push(word);
            rest &= !set;
        }
    }
    words.extend(
        FS_RIGHTS
            .iter()
            .filter(|(_, r, _)| rest.contains(*r))
            .map(|(n, _, _)| *n),
    );
    words.join(", ")
}

/// Plain-words account of the policy: what it stops and what it cannot express.
pub fn explain(policy: &Config) -> Vec<String> {
    let mut out = Vec::new();
    if policy.paths.is_empty() {
        out.push(
            "files: no path is granted; every file and directory opened after the start is denied"
                .to_string(),
        );
    } else {
        out.push(
            "files: only these trees are reachable, with these rights; every other path is \
             denied every right the kernel's Landlock ABI knows:"
                .to_string(),
        );
        for rule in &policy.paths {
            let optional = match rule.missing {
                Missing::Skip => " (skipped if absent)",
                Missing::Error => "",
            };
            out.push(format!(
                "  {}: {}{optional}",
                rule.path,
                describe_access(rule.access)
            ));
        }
    }
    match &policy.net {
        None => out.push(
            "network: not restricted by landlock (the namespaces layer's network namespace can)"
                .to_string(),
        ),
        Some(net) => {
            let list = |ports: &[u16]| match ports {
                [] => "none".to_string(),
                p => p.iter().map(u16::to_string).collect::<Vec<_>>().join(", "),
            };
            out.push(format!(
                "network: tcp bind allowed on ports {}; tcp connect allowed to ports {}; every \
                 other tcp bind and connect is denied",
                list(&net.bind),
                list(&net.connect)
            ));
            out.push(
                "network: UDP and other protocols are not restricted, and MPTCP sockets escape \
                 the tcp port rules unless seccomp denies them"
                    .to_string(),
            );
        }
    }
    if let Some(scopes) = policy.scopes.filter(|s| !s.is_empty()) {
        if scopes.contains(Scope::AbstractUnixSocket) {
            out.push(
                "ipc: cannot connect to abstract unix sockets created outside the sandbox \
                 (e.g. a host D-Bus or X11 abstract socket)"
                    .to_string(),
            );
        }
        if scopes.contains(Scope::Signal) {
            out.push("ipc: cannot send signals to processes outside the sandbox".to_string());
        }
    }
    out.push(
        "cannot express: a deny inside an allowed tree (a grant covers everything below its \
         path); hide a subpath with the filesystem layer's masks instead"
            .to_string(),
    );
    out.push(
        "cannot express: limits on file descriptors opened before the ruleset (inherited stdio \
         and passed fds keep the rights they were opened with)"
            .to_string(),
    );
    out.push(
        "not covered: file metadata (stat, chmod, chown, utimes, xattrs), UDP and non-TCP \
         sockets"
            .to_string(),
    );
    out.push(
        "side effect: a process under landlock cannot change its mounts (mount, umount, \
         pivot_root are denied), and the restriction cannot be lifted by it or its children"
            .to_string(),
    );
    out
}

impl crate::types::LayerSection for Section {
    type Config = Config;
    fn validate(&self, _dir: &std::path::Path) -> Result<Config, ProfileError> {
        checked(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::landlock::{exit_now, fork_for_test};
    use crate::types::{LayerSection, Merge};
    use nix::fcntl::OFlag;
    use nix::sys::stat::Mode;
    use nix::sys::wait::{waitpid, WaitStatus};
    use nix::unistd::ForkResult;

    fn section(yaml: &str) -> Section {
        serde_saphyr::from_str(yaml).expect("test yaml parses")
    }

    fn policy(yaml: &str) -> Config {
        section(yaml)
            .validate(std::path::Path::new("/"))
            .expect("test policy validates")
    }

    fn error(yaml: &str) -> ProfileError {
        section(yaml)
            .validate(std::path::Path::new("/"))
            .expect_err("policy must be rejected")
    }

    /// Whether the host has at least this ABI (the shared test support decides how loud a
    /// skip is).
    fn need_abi(test: &str, abi: u32) -> bool {
        crate::testing::need(test, crate::testing::Feature::LandlockAbi(abi))
    }

    fn armed(policy: &Config, cap: Option<u32>) -> Prepared {
        let (decision, plan) = plan(policy, policy.mode, host_abi(), cap);
        assert!(decision.applies(), "{decision:?}");
        prepare(&plan)
    }

    /// Fork; the child applies `prepared` and exits with `probe()`'s code (an errno, 0 for
    /// success). 250 means the ruleset could not be applied.
    fn in_child(prepared: &Prepared, probe: impl FnOnce(&AppliedStatus) -> i32) -> i32 {
        in_child_raw(|| match child_apply(prepared) {
            Ok(status) => probe(&status),
            Err(_) => 250,
        })
    }

    fn in_child_raw(body: impl FnOnce() -> i32) -> i32 {
        match fork_for_test().expect("fork") {
            ForkResult::Child => exit_now(body()),
            ForkResult::Parent { child } => match waitpid(child, None).expect("waitpid") {
                WaitStatus::Exited(_, code) => code,
                other => panic!("test child ended with {other:?}"),
            },
        }
    }

    fn code<T>(r: nix::Result<T>) -> i32 {
        match r {
            Ok(_) => 0,
            Err(e) => e as i32,
        }
    }

    fn cstr(s: &str) -> CString {
        CString::new(s).unwrap()
    }

    /// A scratch tree under /tmp: `allowed/f` and `denied/f`.
    struct Tree(String);

    impl Tree {
        fn new(name: &str) -> Tree {
            let root = format!("/tmp/lasagna-landlock-{}-{name}", std::process::id());
            let _ = std::fs::remove_dir_all(&root);
            for dir in ["allowed", "denied"] {
                std::fs::create_dir_all(format!("{root}/{dir}")).unwrap();
                std::fs::write(format!("{root}/{dir}/f"), b"data").unwrap();
            }
            Tree(root)
        }
        fn path(&self, rel: &str) -> String {
            format!("{}/{rel}", self.0)
        }
    }

    impl Drop for Tree {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    // ---- validation -------------------------------------------------------------------------

    #[test]
    fn intents_expand_to_documented_rights() {
        let p = policy("read: [/usr]\nwrite: [/tmp]\nexec: [/usr/bin]\n");
        assert_eq!(p.paths.len(), 3);
        assert_eq!(p.paths[0].access, AccessFs::ReadFile | AccessFs::ReadDir);
        assert!(p.paths[1]
            .access
            .contains(AccessFs::Truncate | AccessFs::MakeReg));
        assert!(p.paths[1].access.contains(read_rights()));
        assert!(!p.paths[1].access.contains(AccessFs::Execute));
        assert_eq!(p.paths[2].access, AccessFs::Execute | AccessFs::ReadFile);
        assert_eq!(p.paths[0].missing, Missing::Error);
    }

    #[test]
    fn rules_on_one_path_merge_and_optional_is_kept_only_if_all_agree() {
        let p = policy(
            "read: [/opt]\nrules:\n  - {path: /opt, access: [execute], optional: true}\n  \
             - {path: /srv, access: [exec, truncate], optional: true}\n",
        );
        assert_eq!(p.paths[0].access, read_rights() | AccessFs::Execute);
        assert_eq!(p.paths[0].missing, Missing::Error);
        assert_eq!(p.paths[1].access, exec_rights() | AccessFs::Truncate);
        assert_eq!(p.paths[1].missing, Missing::Skip);
        let p = policy("allow-missing: true\nread: [/opt]\n");
        assert_eq!(p.paths[0].missing, Missing::Skip);
    }

    #[test]
    fn bad_right_is_located_with_a_suggestion() {
        let e = error(
            "read: [/usr]\nrules:\n  - path: /dev/null\n    access: [read-file, wirte-file]\n",
        );
        assert_eq!(
            e.loc,
            Some(Loc {
                line: 4,
                column: 25
            })
        );
        assert!(e.message.contains("\"wirte-file\""), "{e}");
        assert_eq!(e.hint.as_deref(), Some("did you mean \"write-file\"?"));
    }

    #[test]
    fn unknown_far_name_lists_known_ones() {
        let e = error("rules:\n  - {path: /x, access: [everything]}\n");
        assert_eq!(
            e.loc,
            Some(Loc {
                line: 2,
                column: 25
            })
        );
        assert!(e.hint.unwrap().contains("read-file"));
    }

    #[test]
    fn relative_path_is_rejected_at_its_location() {
        let e = error("read: [/usr]\nwrite:\n  - tmp/out\n");
        assert_eq!(e.loc, Some(Loc { line: 3, column: 5 }));
        assert!(e.message.contains("relative"), "{e}");
    }

    #[test]
    fn bad_scope_port_and_abi_are_located() {
        let e = error("scope: [abstract-unix-socket, signals]\n");
        assert_eq!(
            e.loc,
            Some(Loc {
                line: 1,
                column: 31
            })
        );
        assert_eq!(e.hint.as_deref(), Some("did you mean \"signal\"?"));
        let e = error("net:\n  connect: [443, 70000]\n");
        assert_eq!(
            e.loc,
            Some(Loc {
                line: 2,
                column: 18
            })
        );
        assert!(e.message.contains("70000"));
        let e = error("abi: 12\n");
        assert_eq!(e.loc, Some(Loc { line: 1, column: 6 }));
        let e = error("rules:\n  - {path: /x, access: []}\n");
        assert!(e.message.contains("grants no access"), "{e}");
    }

    #[test]
    fn merge_appends_lists_and_child_overrides() {
        let parent = section("mode: best-effort\nabi: 5\nread: [/usr]\nnet: {connect: [80]}\n");
        let child = section("read: [/etc]\nnet: {connect: [443]}\nscope: [signal]\n");
        let p = Merge::merge(parent, child)
            .validate(std::path::Path::new("/"))
            .unwrap();
        assert_eq!(p.mode, Requirement::BestEffort);
        assert_eq!(p.abi_cap, Some(5));
        let paths: Vec<&str> = p.paths.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(paths, ["/usr", "/etc"]);
        assert_eq!(p.net.unwrap().connect, [80, 443]);
        assert_eq!(p.scopes, Some(Scope::Signal.into()));
    }

    // ---- negotiation ------------------------------------------------------------------------

    #[test]
    fn net_rules_below_abi_4_degrade_or_refuse() {
        let p = policy("read: [/]\nnet: {connect: [443]}\n");
        let (d, planned) = plan(&p, Requirement::BestEffort, 7, Some(3));
        match d {
            Decision::Degrade(why) => {
                assert!(why.contains("net rules dropped: ABI 3 < 4"), "{why}");
                assert!(why.contains("abi: 3 caps the host's ABI 7"), "{why}");
            }
            other => panic!("expected degrade, got {other:?}"),
        }
        assert!(planned.handled_net.is_empty());
        assert_eq!(planned.handled_fs, fs_rights_of(3));
        assert!(planned.unrestricted.iter().any(|u| u.contains("ioctl-dev")));
        let (d, _) = plan(&p, Requirement::Required, 7, Some(3));
        match d {
            Decision::Refuse(why) => {
                assert!(why.contains("net rules dropped: ABI 3 < 4"), "{why}");
                assert!(why.contains("raise or remove `abi: 3`"), "{why}");
            }
            other => panic!("expected refuse, got {other:?}"),
        }
        let (d, _) = plan(&p, Requirement::Required, 3, None);
        assert!(
            matches!(d, Decision::Refuse(ref why) if why.contains("Linux 6.7+")),
            "{d:?}"
        );
    }

    #[test]
    fn scopes_and_new_rights_are_named_when_dropped() {
        let p = policy("scope: [signal]\nrules:\n  - {path: /dev, access: [ioctl-dev]}\n");
        let (d, planned) = plan(&p, Requirement::BestEffort, 7, Some(4));
        let Decision::Degrade(why) = d else {
            panic!("{d:?}")
        };
        assert!(why.contains("scopes dropped: ABI 4 < 6"), "{why}");
        assert!(why.contains("ioctl-dev on /dev"), "{why}");
        assert!(planned.paths.is_empty() && planned.scopes.is_empty());
        // The write intent is not a request for rights this ABI lacks.
        let p = policy("write: [/tmp]\n");
        let (d, planned) = plan(&p, Requirement::Required, 7, None);
        assert_eq!(d, Decision::Apply);
        assert!(planned
            .unrestricted
            .iter()
            .any(|u| u.contains("resolve-unix")));
        assert!(!planned.paths[0].access.contains(AccessFs::ResolveUnix));
    }

    #[test]
    fn abi_1_names_refer_as_always_denied() {
        let (_, plan) = plan(&policy("write: [/tmp]\n"), Requirement::BestEffort, 1, None);
        assert!(
            plan.unrestricted
                .iter()
                .any(|u| u.contains("always denied")),
            "{plan:?}"
        );
        assert!(!plan.paths[0].access.contains(AccessFs::Refer));
    }

    #[test]
    fn doctor_reports_the_probed_abi() {
        let facts = doctor();
        assert_eq!(facts[0].0, "landlock abi");
        match crate::sys::landlock::abi_version() {
            Ok(abi) => assert!(facts[0].1.starts_with(&abi.to_string()), "{facts:?}"),
            Err(_) => {
                assert!(facts[0].1.starts_with("unavailable") || facts[0].1.starts_with("unknown"))
            }
        }
        assert_eq!(facts[1].0, "landlock in active lsm list");
    }

    #[test]
    fn no_landlock_refuses_required_and_skips_best_effort() {
        let p = policy("read: [/]\n");
        assert!(matches!(
            plan(&p, Requirement::Required, 0, None).0,
            Decision::Refuse(_)
        ));
        assert!(matches!(
            plan(&p, Requirement::BestEffort, 0, None).0,
            Decision::Skip(_)
        ));
        assert!(matches!(
            plan(&p, Requirement::Off, 7, None).0,
            Decision::Skip(_)
        ));
    }

    #[test]
    fn explain_names_the_gaps() {
        let text = explain(&policy(
            "read: [/usr]\nwrite: [/tmp]\nnet: {connect: [443]}\n",
        ))
        .join("\n");
        assert!(text.contains("/usr: read"), "{text}");
        assert!(text.contains("/tmp: write"), "{text}");
        assert!(text.contains("deny inside an allowed tree"), "{text}");
        assert!(text.contains("MPTCP"), "{text}");
        let p = policy("net: {}\n");
        assert!(uses_net_rules(&p));
        assert!(mptcp_gap(&p, &Decision::Skip("off".into())).is_some());
        assert!(mptcp_gap(&p, &Decision::Apply).is_none());
    }

    // ---- the kernel ------------------------------------------------------------------------

    #[test]
    fn read_outside_read_paths_is_eacces() {
        if !need_abi("read_outside_read_paths_is_eacces", 1) {
            return;
        }
        let tree = Tree::new("read");
        let p = armed(
            &policy(&format!("read: [{}]\n", tree.path("allowed"))),
            None,
        );
        let inside = cstr(&tree.path("allowed/f"));
        let outside = cstr(&tree.path("denied/f"));
        let open = |path: &CString| {
            code(nix::fcntl::open(
                path.as_c_str(),
                OFlag::O_RDONLY | OFlag::O_CLOEXEC,
                Mode::empty(),
            ))
        };
        assert_eq!(in_child(&p, |_| open(&inside)), 0);
        assert_eq!(in_child(&p, |_| open(&outside)), Errno::EACCES as i32);
    }

    #[test]
    fn write_outside_write_paths_is_eacces() {
        if !need_abi("write_outside_write_paths_is_eacces", 1) {
            return;
        }
        let tree = Tree::new("write");
        let p = armed(
            &policy(&format!("read: [/]\nwrite: [{}]\n", tree.path("allowed"))),
            None,
        );
        let create = |path: String| {
            let path = cstr(&path);
            move |_: &AppliedStatus| {
                code(nix::fcntl::open(
                    path.as_c_str(),
                    OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_CLOEXEC,
                    Mode::from_bits_truncate(0o600),
                ))
            }
        };
        assert_eq!(in_child(&p, create(tree.path("allowed/new"))), 0);
        assert_eq!(
            in_child(&p, create(tree.path("denied/new"))),
            Errno::EACCES as i32
        );
        assert_eq!(
            in_child(&p, create(tree.path("denied/f"))),
            Errno::EACCES as i32
        );
    }

    #[test]
    fn exec_outside_exec_paths_is_eacces() {
        if !need_abi("exec_outside_exec_paths_is_eacces", 1) {
            return;
        }
        let true_bin = cstr("/bin/true");
        let run = |_: &AppliedStatus| match nix::unistd::execv(&true_bin, &[&true_bin]) {
            Err(e) => e as i32,
        };
        let denied = armed(
            &policy("read: [/]\nexec: [/nonexistent-ok]\nallow-missing: true\n"),
            None,
        );
        assert_eq!(in_child(&denied, run), Errno::EACCES as i32);
        let allowed = armed(&policy("read: [/]\nexec: [/usr]\n"), None);
        assert_eq!(
            in_child(&allowed, run),
            0,
            "/bin/true under exec: [/usr] must run"
        );
    }

    #[test]
    fn tcp_connect_outside_connect_ports_is_eacces() {
        if !need_abi("tcp_connect_outside_connect_ports_is_eacces", NET_ABI) {
            return;
        }
        let allowed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let denied = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = |l: &std::net::TcpListener| l.local_addr().unwrap().port();
        let p = armed(
            &policy(&format!("net: {{connect: [{}]}}\n", port(&allowed))),
            None,
        );
        assert_eq!(in_child(&p, |_| tcp_connect(port(&allowed))), 0);
        assert_eq!(
            in_child(&p, |_| tcp_connect(port(&denied))),
            Errno::EACCES as i32
        );
        // Without `net`, TCP is not handled.
        let open = armed(&policy("read: [/]\n"), None);
        assert_eq!(in_child(&open, |_| tcp_connect(port(&denied))), 0);
    }

    fn tcp_connect(port: u16) -> i32 {
        use nix::sys::socket::{connect, socket, AddressFamily, SockFlag, SockType, SockaddrIn};
        use std::os::fd::AsRawFd;
        let fd = match socket(
            AddressFamily::Inet,
            SockType::Stream,
            SockFlag::SOCK_CLOEXEC,
            None,
        ) {
            Ok(fd) => fd,
            Err(e) => return 200 + e as i32 % 50,
        };
        code(connect(
            fd.as_raw_fd(),
            &SockaddrIn::new(127, 0, 0, 1, port),
        ))
    }

    #[test]
    fn degraded_abi_3_drops_net_but_keeps_files() {
        if !need_abi("degraded_abi_3_drops_net_but_keeps_files", NET_ABI) {
            return;
        }
        let tree = Tree::new("degrade");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let other = listener.local_addr().unwrap().port();
        let p = policy(&format!(
            "mode: best-effort\nabi: 3\nread: [{}]\nnet: {{connect: [1]}}\n",
            tree.path("allowed")
        ));
        let (d, plan) = plan(&p, p.mode, host_abi(), p.abi_cap);
        assert!(matches!(d, Decision::Degrade(ref why) if why.contains("net rules dropped")));
        let prepared = prepare(&plan);
        let outside = cstr(&tree.path("denied/f"));
        // Files are still confined, the status says partial, and TCP is really open.
        let probe = |s: &AppliedStatus| {
            if s.abi != 3 || s.enforcement != Enforcement::Partial {
                return 100;
            }
            let read = code(nix::fcntl::open(
                outside.as_c_str(),
                OFlag::O_RDONLY,
                Mode::empty(),
            ));
            if read != Errno::EACCES as i32 {
                return 101;
            }
            tcp_connect(other)
        };
        assert_eq!(in_child(&prepared, probe), 0);
    }

    #[test]
    fn abstract_unix_socket_scope_is_eperm() {
        if !need_abi("abstract_unix_socket_scope_is_eperm", SCOPE_ABI) {
            return;
        }
        use std::os::linux::net::SocketAddrExt;
        let name = format!("lasagna-landlock-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let _listener = std::os::unix::net::UnixListener::bind_addr(&addr).unwrap();
        let connect = |_: &AppliedStatus| {
            use nix::sys::socket::{connect, socket, AddressFamily, SockFlag, SockType, UnixAddr};
            use std::os::fd::AsRawFd;
            let Ok(fd) = socket(
                AddressFamily::Unix,
                SockType::Stream,
                SockFlag::SOCK_CLOEXEC,
                None,
            ) else {
                return 200;
            };
            let Ok(addr) = UnixAddr::new_abstract(name.as_bytes()) else {
                return 201;
            };
            code(connect(fd.as_raw_fd(), &addr))
        };
        let scoped = armed(&policy("scope: [abstract-unix-socket]\n"), None);
        assert_eq!(in_child(&scoped, connect), Errno::EPERM as i32);
        let unscoped = armed(&policy("read: [/]\n"), None);
        assert_eq!(in_child(&unscoped, connect), 0);
    }

    #[test]
    fn signal_scope_is_eperm() {
        if !need_abi("signal_scope_is_eperm", SCOPE_ABI) {
            return;
        }
        let mut target = std::process::Command::new("/bin/sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = nix::unistd::Pid::from_raw(target.id() as i32);
        let signal = |_: &AppliedStatus| {
            code(nix::sys::signal::kill(
                pid,
                nix::sys::signal::Signal::SIGCONT,
            ))
        };
        let scoped = armed(&policy("scope: [signal]\n"), None);
        let unscoped = armed(&policy("read: [/]\n"), None);
        let (with, without) = (in_child(&scoped, signal), in_child(&unscoped, signal));
        let _ = target.kill();
        let _ = target.wait();
        assert_eq!(with, Errno::EPERM as i32);
        assert_eq!(without, 0);
    }

    #[test]
    fn missing_rule_path_is_an_error_unless_optional() {
        if !need_abi("missing_rule_path_is_an_error_unless_optional", 1) {
            return;
        }
        let missing = "/nonexistent/lasagna-landlock";
        let required = armed(&policy(&format!("read: [/, {missing}]\n")), None);
        let result = in_child_raw(|| match child_apply(&required) {
            Ok(_) => 0,
            Err(e) if e.step == "open rule path" && e.detail == missing.as_bytes() => {
                e.errno as i32
            }
            Err(_) => 99,
        });
        assert_eq!(result, Errno::ENOENT as i32);
        let optional = armed(
            &policy(&format!(
                "read: [/]\nrules:\n  - {{path: {missing}, access: [read], optional: true}}\n"
            )),
            None,
        );
        let result = in_child_raw(|| match child_apply(&optional) {
            Ok(s)
                if s.skipped_missing == 1
                    && s.path_rules == 1
                    && s.enforcement == Enforcement::Full =>
            {
                0
            }
            Ok(_) => 98,
            Err(e) => e.errno as i32,
        });
        assert_eq!(result, 0);
    }

    #[test]
    fn file_rule_keeps_only_file_rights() {
        if !need_abi("file_rule_keeps_only_file_rights", 1) {
            return;
        }
        let tree = Tree::new("file");
        let file = tree.path("allowed/f");
        let p = armed(&policy(&format!("read: [{file}]\n")), None);
        let path = cstr(&file);
        let dir = cstr(&tree.path("allowed"));
        let probe = |_: &AppliedStatus| {
            let f = code(nix::fcntl::open(
                path.as_c_str(),
                OFlag::O_RDONLY,
                Mode::empty(),
            ));
            let d = code(nix::fcntl::open(
                dir.as_c_str(),
                OFlag::O_RDONLY | OFlag::O_DIRECTORY,
                Mode::empty(),
            ));
            if f == 0 && d == Errno::EACCES as i32 {
                0
            } else {
                100 + f
            }
        };
        assert_eq!(in_child(&p, probe), 0);
    }

    /// `cargo test --release -- --ignored --nocapture bench_open_close`
    #[test]
    #[ignore = "benchmark"]
    fn bench_open_close() {
        if !need_abi("bench_open_close", 1) {
            return;
        }
        let root = format!("/tmp/lasagna-landlock-bench-{}", std::process::id());
        for i in 0..100 {
            std::fs::create_dir_all(format!("{root}/d{i}")).unwrap();
        }
        std::fs::write(format!("{root}/d0/f"), b"x").unwrap();
        let file = cstr(&format!("{root}/d0/f"));
        const N: u32 = 200_000;
        let measure_once = |prepared: Option<&Prepared>| -> f64 {
            let (rx, tx) = nix::unistd::pipe().unwrap();
            let code = in_child_raw(|| {
                if let Some(p) = prepared {
                    if child_apply(p).is_err() {
                        return 250;
                    }
                }
                let start = std::time::Instant::now();
                for _ in 0..N {
                    match nix::fcntl::open(
                        file.as_c_str(),
                        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
                        Mode::empty(),
                    ) {
                        Ok(fd) => drop(fd),
                        Err(_) => return 251,
                    }
                }
                let ns = start.elapsed().as_nanos() as u64;
                match nix::unistd::write(&tx, &ns.to_ne_bytes()) {
                    Ok(8) => 0,
                    _ => 252,
                }
            });
            assert_eq!(code, 0);
            let mut buf = [0u8; 8];
            assert_eq!(nix::unistd::read(&rx, &mut buf).unwrap(), 8);
            u64::from_ne_bytes(buf) as f64 / f64::from(N)
        };
        // Best of five runs of N iterations each, every run in a fresh child.
        let measure = |prepared: Option<&Prepared>| -> f64 {
            (0..5)
                .map(|_| measure_once(prepared))
                .fold(f64::INFINITY, f64::min)
        };
        let base = measure(None);
        println!("landlock bench: open+close, no landlock: {base:.0} ns/op");
        for rules in [1, 10, 100] {
            let dirs: Vec<String> = (0..rules).map(|i| format!("{root}/d{i}")).collect();
            let p = armed(&policy(&format!("read: [{}]\n", dirs.join(", "))), None);
            let ns = measure(Some(&p));
            println!(
                "landlock bench: open+close, {rules:>3} rules: {ns:.0} ns/op (+{:.0} ns)",
                ns - base
            );
        }
        let _ = std::fs::remove_dir_all(&root);
    }
}
