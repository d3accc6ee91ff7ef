//! What this host supports, probed once from /proc and /sys. Reading only: probing never
//! creates a process, a namespace or a mount. `root` makes the probe testable against a
//! fake tree.

use std::path::Path;

use serde::Serialize;

use crate::layers::cgroups::CgroupHost;
use crate::profile::Profile;

#[derive(Debug, Clone, Serialize)]
pub struct Host {
    pub euid: u32,
    pub egid: u32,
    pub is_root: bool,
    pub kernel: String,
    pub arch: String,
    /// `user.max_user_namespaces` (0 disables user namespaces for everyone).
    pub max_user_namespaces: Option<u64>,
    /// Debian/older Ubuntu `kernel.unprivileged_userns_clone`.
    pub unprivileged_userns_clone: Option<bool>,
    /// Ubuntu 23.10+ `kernel.apparmor_restrict_unprivileged_userns`.
    pub apparmor_restricts_userns: Option<bool>,
    /// How we seem to be inside a container, if we are.
    pub container: Option<String>,
    /// `dev.tty.legacy_tiocsti`: whether TIOCSTI works at all on this kernel.
    pub legacy_tiocsti: Option<bool>,
    pub cap_last_cap: u32,
    pub time_namespace: bool,
    pub cgroup_namespace: bool,
    /// Landlock ABI version (0: no Landlock).
    pub landlock_abi: u32,
    /// Linux 5.12+: `mount_setattr` and the detached-mount calls the filesystem layer uses.
    pub mount_api: bool,
    /// Mounted cgroup hierarchies and our place in them; left empty by `probe_for` when the
    /// profile has no cgroups section.
    #[serde(skip)]
    pub cgroups: CgroupHost,
}

fn read_trim(root: &Path, rel: &str) -> Option<String> {
    read_proc_file(&root.join(rel))
        .ok()
        .map(|s| s.trim().to_string())
}

/// A whole /proc or /sys file as text. Such files report size 0, so `fs::read_to_string`
/// stats them and then reads in 32-byte steps that double; a 4 KiB buffer takes the usual
/// file in one read, plus the read that sees EOF (`Take` hides the size hint, so no stat).
pub fn read_proc_file(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    let mut buf = Vec::with_capacity(4096);
    (&file).take(u64::MAX).read_to_end(&mut buf)?;
    String::from_utf8(buf).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

impl Host {
    pub fn probe() -> Host {
        Host::probe_at(Path::new("/"))
    }

    /// What planning `profile` consults. The cgroup hierarchies are read only when the
    /// profile has a cgroups section: nothing else looks at them, and their probe reads
    /// /proc/self/mountinfo, the costliest file here (the kernel renders every mount).
    pub fn probe_for(profile: &Profile) -> Host {
        let cgroups = if profile.cgroups.is_some() {
            CgroupHost::probe()
        } else {
            CgroupHost {
                v2: None,
                v1: Vec::new(),
            }
        };
        Host::probe_with(Path::new("/"), cgroups)
    }

    pub fn probe_at(root: &Path) -> Host {
        Host::probe_with(root, CgroupHost::probe())
    }

    fn probe_with(root: &Path, cgroups: CgroupHost) -> Host {
        let euid = nix::unistd::geteuid().as_raw();
        let egid = nix::unistd::getegid().as_raw();
        let uname = nix::sys::utsname::uname().ok();
        let container = if root.join(".dockerenv").exists() {
            Some("docker (/.dockerenv)".to_string())
        } else if root.join("run/.containerenv").exists() {
            Some("podman (/run/.containerenv)".to_string())
        } else {
            read_trim(root, "proc/1/environ")
                .and_then(|env| {
                    env.split('\0')
                        .find_map(|kv| kv.strip_prefix("container=").map(str::to_string))
                })
                .map(|c| format!("{c} (container= in pid 1's environment)"))
        };
        let flag = |rel: &str| read_trim(root, rel).map(|v| v != "0");
        Host {
            euid,
            egid,
            is_root: euid == 0,
            kernel: uname
                .as_ref()
                .map(|u| u.release().to_string_lossy().into_owned())
                .unwrap_or_default(),
            arch: std::env::consts::ARCH.to_string(),
            max_user_namespaces: read_trim(root, "proc/sys/user/max_user_namespaces")
                .and_then(|v| v.parse().ok()),
            unprivileged_userns_clone: flag("proc/sys/kernel/unprivileged_userns_clone"),
            apparmor_restricts_userns: flag(
                "proc/sys/kernel/apparmor_restrict_unprivileged_userns",
            ),
            container,
            legacy_tiocsti: flag("proc/sys/dev/tty/legacy_tiocsti"),
            cap_last_cap: read_trim(root, "proc/sys/kernel/cap_last_cap")
                .and_then(|v| v.parse().ok())
                .unwrap_or(40),
            time_namespace: root.join("proc/self/ns/time").exists(),
            cgroup_namespace: root.join("proc/self/ns/cgroup").exists(),
            landlock_abi: crate::layers::landlock::host_abi(),
            mount_api: uname
                .as_ref()
                .is_some_and(|u| kernel_at_least(&u.release().to_string_lossy(), 5, 12)),
            cgroups,
        }
    }

    /// Whether the kernel release is at least `major.minor`.
    pub fn kernel_at_least(&self, major: u32, minor: u32) -> bool {
        kernel_at_least(&self.kernel, major, minor)
    }

    /// Why this user cannot create a user namespace, with the fix; `None` when it can
    /// (as far as the sysctls tell).
    pub fn userns_blocker(&self) -> Option<(String, String)> {
        if self.max_user_namespaces == Some(0) {
            return Some((
                "user.max_user_namespaces is 0".into(),
                "sysctl -w user.max_user_namespaces=15000".into(),
            ));
        }
        if self.is_root {
            return None;
        }
        if self.unprivileged_userns_clone == Some(false) {
            return Some((
                "kernel.unprivileged_userns_clone is 0".into(),
                "sysctl -w kernel.unprivileged_userns_clone=1".into(),
            ));
        }
        if self.apparmor_restricts_userns == Some(true) {
            return Some((
                "AppArmor restricts unprivileged user namespaces (kernel.apparmor_restrict_unprivileged_userns=1)".into(),
                "add an AppArmor profile granting `userns,` to the lasagna binary, or sysctl -w kernel.apparmor_restrict_unprivileged_userns=0".into(),
            ));
        }
        None
    }
}

/// The user name of `uid` in /etc/passwd, if it has one.
pub fn user_name(uid: u32) -> Option<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        let id: u32 = f.nth(1)?.parse().ok()?;
        (id == uid).then(|| name.to_string())
    })
}

/// Whether a kernel release string (`6.1.0-26-amd64`) is at least `major.minor`.
pub fn kernel_at_least(release: &str, major: u32, minor: u32) -> bool {
    let mut it = release
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|p| p.parse::<u32>().ok());
    match (it.next(), it.next()) {
        (Some(a), Some(b)) => (a, b) >= (major, minor),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_reads_sysctls_from_an_injected_root() {
        let dir = std::env::temp_dir().join(format!("lasagna-host-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("proc/sys/user")).unwrap();
        std::fs::create_dir_all(dir.join("proc/sys/kernel")).unwrap();
        std::fs::write(dir.join("proc/sys/user/max_user_namespaces"), "0\n").unwrap();
        std::fs::write(
            dir.join("proc/sys/kernel/apparmor_restrict_unprivileged_userns"),
            "1\n",
        )
        .unwrap();
        std::fs::write(dir.join(".dockerenv"), "").unwrap();
        let host = Host::probe_at(&dir);
        assert_eq!(host.max_user_namespaces, Some(0));
        assert_eq!(host.apparmor_restricts_userns, Some(true));
        assert!(host.container.as_deref().unwrap().contains("docker"));
        let (why, fix) = host.userns_blocker().unwrap();
        assert!(why.contains("max_user_namespaces"), "{why}");
        assert!(fix.contains("sysctl"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
