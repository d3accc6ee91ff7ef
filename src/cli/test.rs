//! `lasagna test PROFILE`: the probes of [`crate::probe`] run against the live sandbox, in
//! the full profile, with each layer left out in turn, and (`--alone`) with each layer on
//! its own; a baseline with every layer off shows what the host itself stops.
//!
//! The harness plants canaries on the host (a secret file, per-run files and directories,
//! listeners, sleeping processes, a second sandbox) and decides from host-side evidence
//! whether a probe got through. Every run is a `lasagna run` child of this process, so the
//! harness may use threads; everything it planted is removed afterwards, also on Ctrl-C.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::cli::{Error, TestArgs};
use crate::host::{Host, Needs as HostNeeds};
use crate::launch::{Decision, Layer};
use crate::plan::{self, Options, Plan};
use crate::probe::{self, Evidence, HostCheck, Probe, Secret, PROBES};
use crate::profile::{self, Profile, Source};

/// Version of `--json`'s document.
pub const TEST_REPORT_VERSION: u32 = 1;

/// Longest a single probe run may take before it is killed and reported as an error.
const RUN_DEADLINE: Duration = Duration::from_secs(90);

/// One column of the matrix.
#[derive(Debug, Clone, Serialize)]
pub struct Column {
    pub name: String,
    pub without: Vec<Layer>,
    /// Layers that degrade here because a layer they rely on is off.
    pub degraded: Vec<Layer>,
    #[serde(skip)]
    pub kind: ColumnKind,
    #[serde(skip)]
    plan: Option<Plan>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    Full,
    LeaveOut(Layer),
    Alone(Layer),
    Baseline,
}

/// What one run showed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cell {
    Stopped,
    Through,
    Error(String),
}

#[derive(Debug, Serialize)]
pub struct Row {
    pub probe: &'static str,
    pub category: &'static str,
    pub what: &'static str,
    pub expect: Vec<Layer>,
    pub cells: Vec<Cell>,
    /// Layers that stop the probe on their own (`--alone`), the host's own stop excluded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped_by: Option<Vec<Layer>>,
    /// The one layer whose removal lets the probe through, when there is exactly one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub only: Option<Layer>,
    /// Layers of which removing any one lets the probe through: they stop it only together.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub needs_together: Vec<Layer>,
    /// The host stops it with every layer off.
    pub host_stops: bool,
}

#[derive(Debug, Serialize)]
pub struct Matrix {
    pub version: u32,
    pub profile: String,
    pub columns: Vec<Column>,
    pub rows: Vec<Row>,
    pub wall_ms: f64,
}

pub fn test(args: TestArgs) -> Result<i32, Error> {
    let started = Instant::now();
    let profile = profile::load(&args.profile)?;
    refuse_collisions(&profile)?;
    let host = Host::probe(HostNeeds {
        cgroups: profile.cgroups.is_some(),
    });
    let columns = columns(&profile, &host, &args)?;
    let probes: Vec<&'static Probe> = PROBES
        .iter()
        .filter(|p| {
            args.probes.is_empty() || args.probes.iter().any(|n| p.name.contains(n.as_str()))
        })
        .collect();
    if probes.is_empty() {
        return Err(Error::Usage(format!(
            "no probe matches {:?}; probes: {}",
            args.probes,
            PROBES.iter().map(|p| p.name).collect::<Vec<_>>().join(", ")
        )));
    }
    let session = Arc::new(
        Session::plant(&profile).map_err(|e| Error::Io(format!("planting the canaries: {e}")))?,
    );
    install_interrupt(session.clone());
    // Most runs wait (for a sleeper, a sibling, the probe's short attempt): twice the CPUs.
    let jobs = args.jobs.unwrap_or_else(|| {
        2 * std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .max(2)
    });
    let cells = run_all(&session, &columns, &probes, jobs);
    session.remove();
    if session.stopping.load(Ordering::SeqCst) {
        eprintln!("lasagna: test interrupted; every run ended and the canaries are removed");
        return Ok(130);
    }
    let rows = rows(&columns, &probes, cells);
    let matrix = Matrix {
        version: TEST_REPORT_VERSION,
        profile: profile.name.clone(),
        columns,
        rows,
        wall_ms: started.elapsed().as_secs_f64() * 1000.0,
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&matrix).expect("the matrix serializes")
        );
    } else {
        print!("{}", render(&matrix));
    }
    let failed = matrix.rows.iter().any(|r| r.cells[0] != Cell::Stopped);
    Ok(if failed { 1 } else { 0 })
}

/// The probe is bound at [`probe::PROBE_PATH`]: a profile that mounts there cannot be tested.
fn refuse_collisions(profile: &Profile) -> Result<(), Error> {
    if let Some(fs) = &profile.filesystem {
        for op in &fs.ops {
            let t = op.target().as_str();
            if t == probe::PROBE_DIR
                || t.starts_with(&format!("{}/", probe::PROBE_DIR))
                || probe::PROBE_DIR.starts_with(&format!("{t}/")) && t != "/"
            {
                return Err(Error::Usage(format!(
                    "profile {} mounts {t}, where lasagna test puts its probe ({}); move that mount",
                    profile.name,
                    probe::PROBE_DIR
                )));
            }
        }
    }
    Ok(())
}

fn plan_for(profile: &Profile, host: &Host, without: &[Layer]) -> Plan {
    plan::plan(
        profile,
        host,
        &Options {
            without: without.to_vec(),
            timeout: None,
            degrade_dependents: true,
        },
    )
}

fn columns(profile: &Profile, host: &Host, args: &TestArgs) -> Result<Vec<Column>, Error> {
    let full = plan_for(profile, host, &args.without);
    let refused: Vec<String> = full
        .refusals()
        .iter()
        .map(|l| format!("  {}: {}", l.layer, decision_reason(&l.decision)))
        .collect();
    if !refused.is_empty() {
        return Err(Error::Refused(refused));
    }
    let applied: Vec<Layer> = Layer::ALL
        .into_iter()
        .filter(|l| full.applies(*l))
        .collect();
    let column = |name: String, kind: ColumnKind, without: Vec<Layer>| {
        let p = plan_for(profile, host, &without);
        let degraded = Layer::ALL
            .into_iter()
            .filter(|l| !without.contains(l))
            .filter(|l| matches!(p.get(*l).decision, Decision::Degrade(_)))
            .filter(|l| matches!(full.get(*l).decision, Decision::Apply))
            .collect();
        let plan = if p.refusals().is_empty() {
            Some(p)
        } else {
            None
        };
        Column {
            name,
            without,
            degraded,
            kind,
            plan,
        }
    };
    let mut out = vec![column(
        "full".into(),
        ColumnKind::Full,
        args.without.clone(),
    )];
    if args.quick {
        return Ok(out);
    }
    for l in &applied {
        let mut w = args.without.clone();
        w.push(*l);
        out.push(column(
            format!("-{}", l.name()),
            ColumnKind::LeaveOut(*l),
            w,
        ));
    }
    if args.alone {
        for l in &applied {
            let w = Layer::ALL.into_iter().filter(|x| x != l).collect();
            out.push(column(
                format!("{} alone", l.name()),
                ColumnKind::Alone(*l),
                w,
            ));
        }
    }
    out.push(column(
        "none".into(),
        ColumnKind::Baseline,
        Layer::ALL.to_vec(),
    ));
    Ok(out)
}

fn decision_reason(d: &Decision) -> String {
    match d {
        Decision::Apply => "applied".into(),
        Decision::Degrade(r) | Decision::Skip(r) | Decision::Refuse(r) => r.clone(),
    }
}

// ---- the canaries ----------------------------------------------------------------------

/// What the harness planted for the whole session.
pub struct Session {
    dir: PathBuf,
    /// The profile every run uses: the tested one plus the probe's bind and its Landlock
    /// rule.
    profile_path: PathBuf,
    /// The probe binary, copied into the canary directory (readable by the payload's uid).
    probe_copy: PathBuf,
    secret: String,
    env_secret: String,
    hostname: String,
    /// Held open without close-on-exec, so every run inherits them (the leaked-fd probes).
    _leaked: Vec<OwnedFd>,
    /// Processes to end on Ctrl-C.
    children: Mutex<Vec<u32>>,
    stopping: AtomicBool,
    next_run: AtomicUsize,
}

fn token(tag: &str) -> String {
    format!("{tag}-{}", crate::procfs::random_hex(12))
}

fn chmod(path: &Path, mode: u32) -> std::io::Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

impl Session {
    fn plant(profile: &Profile) -> std::io::Result<Session> {
        // Not under /tmp: profiles grant the sandbox's own /tmp, which without the
        // filesystem layer is the host's.
        let base = [PathBuf::from("/var/tmp"), std::env::temp_dir()]
            .into_iter()
            .find(|d| d.is_dir())
            .unwrap_or_else(std::env::temp_dir);
        let dir = base.join(format!(
            "lasagna-test-{}-{}",
            std::process::id(),
            &token("d")[2..10]
        ));
        fs::create_dir(&dir)?;
        chmod(&dir, 0o755)?;
        let secret = token("secret");
        let secret_path = dir.join("secret");
        fs::write(&secret_path, &secret)?;
        chmod(&secret_path, 0o644)?;
        let probe_copy = dir.join("lasagna-probe");
        fs::copy(std::env::current_exe()?, &probe_copy)?;
        chmod(&probe_copy, 0o755)?;
        // `exec-host-file`: a script whose interpreter is the probe, as seen from inside
        // (the bind) and from the host (the copy, for runs without the filesystem layer).
        for (name, interp) in [
            ("exec-view", probe::PROBE_PATH.to_string()),
            ("exec-host", probe_copy.display().to_string()),
        ] {
            let p = dir.join(format!("{name}.sh"));
            fs::write(&p, format!("#!{interp} {}{secret}\n", probe::EXEC_PROOF))?;
            chmod(&p, 0o755)?;
        }
        let profile_path = dir.join("profile.yaml");
        fs::write(&profile_path, overlay(profile, &probe_copy))?;
        chmod(&profile_path, 0o644)?;
        let leaked = vec![
            nix::fcntl::open(
                &secret_path,
                nix::fcntl::OFlag::O_RDONLY,
                nix::sys::stat::Mode::empty(),
            )?,
            nix::fcntl::open(
                &dir,
                nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY,
                nix::sys::stat::Mode::empty(),
            )?,
        ];
        let hostname = nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(Session {
            dir,
            profile_path,
            probe_copy,
            secret,
            env_secret: token("env"),
            hostname,
            _leaked: leaked,
            children: Mutex::new(Vec::new()),
            stopping: AtomicBool::new(false),
            next_run: AtomicUsize::new(0),
        })
    }

    fn track(&self, pid: u32) {
        self.children.lock().expect("child list").push(pid);
    }

    fn untrack(&self, pid: u32) {
        self.children
            .lock()
            .expect("child list")
            .retain(|p| *p != pid);
    }

    /// Remove everything planted: the directory with the copies, scripts, sockets and
    /// per-run files.
    fn remove(&self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// The tested profile with the probe's bind (when it has a filesystem section) and exec
/// rights on the probe (when it has a Landlock section); nothing else changes.
fn overlay(profile: &Profile, probe_copy: &Path) -> String {
    let parent = match &profile.source {
        Source::Shipped(name) => name.to_string(),
        Source::File(path) => fs::canonicalize(path)
            .unwrap_or(path.clone())
            .display()
            .to_string(),
    };
    let q = |s: &str| serde_json::to_string(s).expect("a string serializes");
    let mut y = format!(
        "name: {}\nextends: {}\nlayers:\n",
        q(&profile.name),
        q(&parent)
    );
    if profile.filesystem.is_some() {
        y.push_str(&format!(
            "  filesystem:\n    mounts:\n      - ro-bind: {}\n        source: {}\n",
            q(probe::PROBE_PATH),
            q(&probe_copy.display().to_string())
        ));
    }
    if profile.landlock.is_some() {
        y.push_str(&format!(
            "  landlock:\n    rules:\n      - {{ path: {}, access: [exec], optional: true }}\n      - {{ path: {}, access: [exec], optional: true }}\n",
            q(probe::PROBE_PATH),
            q(&probe_copy.display().to_string())
        ));
    }
    if profile.filesystem.is_none() && profile.landlock.is_none() {
        y.push_str("  {}\n");
    }
    y
}

fn install_interrupt(session: Arc<Session>) {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        set.add(s);
    }
    // Blocked here, before any other thread exists, so only the waiting thread takes them;
    // the children start with an empty mask (std resets it).
    if set.thread_block().is_err() {
        return;
    }
    std::thread::spawn(move || {
        let Ok(sig) = set.wait() else { return };
        session.stopping.store(true, Ordering::SeqCst);
        eprintln!(
            "lasagna: test interrupted by {sig:?}: ending the runs and removing the canaries"
        );
        let pids = session
            .children
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default();
        for pid in &pids {
            let _ =
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(*pid as i32), Signal::SIGTERM);
        }
        let until = Instant::now() + Duration::from_secs(3);
        while Instant::now() < until
            && !session
                .children
                .lock()
                .map(|c| c.is_empty())
                .unwrap_or(true)
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        for pid in session
            .children
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default()
        {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
        // The workers see their runs end and return; the main thread removes the canaries
        // and exits 130. Should it be stuck, end here after a grace period.
        std::thread::sleep(Duration::from_secs(10));
        session.remove();
        std::process::exit(130);
    });
}

// ---- one run -----------------------------------------------------------------------------

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

fn run_all(
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

// ---- the matrix --------------------------------------------------------------------------

fn rows(columns: &[Column], probes: &[&'static Probe], cells: Vec<Vec<Cell>>) -> Vec<Row> {
    let alone_run = columns
        .iter()
        .any(|c| matches!(c.kind, ColumnKind::Alone(_)));
    probes
        .iter()
        .zip(cells)
        .map(|(p, cells)| {
            let host_stops = columns
                .iter()
                .zip(&cells)
                .any(|(c, cell)| c.kind == ColumnKind::Baseline && *cell == Cell::Stopped);
            let through_without: Vec<Layer> = columns
                .iter()
                .zip(&cells)
                .filter_map(|(c, cell)| match (c.kind, cell) {
                    (ColumnKind::LeaveOut(l), Cell::Through) => Some(l),
                    _ => None,
                })
                .collect();
            let only = (cells[0] == Cell::Stopped && through_without.len() == 1)
                .then(|| through_without[0]);
            let needs_together = if cells[0] == Cell::Stopped && through_without.len() > 1 {
                through_without.clone()
            } else {
                Vec::new()
            };
            let stopped_by = alone_run.then(|| {
                columns
                    .iter()
                    .zip(&cells)
                    .filter_map(|(c, cell)| match (c.kind, cell) {
                        (ColumnKind::Alone(l), Cell::Stopped) if !host_stops => Some(l),
                        _ => None,
                    })
                    .collect()
            });
            Row {
                probe: p.name,
                category: p.category,
                what: p.what,
                expect: p.expect.to_vec(),
                cells,
                stopped_by,
                only,
                needs_together,
                host_stops,
            }
        })
        .collect()
}

/// A probe stopped with every layer off: by lasagna itself (it always switches to an
/// unprivileged identity, closes inherited fds and starts a new session) or by the host.
const HOST_STOPS: &str = "no layer needed (stopped with every layer off: lasagna's own identity switch, fd closing and session, or the host)";

fn render(m: &Matrix) -> String {
    let mut out = format!(
        "lasagna test: profile {}\n",
        crate::text::escape(&m.profile)
    );
    let width = m
        .rows
        .iter()
        .map(|r| r.probe.len())
        .max()
        .unwrap_or(10)
        .max(10);
    let mut header = format!("  {:<width$}", "probe");
    for i in 0..m.columns.len() {
        header.push_str(&format!(" {:>2}", i + 1));
    }
    header.push_str("  stopped by");
    out.push_str(&header);
    out.push('\n');
    let mut category = "";
    for r in &m.rows {
        if r.category != category {
            category = r.category;
            out.push_str(&format!("  [{category}]\n"));
        }
        let mut line = format!("  {:<width$}", r.probe);
        for cell in &r.cells {
            line.push_str(match cell {
                Cell::Stopped => "  .",
                Cell::Through => "  X",
                Cell::Error(_) => "  E",
            });
        }
        let verdict = if r.cells[0] != Cell::Stopped {
            match &r.cells[0] {
                Cell::Error(e) => format!("ERROR: {e}"),
                _ => "THROUGH the full profile".into(),
            }
        } else if let Some(by) = &r.stopped_by {
            let names: Vec<&str> = by.iter().map(|l| l.name()).collect();
            match (r.host_stops, by.len()) {
                (true, _) => HOST_STOPS.into(),
                (false, 1) => format!("1: {} ONLY", names[0]),
                (false, n) => format!("{n}: {}", names.join(", ")),
            }
        } else if let Some(l) = r.only {
            format!("1: {} ONLY", l.name())
        } else if !r.needs_together.is_empty() {
            let names: Vec<&str> = r.needs_together.iter().map(|l| l.name()).collect();
            format!(
                "only together: removing any of {} lets it through",
                names.join(", ")
            )
        } else if r.host_stops {
            HOST_STOPS.into()
        } else {
            ">= 2 (no single removal lets it through)".into()
        };
        line.push_str("  ");
        line.push_str(&verdict);
        out.push_str(&line);
        out.push('\n');
    }
    out.push_str("\n  columns (. stopped, X through, E error):\n");
    for (i, c) in m.columns.iter().enumerate() {
        let mut desc = format!("  {:>2} {}", i + 1, c.name);
        if !c.degraded.is_empty() {
            let names: Vec<&str> = c.degraded.iter().map(|l| l.name()).collect();
            desc.push_str(&format!(" (degraded: {})", names.join(", ")));
        }
        if c.plan.is_none() {
            desc.push_str(" (refused on this host)");
        }
        out.push_str(&desc);
        out.push('\n');
    }
    let through = m
        .rows
        .iter()
        .filter(|r| r.cells[0] == Cell::Through)
        .count();
    let singles = m
        .rows
        .iter()
        .filter(|r| {
            r.only.is_some()
                || r.stopped_by
                    .as_ref()
                    .is_some_and(|b| b.len() == 1 && !r.host_stops)
        })
        .count();
    out.push_str(&format!(
        "\n  {} probes, {} through the full profile, {} stopped by one layer only; {:.1} s\n",
        m.rows.len(),
        through,
        singles,
        m.wall_ms / 1000.0
    ));
    out
}
