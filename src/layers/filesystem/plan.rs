//! The layer's decision on this host ([`plan`]) and the child's steps prepared from the
//! view before the clone ([`prepare`]): every string a C string, every buffer sized.

use std::ffi::CString;

use crate::sys;
use crate::types::{Requirement, SandboxPath};

use super::view::{self, FsPlan, Site, What};
use super::{BindAccess, Config};

/// The filesystem layer's decision on this host: refused or degraded when the kernel lacks
/// the detached-mount calls or the tree cannot be placed; `fresh_proc`: a new pid
/// namespace lets the child mount its own /proc. A required layer whose /proc would have to
/// be the host's is refused unless `relax_proc` (the pid namespace was switched off on
/// purpose and dependents are to degrade).
pub fn plan(
    cfg: &Config,
    req: Requirement,
    host: &crate::host::Host,
    fresh_proc: bool,
    relax_proc: bool,
) -> (crate::launch::Decision, Option<FsPlan>, Vec<String>) {
    use crate::launch::Decision;
    let mut notes = Vec::new();
    if !host.mount_api {
        let what = format!(
            "the filesystem layer builds every mount detached (open_tree, mount_setattr, \
             move_mount), which needs Linux 5.12; this kernel is {}",
            host.kernel
        );
        let d = match req {
            Requirement::Required => {
                Decision::Refuse(format!("{what} (fix: run on Linux 5.12 or newer)"))
            }
            _ => Decision::Skip(format!("best-effort: {what}")),
        };
        return (d, None, notes);
    }
    let mut decision = Decision::Apply;
    if cfg.proc && !fresh_proc {
        let why = "no new pid namespace: the host's /proc is bound instead, host processes stay visible in it";
        notes.push(why.to_string());
        decision = match req {
            Requirement::Required if !relax_proc => {
                return (
                    Decision::Refuse(format!(
                        "{why} (fix: enable the namespaces layer with `pid: true`, or set `proc: false`)"
                    )),
                    None,
                    notes,
                )
            }
            _ => Decision::Degrade(why.into()),
        };
    }
    let fsp = view::plan(cfg, fresh_proc);
    notes.extend(fsp.notes.iter().cloned());
    if !fsp.problems.is_empty() {
        if req == Requirement::Required {
            return (Decision::Refuse(fsp.problems.join("; ")), None, notes);
        }
        let left_out = format!("left out: {}", fsp.problems.join("; "));
        decision = match decision {
            Decision::Degrade(r) => Decision::Degrade(format!("{r}; {left_out}")),
            _ => Decision::Degrade(left_out),
        };
    }
    (decision, Some(fsp), notes)
}

/// /proc entries remounted read-only (writes would reach the host kernel).
pub const PROC_READ_ONLY: &[&str] = &["sys", "sysrq-trigger", "irq", "bus", "fs"];
/// /proc entries hidden entirely (kernel memory, keys, timing side channels).
pub const PROC_MASKED: &[&str] = &[
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
pub const DEV_NODES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

/// Paths used by the child while building the root.
pub(super) const NEW_ROOT: &str = "/newroot";
pub(super) const OLD_ROOT: &str = "/oldroot";

/// One prepared child-side step, all strings already C strings.
#[derive(Debug)]
pub(super) enum Step {
    /// mkdir, EEXIST is fine (on a tmpfs of this run).
    Mkdir {
        path: CString,
        perms: u32,
    },
    /// An empty file as a mount point, EEXIST is fine (on a tmpfs of this run).
    Touch {
        path: CString,
    },
    /// Bind `source` onto `target` (recursive), with `attrs`. `expect`: the device and
    /// inode the plan found at the source. `optional`: a missing source is skipped.
    Bind {
        source: CString,
        expect: Option<(u64, u64)>,
        target: CString,
        attrs: u64,
        optional: bool,
        /// A bind whose tree the supervisor made (as root; idmapped or not): the index of
        /// the tree among them ([`super::idmap`]), attached as it is instead of `source`.
        tree: Option<usize>,
    },
    /// A new tmpfs with these fsconfig options onto `target`.
    Tmpfs {
        target: CString,
        options: Vec<(CString, CString)>,
        attrs: u64,
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
    },
    /// Hide `target`: an empty read-only tmpfs over a directory, /dev/null over anything
    /// else. `required`: a missing target is an error (the plan saw it there).
    Mask {
        target: CString,
        required: bool,
        /// fsconfig options of the tmpfs over a directory.
        options: Vec<(CString, CString)>,
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
    pub(super) steps: Vec<Step>,
    pub(super) read_only_root: bool,
    /// The binds whose trees the supervisor makes before the clone (as root).
    pub trees: Vec<super::idmap::TreeSpec>,
}

pub(super) fn c(s: &str) -> CString {
    CString::new(s).expect("checked paths contain no NUL")
}

pub(super) fn under(root: &str, p: &SandboxPath) -> String {
    if p.is_root() {
        root.to_string()
    } else {
        format!("{root}{}", p.as_str())
    }
}

/// tmpfs options for fsconfig: `mode`, and `size` when given.
pub(super) fn tmpfs_options(perms: u32, size: Option<u64>) -> Vec<(CString, CString)> {
    let mut out = vec![
        (c("source"), c("tmpfs")),
        (c("mode"), c(&format!("{perms:o}"))),
    ];
    if let Some(size) = size {
        out.push((c("size"), c(&size.to_string())));
    }
    out
}

/// The tmpfs that hides a directory: empty, mode 000, read-only.
pub(super) fn mask_options() -> Vec<(CString, CString)> {
    tmpfs_options(0o000, Some(4096))
}

/// Turn the plan into child steps.
pub fn prepare(plan: &FsPlan, required: bool) -> Prepared {
    let dev_shm_size = plan.dev_shm_size;
    let mut steps = Vec::new();
    let nosuid_nodev = sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV;
    let builtin_bind = |source: String, target: String, attrs: u64, optional: bool| Step::Bind {
        source: c(&source),
        expect: None,
        target: c(&target),
        attrs,
        optional,
        tree: None,
    };
    let mut trees = Vec::new();
    // /proc and /dev first, so that a profile mount below them (a dev-bind of /dev/fuse,
    // a mask in /proc) lands on top instead of being hidden.
    if plan.proc {
        let proc = format!("{NEW_ROOT}/proc");
        steps.push(Step::Mkdir {
            path: c(&proc),
            perms: 0o555,
        });
        steps.push(Step::MountProc {
            target: c(&proc),
            fresh: plan.fresh_proc,
        });
        for name in PROC_READ_ONLY {
            let p = format!("{proc}/{name}");
            steps.push(builtin_bind(
                p.clone(),
                p,
                sys::MOUNT_ATTR_RDONLY | nosuid_nodev,
                true,
            ));
        }
        for name in PROC_MASKED {
            steps.push(Step::Mask {
                target: c(&format!("{proc}/{name}")),
                required: false,
                options: mask_options(),
            });
        }
    }
    if plan.dev {
        let dev = format!("{NEW_ROOT}/dev");
        steps.push(Step::Mkdir {
            path: c(&dev),
            perms: 0o755,
        });
        // lasagna's own /dev is the one tmpfs where device nodes work (no nodev).
        steps.push(Step::Tmpfs {
            target: c(&dev),
            options: tmpfs_options(0o755, Some(65536)),
            attrs: sys::MOUNT_ATTR_NOSUID,
        });
        for node in DEV_NODES {
            let target = format!("{dev}/{node}");
            steps.push(Step::Touch { path: c(&target) });
            steps.push(builtin_bind(
                format!("{OLD_ROOT}/dev/{node}"),
                target,
                sys::MOUNT_ATTR_NOSUID,
                *node == "tty",
            ));
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
        steps.push(Step::Tmpfs {
            target: c(&format!("{dev}/shm")),
            options: tmpfs_options(0o1777, Some(dev_shm_size)),
            attrs: nosuid_nodev,
        });
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
    for (i, entry) in plan.entries.iter().enumerate() {
        let target = c(&under(NEW_ROOT, &entry.target));
        // On a tmpfs of this run the child makes the parents and the mount point; inside a
        // bound host directory the supervisor made them, through descriptors.
        let own = !matches!(entry.at, Site::Host { .. });
        if own {
            for p in parents_of(&entry.target) {
                steps.push(Step::Mkdir {
                    path: p,
                    perms: 0o755,
                });
            }
        }
        match &entry.what {
            What::Bind {
                source,
                expect,
                dir,
                access,
                idmap,
            } => {
                if own {
                    steps.push(if *dir {
                        Step::Mkdir {
                            path: target.clone(),
                            perms: 0o755,
                        }
                    } else {
                        Step::Touch {
                            path: target.clone(),
                        }
                    });
                }
                let attrs = match access {
                    BindAccess::ReadOnly => sys::MOUNT_ATTR_RDONLY | nosuid_nodev,
                    BindAccess::ReadWrite => nosuid_nodev,
                    BindAccess::Devices => sys::MOUNT_ATTR_NOSUID,
                };
                let tree = (plan.trees_by_supervisor || idmap.is_some()).then(|| {
                    trees.push(super::idmap::TreeSpec {
                        source: source.clone(),
                        expect: *expect,
                        owner: *idmap,
                        attrs,
                    });
                    trees.len() - 1
                });
                steps.push(Step::Bind {
                    source: c(&format!("{OLD_ROOT}{}", source.display())),
                    expect: expect.map(|m| (m.dev, m.ino)),
                    target,
                    attrs,
                    optional: false,
                    tree,
                });
            }
            What::Tmpfs { size, perms } => {
                if own {
                    steps.push(Step::Mkdir {
                        path: target.clone(),
                        perms: 0o755,
                    });
                }
                steps.push(Step::Tmpfs {
                    target,
                    options: tmpfs_options(*perms, *size),
                    attrs: nosuid_nodev,
                });
            }
            What::Dir { perms } => {
                if own {
                    steps.push(Step::Mkdir {
                        path: target,
                        perms: *perms,
                    });
                }
            }
            What::Link { to } => {
                if own {
                    steps.push(Step::Symlink { to: c(to), target });
                }
            }
            What::File { content, perms } => {
                if own {
                    steps.push(Step::Touch {
                        path: target.clone(),
                    });
                }
                steps.push(Step::File {
                    staging: c(&format!("/files/{i}")),
                    target,
                    content: content.clone(),
                    perms: *perms,
                });
            }
            What::Mask => steps.push(Step::Mask {
                target,
                required,
                options: mask_options(),
            }),
        }
    }
    Prepared {
        steps,
        read_only_root: plan.read_only_root,
        trees,
    }
}

/// The directories to create (outermost first) so that `target`'s parent exists.
pub(super) fn parents_of(target: &SandboxPath) -> Vec<CString> {
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
