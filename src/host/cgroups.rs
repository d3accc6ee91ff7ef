//! What cgroup hierarchies this process can see, and where its own cgroups are.
//!
//! Decided from `/proc/self/mountinfo` and `/proc/self/cgroup` only, never from the distro:
//! a `cgroup2` mount is the unified hierarchy, each `cgroup` mount carries the v1
//! controllers in its super options. The probe reads files and creates nothing.
//! `CgroupHost::from_tables` takes both tables as text so tests can point the v2 root at a
//! temporary directory.

use std::fs;
use std::path::{Path, PathBuf};

/// How the host mounts cgroups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Only the v2 hierarchy (most current distros).
    Unified,
    /// v1 controllers plus a v2 hierarchy (often at /sys/fs/cgroup/unified).
    Hybrid,
    /// v1 controllers only.
    Legacy,
    /// No cgroup filesystem is mounted.
    Absent,
}

impl Layout {
    pub fn name(self) -> &'static str {
        match self {
            Layout::Unified => "v2 (unified)",
            Layout::Hybrid => "hybrid (v1 controllers + v2)",
            Layout::Legacy => "v1 (legacy)",
            Layout::Absent => "none mounted",
        }
    }
}

/// The v2 hierarchy: where it is mounted and where this process sits in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V2Mount {
    pub mount: PathBuf,
    /// This process's cgroup, relative to `mount` ("" for the root).
    pub own: String,
}

/// One v1 hierarchy: its controllers, mount point and this process's cgroup in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V1Mount {
    pub controllers: Vec<String>,
    pub mount: PathBuf,
    pub own: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupHost {
    pub v2: Option<V2Mount>,
    pub v1: Vec<V1Mount>,
}

impl CgroupHost {
    /// Probe the running system.
    pub fn probe() -> CgroupHost {
        let read = |p: &str| crate::procfs::read_proc_file(Path::new(p)).unwrap_or_default();
        let mountinfo = read("/proc/self/mountinfo");
        let own = read("/proc/self/cgroup");
        CgroupHost::from_tables(&mountinfo, &own)
    }

    /// Build from the text of `/proc/self/mountinfo` and `/proc/self/cgroup`.
    pub fn from_tables(mountinfo: &str, proc_cgroup: &str) -> CgroupHost {
        let own_v2 = proc_cgroup
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .map(clean_own);
        // (controllers, path) of each `hierarchy-ID:controllers:path` line, split once.
        let own_lines: Vec<(&str, &str)> = proc_cgroup
            .lines()
            .filter_map(|l| {
                let mut it = l.splitn(3, ':');
                let (_, ctrls, path) = (it.next()?, it.next()?, it.next()?);
                Some((ctrls, path))
            })
            .collect();
        let own_v1 = |ctrl: &str| {
            own_lines.iter().find_map(|(ctrls, path)| {
                ctrls.split(',').any(|c| c == ctrl).then(|| clean_own(path))
            })
        };
        let mut host = CgroupHost {
            v2: None,
            v1: Vec::new(),
        };
        for line in mountinfo.lines() {
            let Some((pre, post)) = line.split_once(" - ") else {
                continue;
            };
            // Most mounts are not cgroups: look at the filesystem type before anything else.
            let fstype = post.split(' ').next().unwrap_or_default();
            if fstype != "cgroup2" && fstype != "cgroup" {
                continue;
            }
            let mut post_fields = post.split(' ');
            let (Some(_), Some(_), Some(super_opts)) =
                (post_fields.next(), post_fields.next(), post_fields.next())
            else {
                continue;
            };
            let mut pre_fields = pre.split(' ').skip(3);
            let (Some(root), Some(mount)) = (pre_fields.next(), pre_fields.next()) else {
                continue;
            };
            let (root, mount) = (unescape(root), PathBuf::from(unescape(mount)));
            match fstype {
                "cgroup2" if host.v2.is_none() => {
                    if let Some(own) = &own_v2 {
                        host.v2 = Some(V2Mount {
                            own: relative_to_mount(own, &root),
                            mount,
                        });
                    }
                }
                "cgroup" => {
                    let controllers: Vec<String> = super_opts
                        .split(',')
                        .filter(|o| V1_CONTROLLERS.contains(o))
                        .map(str::to_string)
                        .collect();
                    let Some(first) = controllers.first() else {
                        continue; // name=systemd and other named hierarchies hold no controller
                    };
                    if host.v1.iter().any(|m| m.controllers.contains(first)) {
                        continue; // the same hierarchy bind-mounted twice
                    }
                    if let Some(own) = own_v1(first) {
                        host.v1.push(V1Mount {
                            own: relative_to_mount(&own, &root),
                            controllers,
                            mount,
                        });
                    }
                }
                _ => {}
            }
        }
        host
    }

    pub fn layout(&self) -> Layout {
        match (&self.v2, self.v1.is_empty()) {
            (Some(_), true) => Layout::Unified,
            (Some(_), false) => Layout::Hybrid,
            (None, false) => Layout::Legacy,
            (None, true) => Layout::Absent,
        }
    }

    /// The v1 hierarchy that carries `controller`.
    pub fn v1_mount(&self, controller: &str) -> Option<&V1Mount> {
        self.v1
            .iter()
            .find(|m| m.controllers.iter().any(|c| c == controller))
    }
}

impl V2Mount {
    /// Directory of a cgroup given relative to the hierarchy root.
    pub fn dir(&self, rel: &str) -> PathBuf {
        join_rel(&self.mount, rel)
    }

    /// Controllers the cgroup at `dir` can hand to its children (`cgroup.controllers`).
    pub fn controllers_at(dir: &Path) -> Vec<String> {
        read_words(&dir.join("cgroup.controllers"))
    }
}

impl V1Mount {
    pub fn dir(&self, rel: &str) -> PathBuf {
        join_rel(&self.mount, rel)
    }
}

/// The v1 controllers lasagna may use; other super options (rw, relatime, name=…) are ignored.
const V1_CONTROLLERS: &[&str] = &[
    "memory",
    "pids",
    "cpu",
    "cpuacct",
    "cpuset",
    "blkio",
    "freezer",
    "devices",
    "net_cls",
    "net_prio",
    "perf_event",
    "hugetlb",
    "rdma",
    "misc",
];

pub(crate) fn read_words(path: &Path) -> Vec<String> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

pub(crate) fn join_rel(base: &Path, rel: &str) -> PathBuf {
    let rel = rel.trim_matches('/');
    if rel.is_empty() {
        base.to_path_buf()
    } else {
        base.join(rel)
    }
}

/// `/proc/self/cgroup` appends " (deleted)" when the cgroup was removed under us.
fn clean_own(path: &str) -> String {
    path.trim_end_matches(" (deleted)").trim().to_string()
}

/// A cgroup path is given from the hierarchy root; the mount may expose only a subtree.
fn relative_to_mount(own: &str, mount_root: &str) -> String {
    let root = mount_root.trim_end_matches('/');
    let rel = match own.strip_prefix(root) {
        Some(rest) if root.is_empty() || rest.is_empty() || rest.starts_with('/') => rest,
        // Not under the mount's root (e.g. a cgroup namespace): the path is already relative.
        _ => own,
    };
    rel.trim_matches('/').to_string()
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID_MOUNTS: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    const HYBRID_SELF: &str = "\
9:name=systemd:/
8:pids:/
4:memory:/process_api/abc
1:cpu:/
0::/
";

    #[test]
    fn hybrid_is_read_from_the_tables() {
        let host = CgroupHost::from_tables(HYBRID_MOUNTS, HYBRID_SELF);
        assert_eq!(host.layout(), Layout::Hybrid);
        let v2 = host.v2.as_ref().unwrap();
        assert_eq!(v2.mount, Path::new("/sys/fs/cgroup/unified"));
        assert_eq!(v2.own, "");
        assert_eq!(
            v2.dir("lasagna-1-a"),
            Path::new("/sys/fs/cgroup/unified/lasagna-1-a")
        );
        let mem = host.v1_mount("memory").unwrap();
        assert_eq!(mem.own, "process_api/abc");
        assert_eq!(
            mem.dir(&mem.own),
            Path::new("/sys/fs/cgroup/memory/process_api/abc")
        );
        assert!(host.v1_mount("systemd").is_none());
        assert!(host.v1_mount("blkio").is_none());
    }

    #[test]
    fn unified_with_a_user_slice_and_a_mount_root() {
        let mounts = "29 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n";
        let own = "0::/user.slice/user-1000.slice/session-2.scope\n";
        let host = CgroupHost::from_tables(mounts, own);
        assert_eq!(host.layout(), Layout::Unified);
        assert_eq!(
            host.v2.unwrap().own,
            "user.slice/user-1000.slice/session-2.scope"
        );

        let mounts = "29 23 0:26 /user.slice /mnt/cg rw - cgroup2 cgroup2 rw\n";
        let own = "0::/user.slice/u (deleted)\n";
        assert_eq!(CgroupHost::from_tables(mounts, own).v2.unwrap().own, "u");
        assert_eq!(CgroupHost::from_tables("", "").layout(), Layout::Absent);
    }

    #[test]
    fn comounted_v1_controllers_and_escapes() {
        let mounts = "30 23 0:27 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n\
                      31 23 0:28 / /mnt/my\\040cg rw - cgroup cgroup rw,pids\n";
        let own = "3:cpu,cpuacct:/a\n2:pids:/b\n";
        let host = CgroupHost::from_tables(mounts, own);
        assert_eq!(host.layout(), Layout::Legacy);
        assert_eq!(host.v1_mount("cpuacct").unwrap().own, "a");
        assert_eq!(
            host.v1_mount("pids").unwrap().mount,
            Path::new("/mnt/my cg")
        );
    }
}
