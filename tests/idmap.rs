//! Idmapped binds as root: a writable bind of the caller's own directory is written as its
//! owner while the payload stays an unprivileged host uid, and none of the ways a payload
//! could turn the owner's ids into host privilege through it works (setuid and setgid
//! bits, file capabilities, device nodes, hardlinks to files outside, other users' files).
//! Where the other layers cannot close those, or the filesystem cannot be idmapped, the
//! bind is plain and the run says so.

mod common;

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::process::Command;

use common::*;

/// A directory for the test owned by `who`'s host ids (root's for As::Root), mode 0755.
fn own_dir(tag: &str, who: As) -> Scratch {
    let dir = Scratch::new(tag);
    let d = dir.path().join("proj");
    std::fs::create_dir(&d).unwrap();
    if who == As::User {
        let (uid, gid) = test_user().unwrap();
        std::os::unix::fs::chown(&d, Some(uid), Some(gid)).unwrap();
    }
    dir
}

/// `lasagna run ARGS -- sh -c SCRIPT` as `who`, in `cwd`.
fn run_in(who: As, cwd: &Path, args: &[&str], script: &str) -> std::process::Output {
    let mut all: Vec<&str> = vec!["run"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--", "/bin/sh", "-c", script]);
    let mut cmd = command(who, &all);
    cmd.current_dir(cwd);
    output_within(cmd, DEADLINE)
}

fn owner(p: &Path) -> (u32, u32) {
    let m = std::fs::symlink_metadata(p).unwrap();
    (m.uid(), m.gid())
}

both!(
    a_writable_bind_of_the_callers_directory_is_written_as_its_owner,
    |who| {
        let dir = own_dir("idmap-own", who);
        let proj = dir.path().join("proj");
        let expected = owner(&proj);
        // A second, world-writable directory bound with `idmap: false`: what the payload makes
        // there shows its host uid, which stays unprivileged.
        let open = dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        let _ = Command::new("chmod").arg("1777").arg(&open).status();
        let profile = dir.write(
        "p.yaml",
        &format!(
            "extends: strict\nlayers:\n  filesystem:\n    mounts:\n      - bind: /open\n        source: {}\n        idmap: false\n        landlock: [read, write]\n",
            open.display()
        ),
    );
        let o = run_in(
        who,
        &proj,
        &["-v", "-p", &profile, "--bind-cwd"],
        "echo hi > out.txt && mkdir sub && echo x > sub/f && echo y > /open/plain && echo wrote",
    );
        assert_code(&o, 0);
        assert_eq!(stdout(&o), "wrote\n", "{}", stderr(&o));
        for p in ["out.txt", "sub", "sub/f"] {
            assert_eq!(owner(&proj.join(p)), expected, "{p} on the host");
        }
        let plain = owner(&open.join("plain"));
        if who == As::Root {
            // The payload is host uid 65534 everywhere but on the idmapped bind.
            assert_eq!(plain, (65534, 65534));
            assert!(stderr(&o).contains("idmapped: host"), "{}", stderr(&o));
        } else {
            // Unprivileged, the payload is the caller: nothing to map.
            assert_eq!(plain, test_user().unwrap());
            assert!(!stderr(&o).contains("idmapped"), "{}", stderr(&o));
        }
        // Control: the same directory bound with `idmap: false`; as root the payload's host
        // uid cannot write root's directory.
        let plain_bind = dir.write(
        "plain.yaml",
        &format!(
            "extends: strict\nlayers:\n  filesystem:\n    mounts:\n      - bind: {p}\n        idmap: false\n        landlock: [read, write]\n  process:\n    cwd: {p}\n",
            p = proj.display()
        ),
    );
        let o = run_in(
            who,
            &proj,
            &["-p", &plain_bind],
            "echo hi > out2.txt && echo wrote",
        );
        if who == As::Root {
            assert!(stderr(&o).contains("Permission denied"), "{}", stderr(&o));
            assert!(!proj.join("out2.txt").exists());
        } else {
            assert_eq!(stdout(&o), "wrote\n", "{}", stderr(&o));
        }
    }
);

#[test]
fn no_way_through_an_idmapped_bind_leads_to_host_privilege() {
    if !can_run(
        "no_way_through_an_idmapped_bind_leads_to_host_privilege",
        As::Root,
    ) {
        return;
    }
    let dir = own_dir("idmap-escape", As::Root);
    let proj = dir.path().join("proj");
    // A file of another host user inside root's directory stays that user's.
    let (uid, gid) = test_user().unwrap();
    let theirs = proj.join("theirs");
    std::fs::write(&theirs, "theirs\n").unwrap();
    std::os::unix::fs::chown(&theirs, Some(uid), Some(gid)).unwrap();
    let _ = Command::new("chmod").arg("0644").arg(&theirs).status();
    std::fs::write(proj.join("mine"), "mine\n").unwrap();
    let script = r#"
say() { if "$@" 2>/dev/null; then echo "$1 ok"; else echo "$1 refused"; fi; }
touch f && chmod 0700 f && echo chmod-plain ok
say chmod 4755 f
mkdir d && say chmod 2755 d
python3 -c 'import os; os.close(os.open("s", os.O_CREAT | os.O_WRONLY, 0o4755))' 2>/dev/null && echo create-setuid ok || echo create-setuid refused
say mknod n c 1 3
say mkfifo p
python3 -c 'import os; os.setxattr("f", "security.capability", bytes([0,0,0,2, 0,0x20,0,0, 0,0,0,0, 0,0,0,0, 0,0,0,0]))' 2>/dev/null && echo fcaps ok || echo fcaps refused
python3 -c 'import os; os.setxattr("f", "user.note", b"x")' 2>/dev/null && echo user-xattr ok || echo user-xattr refused
say ln /etc/passwd hl-outside
say ln mine hl-inside
(echo more >> theirs) 2>/dev/null && echo write-theirs ok || echo write-theirs refused
(echo more >> mine) 2>/dev/null && echo write-mine ok || echo write-mine refused
"#;
    let o = run_in(As::Root, &proj, &["-p", "strict", "--bind-cwd"], script);
    assert_code(&o, 0);
    let out = stdout(&o);
    for line in [
        "chmod-plain ok",
        "chmod refused",
        "create-setuid refused",
        "mknod refused",
        "mkfifo ok",
        "fcaps refused",
        "user-xattr ok",
        "write-theirs refused",
        "write-mine ok",
    ] {
        assert!(
            out.lines().any(|l| l == line),
            "{line:?} in:\n{out}{}",
            stderr(&o)
        );
    }
    // `ln` is the first word of both hardlink lines.
    let lns: Vec<&str> = out.lines().filter(|l| l.starts_with("ln ")).collect();
    assert_eq!(lns, ["ln refused", "ln ok"], "{out}");
    // What the host sees: no setuid or setgid bit, no device node, no file capability, and
    // the controls took effect.
    let mode = |p: &str| std::fs::symlink_metadata(proj.join(p)).unwrap().mode();
    assert_eq!(mode("f") & 0o7777, 0o700);
    assert_eq!(mode("d") & 0o7000, 0);
    assert!(!proj.join("s").exists() || mode("s") & 0o6000 == 0);
    assert!(!proj.join("n").exists());
    assert!(std::fs::symlink_metadata(proj.join("p"))
        .unwrap()
        .file_type()
        .is_fifo());
    assert_eq!(owner(&proj.join("p")), (0, 0));
    let caps = Command::new("getfattr")
        .args(["-n", "security.capability"])
        .arg(proj.join("f"))
        .output();
    if let Ok(caps) = caps {
        assert!(!caps.status.success(), "a file capability on the host");
    }
    assert!(!proj.join("hl-outside").exists());
    assert_eq!(std::fs::metadata(proj.join("mine")).unwrap().nlink(), 2);
    assert_eq!(std::fs::read_to_string(&theirs).unwrap(), "theirs\n");
}

#[test]
fn a_writable_bind_stays_plain_where_the_other_layers_cannot_make_idmap_safe() {
    if !can_run(
        "a_writable_bind_stays_plain_where_the_other_layers_cannot_make_idmap_safe",
        As::Root,
    ) {
        return;
    }
    let dir = own_dir("idmap-unsafe", As::Root);
    let proj = dir.path().join("proj");
    let lifted = dir.write(
        "lifted.yaml",
        "extends: strict\nlayers:\n  seccomp:\n    allow-dangerous: [setuid-files]\n",
    );
    let setfcap = dir.write(
        "setfcap.yaml",
        "extends: strict\nlayers:\n  capabilities:\n    keep: [CAP_SETFCAP]\n",
    );
    for (args, why) in [
        (
            vec!["-v", "-p", "strict", "--without", "seccomp"],
            "setuid-files edge",
        ),
        (vec!["-v", "-p", lifted.as_str()], "setuid-files edge"),
        (vec!["-v", "-p", setfcap.as_str()], "CAP_SETFCAP"),
    ] {
        let mut all = args.clone();
        all.push("--bind-cwd");
        let o = run_in(As::Root, &proj, &all, "echo hi > out.txt && echo wrote");
        let err = stderr(&o);
        assert!(
            err.contains("not idmapped") && err.contains(why),
            "{args:?}: {err}"
        );
        assert!(err.contains("Permission denied"), "{args:?}: {err}");
        assert!(!proj.join("out.txt").exists(), "{args:?}");
    }
    // Control: the shipped strict idmaps the same bind.
    let o = run_in(
        As::Root,
        &proj,
        &["-p", "strict", "--bind-cwd"],
        "echo hi > out.txt && echo wrote",
    );
    assert_eq!(stdout(&o), "wrote\n", "{}", stderr(&o));
}

#[test]
fn a_filesystem_that_cannot_be_idmapped_is_bound_plain_with_a_warning() {
    if !can_run(
        "a_filesystem_that_cannot_be_idmapped_is_bound_plain_with_a_warning",
        As::Root,
    ) {
        return;
    }
    // ramfs cannot be idmapped, tmpfs can: each mounted in a mount namespace of the test's
    // own, which lasagna runs in.
    let dir = Scratch::new("idmap-fs");
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let script = |fstype: &str| {
        format!(
            "mount --make-rprivate / && mount -t {fstype} -o mode=0755 none {m} && cd {m} && exec {bin} run -p strict --bind-cwd -- /bin/sh -c 'echo hi > out.txt && echo wrote'",
            m = mnt.display(),
            bin = bin()
        )
    };
    let ramfs = output_within(
        {
            let mut c = Command::new("unshare");
            c.args(["-m", "/bin/sh", "-c", &script("ramfs")]);
            c
        },
        DEADLINE,
    );
    let err = stderr(&ramfs);
    assert!(
        err.contains("is not idmapped: its filesystem") && err.contains("cannot be"),
        "{err}"
    );
    assert!(err.contains("Permission denied"), "{err}");
    let tmpfs = output_within(
        {
            let mut c = Command::new("unshare");
            c.args(["-m", "/bin/sh", "-c", &script("tmpfs")]);
            c
        },
        DEADLINE,
    );
    assert_eq!(stdout(&tmpfs), "wrote\n", "{}", stderr(&tmpfs));
    assert!(
        !stderr(&tmpfs).contains("not idmapped"),
        "{}",
        stderr(&tmpfs)
    );
}

both!(
    a_read_only_bind_of_the_working_directory_is_the_payloads_own,
    |who| {
        let dir = own_dir("idmap-ro", who);
        let proj = dir.path().join("proj");
        // Inside, the directory is owned by the payload's own uid (what git's ownership check
        // wants), and it stays read-only.
        let o = run_in(
            who,
            &proj,
            &["-p", "strict", "--ro-bind-cwd"],
            "stat -c %u . && id -u && (touch x 2>&1 || true)",
        );
        assert_code(&o, 0);
        let out = stdout(&o);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], lines[1], "{out}");
        assert!(out.contains("Read-only file system"), "{out}");
        // Control: the same directory bound read-only at another path by --ro-bind, which is
        // not idmapped: as root its owner is not the payload.
        let spec = format!("{}:/data", proj.display());
        let o = run_in(
            who,
            &proj,
            &["-p", "strict", "--ro-bind", &spec],
            "stat -c %u /data && id -u",
        );
        let out = stdout(&o);
        let lines: Vec<&str> = out.lines().collect();
        if who == As::Root {
            assert_ne!(lines[0], lines[1], "{out}");
        } else {
            assert_eq!(lines[0], lines[1], "{out}");
        }
    }
);

// As root the supervisor opens every bind source itself (the caller chose it), so a source
// below a directory only root may enter binds as `check` says; as a normal user the walk
// meets the same wall in `check` and in `run`.
both!(
    a_bind_below_a_directory_only_root_may_enter_runs_as_check_says,
    |who| {
        let dir = Scratch::new("idmap-private");
        let private = dir.path().join("private");
        std::fs::create_dir(&private).unwrap();
        std::fs::write(private.join("data"), "private data\n").unwrap();
        let _ = Command::new("chmod")
            .arg("0644")
            .arg(private.join("data"))
            .status();
        let _ = Command::new("chmod").arg("0700").arg(&private).status();
        let profile = dir.write(
        "p.yaml",
        &format!(
            "extends: strict\nlayers:\n  filesystem:\n    mounts:\n      - ro-bind: /data\n        source: {}/data\n        landlock: [read]\n",
            private.display()
        ),
    );
        let check = run(who, &["check", &profile]);
        let o = run(who, &["run", "-p", &profile, "--", "/bin/cat", "/data"]);
        if who == As::Root {
            assert_code(&check, 0);
            assert_code(&o, 0);
            assert_eq!(stdout(&o), "private data\n", "{}", stderr(&o));
        } else {
            assert_ne!(check.status.code(), Some(0), "{}", stdout(&check));
            let said = format!("{}{}", stdout(&check), stderr(&check));
            assert!(said.contains("Permission denied"), "{said}");
            assert_ne!(o.status.code(), Some(0));
            assert!(stderr(&o).contains("Permission denied"), "{}", stderr(&o));
        }
    }
);
