//! The `namespaces` layer: user, pid, net, ipc, uts, cgroup and time namespaces.
//!
//! The mount namespace belongs to the `filesystem` layer. The user namespace is how
//! everything runs rootless; as host root the payload still gets an unprivileged host uid
//! (65534 by default): real root in a sandbox could write host `/proc/sys`.
//! Parent side: the uid/gid maps (only the parent namespace may write them).
//! Child side: hostname, loopback up, and the time/cgroup namespaces, which `unshare`
//! gives to children (the payload) rather than to init itself.

use crate::types::Spanned;
use serde::Deserialize;

use crate::host::Host;
use crate::launch::Decision;
use crate::types::{Loc, ProfileError, Requirement};

// ---- section: the profile's keys, merged over `extends`, checked into `Config` ----------

#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Section {
    #[serde(default)]
    pub mode: Option<Requirement>,
    pub user: Option<bool>,
    pub pid: Option<bool>,
    pub net: Option<bool>,
    pub ipc: Option<bool>,
    pub uts: Option<bool>,
    pub cgroup: Option<bool>,
    pub time: Option<bool>,
    pub hostname: Option<Spanned<String>>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// The host uid the payload maps to as root: a number, or `auto` (one of its own per
    /// run, from `host-id-range`).
    pub host_uid: Option<Spanned<HostIdRaw>>,
    pub host_gid: Option<Spanned<HostIdRaw>>,
    /// `FIRST-LAST`: where `host-uid: auto` picks from.
    pub host_id_range: Option<Spanned<String>>,
    /// Host uid or gid 0 is refused unless this says so: the payload would be real root.
    pub run_as_host_root: Option<bool>,
    /// Let the payload create user namespaces of its own (default false: the sandbox's user
    /// namespace gets `user.max_user_namespaces = 0`, a second stop beside seccomp's).
    pub nested_userns: Option<bool>,
}

crate::merge_fields!(Section {
    mode: or,
    user: or,
    pid: or,
    net: or,
    ipc: or,
    uts: or,
    cgroup: or,
    time: or,
    hostname: or,
    uid: or,
    gid: or,
    host_uid: or,
    host_gid: or,
    host_id_range: or,
    run_as_host_root: or,
    nested_userns: or
});

/// `host-uid:` as written: a number or the word `auto`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum HostIdRaw {
    Id(u32),
    Word(String),
}

/// The host ids the payload runs as, when lasagna runs as root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostIds {
    /// The same uid and gid for every run (default 65534, nobody): files written into a
    /// reused directory stay writable by the next run.
    Fixed { uid: u32, gid: u32 },
    /// A uid of its own per run (gid the same number), locked for the run's lifetime so
    /// that concurrent runs never share one.
    Auto { first: u32, last: u32 },
}

/// Where `host-uid: auto` picks by default: 65536 ids in a block no distribution assigns
/// (systemd leaves 0x70000000–0x7FFEFFFF unused).
pub const DEFAULT_HOST_ID_RANGE: (u32, u32) = (0x7000_0000, 0x7000_FFFF);

impl Section {
    fn checked(self) -> Result<Config, ProfileError> {
        let hostname = match self.hostname {
            Some(h) => {
                let ok = !h.value.is_empty()
                    && h.value.len() <= 64
                    && h.value
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
                if !ok {
                    return Err(ProfileError::at(
                        Loc::of(&h),
                        format!("hostname {:?} is not a valid host name", h.value),
                    )
                    .hint("use 1 to 64 letters, digits, '-' or '.'"));
                }
                if self.uts == Some(false) {
                    return Err(ProfileError::at(
                        Loc::of(&h),
                        "hostname is set but the uts namespace is off",
                    )
                    .hint("a hostname needs `uts: true`, or the host's name would change"));
                }
                Some(h.value)
            }
            None => None,
        };
        let host_root = self.run_as_host_root.unwrap_or(false);
        let id = |raw: &Option<Spanned<HostIdRaw>>,
                  what: &str|
         -> Result<Option<Option<u32>>, ProfileError> {
            match raw {
                None => Ok(None),
                Some(r) => match &r.value {
                    HostIdRaw::Id(0) if !host_root => Err(ProfileError::at(
                        Loc::of(r),
                        format!("{what} 0 would make the payload real root on the host"),
                    )
                    .hint("as host root a sandbox can write host /proc/sys and own any file it sees; if that is what you want, say `run-as-host-root: true`")),
                    HostIdRaw::Id(n) => Ok(Some(Some(*n))),
                    HostIdRaw::Word(w) if w == "auto" => Ok(Some(None)),
                    HostIdRaw::Word(w) => Err(ProfileError::at(
                        Loc::of(r),
                        format!("{what} {} is neither a number nor `auto`", crate::text::quote(w)),
                    )),
                },
            }
        };
        let range = match &self.host_id_range {
            None => DEFAULT_HOST_ID_RANGE,
            Some(r) => parse_range(&r.value).ok_or_else(|| {
                ProfileError::at(Loc::of(r), format!("host-id-range {} is not FIRST-LAST", crate::text::quote(&r.value)))
                    .hint("e.g. \"1879048192-1879113727\": two uids, the first at least 1000 and not above the last")
            })?,
        };
        let uid = id(&self.host_uid, "host-uid")?;
        let gid = id(&self.host_gid, "host-gid")?;
        let host_ids = match (uid, gid) {
            (Some(None), Some(Some(_))) | (Some(Some(_)), Some(None)) => {
                return Err(ProfileError::at(
                    Loc::of(self.host_gid.as_ref().expect("gid given")),
                    "host-uid and host-gid are both `auto` or both numbers",
                ))
            }
            (Some(None), _) | (None, Some(None)) => HostIds::Auto {
                first: range.0,
                last: range.1,
            },
            (u, g) => HostIds::Fixed {
                uid: u.flatten().unwrap_or(65534),
                gid: g.flatten().unwrap_or(65534),
            },
        };
        Ok(Config {
            mode: self.mode.unwrap_or_default(),
            user: self.user.unwrap_or(true),
            pid: self.pid.unwrap_or(true),
            net: self.net.unwrap_or(true),
            ipc: self.ipc.unwrap_or(true),
            uts: self.uts.unwrap_or(true),
            cgroup: self.cgroup.unwrap_or(true),
            time: self.time.unwrap_or(true),
            hostname: hostname.unwrap_or_else(|| "sandbox".into()),
            uid: self.uid.unwrap_or(1000),
            gid: self.gid.unwrap_or(1000),
            host_ids,
            run_as_host_root: host_root,
            nested_userns: self.nested_userns.unwrap_or(false),
        })
    }
}

fn parse_range(s: &str) -> Option<(u32, u32)> {
    let (a, b) = s.trim().split_once('-')?;
    let (a, b): (u32, u32) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    (a >= 1000 && a <= b && b < u32::MAX).then_some((a, b))
}

/// The checked `namespaces` section.
#[derive(Debug, Clone)]
pub struct Config {
    pub mode: Requirement,
    pub user: bool,
    pub pid: bool,
    pub net: bool,
    pub ipc: bool,
    pub uts: bool,
    pub cgroup: bool,
    pub time: bool,
    pub hostname: String,
    /// The payload's uid and gid inside the user namespace.
    pub uid: u32,
    pub gid: u32,
    /// The host ids the payload maps to when lasagna runs as host root.
    pub host_ids: HostIds,
    /// The profile allowed host uid or gid 0.
    pub run_as_host_root: bool,
    /// The payload may create user namespaces (no `max_user_namespaces = 0`).
    pub nested_userns: bool,
}

/// Namespace kinds, for flags, reporting and observation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    User,
    Pid,
    Mount,
    Net,
    Ipc,
    Uts,
    Cgroup,
    Time,
}

impl Kind {
    pub const ALL: [Kind; 8] = [
        Kind::User,
        Kind::Pid,
        Kind::Mount,
        Kind::Net,
        Kind::Ipc,
        Kind::Uts,
        Kind::Cgroup,
        Kind::Time,
    ];

    /// The file under /proc/PID/ns/ that names this namespace for the process's children.
    pub fn proc_name(self) -> &'static str {
        match self {
            Kind::User => "user",
            Kind::Pid => "pid_for_children",
            Kind::Mount => "mnt",
            Kind::Net => "net",
            Kind::Ipc => "ipc",
            Kind::Uts => "uts",
            Kind::Cgroup => "cgroup",
            Kind::Time => "time_for_children",
        }
    }

    /// The file under /proc/PID/ns/ for the process's own namespace.
    pub fn proc_name_of_process(self) -> &'static str {
        match self {
            Kind::Pid => "pid",
            Kind::Time => "time",
            other => other.proc_name(),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::User => "user",
            Kind::Pid => "pid",
            Kind::Mount => "mount",
            Kind::Net => "net",
            Kind::Ipc => "ipc",
            Kind::Uts => "uts",
            Kind::Cgroup => "cgroup",
            Kind::Time => "time",
        }
    }

    /// The clone flag, for namespaces created at clone time. Time and cgroup namespaces are
    /// made by init with `unshare` instead (time only applies to children; the cgroup
    /// namespace must be made after the cgroup attach).
    pub fn clone_flag(self) -> Option<u64> {
        Some(match self {
            Kind::User => libc::CLONE_NEWUSER,
            Kind::Pid => libc::CLONE_NEWPID,
            Kind::Mount => libc::CLONE_NEWNS,
            Kind::Net => libc::CLONE_NEWNET,
            Kind::Ipc => libc::CLONE_NEWIPC,
            Kind::Uts => libc::CLONE_NEWUTS,
            Kind::Cgroup | Kind::Time => return None,
        } as u64)
    }
}

impl Config {
    /// The namespaces this section asks for (the mount namespace is the filesystem layer's).
    pub fn kinds(&self) -> Vec<Kind> {
        let mut kinds = Vec::new();
        for (on, kind) in [
            (self.user, Kind::User),
            (self.pid, Kind::Pid),
            (self.net, Kind::Net),
            (self.ipc, Kind::Ipc),
            (self.uts, Kind::Uts),
            (self.cgroup, Kind::Cgroup),
            (self.time, Kind::Time),
        ] {
            if on {
                kinds.push(kind);
            }
        }
        kinds
    }
}

impl crate::types::LayerSection for Section {
    type Config = Config;
    fn validate(&self, _dir: &std::path::Path) -> Result<Config, ProfileError> {
        self.clone().checked()
    }
}

// ---- plan: what the layer decides and prepares before the clone -------------------------

/// What the namespaces layer decided: the namespaces it creates, and what it told the user.
#[derive(Debug, Clone)]
pub struct NsPlan {
    pub decision: Decision,
    pub kinds: Vec<Kind>,
    pub notes: Vec<String>,
}

/// Decide which of the namespaces `cfg` asks for this host can give (`req` is the mode the
/// run asks for). The mount namespace is the filesystem layer's.
pub fn plan(cfg: &Config, req: Requirement, host: &Host) -> NsPlan {
    let userns_blocker = host.userns_blocker();
    let mut wanted = cfg.kinds();
    let mut dropped = Vec::new();
    if !host.time_namespace {
        wanted.retain(|k| *k != Kind::Time);
        if cfg.time {
            dropped.push("time (kernel has no time namespaces, Linux < 5.6)".to_string());
        }
    }
    if !host.cgroup_namespace {
        wanted.retain(|k| *k != Kind::Cgroup);
        if cfg.cgroup {
            dropped.push("cgroup (kernel has no cgroup namespaces)".to_string());
        }
    }
    if let (true, Some((why, fix))) = (wanted.contains(&Kind::User), &userns_blocker) {
        if host.is_root {
            wanted.retain(|k| *k != Kind::User);
            dropped.push(format!("user ({why}; fix: {fix})"));
        } else {
            wanted.clear();
            dropped.push(format!("all: no user namespace ({why}; fix: {fix})"));
        }
    }
    if !host.is_root && !wanted.contains(&Kind::User) && !wanted.is_empty() {
        dropped.push(
            "all: without a user namespace only root can create namespaces (set `user: true`)"
                .into(),
        );
        wanted.clear();
    }
    let mut kinds = Vec::new();
    let decision = if dropped.is_empty() {
        kinds = wanted;
        Decision::Apply
    } else if req == Requirement::Required {
        Decision::Refuse(format!("cannot create namespaces: {}", dropped.join("; ")))
    } else if wanted.is_empty() {
        Decision::Skip(format!("best-effort: {}", dropped.join("; ")))
    } else {
        kinds = wanted;
        Decision::Degrade(format!("dropped: {}", dropped.join("; ")))
    };
    let mut notes = Vec::new();
    if decision.applies() && !kinds.contains(&Kind::User) && host.is_root {
        notes.push(
            "no user namespace: the payload runs with real host ids (switched to an unprivileged uid)"
                .into(),
        );
    }
    NsPlan {
        decision,
        kinds,
        notes,
    }
}

// ---- parent: the supervisor's side, after the clone -------------------------------------

/// The uid/gid maps the supervisor writes for the child's user namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdMaps {
    pub inside_uid: u32,
    pub inside_gid: u32,
    pub host_uid: u32,
    pub host_gid: u32,
}

/// Write `setgroups` = deny and the one-line uid/gid maps for `pid` (parent side).
pub fn write_id_maps(pid: nix::unistd::Pid, maps: &IdMaps) -> std::io::Result<()> {
    let base = format!("/proc/{pid}");
    std::fs::write(format!("{base}/setgroups"), "deny")?;
    std::fs::write(
        format!("{base}/uid_map"),
        format!("{} {} 1\n", maps.inside_uid, maps.host_uid),
    )?;
    std::fs::write(
        format!("{base}/gid_map"),
        format!("{} {} 1\n", maps.inside_gid, maps.host_gid),
    )?;
    Ok(())
}

// ---- explain: plain words for `explain` and `doctor` ------------------------------------

/// Plain-words description for `explain`.
pub fn explain(cfg: &Config, as_root: bool) -> Vec<String> {
    let mut out = Vec::new();
    let names: Vec<&str> = cfg.kinds().iter().map(|k| k.name()).collect();
    out.push(format!("new namespaces: {}", names.join(", ")));
    if cfg.user {
        let host = match (as_root, cfg.host_ids) {
            (false, _) => "your own uid".to_string(),
            (true, HostIds::Fixed { uid, .. }) => format!("host uid {uid}"),
            (true, HostIds::Auto { first, last }) => {
                format!("a host uid of its own for each run, from {first}-{last}")
            }
        };
        out.push(format!(
            "the payload runs as uid {} / gid {} inside a user namespace, mapped to {host}; no other host id is mapped",
            cfg.uid, cfg.gid
        ));
    }
    if cfg.user && !cfg.nested_userns {
        out.push("stops: nested user namespaces (user.max_user_namespaces = 0 in the sandbox's user namespace, set before the payload starts; a second stop beside seccomp's)".into());
    }
    if cfg.pid {
        out.push("stops: seeing or signalling host processes (new pid namespace, lasagna's init is pid 1)".into());
    }
    if cfg.net {
        out.push("stops: reaching any host network, loopback included (new network namespace with only its own loopback)".into());
    }
    if cfg.uts {
        out.push(format!(
            "hostname inside is {:?}; changing it does not touch the host",
            cfg.hostname
        ));
    }
    if cfg.ipc {
        out.push("stops: host SysV IPC and POSIX message queues".into());
    }
    if as_root {
        if let HostIds::Fixed { uid, .. } = cfg.host_ids {
            out.push(shared_uid(uid));
        }
    }
    out.push("does not stop: kernel attack surface (that is seccomp's job), file access (filesystem, landlock)".into());
    out
}

/// Who else runs as host uid `uid` now, and what they can do to a sandbox that does too.
pub fn shared_uid(uid: u32) -> String {
    let name = crate::procfs::user_name(uid)
        .map(|n| format!(" ({n})"))
        .unwrap_or_default();
    let mut comms = Vec::new();
    let mut count = 0;
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let pid = e.file_name();
        let Some(pid) = pid
            .to_str()
            .filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let Ok(status) = crate::procfs::read_proc_file(&e.path().join("status")) else {
            continue;
        };
        let runs_as = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u32>().ok());
        if runs_as == Some(uid) {
            count += 1;
            let comm = status
                .lines()
                .find_map(|l| l.strip_prefix("Name:"))
                .map(|c| c.trim().to_string())
                .unwrap_or_else(|| pid.to_string());
            if comms.len() < 5 && !comms.contains(&comm) {
                comms.push(comm);
            }
        }
    }
    let who = if count == 0 {
        format!("no host process runs as uid {uid}{name} now, but any that does later")
    } else {
        format!(
            "{count} host process{} run{} as uid {uid}{name} now ({}); each",
            if count == 1 { "" } else { "es" },
            if count == 1 { "s" } else { "" },
            comms.join(", ")
        )
    };
    format!(
        "host uid {uid}{name} is shared: {who} can signal or stop the sandbox's processes, and without a user namespace ptrace the payload and read its /proc files; `host-uid: auto` gives each run a uid of its own"
    )
}
