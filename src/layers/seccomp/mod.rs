//! The `seccomp` layer: a syscall allow-list compiled to classic BPF, plus a fixed set of
//! "dangerous edges" that every policy blocks (io_uring, namespaces, the mount API, keyrings,
//! bpf, ptrace, modules, x32 and foreign-arch entry points, TIOCSTI...).
//!
//! Phases: `validate` (profile → `Config`, pure, errors carry line:col), `plan` (what the
//! host supports), `prepare` (supervisor: `Config` → BPF program), `install` (child, last step
//! before execve: no allocation). `prepare_init` builds the small filter for pid 1.
//!
//! Names and groups come from generated files (see `tables`); the profile's `allow` entries are
//! syscall names or systemd group names (`@system-service`, `@basic-io`, ...).

mod bpf;
mod oci;
mod tables;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::types::Spanned;
use nix::errno::Errno;
use seccompiler::{BpfProgram, SeccompAction};
use serde::Deserialize;

use crate::launch::{ChildContext, ChildError, Decision};
use crate::procfs::read_proc_file;
use crate::sys::seccomp as sys;
use crate::types::{Loc, ProfileError, Requirement};

pub use bpf::{CmpOp, Width};
pub use tables::Arch;

// ---------------------------------------------------------------------------------------------
// Profile section

/// `layers: seccomp:` as written.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
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

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct AllowIf {
    pub syscalls: Vec<Spanned<String>>,
    #[serde(default)]
    pub args: Vec<ArgSpec>,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
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
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ArgSpec {
    pub index: Spanned<u64>,
    pub op: Spanned<String>,
    pub value: u64,
    #[serde(default)]
    pub mask: Option<u64>,
}

/// systemd's syscall groups usable in `allow`, with their descriptions (for `lasagna schema`
/// and the docs).
pub fn syscall_groups() -> Vec<(&'static str, &'static str)> {
    tables::groups()
        .iter()
        .map(|g| (g.name, g.description))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Checked policy

/// Always-blocked edges that a profile may lift by name, one key per family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Dangerous {
    /// `io_uring_setup/enter/register`: io_uring ops bypass per-syscall filtering.
    IoUring,
    /// `ptrace`, `process_vm_readv/writev`: for debuggers inside the sandbox's pid namespace.
    Ptrace,
}

impl Dangerous {
    const ALL: [Dangerous; 2] = [Dangerous::IoUring, Dangerous::Ptrace];

    pub fn key(self) -> &'static str {
        match self {
            Dangerous::IoUring => "io_uring",
            Dangerous::Ptrace => "ptrace",
        }
    }

    fn syscalls(self) -> &'static [&'static str] {
        match self {
            Dangerous::IoUring => &["io_uring_setup", "io_uring_enter", "io_uring_register"],
            Dangerous::Ptrace => &["ptrace", "process_vm_readv", "process_vm_writev"],
        }
    }
}

/// One checked argument rule for one syscall number.
#[derive(Debug, Clone, PartialEq, Eq)]
struct NrRule {
    nr: u32,
    checks: Vec<bpf::ArgCheck>,
    action: SeccompAction,
}

/// A validated seccomp section: names resolved to numbers for `arch`.
#[derive(Debug, Clone)]
pub struct Config {
    pub mode: Requirement,
    pub arch: Arch,
    pub default_action: SeccompAction,
    /// Allowed with any arguments: number → name.
    allowed: BTreeMap<u32, &'static str>,
    /// Deny rules (tried first, in order), then conditional allows.
    denies: Vec<NrRule>,
    allow_ifs: Vec<NrRule>,
    pub opt_in: BTreeSet<Dangerous>,
    /// Names that exist on other architectures only, left out here.
    pub other_arch_names: BTreeSet<String>,
    pub import: Option<PathBuf>,
    imported_skipped: usize,
}

/// Largest OCI/Docker seccomp profile `import` reads (the containers' default is ~20 KiB).
const MAX_IMPORT_BYTES: u64 = 4 << 20;
const TIOCSTI: u64 = 0x5412;
const TIOCLINUX: u64 = 0x541C;
const PERSONALITY_QUERY: u64 = 0xffff_ffff;
const PER_LINUX: u64 = 0;
const IPPROTO_MPTCP: u64 = 262;
/// CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET | NEWTIME.
const CLONE_NEW_MASK: u64 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWCGROUP
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | 0x80) as u64;

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
            .hint("allow-dangerous takes io_uring or ptrace; the other edges stay blocked"));
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
    fn actions(&self) -> BTreeSet<&'static str> {
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

fn describe_action(a: &SeccompAction) -> String {
    match a {
        SeccompAction::Allow => "allowed".into(),
        SeccompAction::Errno(n) => format!("fails with {:?}", Errno::from_raw(*n as i32)),
        SeccompAction::KillThread => "kills the thread".into(),
        SeccompAction::KillProcess => "kills the process".into(),
        SeccompAction::Log => "allowed and logged".into(),
        SeccompAction::Trace(_) => "passed to a tracer".into(),
        SeccompAction::Trap => "raises SIGSYS".into(),
    }
}

// ---------------------------------------------------------------------------------------------
// Dangerous edges

/// One always-blocked edge: on `syscall`, when all `checks` hold → `action`.
struct Edge {
    syscall: &'static str,
    checks: Vec<bpf::ArgCheck>,
    action: SeccompAction,
    lifted_by: Option<Dangerous>,
}

const ALWAYS_DENIED: &[&str] = &[
    "unshare",
    "setns",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "fsopen",
    "fsmount",
    "fsconfig",
    "fspick",
    "open_tree",
    "open_tree_attr",
    "move_mount",
    "mount_setattr",
    "keyctl",
    "add_key",
    "request_key",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "open_by_handle_at",
    "name_to_handle_at",
];

fn low32(index: u8, op: CmpOp, value: u64) -> bpf::ArgCheck {
    bpf::ArgCheck {
        index,
        op,
        value,
        width: Width::Low32,
    }
}

/// The current persona of this process, which the payload inherits (`/proc/self/personality`).
/// Read once: both filters and `explain` ask, and nothing here changes it.
fn current_persona() -> Option<u64> {
    static PERSONA: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    *PERSONA.get_or_init(|| {
        let text = read_proc_file(Path::new("/proc/self/personality")).ok()?;
        u64::from_str_radix(text.trim(), 16).ok()
    })
}

fn edges(landlock_net_rules: bool) -> Vec<Edge> {
    let eperm = SeccompAction::Errno(libc::EPERM as u32);
    let mut out = Vec::new();
    let plain = |syscall, action: &SeccompAction, lifted_by| Edge {
        syscall,
        checks: Vec::new(),
        action: action.clone(),
        lifted_by,
    };
    for d in Dangerous::ALL {
        for s in d.syscalls() {
            out.push(plain(s, &eperm, Some(d)));
        }
    }
    for s in ALWAYS_DENIED {
        out.push(plain(s, &eperm, None));
    }
    // ENOSYS, so that libc falls back to clone(2), whose flags are checked below.
    out.push(plain(
        "clone3",
        &SeccompAction::Errno(libc::ENOSYS as u32),
        None,
    ));
    out.push(Edge {
        syscall: "clone",
        checks: vec![low32(0, CmpOp::AnySet, CLONE_NEW_MASK)],
        action: eperm.clone(),
        lifted_by: None,
    });
    for cmd in [TIOCSTI, TIOCLINUX] {
        out.push(Edge {
            syscall: "ioctl",
            checks: vec![low32(1, CmpOp::Eq, cmd)],
            action: eperm.clone(),
            lifted_by: None,
        });
    }
    let mut personas: BTreeSet<u64> = [PERSONALITY_QUERY, PER_LINUX].into();
    personas.extend(current_persona());
    out.push(Edge {
        syscall: "personality",
        checks: personas
            .into_iter()
            .map(|p| low32(0, CmpOp::Ne, p))
            .collect(),
        action: eperm.clone(),
        lifted_by: None,
    });
    // A channel between sandboxes and to the host (isolate 2.6), reachable without any path.
    out.push(Edge {
        syscall: "socket",
        checks: vec![low32(0, CmpOp::Eq, libc::AF_VSOCK as u64)],
        action: eperm.clone(),
        lifted_by: None,
    });
    if landlock_net_rules {
        // Landlock's TCP rules do not cover MPTCP (landlock-lsm/linux#54).
        for family in [libc::AF_INET, libc::AF_INET6] {
            out.push(Edge {
                syscall: "socket",
                checks: vec![
                    low32(0, CmpOp::Eq, family as u64),
                    low32(2, CmpOp::Eq, IPPROTO_MPTCP),
                ],
                // What a kernel without MPTCP answers: programs fall back to TCP.
                action: SeccompAction::Errno(libc::EPROTONOSUPPORT as u32),
                lifted_by: None,
            });
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Phases

/// The seccomp actions this kernel knows (`seccomp(2)`, since Linux 4.14).
/// Decide, from what the host's kernel offers, whether the filter can be installed with
/// every action the policy uses.
pub fn plan(cfg: &Config, req: Requirement, host: &crate::host::Host) -> Decision {
    if req == Requirement::Off {
        return Decision::Skip("mode: off".into());
    }
    let missing = match &host.seccomp {
        Err(why) => Some(why.clone()),
        Ok(avail) => {
            let lacking: Vec<&str> = cfg
                .actions()
                .into_iter()
                .filter(|a| !avail.iter().any(|x| x == a))
                .collect();
            (!lacking.is_empty())
                .then(|| format!("the kernel lacks seccomp actions: {}", lacking.join(", ")))
        }
    };
    match (missing, req) {
        (None, _) => Decision::Apply,
        (Some(why), Requirement::Required) => Decision::Refuse(why),
        (Some(why), _) => Decision::Skip(why),
    }
}

/// A compiled filter, ready for `install`.
#[derive(Debug, Clone)]
pub struct Prepared {
    program: BpfProgram,
}

impl Prepared {
    /// Number of BPF instructions.
    pub fn len(&self) -> usize {
        self.program.len()
    }

    pub fn is_empty(&self) -> bool {
        self.program.is_empty()
    }

    pub fn program(&self) -> &[seccompiler::sock_filter] {
        &self.program
    }
}

/// Compile the payload's filter (supervisor side). `landlock_net_rules`: Landlock TCP rules
/// are in force, so MPTCP sockets (which they do not cover) are refused too.
pub fn prepare(policy: &Config, landlock_net_rules: bool) -> Result<Prepared, String> {
    let table = policy.arch.table();
    let edges = edges(landlock_net_rules);
    // Per number: its rules in the order they are tried (edges, denies, conditional allows),
    // and `None` where a call no rule catches is allowed. A stable sort by number groups them
    // and keeps that order.
    let mut entries: Vec<(u32, Option<bpf::Rule>)> =
        Vec::with_capacity(edges.len() + policy.denies.len() + policy.allowed.len());
    for edge in &edges {
        let Some(nr) = table.nr(edge.syscall) else {
            continue;
        };
        entries.push(match edge.lifted_by {
            Some(d) if policy.opt_in.contains(&d) => (nr, None),
            _ => (
                nr,
                Some(bpf::Rule {
                    checks: edge.checks.clone(),
                    action: edge.action.clone(),
                }),
            ),
        });
    }
    for rule in policy.denies.iter().chain(&policy.allow_ifs) {
        entries.push((
            rule.nr,
            Some(bpf::Rule {
                checks: rule.checks.clone(),
                action: rule.action.clone(),
            }),
        ));
    }
    entries.extend(policy.allowed.keys().map(|&nr| (nr, None)));
    entries.sort_by_key(|(nr, _)| *nr);

    let default_leaf = bpf::Leaf::Const(policy.default_action.clone());
    let mut leaves: Vec<(u32, bpf::Leaf)> = Vec::new();
    let mut entries = entries.into_iter().peekable();
    while let Some((nr, first)) = entries.next() {
        let mut rules = Vec::new();
        let mut allowed = false;
        for entry in std::iter::once(first).chain(std::iter::from_fn(|| {
            entries.next_if(|(n, _)| *n == nr).map(|(_, e)| e)
        })) {
            match entry {
                Some(rule) => rules.push(rule),
                None => allowed = true,
            }
        }
        let fallback = if allowed {
            SeccompAction::Allow
        } else {
            policy.default_action.clone()
        };
        let leaf = bpf::Leaf::Rules { rules, fallback }.simplify();
        if leaf != default_leaf {
            leaves.push((nr, leaf));
        }
    }
    // Numbers newer than the table get ENOSYS under an errno policy, as from a kernel that
    // lacks them, so libc's fallbacks run.
    let beyond = match policy.default_action {
        SeccompAction::Errno(_) => SeccompAction::Errno(libc::ENOSYS as u32),
        ref other => other.clone(),
    };
    let program = bpf::assemble(
        policy.arch,
        leaves.iter().map(|(nr, leaf)| (nr, leaf)),
        &policy.default_action,
        &beyond,
        table.max_nr(),
    )?;
    Ok(Prepared { program })
}

/// Syscalls lasagna's init (pid 1 in the sandbox) needs once the payload is forked: wait and
/// reap, forward signals, report over its pipe, exit. Install it after forking the payload:
/// filters are inherited, so anything forked later would run under this one too.
const INIT_SYSCALLS: &[&str] = &[
    "read",
    // Its `children` file, read without a pid namespace to end what the payload left.
    "pread64",
    "write",
    "close",
    "kill",
    "tgkill",
    "tkill",
    "pidfd_send_signal",
    "rt_sigtimedwait",
    "rt_sigprocmask",
    "rt_sigaction",
    "rt_sigreturn",
    "restart_syscall",
    "sigaltstack",
    "signalfd4",
    "poll",
    "ppoll",
    "wait4",
    "waitid",
    "exit",
    "exit_group",
    "getpid",
    "gettid",
    "getppid",
    "prctl",
    "brk",
    "mmap",
    "munmap",
    "clock_gettime",
    "clock_nanosleep",
    "nanosleep",
];

/// The filter for lasagna's init. Anything else fails with EPERM (not a kill: init's death
/// would end the whole pid namespace).
pub fn prepare_init() -> Result<Prepared, String> {
    let arch = Arch::NATIVE;
    let table = arch.table();
    let allowed = INIT_SYSCALLS
        .iter()
        .filter_map(|n| table.nr(n).map(|nr| (nr, table.name(nr).unwrap_or(n))))
        .collect();
    let policy = Config {
        mode: Requirement::Required,
        arch,
        default_action: SeccompAction::Errno(libc::EPERM as u32),
        allowed,
        denies: Vec::new(),
        allow_ifs: Vec::new(),
        opt_in: BTreeSet::new(),
        other_arch_names: BTreeSet::new(),
        import: None,
        imported_skipped: 0,
    };
    prepare(&policy, false)
}

/// Child side, the last step before execve: add the filter. Allocates nothing.
/// no_new_privs must already be set (or CAP_SYS_ADMIN held): otherwise the kernel says EACCES.
pub fn install(prepared: &Prepared) -> Result<(), ChildError<'static>> {
    install_at(prepared, crate::launch::At::Seccomp)
}

/// Install a filter as launch step `at` (init's own filter, or the payload's).
pub fn install_at(prepared: &Prepared, at: crate::launch::At) -> Result<(), ChildError<'static>> {
    match sys::set_mode_filter(&prepared.program) {
        Err(Errno::EACCES) => Err(ChildError::new(at, "install", Errno::EACCES)
            .with_detail(b"no_new_privs is not set and CAP_SYS_ADMIN is not held")),
        other => other.step(at, "install"),
    }
}

// ---------------------------------------------------------------------------------------------
// Observation

/// What the policy stops and what it does not, in plain words.
pub fn explain(policy: &Config) -> Vec<String> {
    let table = policy.arch.table();
    let mut out = Vec::new();
    if policy.mode == Requirement::Off {
        out.push("seccomp: off; every syscall is allowed".into());
        return out;
    }
    let conditional: BTreeSet<&str> = policy
        .allow_ifs
        .iter()
        .filter_map(|r| table.name(r.nr))
        .collect();
    out.push(format!(
        "{} syscalls allowed with any arguments, {} more only with checked arguments{}",
        policy.allowed.len(),
        conditional.len(),
        if conditional.is_empty() {
            String::new()
        } else {
            format!(
                " ({})",
                conditional.into_iter().collect::<Vec<_>>().join(", ")
            )
        }
    ));
    out.push(format!(
        "any other syscall {} (newer ones than this table, up to {}: ENOSYS)",
        describe_action(&policy.default_action),
        table.name(table.max_nr()).unwrap_or("?"),
    ));
    for rule in &policy.denies {
        let name = table.name(rule.nr).unwrap_or("?");
        let when = if rule.checks.is_empty() {
            String::new()
        } else {
            format!(" when {} argument check(s) hold", rule.checks.len())
        };
        out.push(format!("{name}{when}: {}", describe_action(&rule.action)));
    }
    out.push(format!(
        "always blocked, whatever the allow list says: i386/x32/foreign-arch syscalls (kill); \
         {}mount API old and new, chroot, pivot_root; unshare, setns, clone with CLONE_NEW* \
         flags, clone3 (ENOSYS, so libc uses clone); keyctl, add_key, request_key; bpf; \
         perf_event_open; userfaultfd; kexec and kernel modules; open_by_handle_at, \
         name_to_handle_at; ioctl TIOCSTI and TIOCLINUX (cmd compared on 32 bits); \
         personality other than the default; AF_VSOCK sockets; MPTCP sockets when Landlock \
         TCP rules are in use",
        Dangerous::ALL
            .iter()
            .filter(|d| !policy.opt_in.contains(d))
            .map(|d| format!("{}, ", d.syscalls().join("/")))
            .collect::<String>()
    ));
    for d in &policy.opt_in {
        out.push(format!(
            "allowed by allow-dangerous: {} ({})",
            d.syscalls().join(", "),
            match d {
                Dangerous::IoUring =>
                    "io_uring operations are not seen by seccomp: the filter no longer bounds \
                     what the payload can do through them",
                Dangerous::Ptrace => "the payload can trace and read other sandboxed processes",
            }
        ));
    }
    let overridden: Vec<&str> = edges(true)
        .iter()
        .filter(|e| e.checks.is_empty() && e.lifted_by.is_none_or(|d| !policy.opt_in.contains(&d)))
        .filter_map(|e| {
            table
                .nr(e.syscall)
                .filter(|nr| policy.allowed.contains_key(nr))
        })
        .filter_map(|nr| table.name(nr))
        .collect();
    if !overridden.is_empty() {
        out.push(format!(
            "in the allow list (directly or through a group) but blocked as dangerous: {}",
            overridden.join(", ")
        ));
    }
    if let Some(path) = &policy.import {
        out.push(format!(
            "rules imported from {} ({} capability- or arch-gated rules left out)",
            path.display(),
            policy.imported_skipped
        ));
    }
    if !policy.other_arch_names.is_empty() {
        out.push(format!(
            "not on {}, left out: {}",
            policy.arch.name(),
            policy
                .other_arch_names
                .iter()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    out.push(
        "does not stop: what allowed syscalls do with their pointer arguments (paths, \
         buffers): that is for landlock and the filesystem layer"
            .into(),
    );
    out
}

/// Host facts for `lasagna doctor`.
pub fn doctor() -> Vec<(String, String)> {
    let read = |p: &str| std::fs::read_to_string(p).map(|s| s.trim().to_string());
    let mut out = Vec::new();
    out.push((
        "seccomp filter".into(),
        match sys::get_seccomp_mode() {
            Ok(0) => "supported; this process is not filtered".into(),
            Ok(2) => "supported; this process already runs under a filter".into(),
            Ok(n) => format!("supported; this process is in seccomp mode {n}"),
            Err(e) => format!("not supported (prctl PR_GET_SECCOMP: {e})"),
        },
    ));
    out.push((
        "seccomp actions".into(),
        read("/proc/sys/kernel/seccomp/actions_avail").unwrap_or_else(|e| format!("unknown: {e}")),
    ));
    out.push((
        "kernel.io_uring_disabled".into(),
        match read("/proc/sys/kernel/io_uring_disabled").as_deref() {
            Ok("0") => "0: io_uring open to every process (lasagna's filter blocks it)".into(),
            Ok("1") => "1: io_uring only for CAP_SYS_ADMIN or kernel.io_uring_group".into(),
            Ok("2") => "2: io_uring disabled for everyone".into(),
            Ok(v) => format!("{v}: unknown value"),
            Err(e) => format!("not present (kernel before 6.6?): {e}"),
        },
    ));
    out.push((
        "dev.tty.legacy_tiocsti".into(),
        match read("/proc/sys/dev/tty/legacy_tiocsti").as_deref() {
            Ok("0") => "0: TIOCSTI needs CAP_SYS_ADMIN (lasagna's filter blocks it anyway)".into(),
            Ok("1") => "1: TIOCSTI allowed to all (lasagna's filter blocks it)".into(),
            Ok(v) => format!("{v}: unknown value"),
            Err(_) => "not present (kernel before 6.2): TIOCSTI allowed to all; \
                       lasagna's filter blocks it"
                .into(),
        },
    ));
    out
}

#[cfg(test)]
mod tests;
