//! `run`'s ad-hoc flags (`--bind`, `--ro-bind`, `--tmpfs`, `--bind-cwd`, `--ro-bind-cwd`,
//! `--env`, `--keep-env`, `--memory`, `--pids`, `--cpus`) as one more profile layer: an
//! unnamed overlay merged on top of the loaded chain, before validation, as if a last
//! `extends` child had written them.
//!
//! A bind also grants its Landlock rights (read and execute for `--ro-bind`, read, write
//! and execute for `--bind` and `--tmpfs`) when the profile has a `landlock` section: under
//! `strict` a bind without them could be listed but not used. Where the profile has no
//! Landlock section none is added (that would switch the layer on with only these rules).
//! A flag's mount replaces the profile's entry of the same path, and below a read-only
//! one the profile's Landlock rights are cut to read and execute ([`Overlay::displace`]).
//! A mount needs the filesystem layer: a profile without one refuses the flag. A limit
//! goes into the profile's `cgroups` section, or a best-effort one of its own (the plan's
//! rlimit stand-ins then hold it where the host has no cgroup to give).

use crate::layers::{cgroups, filesystem, landlock, process};
use crate::types::{Loc, ProfileError, SandboxPath, Spanned};

use super::Sections;

/// Where an overlay value comes from: `Loc { line: 0, column: N }` is the N-th flag.
pub fn flag_loc(n: usize) -> Loc {
    Loc::at(0, n as u64)
}

#[derive(Debug, Clone, Default)]
pub struct Overlay {
    /// (source on the host, target inside, read-only), in the order given.
    /// (source, target, read-only, idmap when not the entry's default).
    pub binds: Vec<(String, String, bool, Option<bool>)>,
    pub tmpfs: Vec<String>,
    /// The working directory inside (`--bind-cwd`).
    pub cwd: Option<String>,
    pub env_set: Vec<(String, String)>,
    pub keep_env: Vec<String>,
    pub memory: Option<String>,
    pub pids: Option<u64>,
    pub cpus: Option<f64>,
    /// Each flag as given, for errors and `--print-profile` (`flag_loc(n)` indexes it).
    pub flags: Vec<String>,
}

fn path(flag: &str, raw: &str) -> Result<String, String> {
    SandboxPath::parse(raw)
        .map(|p| p.as_str().to_string())
        .map_err(|m| format!("{flag} {}: {m}", crate::text::quote_short(raw, 80)))
}

impl Overlay {
    pub fn is_empty(&self) -> bool {
        self.flags.is_empty()
    }

    fn note(&mut self, flag: String) -> Loc {
        self.flags.push(flag);
        flag_loc(self.flags.len())
    }

    /// `--bind SRC[:DST]` / `--ro-bind SRC[:DST]`: absolute paths, no `..`.
    pub fn bind(&mut self, spec: &str, read_only: bool) -> Result<(), String> {
        let flag = if read_only { "--ro-bind" } else { "--bind" };
        let (src, dst) = spec.split_once(':').unwrap_or((spec, spec));
        // A relative source is the caller's (as with cp or bwrap); the target is absolute.
        let src = if src.starts_with('/') {
            path(flag, src)?
        } else {
            let cwd = std::env::current_dir()
                .map_err(|e| format!("{flag} {spec}: the working directory: {e}"))?;
            path(flag, &cwd.join(src).to_string_lossy())?
        };
        let dst = if spec.contains(':') {
            path(flag, dst)?
        } else {
            src.clone()
        };
        self.note(format!("{flag} {spec}"));
        self.binds.push((src, dst, read_only, None));
        Ok(())
    }

    pub fn tmpfs(&mut self, dst: &str) -> Result<(), String> {
        let dst = path("--tmpfs", dst)?;
        self.note(format!("--tmpfs {dst}"));
        self.tmpfs.push(dst);
        Ok(())
    }

    /// `--bind-cwd` / `--ro-bind-cwd`: the caller's directory at the same path, and the
    /// payload's working directory.
    pub fn bind_cwd(&mut self, read_only: bool) -> Result<(), String> {
        let flag = if read_only {
            "--ro-bind-cwd"
        } else {
            "--bind-cwd"
        };
        let cwd =
            std::env::current_dir().map_err(|e| format!("{flag}: the working directory: {e}"))?;
        let cwd = path(flag, &cwd.to_string_lossy())?;
        self.note(flag.to_string());
        // The caller's own directory: idmapped even read-only, so that the payload (git)
        // sees a directory it owns.
        self.binds.push((
            cwd.clone(),
            cwd.clone(),
            read_only,
            read_only.then_some(true),
        ));
        self.cwd = Some(cwd);
        Ok(())
    }

    pub fn env(&mut self, spec: &str) -> Result<(), String> {
        let (name, value) = spec.split_once('=').ok_or_else(|| {
            format!(
                "--env {}: write NAME=VALUE",
                crate::text::quote_short(spec, 60)
            )
        })?;
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(format!(
                "--env: {} is not a variable name",
                crate::text::quote_short(name, 60)
            ));
        }
        self.note(format!("--env {name}=…"));
        self.env_set.push((name.to_string(), value.to_string()));
        Ok(())
    }

    pub fn keep_env(&mut self, name: &str) -> Result<(), String> {
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'*')
        {
            return Err(format!(
                "--keep-env: {} is not a variable name",
                crate::text::quote_short(name, 60)
            ));
        }
        self.note(format!("--keep-env {name}"));
        self.keep_env.push(name.to_string());
        Ok(())
    }

    pub fn memory(&mut self, size: &str) -> Result<(), String> {
        match crate::types::parse_size(size) {
            Ok(Some(n)) if n > 0 => {}
            Ok(_) => return Err(format!("--memory {size}: give a size such as 512M or 2G")),
            Err(m) => return Err(format!("--memory {size}: {m}")),
        }
        self.note(format!("--memory {size}"));
        self.memory = Some(size.to_string());
        Ok(())
    }

    pub fn pids(&mut self, n: u64) -> Result<(), String> {
        if n == 0 {
            return Err("--pids 0: at least 1 (the payload itself)".into());
        }
        self.note(format!("--pids {n}"));
        self.pids = Some(n);
        Ok(())
    }

    pub fn cpus(&mut self, n: f64) -> Result<(), String> {
        if !(n.is_finite() && n > 0.0) {
            return Err(format!(
                "--cpus {n}: a positive number of cores, such as 0.5 or 2"
            ));
        }
        self.note(format!("--cpus {n}"));
        self.cpus = Some(n);
        Ok(())
    }

    /// The sections this overlay adds on top of `base` (the merged chain).
    pub fn sections(&self, base: &Sections) -> Result<Sections, ProfileError> {
        let mut out = Sections::default();
        let loc_of = |what: &str| {
            let n = self
                .flags
                .iter()
                .position(|f| f.starts_with(what))
                .map_or(0, |i| i + 1);
            flag_loc(n)
        };
        let at = |value: String, loc: Loc| Spanned { value, loc };
        if !self.binds.is_empty() || !self.tmpfs.is_empty() {
            if base.filesystem.is_none() {
                let first = self
                    .flags
                    .iter()
                    .find(|f| f.contains("bind") || f.starts_with("--tmpfs"));
                return Err(ProfileError {
                    file: "<command line>".into(),
                    loc: None,
                    message: format!(
                        "{}: the profile has no filesystem section to mount into",
                        first.map_or("--bind", String::as_str)
                    ),
                    hint: Some("use a profile with a filesystem layer, such as strict".into()),
                });
            }
            let mut fs = filesystem::Section::default();
            let mut ll = landlock::Section::default();
            for (i, (src, dst, ro, idmap)) in self.binds.iter().enumerate() {
                let loc = self.bind_loc(i);
                let mut e = filesystem::MountEntry {
                    source: Some(at(src.clone(), loc)),
                    idmap: *idmap,
                    ..Default::default()
                };
                if *ro {
                    e.ro_bind = Some(at(dst.clone(), loc));
                } else {
                    e.bind = Some(at(dst.clone(), loc));
                    ll.write.push(at(dst.clone(), loc));
                }
                ll.read.push(at(dst.clone(), loc));
                ll.exec.push(at(dst.clone(), loc));
                fs.mounts.push(e);
            }
            for dst in &self.tmpfs {
                let loc = loc_of(&format!("--tmpfs {dst}"));
                fs.mounts.push(filesystem::MountEntry {
                    tmpfs: Some(at(dst.clone(), loc)),
                    perms: Some(at("0777".into(), loc)),
                    ..Default::default()
                });
                ll.read.push(at(dst.clone(), loc));
                ll.write.push(at(dst.clone(), loc));
                ll.exec.push(at(dst.clone(), loc));
            }
            out.filesystem = Some(fs);
            if base.landlock.is_some() {
                out.landlock = Some(ll);
            }
        }
        if self.cwd.is_some() || !self.env_set.is_empty() || !self.keep_env.is_empty() {
            let mut p = process::Section {
                cwd: self
                    .cwd
                    .clone()
                    .map(|c| at(c, loc_of("--bind-cwd").max_with(loc_of("--ro-bind-cwd")))),
                ..Default::default()
            };
            if !self.env_set.is_empty() || !self.keep_env.is_empty() {
                p.env = Some(process::EnvSection {
                    allow: (!self.keep_env.is_empty()).then(|| {
                        self.keep_env
                            .iter()
                            .map(|k| at(k.clone(), loc_of(&format!("--keep-env {k}"))))
                            .collect()
                    }),
                    set: (!self.env_set.is_empty()).then(|| self.env_set.iter().cloned().collect()),
                    inherit: None,
                });
            }
            out.process = Some(p);
        }
        if self.memory.is_some() || self.pids.is_some() || self.cpus.is_some() {
            let mut cg = cgroups::Section {
                mode: base
                    .cgroups
                    .is_none()
                    .then_some(crate::types::Requirement::BestEffort),
                ..Default::default()
            };
            if let Some(m) = &self.memory {
                cg.memory = Some(cgroups::MemorySection {
                    max: Some(at(m.clone(), loc_of("--memory"))),
                    ..Default::default()
                });
            }
            if let Some(n) = self.pids {
                cg.pids = Some(cgroups::PidsSection {
                    max: Some(Spanned {
                        value: n,
                        loc: loc_of("--pids"),
                    }),
                });
            }
            if let Some(c) = self.cpus {
                cg.cpu = Some(cgroups::CpuSection {
                    cores: Some(Spanned {
                        value: c,
                        loc: loc_of("--cpus"),
                    }),
                    ..Default::default()
                });
            }
            out.cgroups = Some(cg);
        }
        Ok(out)
    }

    /// Take out of `base` (the merged chain) what the flags replace: the profile's entry
    /// of a path a flag mounts (the flag's entry stands alone, also in `--print-profile`),
    /// and, below a read-only bind of a flag, the Landlock rights beyond read and execute
    /// (the rights of `--ro-bind`), so that the flag's promise holds in both layers. Rights
    /// on a writable mount the profile keeps below it stay. Rights on a directory above it
    /// (strict's `/tmp`) still cover it: Landlock only adds, and they hold elsewhere.
    pub fn displace(&self, base: &mut Sections) {
        let flagged: Vec<(&str, bool)> = self
            .binds
            .iter()
            .map(|(_, dst, ro, _)| (dst.as_str(), *ro))
            .chain(self.tmpfs.iter().map(|t| (t.as_str(), false)))
            .collect();
        if let Some(fs) = base.filesystem.as_mut() {
            fs.mounts
                .retain(|e| entry_target(e).is_none_or(|t| !flagged.iter().any(|(f, _)| *f == t)));
        }
        let writable: Vec<String> = base
            .filesystem
            .iter()
            .flat_map(|fs| &fs.mounts)
            .filter(|e| e.bind.is_some() || e.dev_bind.is_some() || e.tmpfs.is_some())
            .filter_map(entry_target)
            .collect();
        for (root, _) in flagged.iter().filter(|(_, ro)| *ro) {
            // Whether rights on `p` stay: outside `root`, or on a writable mount below it.
            let keeps = |p: &str| {
                !within(p, root)
                    || writable
                        .iter()
                        .any(|w| w != root && within(w, root) && within(p, w))
            };
            let narrow = |rights: &mut Vec<Spanned<String>>| {
                rights.retain(|a| !landlock::grants_beyond_read_exec(&a.value))
            };
            if let Some(ll) = base.landlock.as_mut() {
                ll.write
                    .retain(|p| normal(&p.value).is_none_or(|p| keeps(&p)));
                for rule in &mut ll.rules {
                    if normal(&rule.path.value).is_some_and(|p| !keeps(&p)) {
                        narrow(&mut rule.access);
                    }
                }
                ll.rules.retain(|r| !r.access.is_empty());
            }
            if let Some(fs) = base.filesystem.as_mut() {
                for e in &mut fs.mounts {
                    let inside = entry_target(e).is_some_and(|t| !keeps(&t));
                    if let (true, Some(grants)) = (inside, e.landlock.as_mut()) {
                        narrow(grants);
                    }
                }
            }
        }
    }

    /// The loc of the i-th bind (binds come from `--bind`, `--ro-bind` and the cwd flags).
    fn bind_loc(&self, i: usize) -> Loc {
        let n = self
            .flags
            .iter()
            .enumerate()
            .filter(|(_, f)| f.contains("bind"))
            .nth(i)
            .map_or(0, |(n, _)| n + 1);
        flag_loc(n)
    }
}

trait MaxWith {
    fn max_with(self, other: Loc) -> Loc;
}

impl MaxWith for Loc {
    fn max_with(self, other: Loc) -> Loc {
        if self.column >= other.column {
            self
        } else {
            other
        }
    }
}

/// The path a mount entry mounts at, in normal form (`None` for `remove:` and for a path
/// that does not parse, which validation reports).
fn entry_target(e: &filesystem::MountEntry) -> Option<String> {
    [
        &e.ro_bind,
        &e.bind,
        &e.dev_bind,
        &e.tmpfs,
        &e.dir,
        &e.symlink,
        &e.file,
        &e.mask,
    ]
    .into_iter()
    .flatten()
    .next()
    .and_then(|t| normal(&t.value))
}

fn normal(raw: &str) -> Option<String> {
    SandboxPath::parse(raw).ok().map(|p| p.as_str().to_string())
}

/// `path` is `root` or below it (both in normal form).
fn within(path: &str, root: &str) -> bool {
    root == "/" || path == root || path.strip_prefix(root).is_some_and(|r| r.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Spanned<String> {
        Spanned {
            value: v.into(),
            loc: Loc::at(1, 1),
        }
    }

    fn rule(path: &str, access: &[&str]) -> landlock::RuleSection {
        landlock::RuleSection {
            path: s(path),
            access: access.iter().map(|a| s(a)).collect(),
            optional: false,
        }
    }

    /// A base like cli-write's, with a writable `out` below the directory and a rule of
    /// fine-grained rights on a file in it.
    fn base() -> Sections {
        let mut fs = filesystem::Section::default();
        fs.mounts.push(filesystem::MountEntry {
            bind: Some(s("/w")),
            ..Default::default()
        });
        fs.mounts.push(filesystem::MountEntry {
            bind: Some(s("/w/out")),
            ..Default::default()
        });
        fs.mounts.push(filesystem::MountEntry {
            ro_bind: Some(s("/w/doc")),
            landlock: Some(vec![s("read"), s("write")]),
            ..Default::default()
        });
        let ll = landlock::Section {
            read: vec![s("/w")],
            write: vec![s("/w"), s("/w/out/x"), s("/tmp")],
            rules: vec![
                rule("/w/log", &["read-file", "write-file", "truncate"]),
                rule("/w/tmp", &["make-reg"]),
            ],
            ..Default::default()
        };
        Sections {
            filesystem: Some(fs),
            landlock: Some(ll),
            ..Default::default()
        }
    }

    #[test]
    fn a_read_only_flag_takes_the_write_rights_below_it_but_not_a_writable_mounts() {
        let mut b = base();
        let o = Overlay {
            binds: vec![("/w".into(), "/w".into(), true, Some(true))],
            ..Default::default()
        };
        o.displace(&mut b);
        let fs = b.filesystem.unwrap();
        let targets: Vec<Option<String>> = fs.mounts.iter().map(entry_target).collect();
        assert_eq!(targets, [Some("/w/out".into()), Some("/w/doc".into())]);
        let doc = fs.mounts[1].landlock.as_ref().unwrap();
        assert_eq!(
            doc.iter().map(|a| a.value.as_str()).collect::<Vec<_>>(),
            ["read"]
        );
        let ll = b.landlock.unwrap();
        let writes: Vec<&str> = ll.write.iter().map(|p| p.value.as_str()).collect();
        assert_eq!(writes, ["/w/out/x", "/tmp"]);
        assert_eq!(ll.read.len(), 1);
        // The rule on /w/log keeps its read right; the one with only make-reg goes.
        assert_eq!(ll.rules.len(), 1);
        let log: Vec<&str> = ll.rules[0]
            .access
            .iter()
            .map(|a| a.value.as_str())
            .collect();
        assert_eq!(log, ["read-file"]);
    }

    #[test]
    fn a_writable_flag_replaces_the_entry_and_keeps_the_rights() {
        let mut b = base();
        let o = Overlay {
            binds: vec![("/elsewhere".into(), "/w".into(), false, None)],
            ..Default::default()
        };
        o.displace(&mut b);
        assert_eq!(b.filesystem.unwrap().mounts.len(), 2);
        let ll = b.landlock.unwrap();
        assert_eq!(ll.write.len(), 3);
        assert_eq!(ll.rules.len(), 2);
    }

    #[test]
    fn beyond_read_and_exec() {
        for name in [
            "write",
            "write-file",
            "make-reg",
            "remove-dir",
            "truncate",
            "refer",
        ] {
            assert!(landlock::grants_beyond_read_exec(name), "{name}");
        }
        for name in [
            "read",
            "exec",
            "read-file",
            "read-dir",
            "execute",
            "nonsense",
        ] {
            assert!(!landlock::grants_beyond_read_exec(name), "{name}");
        }
    }
}
