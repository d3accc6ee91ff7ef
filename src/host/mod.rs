//! What this host supports, probed once from /proc and /sys. Reading only: probing never
//! creates a process, a namespace or a mount. `root` makes the probe testable against a
//! fake tree.

use std::path::Path;

use serde::Serialize;

pub mod cgroups;

use crate::procfs::{kernel_at_least, read_proc_file};
pub use cgroups::CgroupHost;

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
    /// The seccomp filter actions this kernel offers (`actions_avail`), or why there is no
    /// seccomp filtering here.
    #[serde(skip)]
    pub seccomp: Result<Vec<String>, String>,
    /// Mounted cgroup hierarchies and our place in them; left empty when `Needs` leaves
    /// them out.
    #[serde(skip)]
    pub cgroups: CgroupHost,
    /// pasta (`net: user`), where the system has it.
    pub pasta: Option<std::path::PathBuf>,
    /// This user can open `/dev/net/tun` (pasta's interface needs it; udev makes it 0666,
    /// a system without udev's rules leaves it 0600 root).
    pub tun: bool,
}

/// Where this host has pasta: a root-owned binary, writable by root alone, in the system's
/// directories (the supervisor may be root, and `PATH` is the caller's).
fn find_pasta(root: &Path) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::MetadataExt;
    ["usr/bin/pasta", "usr/sbin/pasta", "usr/local/bin/pasta"]
        .iter()
        .map(|rel| root.join(rel))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| {
                m.is_file() && m.uid() == 0 && m.mode() & 0o022 == 0 && m.mode() & 0o111 != 0
            })
        })
}

fn read_trim(root: &Path, rel: &str) -> Option<String> {
    read_proc_file(&root.join(rel))
        .ok()
        .map(|s| s.trim().to_string())
}

/// What a probe is asked to look at beyond the basics: the cgroup hierarchies are read only
/// when a plan needs them (their probe reads /proc/self/mountinfo, the costliest file here:
/// the kernel renders every mount).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    pub cgroups: bool,
}

impl Needs {
    pub const ALL: Needs = Needs { cgroups: true };
}

impl Host {
    /// Probe this host for what `needs` says.
    pub fn probe(needs: Needs) -> Host {
        let cgroups = if needs.cgroups {
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
            landlock_abi: crate::sys::landlock::abi_version().unwrap_or(0),
            mount_api: uname
                .as_ref()
                .is_some_and(|u| kernel_at_least(&u.release().to_string_lossy(), 5, 12)),
            seccomp: seccomp_actions(root),
            cgroups,
            pasta: find_pasta(root),
            tun: nix::unistd::access(
                &root.join("dev/net/tun"),
                nix::unistd::AccessFlags::R_OK | nix::unistd::AccessFlags::W_OK,
            )
            .is_ok(),
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

/// Where the kernel lists the seccomp actions it supports.
pub const SECCOMP_ACTIONS: &str = "proc/sys/kernel/seccomp/actions_avail";

fn seccomp_actions(root: &Path) -> Result<Vec<String>, String> {
    crate::sys::seccomp::get_seccomp_mode()
        .map_err(|e| format!("the kernel has no seccomp (prctl PR_GET_SECCOMP: {e})"))?;
    let path = root.join(SECCOMP_ACTIONS);
    read_proc_file(&path)
        .map(|avail| avail.split_whitespace().map(str::to_string).collect())
        .map_err(|e| format!("cannot read {}: {e}", path.display()))
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
