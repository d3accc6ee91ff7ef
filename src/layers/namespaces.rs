//! The `namespaces` layer: user, pid, net, ipc, uts, cgroup and time namespaces.
//!
//! The mount namespace belongs to the `filesystem` layer. The user namespace is how
//! everything runs rootless; as host root the payload still gets an unprivileged host uid
//! (65534 by default): real root in a sandbox could write host `/proc/sys`.
//! Parent side: the uid/gid maps (only the parent namespace may write them).
//! Child side: hostname, loopback up, and the time/cgroup namespaces, which `unshare`
//! gives to children (the payload) rather than to init itself.

use crate::profile::types::Spanned;
use serde::Deserialize;

use crate::profile::types::{Loc, ProfileError, Requirement};

#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
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
    pub host_uid: Option<u32>,
    pub host_gid: Option<u32>,
}

impl Section {
    pub fn merge(parent: Section, child: Section) -> Section {
        Section {
            mode: child.mode.or(parent.mode),
            user: child.user.or(parent.user),
            pid: child.pid.or(parent.pid),
            net: child.net.or(parent.net),
            ipc: child.ipc.or(parent.ipc),
            uts: child.uts.or(parent.uts),
            cgroup: child.cgroup.or(parent.cgroup),
            time: child.time.or(parent.time),
            hostname: child.hostname.or(parent.hostname),
            uid: child.uid.or(parent.uid),
            gid: child.gid.or(parent.gid),
            host_uid: child.host_uid.or(parent.host_uid),
            host_gid: child.host_gid.or(parent.host_gid),
        }
    }

    pub fn validate(self) -> Result<Config, ProfileError> {
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
            host_uid: self.host_uid,
            host_gid: self.host_gid,
        })
    }
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
    pub host_uid: Option<u32>,
    pub host_gid: Option<u32>,
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

/// Plain-words description for `explain`.
pub fn explain(cfg: &Config, as_root: bool) -> Vec<String> {
    let mut out = Vec::new();
    let names: Vec<&str> = cfg.kinds().iter().map(|k| k.name()).collect();
    out.push(format!("new namespaces: {}", names.join(", ")));
    if cfg.user {
        let host = if as_root {
            format!("host uid {}", cfg.host_uid.unwrap_or(65534))
        } else {
            "your own uid".to_string()
        };
        out.push(format!(
            "the payload runs as uid {} / gid {} inside a user namespace, mapped to {host}; no other host id is mapped",
            cfg.uid, cfg.gid
        ));
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
    out.push("does not stop: kernel attack surface (that is seccomp's job), file access (filesystem, landlock)".into());
    out
}
