//! What the harness plants once for the whole battery: the canary directory with the
//! secret, the probe's copy and scripts, the overlay profile every run uses, the leaked
//! fds; and the Ctrl-C handler that ends the runs and removes it all.

use std::fs;
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::probe;
use crate::profile::{Profile, Source};

/// What the harness planted for the whole session.
pub struct Session {
    pub(super) dir: PathBuf,
    /// The profile every run uses: the tested one plus the probe's bind and its Landlock
    /// rule.
    pub(super) profile_path: PathBuf,
    /// The probe binary, copied into the canary directory (readable by the payload's uid).
    pub(super) probe_copy: PathBuf,
    pub(super) secret: String,
    pub(super) env_secret: String,
    pub(super) hostname: String,
    /// Held open without close-on-exec, so every run inherits them (the leaked-fd probes).
    _leaked: Vec<OwnedFd>,
    /// Processes to end on Ctrl-C.
    pub(super) children: Mutex<Vec<u32>>,
    pub(super) stopping: AtomicBool,
    pub(super) next_run: AtomicUsize,
}

pub(super) fn token(tag: &str) -> String {
    format!("{tag}-{}", crate::procfs::random_hex(12))
}

pub(super) fn chmod(path: &Path, mode: u32) -> std::io::Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

impl Session {
    pub(super) fn plant(profile: &Profile) -> std::io::Result<Session> {
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

    pub(super) fn track(&self, pid: u32) {
        self.children.lock().expect("child list").push(pid);
    }

    pub(super) fn untrack(&self, pid: u32) {
        self.children
            .lock()
            .expect("child list")
            .retain(|p| *p != pid);
    }

    /// Remove everything planted: the directory with the copies, scripts, sockets and
    /// per-run files.
    pub(super) fn remove(&self) {
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

pub(super) fn install_interrupt(session: Arc<Session>) {
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
