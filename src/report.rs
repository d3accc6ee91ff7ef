//! The run report: per layer what was asked, decided and done, plus what the kernel showed.
//! A versioned JSON form (`--report FILE`) and a human table (`-v`, on stderr).

use serde::Serialize;

use crate::launch::{Decision, Layer};
use crate::observe::Observation;
use crate::plan::Plan;
use crate::profile::Requirement;
use crate::sandbox::init::Ended;
use crate::supervisor::Outcome;

pub const REPORT_VERSION: u32 = 1;

/// Where the JSON report goes, opened before anything is created: a run whose report
/// cannot be written is refused before the payload starts, not after it ran.
#[derive(Debug)]
pub struct Sink {
    fd: std::os::fd::OwnedFd,
    /// A file lasagna opened (truncated and written from the start), or a descriptor the
    /// caller handed over (written as a stream).
    file: bool,
    name: String,
}

impl Sink {
    /// `--report FILE`: the directory is walked without following any link that is not
    /// root's own ([`crate::hostfs`]); the file is opened without following a link there,
    /// created 0600, and must be a regular file of the caller's with no other hard link.
    /// A payload that may write that directory cannot turn the report into a write to
    /// another file.
    pub fn open_path(path: &std::path::Path) -> Result<Sink, String> {
        use nix::fcntl::{openat, OFlag};
        use nix::sys::stat::Mode;
        use std::os::fd::AsFd;
        let shown = crate::text::escape(&path.to_string_lossy()).into_owned();
        let err = |why: String| format!("cannot open the report file {shown}: {why}");
        let absolute = if path.is_absolute() {
            path.to_path_buf()
        } else {
            std::env::current_dir()
                .map_err(|e| err(e.to_string()))?
                .join(path)
        };
        let (parent, name) =
            crate::hostfs::split_last(&absolute).ok_or_else(|| err("no file name".into()))?;
        let dir = crate::hostfs::walk(&parent, crate::hostfs::Links::Trusted, true)
            .map_err(|e| err(e.to_string()))?;
        if dir.kind() != crate::hostfs::Kind::Dir {
            return Err(err(format!("{} is not a directory", parent.display())));
        }
        let fd = openat(
            dir.fd.as_fd(),
            name.as_os_str(),
            OFlag::O_WRONLY
                | OFlag::O_CREAT
                | OFlag::O_NOFOLLOW
                | OFlag::O_CLOEXEC
                | OFlag::O_NOCTTY
                | OFlag::O_NONBLOCK,
            Mode::from_bits_truncate(0o600),
        )
        .map_err(|e| match e {
            nix::errno::Errno::ELOOP => {
                err("it is a symlink; lasagna does not write through one".into())
            }
            e => err(e.desc().to_string()),
        })?;
        let meta = crate::hostfs::Meta::of(
            &nix::sys::stat::fstat(&fd).map_err(|e| err(e.desc().to_string()))?,
        );
        let caller = nix::unistd::geteuid().as_raw();
        if meta.kind() != crate::hostfs::Kind::File {
            return Err(err(format!("it is a {}, not a regular file", meta.kind())));
        }
        if meta.uid != caller {
            return Err(err(format!(
                "it belongs to uid {}, not to you (uid {caller}); remove it or write elsewhere",
                meta.uid
            )));
        }
        if meta.nlink > 1 {
            return Err(err(
                "it has other hard links; remove it or write elsewhere".into()
            ));
        }
        Ok(Sink {
            fd,
            file: true,
            name: shown,
        })
    }

    /// `--report-fd N`: a descriptor the caller opened for writing (bubblewrap's
    /// `--json-status-fd`). lasagna keeps a close-on-exec copy; the sandbox gets neither.
    pub fn from_fd(n: i32) -> Result<Sink, String> {
        let (fd, mode) = crate::sys::dup_inherited(n)
            .map_err(|e| format!("--report-fd {n}: {} ({e:?})", e.desc()))?;
        if mode != libc::O_WRONLY && mode != libc::O_RDWR {
            return Err(format!(
                "--report-fd {n}: the descriptor is not open for writing"
            ));
        }
        Ok(Sink {
            fd,
            file: false,
            name: format!("fd {n}"),
        })
    }

    /// Write the report (and a newline) through the descriptor.
    pub fn write(&self, report: &Report) -> Result<(), String> {
        use std::io::{Seek, Write};
        use std::os::fd::AsFd;
        let fail = |e: std::io::Error| format!("cannot write the report to {}: {e}", self.name);
        let fd = self.fd.as_fd().try_clone_to_owned().map_err(fail)?;
        let mut f = std::fs::File::from(fd);
        if self.file {
            f.set_len(0).map_err(fail)?;
            f.seek(std::io::SeekFrom::Start(0)).map_err(fail)?;
        }
        f.write_all((report.to_json() + "\n").as_bytes())
            .map_err(fail)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LayerOutcome {
    Applied,
    Degraded,
    Skipped,
    Refused,
    Failed,
    /// Planned, but the run stopped before this layer's step.
    NotReached,
}

#[derive(Debug, Clone, Serialize)]
pub struct LayerReport {
    pub layer: Layer,
    pub requested: Requirement,
    pub decision: &'static str,
    pub outcome: LayerOutcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// What the kernel showed for this layer after it was applied (Landlock: the ruleset
    /// status `landlock_restrict_self` returned), beside what the plan expected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Ending {
    Exited { code: i32 },
    Signaled { signal: i32, name: String },
    TimedOut,
    SetupFailed,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub version: u32,
    pub profile: String,
    /// The user's or the system's files that change what the profile's shipped name means
    /// (`.local.yaml` overlays, a profile taking a shipped name).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub overriding_files: Vec<String>,
    pub command: Vec<String>,
    pub layers: Vec<LayerReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ending: Option<Ending>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wall_ms: Option<f64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub signals_forwarded: Vec<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed: Option<Observation>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<crate::layers::cgroups::Usage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oom: Option<String>,
    /// The limit that ended the run, or else the one the payload met (forks refused, a
    /// process of the sandbox OOM-killed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<crate::supervisor::verdict::LimitHit>,
    /// Further limits the payload met.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub limits_met: Vec<crate::supervisor::verdict::LimitHit>,
    /// `--explain-denials`: what the payload was refused, by layer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub denials: Option<Vec<crate::supervisor::denials::Denial>>,
    /// `--explain-denials`: what could not be listed, and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub denial_notes: Vec<String>,
    /// CPU time of the payload's process and the children it reaped (`wait4`), in
    /// milliseconds; the whole sandbox's is `usage.cpu_time_usec` when there is a cgroup.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload_cpu_ms: Option<f64>,
    /// The largest resident set of the same (`wait4`), in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload_peak_rss_bytes: Option<u64>,
    /// The launch step a setup failure happened at.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_step: Option<FailedStep>,
    /// What went wrong around the payload without changing its outcome.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// `net: proxy`: every connection the sandbox made through the proxy, in the order
    /// they ended.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub connections: Vec<crate::layers::network::proxy::Connection>,
    /// Connections beyond the log's size, counted only.
    #[serde(skip_serializing_if = "is_zero")]
    pub connections_unlogged: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Where in the launch order a setup failure happened (ARCHITECTURE.md's step numbers).
#[derive(Debug, Clone, Serialize)]
pub struct FailedStep {
    pub number: &'static str,
    pub process: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layer: Option<Layer>,
    pub what: &'static str,
}

impl FailedStep {
    fn of(at: crate::launch::At) -> FailedStep {
        let s = at.step();
        FailedStep {
            number: s.number,
            process: s.process.name(),
            layer: s.layer,
            what: s.what,
        }
    }
}

fn decision_name(d: &Decision) -> (&'static str, Option<String>) {
    match d {
        Decision::Apply => ("apply", None),
        Decision::Degrade(r) => ("degrade", Some(r.clone())),
        Decision::Skip(r) => ("skip", Some(r.clone())),
        Decision::Refuse(r) => ("refuse", Some(r.clone())),
    }
}

/// The report of a plan alone (dry run, refusal).
pub fn from_plan(plan: &Plan, command: &[String]) -> Report {
    let layers = plan
        .layers
        .iter()
        .map(|l| {
            let (decision, reason) = decision_name(&l.decision);
            let outcome = match l.decision {
                Decision::Apply => LayerOutcome::Applied,
                Decision::Degrade(_) => LayerOutcome::Degraded,
                Decision::Skip(_) => LayerOutcome::Skipped,
                Decision::Refuse(_) => LayerOutcome::Refused,
            };
            LayerReport {
                layer: l.layer,
                requested: l.requested,
                decision,
                outcome,
                reason,
                notes: l.notes.clone(),
                observed: None,
            }
        })
        .collect();
    Report {
        version: REPORT_VERSION,
        profile: plan.profile.clone(),
        overriding_files: plan.overriding_files.clone(),
        command: command.to_vec(),
        layers,
        ending: None,
        failure: None,
        exit_code: None,
        wall_ms: None,
        signals_forwarded: Vec::new(),
        observed: None,
        usage: None,
        oom: None,
        limit: None,
        limits_met: Vec::new(),
        denials: None,
        denial_notes: Vec::new(),
        payload_cpu_ms: None,
        payload_peak_rss_bytes: None,
        failed_step: None,
        warnings: plan.warnings.clone(),
        connections: Vec::new(),
        connections_unlogged: 0,
    }
}

/// The report of a run.
pub fn from_run(plan: &Plan, command: &[String], outcome: &Outcome) -> Report {
    let mut report = from_plan(plan, command);
    if let Some(f) = &outcome.failure {
        // By launch order: a layer whose steps all ran before the failing one was applied;
        // the one it belongs to failed; any with a step after it was not reached.
        for l in &mut report.layers {
            if !matches!(l.outcome, LayerOutcome::Applied | LayerOutcome::Degraded) {
                continue;
            }
            match crate::launch::reached(l.layer, f.at) {
                crate::launch::Reached::Done => {}
                crate::launch::Reached::Failed => {
                    l.outcome = LayerOutcome::Failed;
                    l.reason = Some(f.to_string());
                }
                crate::launch::Reached::NotReached => l.outcome = LayerOutcome::NotReached,
            }
            if l.outcome != LayerOutcome::Applied && l.outcome != LayerOutcome::Degraded {
                // What the layer would have enforced is not what the sandbox got.
                l.notes.retain(|n| !n.starts_with("planned: "));
            }
        }
        report.failure = Some(f.to_string());
        report.failed_step = Some(FailedStep::of(f.at));
    }
    if let (Some(seen), Some(l)) = (
        &outcome.landlock,
        report
            .layers
            .iter_mut()
            .find(|l| l.layer == Layer::Landlock),
    ) {
        let how = match seen.enforcement {
            crate::layers::landlock::Enforcement::Full => "fully enforced",
            crate::layers::landlock::Enforcement::Partial => "partially enforced",
            crate::layers::landlock::Enforcement::None => "NOT enforced",
        };
        let mut text = format!(
            "kernel: {how} (ABI {}; {} path rules, {} port rules",
            seen.abi, seen.path_rules, seen.port_rules
        );
        if seen.skipped_missing > 0 {
            text.push_str(&format!(", {} optional paths absent", seen.skipped_missing));
        }
        text.push(')');
        l.observed = Some(text);
    }
    report.warnings.extend(outcome.warnings.iter().cloned());
    if let (Some(id), Some(l)) = (
        outcome.host_ids,
        report
            .layers
            .iter_mut()
            .find(|l| l.layer == Layer::Namespaces),
    ) {
        l.observed = Some(format!("host uid and gid {id}, picked for this run"));
    }
    report.ending = Some(if outcome.timed_out {
        Ending::TimedOut
    } else {
        match (outcome.ended, &outcome.failure) {
            (_, Some(f)) if f.at != crate::launch::At::Exec => Ending::SetupFailed,
            (Some(Ended::Exited(code)), _) => Ending::Exited { code },
            (Some(Ended::Signaled(signal)), _) => Ending::Signaled {
                signal,
                name: crate::text::signal_name(signal),
            },
            (None, _) => Ending::SetupFailed,
        }
    });
    report.exit_code = Some(outcome.exit_code);
    report.wall_ms = Some(outcome.wall.as_secs_f64() * 1000.0);
    report.signals_forwarded = outcome.signals_forwarded.clone();
    report.observed = Some(outcome.observation.clone());
    report.usage = outcome.usage.clone();
    report.oom = outcome.oom.clone();
    report.limit = outcome.limits.first().cloned();
    report.limits_met = outcome.limits.iter().skip(1).cloned().collect();
    report.denials = outcome.denials.clone();
    report.denial_notes = outcome.denial_notes.clone();
    report.payload_cpu_ms = outcome.payload_cpu_usec.map(|u| u as f64 / 1000.0);
    report.payload_peak_rss_bytes = outcome.payload_peak_rss;
    if let Some(l) = report.layers.iter_mut().find(|l| l.layer == Layer::Cgroups) {
        l.notes.extend(outcome.cgroup_notes.iter().cloned());
    }
    report.connections = outcome.connections.clone();
    report.connections_unlogged = outcome.connections_unlogged;
    let proxied = plan
        .config
        .network
        .as_ref()
        .is_some_and(|n| n.proxy_listen().is_some());
    if let (true, Some(l)) = (
        proxied
            && outcome
                .failure
                .as_ref()
                .is_none_or(|f| f.at == crate::launch::At::Exec),
        report.layers.iter_mut().find(|l| l.layer == Layer::Network),
    ) {
        let total = outcome.connections.len() as u64 + outcome.connections_unlogged;
        let allowed = outcome.connections.iter().filter(|c| c.allowed).count();
        let denied = outcome.connections.len() - allowed;
        l.observed = Some(format!(
            "proxy: {total} connection{}, {allowed} allowed, {denied} denied",
            if total == 1 { "" } else { "s" }
        ));
    }
    report
}

impl Report {
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("the report serializes")
    }

    /// The human table for `-v`.
    pub fn to_table(&self) -> String {
        use crate::text::escape;
        let mut out = format!("lasagna: profile {}\n", escape(&self.profile));
        out.push_str(&format!(
            "  {:<13} {:<12} {:<10} {}\n",
            "layer", "requested", "outcome", "reason"
        ));
        for l in &self.layers {
            let outcome = match l.outcome {
                LayerOutcome::Applied => "applied",
                LayerOutcome::Degraded => "degraded",
                LayerOutcome::Skipped => "skipped",
                LayerOutcome::Refused => "REFUSED",
                LayerOutcome::Failed => "FAILED",
                LayerOutcome::NotReached => "not-reached",
            };
            out.push_str(&format!(
                "  {:<13} {:<12} {:<10} {}\n",
                l.layer.name(),
                l.requested.to_string(),
                outcome,
                escape(l.reason.as_deref().unwrap_or(""))
            ));
            for n in &l.notes {
                out.push_str(&format!("  {:<13} note: {}\n", "", escape(n)));
            }
            if let Some(o) = &l.observed {
                out.push_str(&format!("  {:<13} observed: {}\n", "", escape(o)));
            }
        }
        if let Some(obs) = &self.observed {
            let new: Vec<&str> = obs
                .namespaces
                .iter()
                .filter(|n| n.new)
                .map(|n| n.kind.name())
                .collect();
            out.push_str(&format!(
                "  observed: new namespaces: {}\n",
                if new.is_empty() {
                    "none".into()
                } else {
                    new.join(" ")
                }
            ));
            if !obs.status.is_empty() {
                let fields: Vec<String> =
                    obs.status.iter().map(|(k, v)| format!("{k}={v}")).collect();
                out.push_str(&format!("  observed: payload {}\n", fields.join(" ")));
            }
            if let Some(n) = &obs.note {
                out.push_str(&format!("  observed: {}\n", escape(n)));
            }
        }
        match &self.ending {
            Some(Ending::Exited { code }) => {
                out.push_str(&format!("  ended: exited with {code}\n"))
            }
            Some(Ending::Signaled { name, .. }) => {
                out.push_str(&format!("  ended: killed by {name}\n"))
            }
            Some(Ending::TimedOut) => out.push_str("  ended: timed out, killed\n"),
            Some(Ending::SetupFailed) => out.push_str("  ended: setup failed\n"),
            None => {}
        }
        for hit in self.limit.iter().chain(&self.limits_met) {
            out.push_str(&format!("  limit: {}\n", hit.message));
        }
        if let Some(ms) = self.payload_cpu_ms {
            out.push_str(&format!("  payload cpu: {:.3} s\n", ms / 1000.0));
        }
        if let Some(b) = self.payload_peak_rss_bytes {
            let peak = crate::layers::cgroups::human(b);
            out.push_str(&format!("  payload resident peak: {peak}\n"));
        }
        if let Some(u) = &self.usage {
            let mut parts = Vec::new();
            if let Some(m) = u.memory_peak_bytes {
                parts.push(format!("memory peak {}", crate::layers::cgroups::human(m)));
            }
            if let Some(p) = u.pids_peak {
                parts.push(format!("pids peak {p}"));
            }
            if let Some(c) = u.cpu_time_usec {
                parts.push(format!("cpu {:.3} s", c as f64 / 1e6));
            }
            if let Some(o) = u.oom_kills {
                parts.push(format!("oom kills {o}"));
            }
            out.push_str(&format!("  usage: {}\n", parts.join(", ")));
        }
        if let Some(s) = &self.failed_step {
            out.push_str(&format!(
                "  failed at: step {} ({}): {}\n",
                s.number, s.process, s.what
            ));
        }
        for w in &self.warnings {
            out.push_str(&format!("  warning: {}\n", escape(w)));
        }
        if let Some(ms) = self.wall_ms {
            out.push_str(&format!("  wall: {ms:.1} ms\n"));
        }
        out
    }
}

/// Kinds of denial `--explain-denials` prints; the report has them all.
pub const MAX_PRINTED_DENIALS: usize = 40;

/// `--explain-denials` on stderr: one line per kind of denial (the first
/// [`MAX_PRINTED_DENIALS`]), then what could not be listed.
pub fn denials_text(denials: &[crate::supervisor::denials::Denial], notes: &[String]) -> String {
    use crate::text::escape;
    let mut out = String::new();
    if denials.is_empty() {
        out.push_str("lasagna: denials: none seen\n");
    } else {
        out.push_str("lasagna: denials:\n");
        for d in denials.iter().take(MAX_PRINTED_DENIALS) {
            let mut line = format!("  {:<9} {}", d.layer.name(), escape(&d.operation));
            if let Some(t) = &d.target {
                line.push(' ');
                line.push_str(&escape(t));
            }
            if let Some(e) = &d.errno {
                line.push_str(&format!(" -> {e}"));
            }
            line.push_str(&format!(
                " ({} time{})\n",
                d.count,
                if d.count == 1 { "" } else { "s" }
            ));
            out.push_str(&line);
        }
        if denials.len() > MAX_PRINTED_DENIALS {
            out.push_str(&format!(
                "  and {} other kinds (the report lists them: --report FILE)\n",
                denials.len() - MAX_PRINTED_DENIALS
            ));
        }
    }
    for n in notes {
        out.push_str(&format!("lasagna: {}\n", escape(n)));
    }
    out
}
