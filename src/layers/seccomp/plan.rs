//! What the layer decides and prepares in the supervisor, before the clone: whether the
//! host's kernel can install the policy ([`plan`]), and the compiled BPF programs for the
//! payload ([`prepare`]) and for lasagna's init ([`prepare_init`]), with the always-blocked
//! edges every payload filter carries.

use std::collections::BTreeSet;
use std::path::Path;

use seccompiler::{BpfProgram, SeccompAction};

use crate::launch::Decision;
use crate::procfs::read_proc_file;
use crate::types::Requirement;

use super::bpf::{self, CmpOp, Width};
use super::section::{Config, Dangerous};
use super::tables::Arch;

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
    pub(super) program: BpfProgram,
    /// `--explain-denials`: the program installed instead, its errno actions turned into
    /// user notifications the supervisor answers with the same errno.
    pub(super) notifying: Option<BpfProgram>,
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

    /// Install the notifying program instead of the original (`--explain-denials`).
    pub fn notify_denials(&mut self) {
        self.notifying = Some(super::notify::notifying(&self.program));
    }

    pub fn notifies(&self) -> bool {
        self.notifying.is_some()
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
    Ok(Prepared {
        program,
        notifying: None,
    })
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

pub(super) const TIOCSTI: u64 = 0x5412;
pub(super) const TIOCLINUX: u64 = 0x541C;
const PERSONALITY_QUERY: u64 = 0xffff_ffff;
const PER_LINUX: u64 = 0;
pub(super) const IPPROTO_MPTCP: u64 = 262;
/// CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET | NEWTIME.
const CLONE_NEW_MASK: u64 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWCGROUP
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | 0x80) as u64;

/// One always-blocked edge: on `syscall`, when all `checks` hold → `action`.
pub(super) struct Edge {
    pub(super) syscall: &'static str,
    pub(super) checks: Vec<bpf::ArgCheck>,
    pub(super) action: SeccompAction,
    pub(super) lifted_by: Option<Dangerous>,
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

/// S_ISUID | S_ISGID.
const SETUID_BITS: u64 = (libc::S_ISUID | libc::S_ISGID) as u64;
/// O_TMPFILE without O_DIRECTORY (`__O_TMPFILE`): an unnamed file created with a mode.
const O_TMPFILE_BIT: u64 = (libc::O_TMPFILE & !libc::O_DIRECTORY) as u64;

/// No call may set S_ISUID or S_ISGID: the chmod family by its mode argument, the calls
/// that create a file by their mode when they create (O_CREAT, O_TMPFILE), and `openat2`,
/// whose mode sits in a struct BPF cannot read, with ENOSYS (libc falls back to `openat`).
/// The same set as systemd's `RestrictSUIDSGID=` (src/shared/seccomp-util.c).
fn setuid_edges() -> Vec<Edge> {
    let eperm = SeccompAction::Errno(libc::EPERM as u32);
    let lifted_by = Some(Dangerous::SetuidFiles);
    let edge = |syscall, checks| Edge {
        syscall,
        checks,
        action: eperm.clone(),
        lifted_by,
    };
    let mut out = Vec::new();
    // (call, index of the mode argument)
    for (syscall, mode) in [
        ("chmod", 1),
        ("fchmod", 1),
        ("fchmodat", 2),
        ("fchmodat2", 2),
        ("creat", 1),
        ("mkdir", 1),
        ("mkdirat", 2),
        ("mknod", 1),
        ("mknodat", 2),
    ] {
        out.push(edge(syscall, vec![low32(mode, CmpOp::AnySet, SETUID_BITS)]));
    }
    // (call, index of flags, index of the mode)
    for (syscall, flags, mode) in [("open", 1, 2), ("openat", 2, 3)] {
        for creating in [libc::O_CREAT as u64, O_TMPFILE_BIT] {
            out.push(edge(
                syscall,
                vec![
                    low32(flags, CmpOp::AnySet, creating),
                    low32(mode, CmpOp::AnySet, SETUID_BITS),
                ],
            ));
        }
    }
    out.push(Edge {
        syscall: "openat2",
        checks: Vec::new(),
        action: SeccompAction::Errno(libc::ENOSYS as u32),
        lifted_by,
    });
    out
}

pub(super) fn edges(landlock_net_rules: bool) -> Vec<Edge> {
    let eperm = SeccompAction::Errno(libc::EPERM as u32);
    let mut out = Vec::new();
    let plain = |syscall, action: &SeccompAction, lifted_by| Edge {
        syscall,
        checks: Vec::new(),
        action: action.clone(),
        lifted_by,
    };
    for d in [Dangerous::IoUring, Dangerous::Ptrace] {
        for s in d.syscalls() {
            out.push(plain(s, &eperm, Some(d)));
        }
    }
    out.extend(setuid_edges());
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
