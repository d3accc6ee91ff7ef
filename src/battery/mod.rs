//! The harness of `lasagna test`: the probes of [`crate::probe`] run against the live
//! sandbox, in the full profile, with each layer left out in turn, and (`alone`) with each
//! layer on its own; a baseline with every layer off shows what the host itself stops.
//!
//! The harness plants canaries on the host (a secret file, per-run files and directories,
//! listeners, sleeping processes, a second sandbox) and decides from host-side evidence
//! whether a probe got through ([`session`] plants what every run shares, [`run`] what
//! one run needs, runs it and checks the host). Every run is a `lasagna run` child of this
//! process, so the harness may use threads; everything it planted is removed afterwards,
//! also on Ctrl-C. Nothing here prints: `cli::test` turns the [`Matrix`] into text or JSON.

mod run;
mod session;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::host::{Host, Needs as HostNeeds};
use crate::launch::{Decision, Layer};
use crate::plan::{self, Options, Plan};
use crate::probe::{self, Probe, PROBES};
use crate::profile::Profile;

use session::Session;

/// Version of `--json`'s document.
pub const TEST_REPORT_VERSION: u32 = 1;

/// Longest a single probe run may take before it is killed and reported as an error.
pub(crate) const RUN_DEADLINE: Duration = Duration::from_secs(90);

/// One column of the matrix.
#[derive(Debug, Clone, Serialize)]
pub struct Column {
    pub name: String,
    pub without: Vec<Layer>,
    /// Layers that degrade here because a layer they rely on is off.
    pub degraded: Vec<Layer>,
    #[serde(skip)]
    pub kind: ColumnKind,
    #[serde(skip)]
    pub plan: Option<Plan>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    Full,
    LeaveOut(Layer),
    Alone(Layer),
    Baseline,
}

/// What one run showed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cell {
    Stopped,
    Through,
    Error(String),
}

#[derive(Debug, Serialize)]
pub struct Row {
    pub probe: &'static str,
    pub category: &'static str,
    pub what: &'static str,
    pub expect: Vec<Layer>,
    pub cells: Vec<Cell>,
    /// Layers that stop the probe on their own (`--alone`), the host's own stop excluded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped_by: Option<Vec<Layer>>,
    /// The one layer whose removal lets the probe through, when there is exactly one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub only: Option<Layer>,
    /// Layers of which removing any one lets the probe through: they stop it only together.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub needs_together: Vec<Layer>,
    /// The host stops it with every layer off.
    pub host_stops: bool,
}

#[derive(Debug, Serialize)]
pub struct Matrix {
    pub version: u32,
    pub profile: String,
    pub columns: Vec<Column>,
    pub rows: Vec<Row>,
    pub wall_ms: f64,
}

/// What to run: the matrix's shape, from `lasagna test`'s arguments.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// Layers already off in every column.
    pub without: Vec<Layer>,
    /// Also each layer on its own.
    pub alone: bool,
    /// Only the full profile.
    pub quick: bool,
    /// Only the probes whose name contains one of these.
    pub probes: Vec<String>,
    /// Runs at once (default: twice the CPUs, at least 4).
    pub jobs: Option<usize>,
}

/// Why the battery did not produce a matrix.
#[derive(Debug)]
pub enum Failure {
    /// The settings select nothing or the profile cannot be tested.
    Usage(String),
    /// The full profile is refused on this host.
    Refused(Vec<String>),
    /// The canaries could not be planted.
    Io(String),
    /// A signal ended the runs; every run ended and the canaries are removed.
    Interrupted,
}

/// Run the battery: plant, run every cell, remove what was planted, and decide the rows.
pub fn matrix(profile: &Profile, settings: &Settings) -> Result<Matrix, Failure> {
    let started = Instant::now();
    refuse_collisions(profile)?;
    let host = Host::probe(HostNeeds {
        cgroups: profile.cgroups.is_some(),
    });
    let columns = columns(profile, &host, settings)?;
    let probes: Vec<&'static Probe> = PROBES
        .iter()
        .filter(|p| {
            settings.probes.is_empty()
                || settings.probes.iter().any(|n| p.name.contains(n.as_str()))
        })
        .collect();
    if probes.is_empty() {
        return Err(Failure::Usage(format!(
            "no probe matches {:?}; probes: {}",
            settings.probes,
            PROBES.iter().map(|p| p.name).collect::<Vec<_>>().join(", ")
        )));
    }
    let session = Arc::new(
        Session::plant(profile).map_err(|e| Failure::Io(format!("planting the canaries: {e}")))?,
    );
    session::install_interrupt(session.clone());
    // Most runs wait (for a sleeper, a sibling, the probe's short attempt): twice the CPUs.
    let jobs = settings.jobs.unwrap_or_else(|| {
        2 * std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .max(2)
    });
    let cells = run::run_all(&session, &columns, &probes, jobs);
    session.remove();
    if session.stopping.load(Ordering::SeqCst) {
        return Err(Failure::Interrupted);
    }
    let rows = rows(&columns, &probes, cells);
    Ok(Matrix {
        version: TEST_REPORT_VERSION,
        profile: profile.name.clone(),
        columns,
        rows,
        wall_ms: started.elapsed().as_secs_f64() * 1000.0,
    })
}

/// The probe is bound at [`probe::PROBE_PATH`]: a profile that mounts there cannot be tested.
fn refuse_collisions(profile: &Profile) -> Result<(), Failure> {
    if let Some(fs) = &profile.filesystem {
        for op in &fs.ops {
            let t = op.target().as_str();
            if t == probe::PROBE_DIR
                || t.starts_with(&format!("{}/", probe::PROBE_DIR))
                || probe::PROBE_DIR.starts_with(&format!("{t}/")) && t != "/"
            {
                return Err(Failure::Usage(format!(
                    "profile {} mounts {t}, where lasagna test puts its probe ({}); move that mount",
                    profile.name,
                    probe::PROBE_DIR
                )));
            }
        }
    }
    Ok(())
}

fn plan_for(profile: &Profile, host: &Host, without: &[Layer]) -> Plan {
    plan::plan(
        profile,
        host,
        &Options {
            without: without.to_vec(),
            timeout: None,
            degrade_dependents: true,
        },
    )
}

fn columns(profile: &Profile, host: &Host, args: &Settings) -> Result<Vec<Column>, Failure> {
    let full = plan_for(profile, host, &args.without);
    let refused: Vec<String> = full
        .refusals()
        .iter()
        .map(|l| format!("  {}: {}", l.layer, decision_reason(&l.decision)))
        .collect();
    if !refused.is_empty() {
        return Err(Failure::Refused(refused));
    }
    let applied: Vec<Layer> = Layer::ALL
        .into_iter()
        .filter(|l| full.applies(*l))
        .collect();
    let column = |name: String, kind: ColumnKind, without: Vec<Layer>| {
        let p = plan_for(profile, host, &without);
        let degraded = Layer::ALL
            .into_iter()
            .filter(|l| !without.contains(l))
            .filter(|l| matches!(p.get(*l).decision, Decision::Degrade(_)))
            .filter(|l| matches!(full.get(*l).decision, Decision::Apply))
            .collect();
        let plan = if p.refusals().is_empty() {
            Some(p)
        } else {
            None
        };
        Column {
            name,
            without,
            degraded,
            kind,
            plan,
        }
    };
    let mut out = vec![column(
        "full".into(),
        ColumnKind::Full,
        args.without.clone(),
    )];
    if args.quick {
        return Ok(out);
    }
    for l in &applied {
        let mut w = args.without.clone();
        w.push(*l);
        out.push(column(
            format!("-{}", l.name()),
            ColumnKind::LeaveOut(*l),
            w,
        ));
    }
    if args.alone {
        for l in &applied {
            let w = Layer::ALL.into_iter().filter(|x| x != l).collect();
            out.push(column(
                format!("{} alone", l.name()),
                ColumnKind::Alone(*l),
                w,
            ));
        }
    }
    out.push(column(
        "none".into(),
        ColumnKind::Baseline,
        Layer::ALL.to_vec(),
    ));
    Ok(out)
}

fn decision_reason(d: &Decision) -> String {
    match d {
        Decision::Apply => "applied".into(),
        Decision::Degrade(r) | Decision::Skip(r) | Decision::Refuse(r) => r.clone(),
    }
}

// ---- the matrix --------------------------------------------------------------------------

fn rows(columns: &[Column], probes: &[&'static Probe], cells: Vec<Vec<Cell>>) -> Vec<Row> {
    let alone_run = columns
        .iter()
        .any(|c| matches!(c.kind, ColumnKind::Alone(_)));
    probes
        .iter()
        .zip(cells)
        .map(|(p, cells)| {
            let host_stops = columns
                .iter()
                .zip(&cells)
                .any(|(c, cell)| c.kind == ColumnKind::Baseline && *cell == Cell::Stopped);
            let through_without: Vec<Layer> = columns
                .iter()
                .zip(&cells)
                .filter_map(|(c, cell)| match (c.kind, cell) {
                    (ColumnKind::LeaveOut(l), Cell::Through) => Some(l),
                    _ => None,
                })
                .collect();
            let only = (cells[0] == Cell::Stopped && through_without.len() == 1)
                .then(|| through_without[0]);
            let needs_together = if cells[0] == Cell::Stopped && through_without.len() > 1 {
                through_without.clone()
            } else {
                Vec::new()
            };
            let stopped_by = alone_run.then(|| {
                columns
                    .iter()
                    .zip(&cells)
                    .filter_map(|(c, cell)| match (c.kind, cell) {
                        (ColumnKind::Alone(l), Cell::Stopped) if !host_stops => Some(l),
                        _ => None,
                    })
                    .collect()
            });
            Row {
                probe: p.name,
                category: p.category,
                what: p.what,
                expect: p.expect.to_vec(),
                cells,
                stopped_by,
                only,
                needs_together,
                host_stops,
            }
        })
        .collect()
}
