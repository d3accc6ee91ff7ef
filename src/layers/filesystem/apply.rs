//! The child side of the filesystem layer: steps prepared in the supervisor from the plan
//! ([`super::prepare`]), run between clone and execve ([`child_apply`]). Async-signal-safe: the
//! child only makes syscalls on prepared C strings and fixed buffers.
//!
//! Every mount is built detached and attached onto a descriptor: the mount point is opened
//! with `openat2(RESOLVE_NO_SYMLINKS)`, the bind source is opened the same way under
//! `/oldroot` and must be the object the plan found (device and inode), its tree is cloned
//! with `open_tree`, given its attributes with `mount_setattr` before it is visible, and
//! moved onto the mount point with `move_mount`. No path is looked up again between check
//! and mount, so a link planted or a directory swapped in between is refused, not followed.

use std::ffi::CStr;
use std::os::fd::{AsFd, OwnedFd};

use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::{Mode, SFlag};

use crate::launch::{ChildContext, ChildError};
use crate::sys;

use super::plan::{Prepared, Step};
use crate::launch::At;

const LAYER: At = At::Filesystem;

/// Where the child stages inline files before they are bound into place.
const STAGING: &CStr = c"/tmp";

fn mkdir_ok(path: &CStr, perms: u32) -> Result<(), Errno> {
    match nix::unistd::mkdir(path, Mode::from_bits_truncate(perms)) {
        Ok(()) | Err(Errno::EEXIST) => Ok(()),
        Err(e) => Err(e),
    }
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

fn is_dir(fd: &OwnedFd) -> Result<bool, Errno> {
    let st = nix::sys::stat::fstat(fd)?;
    Ok(SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR)
}

/// The mount point, resolved once without following any symlink.
fn open_target(target: &CStr) -> Result<OwnedFd, ChildError<'_>> {
    sys::open_no_symlinks(target).step_on(LAYER, "check mount point", target.to_bytes())
}

/// Attach the detached `tree` onto `target`.
fn attach<'a>(tree: OwnedFd, target: &'a CStr, step: &'static str) -> Result<(), ChildError<'a>> {
    let onto = open_target(target)?;
    sys::move_mount_fd(tree.as_fd(), onto.as_fd()).step_on(LAYER, step, target.to_bytes())
}

/// A detached recursive copy of the tree at `path` (resolved without symlinks), with
/// `attrs` set. `expect`: it must be this object.
fn bind_tree(path: &CStr, expect: Option<(u64, u64)>, attrs: u64) -> Result<OwnedFd, Errno> {
    let fd = sys::open_no_symlinks(path)?;
    if let Some((dev, ino)) = expect {
        let st = nix::sys::stat::fstat(&fd)?;
        if st.st_dev != dev || st.st_ino != ino {
            // Another object took its place since the plan looked (a rename race).
            return Err(Errno::ESTALE);
        }
    }
    let tree = sys::open_tree_clone_fd(fd.as_fd())?;
    sys::mount_setattr_fd(tree.as_fd(), attrs)?;
    Ok(tree)
}

fn run_step<'a>(step: &'a Step, trees: &[OwnedFd]) -> Result<(), ChildError<'a>> {
    match step {
        Step::Mkdir { path, perms } => {
            mkdir_ok(path, *perms).step_on(LAYER, "create directory", path.to_bytes())
        }
        Step::Touch { path } => touch(path).step_on(LAYER, "create mount point", path.to_bytes()),
        Step::Bind {
            source,
            expect,
            target,
            attrs,
            optional,
            tree,
        } => {
            // An idmapped bind: the supervisor made the tree, with its attributes.
            if let Some(i) = tree {
                let tree = trees.get(*i).ok_or_else(|| {
                    ChildError::new(LAYER, "find the idmapped tree", Errno::EBADF)
                        .with_detail(source.to_bytes())
                })?;
                let onto = open_target(target)?;
                return sys::move_mount_fd(tree.as_fd(), onto.as_fd()).step_on(
                    LAYER,
                    "attach idmapped bind",
                    target.to_bytes(),
                );
            }
            let tree = match bind_tree(source, *expect, *attrs) {
                Ok(tree) => tree,
                Err(Errno::ENOENT) if *optional => return Ok(()),
                Err(Errno::ESTALE) => {
                    return Err(ChildError::new(
                        LAYER,
                        "bind source changed since the plan checked it",
                        Errno::ESTALE,
                    )
                    .with_detail(source.to_bytes()))
                }
                Err(e) => {
                    return Err(ChildError::new(LAYER, "open bind source", e)
                        .with_detail(source.to_bytes()))
                }
            };
            attach(tree, target, "bind mount")
        }
        Step::Tmpfs {
            target,
            options,
            attrs,
        } => {
            let tree = sys::fsmount_tmpfs(options, *attrs).step_on(
                LAYER,
                "mount tmpfs",
                target.to_bytes(),
            )?;
            attach(tree, target, "mount tmpfs")
        }
        Step::Symlink { to, target } => nix::unistd::symlinkat(
            to.as_c_str(),
            nix::fcntl::AT_FDCWD,
            target.as_c_str(),
        )
        .step_on(LAYER, "create symlink", target.to_bytes()),
        Step::File {
            staging,
            target,
            content,
            perms,
        } => {
            use nix::fcntl::{open, OFlag};
            let fd = open(
                staging.as_c_str(),
                OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(*perms),
            )
            .step_on(LAYER, "write inline file", target.to_bytes())?;
            sys::write_all(fd.as_fd(), content).step_on(
                LAYER,
                "write inline file",
                target.to_bytes(),
            )?;
            nix::sys::stat::fchmod(&fd, Mode::from_bits_truncate(*perms)).step_on(
                LAYER,
                "write inline file",
                target.to_bytes(),
            )?;
            drop(fd);
            let attrs = sys::MOUNT_ATTR_RDONLY | sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV;
            let tree = bind_tree(staging, None, attrs).step_on(
                LAYER,
                "bind inline file",
                target.to_bytes(),
            )?;
            attach(tree, target, "bind inline file")
        }
        Step::Mask {
            target,
            required,
            options,
        } => {
            let onto = match sys::open_no_symlinks(target) {
                Ok(fd) => fd,
                Err(Errno::ENOENT) if !required => return Ok(()),
                Err(e) => {
                    return Err(ChildError::new(LAYER, "mask", e).with_detail(target.to_bytes()))
                }
            };
            let tree = if is_dir(&onto).step_on(LAYER, "mask", target.to_bytes())? {
                sys::fsmount_tmpfs(
                    options,
                    sys::MOUNT_ATTR_RDONLY
                        | sys::MOUNT_ATTR_NOSUID
                        | sys::MOUNT_ATTR_NODEV
                        | sys::MOUNT_ATTR_NOEXEC,
                )
            } else {
                bind_tree(
                    c"/oldroot/dev/null",
                    None,
                    sys::MOUNT_ATTR_RDONLY | sys::MOUNT_ATTR_NOSUID,
                )
            }
            .step_on(LAYER, "mask", target.to_bytes())?;
            sys::move_mount_fd(tree.as_fd(), onto.as_fd()).step_on(LAYER, "mask", target.to_bytes())
        }
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
                let tree = bind_tree(
                    c"/oldroot/proc",
                    None,
                    sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV,
                )
                .step_on(LAYER, "bind host /proc", target.to_bytes())?;
                attach(tree, target, "bind host /proc")
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
/// namespace with CAP_SYS_ADMIN over it. `trees`: the idmapped binds' trees
/// ([`super::idmap::make_trees`]), inherited from the supervisor.
pub fn child_apply<'a>(prep: &'a Prepared, trees: &[OwnedFd]) -> Result<(), ChildError<'a>> {
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
        Some("mode=0755,size=16m"),
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
        Some("mode=0755,size=16m"),
    )
    .step(LAYER, "mount root tmpfs")?;
    // 4. The profile's mounts, then /proc and /dev, in order.
    for step in &prep.steps {
        run_step(step, trees)?;
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
