//! Negotiation with the ABI in use (supervisor side, before the clone) and the data prepared for the child.

use super::*;
use std::collections::BTreeMap;
use std::ffi::CString;

use landlock::{AccessFs, AccessNet, BitFlags, Scope};

use crate::launch::Decision;
use crate::types::Requirement;

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

impl Plan {
    /// Allow TCP connections to `port` where connecting is handled; whether it was added.
    pub fn allow_connect(&mut self, port: u16) -> bool {
        if !self.handled_net.contains(AccessNet::ConnectTcp) || self.net.connect.contains(&port) {
            return false;
        }
        self.net.connect.push(port);
        self.net.connect.sort_unstable();
        true
    }
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
pub(super) fn explicit(access: BitFlags<AccessFs>) -> BitFlags<AccessFs> {
    if access.contains(write_rights()) {
        access & !write_rights()
    } else {
        access
    }
}

/// The lowest ABI that enforces everything the policy names.
pub(super) fn required_abi(policy: &Config) -> u32 {
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
    /// `--explain-denials` (ABI 7): the kernel also logs the denials of the programs the
    /// payload runs (by default only the process that restricted itself, until execve).
    pub log_new_exec: bool,
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
        log_new_exec: false,
    }
}
