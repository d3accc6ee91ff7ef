//! `net: user`: pasta (Debian package `passt`) connects the sandbox's network namespace to
//! the host's stack. It runs beside the sandbox, on the host side, as the supervisor's
//! user, attached through descriptors of the sandbox's namespaces, and is killed after the
//! run. Options: `--no-map-gw` (the gateway address is not the host's loopback), no
//! namespace-to-host forwards (`-T none -U none`: the sandbox's own loopback stays its
//! own), inbound forwards only as the profile lists them, bound to the host's loopback.

use std::io::{Read, Seek};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The interface pasta makes inside.
pub const IFNAME: &str = "eth0";
/// How long pasta has to bring the interface up with a default route.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// What `pasta --version` says (its first line), for `doctor`.
pub fn version(bin: &Path) -> Option<String> {
    let out = Command::new(bin)
        .arg("--version")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .map(|l| l.trim().to_string())
}

/// pasta while the sandbox runs.
pub struct Running {
    child: Child,
    /// pasta's stderr (a memfd), shown when it fails.
    log: std::fs::File,
}

/// Start pasta on the namespaces of the sandbox's init (`pid`); `userns`: the sandbox has
/// a user namespace of its own (pasta joins it to configure the network namespace).
pub fn start(
    bin: &Path,
    pid: i32,
    userns: bool,
    forward: &[(u16, u16)],
) -> Result<Running, String> {
    let open = |kind: &str| {
        std::fs::File::open(format!("/proc/{pid}/ns/{kind}"))
            .map_err(|e| format!("open the sandbox's {kind} namespace: {e}"))
    };
    let netns = open("net")?;
    let mut cmd = Command::new(bin);
    cmd.args(["--quiet", "--foreground", "--config-net", "--no-map-gw"])
        .args(["--ns-ifname", IFNAME])
        .args(["-T", "none", "-U", "none", "-u", "none"])
        .args(["--netns", "/proc/self/fd/0"]);
    if forward.is_empty() {
        cmd.args(["-t", "none"]);
    } else {
        let spec: Vec<String> = forward
            .iter()
            .map(|(h, p)| format!("127.0.0.1/{h}:{p}"))
            .collect();
        cmd.args(["-t", &spec.join(",")]);
    }
    if userns {
        cmd.args(["--userns", "/proc/self/fd/1"]);
        cmd.stdout(Stdio::from(OwnedFd::from(open("user")?)));
    } else {
        cmd.stdout(Stdio::null());
    }
    if nix::unistd::geteuid().is_root() {
        // pasta would switch to nobody, which may not enter a namespace root created; it
        // drops its capabilities and isolates itself once the interface is set up.
        cmd.args(["--runas", "0:0"]);
    }
    let log = crate::sys::memfd("pasta-stderr").map_err(|e| format!("memfd: {e}"))?;
    let log = std::fs::File::from(log);
    cmd.stdin(Stdio::from(OwnedFd::from(netns)))
        .stderr(Stdio::from(
            log.try_clone().map_err(|e| format!("memfd: {e}"))?,
        ));
    crate::sys::die_with_parent(&mut cmd);
    let child = cmd
        .spawn()
        .map_err(|e| format!("start {}: {e}", bin.display()))?;
    Ok(Running { child, log })
}

impl Running {
    /// Wait until the sandbox's namespace has pasta's interface with a default route.
    pub fn wait_ready(&mut self, pid: i32) -> Result<(), String> {
        let until = Instant::now() + READY_TIMEOUT;
        loop {
            if routed(pid) {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "pasta exited ({status}) before the interface was up{}",
                    self.said()
                ));
            }
            if Instant::now() >= until {
                return Err(format!(
                    "pasta did not bring {IFNAME} up with a default route within {} s{}",
                    READY_TIMEOUT.as_secs(),
                    self.said()
                ));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// What pasta wrote on stderr, without syslog's noise.
    fn said(&mut self) -> String {
        let mut text = String::new();
        let _ = self.log.rewind();
        let _ = (&self.log).take(16 * 1024).read_to_string(&mut text);
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with("Failed to send"))
            .collect();
        if lines.is_empty() {
            String::new()
        } else {
            format!(": {}", crate::text::escape(&lines.join("; ")))
        }
    }
}

impl Drop for Running {
    /// pasta ends with the run, on every path.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether `/proc/PID/net/route` (or `ipv6_route`) has a default route through pasta's
/// interface.
fn routed(pid: i32) -> bool {
    let v4 = std::fs::read_to_string(format!("/proc/{pid}/net/route")).unwrap_or_default();
    if v4.lines().any(|l| {
        let mut f = l.split_whitespace();
        f.next() == Some(IFNAME) && f.next() == Some("00000000")
    }) {
        return true;
    }
    let v6 = std::fs::read_to_string(format!("/proc/{pid}/net/ipv6_route")).unwrap_or_default();
    v6.lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() == 10
            && f[0] == "00000000000000000000000000000000"
            && f[1] == "00"
            && f[9] == IFNAME
    })
}
