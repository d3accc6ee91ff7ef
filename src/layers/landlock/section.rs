//! The `landlock:` section as written, and its check into a `Config` (pure; errors carry line:col).

use super::*;

use crate::types::Spanned;
use landlock::{AccessFs, BitFlags, Scope};
use serde::{Deserialize, Serialize};

use crate::launch::Decision;
use crate::types::{parse_path, Loc, ProfileError, Requirement, SandboxPath};

// ---------------------------------------------------------------------------------------------
// Profile section

/// `layers: landlock:` as written.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RuleSection {
    pub path: Spanned<String>,
    pub access: Vec<Spanned<String>>,
    /// The path may be absent inside the sandbox; the rule is then skipped.
    #[serde(default)]
    pub optional: bool,
}

/// `net:` TCP ports the payload may bind and connect to; every other port is denied.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, schemars::JsonSchema)]
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
    /// Where the path was first named (a mount entry's own `landlock:`, a list, a rule).
    pub loc: Option<Loc>,
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
pub(super) fn checked(section: &Section) -> Result<Config, ProfileError> {
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
    let mut add = |path: SandboxPath, access: BitFlags<AccessFs>, missing: Missing, loc: Loc| {
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
                loc: Some(loc),
            }),
        }
    };
    for (list, access) in [
        (&section.read, read_rights()),
        (&section.write, write_rights()),
        (&section.exec, exec_rights()),
    ] {
        for raw in list {
            add(parse_path(raw)?, access, default_missing, Loc::of(raw));
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
        add(path, access, missing, Loc::of(&rule.path));
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

impl Config {
    /// A mount entry's own rights (`landlock:` on the entry): added to the rule of its
    /// path. An optional mount's rule is skipped where the mount is.
    pub fn grant(
        &mut self,
        path: &SandboxPath,
        rights: &[Spanned<String>],
        optional: bool,
        loc: Loc,
    ) -> Result<(), ProfileError> {
        let mut access = BitFlags::EMPTY;
        for name in rights {
            access |= parse_access(name)?;
        }
        let missing = if optional {
            Missing::Skip
        } else {
            Missing::Error
        };
        match self.paths.iter_mut().find(|r| &r.path == path) {
            Some(rule) => {
                rule.access |= access;
                if missing == Missing::Error {
                    rule.missing = Missing::Error;
                }
            }
            None => self.paths.push(PathRule {
                path: path.clone(),
                access,
                missing,
                loc: Some(loc),
            }),
        }
        Ok(())
    }
}

pub(super) fn parse_access(name: &Spanned<String>) -> Result<BitFlags<AccessFs>, ProfileError> {
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

pub(super) fn parse_scope(name: &Spanned<String>) -> Result<Scope, ProfileError> {
    SCOPES
        .iter()
        .find(|(n, _)| *n == name.value)
        .map(|(_, s)| *s)
        .ok_or_else(|| unknown_name(name, "scope", SCOPES.iter().map(|(n, _)| *n)))
}

pub(super) fn parse_ports(raw: &[Spanned<u32>]) -> Result<Vec<u16>, ProfileError> {
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
pub(super) fn unknown_name<'a>(
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

impl crate::types::LayerSection for Section {
    type Config = Config;
    fn validate(&self, _dir: &std::path::Path) -> Result<Config, ProfileError> {
        checked(self)
    }

    /// Every entry's error: each path of the lists and rules, each right, port and scope is
    /// checked on its own first (with the same functions `checked` uses).
    fn validate_each(&self, _dir: &std::path::Path) -> Result<Config, Vec<ProfileError>> {
        let mut errors = Vec::new();
        let mut keep = |r: Result<(), ProfileError>| {
            if let Err(e) = r {
                errors.push(e);
            }
        };
        for raw in self.read.iter().chain(&self.write).chain(&self.exec) {
            keep(parse_path(raw).map(drop));
        }
        for rule in &self.rules {
            keep(parse_path(&rule.path).map(drop));
            for name in &rule.access {
                keep(parse_access(name).map(drop));
            }
        }
        if let Some(net) = &self.net {
            keep(parse_ports(&net.bind).map(drop));
            keep(parse_ports(&net.connect).map(drop));
        }
        for name in self.scope.iter().flatten() {
            keep(parse_scope(name).map(drop));
        }
        if errors.is_empty() {
            checked(self).map_err(|e| vec![e])
        } else {
            Err(errors)
        }
    }
}
