//! Checks across layers, before anything runs: what the plan allows in one layer and
//! refuses in another, which the payload would meet as a bare EACCES. `check`, `explain`
//! and `run -v` show them (and the report's `warnings`); none changes the plan.

use std::os::unix::fs::MetadataExt;

use ::landlock::{AccessFs, BitFlags};

use std::path::Path;

use crate::layers::filesystem::{BindAccess, Guard, Op};
use crate::layers::landlock;
use crate::types::{Loc, SandboxPath};

use super::Plan;

/// Every finding, one sentence each, naming both profile lines and the fix.
pub fn warnings(plan: &Plan) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(fs) = &plan.config.filesystem {
        if let Some(ll) = &plan.landlock {
            out.extend(landlock_gaps(&fs.ops, &fs.locs, ll));
        }
        if let Some((uid, gid)) = payload_host_ids(plan) {
            out.extend(unwritable_sources(
                &fs.ops,
                &fs.locs,
                uid,
                gid,
                &idmapped(plan),
            ));
        }
        if fs.unprotect.contains(&Guard::LasagnaConfig) {
            out.extend(config_under_writable(&fs.ops, &fs.locs));
        }
    }
    out
}

/// With `unprotect: [lasagna-config]`, a writable bind that shows a profile directory of
/// the caller: what the payload writes there is the next run's policy.
fn config_under_writable(ops: &[Op], locs: &[Loc]) -> Vec<String> {
    let dirs = crate::profile::search_dirs();
    let mut out = Vec::new();
    for (op, loc) in ops.iter().zip(locs) {
        let Op::Bind {
            source,
            access: BindAccess::ReadWrite | BindAccess::Devices,
            ..
        } = op
        else {
            continue;
        };
        for dir in dirs
            .iter()
            .filter(|d| d.starts_with(source.as_str()) || Path::new(source.as_str()).starts_with(d))
        {
            out.push(format!(
                "the writable bind of {}{} shows lasagna's profile directory {}, and `unprotect: \
                 [lasagna-config]` leaves it writable: a profile or .local.yaml the payload \
                 writes there is the next run's policy (fix: drop lasagna-config from unprotect)",
                escape_path(source),
                at(Some(loc)),
                crate::text::escape(&dir.display().to_string())
            ));
        }
    }
    out
}

fn at(loc: Option<&Loc>) -> String {
    loc.map(|l| format!(" ({})", l.describe()))
        .unwrap_or_default()
}

/// Mounts the Landlock rules give no right on: a read-only bind that can be listed and not
/// read, a writable one (or a tmpfs) that cannot be written.
fn landlock_gaps(ops: &[Op], locs: &[Loc], ll: &landlock::Plan) -> Vec<String> {
    let mut out = Vec::new();
    let read = AccessFs::ReadFile;
    let write = AccessFs::WriteFile;
    for (i, op) in ops.iter().enumerate() {
        let (target, kind, writable) = match op {
            // A source that is a link is recreated as the link (its target's rules apply),
            // and an absent optional one is not mounted at all.
            Op::Bind { source, .. }
                if std::fs::symlink_metadata(source.as_str())
                    .map_or(true, |m| m.file_type().is_symlink()) =>
            {
                continue
            }
            Op::Bind { target, access, .. } => (
                target,
                match access {
                    BindAccess::ReadOnly => "ro-bind",
                    BindAccess::ReadWrite => "bind",
                    BindAccess::Devices => "dev-bind",
                },
                *access != BindAccess::ReadOnly,
            ),
            Op::Tmpfs { target, .. } => (target, "tmpfs", true),
            _ => continue,
        };
        // A rule below the mount gives part of it: the author chose what.
        if ll
            .paths
            .iter()
            .any(|r| r.path != *target && r.path.starts_with(target))
        {
            continue;
        }
        let covering: Vec<&landlock::PathRule> = ll
            .paths
            .iter()
            .filter(|r| target.starts_with(&r.path))
            .collect();
        let rights: BitFlags<AccessFs> = covering
            .iter()
            .fold(BitFlags::EMPTY, |acc, r| acc | r.access);
        let listable = rights.contains(AccessFs::ReadDir);
        let mut missing = Vec::new();
        if ll.handled_fs.contains(read) && !rights.contains(read) {
            missing.push("read");
        }
        if writable && ll.handled_fs.contains(write) && !rights.contains(write) {
            missing.push("write");
        }
        if missing.is_empty() {
            continue;
        }
        let what = match (missing.as_slice(), listable) {
            (["read"], true) => "its files can be listed but not read".to_string(),
            (["read"], false) => "its files cannot be read".to_string(),
            (["write"], _) => "it can be read but not written".to_string(),
            _ if listable => "its files can be listed but neither read nor written".to_string(),
            _ => "it can be neither read nor written".to_string(),
        };
        let nearest = covering
            .iter()
            .max_by_key(|r| r.path.as_str().len())
            .map(|r| {
                format!(
                    "; the nearest Landlock rule is on {}{}",
                    r.path,
                    at(r.loc.as_ref())
                )
            })
            .unwrap_or_default();
        out.push(format!(
            "{kind} {target}{}: the landlock layer gives it no {} right, so {what}{nearest}; add `landlock: [{}]` to the mount entry, or {target} to `landlock: {}:`",
            at(locs.get(i)),
            missing.join(" or "),
            missing.join(", "),
            missing[0],
        ));
    }
    out
}

/// As host root, the payload runs as an unprivileged host uid: its ids on the host, when
/// they are known before the run (`host-uid: auto` picks a fresh one at launch, which owns
/// nothing: `u32::MAX` stands for it).
fn payload_host_ids(plan: &Plan) -> Option<(u32, u32)> {
    if !plan.as_root {
        return None;
    }
    if plan.identity.pick_host_ids.is_some() {
        return Some((u32::MAX, u32::MAX));
    }
    plan.identity
        .host_ids_if_root()
        .filter(|(uid, _)| *uid != 0)
}

/// The sandbox paths of the binds this run idmaps: the payload writes there as the owner.
fn idmapped(plan: &Plan) -> Vec<SandboxPath> {
    use crate::layers::filesystem::view::What;
    plan.filesystem
        .iter()
        .flat_map(|fs| &fs.entries)
        .filter(|e| matches!(e.what, What::Bind { idmap: Some(_), .. }))
        .map(|e| e.target.clone())
        .collect()
}

/// Writable binds whose host source the payload's host uid cannot write (owner and mode);
/// an idmapped bind is written as its owner.
fn unwritable_sources(
    ops: &[Op],
    locs: &[Loc],
    uid: u32,
    gid: u32,
    idmapped: &[SandboxPath],
) -> Vec<String> {
    let mut out = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        let Op::Bind {
            source,
            target,
            access: BindAccess::ReadWrite | BindAccess::Devices,
            ..
        } = op
        else {
            continue;
        };
        if idmapped.contains(target) {
            continue;
        }
        // Advisory only (the launch opens sources by descriptor, without following links):
        // a stat of the path itself is enough, and a link is left to the launch.
        let Ok(meta) = std::fs::symlink_metadata(source.as_str()) else {
            continue;
        };
        if meta.file_type().is_symlink() {
            continue;
        }
        if writable_by(&meta, uid, gid) {
            continue;
        }
        let who = if uid == u32::MAX {
            "the host uid picked for each run (host-uid: auto)".to_string()
        } else {
            format!("host uid {uid}")
        };
        let owner = meta.uid();
        let as_owner = if owner == 0 {
            "`namespaces: host-uid: 0`, which also needs `run-as-host-root: true`".to_string()
        } else {
            format!("`namespaces: host-uid: {owner}`")
        };
        let chown = if uid == u32::MAX {
            "set a fixed host-uid and chown the source to it".to_string()
        } else {
            format!("`chown {uid} {}`", escape_path(source))
        };
        out.push(format!(
            "bind {target}{}: the payload runs as {who}, and the source {} (owner {owner}, mode {:04o}) is not writable by it, so its writes fail with EACCES (and git refuses a repository it does not own); let the bind be idmapped (drop `idmap: false`; `run -v` says why one is left plain), run the payload as the owner ({as_owner}), or {chown}",
            at(locs.get(i)),
            escape_path(source),
            meta.mode() & 0o7777
        ));
    }
    out
}

fn escape_path(p: &SandboxPath) -> String {
    crate::text::escape(p.as_str()).into_owned()
}

/// Write permission of `uid`/`gid` by the mode bits (no ACLs, no supplementary groups:
/// the payload has none).
fn writable_by(meta: &std::fs::Metadata, uid: u32, gid: u32) -> bool {
    let mode = meta.mode();
    if meta.uid() == uid {
        mode & 0o200 != 0
    } else if meta.gid() == gid {
        mode & 0o020 != 0
    } else {
        mode & 0o002 != 0
    }
}

/// What the profile, as planned on this host, leaves open: `explain`'s closing summary, in
/// terms of this profile (its binds, its limits, its network), not of the layers in general.
pub fn gaps(plan: &Plan) -> Vec<String> {
    use crate::launch::Layer;
    use crate::layers::cgroups::human;
    use crate::layers::namespaces::Kind;
    use crate::layers::network::Net;
    let mut out = Vec::new();
    let applies = |l: Layer| plan.get(l).decision.applies();
    // The network.
    let net = plan.config.network.as_ref().map(|n| n.net);
    match net {
        Some(Net::Host) => out.push("network: the payload reaches whatever this host reaches, its loopback services included".to_string()),
        Some(Net::User) => out.push("network: the internet and this host's non-loopback addresses (pasta); `net: proxy` limits it to named endpoints".to_string()),
        Some(Net::Proxy) => out.push("network: what the payload sends to the endpoints `allow` names".to_string()),
        _ if !plan.has(Kind::Net) => out.push("network: the host's network, every address and port (no network namespace)".to_string()),
        _ => {}
    }
    // Files.
    if let Some(fs) = plan
        .config
        .filesystem
        .as_ref()
        .filter(|_| applies(Layer::Filesystem))
    {
        let writable: Vec<String> = fs
            .ops
            .iter()
            .filter_map(|op| match op {
                Op::Bind {
                    source,
                    access: BindAccess::ReadWrite | BindAccess::Devices,
                    ..
                } => Some(source.as_str().to_string()),
                _ => None,
            })
            .collect();
        if writable.is_empty() {
            out.push("files: reading what is bound in; every write lands in a tmpfs and is gone after the run".to_string());
        } else {
            out.push(format!(
                "files: reading what is bound in, and changing or deleting what is in {} on the host",
                writable.join(", ")
            ));
        }
    } else {
        out.push("files: every host file the payload's uid may read or write (the filesystem layer is not applied)".to_string());
    }
    // Resources.
    let limits = plan.cgroup.as_ref().map(|c| &c.limits);
    match limits.and_then(|l| l.memory_max) {
        Some(m) => out.push(format!("memory: up to {} for the whole sandbox", human(m))),
        None => match plan
            .rlimits
            .iter()
            .find(|(l, _)| *l == crate::layers::rlimits::Limit::As)
            .and_then(|(_, v)| *v)
        {
            Some(a) => out.push(format!(
                "memory: {} of address space per process, but any number of processes together (no cgroup memory.max; RLIMIT_AS stands in)",
                human(a)
            )),
            None => out.push("memory: as much as this host gives (no cgroup memory.max)".to_string()),
        },
    }
    if limits.and_then(|l| l.cpu_cores).is_none() {
        let cpu = plan
            .rlimits
            .iter()
            .find(|(l, _)| *l == crate::layers::rlimits::Limit::Cpu)
            .and_then(|(_, v)| *v);
        let until = match (cpu, plan.timeout) {
            (Some(s), Some(t)) => format!(
                "until {s} CPU seconds per process or the {} timeout",
                crate::text::duration(t)
            ),
            (Some(s), None) => format!("until {s} CPU seconds per process"),
            (None, Some(t)) => format!("until the {} timeout", crate::text::duration(t)),
            (None, None) => "for as long as it runs".to_string(),
        };
        out.push(format!(
            "CPU: every core of this host, {until} (no cgroup CPU quota)"
        ));
    }
    if plan.timeout.is_none() {
        out.push("time: no wall-clock timeout (`process: timeout:` or --timeout)".to_string());
    }
    // Layers that do not hold.
    for l in &plan.layers {
        if let crate::launch::Decision::Skip(r) | crate::launch::Decision::Refuse(r) = &l.decision {
            if l.layer != Layer::Network {
                out.push(format!(
                    "{}: not applied ({r}): nothing of it holds",
                    l.layer
                ));
            }
        }
    }
    out.push(if applies(Layer::Seccomp) {
        "the kernel: bugs reachable through the system calls the seccomp filter allows".to_string()
    } else {
        "the kernel: bugs reachable through any system call (seccomp is not applied)".to_string()
    });
    out.push("side channels: timing, shared CPU caches, what the host's load reveals".to_string());
    out
}
