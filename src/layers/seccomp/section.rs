//! The profile's `layers: seccomp:` section as written, and its check into [`Config`]:
//! names and groups resolved to numbers for one architecture, actions and argument checks
//! parsed, an OCI/Docker `import` merged under the section's own rules.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use seccompiler::SeccompAction;
use serde::Deserialize;

use crate::types::{Loc, ProfileError, Requirement, Spanned};

use super::bpf::{self, CmpOp, Width};
use super::oci;
use super::tables::{self, Arch};

/// `layers: seccomp:` as written.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Section {
    /// `None` when not written: `extends` then keeps the parent's mode (default required).
    #[serde(default)]
    pub mode: Option<Requirement>,
    /// What a syscall that no rule allows gets: `errno EPERM` (the default), `errno ENOSYS`,
    /// `kill-process`, `kill-thread`, `trap`, `log` or `allow` (a deny-list policy).
    #[serde(default)]
    pub default_action: Option<Spanned<String>>,
    /// Syscall names or `@group`s allowed with any arguments.
    #[serde(default)]
    pub allow: Vec<Spanned<String>>,
    /// Syscalls allowed only when all the argument checks hold.
    #[serde(default)]
    pub allow_if: Vec<AllowIf>,
    /// Syscalls answered with `action` (when all argument checks hold). Deny beats allow.
    #[serde(default)]
    pub deny: Vec<Deny>,
    /// Lift one of the always-blocked edges: `io_uring`, `ptrace`.
    #[serde(default)]
    pub allow_dangerous: Vec<Spanned<String>>,
    /// An OCI/Docker seccomp JSON profile, relative to the profile file's directory. Its rules
    /// are merged under this section's: `allow` here lifts an imported deny, `deny` here wins.
    #[serde(default)]
    pub import: Option<Spanned<String>>,
}

crate::merge_fields!(Section {
    mode: or,
    default_action: or,
    allow: append,
    allow_if: append,
    deny: append,
    allow_dangerous: append,
    import: or
});

#[derive(Debug, Clone, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct AllowIf {
    pub syscalls: Vec<Spanned<String>>,
    #[serde(default)]
    pub args: Vec<ArgSpec>,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Deny {
    pub syscalls: Vec<Spanned<String>>,
    /// Defaults to `errno EPERM`.
    #[serde(default)]
    pub action: Option<Spanned<String>>,
    #[serde(default)]
    pub args: Vec<ArgSpec>,
}

/// `{index: 0..5, op: eq|ne|lt|le|gt|ge|masked-eq, value: N, mask: N}`
#[derive(Debug, Clone, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ArgSpec {
    pub index: Spanned<u64>,
    pub op: Spanned<String>,
    pub value: u64,
    #[serde(default)]
    pub mask: Option<u64>,
}

/// Always-blocked edges that a profile may lift by name, one key per family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Dangerous {
    /// `io_uring_setup/enter/register`: io_uring ops bypass per-syscall filtering.
    IoUring,
    /// `ptrace`, `process_vm_readv/writev`: for debuggers inside the sandbox's pid namespace.
    Ptrace,
    /// Setting S_ISUID or S_ISGID on a file (the chmod family, and the calls that create
    /// with a mode): a setuid file left in a writable bind runs on the host as its owner,
    /// for any host user (`nosuid` holds only inside). systemd's `RestrictSUIDSGID=`.
    SetuidFiles,
}

impl Dangerous {
    pub(super) const ALL: [Dangerous; 3] = [
        Dangerous::IoUring,
        Dangerous::Ptrace,
        Dangerous::SetuidFiles,
    ];

    pub fn key(self) -> &'static str {
        match self {
            Dangerous::IoUring => "io_uring",
            Dangerous::Ptrace => "ptrace",
            Dangerous::SetuidFiles => "setuid-files",
        }
    }

    /// The calls the edge refuses: every call for the first two; for `setuid-files`, only
    /// when the mode they set has S_ISUID or S_ISGID (`openat2`, whose mode BPF cannot
    /// read, fails with ENOSYS, and libc falls back to `openat`).
    pub(super) fn syscalls(self) -> &'static [&'static str] {
        match self {
            Dangerous::IoUring => &["io_uring_setup", "io_uring_enter", "io_uring_register"],
            Dangerous::Ptrace => &["ptrace", "process_vm_readv", "process_vm_writev"],
            Dangerous::SetuidFiles => &[
                "chmod",
                "fchmod",
                "fchmodat",
                "fchmodat2",
                "open",
                "openat",
                "openat2",
                "creat",
                "mkdir",
                "mkdirat",
                "mknod",
                "mknodat",
            ],
        }
    }
}

/// One checked argument rule for one syscall number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct NrRule {
    pub(super) nr: u32,
    pub(super) checks: Vec<bpf::ArgCheck>,
    pub(super) action: SeccompAction,
}

/// A validated seccomp section: names resolved to numbers for `arch`.
#[derive(Debug, Clone)]
pub struct Config {
    pub mode: Requirement,
    pub arch: Arch,
    pub default_action: SeccompAction,
    /// Allowed with any arguments: number → name.
    pub(super) allowed: BTreeMap<u32, &'static str>,
    /// Deny rules (tried first, in order), then conditional allows.
    pub(super) denies: Vec<NrRule>,
    pub(super) allow_ifs: Vec<NrRule>,
    pub opt_in: BTreeSet<Dangerous>,
    /// Names that exist on other architectures only, left out here.
    pub other_arch_names: BTreeSet<String>,
    pub import: Option<PathBuf>,
    pub(super) imported_skipped: usize,
}

/// Largest OCI/Docker seccomp profile `import` reads (the containers' default is ~20 KiB).
const MAX_IMPORT_BYTES: u64 = 4 << 20;

/// Arguments the kernel reads as 32-bit `int`/`unsigned int`: checks on them compare the low
/// 32 bits only, since the high bits are ignored by the call (Flatpak CVE-2019-10063).
const INT_ARGS: &[(&str, u8)] = &[
    ("ioctl", 1),
    ("socket", 0),
    ("socket", 1),
    ("socket", 2),
    ("socketpair", 0),
    ("socketpair", 1),
    ("socketpair", 2),
    ("personality", 0),
    ("clone", 0),
    ("fcntl", 1),
    ("prctl", 0),
    ("kill", 1),
    ("tgkill", 2),
    ("tkill", 1),
    ("setns", 1),
    ("getsockopt", 1),
    ("getsockopt", 2),
    ("setsockopt", 1),
    ("setsockopt", 2),
];

fn width_of(name: &str, index: u8) -> Width {
    if INT_ARGS.contains(&(name, index)) {
        Width::Low32
    } else {
        Width::Full64
    }
}

fn errno_by_name(name: &str) -> Option<i32> {
    (1..200).find(|&n| format!("{:?}", Errno::from_raw(n)) == name)
}

/// `errno EPERM`, `errno 38`, `kill-process`, `kill-thread`, `trap`, `log`, `allow`.
fn parse_action(raw: &Spanned<String>) -> Result<SeccompAction, ProfileError> {
    let text = raw.value.trim();
    let hint = "write one of: errno EPERM, errno ENOSYS, errno <number>, kill-process, \
                kill-thread, trap, log, allow";
    let bad = |msg: String| ProfileError::at(Loc::of(raw), msg).hint(hint);
    match text {
        "allow" => return Ok(SeccompAction::Allow),
        "kill-process" | "kill" => return Ok(SeccompAction::KillProcess),
        "kill-thread" => return Ok(SeccompAction::KillThread),
        "trap" => return Ok(SeccompAction::Trap),
        "log" => return Ok(SeccompAction::Log),
        _ => {}
    }
    let Some(rest) = text.strip_prefix("errno") else {
        return Err(bad(format!("unknown seccomp action {text:?}")));
    };
    let code = rest.trim();
    let n = match code.parse::<u32>() {
        Ok(n) if (1..4096).contains(&n) => n,
        Ok(n) => return Err(bad(format!("errno {n} is out of range 1..4095"))),
        Err(_) => match errno_by_name(code) {
            Some(n) => n as u32,
            None => {
                return Err(bad(format!(
                    "unknown errno name {code:?} in action {text:?}"
                )))
            }
        },
    };
    Ok(SeccompAction::Errno(n))
}

fn parse_op(raw: &Spanned<String>, mask: Option<u64>) -> Result<CmpOp, ProfileError> {
    let op = match raw.value.as_str() {
        "eq" => CmpOp::Eq,
        "ne" => CmpOp::Ne,
        "lt" => CmpOp::Lt,
        "le" => CmpOp::Le,
        "gt" => CmpOp::Gt,
        "ge" => CmpOp::Ge,
        "masked-eq" => {
            let Some(mask) = mask else {
                return Err(ProfileError::at(Loc::of(raw), "op masked-eq needs a mask")
                    .hint("write `mask: N`; the check is (arg & mask) == value"));
            };
            CmpOp::MaskedEq { mask }
        }
        other => {
            return Err(
                ProfileError::at(Loc::of(raw), format!("unknown argument op {other:?}"))
                    .hint("use eq, ne, lt, le, gt, ge or masked-eq"),
            )
        }
    };
    if mask.is_some() && !matches!(op, CmpOp::MaskedEq { .. }) {
        return Err(ProfileError::at(
            Loc::of(raw),
            format!("mask is only used with op masked-eq, not {:?}", raw.value),
        ));
    }
    Ok(op)
}

/// Resolves names and groups against one architecture's table.
struct Resolver {
    arch: Arch,
    other_arch_names: BTreeSet<String>,
}

impl Resolver {
    /// A syscall name or `@group` → (number, name) pairs on this architecture.
    fn resolve(&mut self, raw: &Spanned<String>) -> Result<Vec<(u32, &'static str)>, ProfileError> {
        let name = raw.value.trim();
        let table = self.arch.table();
        if name.starts_with('@') {
            let Some(members) = tables::expand_group(name) else {
                let mut err =
                    ProfileError::at(Loc::of(raw), format!("unknown syscall group {name:?}"));
                let names = tables::groups().iter().map(|g| g.name);
                if let Some(s) = tables::suggest(name, names) {
                    err.message.push_str(&format!(" (did you mean {s:?}?)"));
                }
                return Err(err.hint("groups are systemd's: see `systemd-analyze syscall-filter`"));
            };
            return Ok(members
                .ids()
                .iter()
                .filter_map(|&id| table.nr_of(id).map(|nr| (nr, tables::name_of(id))))
                .collect());
        }
        if let Some(nr) = table.nr(name) {
            return Ok(vec![(nr, table.name(nr).unwrap_or("?"))]);
        }
        if tables::known_anywhere(name) {
            self.other_arch_names.insert(name.to_string());
            return Ok(Vec::new());
        }
        let mut msg = format!("unknown syscall {name:?}");
        if let Some(s) = tables::suggest(name, table.names()) {
            msg.push_str(&format!(" (did you mean {s:?}?)"));
        }
        Err(ProfileError::at(Loc::of(raw), msg))
    }

    fn checks(&self, name: &str, args: &[ArgSpec]) -> Result<Vec<bpf::ArgCheck>, ProfileError> {
        args.iter()
            .map(|a| {
                let index = u8::try_from(a.index.value)
                    .ok()
                    .filter(|i| *i <= 5)
                    .ok_or_else(|| {
                        ProfileError::at(
                            Loc::of(&a.index),
                            format!("argument index {} is not 0..5", a.index.value),
                        )
                    })?;
                let op = parse_op(&a.op, a.mask)?;
                let width = width_of(name, index);
                if width == Width::Low32
                    && (a.value > u64::from(u32::MAX)
                        || a.mask.is_some_and(|m| m > u64::from(u32::MAX)))
                {
                    return Err(ProfileError::at(
                        Loc::of(&a.op),
                        format!(
                            "{name} argument {index} is a 32-bit int; value {:#x} does not fit",
                            a.value
                        ),
                    ));
                }
                Ok(bpf::ArgCheck {
                    index,
                    op,
                    value: a.value,
                    width,
                })
            })
            .collect()
    }
}

/// Check a section and resolve it for the native architecture.
impl crate::types::LayerSection for Section {
    type Config = Config;
    fn validate(&self, profile_dir: &Path) -> Result<Config, ProfileError> {
        validate_for(self, profile_dir, Arch::NATIVE)
    }
}

pub fn validate_for(
    section: &Section,
    profile_dir: &Path,
    arch: Arch,
) -> Result<Config, ProfileError> {
    let mut r = Resolver {
        arch,
        other_arch_names: BTreeSet::new(),
    };
    let mut denies = Vec::new();
    let mut allow_ifs = Vec::new();

    let mut opt_in = BTreeSet::new();
    for raw in &section.allow_dangerous {
        let Some(d) = Dangerous::ALL
            .into_iter()
            .find(|d| d.key() == raw.value.trim())
        else {
            return Err(ProfileError::at(
                Loc::of(raw),
                format!("{:?} is not an edge that can be allowed", raw.value),
            )
            .hint("allow-dangerous takes io_uring, ptrace or setuid-files; the other edges stay blocked"));
        };
        opt_in.insert(d);
    }

    // A group expands to hundreds of numbers: build the map in one go (sort, then bulk
    // insert) rather than one insert at a time.
    let mut listed = Vec::new();
    for raw in &section.allow {
        listed.extend(r.resolve(raw)?);
    }
    let mut allowed: BTreeMap<u32, &'static str> = listed.into_iter().collect();
    let profile_allowed: BTreeSet<u32> = allowed.keys().copied().collect();

    for rule in &section.deny {
        let action = match &rule.action {
            Some(a) => parse_action(a)?,
            None => SeccompAction::Errno(libc::EPERM as u32),
        };
        if action == SeccompAction::Allow {
            let loc = rule.action.as_ref().map(Loc::of).unwrap_or_default();
            return Err(
                ProfileError::at(loc, "a deny rule cannot have action allow")
                    .hint("use allow or allow-if for that"),
            );
        }
        for raw in &rule.syscalls {
            for (nr, name) in r.resolve(raw)? {
                denies.push(NrRule {
                    nr,
                    checks: r.checks(name, &rule.args)?,
                    action: action.clone(),
                });
            }
        }
    }
    for rule in &section.allow_if {
        for raw in &rule.syscalls {
            for (nr, name) in r.resolve(raw)? {
                allow_ifs.push(NrRule {
                    nr,
                    checks: r.checks(name, &rule.args)?,
                    action: SeccompAction::Allow,
                });
            }
        }
    }

    let mut import = None;
    let mut imported_default = None;
    let mut imported_skipped = 0;
    if let Some(raw) = &section.import {
        let path = profile_dir.join(raw.value.trim());
        let text = crate::hostfs::read_config(&path, MAX_IMPORT_BYTES).map_err(|e| {
            ProfileError::at(Loc::of(raw), format!("cannot read {}: {e}", path.display()))
        })?;
        let imported = oci::parse(&text, arch).map_err(|e| {
            ProfileError::at(
                Loc::of(raw),
                format!(
                    "seccomp profile {}: {}",
                    path.display(),
                    crate::text::quote_short(&e, 120)
                ),
            )
        })?;
        let table = arch.table();
        for rule in imported.rules {
            // OCI profiles list every architecture's names: resolve those this one has.
            let nrs: Vec<(u32, &'static str)> = rule
                .names
                .iter()
                .filter_map(|n| table.nr(n).and_then(|nr| Some((nr, table.name(nr)?))))
                .collect();
            for (nr, name) in nrs {
                let mut checks = Vec::new();
                for &(index, op, value) in &rule.checks {
                    let width = width_of(name, index);
                    checks.push(bpf::ArgCheck {
                        index,
                        op,
                        value,
                        width,
                    });
                }
                match (&rule.action, checks.is_empty()) {
                    (SeccompAction::Allow, true) => {
                        allowed.insert(nr, name);
                    }
                    (SeccompAction::Allow, false) => allow_ifs.push(NrRule {
                        nr,
                        checks,
                        action: SeccompAction::Allow,
                    }),
                    // The profile's own allow lifts an imported deny.
                    (_, _) if profile_allowed.contains(&nr) => {}
                    (action, _) => denies.push(NrRule {
                        nr,
                        checks,
                        action: action.clone(),
                    }),
                }
            }
        }
        imported_default = Some(imported.default_action);
        imported_skipped = imported.skipped;
        import = Some(path);
    }

    let default_action = match &section.default_action {
        Some(raw) => parse_action(raw)?,
        None => imported_default.unwrap_or(SeccompAction::Errno(libc::EPERM as u32)),
    };

    let policy = Config {
        mode: section.mode.unwrap_or_default(),
        arch,
        default_action,
        allowed,
        denies,
        allow_ifs,
        opt_in,
        other_arch_names: r.other_arch_names,
        import,
        imported_skipped,
    };

    // The filter is installed right before execve: a policy that refuses execve can never
    // start the payload.
    if section.mode != Some(Requirement::Off) && !policy.permits_execve() {
        let loc = section
            .allow
            .first()
            .map(Loc::of)
            .or(section.default_action.as_ref().map(Loc::of));
        return Err(ProfileError {
            file: PathBuf::new(),
            loc,
            message: "seccomp policy does not allow execve".into(),
            hint: Some(
                "the filter is installed just before execve; add execve to allow \
                 (it is in @default and @system-service)"
                    .into(),
            ),
        });
    }
    Ok(policy)
}

impl Config {
    fn permits_execve(&self) -> bool {
        let Some(nr) = self.arch.table().nr("execve") else {
            return true;
        };
        let denied = self
            .denies
            .iter()
            .any(|d| d.nr == nr && d.checks.is_empty());
        let allowed = self.allowed.contains_key(&nr)
            || self.allow_ifs.iter().any(|a| a.nr == nr)
            || self.default_action == SeccompAction::Allow;
        allowed && !denied
    }

    /// Every action the filter can return, for plan's `actions_avail` check.
    pub(super) fn actions(&self) -> BTreeSet<&'static str> {
        let mut out: BTreeSet<&'static str> = ["allow", "errno", "kill_process"].into();
        let all = self
            .denies
            .iter()
            .map(|r| &r.action)
            .chain([&self.default_action]);
        for a in all {
            out.insert(action_kernel_name(a));
        }
        out
    }
}

fn action_kernel_name(a: &SeccompAction) -> &'static str {
    match a {
        SeccompAction::Allow => "allow",
        SeccompAction::Errno(_) => "errno",
        SeccompAction::KillThread => "kill_thread",
        SeccompAction::KillProcess => "kill_process",
        SeccompAction::Log => "log",
        SeccompAction::Trace(_) => "trace",
        SeccompAction::Trap => "trap",
    }
}
