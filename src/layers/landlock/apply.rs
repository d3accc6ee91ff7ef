//! The child side: the status the child reports and `child_apply`, the last step before seccomp.

use super::*;

use landlock::{
    CompatLevel, Compatible, NetPort, PathBeneath, Ruleset, RulesetAttr, RulesetCreatedAttr,
    RulesetError, RulesetStatus,
};
use nix::errno::Errno;
use nix::sys::stat::SFlag;
use serde::Serialize;

use crate::launch::{ChildContext, ChildError};

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
    if prepared.log_new_exec {
        ruleset = ruleset
            .log_new_exec(true)
            .map_err(fail("log the denials after execve"))?;
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
pub(super) fn errno_of(err: &RulesetError) -> Errno {
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
