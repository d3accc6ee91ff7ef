//! One run of the battery and the pool that runs them: what a run plants for itself
//! (files, listeners, a host sleeper, a sibling sandbox, a terminal), the `lasagna run`
//! child with its deadline, and the host-side checks that decide the cell.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::session::{chmod, token, Session};
use super::{Cell, Column, RUN_DEADLINE};
use crate::launch::Layer;
use crate::plan::Plan;
use crate::probe::{self, Evidence, HostCheck, Probe, Secret};

/// What one run planted for itself, removed when it is dropped.
struct RunCanaries<'a> {
    session: &'a Session,
    write_file: Option<PathBuf>,
    create_dir: Option<PathBuf>,
    tcp: Option<std::net::TcpListener>,
    abstract_sock: Option<(std::os::unix::net::UnixListener, String)>,
    path_sock: Option<(std::os::unix::net::UnixListener, PathBuf)>,
    sleeper: Option<Child>,
    sleeper_secret: String,
    sibling: Option<Child>,
    sibling_secrets: (String, String),
    sibling_pid: Option<i32>,
    sibling_run: Option<usize>,
    tty: Option<(OwnedFd, OwnedFd)>,
}

impl Drop for RunCanaries<'_> {
    fn drop(&mut self) {
        if let Some(child) = self.sleeper.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
            self.session.untrack(child.id());
        }
        // The sibling is a `lasagna run`: SIGTERM, which it forwards, so its init reaps
        // the payload (a SIGKILL would leave a payload without the process layer's
        // parent-death signal running).
        if let Some(child) = self.sibling.as_mut() {
            end_run(child);
            self.session.untrack(child.id());
        }
        if let Some(p) = &self.write_file {
            let _ = fs::remove_file(p);
        }
        if let Some(d) = &self.create_dir {
            let _ = fs::remove_dir_all(d);
        }
        if let Some((_, p)) = &self.path_sock {
            let _ = fs::remove_file(p);
        }
        // Without the filesystem layer the sibling's /tmp is the host's.
        if let Some(run) = self.sibling_run {
            let _ = fs::remove_file(format!("/tmp/lasagna-sibling-{run}"));
        }
    }
}

/// The payload's uid and gid on the host in this column (what a host process must run as
/// for a signal or ptrace from inside to be the layers' business, not plain permissions).
fn payload_host_ids(plan: &Plan) -> (u32, u32) {
    if let Some(ids) = plan.identity.host_ids_if_root() {
        return ids;
    }
    match &plan.identity.maps {
        Some(m) => (m.host_uid, m.host_gid),
        None => (
            nix::unistd::getuid().as_raw(),
            nix::unistd::getgid().as_raw(),
        ),
    }
}

/// Make a canary the payload may change if a layer lets it: the payload's own host uid's
/// and nobody else's (`mode` for the owner only). Another local user cannot touch it, so a
/// change seen afterwards was the payload's. With `host-uid: auto` the uid is picked at
/// launch, after the canary must exist: refused, and the cell says why.
fn own_canary(path: &Path, plan: &Plan, mode: u32) -> std::io::Result<()> {
    if nix::unistd::geteuid().is_root() {
        if plan.identity.pick_host_ids.is_some() {
            return Err(std::io::Error::other(
                "host-uid: auto picks the payload's uid at launch, so this probe's canary cannot be made that uid's alone; test with a fixed host-uid",
            ));
        }
        let (uid, gid) = payload_host_ids(plan);
        std::os::unix::fs::chown(path, Some(uid), Some(gid))?;
    }
    chmod(path, mode)
}

fn spawn_sleeper(session: &Session, plan: &Plan, secret: &str) -> std::io::Result<Child> {
    let mut cmd = Command::new(&session.probe_copy);
    cmd.args(["probe", "sleep", secret])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0);
    if nix::unistd::geteuid().is_root() {
        let (uid, gid) = payload_host_ids(plan);
        cmd.uid(uid).gid(gid);
    }
    let mut child = cmd.spawn()?;
    session.track(child.id());
    wait_ready(&mut child)?;
    Ok(child)
}

/// Read the child's stdout until `READY`.
fn wait_ready(child: &mut Child) -> std::io::Result<()> {
    let out = child
        .stdout
        .take()
        .ok_or_else(|| std::io::Error::other("no stdout"))?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let mut r = BufReader::new(out);
        let ok = r.read_line(&mut line).is_ok() && line.trim() == "READY";
        let _ = tx.send(ok);
        // Keep the pipe open (and drained) until the child ends.
        let _ = std::io::copy(&mut r, &mut std::io::sink());
    });
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(true) => Ok(()),
        _ => Err(std::io::Error::other("did not start")),
    }
}

/// `lasagna run` for a column; in a process group of its own unless it is to take a
/// controlling terminal (which needs a new session, which a group leader cannot start).
fn lasagna_run(session: &Session, column: &Column, own_group: bool) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap_or_else(|_| "lasagna".into()));
    cmd.arg("run").arg("-p").arg(&session.profile_path);
    for l in &column.without {
        cmd.arg("--without").arg(l.name());
    }
    cmd.arg("--degrade-dependents")
        .env("LASAGNA_TEST_CANARY", &session.env_secret);
    if own_group {
        cmd.process_group(0);
    }
    cmd
}

/// Where the probe is, seen from inside this column's sandbox.
fn probe_inside(session: &Session, column: &Column) -> String {
    let bound = column
        .plan
        .as_ref()
        .is_some_and(|p| p.applies(Layer::Filesystem));
    if bound {
        probe::PROBE_PATH.to_string()
    } else {
        session.probe_copy.display().to_string()
    }
}

fn find_pid_by_cmdline(needle: &str) -> Option<i32> {
    for e in fs::read_dir("/proc").ok()?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Ok(pid) = name.parse::<i32>() else {
            continue;
        };
        if let Ok(raw) = fs::read(e.path().join("cmdline")) {
            let line = String::from_utf8_lossy(&raw).replace('\0', " ");
            if line.contains(needle)
                && line.contains("probe sleep")
                && !line.contains("lasagna run")
                && !line.contains(" run -p ")
            {
                return Some(pid);
            }
        }
    }
    None
}

fn plant_run<'a>(
    session: &'a Session,
    column: &Column,
    p: &Probe,
    run: usize,
) -> std::io::Result<RunCanaries<'a>> {
    let plan = column
        .plan
        .as_ref()
        .ok_or_else(|| std::io::Error::other("column refused"))?;
    let mut c = RunCanaries {
        session,
        write_file: None,
        create_dir: None,
        tcp: None,
        abstract_sock: None,
        path_sock: None,
        sleeper: None,
        sleeper_secret: token("host-sleeper"),
        sibling: None,
        sibling_secrets: (token("sibling"), token("sibling-file")),
        sibling_pid: None,
        sibling_run: None,
        tty: None,
    };
    match p.evidence {
        Evidence::Host(HostCheck::FileChanged) => {
            let f = session.dir.join(format!("write-{run}"));
            fs::write(&f, "planted")?;
            own_canary(&f, plan, 0o600)?;
            c.write_file = Some(f);
        }
        Evidence::Host(HostCheck::DirCreated) => {
            let d = session.dir.join(format!("create-{run}"));
            fs::create_dir(&d)?;
            own_canary(&d, plan, 0o700)?;
            c.create_dir = Some(d);
        }
        Evidence::Host(HostCheck::TcpConnected) => {
            let l = std::net::TcpListener::bind("127.0.0.1:0")?;
            l.set_nonblocking(true)?;
            c.tcp = Some(l);
        }
        Evidence::Host(HostCheck::AbstractConnected) => {
            use std::os::linux::net::SocketAddrExt;
            let name = format!("lasagna-test-{}-{run}", std::process::id());
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(&name)?;
            let l = std::os::unix::net::UnixListener::bind_addr(&addr)?;
            l.set_nonblocking(true)?;
            c.abstract_sock = Some((l, name));
        }
        Evidence::Host(HostCheck::PathnameConnected) => {
            let path = session.dir.join(format!("sock-{run}"));
            let l = std::os::unix::net::UnixListener::bind(&path)?;
            chmod(&path, 0o777)?;
            l.set_nonblocking(true)?;
            c.path_sock = Some((l, path));
        }
        _ => {}
    }
    if p.needs.host_sleeper {
        c.sleeper = Some(spawn_sleeper(session, plan, &c.sleeper_secret)?);
    }
    if p.needs.sibling {
        let mut cmd = lasagna_run(session, column, true);
        cmd.arg("--")
            .arg(probe_inside(session, column))
            .args([
                "probe",
                "sleep",
                &c.sibling_secrets.0,
                &c.sibling_secrets.1,
                &run.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = cmd.spawn()?;
        session.track(child.id());
        c.sibling_run = Some(run);
        let ready = wait_ready(&mut child);
        c.sibling = Some(child);
        ready?;
        c.sibling_pid = find_pid_by_cmdline(&c.sibling_secrets.0);
    }
    if p.needs.tty {
        let pty = nix::pty::openpty(None, None).map_err(std::io::Error::from)?;
        if let Ok(mut t) = nix::sys::termios::tcgetattr(&pty.slave) {
            nix::sys::termios::cfmakeraw(&mut t);
            let _ =
                nix::sys::termios::tcsetattr(&pty.slave, nix::sys::termios::SetArg::TCSANOW, &t);
        }
        c.tty = Some((pty.master, pty.slave));
    }
    Ok(c)
}

fn run_one(session: &Session, column: &Column, p: &Probe) -> Cell {
    if session.stopping.load(Ordering::SeqCst) {
        return Cell::Error("interrupted".into());
    }
    if column.plan.is_none() {
        return Cell::Error("this configuration is refused".into());
    }
    let run = session.next_run.fetch_add(1, Ordering::SeqCst);
    let canaries = match plant_run(session, column, p, run) {
        Ok(c) => c,
        Err(e) => return Cell::Error(format!("planting: {e}")),
    };
    let inside = probe_inside(session, column);
    let script = if inside == probe::PROBE_PATH {
        "exec-view.sh"
    } else {
        "exec-host.sh"
    };
    let mut cmd = lasagna_run(session, column, canaries.tty.is_none());
    cmd.arg("--").arg(&inside).arg("probe").arg(p.name);
    cmd.arg(format!("canary={}", session.dir.display()));
    cmd.arg(format!("run={run}"));
    cmd.arg(format!("script={}", session.dir.join(script).display()));
    if let Some(s) = &canaries.sleeper {
        cmd.arg(format!("pid={}", s.id()));
    }
    if let Some(pid) = canaries.sibling_pid {
        cmd.arg(format!("pid={pid}"));
    }
    if let Some(l) = &canaries.tcp {
        cmd.arg(format!(
            "port={}",
            l.local_addr().map(|a| a.port()).unwrap_or(0)
        ));
    }
    if let Some((_, name)) = &canaries.abstract_sock {
        cmd.arg(format!("abstract={name}"));
    }
    if let Some((_, path)) = &canaries.path_sock {
        cmd.arg(format!("socket={}", path.display()));
    }
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    match &canaries.tty {
        Some((_, slave)) => {
            match slave.try_clone() {
                Ok(s) => {
                    cmd.stdin(Stdio::from(s));
                }
                Err(e) => return Cell::Error(format!("tty: {e}")),
            }
            crate::sys::probe::with_controlling_tty(&mut cmd, 0);
        }
        None => {
            cmd.stdin(Stdio::null());
        }
    }
    let (stdout, stderr) = match run_with_deadline(session, cmd) {
        Ok(out) => out,
        Err(e) => return Cell::Error(e),
    };
    if !stdout.lines().any(|l| l == "READY") {
        let why = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("no output");
        return Cell::Error(format!("the probe did not start: {why}"));
    }
    let through = match p.evidence {
        Evidence::Kernel => stdout.lines().any(|l| l.starts_with("RESULT open")),
        Evidence::Secret(s) => {
            let wanted = match s {
                Secret::File => session.secret.as_str(),
                Secret::HostProcess => canaries.sleeper_secret.as_str(),
                Secret::Environment => session.env_secret.as_str(),
                Secret::Hostname => session.hostname.as_str(),
                Secret::SiblingProcess => canaries.sibling_secrets.0.as_str(),
                Secret::SiblingFile => canaries.sibling_secrets.1.as_str(),
            };
            match s {
                Secret::Hostname => stdout
                    .lines()
                    .any(|l| l == format!("SAW hostname {wanted}")),
                _ => !wanted.is_empty() && stdout.contains(wanted),
            }
        }
        Evidence::Host(check) => host_check(check, &canaries),
    };
    if through {
        Cell::Through
    } else {
        Cell::Stopped
    }
}

fn host_check(check: HostCheck, c: &RunCanaries<'_>) -> bool {
    let accepted = |r: std::io::Result<()>| r.is_ok();
    match check {
        HostCheck::FileChanged => c.write_file.as_ref().is_some_and(|f| {
            fs::read_to_string(f)
                .map(|s| s != "planted")
                .unwrap_or(true)
        }),
        HostCheck::DirCreated => c.create_dir.as_ref().is_some_and(|d| {
            fs::read_dir(d)
                .map(|mut e| e.next().is_some())
                .unwrap_or(false)
        }),
        HostCheck::TcpConnected => c
            .tcp
            .as_ref()
            .is_some_and(|l| accepted(l.accept().map(drop))),
        HostCheck::AbstractConnected => c
            .abstract_sock
            .as_ref()
            .is_some_and(|(l, _)| accepted(l.accept().map(drop))),
        HostCheck::PathnameConnected => c
            .path_sock
            .as_ref()
            .is_some_and(|(l, _)| accepted(l.accept().map(drop))),
        HostCheck::HostSleeperKilled => exited(c.sleeper.as_ref()),
        HostCheck::SiblingKilled => exited(c.sibling.as_ref()),
        HostCheck::TtyInjected => c.tty.as_ref().is_some_and(|(_, slave)| {
            let mut buf = [0u8; 64];
            let _ = nix::fcntl::fcntl(
                slave,
                nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
            );
            matches!(nix::unistd::read(slave, &mut buf), Ok(n) if buf[..n].contains(&b'#'))
        }),
    }
}

/// Whether a child of ours has ended (without reaping it: Drop does).
fn exited(child: Option<&Child>) -> bool {
    let Some(child) = child else { return false };
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let flags = nix::sys::wait::WaitPidFlag::WNOHANG
        | nix::sys::wait::WaitPidFlag::WNOWAIT
        | nix::sys::wait::WaitPidFlag::WEXITED;
    // A probe's kill lands before its run ends; give the kernel a moment to report it.
    let until = Instant::now() + Duration::from_millis(300);
    loop {
        match nix::sys::wait::waitid(nix::sys::wait::Id::Pid(pid), flags) {
            Ok(nix::sys::wait::WaitStatus::StillAlive) | Err(nix::errno::Errno::EINTR) => {}
            Ok(_) => return true,
            Err(_) => return false,
        }
        if Instant::now() >= until {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// End a `lasagna run`: SIGTERM (forwarded to the payload), then SIGKILL after 5 s.
fn end_run(child: &mut Child) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn run_with_deadline(session: &Session, mut cmd: Command) -> Result<(String, String), String> {
    let mut child = cmd.spawn().map_err(|e| format!("lasagna run: {e}"))?;
    session.track(child.id());
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let until = Instant::now() + RUN_DEADLINE;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) if Instant::now() < until => std::thread::sleep(Duration::from_millis(5)),
            _ => {
                end_run(&mut child);
                break None;
            }
        }
    };
    session.untrack(child.id());
    let stdout = t_out.join().unwrap_or_default();
    let stderr = t_err.join().unwrap_or_default();
    match status {
        Some(_) => Ok((stdout, stderr)),
        None => Err(format!("no end within {} s", RUN_DEADLINE.as_secs())),
    }
}

pub(super) fn run_all(
    session: &Session,
    columns: &[Column],
    probes: &[&'static Probe],
    jobs: usize,
) -> Vec<Vec<Cell>> {
    let mut work: Vec<(usize, usize)> = Vec::new();
    for (pi, _) in probes.iter().enumerate() {
        for (ci, _) in columns.iter().enumerate() {
            work.push((pi, ci));
        }
    }
    // The heavy probes first, so the light ones fill in around them.
    work.sort_by_key(|(pi, _)| !probes[*pi].needs.heavy);
    let queue = Mutex::new(work.into_iter());
    // At most two resource-hungry runs at once (5 GiB of memory, 3000 processes each).
    let heavy = (Mutex::new(0usize), std::sync::Condvar::new());
    // The fork bomb runs alone: it fills its payload's host uid up to the process limit,
    // and RLIMIT_NPROC counts per uid, so another cell whose payload is the same host uid
    // (every column without a user namespace, as root) would fail to start for it.
    let alone = std::sync::RwLock::new(());
    let results: Mutex<BTreeMap<(usize, usize), Cell>> = Mutex::new(BTreeMap::new());
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| loop {
                let next = queue.lock().expect("queue").next();
                let Some((pi, ci)) = next else { break };
                let p = probes[pi];
                // Held for the cell's run: alone, or beside others.
                let (_alone, _beside) = if p.name == "fork-bomb" {
                    (Some(alone.write().unwrap_or_else(|e| e.into_inner())), None)
                } else {
                    (None, Some(alone.read().unwrap_or_else(|e| e.into_inner())))
                };
                let cell = if p.needs.heavy {
                    let (count, freed) = &heavy;
                    let mut n = freed
                        .wait_while(count.lock().expect("heavy"), |n| *n >= 2)
                        .expect("heavy");
                    *n += 1;
                    drop(n);
                    let cell = run_one(session, &columns[ci], p);
                    *count.lock().expect("heavy") -= 1;
                    freed.notify_one();
                    cell
                } else {
                    run_one(session, &columns[ci], p)
                };
                results.lock().expect("results").insert((pi, ci), cell);
            });
        }
    });
    let mut results = results.into_inner().expect("results");
    probes
        .iter()
        .enumerate()
        .map(|(pi, _)| {
            (0..columns.len())
                .map(|ci| {
                    results
                        .remove(&(pi, ci))
                        .unwrap_or(Cell::Error("not run".into()))
                })
                .collect()
        })
        .collect()
}
