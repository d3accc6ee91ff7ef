//! The `filesystem:` section as written, its check into a [`Config`] and its [`Op`]s.

use crate::types::Spanned;
use serde::Deserialize;

use crate::types::{parse_path, parse_size, Loc, ProfileError, Requirement, SandboxPath};

/// Size of the sandbox's `/dev/shm` unless `dev-shm-size` says otherwise.
pub const DEV_SHM_SIZE: u64 = 64 << 20;
/// Size of a `tmpfs:` entry without `size`: every tmpfs lasagna mounts has one (the
/// kernel's default, half of RAM, lets one sandbox take the host's memory).
pub const DEFAULT_TMPFS_SIZE: u64 = 256 << 20;

/// A tmpfs size: a number with an optional unit, never unlimited.
fn tmpfs_size(raw: &Spanned<String>) -> Result<u64, ProfileError> {
    match parse_size(&raw.value) {
        Ok(Some(n)) if n > 0 => Ok(n),
        Ok(_) => Err(ProfileError::at(
            Loc::of(raw),
            format!("a tmpfs always has a size; {:?} is not one", raw.value),
        )
        .hint("give a size such as 64M or 2G")),
        Err(m) => Err(ProfileError::at(Loc::of(raw), m)),
    }
}

/// One entry of `mounts:`. Exactly one kind key (`ro-bind`, `bind`, `tmpfs`, `dir`,
/// `symlink`, `file`, `mask`) whose value is the path inside the sandbox.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct MountEntry {
    pub ro_bind: Option<Spanned<String>>,
    pub bind: Option<Spanned<String>>,
    pub dev_bind: Option<Spanned<String>>,
    pub tmpfs: Option<Spanned<String>>,
    pub dir: Option<Spanned<String>>,
    pub symlink: Option<Spanned<String>>,
    pub file: Option<Spanned<String>>,
    pub mask: Option<Spanned<String>>,
    /// Host path for binds (default: the same path as inside).
    pub source: Option<Spanned<String>>,
    /// Link text for `symlink`.
    pub to: Option<Spanned<String>>,
    /// Inline content for `file`.
    pub content: Option<String>,
    /// Size limit for `tmpfs`.
    #[schemars(with = "Option<crate::types::Scalar>")]
    pub size: Option<Spanned<String>>,
    /// Permission bits for `tmpfs`, `dir` and `file`, e.g. `0o755` or `"1777"`.
    #[schemars(with = "Option<crate::types::Scalar>")]
    pub perms: Option<Spanned<String>>,
    /// A bind whose source is missing is skipped instead of being an error.
    pub optional: Option<bool>,
    /// When lasagna runs as root: an idmapped bind, on which the source's owner is the
    /// payload's uid (what the payload writes lands on the host as that owner, while the
    /// payload itself stays its unprivileged host uid). Default: true for `bind`, false for
    /// `ro-bind`; `dev-bind` cannot be idmapped.
    pub idmap: Option<bool>,
    /// In a profile that extends another: drop the inherited entry of this path (a later
    /// entry of the same path in a child profile replaces it in place).
    pub remove: Option<Spanned<String>>,
    /// Landlock rights this entry grants on its path (`read`, `write`, `exec`, or the
    /// fine-grained names), when the profile has a Landlock layer: one line for both layers.
    /// Without it the two layers stay independent.
    pub landlock: Option<Vec<Spanned<String>>>,
}

#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Section {
    pub mode: Option<Requirement>,
    /// Remount the sandbox root read-only once everything is in place (default true).
    pub read_only_root: Option<bool>,
    /// Mount a fresh /proc (default true).
    pub proc: Option<bool>,
    /// Build a minimal /dev (default true).
    pub dev: Option<bool>,
    /// Size of /dev/shm (default 64M).
    #[schemars(with = "Option<crate::types::Scalar>")]
    pub dev_shm_size: Option<Spanned<String>>,
    #[serde(default)]
    pub mounts: Vec<MountEntry>,
    /// Classes of host paths left writable where a writable bind shows them (by default
    /// each is read-only inside): `lasagna-config` (lasagna's profile directories and this
    /// run's profile files), `startup-files` (shell and session startup files, `~/.ssh`,
    /// `~/.gnupg`, autostart, `~/.local/bin`, ...), `git-hooks` (the hooks and config of the
    /// repository around the working directory).
    #[serde(default)]
    pub unprotect: Vec<Spanned<String>>,
}

crate::merge_fields!(Section {
    mode: or,
    read_only_root: or,
    proc: or,
    dev: or,
    dev_shm_size: or,
    mounts: append,
    unprotect: append
});

/// A class of host paths that a payload must not change through a writable bind: what it
/// writes there acts after the run, as the next run's policy or the user's next login.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Guard {
    /// lasagna's own profile directories, and the files of this run's profile.
    LasagnaConfig,
    /// Shell and session startup files, `~/.ssh`, `~/.gnupg`, autostart entries, the
    /// directories on a login's PATH.
    StartupFiles,
    /// `.git/hooks` and `.git/config` of the repository around the working directory.
    GitHooks,
}

impl Guard {
    pub const ALL: [Guard; 3] = [Guard::LasagnaConfig, Guard::StartupFiles, Guard::GitHooks];

    pub fn key(self) -> &'static str {
        match self {
            Guard::LasagnaConfig => "lasagna-config",
            Guard::StartupFiles => "startup-files",
            Guard::GitHooks => "git-hooks",
        }
    }

    /// What the class holds, in plain words (explain, the plan's notes).
    pub fn describe(self) -> &'static str {
        match self {
            Guard::LasagnaConfig => "lasagna's configuration",
            Guard::StartupFiles => "startup files",
            Guard::GitHooks => "the repository's hooks and config",
        }
    }

    /// What a payload's write there would become, for explain and the notes.
    pub fn why(self) -> &'static str {
        match self {
            Guard::LasagnaConfig => "a profile written there would be the next run's policy",
            Guard::StartupFiles => "a login or a new shell would run what is written there",
            Guard::GitHooks => "git would run what is written there on the user's next commit",
        }
    }
}

/// One guarded host path (absolute, as the programs that read it name it).
/// `mask_missing`: a directory that, when it is missing, is created as a mount point for
/// the run (and removed after it) and masked, so that the payload cannot create it; other
/// missing paths are left alone (creating a startup file would change what a login reads).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guarded {
    pub path: std::path::PathBuf,
    pub class: Guard,
    pub mask_missing: bool,
}

/// A mount entry's own Landlock rights, as written.
type Rights = Vec<Spanned<String>>;

impl Section {
    fn checked(self) -> Result<Config, ProfileError> {
        self.checked_each().map_err(|mut errors| errors.remove(0))
    }

    /// [`Section::checked`] with the error of every mount entry that has one (`check`
    /// lists them all); the checks across entries follow only once each entry is right.
    fn checked_each(mut self) -> Result<Config, Vec<ProfileError>> {
        // Entries in merge order (a parent's before its child's). The same target twice in
        // one file is an error; in a later file (a child profile, a .local.yaml, a flag) it
        // replaces the earlier entry in place, and `remove:` drops it.
        let mut ops: Vec<(Loc, Op, Option<Rights>)> = Vec::new();
        let mut errors = Vec::new();
        let one = |entry: MountEntry,
                   ops: &mut Vec<(Loc, Op, Option<Rights>)>|
         -> Result<(), ProfileError> {
            if let Some(raw) = &entry.remove {
                let loc = Loc::of(raw);
                let target = parse_path(raw)?;
                let alone = [
                    entry.ro_bind.is_none(),
                    entry.bind.is_none(),
                    entry.dev_bind.is_none(),
                    entry.tmpfs.is_none(),
                    entry.dir.is_none(),
                    entry.symlink.is_none(),
                    entry.file.is_none(),
                    entry.mask.is_none(),
                    entry.source.is_none(),
                    entry.landlock.is_none(),
                ]
                .into_iter()
                .all(|b| b);
                if !alone {
                    return Err(ProfileError::at(loc, "`remove` stands alone in its entry")
                        .hint("- remove: PATH drops the inherited mount of PATH; write the new mount as an entry of its own"));
                }
                match ops.iter().position(|(_, op, _)| *op.target() == target) {
                    Some(i) if ops[i].0.file != loc.file => {
                        ops.remove(i);
                    }
                    Some(i) => {
                        return Err(ProfileError::at(
                            loc,
                            format!(
                                "remove {target}: its mount is in this same file (at {})",
                                ops[i].0.describe()
                            ),
                        )
                        .hint("delete that entry instead"))
                    }
                    None => {
                        return Err(ProfileError::at(
                            loc,
                            format!("remove {target}: no inherited mount has this path"),
                        )
                        .hint("`remove` drops a mount of the profile this one extends; `lasagna run --print-profile` lists them"))
                    }
                }
                return Ok(());
            }
            let grants = entry.landlock.clone();
            let (loc, op) = entry.validate()?;
            match ops.iter().position(|(_, o, _)| o.target() == op.target()) {
                Some(i) if ops[i].0.file != loc.file => ops[i] = (loc, op, grants),
                Some(i) => {
                    let target = op.target();
                    return Err(ProfileError::at(
                        loc,
                        format!(
                            "duplicate mount target {target} (first at {})",
                            ops[i].0.describe()
                        ),
                    )
                    .hint("each path inside the sandbox can be mounted once; a profile that extends this one can replace the entry or `remove:` it"));
                }
                None => ops.push((loc, op, grants)),
            }
            Ok(())
        };
        for entry in std::mem::take(&mut self.mounts) {
            if let Err(e) = one(entry, &mut ops) {
                errors.push(e);
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        self.rest(ops).map_err(|e| vec![e])
    }

    /// The checks across entries, once each entry is right.
    fn rest(&self, ops: Vec<(Loc, Op, Option<Rights>)>) -> Result<Config, ProfileError> {
        let grants: Vec<(SandboxPath, bool, Loc, Vec<Spanned<String>>)> = ops
            .iter()
            .filter_map(|(loc, op, g)| {
                let optional = matches!(op, Op::Bind { optional: true, .. });
                g.clone().map(|g| (op.target().clone(), optional, *loc, g))
            })
            .collect();
        let ops: Vec<(Loc, Op)> = ops.into_iter().map(|(l, o, _)| (l, o)).collect();
        for (i, (loc, op)) in ops.iter().enumerate() {
            for (later_loc, later) in &ops[i + 1..] {
                let t = later.target();
                if op.target().starts_with(t) && !matches!(later, Op::Dir { .. } | Op::Mask { .. })
                {
                    return Err(ProfileError::at(
                        *loc,
                        format!(
                            "mount {} would be hidden by the later mount {t} at {}",
                            op.target(),
                            later_loc.describe()
                        ),
                    )
                    .hint(format!("list {t} before {}", op.target())));
                }
            }
            if let Op::Mask { target, .. } = op {
                let in_built_tree = ["/proc", "/dev"].iter().any(|t| {
                    target.starts_with(&SandboxPath::parse(t).expect("a valid constant path"))
                });
                if !in_built_tree && !ops[..i].iter().any(|(_, o)| target.starts_with(o.target())) {
                    return Err(ProfileError::at(
                        *loc,
                        format!("mask {target} is not inside any mount listed before it"),
                    )
                    .hint("a mask hides a path inside a bind; list the bind first"));
                }
            }
        }
        let dev_shm_size = match &self.dev_shm_size {
            Some(raw) => tmpfs_size(raw)?,
            None => DEV_SHM_SIZE,
        };
        let mut unprotect = std::collections::BTreeSet::new();
        for raw in &self.unprotect {
            let Some(g) = Guard::ALL.into_iter().find(|g| g.key() == raw.value.trim()) else {
                return Err(ProfileError::at(
                    Loc::of(raw),
                    format!(
                        "{:?} is not a class of protected paths{}",
                        raw.value,
                        crate::text::did_you_mean(&raw.value, Guard::ALL.iter().map(|g| g.key()))
                    ),
                )
                .hint("unprotect takes lasagna-config, startup-files or git-hooks"));
            };
            unprotect.insert(g);
        }
        Ok(Config {
            mode: self.mode.unwrap_or_default(),
            dev_shm_size,
            read_only_root: self.read_only_root.unwrap_or(true),
            proc: self.proc.unwrap_or(true),
            dev: self.dev.unwrap_or(true),
            locs: ops.iter().map(|(l, _)| *l).collect(),
            ops: ops.into_iter().map(|(_, op)| op).collect(),
            grants,
            unprotect,
            guarded: Vec::new(),
        })
    }
}

fn parse_perms(raw: &Spanned<String>) -> Result<u32, ProfileError> {
    let s = raw.value.trim();
    let digits = s.strip_prefix("0o").unwrap_or(s);
    u32::from_str_radix(digits, 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| {
            ProfileError::at(
                Loc::of(raw),
                format!("perms {:?} is not an octal mode", raw.value),
            )
            .hint("write it like \"0755\" or \"1777\"")
        })
}

impl MountEntry {
    fn validate(self) -> Result<(Loc, Op), ProfileError> {
        let kinds: Vec<(&str, &Spanned<String>)> = [
            ("ro-bind", &self.ro_bind),
            ("bind", &self.bind),
            ("dev-bind", &self.dev_bind),
            ("tmpfs", &self.tmpfs),
            ("dir", &self.dir),
            ("symlink", &self.symlink),
            ("file", &self.file),
            ("mask", &self.mask),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| (k, v)))
        .collect();
        let (kind, raw_target) = match kinds.as_slice() {
            [one] => *one,
            [] => {
                let any = self
                    .source
                    .as_ref()
                    .or(self.to.as_ref())
                    .or(self.size.as_ref())
                    .or(self.perms.as_ref())
                    .map(Loc::of)
                    .unwrap_or_default();
                return Err(ProfileError::at(any, "mount entry has no kind").hint(
                    "start the entry with one of ro-bind, bind, dev-bind, tmpfs, dir, symlink, file, mask",
                ));
            }
            [_, (second, v), ..] => {
                return Err(ProfileError::at(
                    Loc::of(v),
                    format!("mount entry has more than one kind ({second} and another)"),
                )
                .hint("one entry per mount; split it in two"));
            }
        };
        let loc = Loc::of(raw_target);
        let target = parse_path(raw_target)?;
        let refuse = |what: &str, v: Option<Loc>| -> Result<(), ProfileError> {
            match v {
                Some(l) => Err(ProfileError::at(
                    l,
                    format!("`{what}` does not apply to {kind}"),
                )),
                None => Ok(()),
            }
        };
        let is_bind = matches!(kind, "ro-bind" | "bind" | "dev-bind");
        if !matches!(kind, "ro-bind" | "bind") && self.idmap.is_some() {
            return Err(
                ProfileError::at(loc, format!("`idmap` does not apply to {kind}"))
                    .hint("only `bind` and `ro-bind` entries can be idmapped"),
            );
        }
        if !is_bind {
            refuse("source", self.source.as_ref().map(Loc::of))?;
            if self.optional.is_some() && kind != "mask" {
                return Err(ProfileError::at(
                    loc,
                    format!("`optional` does not apply to {kind}"),
                ));
            }
        }
        if kind != "symlink" {
            refuse("to", self.to.as_ref().map(Loc::of))?;
        }
        if matches!(kind, "symlink" | "mask") {
            refuse(
                "landlock",
                self.landlock.as_ref().and_then(|l| l.first()).map(Loc::of),
            )?;
        }
        if kind != "tmpfs" {
            refuse("size", self.size.as_ref().map(Loc::of))?;
        }
        if !matches!(kind, "tmpfs" | "dir" | "file") {
            refuse("perms", self.perms.as_ref().map(Loc::of))?;
        }
        if kind != "file" && self.content.is_some() {
            return Err(ProfileError::at(
                loc,
                format!("`content` does not apply to {kind}"),
            ));
        }
        if target.is_root() && kind != "tmpfs" {
            return Err(
                ProfileError::at(loc, format!("cannot {kind} onto / itself"))
                    .hint("the sandbox root is already an empty tmpfs; mount things below it (a profile that binds ${CWD} at the same path, as cli-read and cli-write do, cannot run from /: cd into a directory first)"),
            );
        }
        let perms = self.perms.as_ref().map(parse_perms).transpose()?;
        let op = match kind {
            "ro-bind" | "bind" | "dev-bind" => Op::Bind {
                source: match &self.source {
                    Some(s) => parse_path(s)?,
                    None => target.clone(),
                },
                target,
                access: match kind {
                    "ro-bind" => BindAccess::ReadOnly,
                    "bind" => BindAccess::ReadWrite,
                    _ => BindAccess::Devices,
                },
                optional: self.optional.unwrap_or(false),
                idmap: self.idmap.unwrap_or(kind == "bind"),
            },
            "tmpfs" => Op::Tmpfs {
                target,
                size: match &self.size {
                    Some(s) => Some(tmpfs_size(s)?),
                    None => Some(DEFAULT_TMPFS_SIZE),
                },
                perms: perms.unwrap_or(0o755),
            },
            "dir" => Op::Dir {
                target,
                perms: perms.unwrap_or(0o755),
            },
            "symlink" => {
                let to = self.to.ok_or_else(|| {
                    ProfileError::at(loc, "symlink needs `to:`, the link's text")
                        .hint("e.g. `- symlink: /bin` with `to: usr/bin`")
                })?;
                if to.value.is_empty() || to.value.contains('\0') {
                    return Err(ProfileError::at(Loc::of(&to), "symlink `to` is empty"));
                }
                Op::Symlink {
                    target,
                    to: to.value,
                }
            }
            "file" => Op::File {
                target,
                content: self.content.unwrap_or_default().into_bytes(),
                perms: perms.unwrap_or(0o444),
            },
            _ => Op::Mask {
                target,
                optional: self.optional.unwrap_or(false),
            },
        };
        Ok((loc, op))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BindAccess {
    ReadOnly,
    ReadWrite,
    /// Read-write and device nodes stay usable (no nodev).
    Devices,
}

/// One step of building the sandbox's file tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Bind {
        source: SandboxPath,
        target: SandboxPath,
        access: BindAccess,
        optional: bool,
        /// As root: idmapped, the source's owner being the payload's uid on it.
        idmap: bool,
    },
    Tmpfs {
        target: SandboxPath,
        size: Option<u64>,
        perms: u32,
    },
    Dir {
        target: SandboxPath,
        perms: u32,
    },
    Symlink {
        target: SandboxPath,
        to: String,
    },
    File {
        target: SandboxPath,
        content: Vec<u8>,
        perms: u32,
    },
    Mask {
        target: SandboxPath,
        /// Nothing there is not an error: the mask is left out, and the plan says so.
        optional: bool,
    },
}

impl Op {
    pub fn target(&self) -> &SandboxPath {
        match self {
            Op::Bind { target, .. }
            | Op::Tmpfs { target, .. }
            | Op::Dir { target, .. }
            | Op::Symlink { target, .. }
            | Op::File { target, .. }
            | Op::Mask { target, .. } => target,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Op::Bind {
                source,
                target,
                access,
                optional,
                ..
            } => {
                let kind = match access {
                    BindAccess::ReadOnly => "read-only bind",
                    BindAccess::ReadWrite => "read-write bind",
                    BindAccess::Devices => "read-write bind with devices",
                };
                let opt = if *optional { " (if it exists)" } else { "" };
                if source == target {
                    format!("{kind} of host {source}{opt}")
                } else {
                    format!("{kind} of host {source} at {target}{opt}")
                }
            }
            Op::Tmpfs { target, size, .. } => match size {
                Some(s) => format!("empty writable tmpfs at {target} ({} KiB max)", s / 1024),
                None => format!("empty writable tmpfs at {target}"),
            },
            Op::Dir { target, .. } => format!("directory {target}"),
            Op::Symlink { target, to } => format!("symlink {target} -> {to}"),
            Op::File {
                target, content, ..
            } => {
                format!(
                    "read-only file {target} ({} bytes, from the profile)",
                    content.len()
                )
            }
            Op::Mask {
                target,
                optional: false,
            } => format!("{target} hidden (masked)"),
            Op::Mask { target, .. } => format!("{target} hidden (masked, if it exists)"),
        }
    }
}

/// The checked `filesystem` section.
#[derive(Debug, Clone)]
pub struct Config {
    pub mode: Requirement,
    /// Size of /dev/shm in bytes.
    pub dev_shm_size: u64,
    pub read_only_root: bool,
    pub proc: bool,
    pub dev: bool,
    pub ops: Vec<Op>,
    /// Where each op was written (the same order).
    pub locs: Vec<Loc>,
    /// Entries' own Landlock rights (`landlock:` on a mount): the target, whether the
    /// mount is optional, where, and the rights as written.
    pub grants: Vec<(SandboxPath, bool, Loc, Vec<Spanned<String>>)>,
    /// The classes `unprotect:` leaves writable.
    pub unprotect: std::collections::BTreeSet<Guard>,
    /// The host paths kept read-only where a writable bind shows them, filled in by the
    /// profile loader (which knows the caller's directories) without the unprotected classes.
    pub guarded: Vec<Guarded>,
}

impl crate::types::LayerSection for Section {
    type Config = Config;
    fn validate(&self, _dir: &std::path::Path) -> Result<Config, ProfileError> {
        self.clone().checked()
    }

    fn validate_each(&self, _dir: &std::path::Path) -> Result<Config, Vec<ProfileError>> {
        self.clone().checked_each()
    }
}
