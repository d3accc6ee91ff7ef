//! Plain-words lines for `lasagna explain` (what would be created and written) and rows
//! for `lasagna doctor` (the host's cgroup mode, delegation and features).

use std::fs;
use std::path::Path;

use crate::host::cgroups as host;
use crate::launch::Decision;

use super::plan::{
    parent_rel, rlimit_name, v1_offers, v2_offers, v2_writable, Access, Backend, Planned,
};
use super::section::Config;
use super::{v1, CgroupHost, CPU_PERIOD_US};

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

/// What `spec`'s limits need of this host, as `doctor PROFILE`'s lines (the host gives it,
/// what, fix): for each controller, the hierarchies that have it where the cgroup would be
/// made, and whether this user may write there. Which one the plan picks, and the rlimits
/// that stand in where none can be had, are the plan's decision.
pub fn needs(spec: &Config, host: &CgroupHost) -> Vec<(bool, String, Option<String>)> {
    needs_for(spec, host, &Access::Kernel)
}

pub(crate) fn needs_for(
    spec: &Config,
    host: &CgroupHost,
    acc: &Access,
) -> Vec<(bool, String, Option<String>)> {
    let said = |w: bool| {
        if w {
            "writable by this user"
        } else {
            "not writable by this user"
        }
    };
    let mut out = Vec::new();
    for c in spec.limits.controllers() {
        let mut found = false;
        if let Some(v2) = &host.v2 {
            let dir = v2.dir(&parent_rel(spec, &v2.own));
            if v2_offers(&dir, c) {
                found = true;
                let w = v2_writable(&dir, acc);
                out.push((
                    w,
                    format!("{c}: cgroup v2 {}, {}", dir.display(), said(w)),
                    (!w).then(|| super::plan::refusal_v2(&dir, &v2.mount)),
                ));
            }
        }
        if let Some(m) = host.v1_mount(c.v1_name()) {
            let dir = m.dir(&parent_rel(spec, &m.own));
            if v1_offers(&dir, c) {
                found = true;
                let w = acc.writable(&dir) && acc.writable(&dir.join("cgroup.procs"));
                let parent = spec.parent.as_ref().map(|p| p.relative().to_string());
                let rel = super::plan::v1_proposal(host, parent.as_deref());
                out.push((
                    w,
                    format!("{c}: cgroup v1 {}, {}", dir.display(), said(w)),
                    (!w).then(|| {
                        format!(
                            "as root: {}; then set cgroups parent: {rel}",
                            super::plan::v1_fix(host, &[c.v1_name()], &rel)
                        )
                    }),
                ));
            }
        }
        if !found {
            out.push((
                false,
                format!(
                    "{c}: no mounted cgroup hierarchy has this controller (cgroup mode: {})",
                    host.layout().name()
                ),
                None,
            ));
        }
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
        // The hierarchies a sandbox uses, at their real mount points, and one cgroup path
        // for all of them below the caller's deepest own cgroup.
        let used = ["memory", "pids", "cpu", "blkio", "freezer", "cpuacct"];
        let rel = super::plan::v1_proposal(host, None);
        rows.push((
            "how to delegate (v1)".into(),
            format!(
                "as root: {}; then cgroups parent: {rel}",
                super::plan::v1_fix(host, &used, &rel)
            ),
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
