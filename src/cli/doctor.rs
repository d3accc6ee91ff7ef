//! `lasagna doctor`: per layer, whether this host supports it and the exact fix if not.
//! `lasagna doctor PROFILE`: per layer of one profile, what its plan makes of this host for
//! this caller (applied, degraded, skipped, refused, with the fix), then the host facts
//! that layer rests on. The decisions are the plan's, read as `check` reads them: nothing
//! here decides whether a layer applies. Reads only; it creates nothing.

use serde::Serialize;

use crate::cli::{inspect, Error};
use crate::host::Host;
use crate::launch::{Decision, Layer};
use crate::layers::filesystem::view::What;
use crate::layers::{cgroups, landlock, network, seccomp};
use crate::plan::{LayerPlan, Plan};
use crate::profile::{Profile, Requirement};

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
    /// `doctor PROFILE`: the profile's name, on every finding.
    #[serde(skip_serializing_if = "Option::is_none")]
    profile: Option<String>,
    /// `doctor PROFILE`: on a layer's first finding, what the plan decided for it
    /// (`applied`, `degraded`, `skipped`, `refused`).
    #[serde(skip_serializing_if = "Option::is_none")]
    decision: Option<&'static str>,
}

/// One thing a layer needs of the host: whether the host gives it, what it is, and the
/// fix where it does not (the layers' `doctor` and `needs` lines).
type Fact = (bool, String, Option<String>);

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
        profile: None,
        decision: None,
    }
}

pub fn doctor(profile: Option<&str>, json: bool) -> Result<i32, Error> {
    let host = Host::probe(crate::host::Needs::ALL);
    match profile {
        None => {
            print(&host_findings(&host), json);
            Ok(0)
        }
        Some(name) => for_profile(name, &host, json),
    }
}

/// Who asks, and where: the first lines of both forms.
fn caller(host: &Host) -> Vec<Finding> {
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
    out
}

/// Whether this caller can create a user namespace; `why`: what needs one.
fn userns_fact(host: &Host, why: Option<&str>) -> Fact {
    let why = why.map(|w| format!(": {w}")).unwrap_or_default();
    match host.userns_blocker() {
        None => (
            true,
            format!(
                "user namespaces available (user.max_user_namespaces={}){why}",
                host.max_user_namespaces
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "?".into())
            ),
            None,
        ),
        Some((blocker, fix)) if why.is_empty() => (false, blocker, Some(fix)),
        Some((blocker, fix)) => (
            false,
            format!("no user namespace ({blocker}){why}"),
            Some(fix),
        ),
    }
}

fn time_fact(host: &Host) -> Fact {
    (
        host.time_namespace,
        if host.time_namespace {
            "time namespaces available"
        } else {
            "no time namespaces (Linux < 5.6)"
        }
        .to_string(),
        (!host.time_namespace).then(|| "set `time: false`, or use Linux 5.6+".to_string()),
    )
}

fn mount_api_fact(host: &Host) -> Fact {
    (
        host.mount_api,
        if host.mount_api {
            "detached mounts available (open_tree, mount_setattr, move_mount): every mount is built detached and attached onto a descriptor"
        } else {
            "no mount_setattr (Linux < 5.12): the filesystem layer cannot be applied"
        }
        .to_string(),
        (!host.mount_api).then(|| "run on Linux 5.12 or newer".to_string()),
    )
}

fn capabilities_fact(host: &Host) -> Fact {
    (
        true,
        format!(
            "kernel knows capabilities 0..={}; all are dropped by number",
            host.cap_last_cap
        ),
        None,
    )
}

fn rlimits_fact() -> Fact {
    (true, "setrlimit always available".to_string(), None)
}

/// `doctor`: everything this host gives, layer by layer.
fn host_findings(host: &Host) -> Vec<Finding> {
    let fact = |layer, (ok, what, fix): Fact| finding(layer, ok, what, fix);
    let mut out = caller(host);
    out.push(fact("namespaces", userns_fact(host, None)));
    out.push(fact("namespaces", time_fact(host)));
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
    out.push(fact("filesystem", mount_api_fact(host)));
    out.push(fact("capabilities", capabilities_fact(host)));
    out.push(fact("rlimits", rlimits_fact()));
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
    out
}

fn print(out: &[Finding], json: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(out).expect("findings serialize")
        );
    } else {
        // A profile's reasons carry its paths and names: never a control character raw.
        use crate::text::escape;
        for f in out {
            println!("{} {:<13} {}", f.status.word(), f.layer, escape(&f.detail));
            if let Some(fix) = &f.fix {
                println!("     {:<13} fix: {}", "", escape(fix));
            }
        }
    }
}

// ---- doctor PROFILE ---------------------------------------------------------------------

/// `doctor PROFILE`: exit 0 when the profile runs here as this caller, 1 when `check`
/// would refuse it (a refused layer, its program missing) or it does not load.
fn for_profile(name: &str, host: &Host, json: bool) -> Result<i32, Error> {
    let checked = match inspect::load_and_plan(name, host) {
        Ok(c) => c,
        // As `check` says it: the errors, and exit 1.
        Err(errors) => {
            for e in errors {
                eprintln!("{e}");
            }
            return Ok(1);
        }
    };
    let plan = &checked.plan;
    let mut out = caller(host);
    if let Some(missing) = &checked.missing_program {
        // find_program's text ends with the fix after its last "; ".
        let (what, fix) = match missing.rsplit_once("; ") {
            Some((what, fix)) => (what.to_string(), Some(fix.to_string())),
            None => (missing.clone(), None),
        };
        out.push(with_status("profile", Status::Fail, what, fix));
    }
    for l in &plan.layers {
        let verdict = verdict(l);
        out.push(verdict_finding(l, verdict));
        if l.requested == Requirement::Off {
            continue;
        }
        for (has, what, fix) in needs(l.layer, &checked.profile, plan, host) {
            // A fact the host lacks weighs what the plan made of it: a refusal fails, a
            // degradation warns, a layer that applies without it only tells.
            let status = match (has, verdict) {
                (true, _) => Status::Ok,
                (false, Status::Fail | Status::Warn) => verdict,
                (false, _) => Status::Info,
            };
            out.push(with_status(
                l.layer.name(),
                status,
                what,
                fix.filter(|_| !has),
            ));
        }
    }
    let runs = checked.runs_here();
    out.push(if runs {
        with_status(
            "profile",
            Status::Ok,
            format!(
                "{}: runs here as uid {}: no required layer is refused",
                plan.profile, host.euid
            ),
            None,
        )
    } else {
        let mut why: Vec<String> = plan
            .refusals()
            .iter()
            .map(|l| format!("{} refused", l.layer))
            .collect();
        if checked.missing_program.is_some() {
            why.insert(0, "its program is missing".into());
        }
        with_status(
            "profile",
            Status::Fail,
            format!(
                "{}: cannot run here as uid {}: {}",
                plan.profile,
                host.euid,
                why.join(", ")
            ),
            Some("each FAIL above says what to change".into()),
        )
    });
    for f in &mut out {
        f.profile = Some(plan.profile.clone());
    }
    print(&out, json);
    Ok(if runs { 0 } else { 1 })
}

/// The status of the plan's decision for a layer: applied is ok, a degradation or a
/// best-effort layer skipped for what the host lacks warns, a refusal fails, and a layer
/// the profile leaves off is a fact.
fn verdict(l: &LayerPlan) -> Status {
    match &l.decision {
        Decision::Apply => Status::Ok,
        Decision::Degrade(_) => Status::Warn,
        Decision::Skip(_) if l.requested == Requirement::Off => Status::Info,
        Decision::Skip(_) => Status::Warn,
        Decision::Refuse(_) => Status::Fail,
    }
}

/// A layer's first line: the plan's decision and its reason, the fix on its own line.
fn verdict_finding(l: &LayerPlan, status: Status) -> Finding {
    let (word, reason) = match &l.decision {
        Decision::Apply => ("applied", None),
        Decision::Degrade(r) => ("degraded", Some(r)),
        Decision::Skip(r) => ("skipped", Some(r)),
        Decision::Refuse(r) => ("refused", Some(r)),
    };
    let (reason, fix) = match reason {
        Some(r) => {
            let (r, fix) = crate::text::split_fix(r);
            (Some(r), fix)
        }
        None => (None, None),
    };
    let fix = fix.or_else(|| {
        (status == Status::Fail).then(|| {
            format!(
                "set `mode: best-effort` in the profile's {} section to run with what this host gives",
                l.layer
            )
        })
    });
    let mut f = with_status(
        l.layer.name(),
        status,
        match reason {
            Some(r) => format!("{word} ({}): {r}", l.requested),
            None => format!("{word} ({})", l.requested),
        },
        fix,
    );
    f.decision = Some(word);
    f
}

/// What one layer of `profile` needs of this host, as facts. Which of them a decision
/// rests on is the plan's business; these say what the host has.
fn needs(layer: Layer, profile: &Profile, plan: &Plan, host: &Host) -> Vec<Fact> {
    let unprivileged = |why: &str| {
        (!host.is_root)
            .then(|| userns_fact(host, Some(why)))
            .into_iter()
    };
    match layer {
        Layer::Namespaces => {
            let Some(c) = &profile.namespaces else {
                return Vec::new();
            };
            let mut out = Vec::new();
            if c.user {
                out.push(userns_fact(
                    host,
                    Some("the layer creates one (user: true)"),
                ));
            }
            if c.time {
                out.push(time_fact(host));
            }
            if c.cgroup {
                out.push((
                    host.cgroup_namespace,
                    if host.cgroup_namespace {
                        "cgroup namespaces available"
                    } else {
                        "no cgroup namespaces"
                    }
                    .to_string(),
                    (!host.cgroup_namespace).then(|| "set `cgroup: false`".to_string()),
                ));
            }
            out
        }
        Layer::Network => {
            let Some(c) = &profile.network else {
                return Vec::new();
            };
            let netns = host.is_root || host.userns_blocker().is_none();
            let mut out: Vec<Fact> = Vec::new();
            if c.net == network::Net::User {
                out.extend(unprivileged("a network namespace needs one when not root"));
            }
            out.extend(network::needs(
                c.net,
                host.pasta.as_deref(),
                host.tun,
                netns,
            ));
            out
        }
        Layer::Filesystem => {
            let mut out: Vec<Fact> =
                unprivileged("a mount namespace and pivot_root need one when not root").collect();
            out.push(mount_api_fact(host));
            // As root, the binds the plan kept idmapped.
            let idmapped = plan.filesystem.as_ref().map_or(0, |fs| {
                fs.entries
                    .iter()
                    .filter(|e| matches!(e.what, What::Bind { idmap: Some(_), .. }))
                    .count()
            });
            if idmapped > 0 {
                out.push((
                    host.mount_api,
                    format!(
                        "{idmapped} idmapped bind(s): mount_setattr(MOUNT_ATTR_IDMAP) on a detached tree (Linux 5.12+); the source's filesystem must support idmapped mounts"
                    ),
                    (!host.mount_api).then(|| "run on Linux 5.12 or newer".to_string()),
                ));
            }
            out
        }
        Layer::Cgroups => profile
            .cgroups
            .as_ref()
            .map(|c| cgroups::needs(c, &host.cgroups))
            .unwrap_or_default(),
        Layer::Capabilities => unprivileged(
            "dropping the bounding set needs CAP_SETPCAP, which needs one when not root",
        )
        .chain([capabilities_fact(host)])
        .collect(),
        Layer::Rlimits => vec![rlimits_fact()],
        // new-session, no_new_privs, the environment: nothing to ask of the host.
        Layer::Process => Vec::new(),
        Layer::Landlock => profile
            .landlock
            .iter()
            .map(|p| landlock::needs(p, host.landlock_abi))
            .collect(),
        Layer::Seccomp => profile
            .seccomp
            .iter()
            .map(|p| seccomp::needs(p, host))
            .collect(),
    }
}
