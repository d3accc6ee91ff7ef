//! `check`, `explain`, `profiles`: reading and planning only, nothing is launched.

use std::path::{Path, PathBuf};

use crate::cli::{Error, ProfilesAction};
use crate::host::Host;
use crate::launch::{Decision, Layer};
use crate::plan;
use crate::profile::{self, ProfileError, SHIPPED};

/// One profile as `check` judges it on this host: loaded, its program looked up, planned.
/// `doctor PROFILE` reads the same, so the two never disagree on whether it runs here.
pub(super) struct Checked {
    pub profile: profile::Profile,
    pub plan: plan::Plan,
    /// Why the profile's program is not on this host, when it is not.
    pub missing_program: Option<String>,
}

impl Checked {
    /// `check` passes: the program is here and no required layer is refused.
    pub fn runs_here(&self) -> bool {
        self.missing_program.is_none() && self.plan.refusals().is_empty()
    }
}

/// Load `name` and plan it on `host` with no command-line options, as `check` does;
/// `Err`: every error that stops it loading, in the order of the file.
pub(super) fn load_and_plan(name: &str, host: &Host) -> Result<Checked, Vec<ProfileError>> {
    let p = profile::load_all_errors(name)?;
    Ok(Checked {
        missing_program: p.find_program().err(),
        plan: plan::plan(&p, host, &plan::Options::default()),
        profile: p,
    })
}

/// `check`: every profile loads, and no required layer is refused on this host.
pub fn check(names: &[String]) -> Result<i32, Error> {
    let host = Host::probe(crate::host::Needs::ALL);
    let mut findings = 0;
    for name in names {
        let checked = match load_and_plan(name, &host) {
            Err(errors) => {
                findings += 1;
                for e in errors {
                    eprintln!("{e}");
                }
                continue;
            }
            Ok(c) => c,
        };
        if let Some(missing) = &checked.missing_program {
            findings += 1;
            eprintln!(
                "{}: {}",
                crate::text::escape(name),
                crate::text::escape(missing)
            );
            continue;
        }
        let plan = &checked.plan;
        // What one layer allows and another refuses: the run would meet it inside.
        for w in &plan.warnings {
            eprintln!(
                "{}: warning: {}",
                crate::text::escape(name),
                crate::text::escape(w)
            );
        }
        if checked.runs_here() {
            println!("{}: ok", crate::text::escape(name));
        } else {
            findings += 1;
            for l in plan.refusals() {
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
    // What this profile leaves open, in its own terms.
    println!();
    println!("what this profile does not stop:");
    for gap in plan.gaps() {
        println!("  - {}", escape(&gap));
    }
    if !plan.warnings.is_empty() {
        println!();
        println!("warnings (what one layer allows and another refuses):");
        for w in &plan.warnings {
            println!("  - {}", escape(w));
        }
    }
    Ok(0)
}

pub fn profiles(action: ProfilesAction) -> Result<i32, Error> {
    use crate::text::escape;
    if let ProfilesAction::Show { name }
    | ProfilesAction::Which { name }
    | ProfilesAction::Edit { name } = &action
    {
        named(name)?;
    }
    match action {
        ProfilesAction::List => {
            let mut seen = std::collections::BTreeSet::new();
            for dir in profile::search_dirs() {
                let Ok(entries) = std::fs::read_dir(&dir) else {
                    continue;
                };
                let mut names: Vec<String> = entries
                    .flatten()
                    .filter_map(|e| e.file_name().into_string().ok())
                    .filter(|n| n.ends_with(".yaml") && !n.ends_with(".local.yaml"))
                    .map(|n| n.trim_end_matches(".yaml").to_string())
                    .collect();
                names.sort();
                for name in names {
                    if seen.insert(name.clone()) {
                        let desc = profile::load(&name)
                            .map(|p| p.description)
                            .unwrap_or_else(|e| format!("(invalid: {e})"));
                        println!(
                            "{:<18} {:<28} {}",
                            escape(&name),
                            escape(&dir.display().to_string()),
                            escape(&desc)
                        );
                    }
                }
            }
            for (name, _) in SHIPPED {
                if !seen.insert(name.to_string()) {
                    continue;
                }
                let desc = profile::load(name)
                    .map(|p| p.description)
                    .unwrap_or_else(|e| format!("(invalid: {e})"));
                println!("{name:<18} {:<28} {}", "shipped", escape(&desc));
            }
            Ok(0)
        }
        ProfilesAction::Show { name } => match profile::resolve(&name)? {
            profile::Source::Shipped(n) => {
                let text = SHIPPED
                    .iter()
                    .find(|(s, _)| *s == n)
                    .map(|(_, t)| *t)
                    .unwrap_or("");
                print!("{text}");
                Ok(0)
            }
            profile::Source::File(p) => {
                let text = crate::hostfs::read_config(&p, profile::MAX_PROFILE_BYTES)
                    .map_err(|e| Error::Io(format!("{}: {e}", p.display())))?;
                print!("{text}");
                Ok(0)
            }
        },
        ProfilesAction::Which { name } => {
            let p = profile::load(&name)?;
            for f in &p.files {
                println!("{}", escape(f));
            }
            Ok(0)
        }
        ProfilesAction::Edit { name } => edit(&name),
    }
}

/// That NAME of a `profiles` action finds a profile. A name that finds nothing is a wrong
/// argument: a usage error (exit 2) that names it and lists the shipped profiles. A
/// profile that is found but does not load stays a bad profile (exit 125).
fn named(name: &str) -> Result<(), Error> {
    profile::resolve(name)
        .map(drop)
        .map_err(|e| Error::Usage(e.to_string()))
}

/// The overlay file `file_name` in the directory `dir`, created with a header when
/// missing, reached by descriptor. The editor then runs as the caller (often root) on the
/// path returned, so neither the directory nor the file may be one that another user, or
/// a payload that wrote into a bind, could have swapped: every directory on the way must
/// be the caller's or root's and writable by no one else (mode bits and ACLs), the file is
/// created with `O_EXCL | O_NOFOLLOW` relative to the directory's descriptor, and an
/// existing one must be a regular file of a single link that only the caller can change.
fn overlay_to_edit(dir: &Path, file_name: &str, name: &str) -> Result<PathBuf, Error> {
    use crate::hostfs::{self, Kind, Links};
    use nix::fcntl::{openat, OFlag};
    use nix::sys::stat::Mode;
    use std::os::fd::AsFd;
    let refuse = |what: &Path, why: &str| {
        Error::Io(format!(
            "profiles edit: refused: {} {why}; lasagna opens an editor only on a file no other user can swap",
            crate::text::escape(&what.display().to_string())
        ))
    };
    let links = if nix::unistd::geteuid().is_root() {
        Links::Trusted
    } else {
        Links::Any
    };
    let dir = hostfs::make_dirs(dir, links, 0o755)
        .map_err(|e| Error::Io(format!("profiles edit: {}", crate::text::escape(&e))))?;
    if let Some((at, why)) = &dir.exposed {
        return Err(refuse(
            at,
            &format!("can be changed by another user ({why})"),
        ));
    }
    let path = dir.path.join(file_name);
    match openat(
        dir.fd.as_fd(),
        file_name,
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o644),
    ) {
        Ok(fd) => {
            let header = format!(
                "# Merged on top of the profile {name} wherever it is used by name (no extends here).\n\
                 # `lasagna profiles which {name}` lists every file of it; `lasagna schema` the format.\n\
                 # layers:\n\
                 #   process:\n\
                 #     env:\n\
                 #       set:\n\
                 #         EXAMPLE: value\n"
            );
            crate::sys::write_all(fd.as_fd(), header.as_bytes())
                .map_err(|e| Error::Io(format!("{}: {}", path.display(), e.desc())))?;
            return Ok(path);
        }
        Err(nix::errno::Errno::EEXIST) => {}
        Err(e) => return Err(Error::Io(format!("{}: {}", path.display(), e.desc()))),
    }
    // It exists: look at the entry itself, never through a link.
    let node = hostfs::walk(&path, Links::None, false).map_err(|e| {
        Error::Io(format!(
            "profiles edit: {}",
            crate::text::escape(&e.to_string())
        ))
    })?;
    match node.kind() {
        Kind::File => {}
        Kind::Symlink => {
            let target = node.link_text().unwrap_or_default();
            return Err(refuse(
                &path,
                &format!(
                    "is a symlink (to {}); remove it",
                    crate::text::escape(&target.to_string_lossy())
                ),
            ));
        }
        _ => return Err(refuse(&path, "is not a regular file")),
    }
    if let Some((at, why)) = &node.exposed {
        return Err(refuse(
            at,
            &format!("can be changed by another user ({why})"),
        ));
    }
    if node.meta.nlink > 1 {
        return Err(refuse(
            &path,
            &format!(
                "has {} hard links (another name of the same file may be anything); remove it",
                node.meta.nlink
            ),
        ));
    }
    Ok(path)
}

/// `profiles edit NAME`: the user's NAME.local.yaml in an editor, then a check of the
/// merged profile.
fn edit(name: &str) -> Result<i32, Error> {
    if name.contains('/') || name.ends_with(".yaml") {
        return Err(Error::Usage(format!(
            "profiles edit takes a profile name, not a path ({})",
            crate::text::escape(name)
        )));
    }
    let dir = profile::search_dirs()
        .into_iter()
        .next()
        .ok_or_else(|| Error::Usage("neither XDG_CONFIG_HOME nor HOME is set".into()))?;
    let file = overlay_to_edit(&dir, &format!("{name}.local.yaml"), name)?;
    let editor = std::env::var("VISUAL")
        .or_else(|_| std::env::var("EDITOR"))
        .unwrap_or_else(|_| "vi".into());
    let status = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("sh")
        .arg(&file)
        .status()
        .map_err(|e| Error::Io(format!("start {editor}: {e}")))?;
    if !status.success() {
        return Err(Error::Io(format!("{editor} exited with {status}")));
    }
    println!("{}", crate::text::escape(&file.display().to_string()));
    match profile::load(name) {
        Ok(_) => Ok(0),
        Err(e) => {
            eprintln!("lasagna: {e}");
            Ok(1)
        }
    }
}
