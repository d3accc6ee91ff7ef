//! The `filesystem` layer: a mount namespace whose root is an empty tmpfs, filled with
//! read-only and read-write binds, tmpfs, directories, symlinks, inline files and masks,
//! a fresh `/proc` with its dangerous files read-only or masked, and a minimal `/dev`.
//!
//! The child switches root with `pivot_root` and detaches the old root, so no path leads
//! back to the host tree (unlike chroot). Everything the child needs (C strings, the list
//! of directories to create) is prepared in the supervisor; the child only makes syscalls.

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, OwnedFd};

use crate::profile::types::Spanned;
use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::{Mode, SFlag};
use serde::Deserialize;

use crate::layers::{ChildContext, ChildError};
use crate::profile::types::{parse_path, parse_size, Loc, ProfileError, Requirement, SandboxPath};
use crate::sys;

const LAYER: &str = "filesystem";

/// One entry of `mounts:`. Exactly one kind key (`ro-bind`, `bind`, `tmpfs`, `dir`,
/// `symlink`, `file`, `mask`) whose value is the path inside the sandbox.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct MountEntry {
    pub ro_bind: Option<Spanned<String>>,
    pub bind: Option<Spanned<String>>,
    pub dev_bind: Option<Spanned<String>>,
    pub tmpfs: Option<Spanned<String>>,
    pub dir: Option<Spanned<String>>,
    pub symlink: Option<Spanned<String>>,
    pub file: Option<Spanned<String>>,
    pub mask: Option<Spanned<String>>,
    /// Host path for binds (default: the same path as inside).
    pub source: Option<Spanned<String>>,
    /// Link text for `symlink`.
    pub to: Option<Spanned<String>>,
    /// Inline content for `file`.
    pub content: Option<String>,
    /// Size limit for `tmpfs`.
    pub size: Option<Spanned<String>>,
    /// Permission bits for `tmpfs`, `dir` and `file`, e.g. `0o755` or `"1777"`.
    pub perms: Option<Spanned<String>>,
    /// A bind whose source is missing is skipped instead of being an error.
    pub optional: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Section {
    pub mode: Option<Requirement>,
    /// Remount the sandbox root read-only once everything is in place (default true).
    pub read_only_root: Option<bool>,
    /// Mount a fresh /proc (default true).
    pub proc: Option<bool>,
    /// Build a minimal /dev (default true).
    pub dev: Option<bool>,
    #[serde(default)]
    pub mounts: Vec<MountEntry>,
}

impl Section {
    /// Mounts append (the parent's first); scalar settings of the child win.
    pub fn merge(parent: Section, child: Section) -> Section {
        let mut mounts = parent.mounts;
        mounts.extend(child.mounts);
        Section {
            mode: child.mode.or(parent.mode),
            read_only_root: child.read_only_root.or(parent.read_only_root),
            proc: child.proc.or(parent.proc),
            dev: child.dev.or(parent.dev),
            mounts,
        }
    }

    pub fn validate(self) -> Result<Config, ProfileError> {
        let mut ops: Vec<(Loc, Op)> = Vec::new();
        for entry in self.mounts {
            let (loc, op) = entry.validate()?;
            ops.push((loc, op));
        }
        // Duplicate targets, and a mount hidden by a later mount of a parent directory.
        let mut seen: HashMap<SandboxPath, Loc> = HashMap::new();
        for (loc, op) in &ops {
            let target = op.target();
            if let Some(first) = seen.get(target) {
                return Err(ProfileError::at(
                    *loc,
                    format!(
                        "duplicate mount target {target} (first at line {}, column {})",
                        first.line, first.column
                    ),
                )
                .hint("each path inside the sandbox can be mounted once"));
            }
            seen.insert(target.clone(), *loc);
        }
        for (i, (loc, op)) in ops.iter().enumerate() {
            for (later_loc, later) in &ops[i + 1..] {
                let t = later.target();
                if op.target().starts_with(t) && !matches!(later, Op::Dir { .. } | Op::Mask { .. })
                {
                    return Err(ProfileError::at(
                        *loc,
                        format!(
                            "mount {} would be hidden by the later mount {t} at line {}",
                            op.target(),
                            later_loc.line
                        ),
                    )
                    .hint(format!("list {t} before {}", op.target())));
                }
            }
            if let Op::Mask { target } = op {
                let in_built_tree = ["/proc", "/dev"].iter().any(|t| {
                    target.starts_with(&SandboxPath::parse(t).expect("a valid constant path"))
                });
                if !in_built_tree && !ops[..i].iter().any(|(_, o)| target.starts_with(o.target())) {
                    return Err(ProfileError::at(
                        *loc,
                        format!("mask {target} is not inside any mount listed before it"),
                    )
                    .hint("a mask hides a path inside a bind; list the bind first"));
                }
            }
        }
        Ok(Config {
            mode: self.mode.unwrap_or_default(),
            read_only_root: self.read_only_root.unwrap_or(true),
            proc: self.proc.unwrap_or(true),
            dev: self.dev.unwrap_or(true),
            ops: ops.into_iter().map(|(_, op)| op).collect(),
        })
    }
}

fn parse_perms(raw: &Spanned<String>) -> Result<u32, ProfileError> {
    let s = raw.value.trim();
    let digits = s.strip_prefix("0o").unwrap_or(s);
    u32::from_str_radix(digits, 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| {
            ProfileError::at(
                Loc::of(raw),
                format!("perms {:?} is not an octal mode", raw.value),
            )
            .hint("write it like \"0755\" or \"1777\"")
        })
}

impl MountEntry {
    fn validate(self) -> Result<(Loc, Op), ProfileError> {
        let kinds: Vec<(&str, &Spanned<String>)> = [
            ("ro-bind", &self.ro_bind),
            ("bind", &self.bind),
            ("dev-bind", &self.dev_bind),
            ("tmpfs", &self.tmpfs),
            ("dir", &self.dir),
            ("symlink", &self.symlink),
            ("file", &self.file),
            ("mask", &self.mask),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| (k, v)))
        .collect();
        let (kind, raw_target) = match kinds.as_slice() {
            [one] => *one,
            [] => {
                let any = self
                    .source
                    .as_ref()
                    .or(self.to.as_ref())
                    .or(self.size.as_ref())
                    .or(self.perms.as_ref())
                    .map(Loc::of)
                    .unwrap_or_default();
                return Err(ProfileError::at(any, "mount entry has no kind").hint(
                    "start the entry with one of ro-bind, bind, dev-bind, tmpfs, dir, symlink, file, mask",
                ));
            }
            [_, (second, v), ..] => {
                return Err(ProfileError::at(
                    Loc::of(v),
                    format!("mount entry has more than one kind ({second} and another)"),
                )
                .hint("one entry per mount; split it in two"));
            }
        };
        let loc = Loc::of(raw_target);
        let target = parse_path(raw_target)?;
        let refuse = |what: &str, v: Option<Loc>| -> Result<(), ProfileError> {
            match v {
                Some(l) => Err(ProfileError::at(
                    l,
                    format!("`{what}` does not apply to {kind}"),
                )),
                None => Ok(()),
            }
        };
        let is_bind = matches!(kind, "ro-bind" | "bind" | "dev-bind");
        if !is_bind {
            refuse("source", self.source.as_ref().map(Loc::of))?;
            if self.optional.is_some() {
                return Err(ProfileError::at(
                    loc,
                    format!("`optional` does not apply to {kind}"),
                ));
            }
        }
        if kind != "symlink" {
            refuse("to", self.to.as_ref().map(Loc::of))?;
        }
        if kind != "tmpfs" {
            refuse("size", self.size.as_ref().map(Loc::of))?;
        }
        if !matches!(kind, "tmpfs" | "dir" | "file") {
            refuse("perms", self.perms.as_ref().map(Loc::of))?;
        }
        if kind != "file" && self.content.is_some() {
            return Err(ProfileError::at(
                loc,
                format!("`content` does not apply to {kind}"),
            ));
        }
        if target.is_root() && kind != "tmpfs" {
            return Err(
                ProfileError::at(loc, format!("cannot {kind} onto / itself"))
                    .hint("the sandbox root is already an empty tmpfs; mount things below it"),
            );
        }
        let perms = self.perms.as_ref().map(parse_perms).transpose()?;
        let op = match kind {
            "ro-bind" | "bind" | "dev-bind" => Op::Bind {
                source: match &self.source {
                    Some(s) => parse_path(s)?,
                    None => target.clone(),
                },
                target,
                access: match kind {
                    "ro-bind" => BindAccess::ReadOnly,
                    "bind" => BindAccess::ReadWrite,
                    _ => BindAccess::Devices,
                },
                optional: self.optional.unwrap_or(false),
            },
            "tmpfs" => Op::Tmpfs {
                target,
                size: match &self.size {
                    Some(s) => parse_size(&s.value).map_err(|m| ProfileError::at(Loc::of(s), m))?,
                    None => None,
                },
                perms: perms.unwrap_or(0o755),
            },
            "dir" => Op::Dir {
                target,
                perms: perms.unwrap_or(0o755),
            },
            "symlink" => {
                let to = self.to.ok_or_else(|| {
                    ProfileError::at(loc, "symlink needs `to:`, the link's text")
                        .hint("e.g. `- symlink: /bin` with `to: usr/bin`")
                })?;
                if to.value.is_empty() || to.value.contains('\0') {
                    return Err(ProfileError::at(Loc::of(&to), "symlink `to` is empty"));
                }
                Op::Symlink {
                    target,
                    to: to.value,
                }
            }
            "file" => Op::File {
                target,
                content: self.content.unwrap_or_default().into_bytes(),
                perms: perms.unwrap_or(0o444),
            },
            _ => Op::Mask { target },
        };
        Ok((loc, op))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BindAccess {
    ReadOnly,
    ReadWrite,
    /// Read-write and device nodes stay usable (no nodev).
    Devices,
}

/// One step of building the sandbox's file tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Bind {
        source: SandboxPath,
        target: SandboxPath,
        access: BindAccess,
        optional: bool,
    },
    Tmpfs {
        target: SandboxPath,
        size: Option<u64>,
        perms: u32,
    },
    Dir {
        target: SandboxPath,
        perms: u32,
    },
    Symlink {
        target: SandboxPath,
        to: String,
    },
    File {
        target: SandboxPath,
        content: Vec<u8>,
        perms: u32,
    },
    Mask {
        target: SandboxPath,
    },
}

impl Op {
    pub fn target(&self) -> &SandboxPath {
        match self {
            Op::Bind { target, .. }
            | Op::Tmpfs { target, .. }
            | Op::Dir { target, .. }
            | Op::Symlink { target, .. }
            | Op::File { target, .. }
            | Op::Mask { target } => target,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Op::Bind {
                source,
                target,
                access,
                optional,
            } => {
                let kind = match access {
                    BindAccess::ReadOnly => "read-only bind",
                    BindAccess::ReadWrite => "read-write bind",
                    BindAccess::Devices => "read-write bind with devices",
                };
                let opt = if *optional { " (if it exists)" } else { "" };
                if source == target {
                    format!("{kind} of host {source}{opt}")
                } else {
                    format!("{kind} of host {source} at {target}{opt}")
                }
            }
            Op::Tmpfs { target, size, .. } => match size {
                Some(s) => format!("empty writable tmpfs at {target} ({} KiB max)", s / 1024),
                None => format!("empty writable tmpfs at {target}"),
            },
            Op::Dir { target, .. } => format!("directory {target}"),
            Op::Symlink { target, to } => format!("symlink {target} -> {to}"),
            Op::File {
                target, content, ..
            } => {
                format!(
                    "read-only file {target} ({} bytes, from the profile)",
                    content.len()
                )
            }
            Op::Mask { target } => format!("{target} hidden (masked)"),
        }
    }
}

/// The checked `filesystem` section.
#[derive(Debug, Clone)]
pub struct Config {
    pub mode: Requirement,
    pub read_only_root: bool,
    pub proc: bool,
    pub dev: bool,
    pub ops: Vec<Op>,
}

/// /proc entries remounted read-only (writes would reach the host kernel).
const PROC_READ_ONLY: &[&str] = &["sys", "sysrq-trigger", "irq", "bus", "fs"];
/// /proc entries hidden entirely (kernel memory, keys, timing side channels).
const PROC_MASKED: &[&str] = &[
    "kcore",
    "keys",
    "timer_list",
    "sched_debug",
    "latency_stats",
    "acpi",
    "scsi",
    "asound",
];
/// Device nodes bound from the host into the minimal /dev.
const DEV_NODES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

/// Paths used by the child while building the root.
const STAGING: &CStr = c"/tmp";
const NEW_ROOT: &str = "/newroot";
const OLD_ROOT: &str = "/oldroot";

/// One prepared child-side step, all strings already C strings.
#[derive(Debug)]
enum Step {
    /// mkdir, EEXIST is fine.
    Mkdir {
        path: CString,
        perms: u32,
    },
    /// Bind `source` onto `target` (recursive), then set attributes. If the source is a
    /// symlink, replicate the link instead. Missing source: skip when optional.
    Bind {
        source: CString,
        target: CString,
        parents: Vec<CString>,
        attrs: u64,
        optional: bool,
        /// Resolve the mount point without symlinks first (it lies below a host-controlled
        /// bind or a symlink, where a planted link could redirect the mount).
        check: bool,
    },
    Tmpfs {
        target: CString,
        data: CString,
        /// `data` as fsconfig key/value pairs, for the fd-based mount of a checked target.
        options: Vec<(CString, CString)>,
        read_only: bool,
        check: bool,
    },
    Symlink {
        to: CString,
        target: CString,
    },
    /// Write inline content into the staging area, then bind it read-only onto `target`.
    File {
        staging: CString,
        target: CString,
        content: Vec<u8>,
        perms: u32,
        check: bool,
    },
    /// Hide `target`: tmpfs over a directory, /dev/null over anything else; missing is fine.
    Mask {
        target: CString,
    },
    MountProc {
        target: CString,
        fresh: bool,
    },
    Devpts {
        target: CString,
    },
}

/// Everything the child needs to build the root.
#[derive(Debug)]
pub struct Prepared {
    steps: Vec<Step>,
    read_only_root: bool,
}

fn c(s: &str) -> CString {
    CString::new(s).expect("checked paths contain no NUL")
}

fn under(root: &str, p: &SandboxPath) -> String {
    if p.is_root() {
        root.to_string()
    } else {
        format!("{root}{}", p.as_str())
    }
}

/// The directories to create (outermost first) so that `target`'s parent exists.
fn parents_of(target: &SandboxPath) -> Vec<CString> {
    let mut dirs = Vec::new();
    let mut p = target.parent();
    while let Some(dir) = p {
        if dir.is_root() {
            break;
        }
        dirs.push(c(&under(NEW_ROOT, &dir)));
        p = dir.parent();
    }
    dirs.reverse();
    dirs
}

/// Turn the checked config into child steps. `fresh_proc` is false when there is no new
/// pid namespace (a new procfs then cannot be mounted; the host's is bound instead).
pub fn prepare(cfg: &Config, fresh_proc: bool) -> Prepared {
    let mut steps = Vec::new();
    let mkdirs = |steps: &mut Vec<Step>, target: &SandboxPath| {
        for p in parents_of(target) {
            steps.push(Step::Mkdir {
                path: p,
                perms: 0o755,
            });
        }
    };
    let nosuid_nodev = sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV;
    // /proc and /dev first, so that a profile mount below them (a dev-bind of /dev/fuse,
    // a mask in /proc) lands on top instead of being hidden.
    if cfg.proc {
        let proc = c(&format!("{NEW_ROOT}/proc"));
        steps.push(Step::Mkdir {
            path: proc.clone(),
            perms: 0o555,
        });
        steps.push(Step::MountProc {
            target: proc,
            fresh: fresh_proc,
        });
        for name in PROC_READ_ONLY {
            let p = c(&format!("{NEW_ROOT}/proc/{name}"));
            steps.push(Step::Bind {
                source: p.clone(),
                target: p,
                parents: Vec::new(),
                attrs: sys::MOUNT_ATTR_RDONLY | nosuid_nodev,
                optional: true,
                check: false,
            });
        }
        for name in PROC_MASKED {
            steps.push(Step::Mask {
                target: c(&format!("{NEW_ROOT}/proc/{name}")),
            });
        }
    }
    if cfg.dev {
        let dev = format!("{NEW_ROOT}/dev");
        steps.push(Step::Mkdir {
            path: c(&dev),
            perms: 0o755,
        });
        steps.push(tmpfs_step(c(&dev), "mode=755,size=65536", false));
        for node in DEV_NODES {
            steps.push(Step::Bind {
                source: c(&format!("{OLD_ROOT}/dev/{node}")),
                target: c(&format!("{dev}/{node}")),
                parents: Vec::new(),
                attrs: sys::MOUNT_ATTR_NOSUID,
                optional: *node == "tty",
                check: false,
            });
        }
        steps.push(Step::Mkdir {
            path: c(&format!("{dev}/pts")),
            perms: 0o755,
        });
        steps.push(Step::Devpts {
            target: c(&format!("{dev}/pts")),
        });
        steps.push(Step::Symlink {
            to: c("pts/ptmx"),
            target: c(&format!("{dev}/ptmx")),
        });
        steps.push(Step::Mkdir {
            path: c(&format!("{dev}/shm")),
            perms: 0o755,
        });
        steps.push(tmpfs_step(c(&format!("{dev}/shm")), "mode=1777", false));
        for (name, to) in [
            ("fd", "/proc/self/fd"),
            ("stdin", "/proc/self/fd/0"),
            ("stdout", "/proc/self/fd/1"),
            ("stderr", "/proc/self/fd/2"),
        ] {
            steps.push(Step::Symlink {
                to: c(to),
                target: c(&format!("{dev}/{name}")),
            });
        }
    }
    // Mount points below a bind (host-controlled content) or below a symlink may resolve
    // somewhere else: those are checked without following symlinks. Everything else lies
    // in directories this run created on its own tmpfs.
    let mut redirecting: Vec<SandboxPath> = [
        "/proc",
        "/dev/fd",
        "/dev/stdin",
        "/dev/stdout",
        "/dev/stderr",
        "/dev/ptmx",
    ]
    .iter()
    .map(|p| SandboxPath::parse(p).expect("a valid constant path"))
    .collect();
    let mut risky_targets = Vec::new();
    for op in &cfg.ops {
        let t = op.target();
        risky_targets.push(redirecting.iter().any(|r| t.starts_with(r) && t != r));
        if matches!(op, Op::Bind { .. } | Op::Symlink { .. }) {
            redirecting.push(t.clone());
        }
    }
    for (i, op) in cfg.ops.iter().enumerate() {
        let target = c(&under(NEW_ROOT, op.target()));
        match op {
            Op::Bind {
                source,
                access,
                optional,
                target: t,
            } => {
                let attrs = match access {
                    BindAccess::ReadOnly => sys::MOUNT_ATTR_RDONLY | nosuid_nodev,
                    BindAccess::ReadWrite => nosuid_nodev,
                    BindAccess::Devices => sys::MOUNT_ATTR_NOSUID,
                };
                steps.push(Step::Bind {
                    source: c(&under(OLD_ROOT, source)),
                    target,
                    parents: parents_of(t),
                    attrs,
                    optional: *optional,
                    check: risky_targets[i],
                });
            }
            Op::Tmpfs {
                size,
                perms,
                target: t,
            } => {
                mkdirs(&mut steps, t);
                steps.push(Step::Mkdir {
                    path: target.clone(),
                    perms: 0o755,
                });
                let data = match size {
                    Some(s) => format!("mode={perms:o},size={s}"),
                    None => format!("mode={perms:o}"),
                };
                steps.push(tmpfs_step(target, &data, risky_targets[i]));
            }
            Op::Dir { perms, target: t } => {
                mkdirs(&mut steps, t);
                steps.push(Step::Mkdir {
                    path: target,
                    perms: *perms,
                });
            }
            Op::Symlink { to, target: t } => {
                mkdirs(&mut steps, t);
                steps.push(Step::Symlink { to: c(to), target });
            }
            Op::File {
                content,
                perms,
                target: t,
            } => {
                mkdirs(&mut steps, t);
                steps.push(Step::File {
                    staging: c(&format!("/files/{i}")),
                    target,
                    content: content.clone(),
                    perms: *perms,
                    check: risky_targets[i],
                });
            }
            Op::Mask { .. } => steps.push(Step::Mask { target }),
        }
    }
    Prepared {
        steps,
        read_only_root: cfg.read_only_root,
    }
}

fn mkdir_ok(path: &CStr, perms: u32) -> Result<(), Errno> {
    match nix::unistd::mkdir(path, Mode::from_bits_truncate(perms)) {
        Ok(()) | Err(Errno::EEXIST) => Ok(()),
        Err(e) => Err(e),
    }
}

fn set_attrs(target: &CStr, attrs: u64) -> Result<(), Errno> {
    match sys::mount_setattr_recursive(target, attrs) {
        Err(Errno::ENOSYS) => {
            // Before Linux 5.12: remount the top mount, keeping its locked flags.
            let st = nix::sys::statvfs::statvfs(target)?;
            let mut flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT;
            let f = st.flags();
            use nix::sys::statvfs::FsFlags;
            for (fs, ms) in [
                (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
                (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
                (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
                (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY),
                (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
                (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
                (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
            ] {
                if f.contains(fs) {
                    flags |= ms;
                }
            }
            if attrs & sys::MOUNT_ATTR_RDONLY != 0 {
                flags |= MsFlags::MS_RDONLY;
            }
            if attrs & sys::MOUNT_ATTR_NOSUID != 0 {
                flags |= MsFlags::MS_NOSUID;
            }
            if attrs & sys::MOUNT_ATTR_NODEV != 0 {
                flags |= MsFlags::MS_NODEV;
            }
            mount(None::<&str>, target, None::<&str>, flags, None::<&str>)
        }
        other => other,
    }
}

fn bind_onto(source: &CStr, target: &CStr, attrs: u64) -> Result<(), Errno> {
    mount(
        Some(source),
        target,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )?;
    set_attrs(target, attrs)
}

/// A writable tmpfs mount step with `data` (`mode=…,size=…`), prepared for both mount APIs.
fn tmpfs_step(target: CString, data: &str, check: bool) -> Step {
    let options = std::iter::once(("source", "tmpfs"))
        .chain(data.split(',').filter_map(|kv| kv.split_once('=')))
        .map(|(k, v)| (c(k), c(v)))
        .collect();
    Step::Tmpfs {
        target,
        data: c(data),
        options,
        read_only: false,
        check,
    }
}

/// Mount onto a target that a host process could redirect (below a host bind or symlink):
/// the target is resolved once, without following symlinks, into an O_PATH fd, and the
/// detached mount `build` makes (attributes already set) is attached onto that very inode
/// with `move_mount`. No path is looked up again between the check and the mount, so a swap
/// in between cannot redirect it (runc CVE-2025-31133 class). `Ok(false)`: the kernel lacks
/// openat2 or the fd-based mount calls, and the caller mounts by path (checked if it could).
fn attach_checked<'a>(
    target: &'a CStr,
    step: &'static str,
    build: impl FnOnce() -> Result<OwnedFd, Errno>,
) -> Result<bool, ChildError<'a>> {
    let Some(onto) =
        sys::open_no_symlinks(target).step_on(LAYER, "check mount point", target.to_bytes())?
    else {
        return Ok(false);
    };
    let tree = match build() {
        Ok(tree) => tree,
        Err(Errno::ENOSYS) => return Ok(false),
        Err(e) => return Err(ChildError::new(LAYER, step, e).with_detail(target.to_bytes())),
    };
    sys::move_mount_fd(tree.as_fd(), onto.as_fd()).step_on(LAYER, step, target.to_bytes())?;
    Ok(true)
}

/// A detached recursive copy of `source` with `attrs` set, for `attach_checked`.
fn bind_tree(source: &CStr, attrs: u64) -> Result<OwnedFd, Errno> {
    let tree = sys::open_tree_clone(source)?;
    sys::mount_setattr_fd(tree.as_fd(), attrs)?;
    Ok(tree)
}

fn is_dir(path: &CStr) -> Result<bool, Errno> {
    let st = nix::sys::stat::stat(path)?;
    Ok(SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR)
}

fn is_symlink(path: &CStr) -> Result<bool, Errno> {
    let st = nix::sys::stat::lstat(path)?;
    Ok(SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFLNK)
}

fn touch(path: &CStr) -> Result<(), Errno> {
    use nix::fcntl::{open, OFlag};
    match open(
        path,
        OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
        Mode::from_bits_truncate(0o444),
    ) {
        Ok(fd) => {
            drop(fd);
            Ok(())
        }
        Err(Errno::EEXIST) => Ok(()),
        Err(e) => Err(e),
    }
}

fn mask(target: &CStr) -> Result<(), Errno> {
    let dir = match is_dir(target) {
        Ok(d) => d,
        Err(Errno::ENOENT) => return Ok(()),
        Err(e) => return Err(e),
    };
    if dir {
        mount(
            Some("tmpfs"),
            target,
            Some("tmpfs"),
            MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            Some("mode=000,size=4096"),
        )
    } else {
        let null = c"/oldroot/dev/null";
        bind_onto(
            null,
            target,
            sys::MOUNT_ATTR_RDONLY | sys::MOUNT_ATTR_NOSUID,
        )
    }
}

fn run_step(step: &Step) -> Result<(), ChildError<'_>> {
    match step {
        Step::Mkdir { path, perms } => {
            mkdir_ok(path, *perms).step_on(LAYER, "create directory", path.to_bytes())
        }
        Step::Bind {
            source,
            target,
            parents,
            attrs,
            optional,
            check,
        } => {
            let detail = source.to_bytes();
            match is_symlink(source) {
                Err(Errno::ENOENT) if *optional => return Ok(()),
                Err(e) => {
                    return Err(ChildError::new(LAYER, "find bind source", e).with_detail(detail))
                }
                Ok(link) => {
                    for p in parents {
                        mkdir_ok(p, 0o755).step_on(LAYER, "create directory", p.to_bytes())?;
                    }
                    if link {
                        // A symlink source (e.g. /lib -> usr/lib) is replicated, not followed.
                        let mut buf = [0u8; 4096];
                        let len = sys::readlink(source, &mut buf).step_on(
                            LAYER,
                            "read symlink",
                            detail,
                        )?;
                        let mut text = [0u8; 4097];
                        text[..len].copy_from_slice(&buf[..len]);
                        let to = CStr::from_bytes_until_nul(&text[..=len])
                            .map_err(|_| ChildError::new(LAYER, "read symlink", Errno::EINVAL))?;
                        return nix::unistd::symlinkat(to, nix::fcntl::AT_FDCWD, target.as_c_str())
                            .step_on(LAYER, "create symlink", target.to_bytes());
                    }
                }
            }
            let dir = is_dir(source).step_on(LAYER, "find bind source", detail)?;
            if dir {
                mkdir_ok(target, 0o755).step_on(LAYER, "create mount point", target.to_bytes())?;
            } else {
                touch(target).step_on(LAYER, "create mount point", target.to_bytes())?;
            }
            if *check && attach_checked(target, "bind mount", || bind_tree(source, *attrs))? {
                return Ok(());
            }
            bind_onto(source, target, *attrs).step_on(LAYER, "bind mount", detail)
        }
        Step::Tmpfs {
            target,
            data,
            options,
            read_only,
            check,
        } => {
            let mut flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
            let mut attrs = sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV;
            if *read_only {
                flags |= MsFlags::MS_RDONLY;
                attrs |= sys::MOUNT_ATTR_RDONLY;
            }
            if target.to_bytes().ends_with(b"/dev") {
                flags.remove(MsFlags::MS_NODEV);
                attrs &= !sys::MOUNT_ATTR_NODEV;
            }
            if *check
                && attach_checked(target, "mount tmpfs", || sys::fsmount_tmpfs(options, attrs))?
            {
                return Ok(());
            }
            mount(
                Some("tmpfs"),
                target.as_c_str(),
                Some("tmpfs"),
                flags,
                Some(data.as_c_str()),
            )
            .step_on(LAYER, "mount tmpfs", target.to_bytes())
        }
        Step::Symlink { to, target } => {
            match nix::unistd::symlinkat(to.as_c_str(), nix::fcntl::AT_FDCWD, target.as_c_str()) {
                Ok(()) => Ok(()),
                Err(e) => {
                    Err(ChildError::new(LAYER, "create symlink", e).with_detail(target.to_bytes()))
                }
            }
        }
        Step::File {
            staging,
            target,
            content,
            perms,
            check,
        } => {
            use nix::fcntl::{open, OFlag};
            let fd = open(
                staging.as_c_str(),
                OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(*perms),
            )
            .step_on(LAYER, "write inline file", target.to_bytes())?;
            sys::write_all(std::os::fd::AsFd::as_fd(&fd), content).step_on(
                LAYER,
                "write inline file",
                target.to_bytes(),
            )?;
            drop(fd);
            nix::sys::stat::fchmodat(
                nix::fcntl::AT_FDCWD,
                staging.as_c_str(),
                Mode::from_bits_truncate(*perms),
                nix::sys::stat::FchmodatFlags::FollowSymlink,
            )
            .step_on(LAYER, "write inline file", target.to_bytes())?;
            touch(target).step_on(LAYER, "create mount point", target.to_bytes())?;
            let attrs = sys::MOUNT_ATTR_RDONLY | sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV;
            if *check && attach_checked(target, "bind inline file", || bind_tree(staging, attrs))? {
                return Ok(());
            }
            bind_onto(staging, target, attrs).step_on(LAYER, "bind inline file", target.to_bytes())
        }
        Step::Mask { target } => mask(target).step_on(LAYER, "mask", target.to_bytes()),
        Step::MountProc { target, fresh } => {
            let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
            if *fresh {
                mount(
                    Some("proc"),
                    target.as_c_str(),
                    Some("proc"),
                    flags,
                    None::<&str>,
                )
                .step_on(LAYER, "mount /proc", target.to_bytes())
            } else {
                bind_onto(
                    c"/oldroot/proc",
                    target,
                    sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV,
                )
                .step_on(LAYER, "bind host /proc", target.to_bytes())
            }
        }
        Step::Devpts { target } => mount(
            Some("devpts"),
            target.as_c_str(),
            Some("devpts"),
            MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
            Some("newinstance,ptmxmode=0666,mode=620"),
        )
        .step_on(LAYER, "mount devpts", target.to_bytes()),
    }
}

/// Child side: build the new root and switch into it. Runs in the child's own mount
/// namespace with CAP_SYS_ADMIN over it.
pub fn child_apply(prep: &Prepared) -> Result<(), ChildError<'_>> {
    // 1. Nothing we mount may propagate back to the host (CVE-2025-52881 class).
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .step(LAYER, "make / private")?;
    // 2. A staging tmpfs becomes the root for a moment, with the host tree at /oldroot,
    //    so that bind sources resolve under /oldroot and nothing is mounted on host paths.
    mount(
        Some("tmpfs"),
        STAGING,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=0755"),
    )
    .step(LAYER, "mount staging tmpfs")?;
    nix::unistd::chdir(STAGING).step(LAYER, "enter staging tmpfs")?;
    for d in [c"newroot", c"oldroot", c"files"] {
        mkdir_ok(d, 0o755).step_on(LAYER, "create directory", d.to_bytes())?;
    }
    nix::unistd::pivot_root(c".", c"oldroot").step(LAYER, "pivot_root into staging")?;
    nix::unistd::chdir(c"/").step(LAYER, "enter staging root")?;
    // 3. The sandbox root: an empty tmpfs.
    mount(
        Some("tmpfs"),
        c"/newroot",
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=0755"),
    )
    .step(LAYER, "mount root tmpfs")?;
    // 4. The profile's mounts, then /proc and /dev, in order.
    for step in &prep.steps {
        run_step(step)?;
    }
    // 5. Detach the host tree: from here no path leads back to it.
    umount2(c"/oldroot", MntFlags::MNT_DETACH).step(LAYER, "detach old root")?;
    if prep.read_only_root {
        mount(
            None::<&str>,
            c"/newroot",
            None::<&str>,
            MsFlags::MS_REMOUNT
                | MsFlags::MS_BIND
                | MsFlags::MS_RDONLY
                | MsFlags::MS_NOSUID
                | MsFlags::MS_NODEV,
            None::<&str>,
        )
        .step(LAYER, "make root read-only")?;
    }
    // 6. Switch to the sandbox root and drop the staging tmpfs stacked above it.
    nix::unistd::chdir(c"/newroot").step(LAYER, "enter new root")?;
    nix::unistd::pivot_root(c".", c".").step(LAYER, "pivot_root into new root")?;
    umount2(c".", MntFlags::MNT_DETACH).step(LAYER, "detach staging root")?;
    nix::unistd::chdir(c"/").step(LAYER, "enter new root")?;
    Ok(())
}

/// Bind sources the profile requires (not `optional`) that do not exist on this host, as
/// refusal lines. Checked before anything is created, so that a missing source stops the
/// run with its name instead of failing halfway through building the sandbox.
pub fn missing_sources(profile: &crate::profile::Profile, plan: &crate::plan::Plan) -> Vec<String> {
    match (&profile.filesystem, plan.applies(super::Layer::Filesystem)) {
        (Some(cfg), true) => missing_in(cfg),
        _ => Vec::new(),
    }
}

fn missing_in(cfg: &Config) -> Vec<String> {
    cfg.ops
        .iter()
        .filter_map(|op| match op {
            Op::Bind {
                source,
                target,
                optional: false,
                ..
            } => match std::fs::symlink_metadata(source.as_str()) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR) => {
                    Some(format!(
                        "{LAYER}: the bind source {source} (for {target}) does not exist on this host; \
                         create it, or mark the entry `optional: true` to skip it when absent"
                    ))
                }
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// Plain-words description for `explain`.
pub fn explain(cfg: &Config) -> Vec<String> {
    let mut out = vec!["the sandbox sees a new, empty root (tmpfs) instead of the host's; the host root is detached after pivot_root".to_string()];
    for op in &cfg.ops {
        out.push(op.describe());
    }
    if cfg.proc {
        out.push("fresh /proc of the sandbox's own pid namespace; /proc/sys, /proc/sysrq-trigger, /proc/irq, /proc/bus, /proc/fs read-only; /proc/kcore, /proc/keys, /proc/timer_list and similar masked".into());
    }
    if cfg.dev {
        out.push("minimal /dev: null, zero, full, random, urandom, tty, a private pts instance, ptmx, shm".into());
    }
    if cfg.read_only_root {
        out.push(
            "the root itself is read-only: only the writable mounts above accept writes".into(),
        );
    }
    out.push("stops: reading or writing host files that are not bound in; setuid bits and device nodes on binds (nosuid, nodev)".into());
    out.push("does not stop: what the payload does with the files it was given; fine-grained rights (landlock)".into());
    out
}
