//! The launch order as data: every step between `lasagna run` and the payload's `execve`,
//! in the order it runs, with its process, the layer it belongs to (if any) and why it is
//! there. The step comments in `supervisor`, `sandbox` and `sandbox::init`, a child's error
//! messages (each names its [`At`]), the report's failed / not-reached attribution and
//! ARCHITECTURE.md's launch table all come from [`STEPS`]; a test holds the document to it.

use std::fmt;
use std::io::Write;

use nix::errno::Errno;
use serde::Serialize;

/// Exit status of lasagna itself when it failed (bad profile, refusal, setup).
pub const EXIT_SETUP_FAILED: i32 = 125;
/// The command exists but cannot be executed.
pub const EXIT_NOT_EXECUTABLE: i32 = 126;
/// The command was not found.
pub const EXIT_NOT_FOUND: i32 = 127;

/// Which process runs a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Process {
    Supervisor,
    /// The child after the clone, before it becomes init.
    Child,
    Init,
    Payload,
}

impl Process {
    pub fn name(self) -> &'static str {
        match self {
            Process::Supervisor => "supervisor",
            Process::Child => "child",
            Process::Init => "init",
            Process::Payload => "payload",
        }
    }
}

/// One step of the launch. The discriminant is its place in [`STEPS`] and travels over
/// the status pipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum At {
    HostEntries,
    CgroupCreate,
    Clone,
    IdMaps,
    NetworkStart,
    Release,
    ParentDeath,
    CgroupJoin,
    CloseInherited,
    WaitRelease,
    UsernsLimit,
    IdentityInit,
    ReapList,
    Hostname,
    Loopback,
    ProxyListener,
    Filesystem,
    CgroupAttach,
    ParentDeathRearm,
    WaitAttach,
    UnshareTimeCgroup,
    NonDumpable,
    InitSignals,
    ForkPayload,
    InitSeccomp,
    PayloadSignals,
    ProcessEarly,
    Rlimits,
    Chdir,
    CapsBounding,
    IdentityPayload,
    CapsSets,
    NoNewPrivs,
    PayloadParentDeath,
    Landlock,
    Seccomp,
    Exec,
}

/// A step: where it is in ARCHITECTURE.md's numbering, who runs it, what it belongs to,
/// what it does and why it is there.
#[derive(Debug, Clone, Copy)]
pub struct Step {
    pub at: At,
    pub number: &'static str,
    pub process: Process,
    /// The layer whose defense this step applies; `None` for lasagna's own steps.
    pub layer: Option<Layer>,
    /// The name a failure is reported under: the layer's, or `init`, `identity`, `exec`.
    pub label: &'static str,
    pub what: &'static str,
    pub why: &'static str,
}

const fn step(
    at: At,
    number: &'static str,
    process: Process,
    layer: Option<Layer>,
    label: &'static str,
    what: &'static str,
    why: &'static str,
) -> Step {
    Step {
        at,
        number,
        process,
        layer,
        label,
        what,
        why,
    }
}

use Process::{Child, Init, Payload, Supervisor};

/// Every step, in launch order. Step 0 (load, probe, plan, prepare) has no side effect and
/// is not listed.
pub const STEPS: [Step; 37] = [
    step(At::HostEntries, "1", Supervisor, Some(Layer::Filesystem), "filesystem",
        "make the mount points and entries a profile needs inside a bound host directory, through directory descriptors; as root, the idmapped binds' detached trees",
        "the plan walked there without following links; only init's user namespace may idmap a host filesystem; the child only attaches"),
    step(At::CgroupCreate, "1", Supervisor, Some(Layer::Cgroups), "cgroups",
        "sweep lasagna's stale cgroups, create this run's with its limits, open v1 `tasks` files",
        "limits hold before the payload's first instruction"),
    step(At::Clone, "2", Supervisor, Some(Layer::Namespaces), "namespaces",
        "clone3 with the CLONE_NEW* flags, CLONE_PIDFD, and CLONE_INTO_CGROUP on v2",
        "the supervisor is single-threaded here; the child starts inside the cgroup"),
    step(At::IdMaps, "3", Supervisor, Some(Layer::Namespaces), "namespaces",
        "setgroups deny, one-line uid_map and gid_map",
        "only the parent namespace may write the maps"),
    step(At::NetworkStart, "3", Supervisor, Some(Layer::Network), "network",
        "proxy: start its thread, which receives the listener of 4e; user: start pasta on descriptors of the child's network and user namespaces, its interface awaited before the second release byte",
        "after the maps, which pasta's setup in the user namespace needs; threads only after the clone"),
    step(At::Release, "3", Supervisor, None, "init",
        "first release byte",
        "the child waits for its maps"),
    step(At::ParentDeath, "4a", Child, None, "init",
        "parent-death signal SIGKILL",
        "nothing outlives the supervisor"),
    step(At::CgroupJoin, "4a", Child, Some(Layer::Cgroups), "cgroups",
        "v1: join each hierarchy by writing 0 into the `tasks` fd the supervisor opened",
        "moving oneself needs no RCU grace period; the kernel checks the opener's credentials"),
    step(At::CloseInherited, "4b", Child, None, "init",
        "close every inherited fd except stdio, the pipes and passed fds",
        "host fds stay outside"),
    step(At::WaitRelease, "4c", Child, None, "init",
        "read the release byte; EOF means the supervisor is gone",
        "the maps must exist first"),
    step(At::UsernsLimit, "4c", Child, Some(Layer::Namespaces), "namespaces",
        "user.max_user_namespaces = 0 in the sandbox's user namespace (unless nested-userns)",
        "a nested user namespace is refused even without seccomp; set while the child holds CAP_SYS_RESOURCE there"),
    step(At::IdentityInit, "4d", Child, None, "identity",
        "as host root in a user namespace: setresgid/setresuid to the mapped ids",
        "uid 0 is unmapped inside: nothing can be created until the fsuid is mapped"),
    step(At::ReapList, "4d", Child, None, "init",
        "without a pid namespace: open /proc/thread-self/children",
        "init finds what descends from the payload; procfs checks the opener's ids, the ones init keeps"),
    step(At::Hostname, "4e", Child, Some(Layer::Namespaces), "namespaces",
        "sethostname",
        "the uts namespace is the child's"),
    step(At::Loopback, "4e", Child, Some(Layer::Network), "network",
        "bring lo up",
        "the network namespace has only its loopback"),
    step(At::ProxyListener, "4e", Child, Some(Layer::Network), "network",
        "proxy: listen on 127.0.0.1:PORT and pass the socket to the supervisor (SCM_RIGHTS)",
        "the socket must belong to the sandbox's network namespace; the supervisor cannot enter it unprivileged"),
    step(At::Filesystem, "4f", Child, Some(Layer::Filesystem), "filesystem",
        "staging root, the profile's mounts attached onto descriptors, /proc, /dev, pivot_root, old root detached",
        "needs CAP_SYS_ADMIN in the user namespace; Landlock would forbid mounts"),
    step(At::CgroupAttach, "3", Supervisor, Some(Layer::Cgroups), "cgroups",
        "v1 without writable `tasks`: attach the child through cgroup.procs; second release byte",
        "an attach of another process waits for an RCU grace period: it overlaps 4f"),
    step(At::ParentDeathRearm, "4g", Child, None, "init",
        "arm the parent-death signal again",
        "the uid switch of 4d cleared it"),
    step(At::WaitAttach, "4g", Child, Some(Layer::Cgroups), "cgroups",
        "read the second release byte: the cgroup placement is done",
        "the payload must start inside the cgroup"),
    step(At::UnshareTimeCgroup, "4h", Child, Some(Layer::Namespaces), "namespaces",
        "unshare the time and cgroup namespaces",
        "time applies to children only; the cgroup namespace comes after the placement"),
    step(At::NonDumpable, "4i", Child, None, "init",
        "non-dumpable",
        "the payload cannot ptrace init or read its memory"),
    step(At::InitSignals, "5", Init, None, "init",
        "block the forwarded signals and SIGCHLD; setsid; child subreaper",
        "init waits with sigwait and reaps everything"),
    step(At::ForkPayload, "5", Init, None, "init",
        "fork the payload",
        "a pid namespace needs an init, and the payload is never pid 1"),
    step(At::InitSeccomp, "5", Init, Some(Layer::Seccomp), "seccomp",
        "init's own small filter",
        "after the fork: filters are inherited"),
    step(At::PayloadSignals, "6", Payload, None, "init",
        "signal dispositions to default, empty signal mask",
        "the payload must not inherit init's blocked signals"),
    step(At::ProcessEarly, "6", Payload, Some(Layer::Process), "process",
        "parent-death signal, setsid, every fd >= 3 close-on-exec except passed fds",
        "before the identity switch, while privileged"),
    step(At::Rlimits, "6", Payload, Some(Layer::Rlimits), "rlimits",
        "setrlimit, soft = hard",
        "before the identity switch, while raising is still allowed"),
    step(At::Chdir, "6", Payload, Some(Layer::Process), "process",
        "chdir to the working directory",
        "inside the new root"),
    step(At::CapsBounding, "7", Payload, Some(Layer::Capabilities), "capabilities",
        "drop the bounding set, clear ambient; keepcaps if caps are kept",
        "needs CAP_SETPCAP, which the next steps remove"),
    step(At::IdentityPayload, "7", Payload, None, "identity",
        "real root without a user namespace: setgroups([]), setresgid/setresuid to the unprivileged host ids",
        "after the bounding set is gone"),
    step(At::CapsSets, "7", Payload, Some(Layer::Capabilities), "capabilities",
        "permitted, effective, inheritable = the kept caps; raise them ambient",
        "after the uid switch"),
    step(At::NoNewPrivs, "7", Payload, Some(Layer::Process), "process",
        "no_new_privs",
        "setuid and file capabilities grant nothing from here"),
    step(At::PayloadParentDeath, "7", Payload, Some(Layer::Process), "process",
        "arm the parent-death signal again; exit if init is gone",
        "the uid switch and capset cleared it"),
    step(At::Landlock, "8", Payload, Some(Layer::Landlock), "landlock",
        "ruleset, rules (paths opened without following links), landlock_restrict_self",
        "after the mounts and pivot_root it would forbid"),
    step(At::Seccomp, "9", Payload, Some(Layer::Seccomp), "seccomp",
        "no_new_privs, then the filter (--explain-denials: the notifying one, its listener sent out)",
        "last: the steps before need prctl, capset, setrlimit and landlock calls"),
    step(At::Exec, "10", Payload, None, "exec",
        "execve each PATH candidate in turn",
        "EOF on the status pipe tells the supervisor it succeeded"),
];

impl At {
    pub fn step(self) -> &'static Step {
        &STEPS[self as usize]
    }

    /// The step sent as this byte over the status pipe.
    pub fn from_byte(b: u8) -> Option<At> {
        STEPS.get(b as usize).map(|s| s.at)
    }

    pub fn label(self) -> &'static str {
        self.step().label
    }
}

/// The launch table of ARCHITECTURE.md, rendered from [`STEPS`] (a test holds the
/// document to it).
pub fn markdown_table() -> String {
    let mut out =
        String::from("| # | process | layer | step | why here |\n|---|---|---|---|---|\n");
    for s in &STEPS {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            s.number,
            s.process.name(),
            s.layer.map(|l| l.name()).unwrap_or("—"),
            s.what,
            s.why
        ));
    }
    out
}

/// What a failure at `failed` means for `layer`: its steps all ran before it (applied),
/// one of them failed, or at least one had not run yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reached {
    Done,
    Failed,
    NotReached,
}

pub fn reached(layer: Layer, failed: At) -> Reached {
    let mut out = Reached::Done;
    for s in STEPS.iter().filter(|s| s.layer == Some(layer)) {
        if s.at == failed {
            return Reached::Failed;
        }
        if s.at > failed {
            out = Reached::NotReached;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_in_order_and_indexed_by_its_steps() {
        for (i, s) in STEPS.iter().enumerate() {
            assert_eq!(s.at as usize, i, "{:?} is not at its place", s.at);
            assert_eq!(At::from_byte(i as u8), Some(s.at));
        }
        assert_eq!(At::from_byte(STEPS.len() as u8), None);
        // Each process runs after the one that starts it.
        let first = |p: Process| STEPS.iter().position(|s| s.process == p).unwrap();
        assert!(first(Supervisor) < first(Child));
        assert!(first(Child) < first(Init));
        assert!(first(Init) < first(Payload));
        // seccomp is the last layer, Landlock the one before.
        let last_layer = STEPS.iter().rev().find_map(|s| s.layer).unwrap();
        assert_eq!(last_layer, Layer::Seccomp);
    }

    /// The numbered comments in the launch code (`// 4d. ...`) name the step of every `At::`
    /// used beneath them, up to the next numbered comment or the end of the function.
    #[test]
    fn step_comments_match_the_steps_used_beneath_them() {
        let sources = [
            ("src/sandbox/mod.rs", include_str!("sandbox/mod.rs")),
            ("src/sandbox/init.rs", include_str!("sandbox/init.rs")),
            ("src/supervisor/mod.rs", include_str!("supervisor/mod.rs")),
        ];
        let by_name = |name: &str| STEPS.iter().find(|s| format!("{:?}", s.at) == name);
        let mut checked = 0;
        for (file, text) in sources {
            let mut current: Option<String> = None;
            for (i, line) in text.lines().enumerate() {
                let t = line.trim_start();
                if line.starts_with('}') {
                    current = None;
                } else if let Some(rest) = t.strip_prefix("// ") {
                    let number: String = rest
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric())
                        .collect();
                    let is_step = number.starts_with(|c: char| c.is_ascii_digit())
                        && rest[number.len()..].starts_with(". ");
                    if is_step {
                        current = Some(number);
                    }
                    continue;
                }
                let Some(number) = &current else { continue };
                for (pos, _) in line.match_indices("At::") {
                    let name: String = line[pos + 4..]
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric())
                        .collect();
                    let Some(step) = by_name(&name) else { continue };
                    assert_eq!(
                        step.number, number,
                        "{file}:{}: At::{name} is step {} but sits under the comment for step {number}",
                        i + 1,
                        step.number
                    );
                    checked += 1;
                }
            }
        }
        assert!(
            checked >= 20,
            "only {checked} steps found under numbered comments"
        );
    }

    #[test]
    fn layers_are_listed_in_the_order_they_are_in_place() {
        let last_step = |l: Layer| STEPS.iter().rposition(|s| s.layer == Some(l)).unwrap();
        let mut by_table = Layer::ALL;
        by_table.sort_by_key(|l| last_step(*l));
        assert_eq!(Layer::ALL, by_table);
    }

    #[test]
    fn architecture_md_shows_this_table() {
        const OPEN: &str = "<!-- launch-table -->";
        const CLOSE: &str = "<!-- /launch-table -->";
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ARCHITECTURE.md");
        let doc = std::fs::read_to_string(&path).expect("ARCHITECTURE.md");
        let start = doc
            .find(OPEN)
            .expect("ARCHITECTURE.md marks the launch table")
            + OPEN.len();
        let end = doc
            .find(CLOSE)
            .expect("ARCHITECTURE.md ends the launch table");
        let table = markdown_table();
        if doc[start..end].trim() == table.trim() {
            return;
        }
        if std::env::var_os("LASAGNA_REGENERATE").is_some() {
            let fixed = format!("{}\n{table}{}", &doc[..start], &doc[end..]);
            std::fs::write(&path, fixed).expect("write ARCHITECTURE.md");
            return;
        }
        panic!("ARCHITECTURE.md's launch table differs from launch::STEPS: run `make shipped`");
    }

    #[test]
    fn failures_mark_layers_by_launch_order() {
        // A chdir failure (step 6) comes after the filesystem and before capabilities.
        assert_eq!(reached(Layer::Filesystem, At::Chdir), Reached::Done);
        assert_eq!(reached(Layer::Process, At::Chdir), Reached::Failed);
        assert_eq!(reached(Layer::Capabilities, At::Chdir), Reached::NotReached);
        assert_eq!(reached(Layer::Rlimits, At::Chdir), Reached::Done);
        // A failure before every layer's child steps (the release) leaves them not reached.
        assert_eq!(
            reached(Layer::Filesystem, At::WaitRelease),
            Reached::NotReached
        );
        assert_eq!(
            reached(Layer::Landlock, At::WaitRelease),
            Reached::NotReached
        );
        // init's filter ran, the payload's did not: seccomp is not reached.
        assert_eq!(reached(Layer::Seccomp, At::Landlock), Reached::NotReached);
    }
}

/// Every layer, in the order of the report (the launch order of their steps is [`STEPS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layer {
    Namespaces,
    Filesystem,
    Cgroups,
    Capabilities,
    Rlimits,
    Process,
    Landlock,
    Seccomp,
    Network,
}

impl Layer {
    /// Every layer, in the order each is in place: by its last step in [`STEPS`] (a test
    /// holds this list to the table). The plan, the report and `explain` list layers so.
    pub const ALL: [Layer; 9] = [
        Layer::Network,
        Layer::Filesystem,
        Layer::Cgroups,
        Layer::Namespaces,
        Layer::Rlimits,
        Layer::Capabilities,
        Layer::Process,
        Layer::Landlock,
        Layer::Seccomp,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Layer::Namespaces => "namespaces",
            Layer::Filesystem => "filesystem",
            Layer::Cgroups => "cgroups",
            Layer::Capabilities => "capabilities",
            Layer::Rlimits => "rlimits",
            Layer::Process => "process",
            Layer::Landlock => "landlock",
            Layer::Seccomp => "seccomp",
            Layer::Network => "network",
        }
    }

    pub fn from_name(name: &str) -> Option<Layer> {
        Layer::ALL.into_iter().find(|l| l.name() == name)
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the plan decided for one layer, before anything is created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "decision", content = "reason", rename_all = "kebab-case")]
pub enum Decision {
    /// Applied in full.
    Apply,
    /// Applied in part (best-effort); the reason says what was dropped.
    Degrade(String),
    /// Not applied (mode off, `--without`, or best-effort with nothing to give).
    Skip(String),
    /// Required but the host cannot give it: the run stops with exit 125.
    Refuse(String),
}

impl Decision {
    pub fn applies(&self) -> bool {
        matches!(self, Decision::Apply | Decision::Degrade(_))
    }
}

/// A failure in the child, before execve. Formatted into a fixed buffer and sent to the
/// supervisor over the status pipe: no allocation on the child side.
#[derive(Debug, Clone, Copy)]
pub struct ChildError<'a> {
    /// The launch step that failed (its layer, if any, comes from the launch table).
    pub at: At,
    /// What the step was doing.
    pub step: &'static str,
    pub errno: Errno,
    /// The item the step was working on (a path, a name), or empty.
    pub detail: &'a [u8],
}

impl<'a> ChildError<'a> {
    pub fn new(at: At, step: &'static str, errno: Errno) -> ChildError<'a> {
        ChildError {
            at,
            step,
            errno,
            detail: b"",
        }
    }

    pub fn with_detail(mut self, detail: &'a [u8]) -> ChildError<'a> {
        self.detail = detail;
        self
    }

    /// Encode as `F` then `at\tstep\terrno\tdetail` into `buf`; returns the bytes written.
    pub fn encode(&self, buf: &mut [u8]) -> usize {
        let mut cursor = std::io::Cursor::new(buf);
        let _ = write!(
            cursor,
            "F{}\t{}\t{}\t",
            self.at as u8, self.step, self.errno as i32
        );
        let _ = cursor.write(self.detail);
        cursor.position() as usize
    }
}

/// Map an `Errno` result into a `ChildError` for a launch step.
pub trait ChildContext<T> {
    fn step(self, at: At, step: &'static str) -> Result<T, ChildError<'static>>;
    fn step_on<'a>(self, at: At, step: &'static str, detail: &'a [u8])
        -> Result<T, ChildError<'a>>;
}

impl<T> ChildContext<T> for Result<T, Errno> {
    fn step(self, at: At, step: &'static str) -> Result<T, ChildError<'static>> {
        self.map_err(|e| ChildError::new(at, step, e))
    }

    fn step_on<'a>(
        self,
        at: At,
        step: &'static str,
        detail: &'a [u8],
    ) -> Result<T, ChildError<'a>> {
        self.map_err(|e| ChildError::new(at, step, e).with_detail(detail))
    }
}
