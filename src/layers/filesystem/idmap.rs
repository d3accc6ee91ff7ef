//! The binds' trees, made by the supervisor before the clone when it runs as root: it
//! opens each source itself (the caller chose them; the child, unprivileged on the host,
//! could not reach a source below a directory only root may enter, so `check` and `run`
//! agree), and idmaps those the plan marks.
//!
//! A writable bind of a directory the payload's host uid does not own (the caller's own
//! project, as root) would fail with EACCES. An idmapped bind maps the source's owner to
//! the payload's ids on that mount alone: what the payload writes there lands on the host
//! as the owner, while the payload stays its unprivileged host uid for everything else
//! (signals, /proc, every other file). Only a holder of CAP_SYS_ADMIN in the filesystem's
//! user namespace (init's, for a host filesystem) may idmap a mount, so the supervisor
//! makes each tree (`open_tree` on the source's descriptor, `mount_setattr` with
//! MOUNT_ATTR_IDMAP through a user namespace whose only maps are owner -> payload) and the
//! child attaches it.
//!
//! What this opens, and what closes it (the plan idmaps a writable bind only when each
//! holds; see `crate::plan::idmap`):
//! - setuid and setgid bits on a file the host sees as the owner's: seccomp's
//!   `setuid-files` edge;
//! - file capabilities (`security.capability`, which the kernel writes with the owner as
//!   the namespace root): the payload holds no CAP_SETFCAP;
//! - device nodes: only init's user namespace may create them, and binds are nodev;
//! - hardlinks to files outside the bind: the kernel refuses a link across mounts (EXDEV);
//! - new files and directories: owned by the source's owner, as the caller expects.

use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

use nix::errno::Errno;

use crate::hostfs::{self, Links, Meta};
use crate::sys;

use super::LAYER;

/// At most this many idmapped binds per run (the child keeps their descriptors in a fixed
/// array until it attaches them).
pub const MAX_TREES: usize = 256;

/// One bind whose tree the supervisor makes: its source, as the plan found it, and its
/// mount attributes.
#[derive(Debug, Clone)]
pub struct TreeSpec {
    pub source: PathBuf,
    pub expect: Option<Meta>,
    /// Idmapped: the host owner (uid, gid) the plan saw, mapped to the payload's ids.
    pub owner: Option<(u32, u32)>,
    pub attrs: u64,
}

/// The trees of `specs`, in order; an idmapped one so that its owner is `payload` (the
/// payload's host uid and gid). A filesystem that cannot be idmapped gives a plain tree
/// and a warning: the payload then writes there as its own host uid, as without `idmap`.
pub fn make_trees(
    specs: &[TreeSpec],
    payload: Option<(u32, u32)>,
    one: &sys::OneThread,
    warnings: &mut Vec<String>,
) -> Result<Vec<OwnedFd>, String> {
    let mut namespaces: Vec<((u32, u32), OwnedFd)> = Vec::new();
    let mut trees = Vec::with_capacity(specs.len());
    for spec in specs {
        let shown = crate::text::escape(&spec.source.display().to_string()).into_owned();
        let fail = |what: &str, e: Errno| {
            format!("{LAYER}: {what} the bind of {shown}: {} ({e:?})", e.desc())
        };
        let node = hostfs::walk(&spec.source, Links::None, true)
            .map_err(|e| format!("{LAYER}: bind source {shown}: {e}"))?;
        if spec.expect.is_some_and(|m| !m.same(&node.meta)) {
            return Err(format!(
                "{LAYER}: bind source {shown} changed since the plan checked it"
            ));
        }
        let tree = sys::open_tree_clone_fd(node.fd.as_fd()).map_err(|e| fail("open", e))?;
        // The owner now, which is the owner of what is mounted.
        let owner = (node.meta.uid, node.meta.gid);
        let Some(payload) = payload.filter(|p| spec.owner.is_some() && *p != owner) else {
            sys::mount_setattr_fd(tree.as_fd(), spec.attrs).map_err(|e| fail("set up", e))?;
            trees.push(tree);
            continue;
        };
        let userns = match namespaces.iter().find(|(o, _)| *o == owner) {
            Some((_, fd)) => fd,
            None => {
                let fd = sys::userns_with_maps(one, (owner.0, payload.0), (owner.1, payload.1))
                    .map_err(|e| fail("make the user namespace of", e))?;
                namespaces.push((owner, fd));
                &namespaces.last().expect("just pushed").1
            }
        };
        match sys::mount_setattr_idmap_fd(tree.as_fd(), spec.attrs, userns.as_fd()) {
            Ok(()) => trees.push(tree),
            Err(Errno::EINVAL) => {
                warnings.push(format!(
                    "{LAYER}: the bind of {shown} is not idmapped: its filesystem (or one mounted \
                     below it) cannot be; the payload writes there as host uid {} (fix: \
                     `idmap: false` on the entry to say so, or `chown {} {shown}`)",
                    payload.0, payload.0
                ));
                drop(tree);
                let plain =
                    sys::open_tree_clone_fd(node.fd.as_fd()).map_err(|e| fail("open", e))?;
                sys::mount_setattr_fd(plain.as_fd(), spec.attrs).map_err(|e| fail("set up", e))?;
                trees.push(plain);
            }
            Err(e) => return Err(fail("idmap", e)),
        }
    }
    Ok(trees)
}
