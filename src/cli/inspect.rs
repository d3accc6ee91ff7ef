//! `check`, `explain`, `profiles`: reading and planning only, nothing is launched.

use crate::cli::{Error, ProfilesAction};
use crate::host::Host;
use crate::launch::{Decision, Layer};
use crate::layers;
use crate::plan;
use crate::profile::{self, Profile, SHIPPED};

/// `check`: every profile loads, and no required layer is refused on this host.
pub fn check(names: &[String]) -> Result<i32, Error> {
    let host = Host::probe(crate::host::Needs::ALL);
    let mut findings = 0;
    for name in names {
        match profile::load(name) {
            Err(e) => {
                findings += 1;
                eprintln!("{e}");
            }
            Ok(p) => {
                let plan = plan::plan(&p, &host, &[], None);
                let refused = plan.refusals();
                if refused.is_empty() {
                    println!("{}: ok", crate::text::escape(name));
                } else {
                    findings += 1;
                    for l in refused {
                        if let Decision::Refuse(r) = &l.decision {
                            eprintln!(
                                "{}: {} would be refused on this host: {}",
                                crate::text::escape(name),
                                l.layer,
                                crate::text::escape(r)
                            );
                        }
                    }
                }
            }
        }
    }
    Ok(if findings == 0 { 0 } else { 1 })
}

/// The plain-words lines for one layer of a profile.
pub fn explain_layer(p: &Profile, host: &Host, plan: &plan::Plan, layer: Layer) -> Vec<String> {
    match layer {
        Layer::Namespaces => p
            .namespaces
            .as_ref()
            .map(|c| layers::namespaces::explain(c, host.is_root)),
        Layer::Filesystem => p
            .filesystem
            .as_ref()
            .map(|c| layers::filesystem::explain(c, plan.fresh_proc)),
        Layer::Capabilities => p.capabilities.as_ref().map(layers::capabilities::explain),
        Layer::Rlimits => p.rlimits.as_ref().map(layers::rlimits::explain),
        Layer::Process => p.process.as_ref().map(layers::process::explain),
        Layer::Landlock => p.landlock.as_ref().map(layers::landlock::explain),
        Layer::Seccomp => p.seccomp.as_ref().map(layers::seccomp::explain),
        Layer::Cgroups => p.cgroups.as_ref().map(|spec| {
            let timeout = p.process.as_ref().and_then(|c| c.timeout);
            let pre = layers::cgroups::preflight(spec, &host.cgroups, timeout);
            layers::cgroups::explain(spec, &host.cgroups, &pre)
        }),
    }
    .unwrap_or_default()
}

pub fn explain(name: &str, without: &[Layer]) -> Result<i32, Error> {
    let p = profile::load(name)?;
    let host = Host::probe(crate::host::Needs::ALL);
    let plan = plan::plan(&p, &host, without, None);
    use crate::text::escape;
    println!(
        "profile {}{}",
        escape(&p.name),
        if p.description.is_empty() {
            String::new()
        } else {
            format!(": {}", escape(&p.description))
        }
    );
    if !p.extends.is_empty() {
        println!("extends {}", escape(&p.extends.join(" -> ")));
    }
    for l in &plan.layers {
        let (word, reason) = match &l.decision {
            Decision::Apply => ("applied", None),
            Decision::Degrade(r) => ("degraded", Some(r)),
            Decision::Skip(r) => ("skipped", Some(r)),
            Decision::Refuse(r) => ("REFUSED", Some(r)),
        };
        println!();
        match reason {
            Some(r) => println!("{} ({}): {word}: {}", l.layer, l.requested, escape(r)),
            None => println!("{} ({}): {word}", l.layer, l.requested),
        }
        if l.decision.applies() {
            for line in explain_layer(&p, &host, &plan, l.layer) {
                println!("  - {}", escape(&line));
            }
        }
        for n in &l.notes {
            println!("  note: {}", escape(n));
        }
    }
    Ok(0)
}

pub fn profiles(action: ProfilesAction) -> Result<i32, Error> {
    match action {
        ProfilesAction::List => {
            for (name, _) in SHIPPED {
                let desc = profile::load(name)
                    .map(|p| p.description)
                    .unwrap_or_else(|e| format!("(invalid: {e})"));
                println!("{name:<18} {}", crate::text::escape(&desc));
            }
            Ok(0)
        }
        ProfilesAction::Show { name } => match SHIPPED.iter().find(|(n, _)| *n == name) {
            Some((_, text)) => {
                print!("{text}");
                Ok(0)
            }
            None => Err(Error::Usage(format!(
                "no shipped profile named {name:?}; see 'lasagna profiles list'"
            ))),
        },
    }
}
