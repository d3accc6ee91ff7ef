//! The integration tests' one harness: run the real binary on the real kernel, as root and
//! as an unprivileged user created here, with a deadline on everything spawned; contrast a
//! run with a control run; skip loudly (a failure under LASAGNA_TEST_STRICT=1, see
//! `lasagna::testing`).

#![allow(dead_code)]

use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

#[allow(unused_imports)]
pub use lasagna::testing::{need, skip, strict, Feature};

pub const TEST_USER: &str = "lasagna-test";

/// How long any one spawned command may take before it is killed with its process group
/// and the test fails.
pub const DEADLINE: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum As {
    Root,
    User,
}

impl As {
    pub fn tag(self) -> &'static str {
        match self {
            As::Root => "root",
            As::User => "user",
        }
    }
}

/// The launcher under test: the one cargo built, or `LASAGNA_TEST_BIN` (to show a test
/// fails against another build, e.g. one with a defence removed).
pub fn bin() -> String {
    std::env::var("LASAGNA_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_lasagna").to_string())
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// The unprivileged test user's uid and gid, created on first use (`make test` removes it
/// at the end).
pub fn test_user() -> Result<(u32, u32), String> {
    static USER: OnceLock<Result<(u32, u32), String>> = OnceLock::new();
    USER.get_or_init(|| {
        if !is_root() {
            return Err("tests run unprivileged: cannot create the test user".into());
        }
        let lookup = || {
            let out = Command::new("id").args(["-u", TEST_USER]).output().ok()?;
            let uid: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
            let out = Command::new("id").args(["-g", TEST_USER]).output().ok()?;
            let gid: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
            Some((uid, gid))
        };
        if let Some(ids) = lookup() {
            return Ok(ids);
        }
        let status = Command::new("useradd")
            .args([
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                TEST_USER,
            ])
            .status();
        // Another test binary may have created it at the same time.
        lookup().ok_or_else(|| format!("cannot create user {TEST_USER}: useradd {status:?}"))
    })
    .clone()
}

/// Whether the test can run as `who`; skips (loudly) when not.
pub fn can_run(test: &str, who: As) -> bool {
    match who {
        As::Root if !is_root() => {
            skip(test, "needs root");
            false
        }
        As::User => match test_user() {
            Ok(_) => true,
            // Already unprivileged: run as ourselves.
            Err(_) if !is_root() => true,
            Err(e) => {
                skip(test, &e);
                false
            }
        },
        _ => true,
    }
}

/// `argv` as `who` (through setpriv for the test user), in a process group of its own so
/// that a deadline can end it with everything it started.
pub fn as_who(who: As, argv: &[&str]) -> Command {
    let mut cmd = if who == As::User && is_root() {
        let (uid, gid) = test_user().expect("test user");
        let mut c = Command::new("setpriv");
        c.arg(format!("--reuid={uid}"))
            .arg(format!("--regid={gid}"))
            .arg("--clear-groups")
            .arg("--")
            .args(argv);
        c
    } else {
        let mut c = Command::new(argv[0]);
        c.args(&argv[1..]);
        c
    };
    cmd.current_dir("/").stdin(Stdio::null()).process_group(0);
    cmd
}

/// A command that runs `lasagna ARGS` as `who`.
pub fn command(who: As, args: &[&str]) -> Command {
    let bin = bin();
    let mut argv = vec![bin.as_str()];
    argv.extend_from_slice(args);
    as_who(who, &argv)
}

/// A shell script as `who`, with lasagna as `$0`.
pub fn shell(who: As, script: &str) -> Command {
    let bin = bin();
    as_who(who, &["/bin/sh", "-c", script, &bin])
}

/// Run `lasagna ARGS` as `who` and collect its output, within [`DEADLINE`].
pub fn run(who: As, args: &[&str]) -> Output {
    output_within(command(who, args), DEADLINE)
}

/// Spawn `cmd` (stdout and stderr piped unless set) and collect its output; past `limit`
/// its whole process group is killed and the test fails.
pub fn output_within(mut cmd: Command, limit: Duration) -> Output {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = Spawned::new(&mut cmd);
    child.output_within(limit)
}

/// A spawned command that is killed, with its process group, when dropped while it runs
/// (a failing test leaves nothing behind).
pub struct Spawned {
    child: Option<Child>,
    pgid: i32,
}

impl Spawned {
    pub fn new(cmd: &mut Command) -> Spawned {
        let child = cmd.spawn().expect("the command starts");
        let pgid = child.id() as i32;
        Spawned {
            child: Some(child),
            pgid,
        }
    }

    pub fn id(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn child(&mut self) -> &mut Child {
        self.child.as_mut().expect("running")
    }

    fn kill_group(&self) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(self.pgid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }

    /// Wait at most `limit`; past it, kill the group and fail.
    pub fn wait_within(&mut self, limit: Duration) -> std::process::ExitStatus {
        let until = Instant::now() + limit;
        loop {
            if let Some(s) = self.child().try_wait().expect("try_wait") {
                return s;
            }
            if Instant::now() > until {
                self.kill_group();
                let _ = self.child().wait();
                panic!("still running after {limit:?}: killed");
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Collect the output (the streams must be piped), failing past `limit`.
    pub fn output_within(mut self, limit: Duration) -> Output {
        let child = self.child.take().expect("running");
        let pgid = self.pgid;
        let pid = child.id() as i32;
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let watchdog = std::thread::spawn(move || {
            if rx.recv_timeout(limit).is_err() {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pgid),
                    nix::sys::signal::Signal::SIGKILL,
                );
                return true;
            }
            false
        });
        let out = child.wait_with_output().expect("wait");
        let _ = tx.send(());
        let fired = watchdog.join().expect("watchdog");
        let _ = pid;
        assert!(
            !fired,
            "still running after {limit:?}: killed\n--- stdout\n{}\n--- stderr\n{}",
            stdout(&out),
            stderr(&out)
        );
        out
    }
}

impl From<Child> for Spawned {
    /// A child spawned elsewhere (in a process group of its own, like every command here).
    fn from(child: Child) -> Spawned {
        let pgid = child.id() as i32;
        Spawned {
            child: Some(child),
            pgid,
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            if c.try_wait().ok().flatten().is_none() {
                self.kill_group();
                let _ = c.wait();
            }
        }
    }
}

/// Spawn `lasagna ARGS` as `who` with stdout piped (stderr piped too).
pub fn spawn(who: As, args: &[&str]) -> Spawned {
    let mut cmd = command(who, args);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    Spawned::new(&mut cmd)
}

/// Wait until `cond` holds, at most `limit`; `what` names it in the failure.
pub fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let until = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Assert the exit code, showing both streams when it differs.
#[track_caller]
pub fn assert_code(o: &Output, code: i32) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "exit status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status,
        stdout(o),
        stderr(o)
    );
}

/// One action, run with a layer and again with the layer removed (or one of its settings
/// flipped): `flip` is what the control run adds to the arguments (`--without landlock`,
/// another profile). The test asserts the difference: the action is denied in the first
/// and succeeds in the second, so the denial is the layer's.
pub struct Contrast {
    pub with: Output,
    pub without: Output,
}

impl Contrast {
    /// `lasagna run ARGS -- CMD` and `lasagna run ARGS FLIP -- CMD`, as `who`.
    pub fn run(who: As, args: &[&str], flip: &[&str], cmd: &[&str]) -> Contrast {
        let mut with = vec!["run"];
        with.extend_from_slice(args);
        let mut without = with.clone();
        without.extend_from_slice(flip);
        with.push("--");
        with.extend_from_slice(cmd);
        without.push("--");
        without.extend_from_slice(cmd);
        Contrast {
            with: run(who, &with),
            without: run(who, &without),
        }
    }

    /// `lasagna run WITH -- CMD` and `lasagna run WITHOUT -- CMD` (two profiles, say).
    pub fn of(who: As, with: &[&str], without: &[&str], cmd: &[&str]) -> Contrast {
        let build = |args: &[&str]| {
            let mut v = vec!["run"];
            v.extend_from_slice(args);
            v.push("--");
            v.extend_from_slice(cmd);
            run(who, &v)
        };
        Contrast {
            with: build(with),
            without: build(without),
        }
    }

    /// Both runs exit 0 and print exactly `denied` and `allowed`.
    #[track_caller]
    pub fn prints(&self, denied: &str, allowed: &str) {
        assert_code(&self.with, 0);
        assert_code(&self.without, 0);
        assert_eq!(stdout(&self.with), denied, "with the layer");
        assert_eq!(stdout(&self.without), allowed, "control run, without it");
        assert_ne!(denied, allowed, "a contrast needs a difference");
    }
}

/// A string unique to this test run, identity and call: a marker one variant cannot see
/// in the other's payload.
pub fn marker(tag: &str, who: As) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{tag}-{}-{}-{}",
        who.tag(),
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// Host pids of processes whose command line contains `needle`, lasagna's own (whose
/// arguments hold the payload's command line) left out.
pub fn processes_with(needle: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if pid == std::process::id() as i32 {
            continue;
        }
        let raw = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let argv0 = raw.split(|b| *b == 0).next().unwrap_or_default();
        let name = Path::new(std::ffi::OsStr::from_bytes(argv0)).file_name();
        if name.is_some_and(|n| n == "lasagna" || n == "setpriv") {
            continue;
        }
        if String::from_utf8_lossy(&raw)
            .replace('\0', " ")
            .contains(needle)
        {
            out.push(pid);
        }
    }
    out
}

/// The first child of `pid`, waiting up to 5 s for it.
pub fn first_child(pid: u32) -> i32 {
    let mut found = 0;
    wait_until(&format!("a child of {pid}"), Duration::from_secs(5), || {
        let children =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        found = children
            .split_whitespace()
            .next()
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        found > 0
    });
    found
}

/// Wait until the supervisor `pid` has observed its payload: it holds a pidfd of a process
/// that is not its direct child (the payload, found after execve) and is blocked in poll
/// again. Then the payload may end without the report losing what the kernel showed.
pub fn wait_observed(pid: u32) {
    let init = first_child(pid);
    wait_until(
        "the supervisor to observe its payload",
        Duration::from_secs(10),
        || {
            let holds_payload = std::fs::read_dir(format!("/proc/{pid}/fdinfo"))
                .into_iter()
                .flatten()
                .flatten()
                .any(|e| {
                    let info = std::fs::read_to_string(e.path()).unwrap_or_default();
                    info.lines()
                        .find_map(|l| l.strip_prefix("Pid:"))
                        .and_then(|p| p.trim().parse::<i32>().ok())
                        .is_some_and(|p| p > 0 && p != init)
                });
            // Blocked in a syscall: /proc/PID/syscall starts with the number (poll, ppoll).
            let blocked = std::fs::read_to_string(format!("/proc/{pid}/syscall"))
                .ok()
                .and_then(|s| {
                    s.split_whitespace()
                        .next()
                        .and_then(|n| n.parse::<i64>().ok())
                })
                .is_some_and(|n| POLL_SYSCALLS.contains(&n));
            holds_payload && blocked
        },
    );
}

#[cfg(target_arch = "x86_64")]
const POLL_SYSCALLS: &[i64] = &[7, 271];
#[cfg(target_arch = "aarch64")]
const POLL_SYSCALLS: &[i64] = &[73];

/// The report entry of `layer` in a JSON report.
pub fn layer_of<'a>(report: &'a serde_json::Value, layer: &str) -> &'a serde_json::Value {
    report["layers"]
        .as_array()
        .expect("a report has layers")
        .iter()
        .find(|l| l["layer"] == layer)
        .unwrap_or_else(|| panic!("no layer {layer} in {report:#}"))
}

/// A python harness gives `argv` a pty as its controlling terminal, runs it, and prints
/// `<exit code> <its stdout> | pending: <what reached the terminal's input>`.
pub fn on_a_pty(argv: &[&str]) -> String {
    let harness = r#"
import fcntl, json, os, pty, subprocess, sys, termios
argv = json.loads(sys.argv[1])
master, slave = pty.openpty()
def ctty():
    os.setsid()
    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
p = subprocess.run(argv, stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                   preexec_fn=ctty, cwd="/", timeout=60)
os.set_blocking(master, False)
try:
    pending = os.read(master, 100)
except OSError:
    pending = b""
print(p.returncode, p.stdout.decode().strip(), "| pending:", pending)
"#;
    let mut cmd = Command::new("python3");
    cmd.arg("-c")
        .arg(harness)
        .arg(serde_json::to_string(argv).unwrap());
    let o = output_within(cmd, DEADLINE);
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o)
}

/// A scratch directory readable by the test user, removed on drop (also when a test fails:
/// the drop runs while the panic unwinds).
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("lasagna-{tag}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let _ = Command::new("chmod").arg("0755").arg(&dir).status();
        Scratch(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// A path inside a sticky world-writable directory here, for a file the test user
    /// creates (a report).
    pub fn for_anyone(&self, name: &str) -> String {
        let dir = self.0.join("anyone");
        std::fs::create_dir_all(&dir).unwrap();
        let _ = Command::new("chmod").arg("1777").arg(&dir).status();
        dir.join(name).to_string_lossy().into_owned()
    }

    /// Write a file (world-readable) and return its path as a string.
    pub fn write(&self, name: &str, content: &str) -> String {
        let p = self.0.join(name);
        let mut f = std::fs::File::create(&p).unwrap();
        f.write_all(content.as_bytes()).unwrap();
        let _ = Command::new("chmod").arg("0644").arg(&p).status();
        p.to_string_lossy().into_owned()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Generate one test per identity: `name::as_root` and `name::as_user`.
#[macro_export]
macro_rules! both {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            #[test]
            fn as_root() {
                if can_run(concat!(stringify!($name), "::as_root"), As::Root) {
                    ($body)(As::Root)
                }
            }
            #[test]
            fn as_user() {
                if can_run(concat!(stringify!($name), "::as_user"), As::User) {
                    ($body)(As::User)
                }
            }
        }
    };
}

/// An HTTP server on the host's 127.0.0.1 (a random port) answering `body PORT` to every
/// request, for at most 32 connections (each bounded in time).
pub fn http_server() -> u16 {
    use std::io::Read;
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming().take(32) {
            let Ok(mut s) = s else { continue };
            let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let body = format!("body {port}\n");
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}
