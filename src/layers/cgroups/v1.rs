//! cgroup v1 mechanics: one directory per controller hierarchy.
//!
//! Limits and statistics go through cgroups-rs' filesystem controllers built on the exact
//! directories this layer created. v1 has no `cgroup.kill`: processes are stopped with the
//! freezer when it is mounted (so nothing forks between reading `cgroup.procs` and the
//! SIGKILL), else by a read-and-kill loop until `cgroup.procs` stays empty.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cgroups_rs::fs::blkio::BlkIoController;
use cgroups_rs::fs::cpu::CpuController;
use cgroups_rs::fs::cpuacct::CpuAcctController;
use cgroups_rs::fs::freezer::FreezerController;
use cgroups_rs::fs::memory::MemController;
use cgroups_rs::fs::pid::PidController;
use cgroups_rs::fs::MaxValue;
use cgroups_rs::FreezerState;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::{CgroupError, Limits, CPU_PERIOD_US};

/// A v1 controller directory this layer made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V1Dir {
    pub controller: &'static str,
    pub dir: PathBuf,
}

/// Write the limits that belong to `controller` into `dir`.
pub fn write_limits(controller: &str, dir: &Path, limits: &Limits) -> Result<(), CgroupError> {
    let lib = |file: &'static str, value: String| {
        move |e: cgroups_rs::fs::error::Error| CgroupError::limit(dir, file, value, e)
    };
    let at = || (dir.to_path_buf(), PathBuf::new());
    match controller {
        "memory" => {
            let mem = MemController::new(at().0, at().1, false);
            if let Some(max) = limits.memory_max {
                mem.set_limit(clamp(max))
                    .map_err(lib("memory.limit_in_bytes", max.to_string()))?;
            }
            // v1 has no throttling `high`; the soft limit is the reclaim target under
            // host memory pressure, the nearest v1 knob (explained to the user).
            if let Some(high) = limits.memory_high {
                mem.set_soft_limit(clamp(high))
                    .map_err(lib("memory.soft_limit_in_bytes", high.to_string()))?;
            }
            // memsw counts memory + swap and must be written after (and be >=) the limit.
            if let (Some(swap), Some(max)) = (limits.swap_max, limits.memory_max) {
                let memsw = max.saturating_add(swap);
                mem.set_memswap_limit(clamp(memsw))
                    .map_err(lib("memory.memsw.limit_in_bytes", memsw.to_string()))?;
            }
        }
        "pids" => {
            if let Some(pids) = limits.pids_max {
                PidController::new(at().0, at().1, false)
                    .set_pid_max(MaxValue::Value(clamp(pids)))
                    .map_err(lib("pids.max", pids.to_string()))?;
            }
        }
        "cpu" => {
            let cpu = CpuController::new(at().0, at().1, false);
            if let Some(quota) = limits.cpu_quota_us() {
                // period first: the kernel checks quota against the current period.
                cpu.set_cfs_period(CPU_PERIOD_US)
                    .map_err(lib("cpu.cfs_period_us", CPU_PERIOD_US.to_string()))?;
                cpu.set_cfs_quota(quota as i64)
                    .map_err(lib("cpu.cfs_quota_us", quota.to_string()))?;
            }
            if let Some(weight) = limits.cpu_weight {
                let shares = weight_to_shares(weight);
                cpu.set_shares(shares)
                    .map_err(lib("cpu.shares", shares.to_string()))?;
            }
        }
        "blkio" => {
            if let Some(weight) = limits.io_weight {
                let w = weight_to_blkio(weight);
                if dir.join("blkio.weight").exists() {
                    BlkIoController::new(at().0, at().1, false)
                        .set_weight(w)
                        .map_err(lib("blkio.weight", w.to_string()))?;
                } else {
                    super::v2::write_file(dir, "blkio.bfq.weight", &w.to_string(), "limit")?;
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// Whether the blkio hierarchy at `dir` has a weight knob (CFQ/BFQ schedulers only).
pub fn has_io_weight(dir: &Path) -> bool {
    dir.join("blkio.weight").exists() || dir.join("blkio.bfq.weight").exists()
}

fn clamp(n: u64) -> i64 {
    n.min(i64::MAX as u64) as i64
}

/// cpu.weight (1..10000, default 100) to cpu.shares (2..262144, default 1024), as systemd does.
pub fn weight_to_shares(weight: u32) -> u64 {
    (u64::from(weight) * 1024 / 100).clamp(2, 262_144)
}

/// io.weight (1..10000, default 100) to blkio.weight (10..1000, default 500).
pub fn weight_to_blkio(weight: u32) -> u64 {
    (u64::from(weight) * 500 / 100).clamp(10, 1000)
}

/// Peak memory (`memory.max_usage_in_bytes`) and OOM kills (`memory.oom_control`).
pub fn memory_usage(dir: &Path) -> (Option<u64>, Option<u64>) {
    (memory_peak(dir), oom_kills(dir))
}

/// `memory.max_usage_in_bytes`: the peak, read alone (cgroups-rs's `memory_stat` reads a
/// dozen files for it).
pub fn memory_peak(dir: &Path) -> Option<u64> {
    super::v2::read_u64(&dir.join("memory.max_usage_in_bytes"))
}

/// The `oom_kill` count of `memory.oom_control` (Linux 4.13).
pub fn oom_kills(dir: &Path) -> Option<u64> {
    super::v2::keyed(dir, "memory.oom_control", "oom_kill")
}

/// CPU time in nanoseconds (`cpuacct.usage`).
pub fn cpu_usage_ns(dir: &Path) -> Option<u64> {
    dir.join("cpuacct.usage").exists().then(|| {
        CpuAcctController::new(dir.to_path_buf(), PathBuf::new())
            .cpuacct()
            .usage
    })
}

pub fn pids_current(dir: &Path) -> Option<u64> {
    PidController::new(dir.to_path_buf(), PathBuf::new(), false)
        .get_pid_current()
        .ok()
}

/// SIGKILL everything in the v1 cgroups in `dirs`. With a freezer directory the group is
/// frozen first so no process can fork a child the kill would miss.
pub fn kill_all(dirs: &[V1Dir], deadline: Duration) -> Result<(), CgroupError> {
    let freezer = dirs.iter().find(|d| d.controller == "freezer");
    if let Some(f) = freezer {
        let ctl = FreezerController::new(f.dir.clone(), PathBuf::new(), false);
        ctl.freeze()
            .map_err(|e| CgroupError::limit(&f.dir, "freezer.state", "FROZEN".into(), e))?;
        let until = Instant::now() + deadline;
        while !matches!(ctl.state(), Ok(FreezerState::Frozen)) && Instant::now() < until {
            std::thread::sleep(Duration::from_micros(200));
        }
        for pid in super::active::read_procs(&f.dir) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        ctl.thaw()
            .map_err(|e| CgroupError::limit(&f.dir, "freezer.state", "THAWED".into(), e))?;
    }
    let until = Instant::now() + deadline;
    loop {
        let mut any = false;
        for d in dirs {
            for pid in super::active::read_procs(&d.dir) {
                any = true;
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
        if !any {
            return Ok(());
        }
        if Instant::now() >= until {
            return Err(CgroupError::Other {
                step: "kill",
                what: format!(
                    "processes remain in {} after SIGKILL",
                    dirs[0].dir.display()
                ),
            });
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}
