//! The `rlimits` layer: per-process resource limits set in the payload before execve.
//! Soft and hard limits are set to the same value, so the payload cannot raise them.

use crate::types::Spanned;
use serde::Deserialize;

use crate::launch::ChildError;
use crate::types::{parse_duration, parse_size, Loc, ProfileError, Requirement};

const LAYER: crate::launch::At = crate::launch::At::Rlimits;

// ---- section: the profile's keys, merged over `extends`, checked into `Config` ----------

#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Section {
    pub mode: Option<Requirement>,
    #[schemars(with = "Option<crate::types::Scalar>")]
    pub nofile: Option<Spanned<String>>,
    #[schemars(with = "Option<crate::types::Scalar>")]
    pub nproc: Option<Spanned<String>>,
    #[schemars(with = "Option<crate::types::Scalar>")]
    pub fsize: Option<Spanned<String>>,
    #[schemars(with = "Option<crate::types::Scalar>")]
    pub core: Option<Spanned<String>>,
    #[schemars(with = "Option<crate::types::Scalar>")]
    pub cpu: Option<Spanned<String>>,
    #[serde(rename = "as")]
    #[schemars(with = "Option<crate::types::Scalar>")]
    pub address_space: Option<Spanned<String>>,
    #[schemars(with = "Option<crate::types::Scalar>")]
    pub stack: Option<Spanned<String>>,
    #[schemars(with = "Option<crate::types::Scalar>")]
    pub memlock: Option<Spanned<String>>,
}

crate::merge_fields!(Section {
    mode: or,
    nofile: or,
    nproc: or,
    fsize: or,
    core: or,
    cpu: or,
    address_space: or,
    stack: or,
    memlock: or
});

/// Which limit, with its kernel resource number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Limit {
    Nofile,
    Nproc,
    Fsize,
    Core,
    Cpu,
    As,
    Stack,
    Memlock,
}

impl Limit {
    pub fn name(self) -> &'static str {
        match self {
            Limit::Nofile => "nofile",
            Limit::Nproc => "nproc",
            Limit::Fsize => "fsize",
            Limit::Core => "core",
            Limit::Cpu => "cpu",
            Limit::As => "as",
            Limit::Stack => "stack",
            Limit::Memlock => "memlock",
        }
    }

    pub fn resource(self) -> nix::sys::resource::Resource {
        use nix::sys::resource::Resource;
        match self {
            Limit::Nofile => Resource::RLIMIT_NOFILE,
            Limit::Nproc => Resource::RLIMIT_NPROC,
            Limit::Fsize => Resource::RLIMIT_FSIZE,
            Limit::Core => Resource::RLIMIT_CORE,
            Limit::Cpu => Resource::RLIMIT_CPU,
            Limit::As => Resource::RLIMIT_AS,
            Limit::Stack => Resource::RLIMIT_STACK,
            Limit::Memlock => Resource::RLIMIT_MEMLOCK,
        }
    }
}

impl Section {
    fn checked(self) -> Result<Config, ProfileError> {
        let mut limits = Vec::new();
        let count = |raw: &Spanned<String>| -> Result<Option<u64>, ProfileError> {
            let s = raw.value.trim();
            if s == "unlimited" {
                return Ok(None);
            }
            s.parse::<u64>().map(Some).map_err(|_| {
                ProfileError::at(Loc::of(raw), format!("{:?} is not a count", raw.value))
                    .hint("a whole number, or \"unlimited\"")
            })
        };
        let size = |raw: &Spanned<String>| {
            parse_size(&raw.value).map_err(|m| ProfileError::at(Loc::of(raw), m))
        };
        let seconds = |raw: &Spanned<String>| -> Result<Option<u64>, ProfileError> {
            if raw.value.trim() == "unlimited" {
                return Ok(None);
            }
            let d = parse_duration(&raw.value).map_err(|m| ProfileError::at(Loc::of(raw), m))?;
            // RLIMIT_CPU counts whole seconds: 500ms would silently become 1 s.
            if d.subsec_nanos() != 0 || d.as_secs() == 0 {
                return Err(ProfileError::at(
                    Loc::of(raw),
                    format!(
                        "cpu: the kernel limits CPU time in whole seconds; {:?} is not a whole number of seconds above 0",
                        raw.value
                    ),
                )
                .hint(format!("write cpu: {}s", d.as_secs_f64().ceil().max(1.0) as u64)));
            }
            Ok(Some(d.as_secs()))
        };
        for (limit, raw) in [
            (Limit::Nofile, &self.nofile),
            (Limit::Nproc, &self.nproc),
            (Limit::Fsize, &self.fsize),
            (Limit::Core, &self.core),
            (Limit::Cpu, &self.cpu),
            (Limit::As, &self.address_space),
            (Limit::Stack, &self.stack),
            (Limit::Memlock, &self.memlock),
        ] {
            let Some(raw) = raw else { continue };
            let value = match limit {
                Limit::Nofile | Limit::Nproc => count(raw)?,
                Limit::Cpu => seconds(raw)?,
                _ => size(raw)?,
            };
            limits.push((limit, value));
        }
        Ok(Config {
            mode: self.mode.unwrap_or_default(),
            limits,
        })
    }
}

/// The checked section: each limit and its value (`None` = unlimited).
#[derive(Debug, Clone)]
pub struct Config {
    pub mode: Requirement,
    pub limits: Vec<(Limit, Option<u64>)>,
}

impl crate::types::LayerSection for Section {
    type Config = Config;
    fn validate(&self, _dir: &std::path::Path) -> Result<Config, ProfileError> {
        self.clone().checked()
    }
}

// ---- apply: the child, between clone and execve (async-signal-safe) ---------------------

/// Child side (payload): set each limit, soft = hard, except CPU time: its hard limit is
/// one second above the soft one. At the soft limit the kernel sends SIGXCPU, which names
/// the cause in the payload's ending; with soft = hard it would send SIGKILL straight away,
/// the same signal as any other kill. A payload that catches SIGXCPU gets SIGKILL a second
/// later.
pub fn child_apply(limits: &[(Limit, Option<u64>)]) -> Result<(), ChildError<'static>> {
    for (limit, value) in limits {
        let soft = value.unwrap_or(libc::RLIM_INFINITY);
        let hard = match (limit, value) {
            (Limit::Cpu, Some(v)) => v.saturating_add(1),
            _ => soft,
        };
        nix::sys::resource::setrlimit(limit.resource(), soft, hard).map_err(|e| {
            ChildError::new(LAYER, "setrlimit", e).with_detail(limit.name().as_bytes())
        })?;
    }
    Ok(())
}

// ---- explain: plain words for `explain` and `doctor` ------------------------------------

pub fn explain(cfg: &Config) -> Vec<String> {
    use crate::layers::cgroups::human;
    let mut out: Vec<String> = cfg
        .limits
        .iter()
        .map(|(l, v)| match (l, v) {
            (_, None) => format!(
                "{}: unlimited (the run fails where the caller's own hard limit is lower)",
                l.name()
            ),
            (Limit::Cpu, Some(v)) => format!(
                "cpu: {v} s of CPU time per process, then SIGXCPU (SIGKILL a second later if it is caught)"
            ),
            (Limit::Nofile, Some(v)) => format!("nofile: at most {v} open files per process"),
            (Limit::Nproc, Some(v)) => {
                format!("nproc: at most {v} processes of the payload's host uid, counted host-wide")
            }
            (Limit::Fsize, Some(v)) => format!(
                "fsize: no file is written past {}; a write beyond gets SIGXFSZ",
                human(*v)
            ),
            (Limit::Core, Some(0)) => "core: no core dumps".to_string(),
            (Limit::Core, Some(v)) => format!("core: core dumps up to {}", human(*v)),
            (Limit::As, Some(v)) => {
                format!("as: at most {} of address space per process", human(*v))
            }
            (Limit::Stack, Some(v)) => format!("stack: {} per thread's main stack", human(*v)),
            (Limit::Memlock, Some(v)) => format!("memlock: {} of locked memory", human(*v)),
        })
        .collect();
    let set: Vec<&str> = cfg
        .limits
        .iter()
        .filter(|(_, v)| v.is_some())
        .map(|(l, _)| match l {
            Limit::Nofile => "open files",
            Limit::Nproc => "processes",
            Limit::Fsize => "file size",
            Limit::Core => "core dumps",
            Limit::Cpu => "CPU seconds",
            Limit::As => "address space",
            Limit::Stack => "stack size",
            Limit::Memlock => "locked memory",
        })
        .collect();
    if !set.is_empty() {
        out.push(format!(
            "stops: one process going past these limits ({})",
            set.join(", ")
        ));
    }
    let has = |which: Limit| cfg.limits.iter().any(|(l, v)| *l == which && v.is_some());
    let mut gaps = vec!["many processes together (cgroups do that)".to_string()];
    if !has(Limit::As) {
        gaps.push("the memory of one process (no `as` here; the cgroups layer's memory.max holds the sandbox)".into());
    }
    if !has(Limit::Cpu) {
        gaps.push("CPU time (no `cpu` here)".into());
    }
    out.push(format!("does not stop: {}", gaps.join("; ")));
    out
}
