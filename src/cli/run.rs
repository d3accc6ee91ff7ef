//! `lasagna run`: load → plan → refuse or arm → launch → report.

use crate::cli::{Error, RunArgs};
use crate::host::Host;
use crate::layers::Layer;
use crate::{arm, plan, profile, report, supervisor};

pub fn run(args: RunArgs) -> Result<i32, Error> {
    if args.chroot.is_some() {
        return Err(Error::Chroot);
    }
    let profile = profile::load(&args.profile)?;
    let command = if args.command.is_empty() {
        profile.command.clone().ok_or_else(|| {
            Error::Usage(format!(
                "no command given and profile {} has no `command`; usage: lasagna run -p {} -- CMD [ARGS]",
                profile.name, args.profile
            ))
        })?
    } else {
        args.command.clone()
    };
    let host = Host::probe_for(&profile);
    let plan = plan::plan(&profile, &host, &args.without, args.timeout);
    let mut refusals: Vec<String> = plan
        .refusals()
        .iter()
        .map(|l| match &l.decision {
            crate::layers::Decision::Refuse(r) => {
                let prefix = format!("{}: ", l.layer);
                format!("  {}{}", prefix, r.strip_prefix(&prefix).unwrap_or(r))
            }
            _ => unreachable!("refusals() returns only refusals"),
        })
        .collect();
    // Host paths the filesystem layer needs: checked now, before anything exists.
    refusals.extend(
        crate::layers::filesystem::missing_sources(&profile, &plan)
            .into_iter()
            .map(|r| format!("  {r}")),
    );
    let write_report = |r: &report::Report| -> Result<(), Error> {
        if args.verbose {
            eprint!("{}", r.to_table());
        }
        if let Some(path) = &args.report {
            std::fs::write(path, r.to_json() + "\n")
                .map_err(|e| Error::Io(format!("cannot write report {}: {e}", path.display())))?;
        }
        Ok(())
    };
    if args.dry_run {
        let r = report::from_plan(&plan, &command);
        print!("{}", r.to_table());
        for layer in Layer::ALL {
            if plan.applies(layer) {
                for line in crate::cli::inspect::explain_layer(&profile, &host, layer) {
                    println!("  {:<13} {line}", layer.name());
                }
            }
        }
        if let Some(path) = &args.report {
            std::fs::write(path, r.to_json() + "\n")
                .map_err(|e| Error::Io(format!("cannot write report {}: {e}", path.display())))?;
        }
        if !refusals.is_empty() {
            eprintln!("lasagna: a run would be refused:\n{}", refusals.join("\n"));
        }
        return Ok(if refusals.is_empty() { 0 } else { 125 });
    }
    if !refusals.is_empty() {
        write_report(&report::from_plan(&plan, &command))?;
        return Err(Error::Refused(refusals));
    }
    for l in &plan.layers {
        if let crate::layers::Decision::Degrade(reason) = &l.decision {
            eprintln!("lasagna: {} degraded: {reason}", l.layer);
        }
    }
    let timeout = args.timeout;
    let mut armed = arm::arm(&profile, plan, &command, timeout).map_err(Error::Usage)?;
    armed.observe = args.verbose || args.report.is_some();
    let outcome = supervisor::launch(&armed)?;
    // Built only when someone reads it: -v or --report.
    if args.verbose || args.report.is_some() {
        write_report(&report::from_run(&armed.plan, &command, &outcome))?;
    }
    if let Some(f) = &outcome.failure {
        match f.layer.as_str() {
            "exec" => eprintln!(
                "lasagna: cannot run {}: {}",
                armed.exec.program,
                f.errno.desc()
            ),
            _ => eprintln!("lasagna: {f}"),
        }
    }
    if let Some(oom) = &outcome.oom {
        eprintln!("lasagna: {oom}");
    }
    if outcome.timed_out {
        eprintln!(
            "lasagna: timed out after {:?}; the sandbox was killed",
            armed.timeout.unwrap_or_default()
        );
    }
    Ok(outcome.exit_code)
}
