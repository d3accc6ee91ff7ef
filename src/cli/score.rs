//! `lasagna score PROFILE`: an offline exposure rating in the manner of
//! `systemd-analyze security`. Each check below has a weight; the exposure is the share of
//! the total weight that is open, scaled to 0..10. Nothing runs: the profile is read, not
//! attacked (`lasagna test` attacks it, and each finding names the probe that shows it).

use serde::Serialize;

use crate::cli::Error;
use crate::layers::rlimits::Limit;
use crate::profile::{self, Profile, Requirement};

/// One check: what it looks at, its weight, and the probe of `lasagna test` that
/// demonstrates it when open.
pub struct Check {
    pub id: &'static str,
    pub weight: u32,
    pub why: &'static str,
    pub fix: &'static str,
    pub probe: &'static str,
    /// `Some(what is open)` when the profile leaves it open.
    pub open: fn(&Profile) -> Option<String>,
}

fn on<T>(section: &Option<T>, mode: impl Fn(&T) -> Requirement) -> Option<&T> {
    section.as_ref().filter(|s| mode(s) != Requirement::Off)
}

fn ns(p: &Profile) -> Option<&crate::layers::namespaces::Config> {
    on(&p.namespaces, |c| c.mode)
}

fn limit(p: &Profile, l: Limit) -> bool {
    on(&p.rlimits, |c| c.mode).is_some_and(|r| r.limits.iter().any(|(k, v)| *k == l && v.is_some()))
}

fn cg(p: &Profile) -> Option<&crate::layers::cgroups::Config> {
    on(&p.cgroups, |c| c.mode)
}

fn open_if(cond: bool, what: &str) -> Option<String> {
    cond.then(|| what.to_string())
}

/// The checks and their weights (systemd's scale: a private network 2500, running as root
/// 2000, CAP_SYS_ADMIN and user-namespace creation 1500, most others 1000 or less).
pub const CHECKS: &[Check] = &[
    Check { id: "network", weight: 2500, why: "the sandbox shares the host's network: host loopback services, abstract unix sockets and the outside are reachable", fix: "namespaces: net: true", probe: "tcp-host-loopback",
        open: |p| match on(&p.network, |c| c.mode) {
            Some(n) => open_if(n.net == crate::layers::network::Net::Host, "network: net: host"),
            None => open_if(!ns(p).is_some_and(|n| n.net), "no network namespace"),
        } },
    Check { id: "host-root", weight: 2000, why: "the payload may run as host root: every file and process root may touch is in reach of a single escape", fix: "namespaces: user: true (and no run-as-host-root)", probe: "capabilities",
        open: |p| open_if(ns(p).is_none_or(|n| !n.user || n.run_as_host_root), "no user namespace, or host root allowed") },
    Check { id: "filesystem", weight: 2000, why: "the payload sees the host's file tree", fix: "enable the filesystem layer", probe: "read-host-file",
        open: |p| open_if(on(&p.filesystem, |c| c.mode).is_none(), "filesystem layer off") },
    Check { id: "capabilities", weight: 1500, why: "capabilities are not dropped", fix: "enable the capabilities layer", probe: "capabilities",
        open: |p| open_if(on(&p.capabilities, |c| c.mode).is_none(), "capabilities layer off") },
    Check { id: "cap-sys-admin", weight: 1500, why: "CAP_SYS_ADMIN is kept: mounts, namespaces and most of the kernel's admin surface", fix: "remove sys_admin from capabilities: keep", probe: "mount",
        open: |p| on(&p.capabilities, |c| c.mode).and_then(|c| open_if(c.keep.contains(&caps::Capability::CAP_SYS_ADMIN), "CAP_SYS_ADMIN kept")) },
    Check { id: "kept-capabilities", weight: 500, why: "capabilities are kept", fix: "keep only what the program needs", probe: "capabilities",
        open: |p| on(&p.capabilities, |c| c.mode).and_then(|c| (!c.keep.is_empty()).then(|| format!("{} kept", c.keep.len()))) },
    Check { id: "seccomp", weight: 1500, why: "no syscall filter: user namespaces, io_uring, bpf, keyrings, perf and the rest of the kernel surface are open", fix: "enable the seccomp layer", probe: "nested-userns",
        open: |p| open_if(on(&p.seccomp, |c| c.mode).is_none(), "seccomp layer off") },
    Check { id: "pid", weight: 1000, why: "host processes are visible (and signalable by the same uid)", fix: "namespaces: pid: true", probe: "see-host-process",
        open: |p| open_if(!ns(p).is_some_and(|n| n.pid), "no pid namespace") },
    Check { id: "landlock", weight: 1000, why: "no path rules: a file bound in by mistake is readable", fix: "enable the landlock layer", probe: "read-host-file",
        open: |p| open_if(on(&p.landlock, |c| c.mode).is_none(), "landlock layer off") },
    Check { id: "no-new-privs", weight: 1000, why: "setuid and file-capability programs can gain privileges", fix: "process: no-new-privs: true", probe: "setuid-gain",
        open: |p| open_if(!on(&p.process, |c| c.mode).is_some_and(|c| c.no_new_privs) && on(&p.seccomp, |c| c.mode).is_none(), "no_new_privs unset") },
    Check { id: "environment", weight: 500, why: "the caller's environment (tokens, keys) reaches the payload", fix: "enable the process layer (its environment allow-list)", probe: "environment",
        open: |p| open_if(on(&p.process, |c| c.mode).is_none(), "process layer off") },
    Check { id: "new-session", weight: 500, why: "the payload shares the caller's terminal session: TIOCSTI can type into the caller's shell", fix: "process: new-session: true", probe: "tiocsti",
        open: |p| open_if(!on(&p.process, |c| c.mode).is_some_and(|c| c.new_session), "same session") },
    Check { id: "memory", weight: 500, why: "no memory limit", fix: "cgroups: memory: max: 4G", probe: "memory",
        open: |p| open_if(cg(p).is_none_or(|c| c.limits.memory_max.is_none()) && !limit(p, Limit::As), "no memory limit") },
    Check { id: "pids", weight: 500, why: "no process limit: a fork bomb takes the host", fix: "cgroups: pids: max: 1024, or rlimits: nproc", probe: "fork-bomb",
        open: |p| open_if(cg(p).is_none_or(|c| c.limits.pids_max.is_none()) && !limit(p, Limit::Nproc), "no process limit") },
    Check { id: "ipc", weight: 300, why: "System V IPC and POSIX message queues are shared with the host", fix: "namespaces: ipc: true", probe: "sibling-see",
        open: |p| open_if(!ns(p).is_some_and(|n| n.ipc), "no ipc namespace") },
    Check { id: "landlock-net", weight: 300, why: "Landlock does not restrict TCP bind and connect", fix: "landlock: net: { bind: [], connect: [] }", probe: "low-port",
        open: |p| on(&p.landlock, |c| c.mode).and_then(|l| open_if(l.net.is_none(), "no TCP rules")) },
    Check { id: "landlock-scopes", weight: 300, why: "abstract unix sockets and signals outside the sandbox are not scoped", fix: "landlock: scope: [abstract-unix-socket, signal]", probe: "abstract-unix-socket",
        open: |p| on(&p.landlock, |c| c.mode).and_then(|l| open_if(l.scopes.is_none_or(|s| s.is_empty()), "no scopes")) },
    Check { id: "read-only-root", weight: 300, why: "the sandbox root is writable", fix: "filesystem: read-only-root: true", probe: "mount",
        open: |p| on(&p.filesystem, |c| c.mode).and_then(|f| open_if(!f.read_only_root, "writable root")) },
    Check { id: "nofile", weight: 200, why: "no descriptor limit", fix: "rlimits: nofile: 1024", probe: "fds",
        open: |p| open_if(!limit(p, Limit::Nofile), "no nofile limit") },
    Check { id: "fsize", weight: 200, why: "no file-size limit", fix: "rlimits: fsize: 1G", probe: "file-size",
        open: |p| open_if(!limit(p, Limit::Fsize), "no fsize limit") },
    Check { id: "cpu", weight: 200, why: "no CPU-time limit and no timeout: an endless loop runs forever", fix: "rlimits: cpu: 3600, or process: timeout", probe: "cpu-unbounded",
        open: |p| open_if(!limit(p, Limit::Cpu) && on(&p.process, |c| c.mode).is_none_or(|c| c.timeout.is_none()), "no CPU limit") },
    Check { id: "uts", weight: 200, why: "the host's hostname is visible", fix: "namespaces: uts: true", probe: "hostname",
        open: |p| open_if(!ns(p).is_some_and(|n| n.uts), "no uts namespace") },
];

#[derive(Debug, Serialize)]
pub struct Finding {
    pub id: &'static str,
    pub weight: u32,
    pub open: Option<String>,
    pub why: &'static str,
    pub fix: &'static str,
    pub probe: &'static str,
}

#[derive(Debug, Serialize)]
pub struct Score {
    pub version: u32,
    pub profile: String,
    pub exposure: f64,
    pub findings: Vec<Finding>,
}

pub fn rate(profile: &Profile) -> Score {
    let findings: Vec<Finding> = CHECKS
        .iter()
        .map(|c| Finding {
            id: c.id,
            weight: c.weight,
            open: (c.open)(profile),
            why: c.why,
            fix: c.fix,
            probe: c.probe,
        })
        .collect();
    let total: u32 = CHECKS.iter().map(|c| c.weight).sum();
    let open: u32 = findings
        .iter()
        .filter(|f| f.open.is_some())
        .map(|f| f.weight)
        .sum();
    let exposure = (100.0 * f64::from(open) / f64::from(total)).round() / 10.0;
    Score {
        version: 1,
        profile: profile.name.clone(),
        exposure,
        findings,
    }
}

pub fn score(name: &str, threshold: Option<f64>, json: bool) -> Result<i32, Error> {
    let profile = profile::load(name)?;
    let s = rate(&profile);
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&s).expect("the score serializes")
        );
    } else {
        println!("lasagna score: profile {}", crate::text::escape(&s.profile));
        for f in s.findings.iter().filter(|f| f.open.is_some()) {
            println!(
                "  {:>5}  {:<18} {}: {}\n         fix: {}   (shown by: lasagna test --probe {})",
                f.weight,
                f.id,
                f.open.as_deref().unwrap_or(""),
                f.why,
                f.fix,
                f.probe
            );
        }
        let closed = s.findings.iter().filter(|f| f.open.is_none()).count();
        let word = match s.exposure {
            e if e <= 2.0 => "OK",
            e if e <= 5.0 => "MEDIUM",
            e if e <= 8.0 => "EXPOSED",
            _ => "UNSAFE",
        };
        println!(
            "  {closed} of {} checks closed; exposure {:.1} / 10 ({word})",
            s.findings.len(),
            s.exposure
        );
    }
    Ok(match threshold {
        Some(t) if s.exposure > t => 1,
        _ => 0,
    })
}
