//! The filesystem layer's plan: what the sandbox's tree will hold and where each piece
//! comes from, decided before anything is created.
//!
//! Every bind source is walked on the host through descriptors ([`crate::hostfs`]): a
//! symlink on the way is followed only when root owns it in a directory only root can
//! change, and the plan keeps the canonical path and the device and inode it found, which
//! the child compares when it opens the source again. A source that is itself a symlink is
//! recreated as the same link when the link leads, inside the sandbox, to the same object
//! it leads to on the host (`/bin -> usr/bin` with `/usr` bound); otherwise it is followed
//! under the same rule, or refused.
//!
//! Every mount point is placed: on a tmpfs of this run ([`Site::Own`], where the child
//! creates what is missing), in lasagna's `/proc` or `/dev` ([`Site::Builtin`]), or inside a
//! bound host directory ([`Site::Host`]), where a payload may have planted links between runs.
//! There nothing is followed: a link on the way refuses the run; what is missing is created
//! by the supervisor before the clone, relative to directory descriptors, and removed after
//! the run ([`super::host`]), and never inside a read-only bind.

use std::collections::HashSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::hostfs::{self, Kind, Links, Meta, WalkError};
use crate::types::SandboxPath;

use super::{BindAccess, Config, Op, LAYER};

/// What the filesystem layer will build, in order.
#[derive(Debug, Clone)]
pub struct FsPlan {
    pub entries: Vec<Entry>,
    /// What the supervisor creates in bound host directories before the clone.
    pub creates: Vec<Create>,
    /// Problems that stop a required layer (each one sentence, with its fix).
    pub problems: Vec<String>,
    /// Entries left out because the host lacks what they name (`optional` binds), or
    /// because the layer is best-effort and they could not be placed.
    pub notes: Vec<String>,
    pub read_only_root: bool,
    pub proc: bool,
    pub dev: bool,
    pub dev_shm_size: u64,
    pub fresh_proc: bool,
    /// The guarded host paths this view keeps read-only or masks ([`super::guard`]).
    pub kept: Vec<super::guard::Kept>,
    /// As root, the supervisor opens every bind source and makes its tree, which the child
    /// attaches ([`super::idmap`]): the caller chose the binds, and the child, unprivileged
    /// on the host, could not reach a source below a directory only root may enter.
    pub trees_by_supervisor: bool,
}

/// One piece of the tree.
#[derive(Debug, Clone)]
pub struct Entry {
    pub target: SandboxPath,
    pub what: What,
    pub at: Site,
}

#[derive(Debug, Clone)]
pub enum What {
    /// A bind of the host object at `source` (canonical), which is `expect` (device and
    /// inode compared by the child); `None`: a directory the supervisor creates for this
    /// run (step 1), bound onto itself.
    Bind {
        source: PathBuf,
        expect: Option<Meta>,
        dir: bool,
        access: BindAccess,
        /// As root, an idmapped bind: the host owner (uid, gid) that is the payload's ids
        /// on it. The view sets the source's owner where the entry asks; the plan clears it
        /// where the other layers cannot make it safe ([`crate::plan`]).
        idmap: Option<(u32, u32)>,
    },
    /// A symlink with this text.
    Link {
        to: String,
    },
    Tmpfs {
        size: Option<u64>,
        perms: u32,
    },
    Dir {
        perms: u32,
    },
    File {
        content: Vec<u8>,
        perms: u32,
    },
    Mask,
}

/// Where an entry's mount point (or the entry itself) lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Site {
    /// On the sandbox root or a tmpfs of this run: nothing outside can reach it, and the
    /// child creates what is missing by path.
    Own,
    /// Inside lasagna's `/proc` or `/dev`.
    Builtin,
    /// Inside a bound host directory, at this host path: it exists when the child runs
    /// (the supervisor created it if it had to).
    Host { path: PathBuf },
}

/// Something the supervisor creates in a bound host directory before the clone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Create {
    /// The directory it goes in (canonical; it exists, or an earlier `Create` makes it).
    pub parent: PathBuf,
    pub name: OsString,
    pub kind: CreateKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateKind {
    /// A directory; `for_payload`: a `dir:` entry the payload uses (owned by its host uid),
    /// not a mount point.
    Dir {
        perms: u32,
        for_payload: bool,
    },
    /// An empty file, the mount point of a file bind or an inline file.
    File,
    Symlink {
        to: String,
    },
}

impl Create {
    pub fn path(&self) -> PathBuf {
        self.parent.join(&self.name)
    }
}

/// Where a path inside the sandbox leads, for rules that name sandbox paths (Landlock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// A host object (through a bind).
    Host(PathBuf),
    /// On a tmpfs of this run; `exists`: something the plan creates is there.
    Own { exists: bool },
    /// In lasagna's `/proc` or `/dev`: only the child can tell.
    Builtin,
    /// At or below a symlink the view creates.
    Link { at: SandboxPath, to: String },
}

/// How the sandbox path of a rule resolves in the view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RulePath {
    /// It is a real object at this path (the same path, or the path after links the view
    /// itself creates, with a note saying so).
    Real {
        path: SandboxPath,
        note: Option<String>,
    },
    Missing(String),
    /// It passes through a link the view does not control (planted in a bound directory).
    Link(String),
}

/// The bind of a host object: `target` in the sandbox, `source` its canonical host path.
#[derive(Debug, Clone)]
struct Bound {
    target: SandboxPath,
    source: PathBuf,
    dir: bool,
}

/// Plan the tree. `fresh_proc`: a new pid namespace lets the child mount a fresh `/proc`
/// (otherwise the host's is bound).
pub fn plan(cfg: &Config, fresh_proc: bool) -> FsPlan {
    let mut plan = FsPlan {
        entries: Vec::new(),
        creates: Vec::new(),
        problems: Vec::new(),
        notes: Vec::new(),
        read_only_root: cfg.read_only_root,
        proc: cfg.proc,
        dev: cfg.dev,
        dev_shm_size: cfg.dev_shm_size,
        fresh_proc,
        kept: Vec::new(),
        trees_by_supervisor: false,
    };
    // Every bind source first: a recreated link is checked against the whole view.
    let sources: Vec<Option<Result<Rc<hostfs::Node>, WalkError>>> = cfg
        .ops
        .iter()
        .map(|op| match op {
            Op::Bind { source, .. } => Some(hostfs::walk(
                Path::new(source.as_str()),
                Links::Trusted,
                false,
            )),
            _ => None,
        })
        .collect();
    let bound: Vec<Bound> = cfg
        .ops
        .iter()
        .zip(&sources)
        .filter_map(|(op, src)| match (op, src) {
            (Op::Bind { target, .. }, Some(Ok(node))) if node.kind() != Kind::Symlink => {
                Some(Bound {
                    target: target.clone(),
                    source: node.path.clone(),
                    dir: node.kind() == Kind::Dir,
                })
            }
            _ => None,
        })
        .collect();
    let mut planned: HashSet<PathBuf> = HashSet::new();
    for (op, source) in cfg.ops.iter().zip(sources) {
        let target = op.target().clone();
        let what = match op {
            Op::Bind {
                source: raw,
                access,
                optional,
                idmap,
                ..
            } => {
                let Some(source) = source else { continue };
                match bind_source(raw, &target, source, *optional, *access, *idmap, &bound) {
                    Ok(Some(what)) => what,
                    Ok(None) => {
                        plan.notes.push(format!(
                            "optional bind of {raw} (for {target}) left out: not on this host"
                        ));
                        continue;
                    }
                    Err(problem) => {
                        plan.problems.push(problem);
                        continue;
                    }
                }
            }
            Op::Tmpfs { size, perms, .. } => What::Tmpfs {
                size: *size,
                perms: *perms,
            },
            Op::Dir { perms, .. } => What::Dir { perms: *perms },
            Op::Symlink { to, .. } => What::Link { to: to.clone() },
            Op::File { content, perms, .. } => What::File {
                content: content.clone(),
                perms: *perms,
            },
            Op::Mask { .. } => What::Mask,
        };
        match plan.place(&target, &what, &mut planned) {
            Ok(at) => plan.entries.push(Entry { target, what, at }),
            Err(NotPlaced::Nothing(_)) if matches!(op, Op::Mask { optional: true, .. }) => {
                plan.notes.push(format!(
                    "optional mask of {target} left out: nothing is there"
                ))
            }
            Err(NotPlaced::Nothing(problem) | NotPlaced::Problem(problem)) => {
                plan.problems.push(problem)
            }
        }
    }
    plan.guard(&cfg.guarded, &mut planned);
    plan
}

/// Decide what a bind becomes: `Ok(None)` when an optional source is absent.
fn bind_source(
    raw: &SandboxPath,
    target: &SandboxPath,
    source: Result<Rc<hostfs::Node>, WalkError>,
    optional: bool,
    access: BindAccess,
    idmap: bool,
    bound: &[Bound],
) -> Result<Option<What>, String> {
    let owner = |meta: &Meta| idmap.then_some((meta.uid, meta.gid));
    let node = match source {
        Ok(node) => node,
        Err(WalkError::Missing { .. }) | Err(WalkError::NotADirectory { .. }) if optional => {
            return Ok(None)
        }
        Err(WalkError::Missing { .. }) | Err(WalkError::NotADirectory { .. }) => {
            return Err(format!(
                "{LAYER}: the bind source {raw} (for {target}) does not exist on this host; \
                 create it, or mark the entry `optional: true` to skip it when absent"
            ))
        }
        Err(e) => return Err(format!("{LAYER}: bind source {raw} (for {target}): {e}")),
    };
    if node.kind() != Kind::Symlink {
        return Ok(Some(What::Bind {
            source: node.path.clone(),
            expect: Some(node.meta),
            dir: node.kind() == Kind::Dir,
            access,
            idmap: owner(&node.meta),
        }));
    }
    let text = node.link_text().map_err(|e| {
        format!(
            "{LAYER}: read the symlink {}: {}",
            node.path.display(),
            e.desc()
        )
    })?;
    let text = text.to_string_lossy().into_owned();
    // The same link inside the sandbox, when it leads to the same object there.
    if let Some(inside) = lexical(target.parent().as_ref(), &text) {
        if let Some(host) = host_of(bound, &inside) {
            // The usual case, `/bin -> usr/bin` with `/usr` bound at `/usr`: the link names
            // the same host path inside as outside, so it leads to the same object.
            let outside = node.path.parent().and_then(|d| lexical_host(d, &text));
            if outside.as_deref() == Some(host.as_path()) {
                return Ok(Some(What::Link { to: text }));
            }
            let there = hostfs::walk(&host, Links::Any, true);
            let here = hostfs::walk(&node.path, Links::Any, true);
            if let (Ok(a), Ok(b)) = (there, here) {
                if a.meta.same(&b.meta) {
                    return Ok(Some(What::Link { to: text }));
                }
            }
        }
    }
    // Otherwise the link is followed, if it is trustworthy, and its target is bound.
    match hostfs::walk(&node.path, Links::Trusted, true) {
        Ok(real) => Ok(Some(What::Bind {
            source: real.path.clone(),
            expect: Some(real.meta),
            dir: real.kind() == Kind::Dir,
            access,
            idmap: owner(&real.meta),
        })),
        Err(WalkError::Missing { .. }) if optional => Ok(None),
        Err(WalkError::Missing { at }) => Err(format!(
            "{LAYER}: the bind source {raw} (for {target}) is a symlink to {}, and {} does not \
             exist on this host; bind what exists, or mark the entry `optional: true`",
            crate::text::quote(&text),
            at.display()
        )),
        Err(e) => Err(format!("{LAYER}: bind source {raw} (for {target}): {e}")),
    }
}

/// `text` (a link's content) resolved lexically against the directory `dir` of the sandbox;
/// `None` when it does not make a path (empty).
fn lexical(dir: Option<&SandboxPath>, text: &str) -> Option<SandboxPath> {
    let base = if text.starts_with('/') {
        String::new()
    } else {
        dir.map(|d| d.as_str().to_string()).unwrap_or_default()
    };
    let mut parts: Vec<&str> = Vec::new();
    let joined = format!("{base}/{text}");
    for part in joined.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    SandboxPath::parse(&format!("/{}", parts.join("/"))).ok()
}

/// A link's text resolved lexically against its host directory `dir` (canonical).
fn lexical_host(dir: &Path, text: &str) -> Option<PathBuf> {
    let dir = SandboxPath::parse(&dir.to_string_lossy()).ok()?;
    lexical(Some(&dir), text).map(|p| PathBuf::from(p.as_str()))
}

/// The host path a sandbox path shows, through the binds of the whole view.
fn host_of(bound: &[Bound], p: &SandboxPath) -> Option<PathBuf> {
    let b = bound
        .iter()
        .filter(|b| p.starts_with(&b.target))
        .max_by_key(|b| b.target.as_str().len())?;
    let rel = rel(p, &b.target);
    if rel.as_os_str().is_empty() {
        Some(b.source.clone())
    } else if b.dir {
        Some(b.source.join(rel))
    } else {
        None
    }
}

/// `p` relative to its ancestor `base` (empty when equal).
fn rel(p: &SandboxPath, base: &SandboxPath) -> PathBuf {
    let rest = if base.is_root() {
        p.relative()
    } else {
        p.as_str()[base.as_str().len()..].trim_start_matches('/')
    };
    PathBuf::from(rest)
}

/// What a mount point or created entry needs at its place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Need {
    Dir,
    File,
    /// Nothing may be there: the entry is created (a symlink).
    Absent,
    /// It must already be there (a mask).
    Existing,
}

impl FsPlan {
    /// One line per planned step, in order: each entry with where it lives, then what
    /// the supervisor creates on the host. What the snapshot tests compare.
    pub fn steps(&self) -> Vec<String> {
        let site = |at: &Site| match at {
            Site::Own => "own".to_string(),
            Site::Builtin => "builtin".to_string(),
            Site::Host { path } => format!("host {}", path.display()),
        };
        let mut out: Vec<String> = self
            .entries
            .iter()
            .map(|e| {
                let what = match &e.what {
                    What::Bind {
                        source,
                        dir,
                        access,
                        ..
                    } => format!(
                        "bind {} {} {:?}",
                        if *dir { "dir" } else { "file" },
                        source.display(),
                        access
                    ),
                    What::Link { to } => format!("symlink -> {to}"),
                    What::Tmpfs { size, perms } => format!("tmpfs {size:?} {perms:o}"),
                    What::Dir { perms } => format!("dir {perms:o}"),
                    What::File { content, perms } => {
                        format!("file {} bytes {perms:o}", content.len())
                    }
                    What::Mask => "mask".to_string(),
                };
                format!("{}: {what} ({})", e.target, site(&e.at))
            })
            .collect();
        for c in &self.creates {
            let kind = match &c.kind {
                CreateKind::Dir { perms, for_payload } => {
                    format!(
                        "dir {perms:o}{}",
                        if *for_payload { " for the payload" } else { "" }
                    )
                }
                CreateKind::File => "file".to_string(),
                CreateKind::Symlink { to } => format!("symlink -> {to}"),
            };
            out.push(format!("create {}: {kind}", c.path().display()));
        }
        out
    }

    /// The deepest entry whose target is a strict ancestor of `t`, among those that change
    /// what is below them (mounts, links, files; not directories or masks).
    fn container(&self, t: &SandboxPath) -> Option<&Entry> {
        self.entries
            .iter()
            .filter(|e| t.starts_with(&e.target) && &e.target != t)
            .filter(|e| !matches!(e.what, What::Dir { .. } | What::Mask))
            .max_by_key(|e| e.target.as_str().len())
    }

    fn builtin(&self, t: &SandboxPath) -> bool {
        let under =
            |root: &str| t.starts_with(&SandboxPath::parse(root).expect("a valid constant path"));
        (self.proc && under("/proc")) || (self.dev && under("/dev"))
    }

    /// Whether an entry of this plan is at `t` or below it (so `t` exists).
    fn created(&self, t: &SandboxPath) -> bool {
        t.is_root() || self.entries.iter().any(|e| e.target.starts_with(t))
    }

    /// Place one entry, planning what the host must get first.
    fn place(
        &mut self,
        target: &SandboxPath,
        what: &What,
        planned: &mut HashSet<PathBuf>,
    ) -> Result<Site, NotPlaced> {
        let need = match what {
            What::Bind { dir: true, .. } | What::Tmpfs { .. } | What::Dir { .. } => Need::Dir,
            What::Bind { dir: false, .. } | What::File { .. } => Need::File,
            What::Link { .. } => Need::Absent,
            What::Mask => Need::Existing,
        };
        let container = self.container(target).cloned();
        let Some(container) = container else {
            if self.builtin(target) {
                return Ok(Site::Builtin);
            }
            if need == Need::Existing && !self.created(target) {
                return Err(NotPlaced::Nothing(missing_mask(
                    target,
                    "nothing in the sandbox is there",
                )));
            }
            return Ok(Site::Own);
        };
        match &container.what {
            What::Link { to } => Err(NotPlaced::Problem(format!(
                "{LAYER}: {target} is below the symlink {} (to {}); write the path without the \
                 link",
                container.target,
                crate::text::quote(to)
            ))),
            What::File { .. } | What::Bind { dir: false, .. } => Err(NotPlaced::Problem(format!(
                "{LAYER}: {target} is below {}, which is a file",
                container.target
            ))),
            What::Tmpfs { .. } | What::Dir { .. } | What::Mask => {
                if need == Need::Existing && !self.created(target) {
                    return Err(NotPlaced::Nothing(missing_mask(
                        target,
                        "nothing in the sandbox is there",
                    )));
                }
                Ok(Site::Own)
            }
            What::Bind { source, access, .. } => {
                let rel = rel(target, &container.target);
                let host = source.join(&rel);
                let read_only = *access == BindAccess::ReadOnly;
                let for_payload = matches!(what, What::Dir { .. });
                let perms = match what {
                    What::Dir { perms } => *perms,
                    _ => 0o755,
                };
                self.prepare_host(
                    source,
                    &rel,
                    need,
                    HostPlace {
                        target,
                        bind: &container.target,
                        read_only,
                        for_payload,
                        perms,
                        link: match what {
                            What::Link { to } => Some(to.clone()),
                            _ => None,
                        },
                    },
                    planned,
                )?;
                Ok(Site::Host { path: host })
            }
        }
    }

    /// Walk `rel` below the bound host directory `base` without following any link, and
    /// plan the creation of what is missing.
    pub(super) fn prepare_host(
        &mut self,
        base: &Path,
        rel: &Path,
        need: Need,
        place: HostPlace<'_>,
        planned: &mut HashSet<PathBuf>,
    ) -> Result<(), NotPlaced> {
        let target = place.target;
        let fail = |e: WalkError| format!("{LAYER}: {target}: {e}");
        let mut dir = Some(hostfs::walk(base, Links::None, true).map_err(fail)?);
        let mut dir_path = base.to_path_buf();
        let names: Vec<OsString> = rel.iter().map(|c| c.to_os_string()).collect();
        for (i, name) in names.iter().enumerate() {
            let last = i + 1 == names.len();
            let path = dir_path.join(name);
            // Inside a directory this plan creates, everything is missing.
            let found = match &dir {
                Some(d) => d
                    .child(name)
                    .map_err(|e| format!("{LAYER}: {target}: {}: {}", path.display(), e.desc()))?,
                None => None,
            };
            match found {
                Some(node) if node.kind() == Kind::Symlink => {
                    return Err(NotPlaced::Problem(format!(
                        "{LAYER}: check mount point {target}: {} is a symlink in the bound host \
                         directory {} (ELOOP); no link there is followed (a payload could have \
                         planted it); remove it on the host",
                        path.display(),
                        place.bind
                    )))
                }
                Some(node) if !last => {
                    if node.kind() != Kind::Dir {
                        return Err(NotPlaced::Problem(format!(
                            "{LAYER}: {target}: {} is not a directory",
                            path.display()
                        )));
                    }
                    dir = Some(Rc::new(node));
                }
                Some(node) => {
                    let ok = match need {
                        Need::Dir => node.kind() == Kind::Dir,
                        Need::File => node.kind() != Kind::Dir,
                        Need::Existing => true,
                        Need::Absent => false,
                    };
                    if !ok {
                        return Err(NotPlaced::Problem(format!(
                            "{LAYER}: {target}: {} is a {} on the host, not what the entry needs",
                            path.display(),
                            node.kind()
                        )));
                    }
                }
                None if planned.contains(&path) => dir = None,
                None => {
                    if need == Need::Existing {
                        return Err(NotPlaced::Nothing(missing_mask(
                            target,
                            &format!("{} does not exist", path.display()),
                        )));
                    }
                    if place.read_only {
                        return Err(NotPlaced::Problem(format!(
                            "{LAYER}: {target} does not exist in the read-only bind {} (host {}); \
                             lasagna does not create mount points in a read-only host \
                             directory: create it on the host, or bind {} read-write",
                            place.bind,
                            path.display(),
                            place.bind
                        )));
                    }
                    let kind = if !last {
                        CreateKind::Dir {
                            perms: 0o755,
                            for_payload: false,
                        }
                    } else {
                        match (&place.link, need) {
                            (Some(to), _) => CreateKind::Symlink { to: to.clone() },
                            (None, Need::File) => CreateKind::File,
                            _ => CreateKind::Dir {
                                perms: place.perms,
                                for_payload: place.for_payload,
                            },
                        }
                    };
                    self.creates.push(Create {
                        parent: dir_path.clone(),
                        name: name.clone(),
                        kind,
                    });
                    planned.insert(path.clone());
                    dir = None;
                }
            }
            dir_path = path;
        }
        Ok(())
    }

    /// Where a sandbox path leads in this view.
    pub fn locate(&self, p: &SandboxPath) -> Place {
        let deepest = self
            .entries
            .iter()
            .filter(|e| p.starts_with(&e.target))
            .filter(|e| &e.target == p || !matches!(e.what, What::Dir { .. } | What::Mask))
            .max_by_key(|e| e.target.as_str().len());
        let Some(e) = deepest else {
            if self.builtin(p) {
                return Place::Builtin;
            }
            return Place::Own {
                exists: self.created(p),
            };
        };
        match &e.what {
            What::Link { to } => Place::Link {
                at: e.target.clone(),
                to: to.clone(),
            },
            What::Bind { source, dir, .. } => {
                let rel = rel(p, &e.target);
                if rel.as_os_str().is_empty() {
                    Place::Host(source.clone())
                } else if *dir {
                    Place::Host(source.join(rel))
                } else {
                    Place::Own { exists: false }
                }
            }
            _ if &e.target == p => Place::Own { exists: true },
            What::Tmpfs { .. } => Place::Own {
                exists: self.created(p),
            },
            _ => Place::Own { exists: false },
        }
    }

    /// Resolve a rule path through the view. Links the view itself creates (recreated
    /// sources, `symlink:` entries) are followed, and the note says so; a link inside a
    /// bound host directory is not.
    pub fn rule_path(&self, p: &SandboxPath) -> RulePath {
        let mut path = p.clone();
        let mut via: Vec<String> = Vec::new();
        for _ in 0..40 {
            match self.locate(&path) {
                Place::Link { at, to } => {
                    let Some(resolved) = lexical(at.parent().as_ref(), &to) else {
                        return RulePath::Missing(format!("{at} is an empty symlink"));
                    };
                    let rest = rel(&path, &at);
                    let next = if rest.as_os_str().is_empty() {
                        resolved
                    } else {
                        match SandboxPath::parse(&format!("{}/{}", resolved, rest.display())) {
                            Ok(p) => p,
                            Err(e) => return RulePath::Missing(e),
                        }
                    };
                    via.push(format!(
                        "{at} is a symlink (to {})",
                        crate::text::quote(&to)
                    ));
                    path = next;
                }
                Place::Host(host) => {
                    return match hostfs::walk(&host, Links::None, true) {
                        Ok(_) => real(p, path, via),
                        Err(WalkError::Missing { at }) => RulePath::Missing(format!(
                            "{path} does not exist in the sandbox (host {} is missing)",
                            at.display()
                        )),
                        Err(e @ WalkError::Link { .. }) => RulePath::Link(format!("{path}: {e}")),
                        Err(e) => RulePath::Missing(format!("{path}: {e}")),
                    }
                }
                Place::Own { exists: true } | Place::Builtin => return real(p, path, via),
                Place::Own { exists: false } => {
                    return RulePath::Missing(format!(
                        "{path} does not exist in the sandbox (no mount or entry creates it)"
                    ))
                }
            }
        }
        RulePath::Missing(format!("{p}: more than 40 symlinks"))
    }
}

/// A rule path as it resolves on the host, when there is no filesystem layer (the sandbox
/// sees the host's tree): system links are followed, any other link is not.
pub fn host_rule_path(p: &SandboxPath) -> RulePath {
    match hostfs::walk(Path::new(p.as_str()), Links::Trusted, true) {
        Ok(node) => {
            let canonical = SandboxPath::parse(&node.path.to_string_lossy()).unwrap_or(p.clone());
            let note = (&canonical != p).then(|| {
                format!("{p} resolves to {canonical} on the host (root's symlinks): the rule applies to {canonical}")
            });
            RulePath::Real {
                path: canonical,
                note,
            }
        }
        Err(WalkError::Missing { at }) => RulePath::Missing(format!(
            "{p} does not exist on the host ({} is missing)",
            at.display()
        )),
        Err(e @ WalkError::Link { .. }) => RulePath::Link(format!("{p}: {e}")),
        Err(e) => RulePath::Missing(format!("{p}: {e}")),
    }
}

fn real(asked: &SandboxPath, path: SandboxPath, via: Vec<String>) -> RulePath {
    let note = (!via.is_empty())
        .then(|| format!("{}: the rule for {asked} applies to {path}", via.join(", ")));
    RulePath::Real { path, note }
}

/// Why an entry could not be placed: nothing is there for a mask to hide (which an
/// optional mask accepts), or any other problem.
pub(super) enum NotPlaced {
    Nothing(String),
    Problem(String),
}

impl NotPlaced {
    pub(super) fn text(&self) -> &str {
        match self {
            NotPlaced::Nothing(t) | NotPlaced::Problem(t) => t,
        }
    }
}

impl From<String> for NotPlaced {
    fn from(problem: String) -> NotPlaced {
        NotPlaced::Problem(problem)
    }
}

fn missing_mask(target: &SandboxPath, why: &str) -> String {
    format!(
        "{LAYER}: mask {target} hides nothing: {why}; a mask whose target moved away would \
         leave it readable at its new place, so the run is refused (remove the mask, or set \
         the layer best-effort)"
    )
}

/// Where an entry inside a bound host directory goes.
pub(super) struct HostPlace<'a> {
    pub(super) target: &'a SandboxPath,
    pub(super) bind: &'a SandboxPath,
    pub(super) read_only: bool,
    pub(super) for_payload: bool,
    pub(super) perms: u32,
    pub(super) link: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sp(s: &str) -> SandboxPath {
        SandboxPath::parse(s).unwrap()
    }

    #[test]
    fn link_text_resolves_against_its_directory() {
        assert_eq!(lexical(Some(&sp("/")), "usr/bin"), Some(sp("/usr/bin")));
        assert_eq!(lexical(Some(&sp("/etc")), "../run/x"), Some(sp("/run/x")));
        assert_eq!(lexical(Some(&sp("/a/b")), "/abs"), Some(sp("/abs")));
        assert_eq!(lexical(Some(&sp("/")), "../../x"), Some(sp("/x")));
    }

    #[test]
    fn host_paths_follow_the_deepest_bind() {
        let bound = vec![
            Bound {
                target: sp("/data"),
                source: PathBuf::from("/srv/d"),
                dir: true,
            },
            Bound {
                target: sp("/data/ref"),
                source: PathBuf::from("/settings"),
                dir: true,
            },
        ];
        assert_eq!(
            host_of(&bound, &sp("/data/x")),
            Some(PathBuf::from("/srv/d/x"))
        );
        assert_eq!(
            host_of(&bound, &sp("/data/ref/f")),
            Some(PathBuf::from("/settings/f"))
        );
        assert_eq!(host_of(&bound, &sp("/other")), None);
    }
}
