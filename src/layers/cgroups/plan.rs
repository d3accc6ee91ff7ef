//! What the host can give the cgroups layer, decided before anything exists: the backend
//! (v2, or v1 per controller with an optional v2 tracker), the limits that will be written,
//! the layer's `Decision`, and the rlimits that stand in for dropped limits.

use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::resource::Resource;
use nix::unistd::{access, AccessFlags};

use crate::host::cgroups as host;
use crate::launch::Decision;
use crate::types::Requirement;

use super::section::{Config, Controller, Limits};
use super::{v1, CgroupHost};

/// Which mechanism will carry the limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// One v2 cgroup under `parent`.
    V2 { parent: PathBuf },
    /// One v1 cgroup per controller, each under its parent directory; plus, on a hybrid
    /// host, a controller-less v2 cgroup under `tracker_parent`.
    V1 {
        parents: Vec<(&'static str, PathBuf)>,
        tracker_parent: Option<PathBuf>,
    },
}

/// Everything `ActiveCgroup::create` needs; built by `plan`.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub backend: Backend,
    /// The limits that will be written (the requested ones minus what was dropped).
    pub limits: Limits,
}

/// An rlimit the payload should set because the cgroup limit it stands for is unavailable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RlimitFallback {
    pub resource: Resource,
    pub limit: u64,
    /// The cgroup limit it stands in for, e.g. "memory.max".
    pub replaces: &'static str,
    /// How it differs from the cgroup limit, for the report.
    pub semantics: &'static str,
}

/// The outcome of `plan`: the decision, what to create, and the rlimits the payload
/// applies instead of what was dropped (best-effort only).
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    pub decision: Decision,
    pub plan: Option<Plan>,
    pub fallback: Vec<RlimitFallback>,
}

/// Decide what the host can give. `timeout` (the run's wall-clock limit) turns a CPU quota
/// into an RLIMIT_CPU budget when cgroups are unavailable.
pub fn plan(spec: &Config, host: &CgroupHost, timeout: Option<Duration>) -> Planned {
    plan_as(spec, host, timeout, &Access::Kernel)
}

/// How writability is checked: by access(2), or (tests) by a fixed answer.
pub(crate) enum Access {
    Kernel,
    #[cfg(test)]
    Fixed(bool),
}

impl Access {
    pub(super) fn writable(&self, p: &Path) -> bool {
        match self {
            Access::Kernel => access(p, AccessFlags::W_OK).is_ok(),
            #[cfg(test)]
            Access::Fixed(b) => *b,
        }
    }
}

pub(crate) fn plan_as(
    spec: &Config,
    host: &CgroupHost,
    timeout: Option<Duration>,
    acc: &Access,
) -> Planned {
    let skip = |why: &str| Planned {
        decision: Decision::Skip(why.into()),
        plan: None,
        fallback: Vec::new(),
    };
    if spec.mode == Requirement::Off {
        return skip("mode: off");
    }
    let wanted = spec.limits.controllers();
    let choice = choose_backend(spec, host, &wanted, acc);
    match (choice, spec.mode) {
        (Ok((backend, missing)), mode) => {
            let kept: Vec<Controller> = wanted
                .iter()
                .copied()
                .filter(|c| !missing.contains(c))
                .collect();
            let plan = Plan {
                backend,
                limits: spec.limits.only(&kept),
            };
            if missing.is_empty() {
                return Planned {
                    decision: Decision::Apply,
                    plan: Some(plan),
                    fallback: Vec::new(),
                };
            }
            let names = missing.iter().map(|c| c.to_string()).collect::<Vec<_>>();
            let reason = format!(
                "controller(s) {} not available on this host ({})",
                names.join(", "),
                host.layout().name()
            );
            if mode == Requirement::Required {
                return Planned {
                    decision: Decision::Refuse(format!(
                        "{reason} (hint: set cgroups mode: best-effort, or drop those limits)"
                    )),
                    plan: None,
                    fallback: Vec::new(),
                };
            }
            let fallback = rlimit_fallback(&spec.limits.only(&missing), timeout);
            Planned {
                decision: Decision::Degrade(with_fallback(reason, &fallback)),
                plan: Some(plan),
                fallback,
            }
        }
        (Err(why), Requirement::Required) => Planned {
            decision: Decision::Refuse(why),
            plan: None,
            fallback: Vec::new(),
        },
        (Err(why), _) => {
            let fallback = rlimit_fallback(&spec.limits, timeout);
            Planned {
                decision: Decision::Degrade(with_fallback(why, &fallback)),
                plan: None,
                fallback,
            }
        }
    }
}

/// The limits `asked` that this plan enforces neither in its cgroup nor by an rlimit
/// standing in (`cpu.weight` with no cgroup; `cpu.max` without a timeout to make a
/// CPU-seconds budget of): what a degraded cgroups layer leaves undone, by cgroup file.
pub fn unenforced(asked: &Limits, planned: &Planned) -> Vec<&'static str> {
    let kept = planned
        .plan
        .as_ref()
        .map(|p| p.limits.files())
        .unwrap_or_default();
    asked
        .files()
        .into_iter()
        .filter(|f| !kept.contains(f) && !planned.fallback.iter().any(|r| r.replaces == *f))
        .collect()
}

fn with_fallback(reason: String, fallback: &[RlimitFallback]) -> String {
    if fallback.is_empty() {
        return reason;
    }
    let list = fallback
        .iter()
        .map(|f| format!("{} for {}", rlimit_name(f.resource), f.replaces))
        .collect::<Vec<_>>()
        .join(", ");
    format!("{reason}; payload gets {list} instead")
}

pub(super) fn rlimit_name(r: Resource) -> &'static str {
    match r {
        Resource::RLIMIT_AS => "RLIMIT_AS",
        Resource::RLIMIT_NPROC => "RLIMIT_NPROC",
        Resource::RLIMIT_CPU => "RLIMIT_CPU",
        _ => "rlimit",
    }
}

/// Pick v2 when it has every wanted controller at the parent, else v1. `Ok` carries the
/// controllers that neither can give; `Err` means no usable (writable) hierarchy at all.
fn choose_backend(
    spec: &Config,
    host: &CgroupHost,
    wanted: &[Controller],
    acc: &Access,
) -> Result<(Backend, Vec<Controller>), String> {
    let rel = |own: &str| parent_rel(spec, own);
    let v2_parent = host.v2.as_ref().map(|m| m.dir(&rel(&m.own)));
    // Moving a process into a v2 cgroup (clone3 CLONE_INTO_CGROUP or a cgroup.procs write)
    // also needs write access to cgroup.procs of the common ancestor of the source and
    // destination cgroups (cgroup_procs_write_permission).
    let v2_own = host.v2.as_ref().map(|m| m.dir(&m.own));
    let v2_reachable = |p: &Path| {
        v2_own.as_ref().is_none_or(|own| {
            let common: PathBuf = own
                .components()
                .zip(p.components())
                .take_while(|(a, b)| a == b)
                .map(|(a, _)| a)
                .collect();
            acc.writable(&common.join("cgroup.procs"))
        })
    };
    let v2_has = |c: Controller| v2_parent.as_ref().is_some_and(|p| v2_offers(p, c));
    let v1_dir = |c: &str| host.v1_mount(c).map(|m| m.dir(&rel(&m.own)));
    let v1_has = |c: Controller| v1_dir(c.v1_name()).is_some_and(|d| v1_offers(&d, c));
    let on_v2 = host.v2.is_some() && (wanted.iter().all(|&c| v2_has(c)) || host.v1.is_empty());
    if on_v2 {
        let parent = v2_parent.clone().unwrap_or_default();
        let missing: Vec<Controller> = wanted.iter().copied().filter(|&c| !v2_has(c)).collect();
        if !v2_writable(&parent, acc) || !v2_reachable(&parent) {
            return Err(refusal_v2(
                &parent,
                &host
                    .v2
                    .as_ref()
                    .map(|m| m.mount.clone())
                    .unwrap_or_default(),
            ));
        }
        return Ok((Backend::V2 { parent }, missing));
    }
    if host.v1.is_empty() {
        return Err("no cgroup hierarchy is mounted".into());
    }
    let missing: Vec<Controller> = wanted.iter().copied().filter(|&c| !v1_has(c)).collect();
    let mut parents = Vec::new();
    for c in wanted.iter().filter(|c| !missing.contains(c)) {
        parents.push((c.v1_name(), v1_dir(c.v1_name()).unwrap_or_default()));
    }
    let tracker_parent = v2_parent.filter(|p| v2_writable(p, acc) && v2_reachable(p));
    if tracker_parent.is_none() {
        // Without v2 the kill needs the freezer, and CPU time needs cpuacct.
        for helper in ["freezer", "cpuacct"] {
            if let Some(d) = v1_dir(helper).filter(|d| d.is_dir()) {
                if !parents.iter().any(|(n, _)| *n == helper) {
                    parents.push((helper, d));
                }
            }
        }
    }
    let blocked: Vec<&(&str, PathBuf)> = parents
        .iter()
        .filter(|(_, d)| !(acc.writable(d) && acc.writable(&d.join("cgroup.procs"))))
        .collect();
    if !blocked.is_empty() {
        let parent = spec.parent.as_ref().map(|p| p.relative().to_string());
        return Err(refusal_v1(&blocked, host, parent.as_deref()));
    }
    Ok((
        Backend::V1 {
            parents,
            tracker_parent,
        },
        missing,
    ))
}

/// Where a spec's cgroups are made in a hierarchy whose own cgroup is `own`: below the
/// profile's `parent:`, else below our own cgroup.
pub(super) fn parent_rel(spec: &Config, own: &str) -> String {
    spec.parent
        .as_ref()
        .map(|p| p.relative().to_string())
        .unwrap_or_else(|| own.to_string())
}

/// The v2 cgroup `dir` can hand `c` to the cgroups made below it.
pub(super) fn v2_offers(dir: &Path, c: Controller) -> bool {
    host::V2Mount::controllers_at(dir)
        .iter()
        .any(|n| n == c.v2_name())
}

/// The v1 directory `dir` of `c`'s hierarchy is there (io: with a weight file).
pub(super) fn v1_offers(dir: &Path, c: Controller) -> bool {
    match c {
        Controller::Io => v1::has_io_weight(dir),
        _ => dir.is_dir(),
    }
}

pub(super) fn v2_writable(parent: &Path, acc: &Access) -> bool {
    acc.writable(parent) && acc.writable(&parent.join("cgroup.procs"))
}

/// Who `chown` is for in a hint: the caller's name, else its uid; for root (`doctor`
/// advising on another user's behalf), a placeholder.
fn caller() -> String {
    let uid = nix::unistd::getuid().as_raw();
    if uid == 0 {
        return "<user>".into();
    }
    crate::procfs::user_name(uid).unwrap_or_else(|| uid.to_string())
}

pub(super) fn refusal_v2(parent: &Path, mount: &Path) -> String {
    let rel = parent
        .strip_prefix(mount)
        .map(|r| format!("/{}", r.display()))
        .unwrap_or_else(|_| "/".into());
    let new = format!("{}/lasagna", rel.trim_end_matches('/'));
    format!(
        "cgroup {} is not delegated to this user (hint: run inside a delegated scope: \
         systemd-run --user -p Delegate=yes --scope lasagna run ...; or as root: \
         mkdir {d} && chown -R {user} {d} and set cgroups parent: {new})",
        parent.display(),
        d = host::join_rel(mount, &new).display(),
        user = caller(),
    )
}

/// The cgroup a v1 hint proposes, relative to each hierarchy's root: the profile's parent,
/// or `lasagna` below the deepest cgroup the caller is in (a host that nests its processes
/// in a limited memory cgroup keeps the sandboxes inside that limit). One path for every
/// hierarchy, as `parent:` names one.
pub(super) fn v1_proposal(host: &CgroupHost, parent: Option<&str>) -> String {
    if let Some(p) = parent {
        return format!("/{}", p.trim_matches('/'));
    }
    let deepest = host
        .v1
        .iter()
        .map(|m| m.own.trim_matches('/'))
        .max_by_key(|own| own.split('/').filter(|c| !c.is_empty()).count())
        .unwrap_or("");
    if deepest.is_empty() {
        "/lasagna".into()
    } else {
        format!("/{deepest}/lasagna")
    }
}

/// The commands that make `rel` in the hierarchy of each of `controllers` (once per
/// hierarchy, at its real mount point) and give it to the caller.
pub(super) fn v1_fix(host: &CgroupHost, controllers: &[&str], rel: &str) -> String {
    let user = caller();
    let mut mounts: Vec<&Path> = Vec::new();
    for m in controllers.iter().filter_map(|c| host.v1_mount(c)) {
        if !mounts.contains(&m.mount.as_path()) {
            mounts.push(&m.mount);
        }
    }
    mounts
        .iter()
        .map(|m| {
            let d = host::join_rel(m, rel);
            format!("mkdir -p {d} && chown -R {user} {d}", d = d.display())
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn refusal_v1(blocked: &[&(&str, PathBuf)], host: &CgroupHost, parent: Option<&str>) -> String {
    let dirs: Vec<String> = blocked
        .iter()
        .map(|(_, d)| d.display().to_string())
        .collect();
    let rel = v1_proposal(host, parent);
    let names: Vec<&str> = blocked.iter().map(|(c, _)| *c).collect();
    format!(
        "the cgroup v1 hierarchies {} are not writable by this user (hint: {} cannot be \
         written; as root: {}; then set cgroups parent: {rel})",
        names.join(", "),
        dirs.join(", "),
        v1_fix(host, &names, &rel),
    )
}

/// rlimits that approximate the cgroup limits in `limits`. They are per process (or per
/// user), not per sandbox tree, and count different things:
/// - RLIMIT_AS (from memory.max) caps each process's virtual address space, not resident
///   memory: mappings that are never touched count, so runtimes that reserve large regions
///   (JVM, Go, sanitizers) fail early, and N processes may together use N times the limit.
/// - RLIMIT_NPROC (from pids.max) counts every process and thread of the real uid on the
///   whole host (the uid the sandbox user maps to), not just the sandbox's.
/// - RLIMIT_CPU (from cpu.cores × timeout) is a per-process budget of CPU seconds ending in
///   SIGXCPU/SIGKILL, not a rate: it cannot throttle, only stop. Without a timeout there is
///   no budget to derive and CPU is left unlimited.
pub fn rlimit_fallback(limits: &Limits, timeout: Option<Duration>) -> Vec<RlimitFallback> {
    let mut out = Vec::new();
    if let Some(max) = limits.memory_max {
        out.push(RlimitFallback {
            resource: Resource::RLIMIT_AS,
            limit: max,
            replaces: "memory.max",
            semantics: "per-process virtual address space, not resident memory of the tree",
        });
    }
    if let Some(pids) = limits.pids_max {
        out.push(RlimitFallback {
            resource: Resource::RLIMIT_NPROC,
            limit: pids,
            replaces: "pids.max",
            semantics: "all processes and threads of the uid on the host, not of the sandbox",
        });
    }
    if let (Some(cores), Some(t)) = (limits.cpu_cores, timeout) {
        out.push(RlimitFallback {
            resource: Resource::RLIMIT_CPU,
            limit: (cores * t.as_secs_f64()).ceil().max(1.0) as u64,
            replaces: "cpu.max",
            semantics: "per-process CPU-seconds budget (SIGXCPU), not a rate",
        });
    }
    out
}
