//! Host paths by descriptor: what a payload (or another user) plants in a bound host
//! directory cannot redirect what lasagna does in the next run. Each test reproduces one
//! attack as it was found, with a run that shows the attack's first half succeeding.

mod common;
use common::*;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// A directory the payload may write, whatever its host uid (65534 as root, the test user
/// otherwise). Outside the scratch root's 0755, so profiles next to it stay root-only.
fn shared_dir(dir: &Scratch, name: &str) -> PathBuf {
    let p = dir.path().join(name);
    std::fs::create_dir_all(&p).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o777)).unwrap();
    p
}

fn yaml_profile(dir: &Scratch, name: &str, layers: &str) -> String {
    dir.write(name, &format!("extends: strict\nlayers:\n{layers}"))
}

fn sh_in(who: As, profile: &str, extra: &[&str], script: &str) -> std::process::Output {
    let mut args = vec!["run", "-p", profile];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--", "/bin/sh", "-c", script]);
    run(who, &args)
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// The file a planted link points at: owned by root 0600 as root, by the test user when
/// the run is the user's (the rootless payload runs as that user on the host).
fn victim_file(dir: &Scratch, who: As, name: &str) -> PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, "precious\n").unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    if who == As::User {
        let (uid, gid) = test_user().unwrap();
        std::os::unix::fs::chown(&p, Some(uid), Some(gid)).unwrap();
        std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
    }
    p
}

// ---- 1. the report ------------------------------------------------------------------------

both!(
    the_report_is_never_written_through_a_planted_symlink,
    |who| {
        let dir = Scratch::new("report-link");
        let out = shared_dir(&dir, "out");
        let victim = victim_file(&dir, who, "victim");
        let profile = yaml_profile(
        &dir,
        "p.yaml",
        &format!("  filesystem:\n    mounts:\n      - bind: /out\n        source: {}\n  landlock:\n    write: [/out]\n", out.display()),
    );
        let report = out.join("report.json");
        let report_s = report.to_str().unwrap();
        // Run 1: the payload swaps the report's path for a link to the victim. The report was
        // opened before it ran, so it lands in the file lasagna opened, not in the victim.
        let o = sh_in(
            who,
            &profile,
            &["--report", report_s],
            &format!(
                "ln -sf {} /out/report.json && echo planted",
                victim.display()
            ),
        );
        assert_code(&o, 0);
        assert_eq!(stdout(&o), "planted\n", "the payload could plant the link");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
        assert!(std::fs::symlink_metadata(&report)
            .unwrap()
            .file_type()
            .is_symlink());
        // Run 2: the link is there now; the run is refused before anything runs.
        let marker = out.join("ran");
        let o = sh_in(who, &profile, &["--report", report_s], "touch /out/ran");
        assert_code(&o, 125);
        assert!(stderr(&o).contains("symlink"), "{}", stderr(&o));
        assert!(!marker.exists(), "the payload ran");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    }
);

both!(
    a_report_that_cannot_be_opened_refuses_the_run_first,
    |who| {
        let dir = Scratch::new("report-open");
        let out = shared_dir(&dir, "out");
        let marker = out.join("ran");
        let o = run(
            who,
            &[
                "run",
                "--report",
                "/nonexistent-dir/report.json",
                "--",
                "/bin/true",
            ],
        );
        assert_code(&o, 125);
        assert!(
            stderr(&o).contains("cannot open the report file"),
            "{}",
            stderr(&o)
        );
        // A new report file is the caller's, mode 0600.
        let report = out.join("new.json");
        let o = run(
            who,
            &[
                "run",
                "--report",
                report.to_str().unwrap(),
                "--",
                "/bin/sh",
                "-c",
                "exit 3",
            ],
        );
        assert_code(&o, 3);
        let meta = std::fs::metadata(&report).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o600);
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
        assert_eq!(json["exit_code"], 3);
        // A file of someone else's is not written.
        let foreign = out.join("foreign.json");
        std::fs::write(&foreign, "theirs").unwrap();
        std::fs::set_permissions(&foreign, std::fs::Permissions::from_mode(0o666)).unwrap();
        let other = if who == As::Root { 65534 } else { 0 };
        std::os::unix::fs::chown(&foreign, Some(other), Some(other)).unwrap();
        let o = run(
            who,
            &[
                "run",
                "--report",
                foreign.to_str().unwrap(),
                "--",
                "/bin/sh",
                "-c",
                &format!("touch {}", marker.display()),
            ],
        );
        assert_code(&o, 125);
        assert!(stderr(&o).contains("belongs to uid"), "{}", stderr(&o));
        assert!(!marker.exists());
        assert_eq!(std::fs::read_to_string(&foreign).unwrap(), "theirs");
    }
);

both!(
    report_fd_takes_a_descriptor_and_a_failed_write_keeps_the_status,
    |who| {
        let dir = Scratch::new("report-fd");
        let out = shared_dir(&dir, "out");
        let file = out.join("r.json");
        std::fs::write(&file, "").unwrap();
        if who == As::User {
            let (uid, gid) = test_user().unwrap();
            std::os::unix::fs::chown(&file, Some(uid), Some(gid)).unwrap();
        }
        // The caller opens fd 3; the report arrives there; the sandbox does not see fd 3.
        let script = format!(
        "exec \"$0\" run --report-fd 3 -- /bin/sh -c '[ -e /proc/self/fd/3 ] && echo LEAKED; exit 4' 3>{}",
        file.display()
    );
        let o = shell_as(who, &script);
        assert_code(&o, 4);
        assert!(!stdout(&o).contains("LEAKED"));
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        assert_eq!(json["exit_code"], 4);
        // A descriptor whose reader is gone: the write fails after the payload ran, and the
        // payload's status stands, with a warning.
        let o = shell_as(
        who,
        "{ \"$0\" run --report-fd 1 -- /bin/sh -c 'exec >/dev/null; sleep 0.3; exit 5'; echo \"rc=$?\" >&2; } | true",
    );
        let err = stderr(&o);
        assert!(err.contains("rc=5"), "{err}");
        assert!(err.contains("warning: cannot write the report"), "{err}");
        let o = shell_as(who, "\"$0\" run --report-fd 7 -- /bin/true; echo rc=$?");
        assert!(stdout(&o).contains("rc=125"), "{}", stdout(&o));
        assert!(stderr(&o).contains("--report-fd 7"), "{}", stderr(&o));
    }
);

/// Run a shell script with lasagna as `$0`, as `who`, within the deadline.
fn shell_as(who: As, script: &str) -> std::process::Output {
    output_within(shell(who, script), DEADLINE)
}

// ---- 2. entries created inside a bound directory --------------------------------------------

both!(setup_never_creates_through_a_planted_link, |who| {
    let dir = Scratch::new("create-link");
    let data = shared_dir(&dir, "data");
    let victim = shared_dir(&dir, "victim");
    let bind = format!(
        "  filesystem:\n    mounts:\n      - bind: /data\n        source: {}\n",
        data.display()
    );
    let plain = yaml_profile(
        &dir,
        "plain.yaml",
        &format!("{bind}  landlock:\n    write: [/data]\n"),
    );
    let entries_profile = yaml_profile(
        &dir,
        "entries.yaml",
        &format!(
            "{bind}      - dir: /data/sub/cache\n      - symlink: /data/sub/lnk\n        to: /tmp\n      - file: /data/sub/cfg/app.conf\n        content: \"x\\n\"\n  landlock:\n    write: [/data]\n"
        ),
    );
    // Control: on a fresh directory the entries are made, and gone after the run.
    let o = sh_in(
        who,
        &entries_profile,
        &[],
        "test -d /data/sub/cache && test -L /data/sub/lnk && cat /data/sub/cfg/app.conf",
    );
    assert_code(&o, 0);
    assert_eq!(stdout(&o), "x\n");
    assert_eq!(
        entries(&data),
        Vec::<String>::new(),
        "nothing stays in the host directory"
    );
    // Run 1: the payload replaces /data/sub with a link to another host directory, once
    // absolute (as the child's staging view would resolve it) and once relative.
    for link in [
        format!("/oldroot{}", victim.display()),
        "../victim".to_string(),
    ] {
        let o = sh_in(
            who,
            &plain,
            &[],
            &format!("ln -s {link} /data/sub && echo planted"),
        );
        assert_code(&o, 0);
        assert_eq!(stdout(&o), "planted\n");
        // Run 2: refused, and nothing appears in the victim directory.
        let o = sh_in(who, &entries_profile, &[], "echo RAN");
        assert_code(&o, 125);
        assert!(!stdout(&o).contains("RAN"));
        let err = stderr(&o);
        assert!(
            err.contains("/data/sub") && err.contains("symlink"),
            "{err}"
        );
        assert_eq!(
            entries(&victim),
            Vec::<String>::new(),
            "{link}: created through the link"
        );
        std::fs::remove_file(data.join("sub")).unwrap();
    }
});

// ---- 3. Landlock rule paths -------------------------------------------------------------

both!(landlock_rules_are_not_moved_by_a_planted_link, |who| {
    let dir = Scratch::new("rule-link");
    let data = shared_dir(&dir, "data");
    std::fs::create_dir(data.join("ref")).unwrap();
    std::fs::set_permissions(data.join("ref"), std::fs::Permissions::from_mode(0o777)).unwrap();
    let secret = dir.path().join("secret");
    std::fs::create_dir(&secret).unwrap();
    std::fs::write(secret.join("file"), "SECRET\n").unwrap();
    std::fs::set_permissions(secret.join("file"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let mounts = format!(
        "  filesystem:\n    mounts:\n      - bind: /data\n        source: {}\n      - ro-bind: /secret\n        source: {}\n",
        data.display(),
        secret.display()
    );
    let profile = yaml_profile(
        &dir,
        "p.yaml",
        &format!("{mounts}  landlock:\n    write: [/data]\n    read: [/data/ref]\n"),
    );
    // Control: with a rule on /secret itself the file is readable, so the denial below is
    // Landlock's.
    let granted = yaml_profile(
        &dir,
        "granted.yaml",
        &format!("{mounts}  landlock:\n    read: [/secret]\n"),
    );
    let o = sh_in(who, &granted, &[], "cat /secret/file");
    assert_code(&o, 0);
    assert_eq!(stdout(&o), "SECRET\n");
    // Run 1: denied, and the payload moves the rule's path onto /secret.
    let o = sh_in(
        who,
        &profile,
        &[],
        "cat /secret/file 2>/dev/null || echo denied; rmdir /data/ref && ln -s /secret /data/ref && echo planted",
    );
    assert_code(&o, 0);
    assert_eq!(stdout(&o), "denied\nplanted\n");
    // Run 2: the rule is refused, not applied to what the link points at.
    let o = sh_in(who, &profile, &[], "cat /secret/file");
    assert_code(&o, 125);
    assert!(!stdout(&o).contains("SECRET"));
    let err = stderr(&o);
    assert!(
        err.contains("landlock") && err.contains("/data/ref"),
        "{err}"
    );
    assert!(err.contains("symlink"), "{err}");
    // An optional rule is left out instead, and the run says so.
    let optional = yaml_profile(
        &dir,
        "optional.yaml",
        &format!("{mounts}  landlock:\n    write: [/data]\n    rules:\n      - path: /data/ref\n        access: [read]\n        optional: true\n"),
    );
    let o = sh_in(
        who,
        &optional,
        &["-v"],
        "cat /secret/file 2>/dev/null || echo denied",
    );
    assert_code(&o, 0);
    assert_eq!(stdout(&o), "denied\n");
    assert!(
        stderr(&o).contains("optional rule for /data/ref left out"),
        "{}",
        stderr(&o)
    );
});

// ---- 4. and 5. bind sources -------------------------------------------------------------

both!(bind_sources_are_not_redirected_by_a_planted_link, |who| {
    let dir = Scratch::new("source-link");
    let data = shared_dir(&dir, "data");
    std::fs::create_dir(data.join("conf")).unwrap();
    std::fs::set_permissions(data.join("conf"), std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::write(data.join("conf/settings"), "public\n").unwrap();
    // What the link will point at: root's alone as root; the user's own private directory
    // (the `~/.ssh` of the rootless case) otherwise.
    let private = dir.path().join("private");
    std::fs::create_dir_all(private.join("conf")).unwrap();
    std::fs::write(private.join("conf/settings"), "PRIVATE\n").unwrap();
    std::fs::set_permissions(
        private.join("conf/settings"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    if who == As::User {
        let (uid, gid) = test_user().unwrap();
        for p in [
            private.clone(),
            private.join("conf"),
            private.join("conf/settings"),
        ] {
            std::os::unix::fs::chown(&p, Some(uid), Some(gid)).unwrap();
        }
    }
    let ns = if who == As::Root {
        // Root without a user namespace: the payload is host uid 65534.
        "  namespaces:\n    user: false\n"
    } else {
        ""
    };
    let profile = yaml_profile(
        &dir,
        "p.yaml",
        &format!(
            "{ns}  filesystem:\n    mounts:\n      - bind: /data\n        source: {}\n      - ro-bind: /settings\n        source: {}/conf\n  landlock:\n    write: [/data]\n    read: [/settings]\n",
            data.display(),
            data.display()
        ),
    );
    let o = sh_in(who, &profile, &[], "cat /settings/settings; rm -r /data/conf && ln -s ../private/conf /data/conf && echo planted");
    assert_code(&o, 0);
    assert_eq!(stdout(&o), "public\nplanted\n");
    let o = sh_in(who, &profile, &[], "cat /settings/settings");
    assert_code(&o, 125);
    assert!(!stdout(&o).contains("PRIVATE"));
    let err = stderr(&o);
    assert!(
        err.contains("bind source") && err.contains("symlink"),
        "{err}"
    );
    assert!(
        err.contains("resolves to"),
        "the fix names the resolved path: {err}"
    );
});

both!(
    sources_through_system_links_and_link_sources_are_bound,
    |who| {
        let dir = Scratch::new("source-sys");
        // A source below /var/run (Debian: /var/run -> /run, root's link in a root-only
        // directory) is followed.
        let name = format!("lasagna-test-{}-{}", std::process::id(), who == As::Root);
        let run_dir = Path::new("/run").join(&name);
        std::fs::create_dir_all(&run_dir).unwrap();
        std::fs::write(run_dir.join("f"), "under run\n").unwrap();
        std::fs::set_permissions(&run_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(run_dir.join("f"), std::fs::Permissions::from_mode(0o644))
            .unwrap();
        struct Gone(PathBuf);
        impl Drop for Gone {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
        let _gone = Gone(run_dir.clone());
        // A source that is itself a link to a host directory outside the view is followed
        // (root made it, in a directory only root writes), not recreated as a dangling link.
        let real = dir.path().join("real");
        std::fs::create_dir(&real).unwrap();
        std::fs::write(real.join("g"), "linked\n").unwrap();
        std::fs::set_permissions(real.join("g"), std::fs::Permissions::from_mode(0o644)).unwrap();
        std::os::unix::fs::symlink(&real, dir.path().join("link")).unwrap();
        let profile = yaml_profile(
        &dir,
        "p.yaml",
        &format!(
            "  filesystem:\n    mounts:\n      - ro-bind: /r\n        source: /var/run/{name}\n      - ro-bind: /l\n        source: {}/link\n  landlock:\n    read: [/r, /l]\n",
            dir.path().display()
        ),
    );
        let o = sh_in(who, &profile, &[], "cat /r/f /l/g");
        assert_code(&o, 0);
        assert_eq!(stdout(&o), "under run\nlinked\n");
        // A dangling link source is refused when required, left out when optional.
        std::os::unix::fs::symlink(dir.path().join("nowhere"), dir.path().join("dangling"))
            .unwrap();
        let dangling = format!(
            "  filesystem:\n    mounts:\n      - ro-bind: /d\n        source: {}/dangling\n",
            dir.path().display()
        );
        let required = yaml_profile(&dir, "d.yaml", &dangling);
        let o = sh_in(who, &required, &[], "echo RAN");
        assert_code(&o, 125);
        assert!(stderr(&o).contains("is a symlink to"), "{}", stderr(&o));
        let optional = yaml_profile(
            &dir,
            "o.yaml",
            &format!("{dangling}        optional: true\n"),
        );
        let o = sh_in(who, &optional, &[], "test -e /d || echo ABSENT");
        assert_code(&o, 0);
        assert_eq!(stdout(&o), "ABSENT\n");
    }
);

// ---- 6. masks -----------------------------------------------------------------------------

both!(a_mask_whose_target_moved_refuses_the_run, |who| {
    let dir = Scratch::new("mask-moved");
    let data = shared_dir(&dir, "data");
    let proj = data.join("proj");
    std::fs::create_dir(&proj).unwrap();
    std::fs::set_permissions(&proj, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::write(proj.join("key"), "KEY\n").unwrap();
    std::fs::set_permissions(proj.join("key"), std::fs::Permissions::from_mode(0o666)).unwrap();
    let layers = format!(
        "  filesystem:\n    mounts:\n      - bind: /data\n        source: {}\n      - mask: /data/proj/key\n  landlock:\n    write: [/data]\n",
        data.display()
    );
    let profile = yaml_profile(&dir, "p.yaml", &layers);
    // Control: without the mask the key is readable.
    let unmasked = yaml_profile(
        &dir,
        "unmasked.yaml",
        &format!("  filesystem:\n    mounts:\n      - bind: /data\n        source: {}\n  landlock:\n    write: [/data]\n", data.display()),
    );
    let o = sh_in(who, &unmasked, &[], "cat /data/proj/key");
    assert_eq!(stdout(&o), "KEY\n");
    // Run 1: masked; the payload moves the directory away.
    let o = sh_in(
        who,
        &profile,
        &[],
        "cat /data/proj/key | wc -c; mv /data/proj /data/moved && echo moved",
    );
    assert_code(&o, 0);
    assert_eq!(stdout(&o), "0\nmoved\n");
    // Run 2: the mask would hide nothing: refused, nothing runs.
    let o = sh_in(who, &profile, &[], "cat /data/moved/key");
    assert_code(&o, 125);
    assert!(!stdout(&o).contains("KEY"));
    assert!(
        stderr(&o).contains("mask /data/proj/key hides nothing"),
        "{}",
        stderr(&o)
    );
    // Best-effort: the run goes on, and says the layer is degraded.
    let best = yaml_profile(
        &dir,
        "best.yaml",
        &layers.replace("  filesystem:\n", "  filesystem:\n    mode: best-effort\n"),
    );
    let o = sh_in(who, &best, &["-v"], "true");
    assert_code(&o, 0);
    assert!(stderr(&o).contains("degraded"), "{}", stderr(&o));
});

// ---- 7. nothing left behind -----------------------------------------------------------------

both!(nothing_lasagna_made_stays_in_a_host_directory, |who| {
    let dir = Scratch::new("leftovers");
    let data = shared_dir(&dir, "data");
    let inner = dir.path().join("inner");
    std::fs::create_dir(&inner).unwrap();
    let profile = yaml_profile(
        &dir,
        "p.yaml",
        &format!(
            "  filesystem:\n    mounts:\n      - bind: /data\n        source: {}\n      - dir: /data/cache\n      - file: /data/etc/app.conf\n        content: \"c\\n\"\n      - tmpfs: /data/tmp\n      - symlink: /data/lnk\n        to: cache\n      - ro-bind: /data/ro\n        source: {}\n  landlock:\n    write: [/data]\n",
            data.display(),
            inner.display()
        ),
    );
    let o = sh_in(who, &profile, &[], "ls /data");
    assert_code(&o, 0);
    assert_eq!(stdout(&o), "cache\netc\nlnk\nro\ntmp\n");
    assert_eq!(entries(&data), Vec::<String>::new());
    // What the payload itself writes stays; everything else lasagna made is gone.
    let o = sh_in(who, &profile, &[], "echo mine > /data/cache/out");
    assert_code(&o, 0);
    assert_eq!(entries(&data), vec!["cache".to_string()]);
    assert_eq!(
        std::fs::read_to_string(data.join("cache/out")).unwrap(),
        "mine\n"
    );
    // A mount point inside a read-only bind is not created on the host: refused.
    let ro = yaml_profile(
        &dir,
        "ro.yaml",
        &format!(
            "  filesystem:\n    mounts:\n      - ro-bind: /data\n        source: {}\n      - tmpfs: /data/new\n",
            inner.display()
        ),
    );
    let o = sh_in(who, &ro, &[], "true");
    assert_code(&o, 125);
    assert!(stderr(&o).contains("read-only bind"), "{}", stderr(&o));
    assert_eq!(entries(&inner), Vec::<String>::new());
});

// ---- 8. profiles and imports ----------------------------------------------------------------

both!(profiles_and_imports_read_only_profiles, |who| {
    let dir = Scratch::new("profile-reads");
    // extends: takes a profile name or a .yaml path; it never quotes another file.
    let p = dir.write("shadow.yaml", "extends: /etc/shadow\n");
    let o = run(who, &["check", &p]);
    assert_code(&o, 1);
    let err = stderr(&o);
    assert!(err.contains("not a profile"), "{err}");
    assert!(!err.contains("root:"), "{err}");
    // A file that is not a profile is quoted at most in a short, escaped fragment.
    let long_key = format!("{}\x1b[2J", "S".repeat(100));
    let secretish = dir.write("secret.yml", &format!("{long_key}: value\n"));
    let o = run(who, &["check", &secretish]);
    assert_code(&o, 1);
    let err = stderr(&o);
    assert!(!err.contains(&"S".repeat(41)), "{err}");
    assert!(!err.contains('\x1b'), "{err}");
    // Devices and FIFOs are not read.
    for (args, what) in [
        (vec!["run", "-p", "/dev/zero", "--", "true"], "-p"),
        (vec!["check", "/dev/zero"], "check"),
    ] {
        let start = std::time::Instant::now();
        let o = run(who, &args);
        assert_ne!(o.status.code(), Some(0), "{what}");
        assert!(
            stderr(&o).contains("not a regular file"),
            "{what}: {}",
            stderr(&o)
        );
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
    }
    let import = dir.write(
        "import.yaml",
        "extends: strict\nlayers:\n  seccomp:\n    import: /dev/zero\n",
    );
    let o = run(who, &["check", &import]);
    assert_code(&o, 1);
    assert!(stderr(&o).contains("not a regular file"), "{}", stderr(&o));
});

#[test]
fn as_root_a_profile_another_user_can_change_is_refused() {
    if !can_run(
        "as_root_a_profile_another_user_can_change_is_refused",
        As::Root,
    ) {
        return;
    }
    let Ok((uid, gid)) = test_user() else {
        return skip(
            "as_root_a_profile_another_user_can_change_is_refused",
            "no test user",
        );
    };
    let dir = Scratch::new("profile-owner");
    let p = dir.write("p.yaml", "extends: strict\n");
    // Root's own file in root's own directory: fine.
    let o = run(As::Root, &["check", &p]);
    assert_code(&o, 0);
    // Owned by another user.
    std::os::unix::fs::chown(&p, Some(uid), Some(gid)).unwrap();
    let o = run(As::Root, &["run", "-p", &p, "--", "/bin/true"]);
    assert_code(&o, 125);
    assert!(
        stderr(&o).contains("can be changed by another user"),
        "{}",
        stderr(&o)
    );
    // Root's file, but in a directory another user can write.
    std::os::unix::fs::chown(&p, Some(0), Some(0)).unwrap();
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    std::os::unix::fs::chown(&sub, Some(uid), Some(gid)).unwrap();
    let q = sub.join("q.yaml");
    std::fs::write(&q, "extends: strict\n").unwrap();
    std::os::unix::fs::chown(&q, Some(0), Some(0)).unwrap();
    let o = run(As::Root, &["check", q.to_str().unwrap()]);
    assert_code(&o, 1);
    assert!(
        stderr(&o).contains("can be changed by another user"),
        "{}",
        stderr(&o)
    );
    // Group-writable by a group other than root's: refused, with the reason and the fix.
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o664)).unwrap();
    std::os::unix::fs::chown(&p, Some(0), Some(gid)).unwrap();
    let o = run(As::Root, &["check", &p]);
    assert_code(&o, 1);
    assert!(
        stderr(&o).contains(&format!(
            "refused as root: {p} can be changed by another user (it is writable by group {gid}); make it root's own and not writable by others (chown root, chmod go-w, setfacl -b)"
        )),
        "{}",
        stderr(&o)
    );
    // Control: the same file, same owner and group, made 0644 is root's to use.
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    let o = run(As::Root, &["check", &p]);
    assert_code(&o, 0);
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o664)).unwrap();
    // The same file as that user is theirs to use.
    let o = run(As::User, &["check", &p]);
    assert_code(&o, 0);
}

#[test]
fn as_root_a_profile_an_acl_lets_another_user_write_is_refused() {
    // Mode bits are not the whole story: a POSIX ACL entry gives a named user write access
    // to a root-owned 0644 file, and `ls -l` shows only a `+`.
    let test = "as_root_a_profile_an_acl_lets_another_user_write_is_refused";
    if !can_run(test, As::Root) {
        return;
    }
    let Ok((uid, _)) = test_user() else {
        return skip(test, "no test user");
    };
    let setfacl = |args: &[&str]| {
        let o = std::process::Command::new("setfacl")
            .args(args)
            .output()
            .expect("setfacl (package acl) is installed");
        assert!(o.status.success(), "setfacl {args:?}: {}", stderr(&o));
    };
    let dir = Scratch::new("profile-acl");
    let p = dir.write("p.yaml", "extends: strict\n");
    let user_appends = |path: &str| {
        let script = format!("echo 'seccomp: {{mode: off}}' >> '{path}'");
        as_who(As::User, &["/bin/sh", "-c", &script])
            .output()
            .unwrap()
            .status
            .success()
    };
    // Root's own 0644 file in root's own directory: accepted, and the user cannot write it.
    assert_code(&run(As::Root, &["check", &p]), 0);
    assert!(!user_appends(&p), "the user cannot write a 0644 root file");
    // One ACL entry later the user can, and root refuses the file, naming the entry.
    let entry = format!("u:{uid}:rw");
    setfacl(&["-m", &entry, &p]);
    assert_eq!(
        std::fs::metadata(&p).unwrap().permissions().mode() & 0o7777,
        0o664,
        "the group bits show the ACL mask, the other bits are untouched"
    );
    assert!(user_appends(&p), "the ACL entry lets the user write");
    let o = run(As::Root, &["run", "-p", &p, "--", "/bin/true"]);
    assert_code(&o, 125);
    assert!(
        stderr(&o).contains(&format!("user:{uid}:rw-")) && stderr(&o).contains("setfacl -b"),
        "{}",
        stderr(&o)
    );
    // A mask without write leaves the entry powerless: accepted again.
    std::fs::write(&p, "extends: strict\n").unwrap();
    setfacl(&["-m", "m::r", &p]);
    assert!(!user_appends(&p), "the mask takes the write away");
    assert_code(&run(As::Root, &["check", &p]), 0);
    // The same for a directory on the way: an entry that lets the user replace the file.
    setfacl(&["-b", &p]);
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    let q = sub.join("q.yaml");
    std::fs::write(&q, "extends: strict\n").unwrap();
    let q = q.to_str().unwrap();
    assert_code(&run(As::Root, &["check", q]), 0);
    setfacl(&["-m", &format!("u:{uid}:rwx"), sub.to_str().unwrap()]);
    let o = run(As::Root, &["check", q]);
    assert_code(&o, 1);
    assert!(
        stderr(&o).contains(&format!("user:{uid}:rwx")),
        "{}",
        stderr(&o)
    );
    // As that user the file is theirs to use.
    assert_code(&run(As::User, &["check", q]), 0);
    // A default ACL: what root creates in the directory later is the user's to write.
    setfacl(&["-b", sub.to_str().unwrap()]);
    assert_code(&run(As::Root, &["check", q]), 0);
    setfacl(&["-d", "-m", &format!("u:{uid}:rwx"), sub.to_str().unwrap()]);
    let o = run(As::Root, &["check", q]);
    assert_code(&o, 1);
    assert!(
        stderr(&o).contains(&format!("default:user:{uid}:rwx")),
        "{}",
        stderr(&o)
    );
}

// ---- 9. terminal escapes --------------------------------------------------------------------

both!(
    profile_text_is_escaped_before_it_reaches_the_terminal,
    |who| {
        let dir = Scratch::new("escapes");
        let p = dir.write(
        "esc.yaml",
        "name: \"evil\\e]0;owned\\a\"\ndescription: \"line one\\nfake: line\\e[2J\"\nextends: strict\n",
    );
        for args in [
            vec!["explain", p.as_str()],
            vec!["run", "-v", "-p", p.as_str(), "--", "/bin/true"],
            vec!["run", "--dry-run", "-p", p.as_str(), "--", "/bin/true"],
        ] {
            let o = run(who, &args);
            assert_code(&o, 0);
            let all = format!("{}{}", stdout(&o), stderr(&o));
            assert!(
                !all.contains('\x1b') && !all.contains('\x07'),
                "{args:?}: {all:?}"
            );
            assert!(all.contains("evil\\e]0;owned"), "{args:?}: {all}");
        }
        let o = run(who, &["explain", &p]);
        assert!(
            stdout(&o).contains("line one\\nfake: line"),
            "{}",
            stdout(&o)
        );
    }
);
