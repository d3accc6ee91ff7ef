//! The `layers: cgroups:` section as written, its merge for `extends`, and its check into
//! [`Config`]: limits in kernel units and the controllers they need. No side effects.

use std::fmt;

use serde::Deserialize;

use crate::types::{parse_size, Loc, ProfileError, Requirement, SandboxPath, Spanned};

use super::explain::human;
use super::CPU_PERIOD_US;

/// `layers: cgroups:` as written.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, schemars::JsonSchema)]
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

#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct MemorySection {
    #[serde(default)]
    #[schemars(with = "Option<crate::types::Scalar>")]
    pub max: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Option<crate::types::Scalar>")]
    pub high: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Option<crate::types::Scalar>")]
    pub swap_max: Option<Spanned<String>>,
}

crate::merge_fields!(MemorySection {
    max: or,
    high: or,
    swap_max: or
});

#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PidsSection {
    #[serde(default)]
    pub max: Option<Spanned<u64>>,
}

crate::merge_fields!(PidsSection { max: or });

#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, schemars::JsonSchema)]
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

#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct IoSection {
    /// Relative share, 1..10000, default 100 (io.weight semantics).
    #[serde(default)]
    pub weight: Option<Spanned<u32>>,
}

crate::merge_fields!(IoSection { weight: or });

impl crate::types::LayerSection for Section {
    type Config = Config;
    fn validate(&self, _dir: &std::path::Path) -> Result<Config, ProfileError> {
        self.checked()
    }
}

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
    /// The cgroup files of the limits set, e.g. `memory.max`.
    pub fn files(&self) -> Vec<&'static str> {
        [
            (self.memory_max.is_some(), "memory.max"),
            (self.memory_high.is_some(), "memory.high"),
            (self.swap_max.is_some(), "memory.swap.max"),
            (self.pids_max.is_some(), "pids.max"),
            (self.cpu_cores.is_some(), "cpu.max"),
            (self.cpu_weight.is_some(), "cpu.weight"),
            (self.io_weight.is_some(), "io.weight"),
        ]
        .into_iter()
        .filter(|(set, _)| *set)
        .map(|(_, file)| file)
        .collect()
    }

    pub(super) fn only(&self, keep: &[Controller]) -> Limits {
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
