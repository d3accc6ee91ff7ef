//! Which limit ended the run, or was met on the way: the verdict a judge or a build farm
//! reads instead of guessing from an exit status. Each limit is told by what the kernel
//! says, not by a margin on a measurement: RLIMIT_CPU's SIGXCPU at the soft limit (and
//! SIGKILL at the hard limit, one second later, for a payload that catches SIGXCPU),
//! SIGXFSZ for RLIMIT_FSIZE, the cgroup's OOM-kill and refused-fork counters, and the
//! supervisor's own wall-clock timer.

use std::time::Duration;

use serde::Serialize;

use crate::launch::Layer;
use crate::layers::cgroups::human;
use crate::layers::rlimits::Limit;
use crate::sandbox::init::Ended;

/// One limit the run met.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LimitHit {
    #[serde(flatten)]
    pub kind: LimitKind,
    /// The layer that holds this limit.
    pub layer: Layer,
    /// The limit ended the run (a kill); otherwise the payload met it and went on.
    pub ended_run: bool,
    /// One line for people: `killed: CPU time limit 2 s reached (...)`.
    pub message: String,
    /// Left to the report and `-v`, not printed on stderr: a bound that may have been met
    /// by a run that shows no sign of it (see [`address_space`]).
    #[serde(skip)]
    pub quiet: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum LimitKind {
    /// RLIMIT_CPU: CPU time of one process. `used_ms` is the payload's process (with the
    /// children it reaped), as `wait4` accounted it.
    CpuTime {
        max_ms: u64,
        used_ms: u64,
        signal: &'static str,
    },
    /// The run's wall-clock timeout.
    WallTime { max_ms: u64 },
    /// The cgroup's memory limit: the kernel OOM-killed `kills` processes.
    Memory { max_bytes: Option<u64>, kills: u64 },
    /// RLIMIT_FSIZE: a write beyond it raised SIGXFSZ.
    FileSize { max_bytes: u64 },
    /// The cgroup's pids limit: `refused` forks failed with EAGAIN.
    Pids { max: Option<u64>, refused: u64 },
    /// RLIMIT_AS was the memory bound and the payload ended with an error. A mapping
    /// refused for it fails with ENOMEM inside the program, which the kernel counts
    /// nowhere, so whether the bound ended the run is the program's own message to tell;
    /// `peak_rss_bytes` is its largest resident set (`wait4`), the one memory figure that
    /// outlives it. `stands_in_for` is the cgroup memory.max the rlimit replaced.
    AddressSpace {
        max_bytes: u64,
        peak_rss_bytes: Option<u64>,
        stands_in_for: Option<u64>,
    },
}

/// RLIMIT_AS as the run's memory bound: the profile's own `rlimits: as`, or the cgroups
/// layer's stand-in for a memory.max it could not give (then `fix` is how to get the cgroup).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AddressSpaceBound {
    pub max: u64,
    pub stands_in_for: Option<u64>,
    pub fix: Option<String>,
}

impl AddressSpaceBound {
    /// From the plan: the payload's RLIMIT_AS, and whether it stands in for the cgroup's
    /// memory.max (the cgroups layer degraded and its cgroup, if any, writes no memory.max).
    pub fn of(plan: &crate::plan::Plan) -> Option<AddressSpaceBound> {
        let max = plan
            .rlimits
            .iter()
            .find(|(l, _)| *l == Limit::As)
            .and_then(|(_, v)| *v)?;
        let cg = plan.get(Layer::Cgroups);
        let asked = plan
            .config
            .cgroups
            .as_ref()
            .and_then(|c| c.limits.memory_max);
        let written = plan.cgroup.as_ref().and_then(|c| c.limits.memory_max);
        // The profile's own `rlimits: as`, when it is the tighter, is the bound.
        let own = plan
            .config
            .rlimits
            .as_ref()
            .and_then(|r| r.limits.iter().find(|(l, _)| *l == Limit::As))
            .and_then(|(_, v)| *v);
        let (stands_in_for, fix) = match (&cg.decision, asked, written) {
            (crate::launch::Decision::Degrade(why), Some(m), None) if own.is_none_or(|o| o > m) => {
                (Some(m), crate::text::split_fix(why).1)
            }
            _ => (None, None),
        };
        Some(AddressSpaceBound {
            max,
            stands_in_for,
            fix,
        })
    }
}

/// What the verdict is decided from, gathered by the supervisor after the run.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub ended: Option<Ended>,
    /// CPU time of the payload's process (microseconds), from init's `wait4`.
    pub payload_cpu_usec: Option<u64>,
    pub timed_out: bool,
    pub timeout: Option<Duration>,
    /// The payload's rlimits, and whether the rlimits layer set the CPU limit (rather than
    /// the cgroups layer's stand-in for a CPU quota it could not give).
    pub rlimits: Vec<(Limit, Option<u64>)>,
    pub cpu_from_rlimits_layer: bool,
    pub oom_kills: Option<u64>,
    pub memory_max: Option<u64>,
    pub fork_refusals: Option<u64>,
    pub pids_max: Option<u64>,
    /// The payload's largest resident set (bytes), from init's `wait4`.
    pub payload_peak_rss: Option<u64>,
    pub address_space: Option<AddressSpaceBound>,
}

fn rlimit(facts: &Facts, which: Limit) -> Option<u64> {
    facts
        .rlimits
        .iter()
        .find(|(l, _)| *l == which)
        .and_then(|(_, v)| *v)
}

fn seconds(usec: u64) -> String {
    format!("{:.2} s", usec as f64 / 1e6)
}

/// Every limit the run met; the one that ended it, if any, first.
pub fn decide(facts: &Facts) -> Vec<LimitHit> {
    let mut hits = Vec::new();
    let signal = match facts.ended {
        Some(Ended::Signaled(s)) => Some(s),
        _ => None,
    };
    let kill = Some(libc::SIGKILL);
    let used = facts.payload_cpu_usec.unwrap_or(0);
    if facts.timed_out {
        let max = facts.timeout.unwrap_or_default();
        hits.push(LimitHit {
            kind: LimitKind::WallTime {
                max_ms: max.as_millis() as u64,
            },
            layer: Layer::Process,
            ended_run: true,
            quiet: false,
            message: format!(
                "killed: timed out after {} of wall-clock time (process: timeout; the whole sandbox was killed)",
                crate::text::duration(max)
            ),
        });
    }
    let oom = facts.oom_kills.unwrap_or(0);
    let memory_ended = oom > 0 && signal == kill && !facts.timed_out;
    if memory_ended {
        hits.push(memory(facts, oom, true));
    }
    if let Some(max) = rlimit(facts, Limit::Cpu).filter(|_| !facts.timed_out && !memory_ended) {
        let max_usec = max.saturating_mul(1_000_000);
        // SIGXCPU comes at the soft limit; SIGKILL at the hard one (soft + 1 s) only when
        // the payload outlived the first, and only after that much CPU time.
        let by = match signal {
            Some(libc::SIGXCPU) => Some(("SIGXCPU", "the kernel sent SIGXCPU at that limit")),
            Some(libc::SIGKILL) if used >= max_usec => Some((
                "SIGKILL",
                "it caught or ignored SIGXCPU, so the kernel's SIGKILL at the hard limit a second later ended it",
            )),
            _ => None,
        };
        if let Some((name, how)) = by {
            let layer = if facts.cpu_from_rlimits_layer {
                Layer::Rlimits
            } else {
                Layer::Cgroups
            };
            let source = if facts.cpu_from_rlimits_layer {
                "rlimits: cpu"
            } else {
                "cgroups: RLIMIT_CPU standing in for the CPU quota"
            };
            hits.push(LimitHit {
                kind: LimitKind::CpuTime {
                    max_ms: max * 1000,
                    used_ms: used / 1000,
                    signal: name,
                },
                layer,
                ended_run: true,
                quiet: false,
                message: format!(
                    "killed: CPU time limit {max} s reached ({source}; {how}; the payload's CPU time as accounted at its end: {})",
                    seconds(used)
                ),
            });
        }
    }
    if let (Some(libc::SIGXFSZ), Some(max)) = (signal, rlimit(facts, Limit::Fsize)) {
        hits.push(LimitHit {
            kind: LimitKind::FileSize { max_bytes: max },
            layer: Layer::Rlimits,
            ended_run: true,
            quiet: false,
            message: format!(
                "killed: file size limit {} reached (rlimits: fsize; SIGXFSZ on a write beyond it)",
                human(max)
            ),
        });
    }
    if oom > 0 && !memory_ended {
        hits.push(memory(facts, oom, false));
    }
    if let Some(refused) = facts.fork_refusals.filter(|n| *n > 0) {
        let max = facts
            .pids_max
            .map_or_else(|| "reached".to_string(), |m| format!("{m} reached"));
        hits.push(LimitHit {
            kind: LimitKind::Pids {
                max: facts.pids_max,
                refused,
            },
            layer: Layer::Cgroups,
            ended_run: false,
            quiet: false,
            message: format!(
                "process limit {max}: {refused} fork{} refused (cgroups: pids.max)",
                if refused == 1 { "" } else { "s" }
            ),
        });
    }
    if let Some(hit) = address_space(facts, &hits) {
        hits.push(hit);
    }
    hits
}

/// The payload ended with an error while RLIMIT_AS bounded its memory and no other limit
/// explains the end: say what the bound was, the payload's resident peak, and how to get a
/// cgroup, whose OOM kill the verdict would name.
fn address_space(facts: &Facts, hits: &[LimitHit]) -> Option<LimitHit> {
    let bound = facts.address_space.as_ref()?;
    let how = match facts.ended? {
        Ended::Exited(0) => return None,
        Ended::Exited(c) => format!("exited with status {c}"),
        Ended::Signaled(s) => format!("was killed by {}", crate::text::signal_name(s)),
    };
    if hits.iter().any(|h| h.ended_run) {
        return None;
    }
    // Printed on stderr only where the run shows a sign of it: a resident peak of at least
    // a sixteenth of the bound (a program's baseline is far below it; one that grows to the
    // bound passes it on the way; one whose first large request is refused has at least
    // loaded what it runs), or the signals failed allocations end in. Otherwise every
    // failing command under a generous stand-in (strict's 4 GiB) would carry the line; the
    // report and `-v` always have it.
    let noticed = facts
        .payload_peak_rss
        .is_some_and(|p| p.saturating_mul(16) >= bound.max)
        || matches!(
            facts.ended,
            Some(Ended::Signaled(
                libc::SIGABRT | libc::SIGSEGV | libc::SIGBUS
            ))
        );
    let source = match bound.stands_in_for {
        Some(m) => format!(
            "cgroups: RLIMIT_AS standing in for memory.max {}, which this host could not give",
            human(m)
        ),
        None => "rlimits: as".to_string(),
    };
    let peak = facts.payload_peak_rss.map_or_else(String::new, |p| {
        format!(" with a resident peak of {}", human(p))
    });
    let fix = match (&bound.fix, bound.stands_in_for) {
        (Some(f), Some(_)) => format!("; for a cgroup, whose kill the verdict names: {f}"),
        (None, Some(_)) => {
            "; a delegated cgroup would name the kill (see lasagna doctor)".to_string()
        }
        (_, None) => "; the cgroups layer's memory.max would name the kill".to_string(),
    };
    Some(LimitHit {
        kind: LimitKind::AddressSpace {
            max_bytes: bound.max,
            peak_rss_bytes: facts.payload_peak_rss,
            stands_in_for: bound.stands_in_for,
        },
        layer: if bound.stands_in_for.is_some() {
            Layer::Cgroups
        } else {
            Layer::Rlimits
        },
        ended_run: false,
        quiet: !noticed,
        message: format!(
            "memory: the bound was {} of address space per process ({source}); the payload {how}{peak}: an allocation refused at that bound fails inside the program, which reports it itself (MemoryError, malloc failed){fix}",
            human(bound.max)
        ),
    })
}

fn memory(facts: &Facts, kills: u64, ended_run: bool) -> LimitHit {
    let max = facts.memory_max.map_or_else(
        || "memory limit".to_string(),
        |m| format!("memory limit {}", human(m)),
    );
    let message = if ended_run {
        format!("killed: {max} reached (cgroups: memory.max; the kernel OOM-killed the payload)")
    } else {
        format!(
            "{max} reached: the kernel OOM-killed {kills} process{} of the sandbox (cgroups: memory.max)",
            if kills == 1 { "" } else { "es" }
        )
    };
    LimitHit {
        kind: LimitKind::Memory {
            max_bytes: facts.memory_max,
            kills,
        },
        layer: Layer::Cgroups,
        ended_run,
        quiet: false,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpu(seconds: u64) -> Facts {
        Facts {
            rlimits: vec![(Limit::Cpu, Some(seconds))],
            cpu_from_rlimits_layer: true,
            ..Facts::default()
        }
    }

    #[test]
    fn sigxcpu_is_the_cpu_limit_whatever_the_measured_time() {
        let f = Facts {
            ended: Some(Ended::Signaled(libc::SIGXCPU)),
            payload_cpu_usec: Some(1_990_000),
            ..cpu(2)
        };
        let hits = decide(&f);
        assert_eq!(hits.len(), 1);
        assert_eq!(
            hits[0].kind,
            LimitKind::CpuTime {
                max_ms: 2000,
                used_ms: 1990,
                signal: "SIGXCPU"
            }
        );
        assert!(hits[0].ended_run);
        assert_eq!(
            hits[0].message,
            "killed: CPU time limit 2 s reached (rlimits: cpu; the kernel sent SIGXCPU at that limit; the payload's CPU time as accounted at its end: 1.99 s)"
        );
    }

    #[test]
    fn sigkill_is_the_cpu_limit_only_past_it() {
        let past = Facts {
            ended: Some(Ended::Signaled(libc::SIGKILL)),
            payload_cpu_usec: Some(3_000_000),
            ..cpu(2)
        };
        assert!(matches!(
            decide(&past)[0].kind,
            LimitKind::CpuTime {
                signal: "SIGKILL",
                ..
            }
        ));
        // Killed by someone else after half a second of CPU: no limit.
        let other = Facts {
            payload_cpu_usec: Some(500_000),
            ..past
        };
        assert!(decide(&other).is_empty());
    }

    #[test]
    fn the_timeout_and_memory_come_before_cpu() {
        let f = Facts {
            ended: Some(Ended::Signaled(libc::SIGKILL)),
            payload_cpu_usec: Some(9_000_000),
            timed_out: true,
            timeout: Some(Duration::from_secs(5)),
            ..cpu(2)
        };
        let hits = decide(&f);
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].kind, LimitKind::WallTime { max_ms: 5000 });
        let f = Facts {
            ended: Some(Ended::Signaled(libc::SIGKILL)),
            oom_kills: Some(1),
            memory_max: Some(64 << 20),
            ..Facts::default()
        };
        let hits = decide(&f);
        assert_eq!(
            hits[0].message,
            "killed: memory limit 64 MiB reached (cgroups: memory.max; the kernel OOM-killed the payload)"
        );
    }

    #[test]
    fn limits_met_without_ending_the_run_are_listed_after() {
        let f = Facts {
            ended: Some(Ended::Exited(1)),
            fork_refusals: Some(37),
            pids_max: Some(64),
            oom_kills: Some(2),
            ..Facts::default()
        };
        let hits = decide(&f);
        assert_eq!(hits.len(), 2);
        assert!(hits.iter().all(|h| !h.ended_run));
        assert_eq!(
            hits[1].message,
            "process limit 64 reached: 37 forks refused (cgroups: pids.max)"
        );
        assert!(hits[0].message.contains("OOM-killed 2 processes"));
    }

    #[test]
    fn sigxfsz_is_the_file_size_limit() {
        let f = Facts {
            ended: Some(Ended::Signaled(libc::SIGXFSZ)),
            rlimits: vec![(Limit::Fsize, Some(1 << 20))],
            ..Facts::default()
        };
        let hits = decide(&f);
        assert_eq!(hits[0].kind, LimitKind::FileSize { max_bytes: 1 << 20 });
        assert!(hits[0].message.contains("file size limit 1 MiB"));
        // Without the limit, SIGXFSZ is only a signal.
        assert!(decide(&Facts {
            rlimits: Vec::new(),
            ..f
        })
        .is_empty());
    }

    #[test]
    fn sigkill_at_exactly_the_cpu_limit_is_the_cpu_limit() {
        let at = Facts {
            ended: Some(Ended::Signaled(libc::SIGKILL)),
            payload_cpu_usec: Some(2_000_000),
            ..cpu(2)
        };
        let hits = decide(&at);
        assert_eq!(hits.len(), 1, "{hits:?}");
        assert!(matches!(
            hits[0].kind,
            LimitKind::CpuTime {
                signal: "SIGKILL",
                used_ms: 2000,
                ..
            }
        ));
        // One microsecond short of the limit: someone else's SIGKILL.
        let short = Facts {
            payload_cpu_usec: Some(1_999_999),
            ..at
        };
        assert!(decide(&short).is_empty());
    }

    #[test]
    fn a_cpu_limit_the_cgroups_layer_set_is_reported_as_the_cgroups_layer() {
        let f = Facts {
            ended: Some(Ended::Signaled(libc::SIGXCPU)),
            payload_cpu_usec: Some(2_000_000),
            cpu_from_rlimits_layer: false,
            ..cpu(2)
        };
        let hits = decide(&f);
        assert_eq!(hits[0].layer, Layer::Cgroups);
        assert!(
            hits[0]
                .message
                .contains("cgroups: RLIMIT_CPU standing in for the CPU quota"),
            "{}",
            hits[0].message
        );
        let own = Facts {
            cpu_from_rlimits_layer: true,
            ..f
        };
        assert_eq!(decide(&own)[0].layer, Layer::Rlimits);
    }

    #[test]
    fn the_wall_clock_timeout_is_reported_with_its_length() {
        let f = Facts {
            ended: Some(Ended::Signaled(libc::SIGKILL)),
            timed_out: true,
            timeout: Some(Duration::from_millis(1500)),
            ..Facts::default()
        };
        let hits = decide(&f);
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].kind, LimitKind::WallTime { max_ms: 1500 });
        assert_eq!(hits[0].layer, Layer::Process);
        assert!(hits[0].ended_run);
        assert_eq!(
            hits[0].message,
            "killed: timed out after 1.5 s of wall-clock time (process: timeout; the whole sandbox was killed)"
        );
    }

    #[test]
    fn an_oom_kill_ends_the_run_only_when_the_payload_died_of_sigkill_before_the_timeout() {
        let oom = Facts {
            ended: Some(Ended::Signaled(libc::SIGKILL)),
            oom_kills: Some(1),
            payload_cpu_usec: Some(9_000_000),
            ..cpu(2)
        };
        // The OOM kill ended the run: it is the memory limit, not the CPU limit, even past
        // the CPU limit.
        let hits = decide(&oom);
        assert_eq!(hits.len(), 1, "{hits:?}");
        assert_eq!(
            hits[0].kind,
            LimitKind::Memory {
                max_bytes: None,
                kills: 1
            }
        );
        assert!(hits[0].ended_run);
        assert_eq!(hits[0].layer, Layer::Cgroups);
        assert_eq!(
            hits[0].message,
            "killed: memory limit reached (cgroups: memory.max; the kernel OOM-killed the payload)"
        );
        // Timed out: the timeout ended it; the OOM kill is listed after, as met.
        let timed_out = Facts {
            timed_out: true,
            timeout: Some(Duration::from_secs(5)),
            ..oom.clone()
        };
        let hits = decide(&timed_out);
        assert_eq!(hits.len(), 2, "{hits:?}");
        assert_eq!(hits[0].kind, LimitKind::WallTime { max_ms: 5000 });
        assert!(!hits[1].ended_run);
        assert_eq!(
            hits[1].message,
            "memory limit reached: the kernel OOM-killed 1 process of the sandbox (cgroups: memory.max)"
        );
        // Another signal ended it: the OOM kill (of another process) is only met.
        let other = Facts {
            ended: Some(Ended::Signaled(libc::SIGTERM)),
            ..oom.clone()
        };
        let hits = decide(&other);
        assert_eq!(hits.len(), 1, "{hits:?}");
        assert!(!hits[0].ended_run);
        // No OOM kill: the SIGKILL past the CPU limit is the CPU limit.
        let no_oom = Facts {
            oom_kills: Some(0),
            ..oom
        };
        assert!(matches!(
            decide(&no_oom)[0].kind,
            LimitKind::CpuTime {
                signal: "SIGKILL",
                ..
            }
        ));
    }

    #[test]
    fn no_refused_fork_is_no_pids_hit_and_one_is_singular() {
        let none = Facts {
            ended: Some(Ended::Exited(0)),
            fork_refusals: Some(0),
            pids_max: Some(64),
            ..Facts::default()
        };
        assert!(decide(&none).is_empty());
        let one = Facts {
            fork_refusals: Some(1),
            pids_max: None,
            ..none
        };
        let hits = decide(&one);
        assert_eq!(
            hits[0].kind,
            LimitKind::Pids {
                max: None,
                refused: 1
            }
        );
        assert_eq!(hits[0].layer, Layer::Cgroups);
        assert_eq!(
            hits[0].message,
            "process limit reached: 1 fork refused (cgroups: pids.max)"
        );
    }

    fn bounded(ended: Ended, peak: u64) -> Facts {
        Facts {
            ended: Some(ended),
            payload_peak_rss: Some(peak),
            address_space: Some(AddressSpaceBound {
                max: 64 << 20,
                stands_in_for: Some(64 << 20),
                fix: Some("as root: mkdir -p /x".into()),
            }),
            ..Facts::default()
        }
    }

    #[test]
    fn an_address_space_bound_is_named_when_the_payload_fails() {
        let hits = decide(&bounded(Ended::Exited(1), 8 << 20));
        assert_eq!(hits.len(), 1);
        assert_eq!(
            hits[0].kind,
            LimitKind::AddressSpace {
                max_bytes: 64 << 20,
                peak_rss_bytes: Some(8 << 20),
                stands_in_for: Some(64 << 20),
            }
        );
        assert!(!hits[0].ended_run && !hits[0].quiet);
        assert_eq!(hits[0].layer, Layer::Cgroups);
        assert!(
            hits[0]
                .message
                .ends_with("; for a cgroup, whose kill the verdict names: as root: mkdir -p /x"),
            "{}",
            hits[0].message
        );
        // A success says nothing; neither does a failure another limit explains.
        assert!(decide(&bounded(Ended::Exited(0), 60 << 20)).is_empty());
        let timed_out = Facts {
            timed_out: true,
            timeout: Some(Duration::from_secs(1)),
            ..bounded(Ended::Signaled(libc::SIGKILL), 60 << 20)
        };
        let hits = decide(&timed_out);
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].kind, LimitKind::WallTime { max_ms: 1000 });
    }

    #[test]
    fn an_address_space_bound_without_a_sign_stays_in_the_report() {
        // A resident peak far below the bound: the report has it, stderr does not.
        let small = decide(&bounded(Ended::Exited(1), 1 << 20));
        assert!(small[0].quiet, "{small:?}");
        // A sixteenth of the bound is a sign; so is SIGABRT, whatever the peak.
        assert!(!decide(&bounded(Ended::Exited(1), 4 << 20))[0].quiet);
        let abort = decide(&bounded(Ended::Signaled(libc::SIGABRT), 1 << 20));
        assert!(!abort[0].quiet);
        assert!(abort[0]
            .message
            .contains("the payload was killed by SIGABRT"));
    }
}
