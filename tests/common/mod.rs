//! Shared helpers for the integration tests: run the real binary on the real kernel, as
//! root and as an unprivileged user created here, and skip loudly (a failure under
//! LASAGNA_TEST_STRICT=1) when the host cannot run a test.

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

pub const TEST_USER: &str = "lasagna-test";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum As {
    Root,
    User,
}

/// The launcher under test: the one cargo built, or `LASAGNA_TEST_BIN` (to show a test
/// fails against another build, e.g. one with a defence removed).
pub fn bin() -> String {
    std::env::var("LASAGNA_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_lasagna").to_string())
}

pub fn strict() -> bool {
    std::env::var("LASAGNA_TEST_STRICT").is_ok_and(|v| v == "1")
}

/// Skip with a reason; under LASAGNA_TEST_STRICT=1 a skip is a failure.
pub fn skip(test: &str, reason: &str) {
    if strict() {
        panic!("SKIP {test}: {reason} (LASAGNA_TEST_STRICT=1 makes a skip a failure)");
    }
    eprintln!("SKIP {test}: {reason}");
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// The unprivileged test user's uid and gid, created on first use.
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
            Err(e) if !is_root() => {
                // Already unprivileged: run as ourselves.
                let _ = e;
                true
            }
            Err(e) => {
                skip(test, &e);
                false
            }
        },
        _ => true,
    }
}

/// A command that runs `lasagna ARGS` as `who`.
pub fn command(who: As, args: &[&str]) -> Command {
    let mut cmd = if who == As::User && is_root() {
        let (uid, gid) = test_user().expect("test user");
        let mut c = Command::new("setpriv");
        c.arg(format!("--reuid={uid}"))
            .arg(format!("--regid={gid}"))
            .arg("--clear-groups")
            .arg("--")
            .arg(bin());
        c
    } else {
        Command::new(bin())
    };
    cmd.args(args).current_dir("/").stdin(Stdio::null());
    cmd
}

pub fn run(who: As, args: &[&str]) -> Output {
    command(who, args).output().expect("lasagna runs")
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

/// A scratch directory readable by the test user, removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("lasagna-{tag}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let _ = Command::new("chmod").arg("0755").arg(&dir).status();
        Scratch(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
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

/// Generate one test per identity: `name_as_root` and `name_as_user`.
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
