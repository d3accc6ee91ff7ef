//! `check`, `explain`, `profiles`: reading and planning only, nothing is launched.

use crate::cli::{Error, ProfilesAction};
use crate::host::Host;
use crate::launch::{Decision, Layer};
use crate::plan;
use crate::profile::{self, SHIPPED};

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
                let plan = plan::plan(&p, &host, &plan::Options::default());
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

pub fn explain(name: &str, without: &[Layer]) -> Result<i32, Error> {
    let p = profile::load(name)?;
    let host = Host::probe(crate::host::Needs::ALL);
    let plan = plan::plan(&p, &host, &plan::Options::without(without));
    use crate::text::escape;
    println!(
        "profile {}{}",
        escape(&plan.profile),
        if plan.description.is_empty() {
            String::new()
        } else {
            format!(": {}", escape(&plan.description))
        }
    );
    if !plan.extends.is_empty() {
        println!("extends {}", escape(&plan.extends.join(" -> ")));
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
            for line in plan.explain(l.layer) {
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
