//! The `cgroups` layer: memory, pids, cpu and io limits on the whole sandbox tree.
//!
//! Owns the `layers: cgroups:` profile section, the host probe (v1, v2 or hybrid, decided by
//! what is mounted), delegation checks for unprivileged users, creating the cgroup
//! `lasagna-<pid>-<nonce>` with its limits before the payload exists, placing the child in
//! it (v2: an O_PATH fd for clone3 CLONE_INTO_CGROUP; v1: `attach`), reading usage, killing
//! every process in it, and removing every directory it made.
//!
//! Supervisor side only: nothing here runs in the child. cgroups-rs is used through its
//! filesystem controllers only; its systemd (D-Bus) manager starts threads, and the
//! supervisor must stay single-threaded until the clone.
//!
//! Where a limit lands:
//! - v2 (unified): one directory; controllers enabled in the parent's `cgroup.subtree_control`
//!   only where missing (reported).
//! - v1 / hybrid: one directory per controller hierarchy the profile needs. On a hybrid host
//!   a controller-less v2 cgroup of the same name is added when the v2 parent is writable: it
//!   gives CLONE_INTO_CGROUP placement, `cgroup.kill` and `cpu.stat` without the freezer.

mod active;
pub mod v1;
pub mod v2;

#[cfg(test)]
mod tests;

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::types::Spanned;
use nix::sys::resource::Resource;
use nix::unistd::{access, AccessFlags};
use serde::Deserialize;

use crate::launch::Decision;
use crate::types::{parse_size, Loc, ProfileError, Requirement, SandboxPath};

use crate::host::cgroups as host;
pub use crate::host::cgroups::{CgroupHost, Layout};
pub use active::{sweep_parents, sweep_stale, ActiveCgroup, OomKill, Placement, Usage};

/// cpu.max / cfs period: 100 ms, the kernel default.
pub const CPU_PERIOD_US: u64 = 100_000;

// ---------------------------------------------------------------------------------------
// Profile section
// ---------------------------------------------------------------------------------------

/// `layers: cgroups:` as written.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Section {
    /// `None` when not written: `extends` then keeps the parent's mode (default required).
    #[serde(default)]
    pub mode: Option<Requirement>,
    #[serde(default)]
    pub memory: Option<MemorySection>,
    #[serde(default)]
    pub pids: Option<PidsSection>,
    #[serde(default)]
    pub cpu: Option<CpuSection>,
    #[serde(default)]
    pub io: Option<IoSection>,
    /// Cgroup path (from each hierarchy's root) to create the sandbox cgroup under, instead
    /// of the launcher's own cgroup. Used for delegated subtrees.
    #[serde(default)]
    pub parent: Option<Spanned<String>>,
}

crate::merge_fields!(Section {
    mode: or,
    memory: nested,
    pids: nested,
    cpu: nested,
    io: nested,
    parent: or
});

#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct MemorySection {
    #[serde(default)]
    pub max: Option<Spanned<String>>,
    #[serde(default)]
    pub high: Option<Spanned<String>>,
    #[serde(default)]
    pub swap_max: Option<Spanned<String>>,
}

crate::merge_fields!(MemorySection {
    max: or,
    high: or,
    swap_max: or
});

#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PidsSection {
    #[serde(default)]
    pub max: Option<Spanned<u64>>,
}

crate::merge_fields!(PidsSection { max: or });

#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CpuSection {
    /// CPU bandwidth in cores: 0.5 = half of one CPU per 100 ms period.
    #[serde(default)]
    pub cores: Option<Spanned<f64>>,
    /// Relative share, 1..10000, default 100 (cpu.weight semantics).
    #[serde(default)]
    pub weight: Option<Spanned<u32>>,
}

crate::merge_fields!(CpuSection {
    cores: or,
    weight: or
});

#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct IoSection {
    /// Relative share, 1..10000, default 100 (io.weight semantics).
    #[serde(default)]
    pub weight: Option<Spanned<u32>>,
}

crate::merge_fields!(IoSection { weight: or });

impl Section {
    /// Check values and ranges; no side effects.
    fn checked(&self) -> Result<Config, ProfileError> {
        let size = |s: &Option<Spanned<String>>| -> Result<Option<u64>, ProfileError> {
            match s {
                None => Ok(None),
                Some(raw) => parse_size(&raw.value).map_err(|m| ProfileError::at(Loc::of(raw), m)),
            }
        };
        let mem = self.memory.clone().unwrap_or_default();
        let memory_max = size(&mem.max)?;
        let memory_high = size(&mem.high)?;
        let swap_max = size(&mem.swap_max)?;
        for (raw, v) in [(&mem.max, memory_max), (&mem.high, memory_high)] {
            if let (Some(raw), Some(v)) = (raw, v) {
                if v < 1 << 20 {
                    return Err(ProfileError::at(
                        Loc::of(raw),
                        format!("memory limit {:?} is below 1 MiB", raw.value),
                    )
                    .hint("the sandbox's init and payload need a few MiB; write e.g. 64M"));
                }
            }
        }
        if let (Some(h), Some(m), Some(raw)) = (memory_high, memory_max, &mem.high) {
            if h > m {
                return Err(ProfileError::at(
                    Loc::of(raw),
                    format!("memory.high {} is above memory.max {}", human(h), human(m)),
                )
                .hint("high throttles before max kills; make high <= max or drop it"));
            }
        }
        let pids_max = match self.pids.as_ref().and_then(|p| p.max.as_ref()) {
            Some(raw) if raw.value < 2 => {
                return Err(ProfileError::at(
                    Loc::of(raw),
                    format!("pids.max {} leaves no room for the payload", raw.value),
                )
                .hint("the sandbox's init is one process and the payload another; use >= 2"))
            }
            other => other.map(|r| r.value),
        };
        let cpu = self.cpu.clone().unwrap_or_default();
        let cpu_cores = match &cpu.cores {
            Some(raw) if !(raw.value.is_finite() && (0.01..=4096.0).contains(&raw.value)) => {
                return Err(ProfileError::at(
                    Loc::of(raw),
                    format!("cpu.cores {} is out of range", raw.value),
                )
                .hint("write a number of CPUs between 0.01 and 4096, e.g. 0.5 or 2"))
            }
            other => other.as_ref().map(|r| r.value),
        };
        let weight = |w: &Option<Spanned<u32>>, key: &str| match w {
            Some(raw) if !(1..=10_000).contains(&raw.value) => Err(ProfileError::at(
                Loc::of(raw),
                format!("{key} {} is out of range", raw.value),
            )
            .hint("weights go from 1 to 10000; 100 is the default share")),
            other => Ok(other.as_ref().map(|r| r.value)),
        };
        let cpu_weight = weight(&cpu.weight, "cpu.weight")?;
        let io_weight = weight(
            &self.io.as_ref().and_then(|i| i.weight.clone()),
            "io.weight",
        )?;
        let parent = match &self.parent {
            None => None,
            Some(raw) => Some(crate::types::parse_path(raw).map_err(|e| {
                e.hint("write the cgroup path from the hierarchy root, e.g. /lasagna")
            })?),
        };
        Ok(Config {
            mode: self.mode.unwrap_or_default(),
            limits: Limits {
                memory_max,
                memory_high,
                swap_max,
                pids_max,
                cpu_cores,
                cpu_weight,
                io_weight,
            },
            parent,
        })
    }
}

// ---------------------------------------------------------------------------------------
// Checked values
// ---------------------------------------------------------------------------------------

/// The validated section.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub mode: Requirement,
    pub limits: Limits,
    /// Create under this cgroup (path from each hierarchy's root) instead of our own.
    pub parent: Option<SandboxPath>,
}

/// Limits in kernel units. `None` = not asked for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Limits {
    pub memory_max: Option<u64>,
    pub memory_high: Option<u64>,
    pub swap_max: Option<u64>,
    pub pids_max: Option<u64>,
    pub cpu_cores: Option<f64>,
    pub cpu_weight: Option<u32>,
    pub io_weight: Option<u32>,
}

impl Limits {
    /// CFS quota per `CPU_PERIOD_US` period.
    pub fn cpu_quota_us(&self) -> Option<u64> {
        self.cpu_cores
            .map(|c| ((c * CPU_PERIOD_US as f64).round() as u64).max(1000))
    }

    /// The controllers these limits need, by their v2 names.
    pub fn controllers(&self) -> Vec<Controller> {
        let mut c = Vec::new();
        if self.memory_max.is_some() || self.memory_high.is_some() || self.swap_max.is_some() {
            c.push(Controller::Memory);
        }
        if self.pids_max.is_some() {
            c.push(Controller::Pids);
        }
        if self.cpu_cores.is_some() || self.cpu_weight.is_some() {
            c.push(Controller::Cpu);
        }
        if self.io_weight.is_some() {
            c.push(Controller::Io);
        }
        c
    }

    /// Drop the limits of controllers not in `keep`.
    fn only(&self, keep: &[Controller]) -> Limits {
        let has = |c| keep.contains(&c);
        Limits {
            memory_max: self.memory_max.filter(|_| has(Controller::Memory)),
            memory_high: self.memory_high.filter(|_| has(Controller::Memory)),
            swap_max: self.swap_max.filter(|_| has(Controller::Memory)),
            pids_max: self.pids_max.filter(|_| has(Controller::Pids)),
            cpu_cores: self.cpu_cores.filter(|_| has(Controller::Cpu)),
            cpu_weight: self.cpu_weight.filter(|_| has(Controller::Cpu)),
            io_weight: self.io_weight.filter(|_| has(Controller::Io)),
        }
    }
}

/// A resource controller the profile can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Controller {
    Memory,
    Pids,
    Cpu,
    Io,
}

impl Controller {
    pub fn v2_name(self) -> &'static str {
        match self {
            Controller::Memory => "memory",
            Controller::Pids => "pids",
            Controller::Cpu => "cpu",
            Controller::Io => "io",
        }
    }

    pub fn v1_name(self) -> &'static str {
        match self {
            Controller::Io => "blkio",
            c => c.v2_name(),
        }
    }
}

impl fmt::Display for Controller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.v2_name())
    }
}

// ---------------------------------------------------------------------------------------
// Planned: what the host can give, decided before anything exists
// ---------------------------------------------------------------------------------------

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
    fn writable(&self, p: &Path) -> bool {
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

fn rlimit_name(r: Resource) -> &'static str {
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
    let rel = |own: &str| {
        spec.parent
            .as_ref()
            .map(|p| p.relative().to_string())
            .unwrap_or_else(|| own.to_string())
    };
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
    let v2_has = |c: Controller| {
        v2_parent.as_ref().is_some_and(|p| {
            host::V2Mount::controllers_at(p)
                .iter()
                .any(|n| n == c.v2_name())
        })
    };
    let v1_dir = |c: &str| host.v1_mount(c).map(|m| m.dir(&rel(&m.own)));
    let v1_has = |c: Controller| match (c, v1_dir(c.v1_name())) {
        (Controller::Io, Some(d)) => v1::has_io_weight(&d),
        (_, d) => d.is_some_and(|d| d.is_dir()),
    };
    let on_v2 = host.v2.is_some() && (wanted.iter().all(|&c| v2_has(c)) || host.v1.is_empty());
    if on_v2 {
        let parent = v2_parent.clone().unwrap_or_default();
        let missing: Vec<Controller> = wanted.iter().copied().filter(|&c| !v2_has(c)).collect();
        if !v2_writable(&parent, acc) || !v2_reachable(&parent) {
            return Err(refusal_v2(&parent));
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
        return Err(refusal_v1(&blocked));
    }
    Ok((
        Backend::V1 {
            parents,
            tracker_parent,
        },
        missing,
    ))
}

fn v2_writable(parent: &Path, acc: &Access) -> bool {
    acc.writable(parent) && acc.writable(&parent.join("cgroup.procs"))
}

fn refusal_v2(parent: &Path) -> String {
    format!(
        "cgroup {} is not delegated to this user (hint: run inside a delegated scope: \
         systemd-run --user -p Delegate=yes --scope lasagna run ...; or as root: \
         mkdir {p}/lasagna && chown -R $USER {p}/lasagna and set cgroups parent: <path of \
         {p}/lasagna from the hierarchy root>)",
        parent.display(),
        p = parent.display()
    )
}

fn refusal_v1(blocked: &[&(&str, PathBuf)]) -> String {
    let dirs: Vec<String> = blocked
        .iter()
        .map(|(_, d)| d.display().to_string())
        .collect();
    let fix: Vec<String> = blocked
        .iter()
        .map(|(c, _)| {
            format!("mkdir /sys/fs/cgroup/{c}/lasagna && chown -R $USER /sys/fs/cgroup/{c}/lasagna")
        })
        .collect();
    format!(
        "cgroup v1 directories {} are not writable by this user (hint: as root: {}; then set \
         cgroups parent: /lasagna)",
        dirs.join(", "),
        fix.join("; ")
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

// ---------------------------------------------------------------------------------------
// explain / doctor
// ---------------------------------------------------------------------------------------

/// Lines for `lasagna explain`: what would be created and written.
pub fn explain(spec: &Config, host: &CgroupHost, pre: &Planned) -> Vec<String> {
    let mut out = vec![format!(
        "cgroups ({}), host: {}",
        spec.mode,
        host.layout().name()
    )];
    let l = pre.plan.as_ref().map(|p| &p.limits);
    let lim = l.cloned().unwrap_or_default();
    let v1 = matches!(
        pre.plan.as_ref().map(|p| &p.backend),
        Some(Backend::V1 { .. })
    );
    if let Some(m) = lim.memory_max {
        out.push(format!(
            "  memory.max {} (processes beyond it are OOM-killed)",
            human(m)
        ));
    }
    if let Some(h) = lim.memory_high {
        out.push(if v1 {
            format!("  memory.high {} -> v1 memory.soft_limit_in_bytes: reclaimed first under host pressure, not throttled", human(h))
        } else {
            format!("  memory.high {} (allocation is throttled above it)", human(h))
        });
    }
    if let Some(s) = lim.swap_max {
        out.push(if v1 {
            format!(
                "  swap-max {} -> v1 memory.memsw.limit_in_bytes = memory.max + swap",
                human(s)
            )
        } else {
            format!("  memory.swap.max {}", human(s))
        });
    }
    if let Some(p) = lim.pids_max {
        out.push(format!("  pids.max {p} (fork fails with EAGAIN beyond it)"));
    }
    if let (Some(c), Some(q)) = (lim.cpu_cores, lim.cpu_quota_us()) {
        out.push(format!(
            "  cpu {c} cores = {q} us per {CPU_PERIOD_US} us period"
        ));
    }
    if let Some(w) = lim.cpu_weight {
        out.push(if v1 {
            format!(
                "  cpu.weight {w} -> v1 cpu.shares {}",
                v1::weight_to_shares(w)
            )
        } else {
            format!("  cpu.weight {w}")
        });
    }
    if let Some(w) = lim.io_weight {
        out.push(if v1 {
            format!(
                "  io.weight {w} -> v1 blkio weight {}",
                v1::weight_to_blkio(w)
            )
        } else {
            format!("  io.weight default {w}")
        });
    }
    match pre.plan.as_ref().map(|p| &p.backend) {
        Some(Backend::V2 { parent }) => out.push(format!(
            "  creates {}/lasagna-<pid>-<nonce>; the child is cloned into it (CLONE_INTO_CGROUP)",
            parent.display()
        )),
        Some(Backend::V1 {
            parents,
            tracker_parent,
        }) => {
            for (c, d) in parents {
                out.push(format!(
                    "  creates {}/lasagna-<pid>-<nonce> ({c})",
                    d.display()
                ));
            }
            if let Some(t) = tracker_parent {
                out.push(format!(
                    "  creates {}/lasagna-<pid>-<nonce> (v2, no controllers: clone placement, cgroup.kill, cpu.stat)",
                    t.display()
                ));
            }
        }
        None => {}
    }
    match &pre.decision {
        Decision::Apply => {}
        Decision::Degrade(r) => out.push(format!("  degraded: {r}")),
        Decision::Skip(r) => out.push(format!("  skipped: {r}")),
        Decision::Refuse(r) => out.push(format!("  refused: {r}")),
    }
    for f in &pre.fallback {
        out.push(format!(
            "  fallback {} = {} for {}: {}",
            rlimit_name(f.resource),
            f.limit,
            f.replaces,
            f.semantics
        ));
    }
    out
}

/// Rows for `lasagna doctor`.
pub fn doctor() -> Vec<(String, String)> {
    doctor_for(&CgroupHost::probe(), &Access::Kernel)
}

pub(crate) fn doctor_for(host: &CgroupHost, acc: &Access) -> Vec<(String, String)> {
    let mut rows = vec![("cgroup mode".to_string(), host.layout().name().to_string())];
    if let Some(v2) = &host.v2 {
        let own = v2.dir(&v2.own);
        let ctrls = host::V2Mount::controllers_at(&own);
        rows.push((
            "cgroup v2".into(),
            format!(
                "{} (own cgroup /{}), controllers: {}",
                v2.mount.display(),
                v2.own,
                if ctrls.is_empty() {
                    "none".into()
                } else {
                    ctrls.join(" ")
                }
            ),
        ));
        rows.push((
            "cgroup v2 delegation".into(),
            if v2_writable(&own, acc) {
                format!("yes: {} is writable", own.display())
            } else {
                format!("no: {} is not writable", own.display())
            },
        ));
        rows.push((
            "cgroup v2 features".into(),
            ["cgroup.kill", "memory.peak", "pids.peak"]
                .iter()
                .map(|f| {
                    format!(
                        "{f}: {}",
                        if feature_v2(&v2.mount, f) {
                            "yes"
                        } else {
                            "no"
                        }
                    )
                })
                .collect::<Vec<_>>()
                .join(", "),
        ));
    }
    for m in &host.v1 {
        let own = m.dir(&m.own);
        let w = acc.writable(&own) && acc.writable(&own.join("cgroup.procs"));
        rows.push((
            format!("cgroup v1 {}", m.controllers.join(",")),
            format!(
                "{} (own /{}), {}",
                m.mount.display(),
                m.own,
                if w {
                    "writable"
                } else {
                    "not writable by this user"
                }
            ),
        ));
    }
    rows.push((
        "how to delegate (v2)".into(),
        "systemd-run --user -p Delegate=yes --scope lasagna run ...  (or as root: mkdir a cgroup, chown -R it to the user, set cgroups parent:)".into(),
    ));
    if !host.v1.is_empty() {
        rows.push((
            "how to delegate (v1)".into(),
            "as root, per controller: mkdir /sys/fs/cgroup/<ctrl>/lasagna && chown -R <user> /sys/fs/cgroup/<ctrl>/lasagna; then cgroups parent: /lasagna".into(),
        ));
        rows.push((
            "v1 attach latency".into(),
            "moving a process between v1 cgroups waits for an RCU grace period (ms); mounting the hierarchy with favordynmods (Linux 6.1+) removes the wait".into(),
        ));
    }
    rows
}

/// Whether a v2 interface file exists anywhere it can be seen: the root lacks most of them,
/// so the probe looks at the first child cgroup.
fn feature_v2(mount: &Path, file: &str) -> bool {
    if mount.join(file).exists() {
        return true;
    }
    fs::read_dir(mount)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_dir())
        .any(|e| e.path().join(file).exists())
}

// ---------------------------------------------------------------------------------------
// Errors and small helpers
// ---------------------------------------------------------------------------------------

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cgroups: {step}: {what}")]
    Io {
        step: &'static str,
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cgroups: {step}: {what}")]
    Lib {
        step: &'static str,
        what: String,
        #[source]
        source: cgroups_rs::fs::error::Error,
    },
    #[error("cgroups: {step}: {what}")]
    Other { step: &'static str, what: String },
}

impl CgroupError {
    pub(crate) fn limit(
        dir: &Path,
        file: &'static str,
        value: String,
        source: cgroups_rs::fs::error::Error,
    ) -> CgroupError {
        CgroupError::Lib {
            step: "limit",
            what: format!("cannot write {value:?} to {}", dir.join(file).display()),
            source,
        }
    }
}

/// Pids listed in `dir/cgroup.procs` and in every cgroup below it (a payload that may write
/// its cgroupfs can make sub-cgroups); empty when unreadable.
pub(crate) fn read_procs(dir: &Path) -> Vec<i32> {
    let mut out: Vec<i32> = fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    for child in child_cgroups(dir) {
        out.extend(read_procs(&child));
    }
    out
}

/// The cgroups directly below `dir`.
pub(crate) fn child_cgroups(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect()
}

/// Bytes in binary units: 256 MiB.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if v.fract() == 0.0 {
        format!("{} {}", v as u64, UNITS[u])
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

impl crate::types::LayerSection for Section {
    type Config = Config;
    fn validate(&self, _dir: &std::path::Path) -> Result<Config, ProfileError> {
        self.checked()
    }
}
