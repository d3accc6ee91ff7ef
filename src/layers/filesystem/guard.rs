//! Guarded host paths ([`Guarded`]: lasagna's configuration, startup files, a repository's
//! hooks) kept read-only inside wherever a writable bind shows them: what a payload writes
//! there would act after the run, as the next run's policy or the user's next login.
//!
//! A read-only bind of the guarded path alone is not enough: a directory above it inside
//! the writable bind could be renamed away and a new one made in its place (`mv ~/.config
//! ~/.old; mkdir -p ~/.config/lasagna/...`). A mount point cannot be renamed or removed
//! (EBUSY), so every directory between the writable bind and the guarded path is bound
//! onto itself, writable as before, and the guarded path itself read-only. A guarded
//! directory that is missing is created as a mount point for the run and masked (an empty
//! read-only tmpfs), so that the payload cannot create it. A symlink on the way cannot
//! carry a directory mount: what it leads to is guarded, and a note says the link itself
//! can be replaced.

use std::collections::HashSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::hostfs::{self, Kind, Links};
use crate::types::SandboxPath;

use super::view::{CreateKind, Entry, FsPlan, HostPlace, Need, Site, What};
use super::{BindAccess, Guard, Guarded};

/// How many symlinks are followed from one guarded path to what it leads to.
const MAX_LINKS: u8 = 4;

/// A guarded path as the plan keeps it inside: read-only, or masked because it is missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    pub class: Guard,
    pub host: PathBuf,
    pub target: SandboxPath,
    pub masked: bool,
}

/// One guarded path still to place: (host path, class, masked when missing, links followed).
type Pending = (PathBuf, Guard, bool, u8);

impl FsPlan {
    /// Keep every guarded path read-only where a writable bind of this plan shows it. The
    /// entries it needs go right after the bind they are inside, shallowest first, so that
    /// the profile's own later entries below them (masks, binds) stay on top.
    pub(super) fn guard(&mut self, guarded: &[Guarded], planned: &mut HashSet<PathBuf>) {
        let writable = self.entries.iter().any(
            |e| matches!(&e.what, What::Bind { access, .. } if *access != BindAccess::ReadOnly),
        );
        if !writable {
            return;
        }
        let mut extra: Vec<(usize, Entry)> = Vec::new();
        let mut pending: Vec<Pending> = Vec::new();
        for g in guarded {
            pending.push((g.path.clone(), g.class, g.mask_missing, 0));
            // The same path through root's links (/home -> /data/home), as binds name it.
            if let Some(canonical) = canonical(&g.path).filter(|c| *c != g.path) {
                pending.push((canonical, g.class, g.mask_missing, 0));
            }
        }
        while let Some(next) = pending.pop() {
            self.guard_one(next, &mut extra, &mut pending, planned);
        }
        if extra.is_empty() {
            return;
        }
        extra.sort_by_key(|(k, e)| (*k, e.target.as_str().matches('/').count()));
        let mut extra = extra.into_iter().peekable();
        let mut entries = Vec::with_capacity(self.entries.len() + extra.len());
        for (i, e) in std::mem::take(&mut self.entries).into_iter().enumerate() {
            entries.push(e);
            while let Some((_, x)) = extra.next_if(|(k, _)| *k == i) {
                entries.push(x);
            }
        }
        self.entries = entries;
    }

    fn guard_one(
        &mut self,
        (path, class, mask_missing, links): Pending,
        extra: &mut Vec<(usize, Entry)>,
        pending: &mut Vec<Pending>,
        planned: &mut HashSet<PathBuf>,
    ) {
        for k in 0..self.entries.len() {
            let entry = &self.entries[k];
            let (source, dir, access, idmap) = match &entry.what {
                What::Bind {
                    source,
                    dir,
                    access,
                    idmap,
                    ..
                } if *access != BindAccess::ReadOnly => (source.clone(), *dir, *access, *idmap),
                _ => continue,
            };
            let target = entry.target.clone();
            // The bind shows the guarded path itself, or a part of it: read-only.
            if source.starts_with(&path) {
                if let What::Bind { access, .. } = &mut self.entries[k].what {
                    *access = BindAccess::ReadOnly;
                }
                self.notes.push(format!(
                    "{target} is bound read-only, not read-write: host {} is {} ({}; \
                     `unprotect: [{}]` lifts it)",
                    source.display(),
                    class.describe(),
                    class.why(),
                    class.key()
                ));
                self.kept.push(Kept {
                    class,
                    host: source,
                    target,
                    masked: false,
                });
                continue;
            }
            if !dir || !path.starts_with(&source) {
                continue;
            }
            let Ok(rel) = path.strip_prefix(&source) else {
                continue;
            };
            let Some(inside) = join(&target, rel) else {
                continue;
            };
            if self.shown_by(&inside) != Some(k) {
                continue;
            }
            let bind = Bound {
                index: k,
                source: &source,
                target: &target,
                access,
                idmap,
            };
            let names: Vec<OsString> = rel.iter().map(|c| c.to_os_string()).collect();
            let walked = self.walk_guarded(&bind, &names, class, mask_missing, extra, planned);
            if let Some((link, to, rest)) = walked {
                match hostfs::walk(&to, Links::Any, true) {
                    Ok(real) if links < MAX_LINKS => {
                        self.notes.push(format!(
                            "{link} is a symlink inside a writable bind: what it leads to ({}) \
                             is kept read-only, but the link itself can be replaced from inside \
                             ({}: {})",
                            real.path.display(),
                            class.describe(),
                            class.why()
                        ));
                        pending.push((real.path.join(rest), class, mask_missing, links + 1));
                    }
                    _ => self.notes.push(format!(
                        "{link} is a symlink inside a writable bind and is not kept read-only \
                         ({}: {})",
                        class.describe(),
                        class.why()
                    )),
                }
            }
        }
    }

    /// Walk `names` below the writable bind without following links: each directory on
    /// the way is bound onto itself, the last component read-only (or masked when it is
    /// missing and `mask_missing`). A symlink on the way ends the walk: its host path, its
    /// sandbox path and what is left of `names` are returned.
    fn walk_guarded(
        &mut self,
        bind: &Bound<'_>,
        names: &[OsString],
        class: Guard,
        mask_missing: bool,
        extra: &mut Vec<(usize, Entry)>,
        planned: &mut HashSet<PathBuf>,
    ) -> Option<(SandboxPath, PathBuf, PathBuf)> {
        let Ok(mut node) = hostfs::walk(bind.source, Links::None, true) else {
            return None;
        };
        let mut host = bind.source.to_path_buf();
        let mut inside = bind.target.clone();
        for (i, name) in names.iter().enumerate() {
            let last = i + 1 == names.len();
            host = host.join(name);
            inside = join(&inside, Path::new(name))?;
            let child = match node.child(name) {
                Ok(child) => child,
                Err(e) => {
                    self.notes.push(format!(
                        "{inside} ({}) not kept read-only: {}",
                        class.describe(),
                        e.desc()
                    ));
                    return None;
                }
            };
            match child {
                None => {
                    if mask_missing {
                        let rest: PathBuf = names[i + 1..].iter().collect();
                        let leaf = host.join(&rest);
                        if let Some(leaf_inside) = join(&inside, &rest) {
                            self.mask_missing(bind, &leaf, &leaf_inside, class, extra, planned);
                        }
                    }
                    return None;
                }
                Some(c) if c.kind() == Kind::Symlink => {
                    let rest: PathBuf = names[i + 1..].iter().collect();
                    return Some((inside, host, rest));
                }
                Some(c) if !last => {
                    if c.kind() != Kind::Dir {
                        return None;
                    }
                    // Onto itself, as writable as before: a mount point cannot be renamed.
                    let on_the_way = What::Bind {
                        source: host.clone(),
                        expect: Some(c.meta),
                        dir: true,
                        access: bind.access,
                        idmap: bind.idmap,
                    };
                    add(extra, bind.index, entry(&inside, on_the_way, &host));
                    node = Rc::new(c);
                }
                Some(c) => {
                    let leaf_access = BindAccess::ReadOnly;
                    let what = What::Bind {
                        source: host.clone(),
                        expect: Some(c.meta),
                        dir: c.kind() == Kind::Dir,
                        access: leaf_access,
                        idmap: None,
                    };
                    add(extra, bind.index, entry(&inside, what, &host));
                    self.kept.push(Kept {
                        class,
                        host: host.clone(),
                        target: inside.clone(),
                        masked: false,
                    });
                }
            }
        }
        None
    }

    /// A guarded directory that is missing (or below a missing one): the supervisor makes
    /// it and the missing directories above it for the run (and removes each after it
    /// unless the payload wrote into it), and it is masked.
    fn mask_missing(
        &mut self,
        bind: &Bound<'_>,
        host: &Path,
        inside: &SandboxPath,
        class: Guard,
        extra: &mut Vec<(usize, Entry)>,
        planned: &mut HashSet<PathBuf>,
    ) {
        let Ok(rel) = host.strip_prefix(bind.source) else {
            return;
        };
        let place = HostPlace {
            target: inside,
            bind: bind.target,
            read_only: false,
            for_payload: false,
            perms: 0o755,
            link: None,
        };
        let before = self.creates.len();
        match self.prepare_host(bind.source, rel, Need::Dir, place, planned) {
            Ok(()) => {
                // The missing directories above it are the payload's to use, as if they
                // had been there: its own, bound onto themselves so that they cannot be
                // renamed away; the guarded one is masked.
                let made: Vec<PathBuf> = self.creates[before..].iter().map(|c| c.path()).collect();
                let above = made.len().saturating_sub(1);
                for c in &mut self.creates[before..before + above] {
                    c.kind = CreateKind::Dir {
                        perms: 0o755,
                        for_payload: true,
                    };
                }
                for dir in &made[..above] {
                    let Some(at) = dir
                        .strip_prefix(bind.source)
                        .ok()
                        .and_then(|r| join(bind.target, r))
                    else {
                        continue;
                    };
                    // Made for the payload (owned by the idmapped bind's owner, or by the
                    // payload's host uid), bound as the bind around it.
                    let created = What::Bind {
                        source: dir.clone(),
                        expect: None,
                        dir: true,
                        access: bind.access,
                        idmap: bind.idmap,
                    };
                    add(extra, bind.index, entry(&at, created, dir));
                }
                add(extra, bind.index, entry(inside, What::Mask, host));
                self.kept.push(Kept {
                    class,
                    host: host.to_path_buf(),
                    target: inside.clone(),
                    masked: true,
                });
            }
            Err(e) => self.notes.push(format!(
                "{inside} ({}) not masked: {}",
                class.describe(),
                e.text()
            )),
        }
    }

    /// The index of the entry that shows `p`: the deepest mount at or above it (the later
    /// one of two at the same path). Directories the plan creates change nothing.
    fn shown_by(&self, p: &SandboxPath) -> Option<usize> {
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, e)| p.starts_with(&e.target) && !matches!(e.what, What::Dir { .. }))
            .max_by_key(|(i, e)| (e.target.as_str().len(), *i))
            .map(|(i, _)| i)
    }
}

/// The writable bind a guarded path is inside.
struct Bound<'a> {
    index: usize,
    source: &'a Path,
    target: &'a SandboxPath,
    access: BindAccess,
    /// The writable bind's idmap, which the directories bound again below it keep.
    idmap: Option<(u32, u32)>,
}

fn entry(target: &SandboxPath, what: What, host: &Path) -> Entry {
    Entry {
        target: target.clone(),
        what,
        at: Site::Host {
            path: host.to_path_buf(),
        },
    }
}

/// Add an entry after the bind at `index`, once per target: a read-only one replaces a
/// writable one at the same place (a guarded directory that is also on the way to another).
fn add(extra: &mut Vec<(usize, Entry)>, index: usize, new: Entry) {
    let restrictive = |e: &Entry| {
        matches!(
            e.what,
            What::Mask
                | What::Bind {
                    access: BindAccess::ReadOnly,
                    ..
                }
        )
    };
    match extra.iter_mut().find(|(_, e)| e.target == new.target) {
        Some((_, old)) if restrictive(&new) && !restrictive(old) => *old = new,
        Some(_) => {}
        None => extra.push((index, new)),
    }
}

fn join(base: &SandboxPath, rel: &Path) -> Option<SandboxPath> {
    let rel = rel.to_str()?;
    if rel.is_empty() {
        return Some(base.clone());
    }
    let joined = if base.is_root() {
        format!("/{rel}")
    } else {
        format!("{base}/{rel}")
    };
    SandboxPath::parse(&joined).ok()
}

/// `path` with the links of its longest existing ancestor resolved.
fn canonical(path: &Path) -> Option<PathBuf> {
    let mut rest = Vec::new();
    let mut at = path;
    loop {
        if let Ok(real) = std::fs::canonicalize(at) {
            return Some(
                rest.iter()
                    .rev()
                    .fold(real, |p, n: &&std::ffi::OsStr| p.join(n)),
            );
        }
        rest.push(at.file_name()?);
        at = at.parent()?;
    }
}
