//! `host-uid: auto`: a host uid (and the same gid) of its own for each run, so that two
//! sandboxes, or a sandbox and a host daemon running as `nobody`, never share one (the
//! isolate judge's box idea). The supervisor, as root, picks a free id from the profile's
//! range and holds a lock on `/run/lasagna/host-ids/<id>` for the whole run; a concurrent
//! run skips a locked id, and an id that /etc/passwd or /etc/group names is never used.

use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{openat, OFlag};
use nix::sys::stat::{mkdirat, Mode};

use crate::hostfs::{self, Kind, Links};

const LOCK_DIR: &str = "/run/lasagna/host-ids";

/// The picked id and the lock held on it (released when the descriptor closes).
#[derive(Debug)]
pub struct Picked {
    pub id: u32,
    _lock: OwnedFd,
}

/// Pick and lock a free id in `first..=last`.
pub fn pick(first: u32, last: u32) -> Result<Picked, String> {
    let dir = lock_dir()?;
    let named = ids_in_use();
    let span = (last - first) as u64 + 1;
    // Start at a random place: concurrent runs rarely try the same ids.
    let start = random() % span;
    for i in 0..span.min(100_000) {
        let id = first + ((start + i) % span) as u32;
        if named.contains(&id) {
            continue;
        }
        let name = CString::new(id.to_string()).expect("digits");
        let fd = match openat(
            dir.fd.as_fd(),
            name.as_c_str(),
            OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        ) {
            Ok(fd) => fd,
            Err(e) => return Err(format!("cannot open {LOCK_DIR}/{id}: {}", e.desc())),
        };
        match crate::sys::flock(fd.as_fd(), libc::LOCK_EX | libc::LOCK_NB) {
            Ok(()) => return Ok(Picked { id, _lock: fd }),
            Err(Errno::EWOULDBLOCK) => continue,
            Err(e) => return Err(format!("cannot lock {LOCK_DIR}/{id}: {}", e.desc())),
        }
    }
    Err(format!(
        "every host id in {first}-{last} is in use by a running sandbox or named in /etc/passwd"
    ))
}

/// `/run/lasagna/host-ids`, made root's own (0700) if missing, reached without links.
fn lock_dir() -> Result<std::rc::Rc<hostfs::Node>, String> {
    let mut dir = hostfs::walk(Path::new("/run"), Links::Trusted, true)
        .map_err(|e| format!("host ids: {e}"))?;
    for name in ["lasagna", "host-ids"] {
        match mkdirat(dir.fd.as_fd(), name, Mode::from_bits_truncate(0o700)) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => {
                return Err(format!(
                    "host ids: create {}/{name}: {}",
                    dir.path.display(),
                    e.desc()
                ))
            }
        }
        let next = dir
            .child(std::ffi::OsStr::new(name))
            .map_err(|e| format!("host ids: {}/{name}: {}", dir.path.display(), e.desc()))?
            .ok_or_else(|| format!("host ids: {}/{name} vanished", dir.path.display()))?;
        if next.kind() != Kind::Dir || next.meta.uid != 0 || next.meta.mode & 0o022 != 0 {
            return Err(format!(
                "host ids: {} must be a directory of root's that no one else can write",
                next.path.display()
            ));
        }
        dir = std::rc::Rc::new(next);
    }
    Ok(dir)
}

/// Every uid and gid /etc/passwd and /etc/group name.
fn ids_in_use() -> std::collections::HashSet<u32> {
    let mut ids = std::collections::HashSet::new();
    for file in ["/etc/passwd", "/etc/group"] {
        for line in std::fs::read_to_string(file).unwrap_or_default().lines() {
            if let Some(id) = line.split(':').nth(2).and_then(|v| v.parse().ok()) {
                ids.insert(id);
            }
        }
    }
    ids
}

fn random() -> u64 {
    let mut b = [0u8; 8];
    crate::procfs::random_bytes(&mut b);
    u64::from_le_bytes(b)
}
