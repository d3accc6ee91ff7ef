//! The cgroups layer on the real kernel, through the binary: pids, memory and CPU limits
//! hold, every process of the sandbox ends with the run (timeout, Ctrl-C, double forks
//! outside the pid namespace), no cgroup is left behind, and an unprivileged user without a
//! delegated cgroup is refused (required) or falls back to rlimits (best-effort).
//!
//! As the unprivileged user the tests run under a parent cgroup delegated here (created as
//! root, chowned to the test user, removed at the end); the launcher is started inside a
//! delegated v2 leaf, as a delegating service manager would, because the kernel only lets
//! a process move (or clone) between v2 cgroups under a common ancestor it can write.
//! Every test holds one lock: the CPU figures and the leak count need the machine alone.

mod common;
use common::*;

use std::collections::BTreeSet;
use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

const MIB: u64 = 1 << 20;

/// The v1 controllers the layer writes: memory, pids, cpu for the limits; freezer (kill)
/// and cpuacct (CPU time) when no v2 tracker cgroup can be made.
const V1_USED: [&str; 5] = ["memory", "pids", "cpu", "cpuacct", "freezer"];

fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

// ---------------------------------------------------------------------------------------
// The host's hierarchies
// ---------------------------------------------------------------------------------------

/// One mounted cgroup hierarchy.
#[derive(Debug, Clone)]
struct Hierarchy {
    /// Its v1 controllers; empty for the v2 (unified) hierarchy.
    controllers: Vec<String>,
    mount: PathBuf,
}

impl Hierarchy {
    fn is_v2(&self) -> bool {
        self.controllers.is_empty()
    }

    fn has(&self, c: &str) -> bool {
        self.controllers.iter().any(|x| x == c)
    }

    /// The cgroup of `pid` in this hierarchy, as a directory.
    fn dir_of(&self, pid: u32) -> PathBuf {
        let table = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        let rel = table
            .lines()
            .find_map(|l| {
                let mut it = l.splitn(3, ':');
                let (_, ctrls, path) = (it.next()?, it.next()?, it.next()?);
                let hit = if self.is_v2() {
                    ctrls.is_empty()
                } else {
                    ctrls.split(',').any(|c| self.has(c))
                };
                hit.then(|| path.to_string())
            })
            .unwrap_or_default();
        self.mount.join(rel.trim_start_matches('/'))
    }
}

/// Every cgroup hierarchy mounted on the host (named v1 hierarchies without a controller,
/// such as name=systemd, are left out: the layer never writes there).
fn hierarchies() -> Vec<Hierarchy> {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut out: Vec<Hierarchy> = Vec::new();
    for line in info.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let pre: Vec<&str> = pre.split(' ').collect();
        let post: Vec<&str> = post.split(' ').collect();
        if pre.len() < 5 || post.len() < 3 {
            continue;
        }
        let mount = PathBuf::from(pre[4]);
        let controllers: Vec<String> = match post[0] {
            "cgroup2" => Vec::new(),
            "cgroup" => post[2]
                .split(',')
                .filter(|o| !o.contains('=') && !["rw", "ro", "relatime"].contains(o))
                .map(str::to_string)
                .collect(),
            _ => continue,
        };
        if post[0] == "cgroup" && controllers.is_empty() {
            continue;
        }
        if !out.iter().any(|h| h.mount == mount) {
            out.push(Hierarchy { controllers, mount });
        }
    }
    out
}

fn v2() -> Option<Hierarchy> {
    hierarchies().into_iter().find(Hierarchy::is_v2)
}

fn v1(controller: &str) -> Option<Hierarchy> {
    hierarchies().into_iter().find(|h| h.has(controller))
}

/// Whether the host can give memory, pids and cpu limits; `None` when it can, else why not.
fn missing_controllers() -> Option<String> {
    let v2_ctrls = v2()
        .map(|h| fs::read_to_string(h.mount.join("cgroup.subtree_control")).unwrap_or_default())
        .unwrap_or_default();
    let missing: Vec<&str> = ["memory", "pids", "cpu"]
        .into_iter()
        .filter(|c| v1(c).is_none() && !v2_ctrls.split_whitespace().any(|w| w == *c))
        .collect();
    (!missing.is_empty()).then(|| {
        format!(
            "cgroup controller(s) {} are neither mounted (v1) nor enabled at the v2 root",
            missing.join(", ")
        )
    })
}

// ---------------------------------------------------------------------------------------
// A delegated parent cgroup
// ---------------------------------------------------------------------------------------

/// `lasagna-test-deleg-<pid>-<n>` in each hierarchy the layer writes, owned by `owner`;
/// with `tracker`, also in the v2 hierarchy with a `launcher` leaf to start lasagna in.
/// Drop kills whatever is left inside and removes the whole tree (ours only).
struct Deleg {
    name: String,
    dirs: Vec<PathBuf>,
    launcher: Option<PathBuf>,
}

impl Deleg {
    fn new(owner: Option<(u32, u32)>, tracker: bool) -> Deleg {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "lasagna-test-deleg-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        let mut deleg = Deleg {
            name,
            dirs: Vec::new(),
            launcher: None,
        };
        let mut mounts: Vec<PathBuf> = Vec::new();
        for c in V1_USED {
            if let Some(h) = v1(c) {
                if !mounts.contains(&h.mount) {
                    mounts.push(h.mount);
                }
            }
        }
        let v2 = v2().filter(|_| tracker);
        if let Some(h) = &v2 {
            mounts.push(h.mount.clone());
        }
        for m in mounts {
            let dir = m.join(&deleg.name);
            fs::create_dir(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
            deleg.dirs.push(dir);
        }
        if let Some(h) = &v2 {
            let leaf = h.mount.join(&deleg.name).join("launcher");
            fs::create_dir(&leaf).unwrap_or_else(|e| panic!("mkdir {}: {e}", leaf.display()));
            deleg.launcher = Some(leaf);
        }
        if let Some((uid, gid)) = owner {
            for d in &deleg.dirs {
                let ok = Command::new("chown")
                    .arg("-R")
                    .arg(format!("{uid}:{gid}"))
                    .arg(d)
                    .status()
                    .is_ok_and(|s| s.success());
                assert!(ok, "chown -R {uid}:{gid} {}", d.display());
            }
        }
        deleg
    }

    /// `parent:` in a profile: the path from each hierarchy's root.
    fn parent(&self) -> String {
        format!("/{}", self.name)
    }

    fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }
}

impl Drop for Deleg {
    fn drop(&mut self) {
        for d in self.dirs.iter().rev() {
            remove_tree(d);
        }
    }
}

/// SIGKILL every process in the cgroup tree at `dir` and remove it, children first.
fn remove_tree(dir: &Path) {
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.path().is_dir() {
            remove_tree(&e.path());
        }
    }
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let procs = fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        let pids: Vec<i32> = procs.lines().filter_map(|l| l.parse().ok()).collect();
        if pids.is_empty() || Instant::now() > until {
            break;
        }
        for p in pids {
            let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let until = Instant::now() + Duration::from_secs(2);
    while let Err(e) = fs::remove_dir(dir) {
        if e.kind() == std::io::ErrorKind::NotFound || Instant::now() > until {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

// ---------------------------------------------------------------------------------------
// One identity's view: who runs lasagna, under which parent
// ---------------------------------------------------------------------------------------

struct Ctx {
    who: As,
    deleg: Option<Deleg>,
    scratch: Scratch,
}

impl Ctx {
    /// Root runs under its own cgroups; the test user under a parent delegated to it
    /// (`tracker`: with a v2 tracker cgroup, else v1 alone, killed through the freezer).
    fn new(test: &str, who: As, tracker: bool) -> Option<Ctx> {
        if let Some(why) = missing_controllers() {
            skip(test, &why);
            return None;
        }
        let root = nix::unistd::geteuid().is_root();
        let deleg = match who {
            As::Root => None,
            As::User if !root => {
                skip(test, "needs root to delegate a cgroup to the test user");
                return None;
            }
            As::User => Some(Deleg::new(Some(test_user().expect("test user")), tracker)),
        };
        // Profiles stay root's (as root, lasagna refuses a profile others could change);
        // reports go in a directory the test user can write.
        let scratch = Scratch::new("cg");
        let reports = scratch.path().join("reports");
        fs::create_dir(&reports).unwrap();
        fs::set_permissions(&reports, fs::Permissions::from_mode(0o777)).unwrap();
        Some(Ctx {
            who,
            deleg,
            scratch,
        })
    }

    /// The test user with no delegated parent: its own cgroups belong to root.
    fn undelegated(tag: &str) -> Ctx {
        Ctx {
            who: As::User,
            deleg: None,
            scratch: Scratch::new(tag),
        }
    }

    /// Root under a parent of its own that exists in v1 only: no v2 tracker, so the layer
    /// falls back to the freezer to kill and cpuacct to count.
    fn v1_only(test: &str, who: As) -> Option<Ctx> {
        if !need(test, Feature::CgroupV1) {
            return None;
        }
        let mut ctx = Ctx::new(test, who, false)?;
        if v1("freezer").is_none() || v1("memory").is_none() {
            skip(
                test,
                "no v1 freezer and memory hierarchies (not a v1/hybrid host)",
            );
            return None;
        }
        if ctx.deleg.is_none() {
            ctx.deleg = Some(Deleg::new(None, false));
        }
        Some(ctx)
    }

    /// A profile extending strict with `cgroups` lines (indented 4) under the right parent.
    fn profile(&self, mode: &str, limits: &str) -> String {
        let parent = self
            .deleg
            .as_ref()
            .map(|d| format!("    parent: {}\n", d.parent()))
            .unwrap_or_default();
        let text =
            format!("extends: strict\nlayers:\n  cgroups:\n    mode: {mode}\n{limits}{parent}");
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!("p{}.yaml", N.fetch_add(1, Ordering::SeqCst));
        self.scratch.write(&name, &text)
    }

    /// A report path the test user can write.
    fn report_path(&self, tag: &str) -> String {
        self.scratch
            .path()
            .join("reports")
            .join(format!("{tag}.json"))
            .to_string_lossy()
            .into_owned()
    }

    /// `lasagna ARGS` as this identity; the test user's lasagna starts in the delegated v2
    /// leaf (the shell moves itself there as root, then execs setpriv, which execs lasagna:
    /// the child's pid is lasagna's).
    fn command(&self, args: &[&str]) -> Command {
        let cmd = command(self.who, args);
        let Some(leaf) = self.deleg.as_ref().and_then(|d| d.launcher.as_ref()) else {
            return cmd;
        };
        let mut shell = Command::new("/bin/sh");
        shell
            .arg("-c")
            .arg(format!(
                "echo $$ > {}/cgroup.procs && exec \"$0\" \"$@\"",
                leaf.display()
            ))
            .arg(cmd.get_program())
            .args(cmd.get_args())
            .current_dir("/")
            .stdin(Stdio::null());
        shell
    }

    fn run(&self, args: &[&str]) -> Output {
        let child = self
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("lasagna starts");
        output_within(child, Duration::from_secs(60))
    }

    /// Where the layer creates `lasagna-*` cgroups: the delegated parent, or (root) the
    /// cgroup of this test process in every hierarchy.
    fn parent_dirs(&self) -> Vec<PathBuf> {
        match &self.deleg {
            Some(d) => d.dirs().to_vec(),
            None => hierarchies()
                .iter()
                .map(|h| h.dir_of(std::process::id()))
                .collect(),
        }
    }

    /// The sandbox cgroup of the supervisor `pid` in the hierarchy holding `controller`
    /// (v2 when no v1 hierarchy has it), waiting up to 2 s for it to appear.
    fn sandbox_dir(&self, controller: &str, pid: u32) -> PathBuf {
        let h = v1(controller).or_else(v2).expect("a hierarchy");
        let parent = self
            .parent_dirs()
            .into_iter()
            .find(|d| d.starts_with(&h.mount))
            .expect("a parent in that hierarchy");
        let prefix = format!("lasagna-{pid}-");
        let until = Instant::now() + Duration::from_secs(2);
        loop {
            let hit = fs::read_dir(&parent)
                .into_iter()
                .flatten()
                .flatten()
                .find(|e| e.file_name().to_string_lossy().starts_with(&prefix));
            if let Some(e) = hit {
                return e.path();
            }
            assert!(
                Instant::now() < until,
                "no {prefix}* cgroup appeared under {}",
                parent.display()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// `lasagna-*` cgroups under the parents; as root (shared parents) only those named
    /// after one of `supervisors`.
    fn leftovers(&self, supervisors: &BTreeSet<u32>) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for parent in self.parent_dirs() {
            for e in fs::read_dir(&parent).into_iter().flatten().flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let Some(rest) = name.strip_prefix("lasagna-") else {
                    continue;
                };
                let ours = self.deleg.is_some()
                    || rest
                        .split('-')
                        .next()
                        .and_then(|p| p.parse::<u32>().ok())
                        .is_some_and(|p| supervisors.contains(&p));
                if ours && e.path().is_dir() {
                    out.push(e.path());
                }
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------

/// Wait for `child` at most `limit`; past it, SIGKILL and fail.
fn wait_within(child: &mut Child, limit: Duration) -> ExitStatus {
    let until = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            panic!("lasagna still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Collect the output of `child` (stdout/stderr piped), failing past `limit`.
fn output_within(child: Child, limit: Duration) -> Output {
    let pid = child.id();
    let watchdog = std::thread::spawn(move || {
        let until = Instant::now() + limit;
        while Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
            if kill(Pid::from_raw(pid as i32), None).is_err() {
                return false;
            }
        }
        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
        true
    });
    let out = child.wait_with_output().unwrap();
    // The watchdog only ends by itself once the pid is reaped or the limit passed.
    let fired = watchdog.join().unwrap();
    assert!(!fired, "lasagna still running after {limit:?}");
    out
}

fn report(path: &str) -> Value {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("report {path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn usage(r: &Value, key: &str) -> u64 {
    r["usage"][key]
        .as_u64()
        .unwrap_or_else(|| panic!("report usage has no {key}: {r:#}"))
}

fn cgroups_layer(r: &Value) -> &Value {
    r["layers"]
        .as_array()
        .and_then(|ls| ls.iter().find(|l| l["layer"] == "cgroups"))
        .unwrap_or_else(|| panic!("no cgroups layer in the report: {r:#}"))
}

/// Kills processes carrying the marker when dropped (a failed test leaves nothing behind).
struct Marker(String);

impl Marker {
    fn new(tag: &str) -> Marker {
        static N: AtomicU32 = AtomicU32::new(0);
        Marker(format!(
            "lasagna-{tag}-marker-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ))
    }

    fn alive(&self) -> Vec<i32> {
        processes_with(&self.0)
    }

    fn wait_alive(&self) -> Vec<i32> {
        let until = Instant::now() + Duration::from_secs(5);
        loop {
            let pids = self.alive();
            if !pids.is_empty() || Instant::now() > until {
                return pids;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Marker {
    fn drop(&mut self) {
        for p in self.alive() {
            let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
        }
    }
}

/// A payload that double-forks `sleep 300` into a new session, with the marker only in
/// that sleep's argv (the script builds it from two halves) and its stdio on /dev/null
/// (so a survivor holds no pipe of the test), then sleeps itself.
fn double_fork_payload(marker: &Marker) -> String {
    let (a, b) = marker.0.split_at(8);
    format!(
        "import os, time\n\
         if os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n        \
         null = os.open('/dev/null', os.O_RDWR)\n        \
         for fd in (0, 1, 2):\n            os.dup2(null, fd)\n        \
         os.execvp('sleep', ['{a}' + '{b}', '300'])\n    os._exit(0)\n\
         os.wait()\nprint('escaped', flush=True)\ntime.sleep(300)\n"
    )
}

/// Read lines from lasagna's stdout until one starts with `prefix`.
fn read_until(out: &mut impl BufRead, prefix: &str) -> String {
    let mut line = String::new();
    loop {
        line.clear();
        let n = out.read_line(&mut line).unwrap();
        assert!(n > 0, "stdout ended before a line starting with {prefix:?}");
        if line.starts_with(prefix) {
            return line.trim_end().to_string();
        }
    }
}

/// The host can still start a process, as root and as `who`.
fn host_spawns(who: As) {
    let t = Instant::now();
    let ok = Command::new("true").status().is_ok_and(|s| s.success());
    assert!(ok, "a host `true` must spawn");
    if who == As::User {
        let (uid, gid) = test_user().unwrap();
        let ok = Command::new("setpriv")
            .args([
                &format!("--reuid={uid}"),
                &format!("--regid={gid}"),
                "--clear-groups",
                "--",
                "true",
            ])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "the test user can still start a process on the host");
    }
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "spawning on the host took {:?}",
        t.elapsed()
    );
}

// ---------------------------------------------------------------------------------------
// Limits
// ---------------------------------------------------------------------------------------

const FORK_BOMB: &str = "import os, time, errno\n\
kids = 0\n\
try:\n    while kids < 1000:\n        if os.fork() == 0:\n            time.sleep(60)\n            os._exit(0)\n        kids += 1\n    print('unlimited', kids, flush=True)\n\
except OSError as e:\n    print('fork', errno.errorcode.get(e.errno, e.errno), kids, flush=True)\n\
time.sleep(0.5)\n";

/// Run the fork bomb under `pids max`; returns (forks that succeeded, report).
fn fork_bomb(ctx: &Ctx, max: u64) -> (u64, Value) {
    let profile = ctx.profile("required", &format!("    pids:\n      max: {max}\n"));
    let rep = ctx.report_path(&format!("bomb{max}"));
    let mut child = ctx
        .command(&[
            "run",
            "-p",
            &profile,
            "--report",
            &rep,
            "--timeout",
            "30s",
            "--",
            "python3",
            "-c",
            FORK_BOMB,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let line = read_until(&mut out, "");
    // The bomb is at its limit (its children sleep): the kernel holds it, the host works.
    let dir = ctx.sandbox_dir("pids", child.id());
    let kernel_max = fs::read_to_string(dir.join("pids.max")).unwrap();
    let current: u64 = fs::read_to_string(dir.join("pids.current"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    host_spawns(ctx.who);
    let status = wait_within(&mut child, Duration::from_secs(20));
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(0), "{line}\n{err}");
    assert_eq!(kernel_max.trim(), max.to_string(), "pids.max in {dir:?}");
    assert!(current <= max, "pids.current {current} > pids.max {max}");
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        &words[..2],
        ["fork", "EAGAIN"],
        "fork must fail with EAGAIN: {line}"
    );
    (words[2].parse().unwrap(), report(&rep))
}

both!(fork_bomb_stops_at_pids_max, |who| {
    let _serial = serial();
    let Some(ctx) = Ctx::new("fork_bomb_stops_at_pids_max", who, true) else {
        return;
    };
    let (kids, r) = fork_bomb(&ctx, 32);
    // init and the payload count too.
    assert!((24..=30).contains(&kids), "{kids} forks under pids.max 32");
    let peak = usage(&r, "pids_peak");
    assert!(peak <= 32 && peak > kids, "pids peak {peak} (forks {kids})");
    assert!(usage(&r, "fork_refusals") >= 1, "{r:#}");
    // The verdict: the process limit was met, and did not end the run itself.
    assert_eq!(r["limit"]["kind"], "pids", "{r:#}");
    assert_eq!(r["limit"]["max"], 32);
    assert_eq!(r["limit"]["refused"], r["usage"]["fork_refusals"]);
    assert_eq!(r["limit"]["ended_run"], false);
    // Control: the number of forks follows the limit.
    let (more, _) = fork_bomb(&ctx, 48);
    assert_eq!(more, kids + 16, "pids.max 48 allows 16 more forks than 32");
});

const HOG: &str = "s = b'x' * (256 << 20)\nprint('allocated', len(s) >> 20, flush=True)\n";

both!(memory_hog_is_oom_killed_at_the_limit, |who| {
    let _serial = serial();
    let Some(ctx) = Ctx::new("memory_hog_is_oom_killed_at_the_limit", who, true) else {
        return;
    };
    let profile = ctx.profile("required", "    memory:\n      max: 64M\n");
    let rep = ctx.report_path("oom");
    let o = ctx.run(&[
        "run", "-p", &profile, "--report", &rep, "--", "python3", "-c", HOG,
    ]);
    assert_code(&o, 137);
    assert!(
        stderr(&o).contains("killed: memory limit 64 MiB reached"),
        "{}",
        stderr(&o)
    );
    assert_eq!(stdout(&o), "");
    let r = report(&rep);
    assert!(usage(&r, "oom_kills") >= 1, "{r:#}");
    let peak = usage(&r, "memory_peak_bytes");
    assert!(
        (32 * MIB..=64 * MIB).contains(&peak),
        "peak {peak} at a 64 MiB limit"
    );
    assert_eq!(r["oom"], "killed: memory limit 64 MiB reached");
    assert_eq!(r["limit"]["kind"], "memory", "{r:#}");
    assert_eq!(r["limit"]["max_bytes"], 64 * MIB);
    assert_eq!(r["limit"]["layer"], "cgroups");
    assert_eq!(r["limit"]["ended_run"], true);

    // Control: with room, the same payload allocates and the peak shows it.
    let profile = ctx.profile("required", "    memory:\n      max: 512M\n");
    let rep = ctx.report_path("no-oom");
    let o = ctx.run(&[
        "run", "-p", &profile, "--report", &rep, "--", "python3", "-c", HOG,
    ]);
    assert_code(&o, 0);
    assert_eq!(stdout(&o), "allocated 256\n");
    assert!(!stderr(&o).contains("killed"), "{}", stderr(&o));
    let r = report(&rep);
    assert_eq!(usage(&r, "oom_kills"), 0);
    assert!(r.get("limit").is_none(), "{r:#}");
    let peak = usage(&r, "memory_peak_bytes");
    assert!(
        (256 * MIB..512 * MIB).contains(&peak),
        "peak {peak} after allocating 256 MiB"
    );
    assert!(r.get("oom").is_none(), "{r:#}");
});

/// Two processes burn CPU for 1.5 s of wall time; each prints its own CPU seconds.
const BURN: &str = "import os, time\n\
end = time.monotonic() + 1.5\n\
pid = os.fork()\n\
while time.monotonic() < end:\n    pass\n\
print('cpu', time.process_time(), flush=True)\n\
if pid == 0:\n    os._exit(0)\n\
os.waitpid(pid, 0)\n";

/// What one BURN run gave: the CPU seconds the report counts, its wall seconds, and the
/// sandbox cgroup's last `cpu.stat` read during the run (when a quota was asked for).
struct Burned {
    cpu: f64,
    wall: f64,
    cpu_stat: String,
}

/// Run BURN with `limits`. With `quota_file`, the kernel's quota for the sandbox is checked
/// against it and the cgroup's `cpu.stat` is read until the run ends.
fn burn(ctx: &Ctx, limits: &str, tag: &str, quota_file: Option<&str>) -> Burned {
    let profile = ctx.profile("required", limits);
    let rep = ctx.report_path(tag);
    let mut child = ctx
        .command(&[
            "run", "-p", &profile, "--report", &rep, "--", "python3", "-c", BURN,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut cpu_stat = String::new();
    if let Some(want) = quota_file {
        let dir = ctx.sandbox_dir("cpu", pid);
        let file = if v1("cpu").is_some() {
            "cpu.cfs_quota_us"
        } else {
            "cpu.max"
        };
        // The directory appears before the supervisor writes its limits into it.
        let until = Instant::now() + Duration::from_secs(5);
        let mut got = fs::read_to_string(dir.join(file)).unwrap();
        while !got.starts_with(want) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
            got = fs::read_to_string(dir.join(file)).unwrap_or_default();
        }
        assert!(got.starts_with(want), "kernel quota {got:?}, want {want}");
        // The counters live as long as the cgroup: keep the last read before it goes.
        let until = Instant::now() + Duration::from_secs(30);
        while child.try_wait().unwrap().is_none() && Instant::now() < until {
            if let Ok(text) = fs::read_to_string(dir.join("cpu.stat")) {
                cpu_stat = text;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let o = output_within(child, Duration::from_secs(30));
    assert_code(&o, 0);
    let own: f64 = stdout(&o)
        .lines()
        .filter_map(|l| l.strip_prefix("cpu ")?.parse::<f64>().ok())
        .sum();
    assert_eq!(stdout(&o).lines().count(), 2, "{}", stdout(&o));
    let r = report(&rep);
    let cpu = usage(&r, "cpu_time_usec") as f64 / 1e6;
    let wall = r["wall_ms"].as_f64().unwrap() / 1e3;
    // The report counts the whole tree: at least what the two burners measured themselves.
    assert!(
        cpu + 0.01 >= own && cpu <= own + 0.3,
        "report cpu {cpu:.3} s vs the payload's own {own:.3} s"
    );
    Burned {
        cpu,
        wall,
        cpu_stat,
    }
}

/// A counter of a `cpu.stat` text.
fn stat_counter(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {key} in cpu.stat: {text:?}"))
}

both!(cpu_quota_holds, |who| {
    // What the kernel decided, not a share of a CPU other work may be using: the quota
    // throttled the sandbox (cpu.stat), and it never used more than its quota's share of
    // the wall time (a busy host can only lower that).
    let _serial = serial();
    let Some(ctx) = Ctx::new("cpu_quota_holds", who, true) else {
        return;
    };
    let limited = burn(&ctx, "    cpu:\n      cores: 0.25\n", "cpu", Some("25000"));
    let (cpu, wall) = (limited.cpu, limited.wall);
    assert!(wall >= 1.5, "wall {wall:.3} s");
    let throttled = stat_counter(&limited.cpu_stat, "nr_throttled");
    assert!(
        throttled > 0,
        "two burners under a quota of 0.25 cores are throttled: {:?}",
        limited.cpu_stat
    );
    let bound = 0.25 * wall * 1.3 + 0.05;
    assert!(
        cpu <= bound,
        "cpu {cpu:.3} s over {wall:.3} s wall exceeds 0.25 cores (bound {bound:.3})"
    );
    // Control: the same burn without a CPU limit (still in a cgroup, which counts it) gets
    // more than the quota let through.
    let free = burn(&ctx, "    pids:\n      max: 64\n", "no-cpu", None);
    assert!(
        free.cpu > cpu,
        "without a quota: cpu {:.3} s over {:.3} s (limited run: {cpu:.3} s)",
        free.cpu,
        free.wall
    );
});

// ---------------------------------------------------------------------------------------
// Every process ends with the run
// ---------------------------------------------------------------------------------------

/// A run of the double-fork payload whose sleep has escaped and runs on the host.
struct Escaped {
    child: Child,
    marker: Marker,
    /// lasagna's stdout, kept open while the run lasts.
    _out: BufReader<std::process::ChildStdout>,
}

impl Escaped {
    /// `lasagna run ARGS -- python3 -c <the double fork>` as `ctx`'s identity, once the
    /// payload has said its sleep escaped.
    fn start(ctx: &Ctx, tag: &str, args: &[&str]) -> Escaped {
        let marker = Marker::new(tag);
        let script = double_fork_payload(&marker);
        let mut all = vec!["run"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--", "python3", "-c", &script]);
        let mut child = ctx
            .command(&all)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        read_until(&mut out, "escaped");
        Escaped {
            child,
            marker,
            _out: out,
        }
    }

    /// lasagna's exit status and stderr, within 15 s.
    fn end(&mut self) -> (ExitStatus, String) {
        let status = wait_within(&mut self.child, Duration::from_secs(15));
        let mut err = String::new();
        std::io::Read::read_to_string(&mut self.child.stderr.take().unwrap(), &mut err).unwrap();
        (status, err)
    }
}

/// Run the double-fork payload under `profile` with `extra` flags and `--timeout 1s`;
/// returns whether the escaped sleep outlived lasagna.
fn escape_at_timeout(ctx: &Ctx, profile: &str, extra: &[&str]) -> bool {
    let mut args = vec!["-p", profile, "--timeout", "1s"];
    args.extend_from_slice(extra);
    let mut run = Escaped::start(ctx, "df", &args);
    assert!(
        !run.marker.wait_alive().is_empty(),
        "the double-forked sleep runs on the host during the run"
    );
    let (status, err) = run.end();
    assert_eq!(status.code(), Some(124), "{err}");
    assert!(err.contains("timed out"), "{err}");
    !run.marker.alive().is_empty()
}

both!(double_fork_is_killed_at_timeout, |who| {
    let _serial = serial();
    let test = "double_fork_is_killed_at_timeout";
    let Some(ctx) = Ctx::new(test, who, true) else {
        return;
    };
    let profile = ctx.profile("required", "    pids:\n      max: 64\n");
    let no_ns = ["--without", "namespaces", "--without", "filesystem"];
    assert!(!escape_at_timeout(&ctx, &profile, &[]), "with every layer");
    assert!(
        !escape_at_timeout(&ctx, &profile, &no_ns),
        "without the pid namespace the cgroup must kill it"
    );
    // Without the cgroups layer and the pid namespace, lasagna's init (a child subreaper:
    // the double fork is reparented to it) kills it as it ends the run. No run exists in
    // which the escaped process survives: init's cleanup and the cgroup's kill are two
    // independent mechanisms, and each is shown alone here and above (`escape_at_timeout`
    // asserts the process was running on the host, outside the payload's tree, during the
    // run).
    assert!(
        !escape_at_timeout(&ctx, "strict", &no_ns),
        "without the cgroup, init's cleanup must kill it"
    );
    drop(ctx);
    // The v1 mechanism: no v2 tracker cgroup, the freezer stops the tree before the kill.
    let Some(ctx) = Ctx::v1_only(test, who) else {
        return;
    };
    let profile = ctx.profile("required", "    pids:\n      max: 64\n");
    assert!(
        !escape_at_timeout(&ctx, &profile, &no_ns),
        "v1 only (freezer): the cgroup must kill it"
    );
});

/// Run the double-fork payload without the pid namespace and, once its sleep has escaped,
/// SIGKILL lasagna's init from the host: init never reaps or reports, so nothing in the
/// sandbox kills the sleep (reparented away from the sandbox) but the cgroup. Returns
/// whether the escaped sleep outlived lasagna.
fn escape_with_init_killed(ctx: &Ctx, profile: &str, extra: &[&str]) -> bool {
    let mut args = vec!["-p", profile, "--timeout", "30s"];
    args.extend_from_slice(&["--without", "namespaces", "--without", "filesystem"]);
    args.extend_from_slice(extra);
    let mut run = Escaped::start(ctx, "ik", &args);
    let escaped = run.marker.wait_alive();
    assert_eq!(escaped.len(), 1, "the double-forked sleep runs on the host");
    let init = first_child(run.child.id());
    kill(Pid::from_raw(init), Signal::SIGKILL).unwrap();
    let (status, err) = run.end();
    // The run failed, and says why: init ended before it reported.
    assert_eq!(status.code(), Some(125), "{err}");
    assert!(
        err.contains("init was killed by SIGKILL before the payload's status was known"),
        "{err}"
    );
    // Give a surviving sleep the chance to be seen; a killed one is gone (or a zombie of
    // the host's init for an instant).
    let until = Instant::now() + Duration::from_secs(2);
    while !run.marker.alive().is_empty() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    !run.marker.alive().is_empty()
}

both!(the_cgroup_alone_ends_what_escaped_a_killed_init, |who| {
    let _serial = serial();
    let test = "the_cgroup_alone_ends_what_escaped_a_killed_init";
    let Some(ctx) = Ctx::new(test, who, true) else {
        return;
    };
    let profile = ctx.profile("required", "    pids:\n      max: 64\n");
    assert!(
        !escape_with_init_killed(&ctx, &profile, &[]),
        "init killed, no pid namespace: the cgroup must kill the escaped sleep"
    );
    // Control: without the cgroup nothing else stops it (the marker's drop kills it).
    assert!(
        escape_with_init_killed(&ctx, &profile, &["--without", "cgroups"]),
        "without the cgroup the escaped sleep outlives the run: the cgroup was the only stop"
    );
    drop(ctx);
    // v1 alone: no v2 tracker, the freezer stops the tree before the kill.
    let Some(ctx) = Ctx::v1_only(test, who) else {
        return;
    };
    let profile = ctx.profile("required", "    pids:\n      max: 64\n");
    assert!(
        !escape_with_init_killed(&ctx, &profile, &[]),
        "v1 only (freezer): the cgroup must kill the escaped sleep"
    );
});

/// SIGINT to lasagna once the payload has double-forked; returns whether the escaped sleep
/// outlived lasagna.
fn escape_at_sigint(ctx: &Ctx, profile: &str) -> bool {
    let marker = Marker::new("int");
    let script = double_fork_payload(&marker);
    let rep = ctx.report_path("int");
    let mut child = ctx
        .command(&[
            "run",
            "-p",
            profile,
            "--report",
            &rep,
            "--without",
            "namespaces",
            "--without",
            "filesystem",
            "--timeout",
            "30s",
            "--",
            "python3",
            "-c",
            &script,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    read_until(&mut out, "escaped");
    assert!(!marker.wait_alive().is_empty());
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
    let status = wait_within(&mut child, Duration::from_secs(10));
    assert_ne!(
        status.code(),
        Some(124),
        "ended by the signal, not the timeout"
    );
    let r = report(&rep);
    assert_eq!(r["signals_forwarded"], serde_json::json!([2]), "{r:#}");
    // The effect, not only the claim: the payload (python) died of the SIGINT it received.
    assert_eq!(status.code(), Some(128 + 2), "{r:#}");
    assert_eq!(r["ending"]["signaled"]["name"], "SIGINT", "{r:#}");
    !marker.alive().is_empty()
}

both!(ctrl_c_ends_every_process_in_the_cgroup, |who| {
    let _serial = serial();
    let Some(ctx) = Ctx::new("ctrl_c_ends_every_process_in_the_cgroup", who, true) else {
        return;
    };
    let profile = ctx.profile("required", "    pids:\n      max: 64\n");
    assert!(!escape_at_sigint(&ctx, &profile));
    // Without the cgroups layer, init's cleanup ends it too: the two mechanisms are
    // independent, and no run lets the escaped process survive (see
    // `double_fork_is_killed_at_timeout`).
    assert!(!escape_at_sigint(&ctx, "strict"));
});

// ---------------------------------------------------------------------------------------
// Nothing left behind
// ---------------------------------------------------------------------------------------

both!(
    no_cgroup_leaks_after_many_runs_and_killed_supervisors,
    |who| {
        let _serial = serial();
        let test = "no_cgroup_leaks_after_many_runs_and_killed_supervisors";
        let Some(ctx) = Ctx::new(test, who, true) else {
            return;
        };
        let profile = ctx.profile("required", "    pids:\n      max: 64\n");
        let mut supervisors = BTreeSet::new();
        let (mut killed, mut left_stale) = (0, 0);
        for i in 0..200 {
            if i % 10 == 9 {
                // SIGKILL the supervisor mid-run: its cgroup stays until a later run sweeps it.
                let mut child = ctx
                    .command(&["run", "-p", &profile, "--", "sleep", "5"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap();
                supervisors.insert(child.id());
                std::thread::sleep(Duration::from_millis(50));
                child.kill().unwrap();
                let status = child.wait().unwrap();
                assert_eq!(
                    std::os::unix::process::ExitStatusExt::signal(&status),
                    Some(9),
                    "killed mid-run, not finished: {status:?}"
                );
                killed += 1;
                // Control: the leak is there to see (the final check can fail).
                if !ctx.leftovers(&supervisors).is_empty() {
                    left_stale += 1;
                }
            } else {
                let child = ctx
                    .command(&["run", "-p", &profile, "--", "/bin/true"])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap();
                supervisors.insert(child.id());
                let o = output_within(child, Duration::from_secs(10));
                assert_code(&o, 0);
            }
        }
        assert_eq!(killed, 20);
        assert!(
            left_stale >= killed / 2,
            "only {left_stale} of {killed} SIGKILLed supervisors left a cgroup to sweep"
        );
        // The 200th run was a SIGKILLed one: this run sweeps what it left.
        let stale = ctx.leftovers(&supervisors);
        let child = ctx
            .command(&["run", "-p", &profile, "--", "/bin/true"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        supervisors.insert(child.id());
        assert_code(&output_within(child, Duration::from_secs(10)), 0);
        let left = ctx.leftovers(&supervisors);
        assert!(
            left.is_empty(),
            "{} cgroups left (of {} stale before the sweeping run): {left:#?}",
            left.len(),
            stale.len()
        );
    }
);

both!(a_cgroup_that_gained_child_cgroups_is_torn_down, |who| {
    // A payload that can write its cgroupfs can make sub-cgroups; teardown removes the
    // tree depth first, and the payload's own status stands.
    let _serial = serial();
    let Some(ctx) = Ctx::new("a_cgroup_that_gained_child_cgroups_is_torn_down", who, true) else {
        return;
    };
    let profile = ctx.profile("required", "    pids:\n      max: 64\n");
    let rep = ctx.report_path("children");
    let child = ctx
        .command(&[
            "run",
            "-p",
            &profile,
            "--report",
            &rep,
            "--",
            "/bin/sh",
            "-c",
            "sleep 1; exit 3",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let dir = ctx.sandbox_dir("pids", child.id());
    // As the payload would (as its own user): a child cgroup inside the sandbox's, and
    // one below it.
    let mkdir = match who {
        As::Root => Command::new("mkdir")
            .arg("-p")
            .arg(dir.join("made-inside/deeper"))
            .status(),
        As::User => {
            let (uid, gid) = test_user().unwrap();
            Command::new("setpriv")
                .arg(format!("--reuid={uid}"))
                .arg(format!("--regid={gid}"))
                .arg("--clear-groups")
                .arg("--")
                .arg("mkdir")
                .arg("-p")
                .arg(dir.join("made-inside/deeper"))
                .status()
        }
    };
    assert!(mkdir.unwrap().success());
    let o = output_within(child, Duration::from_secs(20));
    assert_code(&o, 3);
    assert!(!dir.exists(), "{} is left", dir.display());
    let r = report(&rep);
    assert_eq!(r["exit_code"], 3, "{r:#}");
    assert!(r["warnings"].is_null(), "{r:#}");
});

#[test]
fn the_sweep_spares_a_live_run_in_another_pid_namespace() {
    // A supervisor in another pid namespace names its cgroup after a pid that does not
    // exist here; a run in this namespace must not take that for a dead supervisor.
    let test = "the_sweep_spares_a_live_run_in_another_pid_namespace";
    if !can_run(test, As::Root) {
        return;
    }
    let _serial = serial();
    let Some(ctx) = Ctx::new(test, As::Root, true) else {
        return;
    };
    let profile = ctx.profile("required", "    pids:\n      max: 64\n");
    // Inside a new pid namespace, the next pid is set high: the supervisor gets a pid the
    // host does not have.
    let pid_max: u32 = fs::read_to_string("/proc/sys/kernel/pid_max")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let pid_there: u32 = (pid_max - 2000..pid_max - 10)
        .rev()
        .find(|p| !std::path::Path::new(&format!("/proc/{p}")).exists())
        .expect("a pid the host does not use");
    let script = format!(
        "echo {} > /proc/sys/kernel/ns_last_pid && \"$0\" run -p {profile} -- /bin/sh -c 'sleep 1.5; exit 7'; exit $?",
        pid_there - 1
    );
    let far = Command::new("unshare")
        .args(["-fp", "--mount-proc", "/bin/sh", "-c", &script, &bin()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Its cgroup exists, named after a pid that is no process here.
    let name = format!("lasagna-{pid_there}-");
    let until = Instant::now() + Duration::from_secs(5);
    let parents = ctx.parent_dirs();
    while !parents.iter().any(|parent| {
        fs::read_dir(parent)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with(&name))
    }) {
        assert!(
            Instant::now() < until,
            "no {name}* cgroup under {parents:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // A run here sweeps the same parent.
    let o = ctx.run(&["run", "-p", &profile, "--", "/bin/true"]);
    assert_code(&o, 0);
    let far = output_within(far, Duration::from_secs(20));
    assert_code(&far, 7);
}

both!(every_limit_lands_in_the_kernel, |who| {
    // memory.high, swap, cpu and io weights (pids, memory.max and cpu.max have behavioural
    // tests above): the kernel holds what the profile asked for, in the file of this
    // host's cgroup version, while the payload runs.
    let _serial = serial();
    let Some(ctx) = Ctx::new("every_limit_lands_in_the_kernel", who, true) else {
        return;
    };
    let limits = "    memory:\n      max: 256M\n      high: 128M\n      swap-max: 64M\n    cpu:\n      weight: 200\n    pids:\n      max: 64\n";
    let profile = ctx.profile("best-effort", limits);
    let mut cmd = ctx.command(&[
        "run",
        "-p",
        &profile,
        "--",
        "/bin/sh",
        "-c",
        "echo up; read go",
    ]);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    // The directory appears before its limits are written; the payload runs only after
    // every limit is in place, so its first line is the moment to read them.
    let mut up = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut up,
    )
    .unwrap();
    assert_eq!(up, "up\n", "the payload started");
    let read = |controller: &str, file: &str| -> Option<String> {
        let dir = ctx.sandbox_dir(controller, child.id());
        fs::read_to_string(dir.join(file))
            .ok()
            .map(|v| v.trim().to_string())
    };
    let (high, swap, weight) = if v1("memory").is_some() {
        (
            read("memory", "memory.soft_limit_in_bytes"),
            read("memory", "memory.memsw.limit_in_bytes"),
            read("cpu", "cpu.shares"),
        )
    } else {
        (
            read("memory", "memory.high"),
            read("memory", "memory.swap.max"),
            read("cpu", "cpu.weight"),
        )
    };
    let mut stdin = child.stdin.take().unwrap();
    std::io::Write::write_all(&mut stdin, b"go\n").unwrap();
    drop(stdin);
    let status = wait_within(&mut child, Duration::from_secs(20));
    assert!(status.success(), "{status:?}");
    if v1("memory").is_some() {
        assert_eq!(
            high.as_deref(),
            Some("134217728"),
            "memory.high as the v1 soft limit"
        );
        if swap.is_some() {
            // memsw counts memory and swap together: max + swap-max.
            assert_eq!(swap.as_deref(), Some("335544320"));
        }
        assert_eq!(weight.as_deref(), Some("2048"), "cpu weight 200 as shares");
    } else {
        assert_eq!(high.as_deref(), Some("134217728"));
        assert_eq!(swap.as_deref(), Some("67108864"));
        assert_eq!(weight.as_deref(), Some("200"));
    }
});

// ---------------------------------------------------------------------------------------
// Refusal and fallback without delegation
// ---------------------------------------------------------------------------------------

#[test]
fn undelegated_user_is_refused_or_falls_back_to_rlimits() {
    let test = "undelegated_user_is_refused_or_falls_back_to_rlimits";
    if !can_run(test, As::User) {
        return;
    }
    let _serial = serial();
    if let Some(why) = missing_controllers() {
        return skip(test, &why);
    }
    let ctx = Ctx::undelegated("cg-undeleg");
    fs::set_permissions(ctx.scratch.path(), fs::Permissions::from_mode(0o777)).unwrap();
    let reports = ctx.scratch.path().join("reports");
    fs::create_dir(&reports).unwrap();
    fs::set_permissions(&reports, fs::Permissions::from_mode(0o777)).unwrap();
    let limits = "    memory:\n      max: 256M\n    pids:\n      max: 64\n";
    let marker = ctx.scratch.path().join("ran");
    let script = format!("touch {}; cat /proc/self/limits", marker.display());
    let args = |profile: &str, rep: &str| -> Vec<String> {
        [
            "run",
            "-p",
            profile,
            "--report",
            rep,
            "--without",
            "filesystem",
            "--",
            "/bin/sh",
            "-c",
            &script,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };

    let profile = ctx.profile("required", limits);
    let rep = ctx.report_path("required");
    let a = args(&profile, &rep);
    let o = ctx.run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_code(&o, 125);
    assert!(
        !marker.exists(),
        "nothing runs when a required layer is refused"
    );
    let err = stderr(&o);
    assert!(err.contains("cgroups"), "names the layer: {err}");
    assert!(
        err.contains("not writable by this user"),
        "the reason: {err}"
    );
    assert!(
        err.contains("chown -R") && err.contains("parent"),
        "the fix: {err}"
    );
    assert_eq!(cgroups_layer(&report(&rep))["outcome"], "refused");

    let profile = ctx.profile("best-effort", limits);
    let rep = ctx.report_path("best-effort");
    let a = args(&profile, &rep);
    let o = ctx.run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_code(&o, 0);
    assert!(marker.exists(), "best-effort runs the payload");
    // The stand-ins hold both limits: the report tells, not every run's stderr.
    assert!(!stderr(&o).contains("cgroups degraded"), "{}", stderr(&o));
    let r = report(&rep);
    let layer = cgroups_layer(&r);
    assert_eq!(layer["outcome"], "degraded", "{r:#}");
    let reason = layer["reason"].as_str().unwrap();
    assert!(
        reason.contains("RLIMIT_AS for memory.max") && reason.contains("RLIMIT_NPROC for pids.max"),
        "{reason}"
    );
    assert!(r.get("usage").is_none(), "no cgroup, no usage: {r:#}");
    // The kernel agrees: the payload runs under the fallback rlimits.
    let limits_txt = stdout(&o);
    let row = |name: &str| {
        limits_txt
            .lines()
            .find(|l| l.starts_with(name))
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .unwrap_or_else(|| panic!("{name} in {limits_txt}"))
    };
    assert_eq!(row("Max address space")[3], "268435456", "{limits_txt}");
    assert_eq!(row("Max processes")[2], "64", "{limits_txt}");

    // Control: root, whose cgroups are writable, runs the required profile in a cgroup.
    if can_run(test, As::Root) {
        let root = Ctx::new(test, As::Root, true).unwrap();
        let profile = root.profile("required", limits);
        let rep = root.report_path("root");
        let o = root.run(&["run", "-p", &profile, "--report", &rep, "--", "/bin/true"]);
        assert_code(&o, 0);
        let r = report(&rep);
        assert_eq!(cgroups_layer(&r)["outcome"], "applied");
        assert!(usage(&r, "memory_peak_bytes") > 0 && usage(&r, "cpu_time_usec") > 0);
    }
}

/// The fix a refusal gives, followed word for word as root, lets the same user run the
/// required profile: its paths are this host's (the real mount points, below the caller's
/// own nested cgroup), its `chown` names the user, and its `parent:` is the one it made.
#[test]
fn the_delegation_hint_works_as_written() {
    let test = "the_delegation_hint_works_as_written";
    if !can_run(test, As::User) || !can_run(test, As::Root) {
        return;
    }
    let _serial = serial();
    if let Some(why) = missing_controllers() {
        return skip(test, &why);
    }
    let ctx = Ctx::undelegated("cg-hint");
    let limits = "    memory:\n      max: 256M\n    pids:\n      max: 64\n";
    let profile = ctx.profile("required", limits);
    let o = ctx.run(&["run", "-p", &profile, "--", "/bin/true"]);
    assert_code(&o, 125);
    let err = stderr(&o);
    let fix = err
        .split_once("as root: ")
        .and_then(|(_, rest)| rest.split_once("; then set cgroups parent: "))
        .unwrap_or_else(|| panic!("a fix to follow: {err}"));
    let (commands, parent) = (fix.0, fix.1.trim_end().trim_end_matches(')'));
    let user = std::process::Command::new("id")
        .args(["-un", &test_user().unwrap().0.to_string()])
        .output()
        .unwrap();
    let user = String::from_utf8_lossy(&user.stdout).trim().to_string();
    // Each command is `mkdir -p D && chown -R USER D`; D's ancestors this test makes are
    // removed at the end, children first.
    let mut made: Vec<PathBuf> = Vec::new();
    struct Cleanup<'a>(&'a mut Vec<PathBuf>);
    impl Drop for Cleanup<'_> {
        fn drop(&mut self) {
            for d in self.0.iter().rev() {
                remove_tree(d);
            }
        }
    }
    let cleanup = Cleanup(&mut made);
    for cmd in commands.split("; ") {
        let words: Vec<&str> = cmd.split_whitespace().collect();
        assert!(
            matches!(words.as_slice(), ["mkdir", "-p", d, "&&", "chown", "-R", u, e] if d == e && *u == user),
            "each step makes one directory and gives it to {user}: {cmd}"
        );
        let dir = PathBuf::from(words[2]);
        assert!(
            dir.ends_with(parent.trim_start_matches('/')),
            "{} is {parent} in its hierarchy",
            dir.display()
        );
        assert!(
            !dir.exists(),
            "{} exists already: not this test's to change",
            dir.display()
        );
        let mut missing: Vec<PathBuf> = dir
            .ancestors()
            .take_while(|a| !a.exists())
            .map(Path::to_path_buf)
            .collect();
        missing.reverse();
        cleanup.0.extend(missing);
        let ok = std::process::Command::new("sh")
            .args(["-c", cmd])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "{cmd}");
    }
    let profile = ctx.scratch.write(
        "fixed.yaml",
        &format!(
            "extends: strict\nlayers:\n  cgroups:\n    mode: required\n{limits}    parent: {parent}\n"
        ),
    );
    let reports = ctx.scratch.path().join("reports");
    fs::create_dir_all(&reports).unwrap();
    fs::set_permissions(&reports, fs::Permissions::from_mode(0o777)).unwrap();
    let rep = ctx.report_path("fixed");
    let o = ctx.run(&["run", "-p", &profile, "--report", &rep, "--", "/bin/true"]);
    assert_code(&o, 0);
    let r = report(&rep);
    assert_eq!(cgroups_layer(&r)["outcome"], "applied", "{r:#}");
    assert!(usage(&r, "memory_peak_bytes") > 0, "{r:#}");
    // The sandbox's cgroups were made below the parent and are gone again.
    for d in cleanup.0.iter().filter(|d| d.ends_with("lasagna")) {
        let left: Vec<_> = fs::read_dir(d)
            .unwrap()
            .flatten()
            .filter(|e| e.path().is_dir())
            .collect();
        assert!(left.is_empty(), "{}: {left:?}", d.display());
    }
    drop(cleanup);
}
