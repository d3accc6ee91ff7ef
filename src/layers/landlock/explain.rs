//! Plain words: `doctor`'s host facts and `explain`'s lines for a checked policy.

use super::*;

use landlock::{AccessFs, BitFlags, Scope};
use nix::errno::Errno;

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

/// What `policy` needs of this host, as `doctor PROFILE`'s line (the host gives it, what,
/// fix): the lowest ABI that enforces every right, TCP rule and scope it names, against
/// the host's. What the plan then drops, or refuses, is its decision.
pub fn needs(policy: &Config, host_abi: u32) -> (bool, String, Option<String>) {
    let needed = super::plan::required_abi(policy);
    let cap = match policy.abi_cap {
        Some(cap) => format!("; the profile caps it at ABI {cap} (`abi:`)"),
        None => String::new(),
    };
    let what = if host_abi == 0 {
        format!(
            "the rules need Landlock ABI {needed} (Linux {}+); this host has no Landlock{cap}",
            linux_release(needed)
        )
    } else {
        format!(
            "the rules need Landlock ABI {needed} (Linux {}+); this host has ABI {host_abi}{cap}",
            linux_release(needed)
        )
    };
    let fix = if host_abi == 0 {
        Some("boot with lsm=landlock,... (Linux 5.13+)".to_string())
    } else {
        (host_abi < needed).then(|| format!("run on Linux {}+", linux_release(needed)))
    };
    (host_abi >= needed, what, fix)
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
/// What the profile's Landlock section sets; `ports`: the connect and bind ports the plan
/// ends with (the proxy's port is added to them under `net: proxy`).
pub fn explain(policy: &Config, ports: Option<&NetPolicy>) -> Vec<String> {
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
        Some(written) => {
            let net = ports.unwrap_or(written);
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
