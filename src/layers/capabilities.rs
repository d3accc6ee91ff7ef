//! The `capabilities` layer: empty bounding, ambient, effective, permitted and inheritable
//! sets, except an optional `keep:` list.
//!
//! The bounding set is dropped first, while CAP_SETPCAP is still held, by number up to the
//! kernel's `cap_last_cap` — so capabilities newer than any table are dropped too.

use std::str::FromStr;

use crate::types::Spanned;
use serde::Deserialize;

use crate::launch::At;
use crate::launch::{ChildContext, ChildError};
use crate::sys;
use crate::types::{Loc, ProfileError, Requirement};

// ---- section: the profile's keys, merged over `extends`, checked into `Config` ----------

#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Section {
    pub mode: Option<Requirement>,
    pub keep: Option<Vec<Spanned<String>>>,
}

crate::merge_fields!(Section { mode: or, keep: or });

impl Section {
    fn checked(self) -> Result<Config, ProfileError> {
        let mut keep = Vec::new();
        for raw in self.keep.unwrap_or_default() {
            let upper = raw.value.trim().to_ascii_uppercase();
            let name = if upper.starts_with("CAP_") {
                upper
            } else {
                format!("CAP_{upper}")
            };
            let cap = caps::Capability::from_str(&name).map_err(|_| {
                ProfileError::at(Loc::of(&raw), format!("unknown capability {:?}", raw.value))
                    .hint("names as in capabilities(7), e.g. CAP_NET_BIND_SERVICE")
            })?;
            if !keep.contains(&cap) {
                keep.push(cap);
            }
        }
        Ok(Config {
            mode: self.mode.unwrap_or_default(),
            keep,
        })
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub mode: Requirement,
    pub keep: Vec<caps::Capability>,
}

impl crate::types::LayerSection for Section {
    type Config = Config;
    fn validate(&self, _dir: &std::path::Path) -> Result<Config, ProfileError> {
        self.clone().checked()
    }
}

// ---- plan: what the layer decides and prepares before the clone -------------------------

/// Prepared in the supervisor: the kept set as a bitmask and the last cap number.
#[derive(Debug, Clone, Copy)]
pub struct Prepared {
    pub keep_mask: u64,
    pub last_cap: u32,
}

/// `last_cap`: the highest capability number this kernel knows (from the host probe).
pub fn prepare(cfg: &Config, last_cap: u32) -> Prepared {
    Prepared {
        keep_mask: cfg.keep.iter().fold(0u64, |m, c| m | c.bitmask()),
        last_cap,
    }
}

// ---- apply: the child, between clone and execve (async-signal-safe) ---------------------

/// Child side (payload), before the uid switch: empty the bounding set except kept caps.
/// PR_CAPBSET_DROP needs CAP_SETPCAP, which the later steps remove.
pub fn child_apply_bounding(prep: &Prepared) -> Result<(), ChildError<'static>> {
    for cap in 0..=prep.last_cap.min(63) {
        if prep.keep_mask & (1u64 << cap) == 0 {
            sys::capbset_drop(cap).step(At::CapsBounding, "drop bounding set")?;
        }
    }
    sys::ambient_clear_all().step(At::CapsBounding, "clear ambient set")
}

/// Child side (payload), after the uid switch: permitted, effective and inheritable sets
/// become exactly the kept caps, which are raised as ambient to survive execve.
pub fn child_apply_sets(prep: &Prepared) -> Result<(), ChildError<'static>> {
    sys::capset_exact(prep.keep_mask).step(At::CapsSets, "set permitted/effective/inheritable")?;
    for cap in 0..64u32 {
        if prep.keep_mask & (1u64 << cap) != 0 {
            sys::ambient_raise(cap).step(At::CapsSets, "raise ambient")?;
        }
    }
    Ok(())
}

// ---- explain: plain words for `explain` and `doctor` ------------------------------------

pub fn explain(cfg: &Config) -> Vec<String> {
    let mut out = vec![if cfg.keep.is_empty() {
        "all capability sets empty (bounding, ambient, effective, permitted, inheritable)"
            .to_string()
    } else {
        let names: Vec<String> = cfg.keep.iter().map(|c| c.to_string()).collect();
        format!("all capability sets empty except {}", names.join(", "))
    }];
    out.push("stops: privileged operations inside the namespaces (mount, raw sockets, changing ids, CAP_DAC_READ_SEARCH tricks such as open_by_handle_at)".into());
    out.push("does not stop: anything an unprivileged process may do".into());
    out
}
