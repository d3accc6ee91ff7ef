//! `lasagna test PROFILE`: the arguments and the printing of [`crate::battery`]'s matrix
//! (text, or versioned JSON with `--json`).

use crate::battery::{self, Cell, Failure, Matrix, Settings};
use crate::cli::{Error, TestArgs};
use crate::profile;

pub fn test(args: TestArgs) -> Result<i32, Error> {
    let profile = profile::load(&args.profile)?;
    let settings = Settings {
        without: args.without,
        alone: args.alone,
        quick: args.quick,
        probes: args.probes,
        jobs: args.jobs,
    };
    let matrix = match battery::matrix(&profile, &settings) {
        Ok(m) => m,
        Err(Failure::Usage(e)) => return Err(Error::Usage(e)),
        Err(Failure::Refused(r)) => return Err(Error::Refused(r)),
        Err(Failure::Io(e)) => return Err(Error::Io(e)),
        Err(Failure::Interrupted) => {
            eprintln!("lasagna: test interrupted; every run ended and the canaries are removed");
            return Ok(130);
        }
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&matrix).expect("the matrix serializes")
        );
    } else {
        print!("{}", render(&matrix));
    }
    let failed = matrix.rows.iter().any(|r| r.cells[0] != Cell::Stopped);
    Ok(if failed { 1 } else { 0 })
}

/// A probe stopped with every layer off: by lasagna itself (it always switches to an
/// unprivileged identity, closes inherited fds and starts a new session) or by the host.
const HOST_STOPS: &str = "no layer needed (stopped with every layer off: lasagna's own identity switch, fd closing and session, or the host)";

fn render(m: &Matrix) -> String {
    let mut out = format!(
        "lasagna test: profile {}\n",
        crate::text::escape(&m.profile)
    );
    let width = m
        .rows
        .iter()
        .map(|r| r.probe.len())
        .max()
        .unwrap_or(10)
        .max(10);
    let mut header = format!("  {:<width$}", "probe");
    for i in 0..m.columns.len() {
        header.push_str(&format!(" {:>2}", i + 1));
    }
    header.push_str("  stopped by");
    out.push_str(&header);
    out.push('\n');
    let mut category = "";
    for r in &m.rows {
        if r.category != category {
            category = r.category;
            out.push_str(&format!("  [{category}]\n"));
        }
        let mut line = format!("  {:<width$}", r.probe);
        for cell in &r.cells {
            line.push_str(match cell {
                Cell::Stopped => "  .",
                Cell::Through => "  X",
                Cell::Error(_) => "  E",
            });
        }
        let verdict = if r.cells[0] != Cell::Stopped {
            match &r.cells[0] {
                Cell::Error(e) => format!("ERROR: {e}"),
                _ => "THROUGH the full profile".into(),
            }
        } else if let Some(by) = &r.stopped_by {
            let names: Vec<&str> = by.iter().map(|l| l.name()).collect();
            match (r.host_stops, by.len()) {
                (true, _) => HOST_STOPS.into(),
                (false, 1) => format!("1: {} ONLY", names[0]),
                (false, n) => format!("{n}: {}", names.join(", ")),
            }
        } else if let Some(l) = r.only {
            format!("1: {} ONLY", l.name())
        } else if !r.needs_together.is_empty() {
            let names: Vec<&str> = r.needs_together.iter().map(|l| l.name()).collect();
            format!(
                "only together: removing any of {} lets it through",
                names.join(", ")
            )
        } else if r.host_stops {
            HOST_STOPS.into()
        } else {
            ">= 2 (no single removal lets it through)".into()
        };
        line.push_str("  ");
        line.push_str(&verdict);
        out.push_str(&line);
        out.push('\n');
    }
    out.push_str("\n  columns (. stopped, X through, E error):\n");
    for (i, c) in m.columns.iter().enumerate() {
        let mut desc = format!("  {:>2} {}", i + 1, c.name);
        if !c.degraded.is_empty() {
            let names: Vec<&str> = c.degraded.iter().map(|l| l.name()).collect();
            desc.push_str(&format!(" (degraded: {})", names.join(", ")));
        }
        if c.plan.is_none() {
            desc.push_str(" (refused on this host)");
        }
        out.push_str(&desc);
        out.push('\n');
    }
    let through = m
        .rows
        .iter()
        .filter(|r| r.cells[0] == Cell::Through)
        .count();
    let singles = m
        .rows
        .iter()
        .filter(|r| {
            r.only.is_some()
                || r.stopped_by
                    .as_ref()
                    .is_some_and(|b| b.len() == 1 && !r.host_stops)
        })
        .count();
    out.push_str(&format!(
        "\n  {} probes, {} through the full profile, {} stopped by one layer only; {:.1} s\n",
        m.rows.len(),
        through,
        singles,
        m.wall_ms / 1000.0
    ));
    out
}
