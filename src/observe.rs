//! What the kernel actually applied, read from /proc after execve: namespace inodes of
//! init compared with the supervisor's, and the payload's /proc/PID/status. The report is
//! a claim; this is the evidence beside it.

use std::collections::BTreeMap;

use nix::unistd::Pid;
use serde::Serialize;

use crate::layers::namespaces::Kind;
use crate::plan::Plan;

#[derive(Debug, Clone, Serialize)]
pub struct NamespaceSeen {
    pub kind: Kind,
    /// The sandbox's namespace differs from lasagna's own.
    pub new: bool,
    pub inode: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Observation {
    /// The payload's pid on the host (None if it had already exited).
    pub payload_pid: Option<i32>,
    pub namespaces: Vec<NamespaceSeen>,
    /// Selected fields of /proc/PID/status of the payload: Uid, Gid, CapEff, CapPrm,
    /// CapInh, CapBnd, CapAmb, NoNewPrivs, Seccomp, Seccomp_filters.
    pub status: BTreeMap<String, String>,
    pub note: Option<String>,
}

fn ns_inode(pid: &str, name: &str) -> Option<u64> {
    let link = std::fs::read_link(format!("/proc/{pid}/ns/{name}")).ok()?;
    let s = link.to_string_lossy();
    s.split_once('[')?.1.trim_end_matches(']').parse().ok()
}

/// The payload's host pid: init's first child.
pub fn payload_of(init: Pid) -> Option<i32> {
    let children = std::fs::read_to_string(format!("/proc/{init}/task/{init}/children")).ok()?;
    children.split_whitespace().next()?.parse().ok()
}

const STATUS_FIELDS: &[&str] = &[
    "Uid",
    "Gid",
    "Groups",
    "CapEff",
    "CapPrm",
    "CapInh",
    "CapBnd",
    "CapAmb",
    "NoNewPrivs",
    "Seccomp",
    "Seccomp_filters",
];

pub fn observe(init: Pid, _plan: &Plan) -> Observation {
    let mut obs = Observation {
        payload_pid: payload_of(init),
        ..Observation::default()
    };
    // The payload's own links: init is non-dumpable, and its memory belongs to the host's
    // user namespace, so an unprivileged supervisor may not read init's.
    let (who, names): (String, fn(Kind) -> &'static str) = match obs.payload_pid {
        Some(pid) => (pid.to_string(), Kind::proc_name_of_process),
        None => (init.to_string(), Kind::proc_name),
    };
    for kind in Kind::ALL {
        let theirs = ns_inode(&who, names(kind));
        let ours = ns_inode("self", kind.proc_name_of_process());
        obs.namespaces.push(NamespaceSeen {
            kind,
            new: theirs.is_some() && theirs != ours,
            inode: theirs,
        });
    }
    if let Some(pid) = obs.payload_pid {
        if let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            for line in text.lines() {
                if let Some((k, v)) = line.split_once(':') {
                    if STATUS_FIELDS.contains(&k) {
                        obs.status.insert(
                            k.to_string(),
                            v.split_whitespace().collect::<Vec<_>>().join(" "),
                        );
                    }
                }
            }
        }
    }
    if obs.status.is_empty() {
        obs.note = Some("payload exited before it could be observed".into());
    }
    obs
}
