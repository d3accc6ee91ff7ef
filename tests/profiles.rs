//! Bad input gets a clear error with file:line:col and exit 125, never a panic; chroot is
//! refused; a required layer the host cannot give stops the run before anything exists.

mod common;
use common::*;

use std::path::Path;

fn check_error(yaml: &str, expect_loc: &str, expect_msg: &str) {
    let dir = Scratch::new("bad");
    let path = dir.write("bad.yaml", yaml);
    let o = run(As::Root, &["run", "-p", &path, "--", "/bin/true"]);
    assert_code(&o, 125);
    let err = stderr(&o);
    assert!(
        err.contains(&format!("{path}:{expect_loc}:")),
        "want {path}:{expect_loc} in: {err}"
    );
    assert!(err.contains(expect_msg), "want {expect_msg:?} in: {err}");
    assert!(!err.contains("panicked"), "{err}");
    // `check` reports the same problem with exit 1.
    let o = run(As::Root, &["check", &path]);
    assert_code(&o, 1);
    assert!(
        stderr(&o).contains(&format!("{path}:{expect_loc}:")),
        "{}",
        stderr(&o)
    );
}

#[test]
fn unknown_key_is_an_error_with_its_location() {
    check_error(
        "layers:\n  process:\n    no-new-priv: true\n",
        "3:5",
        "unknown field `no-new-priv`",
    );
}

#[test]
fn unknown_layer_section_is_an_error() {
    check_error(
        "layers:\n  apparmor:\n    mode: required\n",
        "2:3",
        "unknown field `apparmor`",
    );
}

#[test]
fn wrong_type_is_an_error() {
    check_error(
        "layers:\n  namespaces:\n    uid: nobody\n",
        "3:10",
        "invalid",
    );
}

#[test]
fn yaml_1_1_booleans_are_refused() {
    check_error(
        "layers:\n  process:\n    no-new-privs: yes\n",
        "3:19",
        "write true or false",
    );
}

#[test]
fn relative_and_dotdot_paths_are_errors() {
    check_error(
        "layers:\n  filesystem:\n    mounts:\n      - ro-bind: usr\n",
        "4:18",
        "relative",
    );
    check_error(
        "layers:\n  filesystem:\n    mounts:\n      - tmpfs: /tmp/../etc\n",
        "4:16",
        "'..'",
    );
    check_error("layers:\n  process:\n    cwd: work\n", "3:10", "relative");
}

#[test]
fn duplicate_mount_targets_are_errors() {
    check_error(
        "layers:\n  filesystem:\n    mounts:\n      - ro-bind: /usr\n      - tmpfs: /usr\n",
        "5:16",
        "duplicate mount target /usr (first at ",
    );
    // The second place names its file too.
    let dir = Scratch::new("dup");
    let path = dir.write(
        "dup.yaml",
        "layers:\n  filesystem:\n    mounts:\n      - ro-bind: /usr\n      - tmpfs: /usr\n",
    );
    let o = run(As::Root, &["check", &path]);
    assert!(
        stderr(&o).contains(&format!("(first at {path}:4:18)")),
        "{}",
        stderr(&o)
    );
}

/// A child profile replaces an inherited mount by naming its path, or drops it with
/// `remove:`; an error at an inherited line names the parent's file, not the child's.
#[test]
fn a_child_profile_replaces_or_removes_inherited_mounts() {
    let dir = Scratch::new("inherit");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("x.txt"), "from the host\n").unwrap();
    let parent = dir.write(
        "parent.yaml",
        "name: parent\nextends: strict\nlayers:\n  filesystem:\n    mounts:\n      - tmpfs: /data\n      - tmpfs: /scratch\n",
    );
    let child = dir.write(
        "child.yaml",
        &format!(
            "name: child\nextends: parent.yaml\nlayers:\n  filesystem:\n    mounts:\n      - ro-bind: /data\n        source: {}\n        landlock: [read]\n      - remove: /scratch\n",
            data.display()
        ),
    );
    // /data is the child's bind (its own Landlock right lets it be read); /scratch is gone.
    let o = run(
        As::Root,
        &[
            "run",
            "-p",
            &child,
            "--",
            "/bin/sh",
            "-c",
            "cat /data/x.txt; test -e /scratch || echo no-scratch",
        ],
    );
    assert_code(&o, 0);
    assert_eq!(stdout(&o), "from the host\nno-scratch\n");
    // Control: the parent alone has an empty /data and a /scratch.
    let o = run(
        As::Root,
        &[
            "run",
            "-p",
            &parent,
            "--",
            "/bin/sh",
            "-c",
            "ls -A /data; test -d /scratch && echo scratch",
        ],
    );
    assert_eq!(stdout(&o), "scratch\n");
    // Removing what no parent mounts, and removing in the same file, are errors.
    let nothing = dir.write(
        "nothing.yaml",
        "extends: parent.yaml\nlayers:\n  filesystem:\n    mounts:\n      - remove: /nowhere\n",
    );
    let o = run(As::Root, &["check", &nothing]);
    assert_code(&o, 1);
    assert!(
        stderr(&o).contains(&format!(
            "{nothing}:5:17: remove /nowhere: no inherited mount has this path"
        )),
        "{}",
        stderr(&o)
    );
    let same = dir.write(
        "same.yaml",
        "extends: strict\nlayers:\n  filesystem:\n    mounts:\n      - tmpfs: /x\n      - remove: /x\n",
    );
    let o = run(As::Root, &["check", &same]);
    assert!(
        stderr(&o).contains(&format!(
            "{same}:6:17: remove /x: its mount is in this same file (at {same}:5:16)"
        )),
        "{}",
        stderr(&o)
    );
    // An error found at the parent's line names the parent's file.
    let inner = dir.write(
        "inner.yaml",
        "extends: strict\nlayers:\n  filesystem:\n    mounts:\n      - tmpfs: /srv/inner\n",
    );
    let outer = dir.write(
        "outer.yaml",
        "extends: inner.yaml\nlayers:\n  filesystem:\n    mounts:\n      - tmpfs: /srv\n",
    );
    let o = run(As::Root, &["check", &outer]);
    assert_code(&o, 1);
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "{inner}:5:16: mount /srv/inner would be hidden by the later mount /srv at {outer}:5:16"
        )),
        "{err}"
    );
}

#[test]
fn duplicate_keys_are_errors() {
    check_error("name: a\nname: b\n", "2:1", "duplicate");
}

#[test]
fn bad_values_are_errors() {
    check_error(
        "layers:\n  rlimits:\n    fsize: 12Q\n",
        "3:12",
        "unknown unit",
    );
    check_error(
        "layers:\n  capabilities:\n    keep: [CAP_NOPE]\n",
        "3:12",
        "unknown capability",
    );
    check_error(
        "layers:\n  process:\n    timeout: soon\n",
        "3:14",
        "duration",
    );
    check_error(
        "layers:\n  namespaces:\n    mode: sometimes\n",
        "3:11",
        "unknown variant",
    );
}

#[test]
fn extends_cycle_is_an_error() {
    let dir = Scratch::new("cycle");
    let a = dir.write("a.yaml", "extends: b.yaml\n");
    dir.write("b.yaml", "extends: a.yaml\n");
    let o = run(As::Root, &["check", &a]);
    assert_code(&o, 1);
    assert!(stderr(&o).contains("extends cycle"), "{}", stderr(&o));
}

#[test]
fn extends_missing_profile_is_an_error() {
    check_error("extends: no-such-profile\n", "1:10", "no profile named");
}

#[test]
fn oversized_profile_is_refused() {
    let dir = Scratch::new("big");
    let big = format!("description: \"{}\"\n", "x".repeat(1_100_000));
    let path = dir.write("big.yaml", &big);
    let o = run(As::Root, &["run", "-p", &path, "--", "/bin/true"]);
    assert_code(&o, 125);
    assert!(stderr(&o).contains("byte limit"), "{}", stderr(&o));
}

#[test]
fn alias_bomb_is_refused_quickly() {
    // Under a key the format accepts (a list of syscall names), one anchor and 200,000
    // aliases of it: 800 KB that a parser without an alias budget expands event by event.
    // The parser's budget stops it, and says so.
    let aliases = vec!["*a"; 200_000].join(", ");
    let yaml = format!("extends: strict\nlayers:\n  seccomp:\n    allow: [&a read, {aliases}]\n");
    let dir = Scratch::new("bomb");
    let path = dir.write("bomb.yaml", &yaml);
    let start = std::time::Instant::now();
    let o = run(As::Root, &["check", &path]);
    let took = start.elapsed();
    assert_code(&o, 1);
    let err = stderr(&o);
    assert!(err.contains("exceeds the YAML parser's limits"), "{err}");
    assert!(err.contains("ases"), "names the alias budget: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(took < std::time::Duration::from_secs(5), "took {took:?}");
    // Memory: every child this test binary waited for so far peaked below 64 MiB (the
    // file alone is 0.8 MB; expanded it would hold 200,001 strings).
    let usage =
        nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN).unwrap();
    assert!(
        usage.max_rss() < 64 * 1024,
        "max RSS {} KiB",
        usage.max_rss()
    );
    // Control: the same list with 50 aliases (under the budget) is a valid profile.
    let small = format!(
        "extends: strict\nlayers:\n  seccomp:\n    allow: [&a read, {}]\n",
        vec!["*a"; 50].join(", ")
    );
    let path = dir.write("small.yaml", &small);
    let o = run(As::Root, &["check", &path]);
    assert_code(&o, 0);
}

#[test]
fn chroot_key_is_refused_with_an_explanation() {
    for yaml in [
        "chroot: /srv/jail\n",
        "layers:\n  filesystem:\n    chroot: /srv/jail\n",
        "layers:\n  chroot:\n    mode: required\n",
    ] {
        let dir = Scratch::new("chroot");
        let path = dir.write("c.yaml", yaml);
        let o = run(As::Root, &["run", "-p", &path, "--", "/bin/true"]);
        assert_code(&o, 125);
        let err = stderr(&o);
        assert!(err.contains("chroot is not a security boundary"), "{err}");
        assert!(
            err.contains("filesystem") && err.contains("landlock"),
            "names the alternatives: {err}"
        );
    }
}

#[test]
fn chroot_flag_is_refused() {
    let o = run(
        As::Root,
        &["run", "--chroot", "/srv/jail", "--", "/bin/true"],
    );
    assert_code(&o, 125);
    assert!(
        stderr(&o).contains("chroot is not a security boundary"),
        "{}",
        stderr(&o)
    );
    let o = run(As::Root, &["run", "--without", "chroot", "--", "/bin/true"]);
    assert_code(&o, 2);
    assert!(
        stderr(&o).contains("chroot is not a layer"),
        "{}",
        stderr(&o)
    );
}

both!(
    required_layer_the_host_cannot_give_is_refused_before_anything_runs,
    |who| {
        // /proc needs a pid namespace; with namespaces off, a required filesystem refuses.
        let dir = Scratch::new("refuse");
        let marker = dir.path().join("ran");
        let _ = std::process::Command::new("chmod")
            .arg("0777")
            .arg(dir.path())
            .status();
        let o = run(
            who,
            &[
                "run",
                "-p",
                "strict",
                "--without",
                "namespaces",
                "--",
                "/bin/sh",
                "-c",
                &format!("touch {}", marker.display()),
            ],
        );
        assert_code(&o, 125);
        let err = stderr(&o);
        assert!(err.contains("filesystem:"), "names the layer: {err}");
        assert!(
            err.contains("no new pid namespace"),
            "names the reason: {err}"
        );
        assert!(err.contains("fix:"), "names the fix: {err}");
        assert!(!marker.exists(), "nothing ran");
        // best-effort degrades instead, and says so (the profile in a directory only root
        // writes: as root, lasagna refuses a profile others could change).
        let profiles = Scratch::new("refuse-profile");
        let profile = profiles.write(
            "p.yaml",
            "extends: strict\nlayers:\n  filesystem:\n    mode: best-effort\n",
        );
        let o = run(
            who,
            &[
                "run",
                "-p",
                &profile,
                "--without",
                "namespaces",
                "--",
                "/bin/true",
            ],
        );
        assert_code(&o, 0);
        assert!(stderr(&o).contains("filesystem degraded"), "{}", stderr(&o));
    }
);

both!(
    required_namespaces_refused_without_a_user_namespace_for_unprivileged,
    |who| {
        let dir = Scratch::new("nouserns");
        let profile = dir.write(
            "p.yaml",
            "extends: strict\nlayers:\n  namespaces:\n    user: false\n",
        );
        let o = run(who, &["run", "-p", &profile, "--", "/bin/true"]);
        if who == As::Root {
            // Root needs no user namespace; the payload still runs unprivileged.
            assert_code(&o, 0);
            let o = run(who, &["run", "-p", &profile, "--", "id", "-u"]);
            assert_eq!(stdout(&o), "65534\n");
        } else {
            assert_code(&o, 125);
            assert!(stderr(&o).contains("namespaces:"), "{}", stderr(&o));
            assert!(stderr(&o).contains("user: true"), "{}", stderr(&o));
        }
    }
);

#[test]
fn every_shipped_profile_checks() {
    let o = run(As::Root, &["profiles", "list"]);
    assert_code(&o, 0);
    let names: Vec<String> = stdout(&o)
        .lines()
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect();
    assert!(names.contains(&"strict".to_string()));
    // From a directory of the test's: the per-app profiles bind the working directory.
    let dir = Scratch::new("check-all");
    for n in names {
        let mut cmd = command(As::Root, &["check", &n]);
        cmd.current_dir(dir.path());
        let o = output_within(cmd, DEADLINE);
        assert_code(&o, 0);
    }
}

#[test]
fn an_error_in_an_extended_profile_points_into_that_file() {
    let dir = Scratch::new("attr");
    let parent = dir.write(
        "parent.yaml",
        "name: parent\nlayers:\n  seccomp:\n    allow: [opne, execve]\n",
    );
    let child = dir.write("child.yaml", "extends: parent.yaml\n");
    let o = run(As::Root, &["check", &child]);
    assert_code(&o, 1);
    let err = stderr(&o);
    assert!(err.contains(&format!("{parent}:4:13:")), "{err}");
    assert!(err.contains("did you mean \"open\""), "{err}");
}

both!(the_profiles_command_runs_when_none_is_given, |who| {
    let dir = Scratch::new("command");
    let p = dir.write(
        "cmd.yaml",
        "extends: strict\ncommand: [/bin/sh, -c, \"echo from the profile\"]\n",
    );
    let o = run(who, &["run", "-p", &p]);
    assert_code(&o, 0);
    assert_eq!(stdout(&o), "from the profile\n");
    // A command on the line wins.
    let o = run(who, &["run", "-p", &p, "--", "/bin/echo", "from the line"]);
    assert_eq!(stdout(&o), "from the line\n");
    // Control: without either, a usage error that says so.
    let o = run(who, &["run", "-p", "strict"]);
    assert_code(&o, 2);
    assert!(stderr(&o).contains("has no `command`"), "{}", stderr(&o));
});

/// Profiles a test puts in /etc/lasagna/profiles, removed on drop with the directories it
/// created there (the ones that existed before stay). One holder at a time in this test
/// binary: one test's cleanup must not remove the directory another test is writing into.
/// Every name put there is unique to the test and identity, never a shipped one: a file
/// there changes the runs of everything else on the host that names it.
struct EtcProfiles {
    files: Vec<std::path::PathBuf>,
    made: Vec<&'static Path>,
    _one_at_a_time: std::sync::MutexGuard<'static, ()>,
}

const ETC_PROFILES: &str = "/etc/lasagna/profiles";

impl EtcProfiles {
    fn new() -> EtcProfiles {
        static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
        // Innermost first: the order they are removed in.
        let made = [Path::new(ETC_PROFILES), Path::new("/etc/lasagna")]
            .into_iter()
            .filter(|d| !d.exists())
            .collect();
        EtcProfiles {
            files: Vec::new(),
            made,
            _one_at_a_time: guard,
        }
    }

    /// Write `name` there (root's, 0644; the directories made here root's, 0755) and return
    /// its path.
    fn write(&mut self, name: &str, text: &str) -> String {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(ETC_PROFILES).unwrap();
        for d in &self.made {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let path = Path::new(ETC_PROFILES).join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        self.files.push(path.clone());
        path.to_string_lossy().into_owned()
    }
}

impl Drop for EtcProfiles {
    fn drop(&mut self) {
        for f in &self.files {
            let _ = std::fs::remove_file(f);
        }
        for d in &self.made {
            let _ = std::fs::remove_dir(d);
        }
    }
}

both!(profiles_are_found_in_xdg_then_etc, |who| {
    let name = marker("lasagna-lookup", who);
    let xdg = Scratch::new("xdg");
    std::fs::create_dir_all(xdg.path().join("lasagna/profiles")).unwrap();
    let _ = std::process::Command::new("chmod")
        .args(["-R", "0755"])
        .arg(xdg.path())
        .status();
    let mut etc = EtcProfiles::new();
    let with_xdg = |args: &[&str]| {
        let mut cmd = command(who, args);
        cmd.env("XDG_CONFIG_HOME", xdg.path());
        output_within(cmd, DEADLINE)
    };
    // Control: neither directory has it.
    let o = with_xdg(&["run", "-p", &name]);
    assert_ne!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("no profile named \"{name}\"")),
        "{}",
        stderr(&o)
    );
    // Only /etc has it: the same for root and for a user (root's file there is trusted by
    // both, and readable by both).
    let etc_file = etc.write(
        &format!("{name}.yaml"),
        "extends: strict\ncommand: [/bin/echo, etc]\n",
    );
    let o = with_xdg(&["run", "-p", &name]);
    assert_code(&o, 0);
    assert_eq!(stdout(&o), "etc\n");
    let o = with_xdg(&["profiles", "which", &name]);
    assert_eq!(stdout(&o).lines().last(), Some(etc_file.as_str()));
    // The user's directory comes first.
    let mine = xdg.write(
        &format!("lasagna/profiles/{name}.yaml"),
        "extends: strict\ncommand: [/bin/echo, xdg]\n",
    );
    let o = with_xdg(&["run", "-p", &name]);
    assert_code(&o, 0);
    assert_eq!(stdout(&o), "xdg\n");
    let o = with_xdg(&["profiles", "which", &name]);
    assert_eq!(stdout(&o).lines().last(), Some(mine.as_str()));
});

// A name is looked up in the user's directory, then /etc, then among the shipped profiles
// (README, `lasagna profiles`): a user's file named like a shipped profile is the one used.
both!(a_user_profile_named_like_a_shipped_one_wins, |who| {
    let xdg = Scratch::new("shadow");
    std::fs::create_dir_all(xdg.path().join("lasagna/profiles")).unwrap();
    let _ = std::process::Command::new("chmod")
        .args(["-R", "0755"])
        .arg(xdg.path())
        .status();
    let mine = xdg.write(
        "lasagna/profiles/strict.yaml",
        "extends: base\ncommand: [/bin/echo, from the user's strict]\n",
    );
    let with_xdg = |dir: &Path, args: &[&str]| {
        let mut cmd = command(who, args);
        cmd.env("XDG_CONFIG_HOME", dir);
        output_within(cmd, DEADLINE)
    };
    // No command on the line: the profile's own says which file was loaded.
    let o = with_xdg(xdg.path(), &["run", "-p", "strict"]);
    assert_code(&o, 0);
    assert_eq!(stdout(&o), "from the user's strict\n");
    let o = with_xdg(xdg.path(), &["profiles", "which", "strict"]);
    assert_code(&o, 0);
    assert_eq!(
        stdout(&o).lines().last(),
        Some(mine.as_str()),
        "{}",
        stdout(&o)
    );
    // Control: with an empty user directory the shipped strict is used, which has no
    // command.
    let empty = Scratch::new("shadow-empty");
    let o = with_xdg(empty.path(), &["run", "-p", "strict"]);
    assert_code(&o, 2);
    assert!(stderr(&o).contains("has no `command`"), "{}", stderr(&o));
    let o = with_xdg(empty.path(), &["profiles", "which", "strict"]);
    assert_eq!(stdout(&o).lines().last(), Some("<shipped>/strict.yaml"));
});

both!(the_dry_run_report_is_the_plan, |who| {
    let dir = Scratch::new("dry");
    let marker = dir.path().join("ran");
    let _ = std::process::Command::new("chmod")
        .arg("0777")
        .arg(dir.path())
        .status();
    let o = run(
        who,
        &[
            "run",
            "--dry-run",
            "-p",
            "strict",
            "--report-fd",
            "1",
            "--",
            "/bin/sh",
            "-c",
            &format!("touch {}", marker.display()),
        ],
    );
    assert_code(&o, 0);
    let text = stdout(&o);
    // The table, then the JSON report.
    let json = &text[text.find('{').unwrap()..];
    let r: serde_json::Value = serde_json::from_str(json).unwrap();
    assert!(!marker.exists(), "a dry run runs nothing");
    assert_eq!(r["profile"], "strict");
    assert!(r["exit_code"].is_null() && r["ending"].is_null(), "{r:#}");
    for l in [
        "namespaces",
        "filesystem",
        "capabilities",
        "rlimits",
        "process",
        "landlock",
        "seccomp",
    ] {
        assert_eq!(layer_of(&r, l)["outcome"], "applied", "{l}");
        assert_eq!(layer_of(&r, l)["decision"], "apply", "{l}");
    }
    // strict's cgroups are best-effort: root gets them, a user without delegation gets
    // the rlimit stand-ins.
    let cgroups = if who == As::Root {
        "applied"
    } else {
        "degraded"
    };
    assert_eq!(layer_of(&r, "cgroups")["outcome"], cgroups);
    // A refused plan: exit 125 and the refusal in the report.
    let o = run(
        who,
        &[
            "run",
            "--dry-run",
            "-p",
            "strict",
            "--without",
            "namespaces",
            "--report-fd",
            "1",
            "--",
            "/bin/true",
        ],
    );
    assert_code(&o, 125);
    let text = stdout(&o);
    let r: serde_json::Value = serde_json::from_str(&text[text.find('{').unwrap()..]).unwrap();
    assert_eq!(layer_of(&r, "filesystem")["outcome"], "refused", "{r:#}");
});

both!(variables_expand_in_paths_and_bad_values_say_where, |who| {
    let dir = Scratch::new("vars");
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(work.join("data.txt"), "from cwd\n").unwrap();
    let _ = std::process::Command::new("chmod")
        .args(["-R", "0755"])
        .arg(&work)
        .status();
    let _ = std::process::Command::new("chmod")
        .arg("0644")
        .arg(work.join("data.txt"))
        .status();
    dir.write(
        "parent.yaml",
        "extends: strict\nlayers:\n  process:\n    env:\n      set:\n        WHO: \"${USER} (${UID})\"\n",
    );
    let p = dir.write(
        "child.yaml",
        "extends: ${PROFILE_DIR}/parent.yaml\nlayers:\n  filesystem:\n    mounts:\n      - ro-bind: ${CWD}\n  landlock:\n    read: [\"${CWD}\"]\n  process:\n    cwd: ${CWD}\n    env:\n      set:\n        MSG: \"${ENV:LASAGNA_VARS_MSG:-no message}\"\n",
    );
    let mut cmd = command(
        who,
        &[
            "run",
            "-p",
            &p,
            "--",
            "/bin/sh",
            "-c",
            "pwd; cat data.txt; echo \"$WHO\"; echo \"$MSG\"",
        ],
    );
    cmd.current_dir(&work);
    let o = output_within(cmd, DEADLINE);
    assert_code(&o, 0);
    let (user, uid) = match who {
        As::Root => ("root".to_string(), 0),
        As::User => (TEST_USER.to_string(), test_user().unwrap().0),
    };
    assert_eq!(
        stdout(&o),
        format!("{}\nfrom cwd\n{user} ({uid})\nno message\n", work.display()),
        "{}",
        stderr(&o)
    );
    // Bad values: the file, line and column, the variable and its value.
    for (yaml, env, want) in [
        (
            "layers:\n  process:\n    cwd: ${HOEM}/x\n",
            None,
            ":3:10: unknown variable ${HOEM} (did you mean \"HOME\"?)",
        ),
        (
            "layers:\n  process:\n    cwd: ${HOME}/x\n",
            Some(("HOME", "relative/home")),
            ":3:10: ${HOME} is \"relative/home\", which is not an absolute path",
        ),
        (
            "layers:\n  process:\n    cwd: ${HOME}/x\n",
            Some(("HOME", "/home/../etc")),
            ":3:10: ${HOME} is \"/home/../etc\", which has a `..` component",
        ),
        (
            "layers:\n  process:\n    cwd: /x/${ENV:LASAGNA_VARS_UNSET}\n",
            None,
            ":3:10: ${ENV:LASAGNA_VARS_UNSET}: LASAGNA_VARS_UNSET is not set",
        ),
        (
            "layers:\n  landlock:\n    read: [${CWD}]\n",
            None,
            "quote a value that holds a variable",
        ),
    ] {
        let bad = dir.write("bad.yaml", yaml);
        let mut cmd = command(who, &["check", &bad]);
        if let Some((k, v)) = env {
            cmd.env(k, v);
        }
        let o = output_within(cmd, DEADLINE);
        assert_code(&o, 1);
        let err = stderr(&o);
        assert!(err.contains(&bad) && err.contains(want), "{yaml}: {err}");
    }
});

both!(search_path_and_local_overlays, |who| {
    let dir = Scratch::new("search");
    let profiles = dir.path().join("xdg/lasagna/profiles");
    std::fs::create_dir_all(&profiles).unwrap();
    let _ = std::process::Command::new("chmod")
        .args(["-R", "0755"])
        .arg(dir.path().join("xdg"))
        .status();
    let put = |name: &str, text: &str| {
        let p = profiles.join(name);
        std::fs::write(&p, text).unwrap();
        let _ = std::process::Command::new("chmod")
            .arg("0644")
            .arg(&p)
            .status();
    };
    // strict.local.yaml adjusts the shipped strict, and every profile that extends it.
    put(
        "strict.local.yaml",
        "layers:\n  process:\n    env:\n      set:\n        FROM_STRICT_LOCAL: \"yes\"\n",
    );
    put("mine.yaml", "extends: strict\ndescription: my own\nlayers:\n  process:\n    env:\n      set:\n        FROM_MINE: \"yes\"\n");
    put(
        "mine.local.yaml",
        "layers:\n  process:\n    env:\n      set:\n        FROM_MINE: \"overridden\"\n",
    );
    let xdg = dir.path().join("xdg");
    let with_xdg = |args: &[&str]| {
        let mut cmd = command(who, args);
        cmd.env("XDG_CONFIG_HOME", &xdg);
        output_within(cmd, DEADLINE)
    };
    let o = with_xdg(&["profiles", "which", "mine"]);
    assert_code(&o, 0);
    let p = profiles.display();
    assert_eq!(
        stdout(&o),
        format!("<shipped>/seccomp-default.yaml\n<shipped>/base.yaml\n<shipped>/strict.yaml\n{p}/strict.local.yaml\n{p}/mine.yaml\n{p}/mine.local.yaml\n")
    );
    let o = with_xdg(&[
        "run",
        "-p",
        "mine",
        "--",
        "/bin/sh",
        "-c",
        "echo $FROM_STRICT_LOCAL $FROM_MINE",
    ]);
    assert_code(&o, 0);
    assert_eq!(stdout(&o), "yes overridden\n", "{}", stderr(&o));
    // Control: without the search directory, neither exists.
    let o = run(
        who,
        &[
            "run",
            "-p",
            "strict",
            "--",
            "/bin/sh",
            "-c",
            "echo ${FROM_STRICT_LOCAL:-none}",
        ],
    );
    assert_eq!(stdout(&o), "none\n");
    let o = with_xdg(&["profiles", "list"]);
    assert!(
        stdout(&o)
            .lines()
            .any(|l| l.starts_with("mine ") && l.contains("my own")),
        "{}",
        stdout(&o)
    );
    // An overlay cannot extend anything.
    put("mine.local.yaml", "extends: base\n");
    let o = with_xdg(&["check", "mine"]);
    assert_code(&o, 1);
    assert!(
        stderr(&o).contains("mine.local.yaml:1:10: a .local.yaml overlay has no extends"),
        "{}",
        stderr(&o)
    );
    // profiles edit: the user's overlay, created, edited, checked.
    std::fs::remove_file(profiles.join("mine.local.yaml")).unwrap();
    if who == As::Root {
        let mut cmd = command(who, &["profiles", "edit", "mine"]);
        cmd.env("XDG_CONFIG_HOME", &xdg)
            .env("EDITOR", "sh -c 'printf \"layers:\\n  process:\\n    env:\\n      set:\\n        E: x\\n\" >> \"$0\"'");
        let o = output_within(cmd, DEADLINE);
        assert_code(&o, 0);
        let text = std::fs::read_to_string(profiles.join("mine.local.yaml")).unwrap();
        assert!(
            text.contains("# Merged on top of the profile mine"),
            "{text}"
        );
    }
});

#[test]
fn a_scalar_where_a_mapping_belongs_says_what_the_key_takes() {
    check_error(
        "layers:\n  cgroups:\n    memory: 256M\n",
        "3:13",
        "`memory` takes a mapping: {max: SIZE",
    );
    check_error(
        "layers:\n  landlock:\n    net: 443\n",
        "3:10",
        "`net` takes a mapping: {bind: [PORT], connect: [PORT]}",
    );
    check_error(
        "layers:\n  seccomp: strict\n",
        "2:12",
        "`seccomp` takes a mapping: the seccomp layer's keys",
    );
}

#[test]
fn a_cpu_time_the_kernel_cannot_enforce_is_an_error() {
    // RLIMIT_CPU counts whole seconds; 500ms used to become 1 s without a word.
    check_error(
        "layers:\n  rlimits:\n    cpu: 500ms\n",
        "3:10",
        "the kernel limits CPU time in whole seconds",
    );
    check_error(
        "layers:\n  rlimits:\n    cpu: 1500ms\n",
        "3:10",
        "write cpu: 2s",
    );
}

/// `check` lists every section's error (and every mount entry's and Landlock path's), in
/// the order of the file, not only the first.
#[test]
fn check_reports_every_error_in_a_file() {
    let dir = Scratch::new("many");
    let path = dir.write(
        "many.yaml",
        "extends: strict\nlayers:\n  rlimits:\n    nofile: lots\n  cgroups:\n    pids:\n      max: 0\n  landlock:\n    read: [relative/path, /ok, also/relative]\n  seccomp:\n    allow: [no_such_call]\n  filesystem:\n    mounts:\n      - ro-bind: usr\n      - dir: /y\n        perms: \"9999\"\n",
    );
    let o = run(As::Root, &["check", &path]);
    assert_code(&o, 1);
    let lines: Vec<String> = stderr(&o).lines().map(str::to_string).collect();
    let want = [
        format!("{path}:4:13: \"lots\" is not a count"),
        format!("{path}:7:12: pids.max 0 leaves no room for the payload"),
        format!("{path}:9:12: path \"relative/path\" is relative"),
        format!("{path}:9:32: path \"also/relative\" is relative"),
        format!("{path}:11:13: unknown syscall \"no_such_call\""),
        // Each mount entry's own.
        format!("{path}:14:18: path \"usr\" is relative"),
        format!("{path}:16:16: perms \"9999\" is not an octal mode"),
    ];
    assert_eq!(lines.len(), want.len(), "{lines:#?}");
    for (line, want) in lines.iter().zip(&want) {
        assert!(line.starts_with(want.as_str()), "{line} / {want}");
    }
    // `run` stops at the first, with exit 125.
    let o = run(As::Root, &["run", "-p", &path, "true"]);
    assert_code(&o, 125);
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
}

both!(
    profiles_edit_opens_only_a_file_no_one_else_can_swap,
    |who| {
        // `profiles edit` runs the editor as its caller, often root: a link or a hard link
        // planted where the overlay goes (by a payload that wrote into a bind, or by another
        // user who owns the directory) must not hand the editor another file.
        let dir = Scratch::new("edit-planted");
        let owner = match who {
            As::Root => (0, 0),
            As::User => test_user().expect("the test user"),
        };
        let chown = |p: &Path, (uid, gid): (u32, u32)| {
            std::os::unix::fs::lchown(p, Some(uid), Some(gid)).unwrap();
        };
        let xdg = dir.path().join("xdg");
        let profiles = xdg.join("lasagna/profiles");
        std::fs::create_dir_all(&profiles).unwrap();
        for d in [&xdg, &xdg.join("lasagna"), &profiles] {
            chown(d, owner);
        }
        let victim = dir.path().join("victim.txt");
        std::fs::write(&victim, "victim\n").unwrap();
        chown(&victim, owner);
        let overlay = profiles.join("strict.local.yaml");
        let edit = |xdg: &Path| {
            let mut cmd = command(who, &["profiles", "edit", "strict"]);
            cmd.env("XDG_CONFIG_HOME", xdg)
                .env_remove("VISUAL")
                .env("EDITOR", "sh -c 'echo \"# edited\" >> \"$0\"'");
            output_within(cmd, DEADLINE)
        };
        let untouched = |o: &std::process::Output| {
            assert_eq!(
                std::fs::read_to_string(&victim).unwrap(),
                "victim\n",
                "{}",
                stderr(o)
            );
        };
        // A symlink to a file the caller can write.
        std::os::unix::fs::symlink(&victim, &overlay).unwrap();
        chown(&overlay, owner);
        let o = edit(&xdg);
        assert_ne!(o.status.code(), Some(0), "{}", stderr(&o));
        assert!(stderr(&o).contains("is a symlink"), "{}", stderr(&o));
        untouched(&o);
        // A dangling one: nothing is created where it points.
        std::fs::remove_file(&overlay).unwrap();
        let planted = dir.path().join("planted.txt");
        std::os::unix::fs::symlink(&planted, &overlay).unwrap();
        chown(&overlay, owner);
        let o = edit(&xdg);
        assert_ne!(o.status.code(), Some(0), "{}", stderr(&o));
        assert!(!planted.exists(), "created through the link");
        // A hard link: the same file under the overlay's name.
        std::fs::remove_file(&overlay).unwrap();
        std::fs::hard_link(&victim, &overlay).unwrap();
        let o = edit(&xdg);
        assert_ne!(o.status.code(), Some(0), "{}", stderr(&o));
        assert!(stderr(&o).contains("hard links"), "{}", stderr(&o));
        untouched(&o);
        // Control: with the entry gone the overlay is created, edited and checked.
        std::fs::remove_file(&overlay).unwrap();
        let o = edit(&xdg);
        assert_code(&o, 0);
        let text = std::fs::read_to_string(&overlay).unwrap();
        assert!(
            text.starts_with("# Merged on top of the profile strict")
                && text.ends_with("# edited\n"),
            "{text}"
        );
        let meta = std::fs::symlink_metadata(&overlay).unwrap();
        assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), owner.0);
        if who == As::Root {
            // Root with a configuration directory another user owns (HOME kept by `sudo -E`,
            // a shared XDG_CONFIG_HOME): refused, nothing created there, whatever is planted.
            let (uid, gid) = test_user().expect("the test user");
            let theirs = dir.path().join("theirs");
            let their_profiles = theirs.join("lasagna/profiles");
            std::fs::create_dir_all(&their_profiles).unwrap();
            for d in [&theirs, &theirs.join("lasagna"), &their_profiles] {
                chown(d, (uid, gid));
            }
            let o = edit(&theirs);
            assert_ne!(o.status.code(), Some(0), "{}", stderr(&o));
            assert!(
                stderr(&o).contains("can be changed by another user")
                    && stderr(&o).contains(&format!("owned by uid {uid}")),
                "{}",
                stderr(&o)
            );
            assert!(std::fs::read_dir(&their_profiles).unwrap().next().is_none());
            std::os::unix::fs::symlink(&victim, their_profiles.join("strict.local.yaml")).unwrap();
            let o = edit(&theirs);
            assert_ne!(o.status.code(), Some(0), "{}", stderr(&o));
            untouched(&o);
        }
    }
);

#[test]
fn a_warning_about_a_flag_names_the_flag() {
    let test = "a_warning_about_a_flag_names_the_flag";
    if !can_run(test, As::Root) {
        return;
    }
    // As root the payload is host uid 65534: a writable bind of root's directory that is
    // not idmapped (without seccomp's setuid-files edge it stays plain) is a warning,
    // located at the flag that asked for it.
    let dir = Scratch::new("flag-warn");
    let d = dir.path().display().to_string();
    let mut cmd = command(
        As::Root,
        &[
            "run",
            "-v",
            "-p",
            "strict",
            "--without",
            "seccomp",
            "--bind-cwd",
            "--",
            "/bin/true",
        ],
    );
    cmd.current_dir(dir.path());
    let o = output_within(cmd, DEADLINE);
    assert_code(&o, 0);
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "warning: bind {d} (--bind-cwd): the payload runs as host uid 65534"
        )),
        "{err}"
    );
    assert!(!err.contains("line 0"), "{err}");
    // A flag with a value is named with it.
    let bind = format!("{d}:/data");
    let o = run(
        As::Root,
        &[
            "run",
            "-v",
            "-p",
            "strict",
            "--without",
            "seccomp",
            "--bind",
            &bind,
            "--",
            "/bin/true",
        ],
    );
    assert_code(&o, 0);
    assert!(
        stderr(&o).contains(&format!("warning: bind /data (--bind {bind}):")),
        "{}",
        stderr(&o)
    );
    // A profile's own line is still named by file, line and column.
    let p = dir.write(
        "p.yaml",
        &format!("extends: strict\nlayers:\n  filesystem:\n    mounts:\n      - bind: /data\n        source: {d}\n        idmap: false\n"),
    );
    let o = run(As::Root, &["run", "-v", "-p", &p, "--", "/bin/true"]);
    assert!(
        stderr(&o).contains(&format!("warning: bind /data ({p}:5:")),
        "{}",
        stderr(&o)
    );
}

/// The home directory /etc/passwd gives `user`.
fn passwd_home(user: &str) -> String {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > 5 && f[0] == user)
        .map(|f| f[5].to_string())
        .unwrap_or_else(|| panic!("{user} has no entry in /etc/passwd"))
}

// `${GID}`, `${HOME}`, the XDG directories and `${ENV:NAME}` are the caller's: with nothing
// in the environment, its gid and its home from /etc/passwd, the XDG directories below that
// home and /run/user/UID; with the environment's values, those.
both!(variables_are_the_callers_ids_home_and_environment, |who| {
    let dir = Scratch::new("caller-vars");
    let p = dir.write(
        "vars.yaml",
        "extends: strict\nlayers:\n  process:\n    env:\n      set:\n        V_GID: \"${GID}\"\n        V_HOME: \"${HOME}\"\n        V_CONFIG: \"${XDG_CONFIG_HOME}\"\n        V_CACHE: \"${XDG_CACHE_HOME}\"\n        V_RUNTIME: \"${XDG_RUNTIME_DIR}\"\n        V_ENV: \"${ENV:LASAGNA_VARS_SET}\"\n        V_DEFAULT: \"${ENV:LASAGNA_VARS_SET:-the default}\"\n",
    );
    let (user, uid, gid) = match who {
        As::Root => ("root".to_string(), 0, 0),
        As::User => {
            let (uid, gid) = test_user().unwrap();
            (TEST_USER.to_string(), uid, gid)
        }
    };
    let seen = |env: &[(&str, &str)]| {
        let mut cmd = command(
            who,
            &[
                "run",
                "-p",
                &p,
                "--",
                "/bin/sh",
                "-c",
                "echo \"$V_GID|$V_HOME|$V_CONFIG|$V_CACHE|$V_RUNTIME|$V_ENV|$V_DEFAULT\"",
            ],
        );
        for k in [
            "HOME",
            "XDG_CONFIG_HOME",
            "XDG_CACHE_HOME",
            "XDG_RUNTIME_DIR",
            "LASAGNA_VARS_SET",
        ] {
            cmd.env_remove(k);
        }
        cmd.envs(env.iter().copied());
        let o = output_within(cmd, DEADLINE);
        assert_code(&o, 0);
        stdout(&o)
    };
    // Nothing set but the variable `${ENV:...}` names: the fallbacks, from the account.
    let home = passwd_home(&user);
    assert_eq!(
        seen(&[("LASAGNA_VARS_SET", "set by the caller")]),
        format!("{gid}|{home}|{home}/.config|{home}/.cache|/run/user/{uid}|set by the caller|set by the caller\n")
    );
    // Control: the environment's values, where it has them, win over the fallbacks.
    let env_home = format!("/srv/home-of-{}", who.tag());
    assert_eq!(
        seen(&[
            ("HOME", env_home.as_str()),
            ("XDG_CONFIG_HOME", "/srv/config"),
            ("XDG_CACHE_HOME", "/srv/cache"),
            ("XDG_RUNTIME_DIR", "/srv/run"),
            ("LASAGNA_VARS_SET", "another value"),
        ]),
        format!("{gid}|{env_home}|/srv/config|/srv/cache|/srv/run|another value|another value\n")
    );
    // There is no `${XDG_DATA_HOME}`: an unknown variable, with the list of known ones.
    let data = dir.write(
        "data.yaml",
        "extends: strict\nlayers:\n  process:\n    cwd: ${XDG_DATA_HOME}/x\n",
    );
    let o = run(who, &["check", &data]);
    assert_code(&o, 1);
    assert!(
        stderr(&o).contains(&format!("{data}:4:10: unknown variable ${{XDG_DATA_HOME}}"))
            && stderr(&o).contains("known: ${HOME}"),
        "{}",
        stderr(&o)
    );
    // Control: the same line with a known one checks.
    let config = dir.write(
        "config.yaml",
        "extends: strict\nlayers:\n  process:\n    cwd: ${XDG_CONFIG_HOME}/x\n",
    );
    let o = run(who, &["check", &config]);
    assert_code(&o, 0);
});

// With XDG_CONFIG_HOME unset, the user's profiles are in $HOME/.config/lasagna/profiles.
both!(
    without_xdg_config_home_profiles_are_found_under_home,
    |who| {
        let name = marker("lasagna-home", who);
        let dir = Scratch::new("home-config");
        let home = dir.path().join("home");
        let profiles = home.join(".config/lasagna/profiles");
        std::fs::create_dir_all(&profiles).unwrap();
        let _ = std::process::Command::new("chmod")
            .args(["-R", "0755"])
            .arg(&home)
            .status();
        let other = Scratch::new("home-config-xdg");
        let lookup = |xdg: Option<&Path>, args: &[&str]| {
            let mut cmd = command(who, args);
            cmd.env("HOME", &home);
            match xdg {
                Some(d) => cmd.env("XDG_CONFIG_HOME", d),
                None => cmd.env_remove("XDG_CONFIG_HOME"),
            };
            output_within(cmd, DEADLINE)
        };
        let not_found = |o: &std::process::Output| {
            assert_ne!(o.status.code(), Some(0), "{}", stdout(o));
            assert!(
                stderr(o).contains(&format!("no profile named \"{name}\"")),
                "{}",
                stderr(o)
            );
        };
        // Control: the name without the file is not found.
        not_found(&lookup(None, &["run", "-p", &name]));
        let file = dir.write(
            &format!("home/.config/lasagna/profiles/{name}.yaml"),
            "extends: strict\ncommand: [/bin/echo, from ~/.config]\n",
        );
        let o = lookup(None, &["run", "-p", &name]);
        assert_code(&o, 0);
        assert_eq!(stdout(&o), "from ~/.config\n");
        let o = lookup(None, &["profiles", "which", &name]);
        assert_eq!(stdout(&o).lines().last(), Some(file.as_str()));
        // Control: with XDG_CONFIG_HOME set, ~/.config is not where profiles are looked up.
        not_found(&lookup(Some(other.path()), &["run", "-p", &name]));
    }
);

// A NAME.local.yaml in /etc/lasagna/profiles is merged before the user's: both apply, and
// where they set the same thing the user's wins.
both!(the_systems_overlay_is_merged_before_the_users, |who| {
    let name = marker("lasagna-overlays", who);
    let dir = Scratch::new("overlay-order");
    let profiles = dir.path().join("xdg/lasagna/profiles");
    std::fs::create_dir_all(&profiles).unwrap();
    let _ = std::process::Command::new("chmod")
        .args(["-R", "0755"])
        .arg(dir.path().join("xdg"))
        .status();
    let env = |pairs: &str| format!("layers:\n  process:\n    env:\n      set:\n{pairs}");
    let own = dir.write(
        &format!("xdg/lasagna/profiles/{name}.yaml"),
        &format!(
            "extends: strict\n{}",
            env("        BOTH: profile\n        ETC: none\n        USER_SET: none\n")
        ),
    );
    let mut etc = EtcProfiles::new();
    let system = etc.write(
        &format!("{name}.local.yaml"),
        &env("        BOTH: etc\n        ETC: etc\n"),
    );
    let users = dir.write(
        &format!("xdg/lasagna/profiles/{name}.local.yaml"),
        &env("        BOTH: user\n        USER_SET: user\n"),
    );
    let xdg = dir.path().join("xdg");
    let with_xdg = |args: &[&str]| {
        let mut cmd = command(who, args);
        cmd.env("XDG_CONFIG_HOME", &xdg);
        output_within(cmd, DEADLINE)
    };
    let seen = || {
        let o = with_xdg(&[
            "run",
            "-p",
            &name,
            "--",
            "/bin/sh",
            "-c",
            "echo $BOTH $ETC $USER_SET",
        ]);
        assert_code(&o, 0);
        o
    };
    let o = with_xdg(&["profiles", "which", &name]);
    assert_code(&o, 0);
    assert!(
        stdout(&o).ends_with(&format!("{own}\n{system}\n{users}\n")),
        "{}",
        stdout(&o)
    );
    let o = seen();
    assert_eq!(stdout(&o), "user etc user\n");
    // Each overlay is named at the run.
    for f in [&system, &users] {
        assert!(
            stderr(&o).contains(&format!("{name}: using {f}")),
            "{}",
            stderr(&o)
        );
    }
    // Control: without the user's overlay the system's value is the one left.
    std::fs::remove_file(&users).unwrap();
    assert_eq!(stdout(&seen()), "etc etc none\n");
    // Control: without either, the profile's own.
    drop(etc);
    assert_eq!(stdout(&seen()), "profile none none\n");
});

// `profiles show NAME` prints the text of the one file NAME finds, as written: not the
// merged profile, not its overlays; an unknown name is a usage error (exit 2) that says
// so, as it is for `which` and `edit`.
both!(profiles_show_prints_the_file_the_name_finds, |who| {
    let name = marker("lasagna-show", who);
    let dir = Scratch::new("show");
    let profiles = dir.path().join("xdg/lasagna/profiles");
    std::fs::create_dir_all(&profiles).unwrap();
    let _ = std::process::Command::new("chmod")
        .args(["-R", "0755"])
        .arg(dir.path().join("xdg"))
        .status();
    let text = "# as written, ${HOME} unexpanded\nextends: strict\ndescription: shown\n";
    let file = dir.write(&format!("xdg/lasagna/profiles/{name}.yaml"), text);
    dir.write(
        &format!("xdg/lasagna/profiles/{name}.local.yaml"),
        "description: from the overlay\n",
    );
    let xdg = dir.path().join("xdg");
    let show = |xdg: &Path, name: &str| {
        let mut cmd = command(who, &["profiles", "show", name]);
        cmd.env("XDG_CONFIG_HOME", xdg);
        output_within(cmd, DEADLINE)
    };
    let o = show(&xdg, &name);
    assert_code(&o, 0);
    assert_eq!(stdout(&o), text);
    // A shipped profile: its own text, the one in the source tree.
    let empty = Scratch::new("show-empty");
    let o = show(empty.path(), "strict");
    assert_code(&o, 0);
    let shipped =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/profiles/strict.yaml"))
            .unwrap();
    assert_eq!(stdout(&o), shipped);
    // Control: an unknown name prints nothing and says why, with the usage error's code.
    let missing = format!("{name}-missing");
    let o = show(&xdg, &missing);
    assert_code(&o, 2);
    assert_eq!(stdout(&o), "");
    let why = format!("no profile named \"{missing}\"");
    assert!(stderr(&o).contains(&why), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("(hint: shipped profiles: "),
        "{}",
        stderr(&o)
    );
    // The other actions that take a name say the same, with the same code; `edit` opens
    // no editor and writes no overlay.
    for action in ["which", "edit"] {
        let mut cmd = command(who, &["profiles", action, &missing]);
        cmd.env("XDG_CONFIG_HOME", &xdg)
            .env_remove("VISUAL")
            .env("EDITOR", "true");
        let o = output_within(cmd, DEADLINE);
        assert_code(&o, 2);
        assert_eq!(stdout(&o), "", "{action}");
        assert!(stderr(&o).contains(&why), "{action}: {}", stderr(&o));
    }
    assert!(!profiles.join(format!("{missing}.local.yaml")).exists());
    // A file another user owns: root refuses to read it, its owner reads it.
    let (uid, gid) = test_user().expect("the test user");
    std::os::unix::fs::chown(&file, Some(uid), Some(gid)).unwrap();
    let o = show(&xdg, &name);
    match who {
        As::Root => {
            assert_ne!(o.status.code(), Some(0));
            assert_eq!(stdout(&o), "");
            assert!(
                stderr(&o).contains(&format!(
                    "refused as root: {file} can be changed by another user"
                )),
                "{}",
                stderr(&o)
            );
        }
        As::User => {
            assert_code(&o, 0);
            assert_eq!(stdout(&o), text);
        }
    }
});

// `profiles edit` checks the merged profile: an overlay that is a valid profile on its own
// but hides a mount of the profile it adjusts is reported, at both places, with exit 1.
both!(profiles_edit_checks_the_merged_profile, |who| {
    let name = marker("lasagna-edit", who);
    let dir = Scratch::new("edit-merged");
    let owner = match who {
        As::Root => (0, 0),
        As::User => test_user().expect("the test user"),
    };
    let xdg = dir.path().join("xdg");
    let profiles = xdg.join("lasagna/profiles");
    std::fs::create_dir_all(&profiles).unwrap();
    // The caller's own directories: `profiles edit` writes only where no one else can.
    for d in [&xdg, &xdg.join("lasagna"), &profiles] {
        std::os::unix::fs::chown(d, Some(owner.0), Some(owner.1)).unwrap();
    }
    let own = profiles.join(format!("{name}.yaml"));
    std::fs::write(
        &own,
        "extends: strict\nlayers:\n  filesystem:\n    mounts:\n      - tmpfs: /srv/inner\n",
    )
    .unwrap();
    let own = own.to_string_lossy().into_owned();
    let overlay = profiles.join(format!("{name}.local.yaml"));
    let edit = |adds: &str| {
        let addition = dir.write("addition.yaml", adds);
        let mut cmd = command(who, &["profiles", "edit", &name]);
        cmd.env("XDG_CONFIG_HOME", &xdg)
            .env_remove("VISUAL")
            .env("EDITOR", format!("sh -c 'cat {addition} >> \"$0\"'"));
        output_within(cmd, DEADLINE)
    };
    let hides = "layers:\n  filesystem:\n    mounts:\n      - tmpfs: /srv\n";
    // On its own the overlay's text is a valid profile.
    let alone = dir.write("alone.yaml", &format!("extends: strict\n{hides}"));
    let o = run(who, &["check", &alone]);
    assert_code(&o, 0);
    // Merged on top of the profile, its /srv hides the profile's /srv/inner. The header
    // `edit` writes is 7 lines: the overlay's mount is on line 11.
    let o = edit(hides);
    assert_code(&o, 1);
    let ov = overlay.display();
    assert!(
        stderr(&o).contains(&format!(
            "{own}:5:16: mount /srv/inner would be hidden by the later mount /srv at {ov}:11:16"
        )),
        "{}",
        stderr(&o)
    );
    // Control: an overlay that merges cleanly is accepted.
    std::fs::remove_file(&overlay).unwrap();
    let o = edit("layers:\n  filesystem:\n    mounts:\n      - tmpfs: /opt\n");
    assert_code(&o, 0);
    assert_eq!(stdout(&o), format!("{ov}\n"), "{}", stderr(&o));
});
