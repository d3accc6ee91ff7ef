//! `lasagna doctor`: per layer, whether this host supports it and the exact fix if not.
//! Reads only; it creates nothing.

use serde::Serialize;

use crate::cli::Error;
use crate::host::Host;

/// What a line of `doctor` says: the host gives it (`ok`), gives it with a caveat
/// (`warn`), cannot give it (`fail`), or a fact (`info`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Status {
    Ok,
    Warn,
    Fail,
    Info,
}

impl Status {
    fn word(self) -> &'static str {
        match self {
            Status::Ok => "ok  ",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
            Status::Info => "info",
        }
    }
}

#[derive(Debug, Serialize)]
struct Finding {
    layer: &'static str,
    status: Status,
    /// `status` is not `fail` (kept for readers of the older form).
    supported: bool,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    fix: Option<String>,
}

fn finding(
    layer: &'static str,
    supported: bool,
    detail: impl Into<String>,
    fix: Option<String>,
) -> Finding {
    with_status(
        layer,
        if supported { Status::Ok } else { Status::Fail },
        detail,
        fix,
    )
}

fn with_status(
    layer: &'static str,
    status: Status,
    detail: impl Into<String>,
    fix: Option<String>,
) -> Finding {
    Finding {
        layer,
        status,
        supported: status != Status::Fail,
        detail: detail.into(),
        fix,
    }
}

pub fn doctor(json: bool) -> Result<i32, Error> {
    let host = Host::probe(crate::host::Needs::ALL);
    let mut out = Vec::new();
    out.push(finding(
        "host",
        true,
        format!(
            "kernel {} on {}, running as uid {}{}",
            host.kernel,
            host.arch,
            host.euid,
            if host.is_root {
                " (root: the payload still gets an unprivileged uid)"
            } else {
                ""
            }
        ),
        None,
    ));
    if let Some(c) = &host.container {
        out.push(with_status(
            "host",
            Status::Warn,
            format!("inside a container: {c}; its runtime may block user namespaces, mounting /proc, or seccomp"),
            Some("run lasagna on the host, or give the container a seccomp/AppArmor profile that allows unshare and mount (e.g. podman --security-opt seccomp=unconfined)".into()),
        ));
    }
    match host.userns_blocker() {
        None => out.push(finding(
            "namespaces",
            true,
            format!(
                "user namespaces available (user.max_user_namespaces={})",
                host.max_user_namespaces
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "?".into())
            ),
            None,
        )),
        Some((why, fix)) => out.push(finding("namespaces", false, why, Some(fix))),
    }
    out.push(finding(
        "namespaces",
        host.time_namespace,
        if host.time_namespace {
            "time namespaces available"
        } else {
            "no time namespaces (Linux < 5.6)"
        },
        (!host.time_namespace).then(|| "set `time: false`, or use Linux 5.6+".to_string()),
    ));
    let netns = host.is_root || host.userns_blocker().is_none();
    for (ok, what, fix) in crate::layers::network::doctor(host.pasta.as_deref(), host.tun, netns) {
        out.push(finding("network", ok, what, fix));
    }
    out.push(finding(
        "filesystem",
        host.is_root || host.userns_blocker().is_none(),
        "mount namespace + pivot_root need root or a user namespace",
        None,
    ));
    out.push(finding(
        "filesystem",
        host.mount_api,
        if host.mount_api {
            "detached mounts available (open_tree, mount_setattr, move_mount): every mount is built detached and attached onto a descriptor"
        } else {
            "no mount_setattr (Linux < 5.12): the filesystem layer cannot be applied"
        },
        (!host.mount_api).then(|| "run on Linux 5.12 or newer".to_string()),
    ));
    out.push(finding(
        "capabilities",
        true,
        format!(
            "kernel knows capabilities 0..={}; all are dropped by number",
            host.cap_last_cap
        ),
        None,
    ));
    out.push(finding("rlimits", true, "setrlimit always available", None));
    let tiocsti = match host.legacy_tiocsti {
        Some(true) => "legacy TIOCSTI is ENABLED (dev.tty.legacy_tiocsti=1, CONFIG_LEGACY_TIOCSTI=y): a process sharing your terminal could inject keystrokes; the sandbox never shares your terminal's session (init calls setsid; the process layer's new-session too)".to_string(),
        Some(false) => "legacy TIOCSTI disabled (dev.tty.legacy_tiocsti=0)".to_string(),
        None => "dev.tty.legacy_tiocsti not present (kernel < 6.2: TIOCSTI always works; the new session stops it)".to_string(),
    };
    out.push(with_status(
        "process",
        if host.legacy_tiocsti == Some(false) {
            Status::Ok
        } else {
            Status::Warn
        },
        tiocsti,
        (host.legacy_tiocsti != Some(false))
            .then(|| "sysctl -w dev.tty.legacy_tiocsti=0 (host-wide hardening)".to_string()),
    ));
    out.push(finding(
        "landlock",
        host.landlock_abi > 0,
        if host.landlock_abi > 0 {
            format!("Landlock ABI {}", host.landlock_abi)
        } else {
            "Landlock not available (kernel without it, or not in the lsm= boot list)".to_string()
        },
        (host.landlock_abi == 0).then(|| "boot with lsm=landlock,... (Linux 5.13+); Landlock TCP rules need 6.7+, scopes 6.12+".to_string()),
    ));
    for (k, v) in crate::layers::landlock::doctor() {
        out.push(with_status(
            "landlock",
            Status::Info,
            format!("{k}: {v}"),
            None,
        ));
    }
    // What `run --explain-denials` can list of Landlock's denials here.
    match crate::layers::landlock::audit::open_reader(host.landlock_abi) {
        Ok(_) => out.push(with_status(
            "landlock",
            Status::Ok,
            "run --explain-denials lists Landlock's denials (the kernel's audit records are readable)".to_string(),
            None,
        )),
        Err(why) => out.push(with_status(
            "landlock",
            Status::Info,
            format!(
                "run --explain-denials lists seccomp's denials only: {}",
                why.trim_start_matches("landlock: denials are not listed: ")
            ),
            None,
        )),
    }
    for (k, v) in crate::layers::cgroups::doctor() {
        out.push(with_status(
            "cgroups",
            Status::Info,
            format!("{k}: {v}"),
            None,
        ));
    }
    for (k, v) in crate::layers::seccomp::doctor() {
        out.push(with_status(
            "seccomp",
            Status::Info,
            format!("{k}: {v}"),
            None,
        ));
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&out).expect("findings serialize")
        );
    } else {
        for f in &out {
            println!("{} {:<13} {}", f.status.word(), f.layer, f.detail);
            if let Some(fix) = &f.fix {
                println!("     {:<13} fix: {fix}", "");
            }
        }
    }
    Ok(0)
}
