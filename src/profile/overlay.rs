//! `run`'s ad-hoc flags (`--bind`, `--ro-bind`, `--tmpfs`, `--bind-cwd`, `--ro-bind-cwd`,
//! `--env`, `--keep-env`, `--memory`, `--pids`, `--cpus`) as one more profile layer: an
//! unnamed overlay merged on top of the loaded chain, before validation, as if a last
//! `extends` child had written them.
//!
//! A bind also grants its Landlock rights (read and execute for `--ro-bind`, read, write
//! and execute for `--bind` and `--tmpfs`) when the profile has a `landlock` section: under
//! `strict` a bind without them could be listed but not used. Where the profile has no
//! Landlock section none is added (that would switch the layer on with only these rules).
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
