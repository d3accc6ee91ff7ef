//! A created sandbox cgroup: placement, usage, kill, teardown, and the sweep of stale ones.
//!
//! Every directory made is recorded in creation order and removed in reverse, on teardown,
//! on a failed creation, and on drop. Nothing here touches a cgroup whose name does not
//! start with `lasagna-`.

use std::fs;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;
use nix::unistd::Pid;

use super::v1::{self, V1Dir};
use super::{human, v2, Backend, CgroupError, Plan};

/// How long teardown waits for killed processes to leave the cgroup.
const DRAIN: Duration = Duration::from_secs(5);

/// Whether the child is already inside the v2 cgroup (clone3 with CLONE_INTO_CGROUP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Cloned with CLONE_INTO_CGROUP and `clone_into_fd()`: nothing to write for v2.
    ClonedInto,
    /// Plain clone: every hierarchy needs a `cgroup.procs` write.
    NotPlaced,
}

/// Resource usage of the sandbox tree, read at the end of the run.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Usage {
    pub memory_peak_bytes: Option<u64>,
    pub pids_peak: Option<u64>,
    pub cpu_time_usec: Option<u64>,
    pub oom_kills: Option<u64>,
    /// Forks refused because pids.max was reached.
    pub fork_refusals: Option<u64>,
}

/// The payload tree hit memory.max and the kernel OOM-killed a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OomKill {
    pub kills: u64,
    pub limit: Option<u64>,
}

impl OomKill {
    /// `killed: memory limit 256 MiB reached`
    pub fn message(&self) -> String {
        match self.limit {
            Some(l) => format!("killed: memory limit {} reached", human(l)),
            None => "killed: memory limit reached".into(),
        }
    }
}

#[derive(Debug)]
enum Dirs {
    V2 {
        dir: PathBuf,
        fd: OwnedFd,
    },
    V1 {
        dirs: Vec<V1Dir>,
        tracker: Option<(PathBuf, OwnedFd)>,
        /// Each hierarchy's `tasks` file, open for writing: the child joins by writing "0"
        /// (itself). Empty when one cannot be opened; the supervisor attaches it then.
        join: Vec<OwnedFd>,
    },
}

/// The sandbox's cgroup(s), alive from step 1 to teardown.
#[derive(Debug)]
pub struct ActiveCgroup {
    name: String,
    dirs: Dirs,
    /// Every directory made, in creation order.
    made: Vec<PathBuf>,
    /// Each directory made, open and `flock`ed for as long as this supervisor lives: the
    /// sweep of a later run knows a cgroup is live by its lock, which holds across pid
    /// namespaces (a pid does not).
    locks: Vec<OwnedFd>,
    notes: Vec<String>,
    memory_max: Option<u64>,
    pids_seen: u64,
    torn_down: bool,
}

impl ActiveCgroup {
    /// Step 1 (supervisor, before the clone): create `lasagna-<pid>-<nonce>` and write every
    /// limit. On any failure every directory made so far is removed.
    pub fn create(plan: &Plan) -> Result<ActiveCgroup, CgroupError> {
        let name = format!("lasagna-{}-{}", std::process::id(), nonce());
        Self::create_named(plan, &name)
    }

    pub(crate) fn create_named(plan: &Plan, name: &str) -> Result<ActiveCgroup, CgroupError> {
        let mut cg = ActiveCgroup {
            name: name.to_string(),
            dirs: Dirs::V1 {
                dirs: Vec::new(),
                tracker: None,
                join: Vec::new(),
            },
            made: Vec::new(),
            locks: Vec::new(),
            notes: Vec::new(),
            memory_max: plan.limits.memory_max,
            pids_seen: 0,
            torn_down: false,
        };
        match cg.build(plan) {
            Ok(()) => Ok(cg),
            Err(e) => {
                // The creation error is the one to report; a directory rmdir could not
                // remove is swept by the next run (its supervisor pid is then gone).
                let _ = cg.remove_made();
                cg.torn_down = true;
                Err(e)
            }
        }
    }

    fn build(&mut self, plan: &Plan) -> Result<(), CgroupError> {
        match &plan.backend {
            Backend::V2 { parent } => {
                let wanted: Vec<&str> = plan
                    .limits
                    .controllers()
                    .iter()
                    .map(|c| c.v2_name())
                    .collect();
                let enabled = v2::enable_controllers(parent, &wanted)?;
                if !enabled.is_empty() {
                    self.notes.push(format!(
                        "enabled {} in {}",
                        enabled
                            .iter()
                            .map(|c| format!("+{c}"))
                            .collect::<Vec<_>>()
                            .join(" "),
                        parent.join("cgroup.subtree_control").display()
                    ));
                }
                let dir = self.mkdir(parent)?;
                v2::write_limits(&dir, &plan.limits)?;
                let fd = open_dir_path(&dir)?;
                self.dirs = Dirs::V2 { dir, fd };
            }
            Backend::V1 {
                parents,
                tracker_parent,
            } => {
                let mut dirs = Vec::new();
                for (controller, parent) in parents {
                    let dir = self.mkdir(parent)?;
                    v1::write_limits(controller, &dir, &plan.limits)?;
                    dirs.push(V1Dir { controller, dir });
                }
                let tracker = match tracker_parent {
                    Some(p) => {
                        let dir = self.mkdir(p)?;
                        let fd = open_dir_path(&dir)?;
                        Some((dir, fd))
                    }
                    None => None,
                };
                // A delegation that chowned only cgroup.procs leaves `tasks` unwritable.
                let join = dirs
                    .iter()
                    .map(|d| {
                        fs::OpenOptions::new()
                            .write(true)
                            .open(d.dir.join("tasks"))
                            .map(OwnedFd::from)
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .unwrap_or_default();
                self.dirs = Dirs::V1 {
                    dirs,
                    tracker,
                    join,
                };
            }
        }
        Ok(())
    }

    fn mkdir(&mut self, parent: &Path) -> Result<PathBuf, CgroupError> {
        let dir = parent.join(&self.name);
        // A sweep holds the parent's lock exclusively: it cannot see this directory
        // between its creation and its own lock.
        let parent_lock = lock_dir(parent, LockKind::Shared, true).ok();
        fs::create_dir(&dir).map_err(|source| CgroupError::Io {
            step: "create",
            what: format!("cannot create cgroup {}", dir.display()),
            source,
        })?;
        self.made.push(dir.clone());
        let lock = lock_dir(&dir, LockKind::Exclusive, false).map_err(|e| CgroupError::Io {
            step: "create",
            what: format!("cannot lock cgroup {}", dir.display()),
            source: e.into(),
        })?;
        self.locks.push(lock);
        drop(parent_lock);
        Ok(dir)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Changes made outside the new cgroup (e.g. controllers enabled in the parent), for
    /// the report.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// Every directory this cgroup consists of.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.made
    }

    /// Step 2: the O_PATH|O_DIRECTORY fd to pass as `clone_args.cgroup` with
    /// CLONE_INTO_CGROUP (v2, or the hybrid tracker). `None` on pure v1.
    pub fn clone_into_fd(&self) -> Option<BorrowedFd<'_>> {
        match &self.dirs {
            Dirs::V2 { fd, .. } => Some(fd.as_fd()),
            Dirs::V1 { tracker, .. } => tracker.as_ref().map(|(_, fd)| fd.as_fd()),
        }
    }

    /// Step 4a (child, first thing): the v1 `tasks` files the child writes "0" into to join
    /// its cgroups itself. Moving oneself, a single thread, is the one migration that does
    /// not take cgroup_threadgroup_rwsem for writing, which waits for an RCU grace period
    /// (about 11 ms here, most of the time). The kernel checks the permission against the
    /// credentials that opened the file (the supervisor's) and the child's own.
    /// The fds stay open until `close_join_fds`, after the child has been released.
    pub fn join_fds(&self) -> Vec<RawFd> {
        match &self.dirs {
            Dirs::V1 { join, .. } => join.iter().map(|f| f.as_raw_fd()).collect(),
            Dirs::V2 { .. } => Vec::new(),
        }
    }

    /// After the attach: the supervisor's copies of the `tasks` files are not needed.
    pub fn close_join_fds(&mut self) {
        if let Dirs::V1 { join, .. } = &mut self.dirs {
            join.clear();
        }
    }

    /// Step 3: move `pid` into every hierarchy the clone did not already place it in, and
    /// into the v1 hierarchies unless it joined them itself (`v1_joined`, through
    /// `join_fds`). A v1 `cgroup.procs` write may wait for an RCU grace period: it overlaps
    /// the child's mount setup.
    pub fn attach(
        &self,
        pid: Pid,
        placement: Placement,
        v1_joined: bool,
    ) -> Result<(), CgroupError> {
        let pid = pid.as_raw();
        match (&self.dirs, placement) {
            (Dirs::V2 { .. }, Placement::ClonedInto) => Ok(()),
            (Dirs::V2 { dir, .. }, Placement::NotPlaced) => v2::attach(dir, pid),
            (Dirs::V1 { dirs, tracker, .. }, placement) => {
                if let (Some((t, _)), Placement::NotPlaced) = (tracker, placement) {
                    v2::attach(t, pid)?;
                }
                if !v1_joined {
                    for d in dirs {
                        v2::write_file(&d.dir, "cgroup.procs", &pid.to_string(), "attach")?;
                    }
                }
                Ok(())
            }
        }
    }

    /// Call from the wait loop: v1 (and v2 before 6.1) keeps no pids peak, so it is sampled.
    pub fn sample(&mut self) {
        if let Some(n) = self.pids_current() {
            self.pids_seen = self.pids_seen.max(n);
        }
    }

    fn pids_current(&self) -> Option<u64> {
        match &self.dirs {
            Dirs::V2 { dir, .. } => v2::pids_current(dir),
            Dirs::V1 { dirs, .. } => dirs
                .iter()
                .find(|d| d.controller == "pids")
                .and_then(|d| v1::pids_current(&d.dir)),
        }
    }

    fn v1_dir(&self, controller: &str) -> Option<&Path> {
        match &self.dirs {
            Dirs::V1 { dirs, .. } => dirs
                .iter()
                .find(|d| d.controller == controller)
                .map(|d| d.dir.as_path()),
            Dirs::V2 { .. } => None,
        }
    }

    /// The v2 directory: the cgroup itself, or the hybrid tracker.
    fn v2_dir(&self) -> Option<&Path> {
        match &self.dirs {
            Dirs::V2 { dir, .. } => Some(dir),
            Dirs::V1 { tracker, .. } => tracker.as_ref().map(|(d, _)| d.as_path()),
        }
    }

    /// Usage of the whole tree so far.
    pub fn observe(&mut self) -> Usage {
        self.sample();
        let sampled = (self.pids_seen > 0).then_some(self.pids_seen);
        match &self.dirs {
            Dirs::V2 { dir, .. } => Usage {
                memory_peak_bytes: v2::memory_peak(dir),
                pids_peak: v2::pids_peak(dir).or(sampled),
                cpu_time_usec: v2::cpu_usage_usec(dir),
                oom_kills: v2::oom_kills(dir),
                fork_refusals: v2::fork_refusals(dir),
            },
            Dirs::V1 { .. } => {
                let (peak, ooms) = self
                    .v1_dir("memory")
                    .map(v1::memory_usage)
                    .unwrap_or((None, None));
                let cpu = self.v2_dir().and_then(v2::cpu_usage_usec).or_else(|| {
                    self.v1_dir("cpuacct")
                        .and_then(v1::cpu_usage_ns)
                        .map(|n| n / 1000)
                });
                Usage {
                    memory_peak_bytes: peak,
                    pids_peak: sampled,
                    cpu_time_usec: cpu,
                    oom_kills: ooms,
                    fork_refusals: self
                        .v1_dir("pids")
                        .and_then(|d| v2::keyed(d, "pids.events", "max")),
                }
            }
        }
    }

    /// Whether the kernel OOM-killed a process of the tree at memory.max.
    pub fn oom_killed(&self) -> Option<OomKill> {
        let kills = match &self.dirs {
            Dirs::V2 { dir, .. } => v2::oom_kills(dir),
            Dirs::V1 { .. } => self.v1_dir("memory").and_then(v1::oom_kills),
        }?;
        (kills > 0).then_some(OomKill {
            kills,
            limit: self.memory_max,
        })
    }

    /// Whether any process is left in the cgroup.
    pub fn is_empty(&self) -> bool {
        if let Some(d) = self.v2_dir() {
            return !v2::populated(d);
        }
        match &self.dirs {
            Dirs::V1 { dirs, .. } => dirs.iter().all(|d| read_procs(&d.dir).is_empty()),
            Dirs::V2 { .. } => true,
        }
    }

    /// SIGKILL every process in the cgroup, including ones that double-forked away from the
    /// payload (they stay in the cgroup). v2: `cgroup.kill`; v1: freezer, else a kill loop.
    pub fn kill_all(&self) -> Result<(), CgroupError> {
        if let Some(d) = self.v2_dir() {
            if v2::kill(d)? {
                return Ok(());
            }
            // Before 5.14: no cgroup.kill; kill what cgroup.procs lists until it stays empty.
            return v1::kill_all(
                &[V1Dir {
                    controller: "v2",
                    dir: d.to_path_buf(),
                }],
                DRAIN,
            );
        }
        match &self.dirs {
            Dirs::V1 { dirs, .. } if !dirs.is_empty() => v1::kill_all(dirs, DRAIN),
            _ => Ok(()),
        }
    }

    /// Kill, wait until empty, remove every directory made.
    pub fn teardown(mut self) -> Result<(), CgroupError> {
        self.teardown_inner()
    }

    fn teardown_inner(&mut self) -> Result<(), CgroupError> {
        if self.torn_down {
            return Ok(());
        }
        self.torn_down = true;
        let killed = self.kill_all();
        let until = Instant::now() + DRAIN;
        let mut pause = Duration::from_micros(50);
        while !self.is_empty() && Instant::now() < until {
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(2));
        }
        let removed = self.remove_made();
        killed.and(removed)
    }

    /// rmdir in reverse creation order, each directory's own sub-cgroups (which a payload
    /// may have made) first; EBUSY right after the last exit is retried briefly.
    fn remove_made(&mut self) -> Result<(), CgroupError> {
        let mut first_err = None;
        while let Some(dir) = self.made.pop() {
            if let Err(e) = remove_tree(&dir) {
                first_err.get_or_insert(e);
            }
        }
        self.locks.clear();
        first_err.map_or(Ok(()), Err)
    }
}

impl Drop for ActiveCgroup {
    /// A supervisor error path must not leave a cgroup (or its processes) behind.
    fn drop(&mut self) {
        let _ = self.teardown_inner();
    }
}

/// Remove `dir` and every cgroup below it, deepest first.
fn remove_tree(dir: &Path) -> Result<(), CgroupError> {
    for child in child_cgroups(dir) {
        remove_tree(&child)?;
    }
    rmdir_retry(dir)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum LockKind {
    Shared,
    Exclusive,
}

/// Open `dir` and take an advisory lock on it; `wait`: block until it is granted.
fn lock_dir(dir: &Path, kind: LockKind, wait: bool) -> Result<OwnedFd, Errno> {
    let fd = open(
        dir,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let mut op = match kind {
        LockKind::Shared => libc::LOCK_SH,
        LockKind::Exclusive => libc::LOCK_EX,
    };
    if !wait {
        op |= libc::LOCK_NB;
    }
    crate::sys::flock(fd.as_fd(), op)?;
    Ok(fd)
}

fn rmdir_retry(dir: &Path) -> Result<(), CgroupError> {
    let until = Instant::now() + Duration::from_secs(2);
    loop {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < until => {
                std::thread::sleep(Duration::from_micros(200));
            }
            Err(source) => {
                return Err(CgroupError::Io {
                    step: "teardown",
                    what: format!("cannot remove cgroup {}", dir.display()),
                    source,
                })
            }
        }
    }
}

fn open_dir_path(dir: &Path) -> Result<OwnedFd, CgroupError> {
    open(
        dir,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| CgroupError::Io {
        step: "create",
        what: format!("cannot open {} for CLONE_INTO_CGROUP", dir.display()),
        source: e.into(),
    })
}

/// 32 random bits as hex, so two runs with a recycled pid never share a name.
fn nonce() -> String {
    crate::procfs::random_hex(4)
}

/// The supervisor pid in a `lasagna-<pid>-<nonce>` name.
pub(crate) fn owner_pid(name: &str) -> Option<i32> {
    let rest = name.strip_prefix("lasagna-")?;
    let (pid, nonce) = rest.split_once('-')?;
    if nonce.is_empty() {
        return None;
    }
    pid.parse().ok().filter(|p| *p > 0)
}

/// At start: remove `lasagna-*` cgroups under `parents` that no live supervisor holds,
/// killing what is left inside first. A live supervisor holds an exclusive lock on each of
/// its directories; the pid in the name is not used (it means nothing in another pid
/// namespace). Returns the directories removed.
pub fn sweep_stale(parents: &[PathBuf]) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    for parent in parents {
        let Ok(entries) = fs::read_dir(parent) else {
            continue;
        };
        let stale: Vec<PathBuf> = entries
            .flatten()
            .filter(|e| owner_pid(&e.file_name().to_string_lossy()).is_some())
            .map(|e| e.path())
            .collect();
        if stale.is_empty() {
            continue;
        }
        // No new cgroup appears between its mkdir and its lock while this is held.
        let Ok(_parent) = lock_dir(parent, LockKind::Exclusive, true) else {
            continue;
        };
        for dir in stale {
            match lock_dir(&dir, LockKind::Exclusive, false) {
                // Nobody holds it: its supervisor is gone.
                Ok(_lock) => {
                    if sweep_one(&dir).is_ok() {
                        removed.push(dir);
                    }
                }
                // EWOULDBLOCK: alive; ENOENT: removed meanwhile.
                Err(_) => continue,
            }
        }
    }
    removed
}

fn sweep_one(dir: &Path) -> Result<(), CgroupError> {
    // Children first (a v2 cgroup may have been given sub-cgroups by its payload).
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.path().is_dir() {
            sweep_one(&e.path())?;
        }
    }
    if !v2::kill(dir)? {
        v1::kill_all(
            &[V1Dir {
                controller: "stale",
                dir: dir.to_path_buf(),
            }],
            DRAIN,
        )?;
    }
    let until = Instant::now() + DRAIN;
    while !read_procs(dir).is_empty() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(1));
    }
    rmdir_retry(dir)
}

/// The parent directories `sweep_stale` should look in for this host: our own cgroup (or
/// the configured parent) in every mounted hierarchy.
pub fn sweep_parents(
    host: &super::CgroupHost,
    parent: Option<&crate::types::SandboxPath>,
) -> Vec<PathBuf> {
    let rel = |own: &str| {
        parent
            .map(|p| p.relative().to_string())
            .unwrap_or_else(|| own.to_string())
    };
    let mut out: Vec<PathBuf> = host.v1.iter().map(|m| m.dir(&rel(&m.own))).collect();
    if let Some(v2m) = &host.v2 {
        out.push(v2m.dir(&rel(&v2m.own)));
    }
    out
}

/// Pids listed in `dir/cgroup.procs` and in every cgroup below it (a payload that may write
/// its cgroupfs can make sub-cgroups); empty when unreadable.
pub(crate) fn read_procs(dir: &Path) -> Vec<i32> {
    let mut out: Vec<i32> = fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    for child in child_cgroups(dir) {
        out.extend(read_procs(&child));
    }
    out
}

/// The cgroups directly below `dir`.
pub(crate) fn child_cgroups(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect()
}
