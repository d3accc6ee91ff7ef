//! The supervisor's writes to host directories (parent side only: nothing here runs after
//! the clone). A profile entry inside a bound host directory may need a mount point, a
//! directory or a symlink that the host lacks ([`super::view`] plans them). They are made
//! here, before the clone, relative to descriptors of directories walked without following
//! any link, and undone after the run: each is removed only when it is still the very
//! object made (device and inode) and, for a directory, still empty, so what the payload
//! wrote stays and nothing else is touched.

use std::ffi::CString;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::rc::Rc;

use nix::errno::Errno;
use nix::fcntl::{openat, AtFlags, OFlag};
use nix::sys::stat::{fchmod, fstatat, mkdirat, Mode};
use nix::unistd::{fchownat, symlinkat, unlinkat, Gid, Uid, UnlinkatFlags};

use crate::hostfs::{self, Kind, Links, Meta};

use super::view::{Create, CreateKind};
use super::LAYER;

/// What this run made in host directories, removed again by [`HostChanges::undo`] (or on
/// drop, when the run stops on an error).
#[derive(Debug, Default)]
pub struct HostChanges {
    made: Vec<Made>,
}

#[derive(Debug)]
struct Made {
    parent: Rc<hostfs::Node>,
    name: CString,
    display: String,
    meta: Meta,
}

impl HostChanges {
    /// Make every planned entry. `owner`: the payload's host ids, for directories the
    /// payload is meant to use, when the supervisor runs as root.
    /// `idmapped`: the idmapped binds' sources and owners; what is made inside one belongs
    /// to its owner, which is the payload on that mount.
    pub fn apply(
        creates: &[Create],
        owner: Option<(u32, u32)>,
        idmapped: &[(std::path::PathBuf, (u32, u32))],
    ) -> Result<HostChanges, String> {
        hostfs::cached(|| Self::make(creates, owner, idmapped))
    }

    fn make(
        creates: &[Create],
        payload: Option<(u32, u32)>,
        idmapped: &[(std::path::PathBuf, (u32, u32))],
    ) -> Result<HostChanges, String> {
        let mut changes = HostChanges::default();
        for c in creates {
            let path = c.path();
            let owner = idmapped
                .iter()
                .filter(|(source, _)| path.starts_with(source))
                .max_by_key(|(source, _)| source.as_os_str().len())
                .map(|(_, o)| *o)
                .or(payload);
            let fail = |what: &str, e: Errno| {
                format!(
                    "{LAYER}: create {what} {} in a bound host directory: {} ({e:?})",
                    path.display(),
                    e.desc()
                )
            };
            let parent = hostfs::walk(&c.parent, Links::None, true)
                .map_err(|e| format!("{LAYER}: create {}: {e}", path.display()))?;
            if parent.kind() != Kind::Dir {
                return Err(format!(
                    "{LAYER}: create {}: {} is no longer a directory",
                    path.display(),
                    c.parent.display()
                ));
            }
            let name = CString::new(c.name.as_bytes()).map_err(|_| fail("entry", Errno::EINVAL))?;
            let dir = parent.fd.as_fd();
            match &c.kind {
                CreateKind::Dir { perms, for_payload } => {
                    mkdirat(dir, name.as_c_str(), Mode::from_bits_truncate(0o700))
                        .map_err(|e| fail("directory", e))?;
                    let fd = openat(
                        dir,
                        name.as_c_str(),
                        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                        Mode::empty(),
                    )
                    .map_err(|e| fail("directory", e))?;
                    if let (true, Some((uid, gid))) = (*for_payload, owner) {
                        nix::unistd::fchown(
                            &fd,
                            Some(Uid::from_raw(uid)),
                            Some(Gid::from_raw(gid)),
                        )
                        .map_err(|e| fail("directory", e))?;
                    }
                    fchmod(&fd, Mode::from_bits_truncate(*perms))
                        .map_err(|e| fail("directory", e))?;
                }
                CreateKind::File => {
                    openat(
                        dir,
                        name.as_c_str(),
                        OFlag::O_CREAT
                            | OFlag::O_EXCL
                            | OFlag::O_WRONLY
                            | OFlag::O_NOFOLLOW
                            | OFlag::O_CLOEXEC,
                        Mode::from_bits_truncate(0o444),
                    )
                    .map_err(|e| fail("mount point", e))?;
                }
                CreateKind::Symlink { to } => {
                    symlinkat(to.as_str(), dir, name.as_c_str()).map_err(|e| fail("symlink", e))?;
                    if let Some((uid, gid)) = owner {
                        fchownat(
                            dir,
                            name.as_c_str(),
                            Some(Uid::from_raw(uid)),
                            Some(Gid::from_raw(gid)),
                            AtFlags::AT_SYMLINK_NOFOLLOW,
                        )
                        .map_err(|e| fail("symlink", e))?;
                    }
                }
            }
            let meta = fstatat(dir, name.as_c_str(), AtFlags::AT_SYMLINK_NOFOLLOW)
                .map(|st| Meta::of(&st))
                .map_err(|e| fail("entry", e))?;
            changes.made.push(Made {
                parent,
                name,
                display: path.display().to_string(),
                meta,
            });
        }
        Ok(changes)
    }

    pub fn is_empty(&self) -> bool {
        self.made.is_empty()
    }

    /// Remove what was made, newest first. Returns what had to stay, and why (the payload
    /// wrote into a directory, or replaced an entry).
    pub fn undo(mut self) -> Vec<String> {
        self.undo_all()
    }

    fn undo_all(&mut self) -> Vec<String> {
        let mut kept = Vec::new();
        while let Some(m) = self.made.pop() {
            let now = match fstatat(
                m.parent.fd.as_fd(),
                m.name.as_c_str(),
                AtFlags::AT_SYMLINK_NOFOLLOW,
            ) {
                Ok(st) => Meta::of(&st),
                Err(Errno::ENOENT) => continue,
                Err(e) => {
                    kept.push(format!("{} left in place: {}", m.display, e.desc()));
                    continue;
                }
            };
            if !now.same(&m.meta) {
                kept.push(format!(
                    "{} left in place: it was replaced during the run",
                    m.display
                ));
                continue;
            }
            let flag = if m.meta.kind() == Kind::Dir {
                UnlinkatFlags::RemoveDir
            } else {
                UnlinkatFlags::NoRemoveDir
            };
            match unlinkat(m.parent.fd.as_fd(), m.name.as_c_str(), flag) {
                Ok(()) | Err(Errno::ENOENT) => {}
                Err(Errno::ENOTEMPTY) | Err(Errno::EEXIST) => kept.push(format!(
                    "{} left in place: the payload wrote into it",
                    m.display
                )),
                Err(e) => kept.push(format!("{} left in place: {}", m.display, e.desc())),
            }
        }
        kept
    }
}

impl Drop for HostChanges {
    fn drop(&mut self) {
        let _ = self.undo_all();
    }
}
