//! `lasagna run`: load → plan → refuse or arm → launch → report.

use crate::cli::{Error, RunArgs};
use crate::host::Host;
use crate::launch::{Decision, Layer};
use crate::{arm, plan, profile, report, supervisor};

pub fn run(args: RunArgs) -> Result<i32, Error> {
    if args.chroot.is_some() {
        return Err(Error::Chroot);
    }
    let overlay = overlay_of(&args).map_err(Error::Usage)?;
    if args.print_profile {
        print!("{}", profile::print_profile(&args.profile, Some(&overlay))?);
        return Ok(0);
    }
    let mut profile = profile::load_named(&args.profile, Some(&overlay))?;
    if let Some(cfg) = network_flags(&args, profile.network.as_ref())? {
        profile.network = Some(cfg);
    }
    profile.find_program().map_err(Error::NotInstalled)?;
    let command = if args.command.is_empty() {
        profile.command.clone().ok_or_else(|| {
            Error::Usage(format!(
                "no command given and profile {} has no `command`; usage: lasagna run -p {} -- CMD [ARGS]",
                crate::text::escape(&profile.name),
                crate::text::escape(&args.profile)
            ))
        })?
    } else {
        args.command.clone()
    };
    // The report's destination is opened before anything exists: a report that cannot be
    // written refuses the run instead of replacing the payload's status afterwards.
    let sink = match (&args.report, args.report_fd) {
        (Some(path), _) => Some(report::Sink::open_path(path).map_err(Error::Io)?),
        (None, Some(fd)) => Some(report::Sink::from_fd(fd).map_err(Error::Io)?),
        (None, None) => None,
    };
    let host = Host::probe(crate::host::Needs {
        cgroups: profile.cgroups.is_some(),
    });
    let opts = plan::Options {
        without: args.without.clone(),
        timeout: args.timeout,
        degrade_dependents: args.degrade_dependents,
    };
    let plan = plan::plan(&profile, &host, &opts);
    let refusals: Vec<String> = plan
        .refusals()
        .iter()
        .filter_map(|l| match &l.decision {
            Decision::Refuse(r) => {
                let prefix = format!("{}: ", l.layer);
                Some(format!(
                    "  {}{}",
                    prefix,
                    r.strip_prefix(&prefix).unwrap_or(r)
                ))
            }
            _ => None,
        })
        .collect();
    if args.dry_run {
        let r = report::from_plan(&plan, &command);
        print!("{}", r.to_table());
        for layer in Layer::ALL {
            if plan.applies(layer) {
                for line in plan.explain(layer) {
                    println!("  {:<13} {}", layer.name(), crate::text::escape(&line));
                }
            }
        }
        if let Some(sink) = &sink {
            sink.write(&r).map_err(Error::Io)?;
        }
        if !refusals.is_empty() {
            eprintln!("lasagna: a run would be refused:\n{}", refusals.join("\n"));
        }
        return Ok(if refusals.is_empty() { 0 } else { 125 });
    }
    if !refusals.is_empty() {
        let r = report::from_plan(&plan, &command);
        if args.verbose {
            eprint!("{}", r.to_table());
        }
        if let Some(sink) = &sink {
            sink.write(&r).map_err(Error::Io)?;
        }
        return Err(Error::Refused(refusals));
    }
    for f in &plan.overriding_files {
        eprintln!(
            "lasagna: {}: using {}",
            crate::text::escape(&plan.profile),
            crate::text::escape(f)
        );
    }
    for l in &plan.layers {
        if let Decision::Degrade(reason) = &l.decision {
            // Stand-ins that hold every limit asked leave nothing undone: -v, the report
            // and explain say so, not every run.
            let held = l.layer == Layer::Cgroups && plan.cgroup_unenforced.is_empty();
            if held && !args.verbose {
                continue;
            }
            // One line on every such run: the reason without its fix, which -v, the report
            // and explain carry in full, and what is left unenforced.
            let (short, fix) = crate::text::split_fix(reason);
            let cut = fix.is_some();
            let undone = if l.layer == Layer::Cgroups && !held {
                format!("; not enforced: {}", plan.cgroup_unenforced.join(", "))
            } else {
                String::new()
            };
            eprintln!(
                "lasagna: {} degraded: {}{undone}{}",
                l.layer,
                crate::text::escape(&short),
                if cut && !args.verbose {
                    " (-v or `lasagna explain` gives the fix)"
                } else {
                    ""
                }
            );
        }
    }
    let mut armed = arm::arm(plan, &command, &args.pass_fd)?;
    if args.explain_denials {
        armed.explain_denials()?;
    }
    armed.observe = args.verbose || sink.is_some();
    if let Some(p) = &mut armed.proxy {
        p.log_stderr = args.verbose;
    }
    let outcome = supervisor::launch(&mut armed)?;
    // Built only when someone reads it: -v or a report.
    if args.verbose || sink.is_some() {
        let r = report::from_run(&armed.plan, &command, &outcome);
        if args.verbose {
            eprint!("{}", r.to_table());
        }
        if let Some(sink) = &sink {
            // The payload already ran: its status stands, the failure is a warning.
            if let Err(e) = sink.write(&r) {
                eprintln!("lasagna: warning: {e}");
            }
        }
    }
    if let Some(f) = &outcome.failure {
        match f.layer.as_str() {
            "exec" => {
                eprintln!(
                    "lasagna: cannot run {}: {}",
                    crate::text::escape(&armed.exec.program),
                    f.errno.desc()
                );
                if let Some(why) = exec_hint(&armed, f.errno) {
                    eprintln!("lasagna: {}", crate::text::escape(&why));
                }
            }
            _ => eprintln!("lasagna: {f}"),
        }
    }
    if let Some(denials) = &outcome.denials {
        eprint!("{}", report::denials_text(denials, &outcome.denial_notes));
    }
    // One line per limit met, the one that ended the run first (the wall-clock timeout's
    // among them).
    for hit in outcome.limits.iter().filter(|h| !h.quiet) {
        eprintln!("lasagna: {}", hit.message);
    }
    for w in &outcome.warnings {
        eprintln!("lasagna: warning: {}", crate::text::escape(w));
    }
    Ok(outcome.exit_code)
}

/// `--net` and `--allow`: the last word on the network, as a required section of its own.
/// `--allow` implies `--net proxy`; the profile's entries, proxy port and forwards stay when
/// its mode is the same.
fn network_flags(
    args: &RunArgs,
    profile: Option<&crate::layers::network::Config>,
) -> Result<Option<crate::layers::network::Config>, Error> {
    use crate::layers::network::{self, Net};
    if args.net.is_none() && args.allow.is_empty() {
        return Ok(None);
    }
    let net = args.net.unwrap_or(Net::Proxy);
    if !args.allow.is_empty() && net != Net::Proxy {
        return Err(Error::Usage(format!(
            "--allow is the proxy's allow-list, and --net is {}; use --net proxy or leave --net out",
            net.name()
        )));
    }
    let mut cfg = network::Config::required(net, Vec::new());
    if let Some(p) = profile.filter(|p| p.net == net) {
        cfg.allow = p.allow.clone();
        cfg.proxy_port = p.proxy_port;
        cfg.forward = p.forward.clone();
    }
    for a in &args.allow {
        let entry = network::parse_entry(a)
            .map_err(|m| Error::Usage(format!("--allow: {}", crate::text::escape(&m))))?;
        cfg.allow.push(entry);
    }
    Ok(Some(cfg))
}

/// `run`'s ad-hoc flags as the profile overlay they make.
fn overlay_of(args: &RunArgs) -> Result<profile::overlay::Overlay, String> {
    let mut o = profile::overlay::Overlay::default();
    for b in &args.bind {
        o.bind(b, false)?;
    }
    for b in &args.ro_bind {
        o.bind(b, true)?;
    }
    if args.bind_cwd || args.ro_bind_cwd {
        o.bind_cwd(args.ro_bind_cwd)?;
    }
    for t in &args.tmpfs {
        o.tmpfs(t)?;
    }
    for e in &args.env {
        o.env(e)?;
    }
    for k in &args.keep_env {
        o.keep_env(k)?;
    }
    if let Some(m) = &args.memory {
        o.memory(m)?;
    }
    if let Some(n) = args.pids {
        o.pids(n)?;
    }
    if let Some(n) = args.cpus {
        o.cpus(n)?;
    }
    Ok(o)
}

/// Why an execve inside failed, from the plan: the layer that refused it and the fix.
fn exec_hint(armed: &arm::Armed, errno: nix::errno::Errno) -> Option<String> {
    use nix::errno::Errno;
    let plan = &armed.plan;
    let program = armed.exec.program.as_str();
    let cwd = plan.cwd.trim_end_matches('/');
    if !program.contains('/') {
        return (errno == Errno::ENOENT).then(|| {
            format!(
                "{program} is not in the sandbox's PATH; the view has what the profile binds \
                 (lasagna explain {} lists it), so a program outside it needs a --ro-bind",
                crate::text::escape(&plan.profile)
            )
        });
    }
    let inside = if program.starts_with('/') {
        program.to_string()
    } else {
        format!("{cwd}/{}", program.trim_start_matches("./"))
    };
    let dir = inside
        .rsplit_once('/')
        .map_or("/", |(d, _)| if d.is_empty() { "/" } else { d });
    let under =
        |p: &str, root: &str| p == root || root == "/" || p.starts_with(&format!("{root}/"));
    match errno {
        Errno::EACCES => {
            let lp = plan.landlock.as_ref()?;
            let exec = ::landlock::AccessFs::Execute;
            if !lp.handled_fs.contains(exec) {
                return None;
            }
            let covered = lp
                .paths
                .iter()
                .any(|r| r.access.contains(exec) && under(&inside, r.path.as_str()));
            (!covered).then(|| {
                let with: Vec<&str> = lp
                    .paths
                    .iter()
                    .filter(|r| r.access.contains(exec))
                    .map(|r| r.path.as_str())
                    .collect();
                format!(
                    "landlock: {dir} has no execute right (execute is granted on {}); add \
                     `landlock: exec: [{dir}]` to the profile, or bind it with --ro-bind or \
                     --ro-bind-cwd, which grant execute",
                    if with.is_empty() {
                        "nothing".to_string()
                    } else {
                        with.join(", ")
                    }
                )
            })
        }
        Errno::ENOENT if !program.starts_with('/') => {
            let fs = plan.filesystem.as_ref()?;
            let what = fs
                .entries
                .iter()
                .find(|e| e.target.as_str() == cwd)
                .map(|e| match &e.what {
                    crate::layers::filesystem::view::What::Tmpfs { .. } => {
                        " (an empty tmpfs)".to_string()
                    }
                    crate::layers::filesystem::view::What::Bind { source, .. } => {
                        format!(" (the host's {})", source.display())
                    }
                    _ => String::new(),
                })
                .unwrap_or_default();
            let host = std::env::current_dir().ok()?;
            let host = host.to_string_lossy();
            let bound = fs.entries.iter().any(|e| {
                matches!(&e.what, crate::layers::filesystem::view::What::Bind { source, .. }
                    if source.to_string_lossy() == host)
            });
            (!bound).then(|| {
                format!(
                    "{program} is relative to the working directory inside, {cwd}{what}; your \
                     directory {host} is not bound into the sandbox: add --ro-bind-cwd (or \
                     --bind-cwd to let it write there)"
                )
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_degraded_line_keeps_the_reason_and_drops_the_fix() {
        let (short, fix) = crate::text::split_fix(
            "the cgroup v1 hierarchies memory, pids are not writable by this user (hint: as root: mkdir /a/x (once); then set parent); payload gets RLIMIT_AS instead",
        );
        assert!(fix.is_some());
        assert_eq!(short, "the cgroup v1 hierarchies memory, pids are not writable by this user; payload gets RLIMIT_AS instead");
        assert_eq!(
            crate::text::split_fix("plain reason"),
            ("plain reason".to_string(), None)
        );
    }
}
