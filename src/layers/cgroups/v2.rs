//! cgroup v2 mechanics on one cgroup directory: limit files, controller delegation,
//! `cgroup.kill`, `cgroup.events` and the usage files.
//!
//! Limits go through cgroups-rs' filesystem controllers built on an explicit directory, so
//! the hierarchy root is whatever the host probe found (or a test's temporary directory);
//! cgroups-rs' own root detection, which assumes /sys/fs/cgroup, is never used. Files it
//! does not cover (`io.weight`, `cgroup.kill`, `memory.peak`, `pids.peak`, `memory.events`)
//! are plain reads and writes here.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use cgroups_rs::fs::cpu::CpuController;
use cgroups_rs::fs::memory::{MemController, SetMemory};
use cgroups_rs::fs::pid::PidController;
use cgroups_rs::fs::MaxValue;

use super::{CgroupError, Limits, CPU_PERIOD_US};

/// Write every limit the profile set into the cgroup at `dir`.
pub fn write_limits(dir: &Path, limits: &Limits) -> Result<(), CgroupError> {
    let lib = |file: &'static str, value: String| {
        move |e: cgroups_rs::fs::error::Error| CgroupError::limit(dir, file, value, e)
    };
    if limits.memory_max.is_some() || limits.memory_high.is_some() {
        let mem = MemController::new(dir.to_path_buf(), PathBuf::new(), true);
        // memory.high first: a max below the current usage reclaims, a high only throttles.
        if let Some(high) = limits.memory_high {
            mem.set_mem(only(|m| m.high = Some(max_value(high))))
                .map_err(lib("memory.high", high.to_string()))?;
        }
        if let Some(max) = limits.memory_max {
            mem.set_mem(only(|m| m.max = Some(max_value(max))))
                .map_err(lib("memory.max", max.to_string()))?;
        }
    }
    if let Some(swap) = limits.swap_max {
        MemController::new(dir.to_path_buf(), PathBuf::new(), true)
            .set_memswap_limit(swap as i64)
            .map_err(lib("memory.swap.max", swap.to_string()))?;
    }
    if let Some(pids) = limits.pids_max {
        PidController::new(dir.to_path_buf(), PathBuf::new(), true)
            .set_pid_max(MaxValue::Value(pids as i64))
            .map_err(lib("pids.max", pids.to_string()))?;
    }
    let cpu = CpuController::new(dir.to_path_buf(), PathBuf::new(), true);
    if let Some(quota) = limits.cpu_quota_us() {
        cpu.set_cfs_quota_and_period(Some(quota as i64), Some(CPU_PERIOD_US))
            .map_err(lib("cpu.max", format!("{quota} {CPU_PERIOD_US}")))?;
    }
    if let Some(weight) = limits.cpu_weight {
        cpu.set_shares(u64::from(weight))
            .map_err(lib("cpu.weight", weight.to_string()))?;
    }
    if let Some(weight) = limits.io_weight {
        // cgroups-rs writes io.bfq.weight on v2; io.weight is the controller's own knob.
        write_file(dir, "io.weight", &format!("default {weight}"), "limit")?;
    }
    Ok(())
}

fn only(set: impl FnOnce(&mut SetMemory)) -> SetMemory {
    let mut m = SetMemory {
        low: None,
        high: None,
        min: None,
        max: None,
    };
    set(&mut m);
    m
}

fn max_value(bytes: u64) -> MaxValue {
    MaxValue::Value(bytes.min(i64::MAX as u64) as i64)
}

/// Enable `wanted` in `parent/cgroup.subtree_control` where missing; returns what it enabled.
pub fn enable_controllers(parent: &Path, wanted: &[&str]) -> Result<Vec<String>, CgroupError> {
    let enabled = crate::host::cgroups::read_words(&parent.join("cgroup.subtree_control"));
    let missing: Vec<String> = wanted
        .iter()
        .filter(|c| !enabled.iter().any(|e| e == *c))
        .map(|c| c.to_string())
        .collect();
    if missing.is_empty() {
        return Ok(missing);
    }
    let line = missing
        .iter()
        .map(|c| format!("+{c}"))
        .collect::<Vec<_>>()
        .join(" ");
    match write_file(parent, "cgroup.subtree_control", &line, "delegate") {
        Err(CgroupError::Io { step, what, source })
            if source.raw_os_error() == Some(libc::EBUSY) =>
        {
            Err(CgroupError::Io {
                step,
                what: format!(
                    "{what} (hint: the cgroup holds processes, and v2 gives controllers only to \
                     cgroups without them; start lasagna in a leaf of its own, e.g. \
                     systemd-run --user -p Delegate=yes --scope, and set cgroups parent: to a \
                     sibling cgroup of that leaf)"
                ),
                source,
            })
        }
        other => other.map(|()| missing),
    }
}

/// Move `pid` (a whole thread group) into the cgroup at `dir`.
pub fn attach(dir: &Path, pid: i32) -> Result<(), CgroupError> {
    write_file(dir, "cgroup.procs", &pid.to_string(), "attach")
}

/// `cgroup.kill` (Linux 5.14): SIGKILL to every process in the subtree, forks included.
/// Returns false when the kernel has no `cgroup.kill`.
pub fn kill(dir: &Path) -> Result<bool, CgroupError> {
    if !dir.join("cgroup.kill").exists() {
        return Ok(false);
    }
    write_file(dir, "cgroup.kill", "1", "kill")?;
    Ok(true)
}

/// Whether any process is left in the subtree (`cgroup.events` `populated`).
pub fn populated(dir: &Path) -> bool {
    match keyed(dir, "cgroup.events", "populated") {
        Some(n) => n != 0,
        None => !super::active::read_procs(dir).is_empty(),
    }
}

/// `memory.peak` (Linux 5.19).
pub fn memory_peak(dir: &Path) -> Option<u64> {
    read_u64(&dir.join("memory.peak"))
}

/// `pids.peak` (Linux 6.1).
pub fn pids_peak(dir: &Path) -> Option<u64> {
    read_u64(&dir.join("pids.peak"))
}

pub fn pids_current(dir: &Path) -> Option<u64> {
    read_u64(&dir.join("pids.current"))
}

/// Forks refused by pids.max (`pids.events` `max`).
pub fn fork_refusals(dir: &Path) -> Option<u64> {
    keyed(dir, "pids.events", "max")
}

/// CPU time of the subtree; `cpu.stat` exists on every v2 cgroup, controller or not.
pub fn cpu_usage_usec(dir: &Path) -> Option<u64> {
    keyed(dir, "cpu.stat", "usage_usec")
}

/// Processes the OOM killer ended because of this cgroup's memory.max.
pub fn oom_kills(dir: &Path) -> Option<u64> {
    keyed(dir, "memory.events", "oom_kill")
}

pub(crate) fn keyed(dir: &Path, file: &str, key: &str) -> Option<u64> {
    let text = fs::read_to_string(dir.join(file)).ok()?;
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok())?
    })
}

pub(crate) fn read_u64(path: &Path) -> Option<u64> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// One write(2) of `value` into an existing control file.
pub(crate) fn write_file(
    dir: &Path,
    file: &str,
    value: &str,
    step: &'static str,
) -> Result<(), CgroupError> {
    let path = dir.join(file);
    fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&path)
        .and_then(|mut f| f.write_all(value.as_bytes()))
        .map_err(|source| CgroupError::Io {
            step,
            what: format!("cannot write {value:?} to {}", path.display()),
            source,
        })
}
