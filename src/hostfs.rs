//! Host paths reached through descriptors, for the supervisor (parent side only: nothing
//! here runs after the clone).
//!
//! lasagna may run as root for many users. A host path that a payload, an earlier payload or
//! another user could have changed since it was written down is never looked up by name in
//! one go: it is walked one component at a time with `openat(O_PATH | O_NOFOLLOW)`,
//! relative to the directory descriptor before it. A symlink met on the way is followed
//! only under the walk's [`Links`] rule; the default, [`Links::Trusted`], follows a link only
//! when root owns it and it sits in a directory that only root can change (system links
//! such as `/var/run -> /run`), and refuses every other link, naming it and the path to
//! write instead. What the walk returns is an `O_PATH` descriptor of the object itself and
//! its canonical path (no symlinks left in it), which the child re-opens with
//! `RESOLVE_NO_SYMLINKS` and compares by device and inode.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::{CString, OsStr, OsString};
use std::fmt;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use nix::errno::Errno;
use nix::fcntl::{openat, OFlag, AT_FDCWD};
use nix::sys::stat::{fstat, FileStat, Mode, SFlag};

/// Longest chain of symlinks a walk follows (the kernel's limit is 40 as well).
const MAX_LINKS: usize = 40;

/// Which symlinks a walk may follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Links {
    /// Only links owned by root in directories only root can change.
    Trusted,
    /// Any link (reading a profile as a normal user: nothing is gained by redirecting it).
    Any,
    /// No link at all: the walk is inside host content a payload may control.
    None,
}

/// What kind of object a path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
    Symlink,
    Other,
}

/// The stat fields the walks and their callers compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub dev: u64,
    pub ino: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u64,
    pub size: i64,
}

impl Meta {
    pub fn of(st: &FileStat) -> Meta {
        Meta {
            dev: st.st_dev,
            ino: st.st_ino,
            mode: st.st_mode,
            uid: st.st_uid,
            gid: st.st_gid,
            nlink: st.st_nlink,
            size: st.st_size,
        }
    }

    pub fn kind(&self) -> Kind {
        let fmt = self.mode & SFlag::S_IFMT.bits();
        if fmt == SFlag::S_IFDIR.bits() {
            Kind::Dir
        } else if fmt == SFlag::S_IFREG.bits() {
            Kind::File
        } else if fmt == SFlag::S_IFLNK.bits() {
            Kind::Symlink
        } else {
            Kind::Other
        }
    }

    /// The same object as `other`.
    pub fn same(&self, other: &Meta) -> bool {
        self.dev == other.dev && self.ino == other.ino
    }

    /// Why a user other than root and `caller` could change this object (or, for a
    /// directory, replace what is in it), if one could.
    pub fn writable_by_others(&self, caller: u32) -> Option<String> {
        let sticky = self.mode & libc::S_ISVTX != 0;
        let dir = self.kind() == Kind::Dir;
        if self.uid != 0 && self.uid != caller {
            return Some(format!("it is owned by uid {}", self.uid));
        }
        // In a sticky directory only an entry's owner may replace it.
        if self.mode & 0o002 != 0 && !(dir && sticky) {
            return Some("it is writable by every user".into());
        }
        if self.mode & 0o020 != 0 && self.gid != 0 && !(dir && sticky) {
            return Some(format!("it is writable by group {}", self.gid));
        }
        None
    }
}

/// Why a user other than root and `caller` could change the object `fd` names: its owner,
/// its mode bits, or an entry of its POSIX access ACL (a named user or group with write
/// permission under the ACL's mask), if one could.
fn exposure(fd: BorrowedFd<'_>, meta: &Meta, caller: u32) -> Option<String> {
    meta.writable_by_others(caller)
        .or_else(|| acl_exposure(fd, meta, caller))
}

fn acl_exposure(fd: BorrowedFd<'_>, meta: &Meta, caller: u32) -> Option<String> {
    if !matches!(meta.kind(), Kind::Dir | Kind::File) {
        return None;
    }
    // A directory's default ACL is what everything created in it later starts with (an
    // overlay `profiles edit` creates, a file root writes there): the same rule holds.
    let names: &[(&std::ffi::CStr, &str)] = if meta.kind() == Kind::Dir {
        &[
            (c"system.posix_acl_access", ""),
            (c"system.posix_acl_default", "default:"),
        ]
    } else {
        &[(c"system.posix_acl_access", "")]
    };
    let mut buf = [0u8; 4096];
    for &(name, prefix) in names {
        let why = match crate::sys::getxattr_fd(fd, name, &mut buf) {
            Ok(n) => acl_writers(&buf[..n], meta, caller, prefix),
            // No ACL, or a filesystem without them: the mode bits are the whole story.
            Err(Errno::ENODATA) | Err(Errno::EOPNOTSUPP) => None,
            Err(e) => Some(format!("its {prefix}ACL could not be read ({})", e.desc())),
        };
        if why.is_some() {
            return why;
        }
    }
    None
}

/// The first entry of a POSIX ACL (the `system.posix_acl_access` value: a version word,
/// then `tag, perm, id` entries) that lets a user other than root and `caller` change
/// the object, as `getfacl` would print it (`prefix`: `default:` for a directory's default
/// ACL, whose entries pass to what is created in it). A malformed ACL counts as one that
/// does.
pub fn acl_writers(acl: &[u8], meta: &Meta, caller: u32, prefix: &str) -> Option<String> {
    const VERSION: u32 = 2;
    const USER: u16 = 0x02;
    const GROUP_OBJ: u16 = 0x04;
    const GROUP: u16 = 0x08;
    const MASK: u16 = 0x10;
    const WRITE: u16 = 0x02;
    let malformed = || Some(format!("it has a {prefix}ACL lasagna cannot read"));
    if acl.len() < 4 || !(acl.len() - 4).is_multiple_of(8) {
        return malformed();
    }
    if u32::from_le_bytes(acl[..4].try_into().expect("4 bytes")) != VERSION {
        return malformed();
    }
    let entries: Vec<(u16, u16, u32)> = acl[4..]
        .chunks_exact(8)
        .map(|e| {
            (
                u16::from_le_bytes([e[0], e[1]]),
                u16::from_le_bytes([e[2], e[3]]),
                u32::from_le_bytes([e[4], e[5], e[6], e[7]]),
            )
        })
        .collect();
    // In a sticky directory only an entry's owner may replace it, as with the mode bits.
    // A default ACL passes to new entries whatever the sticky bit says.
    if prefix.is_empty() && meta.kind() == Kind::Dir && meta.mode & libc::S_ISVTX != 0 {
        return None;
    }
    let mask = entries
        .iter()
        .find(|(tag, _, _)| *tag == MASK)
        .map_or(0o7, |(_, perm, _)| *perm);
    let rwx = |perm: u16| {
        let bit = |b: u16, c: char| if perm & b != 0 { c } else { '-' };
        format!("{}{}{}", bit(4, 'r'), bit(2, 'w'), bit(1, 'x'))
    };
    for &(tag, perm, id) in &entries {
        if perm & mask & WRITE == 0 {
            continue;
        }
        match tag {
            USER if id != 0 && id != caller => {
                return Some(format!(
                    "its {prefix}ACL lets uid {id} write (entry {prefix}user:{id}:{})",
                    rwx(perm)
                ))
            }
            GROUP if id != 0 => {
                return Some(format!(
                    "its {prefix}ACL lets group {id} write (entry {prefix}group:{id}:{})",
                    rwx(perm)
                ))
            }
            GROUP_OBJ if meta.gid != 0 => {
                return Some(format!(
                    "its {prefix}ACL lets group {} write (entry {prefix}group::{})",
                    meta.gid,
                    rwx(perm)
                ))
            }
            _ => {}
        }
    }
    None
}

/// An object on the host, found by a walk: its `O_PATH` descriptor, its canonical path and
/// what it is.
#[derive(Debug)]
pub struct Node {
    pub path: PathBuf,
    pub fd: OwnedFd,
    pub meta: Meta,
    /// The first component of the path (this object included) that a user other than root
    /// and the caller could change, and why.
    pub exposed: Option<(PathBuf, String)>,
}

impl Node {
    pub fn kind(&self) -> Kind {
        self.meta.kind()
    }

    /// The text of this node when it is a symlink (a walk with `follow_last: false`).
    pub fn link_text(&self) -> Result<OsString, Errno> {
        nix::fcntl::readlinkat(self.fd.as_fd(), c"")
    }

    /// The entry `name` of this directory, without following a link at `name`.
    pub fn child(&self, name: &OsStr) -> Result<Option<Node>, Errno> {
        match openat(
            self.fd.as_fd(),
            name,
            OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => {
                let meta = Meta::of(&fstat(&fd)?);
                Ok(Some(Node {
                    path: self.path.join(name),
                    fd,
                    meta,
                    exposed: self.exposed.clone(),
                }))
            }
            Err(Errno::ENOENT) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Why a walk stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WalkError {
    /// A component does not exist (`at`: the first missing one, as walked).
    #[error("{at} does not exist")]
    Missing { at: PathBuf },
    #[error("{at} is not a directory")]
    NotADirectory { at: PathBuf },
    /// A symlink the walk's rule does not follow.
    #[error("{}", untrusted_message(link, target, *owner, *in_content, resolved.as_deref()))]
    Link {
        link: PathBuf,
        target: String,
        owner: u32,
        /// The link is inside host content (`Links::None`), where no link is followed.
        in_content: bool,
        /// What the path resolves to when every link is followed, for the hint.
        resolved: Option<PathBuf>,
    },
    #[error("{path}: more than {MAX_LINKS} symlinks")]
    TooManyLinks { path: PathBuf },
    #[error("{path} is not an absolute path")]
    Relative { path: PathBuf },
    #[error("{at}: {}", errno.desc())]
    Io { at: PathBuf, errno: Errno },
}

impl WalkError {
    pub fn errno(&self) -> Errno {
        match self {
            WalkError::Missing { .. } => Errno::ENOENT,
            WalkError::NotADirectory { .. } => Errno::ENOTDIR,
            WalkError::Link { .. } | WalkError::TooManyLinks { .. } => Errno::ELOOP,
            WalkError::Relative { .. } => Errno::EINVAL,
            WalkError::Io { errno, .. } => *errno,
        }
    }
}

fn untrusted_message(
    link: &Path,
    target: &str,
    owner: u32,
    in_content: bool,
    resolved: Option<&Path>,
) -> String {
    let mut out = format!(
        "{} is a symlink (to {}) owned by uid {owner}",
        link.display(),
        crate::text::quote(target)
    );
    if in_content {
        out.push_str(
            "; no link inside a bound host directory is followed (a payload could have planted it)",
        );
    } else {
        out.push_str(
            "; lasagna follows only links owned by root in directories only root can change",
        );
    }
    if let Some(r) = resolved {
        out.push_str(&format!(
            "; write the path it resolves to ({}) instead",
            r.display()
        ));
    }
    out
}

/// What walks in one scope share ([`cached`]): the caller's uid, the root, and every real
/// directory already walked, by canonical path. A plan walks the same prefixes (`/usr`,
/// `/etc`) many times; each walk step is three syscalls.
struct Cache {
    caller: u32,
    root: Option<Rc<Node>>,
    dirs: HashMap<PathBuf, Rc<Node>>,
}

thread_local! {
    static CACHE: RefCell<Option<Cache>> = const { RefCell::new(None) };
}

/// Run `f` with walks sharing what they found (see [`Cache`]). The directories are kept
/// as `O_PATH` descriptors of what was checked, so a walk continues from the very directory
/// an earlier one verified; they are closed when `f` returns.
pub fn cached<T>(f: impl FnOnce() -> T) -> T {
    let outer = CACHE.with(|c| c.borrow().is_some());
    if !outer {
        CACHE.with(|c| {
            *c.borrow_mut() = Some(Cache {
                caller: nix::unistd::geteuid().as_raw(),
                root: None,
                dirs: HashMap::new(),
            })
        });
    }
    let out = f();
    if !outer {
        CACHE.with(|c| *c.borrow_mut() = None);
    }
    out
}

fn caller() -> u32 {
    CACHE
        .with(|c| c.borrow().as_ref().map(|c| c.caller))
        .unwrap_or_else(|| nix::unistd::geteuid().as_raw())
}

fn cached_dir(path: &Path) -> Option<Rc<Node>> {
    CACHE.with(|c| c.borrow().as_ref().and_then(|c| c.dirs.get(path).cloned()))
}

fn remember(node: &Rc<Node>) {
    if node.kind() == Kind::Dir {
        CACHE.with(|c| {
            if let Some(c) = c.borrow_mut().as_mut() {
                c.dirs.insert(node.path.clone(), node.clone());
            }
        });
    }
}

/// Walk `path` (absolute) from `/`. `follow_last`: a symlink at the last component is
/// followed (under `links`) instead of returned.
pub fn walk(path: &Path, links: Links, follow_last: bool) -> Result<Rc<Node>, WalkError> {
    let root = root()?;
    walk_from(root, path, links, follow_last, caller())
}

/// The root directory as a walk's start.
fn root() -> Result<Rc<Node>, WalkError> {
    if let Some(root) = CACHE.with(|c| c.borrow().as_ref().and_then(|c| c.root.clone())) {
        return Ok(root);
    }
    let io = |errno| WalkError::Io {
        at: PathBuf::from("/"),
        errno,
    };
    let fd = openat(
        AT_FDCWD,
        "/",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(io)?;
    let meta = Meta::of(&fstat(&fd).map_err(io)?);
    let exposed = exposure(fd.as_fd(), &meta, caller()).map(|why| (PathBuf::from("/"), why));
    let root = Rc::new(Node {
        path: PathBuf::from("/"),
        fd,
        meta,
        exposed,
    });
    CACHE.with(|c| {
        if let Some(c) = c.borrow_mut().as_mut() {
            c.root = Some(root.clone());
        }
    });
    Ok(root)
}

fn walk_from(
    start: Rc<Node>,
    path: &Path,
    links: Links,
    follow_last: bool,
    caller: u32,
) -> Result<Rc<Node>, WalkError> {
    if start.path == Path::new("/") && !path.is_absolute() {
        return Err(WalkError::Relative {
            path: path.to_path_buf(),
        });
    }
    // The directories walked so far, the start at the bottom; `..` pops but never below it.
    let base_depth = 1;
    let mut stack: Vec<Rc<Node>> = vec![start];
    let mut todo: std::collections::VecDeque<OsString> = components(path).collect();
    let mut followed = 0;
    while let Some(name) = todo.pop_front() {
        if name == ".." {
            if stack.len() > base_depth {
                stack.pop();
            }
            continue;
        }
        let dir = stack.last().expect("the start stays on the stack");
        let at = dir.path.join(&name);
        let node = match cached_dir(&at) {
            Some(node) => node,
            None => match dir.child(&name) {
                Ok(Some(node)) => Rc::new(node),
                Ok(None) => return Err(WalkError::Missing { at }),
                Err(errno) => return Err(WalkError::Io { at, errno }),
            },
        };
        let last = todo.is_empty();
        if node.kind() == Kind::Symlink && (!last || follow_last) {
            let target = node.link_text().map_err(|errno| WalkError::Io {
                at: at.clone(),
                errno,
            })?;
            let trusted = node.meta.uid == 0 && exposure(dir.fd.as_fd(), &dir.meta, 0).is_none();
            let allowed = match links {
                Links::Any => true,
                Links::Trusted => trusted,
                Links::None => false,
            };
            if !allowed {
                return Err(WalkError::Link {
                    resolved: std::fs::canonicalize(path_of(&stack, &name, &todo)).ok(),
                    link: at,
                    target: target.to_string_lossy().into_owned(),
                    owner: node.meta.uid,
                    in_content: links == Links::None,
                });
            }
            followed += 1;
            if followed > MAX_LINKS {
                return Err(WalkError::TooManyLinks {
                    path: path.to_path_buf(),
                });
            }
            let target = PathBuf::from(target);
            if target.is_absolute() {
                stack.truncate(1);
                if stack[0].path != Path::new("/") {
                    // An absolute link inside a bound tree leads out of it.
                    return Err(WalkError::Link {
                        resolved: None,
                        link: at,
                        target: target.display().to_string(),
                        owner: node.meta.uid,
                        in_content: true,
                    });
                }
            }
            for (i, c) in components(&target).enumerate() {
                todo.insert(i, c);
            }
            continue;
        }
        if !last && node.kind() != Kind::Dir {
            return Err(WalkError::NotADirectory { at });
        }
        let node = if node.exposed.is_none() {
            match exposure(node.fd.as_fd(), &node.meta, caller) {
                Some(why) => {
                    let mut owned = Node {
                        path: node.path.clone(),
                        fd: node.fd.try_clone().map_err(|e| WalkError::Io {
                            at: at.clone(),
                            errno: Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
                        })?,
                        meta: node.meta,
                        exposed: None,
                    };
                    owned.exposed = Some((owned.path.clone(), why));
                    Rc::new(owned)
                }
                None => node,
            }
        } else {
            node
        };
        remember(&node);
        stack.push(node);
    }
    Ok(stack.pop().expect("the start stays on the stack"))
}

/// The path as far as walked plus what is left, for a hint.
fn path_of(
    stack: &[Rc<Node>],
    name: &OsStr,
    todo: &std::collections::VecDeque<OsString>,
) -> PathBuf {
    let mut p = stack.last().map(|n| n.path.clone()).unwrap_or_default();
    p.push(name);
    for t in todo {
        p.push(t);
    }
    p
}

fn components(path: &Path) -> impl Iterator<Item = OsString> + '_ {
    path.components().filter_map(|c| match c {
        Component::Normal(n) => Some(n.to_os_string()),
        Component::ParentDir => Some(OsString::from("..")),
        Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
    })
}

/// The directory `path`, walked by descriptor under `links` and created (with `mode`, as
/// the caller) one missing component at a time with `mkdirat` relative to the directory
/// before it: nothing is created through a link the rule does not follow.
pub fn make_dirs(path: &Path, links: Links, mode: u32) -> Result<Rc<Node>, String> {
    for _ in 0..=components(path).count() {
        match walk(path, links, true) {
            Ok(node) if node.kind() == Kind::Dir => return Ok(node),
            Ok(node) => return Err(format!("{} is not a directory", node.path.display())),
            Err(WalkError::Missing { at }) => {
                let (parent, name) = split_last(&at)
                    .ok_or_else(|| format!("{}: no parent directory", at.display()))?;
                let parent = walk(&parent, links, true).map_err(|e| e.to_string())?;
                match nix::sys::stat::mkdirat(
                    parent.fd.as_fd(),
                    name.as_os_str(),
                    Mode::from_bits_truncate(mode),
                ) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err(format!("create {}: {}", at.display(), e.desc())),
                }
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    Err(format!(
        "{} keeps changing while it is created",
        path.display()
    ))
}

/// A regular file's content, at most `limit` bytes, read through a walk: refused when the
/// path names anything but a regular file (a FIFO, a device such as /dev/zero) or when the
/// file is larger. `links`: which symlinks the walk follows.
pub fn read_regular(
    path: &Path,
    links: Links,
    limit: u64,
) -> Result<(Vec<u8>, Rc<Node>), ReadError> {
    use std::io::Read;
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| ReadError::Io(e.to_string()))?
            .join(path)
    };
    let node = walk(&absolute, links, true).map_err(ReadError::Walk)?;
    if node.kind() != Kind::File {
        return Err(ReadError::NotRegular);
    }
    if node.meta.size as u64 > limit {
        return Err(ReadError::TooLarge {
            size: node.meta.size as u64,
        });
    }
    // Re-opened through /proc/self/fd, which names exactly the object walked; O_NONBLOCK:
    // nothing can make the open wait.
    let fd = reopen(&node).map_err(|e| ReadError::Io(e.desc().to_string()))?;
    let meta = Meta::of(&fstat(&fd).map_err(|e| ReadError::Io(e.desc().to_string()))?);
    if !meta.same(&node.meta) || meta.kind() != Kind::File {
        return Err(ReadError::NotRegular);
    }
    let mut buf = Vec::new();
    std::fs::File::from(fd)
        .take(limit + 1)
        .read_to_end(&mut buf)
        .map_err(|e| ReadError::Io(e.to_string()))?;
    if buf.len() as u64 > limit {
        return Err(ReadError::TooLarge {
            size: buf.len() as u64,
        });
    }
    Ok((buf, node))
}

/// A configuration file lasagna reads (a profile, an imported seccomp profile): a regular
/// file of at most `limit` bytes, UTF-8. As root, a file that a user other than root could
/// change (the file itself or a directory on its path: owned by another user, or writable
/// by a group or by everyone outside a sticky directory) is refused, as sudo and sshd
/// refuse such files: root would otherwise run a sandbox another user defines. Root
/// follows only root's own links on the way; a normal user follows any.
pub fn read_config(path: &Path, limit: u64) -> Result<String, String> {
    let root = nix::unistd::geteuid().is_root();
    let links = if root { Links::Trusted } else { Links::Any };
    let (bytes, node) = read_regular(path, links, limit).map_err(|e| match e {
        ReadError::Walk(WalkError::Missing { at }) if at == path => "no such file".to_string(),
        ReadError::Walk(e) => e.to_string(),
        ReadError::NotRegular => "not a regular file".into(),
        ReadError::TooLarge { size } => {
            format!("{size} bytes, larger than the {limit} byte limit")
        }
        ReadError::Io(e) => e,
    })?;
    if root {
        if let Some((at, why)) = &node.exposed {
            return Err(format!(
                "refused as root: {} can be changed by another user ({why}); make it root's own and not writable by others (chown root, chmod go-w, setfacl -b)",
                at.display()
            ));
        }
    }
    String::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_string())
}

/// Open the object behind an `O_PATH` descriptor for reading, through `/proc/self/fd`
/// (the magic link names exactly that object).
fn reopen(node: &Node) -> Result<OwnedFd, Errno> {
    use std::os::fd::AsRawFd;
    let proc_path = format!("/proc/self/fd/{}", node.fd.as_raw_fd());
    openat(
        AT_FDCWD,
        proc_path.as_str(),
        OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK | OFlag::O_NOCTTY,
        Mode::empty(),
    )
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    #[error("{0}")]
    Walk(WalkError),
    #[error("not a regular file")]
    NotRegular,
    #[error("{size} bytes, larger than the limit")]
    TooLarge { size: u64 },
    #[error("{0}")]
    Io(String),
}

/// A path as a C string (host paths from the plan never hold NUL bytes; one that does is
/// cut there, which the walks then fail to find).
pub fn cstring(path: &Path) -> CString {
    let bytes = path.as_os_str().as_bytes();
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    CString::new(&bytes[..end]).expect("cut at the first NUL")
}

/// The parent directory of `path` and its last component.
pub fn split_last(path: &Path) -> Option<(PathBuf, OsString)> {
    let name = path.file_name()?.to_os_string();
    let parent = path.parent()?.to_path_buf();
    Some((parent, name))
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Dir => "directory",
            Kind::File => "file",
            Kind::Symlink => "symlink",
            Kind::Other => "special file",
        })
    }
}

/// `OsString` from bytes, for link texts built by hand in tests.
pub fn os(bytes: &[u8]) -> OsString {
    OsString::from_vec(bytes.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("lasagna-hostfs-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn walks_real_directories_to_their_canonical_path() {
        let d = scratch("real");
        std::fs::create_dir_all(d.join("a/b")).unwrap();
        let n = walk(&d.join("a/./b"), Links::Trusted, true).unwrap();
        assert_eq!(n.path, d.join("a/b"));
        assert_eq!(n.kind(), Kind::Dir);
        let missing = walk(&d.join("a/c/d"), Links::Trusted, true).unwrap_err();
        assert_eq!(missing, WalkError::Missing { at: d.join("a/c") });
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_link_is_followed_only_by_its_rule() {
        let d = scratch("links");
        std::fs::create_dir_all(d.join("real")).unwrap();
        std::os::unix::fs::symlink("real", d.join("link")).unwrap();
        let via = d.join("link");
        // The link lives in a directory the test owns: as root, a root-owned link in a
        // root-owned 0755 directory is trusted; everywhere else it is not.
        let as_root = nix::unistd::geteuid().is_root();
        let trusted = walk(&via, Links::Trusted, true);
        let tmp_is_safe = Meta::of(&nix::sys::stat::stat(&d).unwrap())
            .writable_by_others(0)
            .is_none();
        if as_root && tmp_is_safe {
            assert_eq!(trusted.unwrap().path, d.join("real"));
        } else {
            assert!(matches!(trusted, Err(WalkError::Link { .. })));
        }
        assert_eq!(walk(&via, Links::Any, true).unwrap().path, d.join("real"));
        let err = walk(&via, Links::None, true).unwrap_err();
        assert!(err.to_string().contains("is a symlink"), "{err}");
        // Not following the last component returns the link itself.
        let link = walk(&via, Links::None, false).unwrap();
        assert_eq!(link.kind(), Kind::Symlink);
        assert_eq!(link.link_text().unwrap(), "real");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn system_links_are_trusted() {
        // /proc/self is a link owned by root in a directory only root changes; /var/run is
        // one on Debian. Either way a walk through /proc/self works.
        let n = walk(Path::new("/proc/self/status"), Links::Trusted, true).unwrap();
        assert_eq!(n.kind(), Kind::File);
    }

    #[test]
    fn read_regular_refuses_devices_and_large_files() {
        assert_eq!(
            read_regular(Path::new("/dev/zero"), Links::Trusted, 1 << 20).unwrap_err(),
            ReadError::NotRegular
        );
        let d = scratch("read");
        std::fs::write(d.join("f"), vec![b'x'; 100]).unwrap();
        let (data, _) = read_regular(&d.join("f"), Links::Trusted, 100).unwrap();
        assert_eq!(data.len(), 100);
        assert!(matches!(
            read_regular(&d.join("f"), Links::Trusted, 99),
            Err(ReadError::TooLarge { .. })
        ));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn acl_entries_that_grant_write_are_named() {
        let m = |mode: u32, gid: u32| Meta {
            dev: 0,
            ino: 0,
            mode,
            uid: 0,
            gid,
            nlink: 1,
            size: 0,
        };
        let acl = |entries: &[(u16, u16, u32)]| {
            let mut v = 2u32.to_le_bytes().to_vec();
            for (tag, perm, id) in entries {
                v.extend(tag.to_le_bytes());
                v.extend(perm.to_le_bytes());
                v.extend(id.to_le_bytes());
            }
            v
        };
        let file = m(SFlag::S_IFREG.bits() | 0o664, 0);
        let base = [
            (0x01, 6, u32::MAX),
            (0x04, 4, u32::MAX),
            (0x20, 4, u32::MAX),
        ];
        assert_eq!(acl_writers(&acl(&base), &file, 0, ""), None);
        let with = |extra: &[(u16, u16, u32)]| {
            let mut e = base.to_vec();
            e.extend_from_slice(extra);
            acl_writers(&acl(&e), &file, 0, "")
        };
        let why = with(&[(0x02, 6, 1001), (0x10, 6, u32::MAX)]).unwrap();
        assert!(why.contains("user:1001:rw-"), "{why}");
        // The mask takes write away; the caller's and root's own entries are theirs.
        assert_eq!(with(&[(0x02, 6, 1001), (0x10, 4, u32::MAX)]), None);
        assert_eq!(acl_writers(&acl(&[(0x02, 7, 1001)]), &file, 1001, ""), None);
        assert_eq!(with(&[(0x02, 7, 0), (0x08, 7, 0)]), None);
        let why = with(&[(0x08, 2, 50)]).unwrap();
        assert!(why.contains("group:50:-w-"), "{why}");
        // Malformed: refused, not skipped.
        assert!(acl_writers(&[2, 0, 0, 0, 1], &file, 0, "").is_some());
        assert!(acl_writers(&[9, 0, 0, 0], &file, 0, "").is_some());
        // A sticky directory: as with the mode bits, nobody replaces another's entry.
        let tmp = m(SFlag::S_IFDIR.bits() | 0o1777, 0);
        assert_eq!(acl_writers(&acl(&[(0x02, 7, 1001)]), &tmp, 0, ""), None);
    }

    #[test]
    fn others_who_can_write_are_named() {
        let m = |mode: u32, uid: u32, gid: u32| Meta {
            dev: 0,
            ino: 0,
            mode,
            uid,
            gid,
            nlink: 1,
            size: 0,
        };
        let dir = SFlag::S_IFDIR.bits();
        let file = SFlag::S_IFREG.bits();
        assert!(m(file | 0o644, 0, 0).writable_by_others(0).is_none());
        assert!(m(file | 0o644, 1000, 1000)
            .writable_by_others(1000)
            .is_none());
        assert!(m(file | 0o644, 1000, 1000).writable_by_others(0).is_some());
        assert!(m(file | 0o666, 0, 0).writable_by_others(0).is_some());
        assert!(m(file | 0o664, 0, 50).writable_by_others(0).is_some());
        // /tmp: sticky and world-writable, owned by root.
        assert!(m(dir | 0o1777, 0, 0).writable_by_others(0).is_none());
    }

    #[test]
    fn dot_dot_pops_one_directory_and_never_climbs_above_the_root() {
        let d = scratch("dots");
        std::fs::create_dir_all(d.join("a/b")).unwrap();
        assert_eq!(
            walk(&d.join("a/b/../b"), Links::None, true).unwrap().path,
            d.join("a/b")
        );
        assert_eq!(
            walk(&d.join("a/b/../../a"), Links::None, true)
                .unwrap()
                .path,
            d.join("a")
        );
        let above = Path::new("/../..").join(d.strip_prefix("/").unwrap());
        assert_eq!(walk(&above, Links::None, true).unwrap().path, d);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_chain_of_links_is_followed_up_to_the_kernels_limit() {
        let d = scratch("chain");
        std::fs::create_dir_all(d.join("real")).unwrap();
        std::os::unix::fs::symlink("real", d.join("l1")).unwrap();
        for i in 2..=MAX_LINKS + 1 {
            std::os::unix::fs::symlink(format!("l{}", i - 1), d.join(format!("l{i}"))).unwrap();
        }
        let longest = d.join(format!("l{MAX_LINKS}"));
        assert_eq!(
            walk(&longest, Links::Any, true).unwrap().path,
            d.join("real")
        );
        let over = d.join(format!("l{}", MAX_LINKS + 1));
        assert_eq!(
            walk(&over, Links::Any, true).unwrap_err(),
            WalkError::TooManyLinks { path: over }
        );
        // A link to itself ends as well.
        std::os::unix::fs::symlink("self", d.join("self")).unwrap();
        assert!(matches!(
            walk(&d.join("self"), Links::Any, true),
            Err(WalkError::TooManyLinks { .. })
        ));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn an_absolute_link_restarts_the_walk_at_the_root() {
        let d = scratch("absolute");
        std::fs::create_dir_all(d.join("real/x")).unwrap();
        std::os::unix::fs::symlink(d.join("real"), d.join("abs")).unwrap();
        assert_eq!(
            walk(&d.join("abs/x"), Links::Any, true).unwrap().path,
            d.join("real/x")
        );
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn relative_paths_and_files_on_the_way_are_refused() {
        let rel = Path::new("etc/passwd");
        assert_eq!(
            walk(rel, Links::Any, true).unwrap_err(),
            WalkError::Relative {
                path: rel.to_path_buf()
            }
        );
        let d = scratch("notdir");
        std::fs::write(d.join("f"), "x").unwrap();
        assert_eq!(
            walk(&d.join("f"), Links::None, true).unwrap().kind(),
            Kind::File
        );
        assert_eq!(
            walk(&d.join("f/x"), Links::None, true).unwrap_err(),
            WalkError::NotADirectory { at: d.join("f") }
        );
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_refused_link_says_which_rule_refused_it() {
        let d = scratch("rule");
        std::fs::create_dir_all(d.join("real")).unwrap();
        std::os::unix::fs::symlink("real", d.join("link")).unwrap();
        let err = walk(&d.join("link"), Links::None, true).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("no link inside a bound host directory is followed")
                && text.contains(&format!("({})", d.join("real").display())),
            "{text}"
        );
        assert_eq!(err.errno(), Errno::ELOOP);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_trusted_link_is_roots_own_in_a_directory_only_root_changes() {
        use std::os::unix::fs::{lchown, symlink, PermissionsExt};
        if !nix::unistd::geteuid().is_root() {
            eprintln!("SKIP a_trusted_link_is_roots_own_in_a_directory_only_root_changes: needs root to own and hand over links");
            return;
        }
        let d = scratch("trusted");
        if Meta::of(&nix::sys::stat::stat(&d).unwrap())
            .writable_by_others(0)
            .is_some()
        {
            eprintln!("SKIP a_trusted_link_is_roots_own_in_a_directory_only_root_changes: the temporary directory is not root's own");
            std::fs::remove_dir_all(&d).unwrap();
            return;
        }
        for sub in ["real", "safe", "open"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        std::fs::set_permissions(d.join("open"), std::fs::Permissions::from_mode(0o777)).unwrap();
        symlink("../real", d.join("safe/link")).unwrap();
        symlink("../real", d.join("safe/theirs")).unwrap();
        lchown(d.join("safe/theirs"), Some(1000), None).unwrap();
        symlink("../real", d.join("open/link")).unwrap();
        // The control: root's link in root's 0755 directory.
        assert_eq!(
            walk(&d.join("safe/link"), Links::Trusted, true)
                .unwrap()
                .path,
            d.join("real")
        );
        for (link, owner) in [("safe/theirs", 1000), ("open/link", 0)] {
            let err = walk(&d.join(link), Links::Trusted, true).unwrap_err();
            assert!(
                matches!(&err, WalkError::Link { owner: o, in_content: false, .. } if *o == owner),
                "{link}: {err:?}"
            );
            assert!(
                err.to_string().contains(
                    "follows only links owned by root in directories only root can change"
                ),
                "{err}"
            );
        }
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn the_sticky_bit_shields_only_directories() {
        let m = |mode: u32, gid: u32| Meta {
            dev: 0,
            ino: 0,
            mode,
            uid: 0,
            gid,
            nlink: 1,
            size: 0,
        };
        let dir = SFlag::S_IFDIR.bits();
        let file = SFlag::S_IFREG.bits();
        assert_eq!(
            m(dir | 0o777, 0).writable_by_others(0).as_deref(),
            Some("it is writable by every user")
        );
        assert_eq!(
            m(dir | 0o775, 50).writable_by_others(0).as_deref(),
            Some("it is writable by group 50")
        );
        assert_eq!(m(dir | 0o1775, 50).writable_by_others(0), None);
        assert_eq!(
            m(file | 0o1666, 0).writable_by_others(0).as_deref(),
            Some("it is writable by every user")
        );
        assert_eq!(
            m(file | 0o1664, 50).writable_by_others(0).as_deref(),
            Some("it is writable by group 50")
        );
        // Root's group writing is root writing.
        assert_eq!(m(file | 0o664, 0).writable_by_others(0), None);
        let theirs = Meta {
            uid: 1000,
            ..m(file | 0o644, 0)
        };
        assert_eq!(
            theirs.writable_by_others(0).as_deref(),
            Some("it is owned by uid 1000")
        );
    }

    #[test]
    fn acl_group_owner_entries_and_default_acls_are_checked() {
        let m = |mode: u32, gid: u32| Meta {
            dev: 0,
            ino: 0,
            mode,
            uid: 0,
            gid,
            nlink: 1,
            size: 0,
        };
        let acl = |entries: &[(u16, u16, u32)]| {
            let mut v = 2u32.to_le_bytes().to_vec();
            for (tag, perm, id) in entries {
                v.extend(tag.to_le_bytes());
                v.extend(perm.to_le_bytes());
                v.extend(id.to_le_bytes());
            }
            v
        };
        let file = SFlag::S_IFREG.bits();
        let dir = SFlag::S_IFDIR.bits();
        // A version word and no entries: nobody is granted anything.
        assert_eq!(acl_writers(&acl(&[]), &m(file | 0o644, 0), 0, ""), None);
        // The owning group's entry under a mask that keeps write.
        let group_obj = acl(&[(0x04, 6, u32::MAX), (0x10, 6, u32::MAX)]);
        assert_eq!(
            acl_writers(&group_obj, &m(file | 0o664, 50), 0, "").as_deref(),
            Some("its ACL lets group 50 write (entry group::rw-)")
        );
        assert_eq!(acl_writers(&group_obj, &m(file | 0o664, 0), 0, ""), None);
        // The sticky bit shields a directory's entries, not a file, and not what a default
        // ACL passes on to new entries.
        let user = acl(&[(0x02, 7, 1001)]);
        let why = Some("its ACL lets uid 1001 write (entry user:1001:rwx)");
        assert_eq!(
            acl_writers(&user, &m(dir | 0o755, 0), 0, "").as_deref(),
            why
        );
        assert_eq!(
            acl_writers(&user, &m(file | 0o1644, 0), 0, "").as_deref(),
            why
        );
        assert_eq!(acl_writers(&user, &m(dir | 0o1777, 0), 0, ""), None);
        assert_eq!(
            acl_writers(&user, &m(dir | 0o1777, 0), 0, "default:").as_deref(),
            Some("its default:ACL lets uid 1001 write (entry default:user:1001:rwx)")
        );
    }

    #[test]
    fn walk_errors_carry_their_errno() {
        let at = PathBuf::from("/x");
        assert_eq!(WalkError::Missing { at: at.clone() }.errno(), Errno::ENOENT);
        assert_eq!(
            WalkError::NotADirectory { at: at.clone() }.errno(),
            Errno::ENOTDIR
        );
        assert_eq!(
            WalkError::TooManyLinks { path: at.clone() }.errno(),
            Errno::ELOOP
        );
        assert_eq!(
            WalkError::Relative { path: at.clone() }.errno(),
            Errno::EINVAL
        );
        assert_eq!(
            WalkError::Io {
                at,
                errno: Errno::EACCES
            }
            .errno(),
            Errno::EACCES
        );
    }

    #[test]
    fn kinds_sameness_and_path_helpers() {
        let d = scratch("kinds");
        std::fs::write(d.join("f"), "x").unwrap();
        std::os::unix::fs::symlink("f", d.join("l")).unwrap();
        nix::unistd::mkfifo(&d.join("p"), Mode::from_bits_truncate(0o600)).unwrap();
        let kind = |name: &str| walk(&d.join(name), Links::None, false).unwrap().kind();
        assert_eq!(
            [
                kind("f"),
                kind("l"),
                kind("p"),
                walk(&d, Links::None, true).unwrap().kind()
            ],
            [Kind::File, Kind::Symlink, Kind::Other, Kind::Dir]
        );
        assert_eq!(
            [Kind::Dir, Kind::File, Kind::Symlink, Kind::Other].map(|k| k.to_string()),
            ["directory", "file", "symlink", "special file"]
        );
        let f = walk(&d.join("f"), Links::None, true).unwrap().meta;
        assert!(f.same(&f));
        assert!(!f.same(&Meta {
            ino: f.ino + 1,
            ..f
        }));
        assert!(!f.same(&Meta {
            dev: f.dev + 1,
            ..f
        }));
        assert_eq!(
            cstring(Path::new(OsStr::from_bytes(b"/a\0b"))).as_bytes(),
            b"/a"
        );
        assert_eq!(cstring(Path::new("/a/b")).as_bytes(), b"/a/b");
        assert_eq!(
            split_last(Path::new("/a/b")),
            Some((PathBuf::from("/a"), OsString::from("b")))
        );
        assert_eq!(split_last(Path::new("/")), None);
        assert_eq!(os(b"a\xffb").as_bytes(), b"a\xffb");
        // A directory's entry that is missing is none; one below a file is an error.
        let node = walk(&d, Links::None, true).unwrap();
        assert!(node.child(OsStr::new("missing")).unwrap().is_none());
        let file = walk(&d.join("f"), Links::None, true).unwrap();
        assert_eq!(file.child(OsStr::new("x")).err(), Some(Errno::ENOTDIR));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_walk_scope_continues_from_the_directories_it_checked() {
        let d = scratch("cache");
        std::fs::create_dir_all(d.join("a")).unwrap();
        std::fs::write(d.join("a/old"), "x").unwrap();
        let in_scope = || CACHE.with(|c| c.borrow().is_some());
        assert!(!in_scope());
        let (first, second) = cached(|| {
            let first = walk(&d.join("a"), Links::None, true).unwrap();
            // The directory is replaced under its name: the scope still walks the one it
            // checked.
            std::fs::rename(d.join("a"), d.join("moved")).unwrap();
            std::fs::create_dir_all(d.join("a")).unwrap();
            let second = cached(|| walk(&d.join("a/old"), Links::None, true));
            assert!(in_scope(), "an inner scope leaves the outer one's cache");
            (first, second)
        });
        assert!(!in_scope(), "the scope's cache ends with it");
        assert_eq!(second.unwrap().path, d.join("a/old"));
        // Outside a scope every walk looks again.
        assert_eq!(
            walk(&d.join("a/old"), Links::None, true).unwrap_err(),
            WalkError::Missing {
                at: d.join("a/old")
            }
        );
        assert!(first
            .meta
            .same(&walk(&d.join("moved"), Links::None, true).unwrap().meta));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn the_first_component_others_can_change_is_named() {
        use std::os::unix::fs::PermissionsExt;
        let d = scratch("exposed");
        std::fs::create_dir_all(d.join("open/inner")).unwrap();
        std::fs::write(d.join("open/inner/f"), "x").unwrap();
        std::fs::write(d.join("f"), "x").unwrap();
        std::fs::set_permissions(d.join("open"), std::fs::Permissions::from_mode(0o777)).unwrap();
        let base = walk(&d, Links::None, true).unwrap().exposed.clone();
        if base.is_some() {
            eprintln!("SKIP the_first_component_others_can_change_is_named: the temporary directory is exposed already ({base:?})");
            std::fs::remove_dir_all(&d).unwrap();
            return;
        }
        assert_eq!(walk(&d.join("f"), Links::None, true).unwrap().exposed, None);
        assert_eq!(
            walk(&d.join("open/inner/f"), Links::None, true)
                .unwrap()
                .exposed,
            Some((d.join("open"), "it is writable by every user".to_string()))
        );
        assert_eq!(
            walk(Path::new("/"), Links::None, true).unwrap().exposed,
            None
        );
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn make_dirs_creates_each_missing_directory_by_descriptor() {
        use std::os::unix::fs::PermissionsExt;
        let d = scratch("mkdirs");
        let deep = d.join("a/b/c");
        let made = make_dirs(&deep, Links::None, 0o700).unwrap();
        assert_eq!((made.path.clone(), made.kind()), (deep.clone(), Kind::Dir));
        for p in [d.join("a"), d.join("a/b"), deep.clone()] {
            let mode = std::fs::metadata(&p).unwrap().permissions().mode();
            assert_eq!(mode & 0o7777, 0o700, "{}", p.display());
        }
        // Already there: the same directory.
        assert!(make_dirs(&deep, Links::None, 0o700)
            .unwrap()
            .meta
            .same(&made.meta));
        // A file on the way, or at the end, is not a directory.
        std::fs::write(d.join("f"), "x").unwrap();
        assert_eq!(
            make_dirs(&d.join("f"), Links::None, 0o700).unwrap_err(),
            format!("{} is not a directory", d.join("f").display())
        );
        assert!(make_dirs(&d.join("f/x"), Links::None, 0o700)
            .unwrap_err()
            .contains("is not a directory"));
        // Nothing is created through a link the rule refuses.
        std::fs::create_dir_all(d.join("real")).unwrap();
        std::os::unix::fs::symlink("real", d.join("link")).unwrap();
        assert!(make_dirs(&d.join("link/x"), Links::None, 0o700)
            .unwrap_err()
            .contains("is a symlink"));
        assert!(!d.join("real/x").exists());
        assert_eq!(
            make_dirs(&d.join("link/x"), Links::Any, 0o700)
                .unwrap()
                .path,
            d.join("real/x")
        );
        assert!(make_dirs(Path::new("rel/x"), Links::Any, 0o700)
            .unwrap_err()
            .contains("not an absolute path"));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn read_regular_reads_relative_paths_and_refuses_fifos() {
        let (data, node) = read_regular(Path::new("Cargo.toml"), Links::Any, 1 << 20).unwrap();
        assert_eq!(data, std::fs::read("Cargo.toml").unwrap());
        assert_eq!(
            node.path,
            std::env::current_dir().unwrap().join("Cargo.toml")
        );
        let d = scratch("fifo");
        nix::unistd::mkfifo(&d.join("p"), Mode::from_bits_truncate(0o600)).unwrap();
        assert_eq!(
            read_regular(&d.join("p"), Links::None, 10).unwrap_err(),
            ReadError::NotRegular
        );
        std::fs::write(d.join("f"), "12345").unwrap();
        assert_eq!(
            read_regular(&d.join("f"), Links::None, 4).unwrap_err(),
            ReadError::TooLarge { size: 5 }
        );
        assert_eq!(
            read_regular(&d.join("f"), Links::None, 5).unwrap().0,
            b"12345"
        );
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn read_config_says_why_a_file_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let d = scratch("config");
        std::fs::write(d.join("ok.yaml"), "name: x\n").unwrap();
        assert_eq!(read_config(&d.join("ok.yaml"), 100).unwrap(), "name: x\n");
        assert_eq!(
            read_config(&d.join("nope.yaml"), 100).unwrap_err(),
            "no such file"
        );
        assert_eq!(
            read_config(&d.join("gone/x.yaml"), 100).unwrap_err(),
            format!("{} does not exist", d.join("gone").display())
        );
        assert_eq!(read_config(&d, 100).unwrap_err(), "not a regular file");
        assert_eq!(
            read_config(&d.join("ok.yaml"), 3).unwrap_err(),
            "8 bytes, larger than the 3 byte limit"
        );
        std::fs::write(d.join("bin"), b"\xff\xfe").unwrap();
        assert_eq!(
            read_config(&d.join("bin"), 100).unwrap_err(),
            "not UTF-8 text"
        );
        std::fs::write(d.join("open.yaml"), "name: x\n").unwrap();
        std::fs::set_permissions(d.join("open.yaml"), std::fs::Permissions::from_mode(0o666))
            .unwrap();
        let open = read_config(&d.join("open.yaml"), 100);
        let clean = Meta::of(&nix::sys::stat::stat(&d).unwrap())
            .writable_by_others(0)
            .is_none();
        if nix::unistd::geteuid().is_root() && clean {
            let e = open.unwrap_err();
            assert!(
                e.starts_with(&format!(
                    "refused as root: {} can be changed by another user (it is writable by every user)",
                    d.join("open.yaml").display()
                )),
                "{e}"
            );
        } else if !nix::unistd::geteuid().is_root() {
            // Not root: another user's changes define nothing root runs.
            assert_eq!(open.unwrap(), "name: x\n");
        }
        std::fs::remove_dir_all(&d).unwrap();
    }
}
