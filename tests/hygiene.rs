//! Nothing left behind, nothing claimed that was not observed: zombies for a pid-1 caller,
//! orphans without a pid namespace, a stopped init, unbounded tmpfs, host ids, failure
//! attribution, passed fds, and the messages around them.

mod common;
use common::*;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn profile(dir: &Scratch, name: &str, layers: &str) -> String {
    dir.write(name, &format!("extends: strict\nlayers:\n{layers}"))
}

fn count_zombies_script() -> &'static str {
    r#"
import os, subprocess, sys
for _ in range(int(sys.argv[2])):
    subprocess.run([sys.argv[1], "run", "-p", "strict", "--", "/bin/true"], check=True)
z = 0
for p in os.listdir("/proc"):
    if p.isdigit():
        try:
            if open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[0] == "Z":
                z += 1
        except OSError:
            pass
print(z)
"#
}

both!(a_pid_one_caller_is_left_no_zombie, |who| {
    // A container's service is pid 1 of its pid namespace and reaps only its own children:
    // every run must collect what it created before it returns.
    let dir = Scratch::new("pid1");
    let script = dir.write("caller.py", count_zombies_script());
    let mut cmd = match who {
        As::Root => Command::new("unshare"),
        As::User => {
            let (uid, gid) = test_user().unwrap();
            let mut c = Command::new("setpriv");
            c.arg(format!("--reuid={uid}"))
                .arg(format!("--regid={gid}"))
                .arg("--clear-groups")
                .arg("--")
                .arg("unshare")
                .arg("--map-current-user");
            c
        }
    };
    cmd.args(["-fp", "--mount-proc", "python3", &script, &bin(), "20"])
        .current_dir("/")
        .stdin(Stdio::null());
    let o = output_within(cmd, DEADLINE);
    assert_code(&o, 0);
    assert_eq!(stdout(&o).trim(), "0", "zombies left to a pid-1 caller");
});

both!(
    orphans_do_not_outlive_a_run_without_a_pid_namespace,
    |who| {
        let dir = Scratch::new("orphans");
        let p = profile(
            &dir,
            "nopid.yaml",
            "  namespaces:\n    pid: false\n  filesystem:\n    mode: best-effort\n  landlock:\n    mode: off\n",
        );
        let tag = format!("7.{}{}", std::process::id(), who as u8);
        let o = run(
            who,
            &[
                "run",
                "-p",
                &p,
                "--",
                "/bin/sh",
                "-c",
                &format!("echo started; exec >/dev/null 2>&1; setsid sleep {tag} & sleep {tag} & (sleep {tag} &)"),
            ],
        );
        assert_code(&o, 0);
        assert_eq!(stdout(&o), "started\n");
        // The moment run returns, none of them is left.
        let left = processes_with(&format!("sleep {tag}"));
        for pid in &left {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(*pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        assert!(left.is_empty(), "outlived the run: {left:?}");
        // explain says the same.
        let o = run(who, &["explain", &p]);
        assert!(stdout(&o).contains("the host's /proc"), "{}", stdout(&o));
    }
);

both!(a_stopped_init_does_not_hang_the_run, |who| {
    // A host process running as the sandbox's uid can SIGSTOP its init; the supervisor
    // resumes it, and the run ends when the payload does.
    let mut child = command(
        who,
        &[
            "run",
            "-p",
            "strict",
            "--",
            "/bin/sh",
            "-c",
            "sleep 0.5; exit 6",
        ],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let init = wait_for_child_of(child.id());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(init),
        nix::sys::signal::Signal::SIGSTOP,
    )
    .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("the run hangs on a stopped init");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(status.code(), Some(6));
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(
        err.contains("init was stopped by another process and resumed"),
        "{err}"
    );
});

/// The first child of `pid`, waiting for it to appear.
fn wait_for_child_of(pid: u32) -> i32 {
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let children =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        if let Some(c) = children
            .split_whitespace()
            .next()
            .and_then(|c| c.parse().ok())
        {
            return c;
        }
        assert!(Instant::now() < until, "no child of {pid}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

both!(every_tmpfs_has_a_size, |who| {
    let o = run(
        who,
        &[
            "run",
            "-p",
            "strict",
            "--",
            "/bin/sh",
            "-c",
            "df -k /dev/shm /tmp /work | tail -n +2",
        ],
    );
    assert_code(&o, 0);
    let sizes: Vec<u64> = stdout(&o)
        .lines()
        .map(|l| l.split_whitespace().nth(1).unwrap().parse().unwrap())
        .collect();
    assert_eq!(
        sizes,
        vec![64 * 1024, 256 * 1024, 256 * 1024],
        "{}",
        stdout(&o)
    );
    // Settable, and never unlimited.
    let dir = Scratch::new("tmpfs-size");
    let p = profile(
        &dir,
        "shm.yaml",
        "  filesystem:\n    dev-shm-size: 8M\n    mounts:\n      - tmpfs: /scratch\n",
    );
    let o = run(
        who,
        &[
            "run",
            "-p",
            &p,
            "--without",
            "landlock",
            "--",
            "/bin/sh",
            "-c",
            "df -k /dev/shm /scratch | tail -n +2",
        ],
    );
    assert_code(&o, 0);
    let sizes: Vec<u64> = stdout(&o)
        .lines()
        .map(|l| l.split_whitespace().nth(1).unwrap().parse().unwrap())
        .collect();
    assert_eq!(sizes, vec![8 * 1024, 256 * 1024], "{}", stdout(&o));
    // The size holds: 10 MiB do not fit in 8 MiB, and fail for want of space; the same
    // write into 16 MiB (the control, nothing else changed) fits.
    let write = "for d in /dev/shm /scratch; do \
                 if head -c 10485760 /dev/zero > $d/f 2>/tmp/e; then echo $d: fits; \
                 else echo $d: $(grep -o 'No space left on device' /tmp/e); fi; rm -f $d/f; done";
    let sized = |name: &str, size: &str| {
        profile(
            &dir,
            name,
            &format!("  filesystem:\n    dev-shm-size: {size}\n    mounts:\n      - tmpfs: /scratch\n        size: {size}\n"),
        )
    };
    let (small, roomy) = (sized("small.yaml", "8M"), sized("roomy.yaml", "16M"));
    let c = Contrast::of(
        who,
        &["-p", &small, "--without", "landlock"],
        &["-p", &roomy, "--without", "landlock"],
        &["/bin/sh", "-c", write],
    );
    c.prints(
        "/dev/shm: No space left on device\n/scratch: No space left on device\n",
        "/dev/shm: fits\n/scratch: fits\n",
    );
    let p = profile(
        &dir,
        "unlimited.yaml",
        "  filesystem:\n    mounts:\n      - tmpfs: /big\n        size: unlimited\n",
    );
    let o = run(who, &["check", &p]);
    assert_code(&o, 1);
    assert!(
        stderr(&o).contains("a tmpfs always has a size"),
        "{}",
        stderr(&o)
    );
});

both!(a_profile_tmpfs_named_dev_keeps_nodev, |who| {
    let dir = Scratch::new("nodev");
    let p = profile(
        &dir,
        "p.yaml",
        "  filesystem:\n    mounts:\n      - tmpfs: /x/dev\n",
    );
    let o = run(
        who,
        &[
            "run",
            "-p",
            &p,
            "--without",
            "landlock",
            "--",
            "/bin/sh",
            "-c",
            "grep ' /x/dev ' /proc/self/mountinfo; grep ' /dev ' /proc/self/mountinfo",
        ],
    );
    assert_code(&o, 0);
    let out = stdout(&o);
    let mut lines = out.lines();
    let profile_dev = lines.next().unwrap();
    let own_dev = lines.next().unwrap();
    assert!(profile_dev.contains("nodev"), "{profile_dev}");
    // Control: lasagna's own /dev is the one without nodev.
    assert!(
        !own_dev.split(' ').nth(5).unwrap().contains("nodev"),
        "{own_dev}"
    );
});

/// A host user and a host group the test adds (with `useradd`/`groupadd`) and removes.
struct HostNames {
    user: String,
    group: String,
}

impl HostNames {
    fn add(uid: u32, gid: u32) -> HostNames {
        // The test user first: two useradds at once would contend for /etc/passwd's lock.
        test_user().expect("test user");
        let n = std::process::id();
        let names = HostNames {
            user: format!("lsg-auto-u{n}"),
            group: format!("lsg-auto-g{n}"),
        };
        let ok = |c: &mut Command| {
            let o = c.output().expect("groupadd/useradd");
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(o.status.success(), "{c:?}: {err}");
        };
        ok(Command::new("groupadd").args(["-g", &gid.to_string(), &names.group]));
        // Its warning that the uid is above UID_MAX is expected (stderr is kept for errors).
        ok(Command::new("useradd")
            .args([
                "-M",
                "-N",
                "-s",
                "/usr/sbin/nologin",
                "-u",
                &uid.to_string(),
            ])
            .arg(&names.user));
        names
    }
}

impl Drop for HostNames {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.user).status();
        let _ = Command::new("groupdel").arg(&self.group).status();
    }
}

/// The host's view of a running payload: the `Uid:`, `Gid:` and `Groups:` lines of
/// `/proc/PID/status` of lasagna's init's child (the payload), once it has exec'd `sleep`.
fn payload_ids_on_the_host(lasagna: u32) -> (String, String, String) {
    let init = first_child(lasagna);
    let payload = first_child(init as u32);
    let mut status = String::new();
    wait_until("the payload execs sleep", Duration::from_secs(10), || {
        let cmd = std::fs::read(format!("/proc/{payload}/cmdline")).unwrap_or_default();
        status = std::fs::read_to_string(format!("/proc/{payload}/status")).unwrap_or_default();
        cmd.starts_with(b"/bin/sleep\0")
    });
    let line = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_default()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    (line("Uid:"), line("Gid:"), line("Groups:"))
}

#[test]
fn host_uid_auto_gives_concurrent_runs_ids_of_their_own() {
    let test = "host_uid_auto_gives_concurrent_runs_ids_of_their_own";
    if !can_run(test, As::Root) {
        return;
    }
    // A range of four ids of this test's own (inside the default range): the first is a
    // group's and the second a user's on the host, so only the last two can be given.
    let first = 1_879_100_000 + (std::process::id() % 10_000) * 4;
    let _names = HostNames::add(first + 1, first);
    let dir = Scratch::new("host-auto");
    let p = profile(
        &dir,
        "auto.yaml",
        &format!(
            "  namespaces:\n    host-uid: auto\n    host-id-range: {first}-{}\n",
            first + 3
        ),
    );
    let sleeping = |profile: &str| {
        let mut cmd = command(As::Root, &["run", "-p", profile, "--", "/bin/sleep", "3"]);
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        Spawned::new(&mut cmd)
    };
    let runs: Vec<Spawned> = (0..2).map(|_| sleeping(&p)).collect();
    let mut ids: Vec<u32> = Vec::new();
    for r in &runs {
        let (uid, gid, groups) = payload_ids_on_the_host(r.id());
        let id: u32 = uid.split(' ').next().unwrap().parse().unwrap();
        // Real, effective, saved and filesystem ids alike, the same gid, no other group.
        assert_eq!(uid, format!("{id} {id} {id} {id}"));
        assert_eq!(gid, uid, "the gid is the uid");
        assert_eq!(groups, "", "no supplementary group");
        ids.push(id);
    }
    ids.sort();
    assert_eq!(
        ids,
        [first + 2, first + 3],
        "two concurrent runs, two ids of the range, none that /etc/group or /etc/passwd names"
    );
    // While both hold their ids, a third run has none left: refused before it starts.
    let o = run(As::Root, &["run", "-p", &p, "--", "/bin/true"]);
    assert_code(&o, 125);
    assert!(
        stderr(&o).contains(&format!("every host id in {first}-{} is in use", first + 3)),
        "{}",
        stderr(&o)
    );
    for r in runs {
        assert_code(&r.output_within(DEADLINE), 0);
    }
    // Control: without `auto`, concurrent runs share 65534.
    let runs: Vec<Spawned> = (0..2).map(|_| sleeping("strict")).collect();
    for r in &runs {
        let (uid, gid, _) = payload_ids_on_the_host(r.id());
        assert_eq!(uid, "65534 65534 65534 65534");
        assert_eq!(gid, "65534 65534 65534 65534");
    }
    for r in runs {
        assert_code(&r.output_within(DEADLINE), 0);
    }
    // explain says who else shares the fixed uid.
    let o = run(As::Root, &["explain", "strict"]);
    assert!(
        stdout(&o).contains("host uid 65534") && stdout(&o).contains("is shared"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn host_uid_zero_needs_a_key_that_says_so() {
    let test = "host_uid_zero_needs_a_key_that_says_so";
    if !can_run(test, As::Root) {
        return;
    }
    let dir = Scratch::new("host-zero");
    let p = profile(
        &dir,
        "zero.yaml",
        "  namespaces:\n    user: false\n    host-uid: 0\n    host-gid: 0\n",
    );
    let o = run(As::Root, &["run", "-p", &p, "--", "/usr/bin/id", "-u"]);
    assert_code(&o, 125);
    assert!(stderr(&o).contains("run-as-host-root"), "{}", stderr(&o));
    let p = profile(
        &dir,
        "root.yaml",
        "  namespaces:\n    user: false\n    host-uid: 0\n    host-gid: 0\n    run-as-host-root: true\n",
    );
    let o = run(
        As::Root,
        &["run", "-v", "-p", &p, "--", "/usr/bin/id", "-u"],
    );
    assert_code(&o, 0);
    assert_eq!(stdout(&o), "0\n");
    assert!(
        stderr(&o).contains("WARNING: the payload runs as host root"),
        "{}",
        stderr(&o)
    );
}

both!(a_failure_marks_layers_by_launch_order, |who| {
    let dir = Scratch::new("order");
    let p = profile(&dir, "cwd.yaml", "  process:\n    cwd: /nowhere\n");
    let o = run(
        who,
        &["run", "-p", &p, "--report-fd", "1", "--", "/bin/true"],
    );
    assert_code(&o, 125);
    let r: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let outcome = |l: &str| {
        r["layers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["layer"] == l)
            .unwrap()["outcome"]
            .as_str()
            .unwrap()
            .to_string()
    };
    // chdir is step 6: after the filesystem and rlimits, before capabilities.
    assert_eq!(outcome("filesystem"), "applied");
    assert_eq!(outcome("rlimits"), "applied");
    assert_eq!(outcome("process"), "failed");
    for l in ["capabilities", "landlock", "seccomp"] {
        assert_eq!(outcome(l), "not-reached", "{l}");
    }
    assert_eq!(r["failed_step"]["number"], "6");
    // The kernel's Landlock status is reported beside the plan after a real run.
    let o = run(
        who,
        &["run", "-p", "strict", "--report-fd", "1", "--", "/bin/true"],
    );
    assert_code(&o, 0);
    let r: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let ll = r["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["layer"] == "landlock")
        .unwrap();
    assert!(
        ll["observed"]
            .as_str()
            .unwrap()
            .starts_with("kernel: fully enforced"),
        "{ll:#}"
    );
    assert!(
        ll["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n == "planned: fully enforced"),
        "{ll:#}"
    );
});

both!(passed_fds_stay_open_and_no_other, |who| {
    // The caller opens fds 7 and 8; only 7 is passed.
    let script = "exec \"$0\" run --pass-fd 7 -- /bin/sh -c 'for fd in 7 8; do [ -e /proc/self/fd/$fd ] && echo open $fd; done; cat <&7' 7</etc/hostname 8</etc/hostname";
    let o = output_within(shell(who, script), DEADLINE);
    assert_code(&o, 0);
    let host = std::fs::read_to_string("/etc/hostname").unwrap();
    assert_eq!(stdout(&o), format!("open 7\n{host}"));
    // A fd that is not open is an error, not a silent no-op.
    let o = output_within(
        shell(who, "exec \"$0\" run --pass-fd 9 -- /bin/true"),
        DEADLINE,
    );
    assert_code(&o, 2);
    assert!(stderr(&o).contains("--pass-fd 9"), "{}", stderr(&o));
    // The old key says what replaced it.
    let dir = Scratch::new("close-fds");
    let p = profile(&dir, "p.yaml", "  process:\n    close-fds: false\n");
    let o = run(who, &["check", &p]);
    assert_code(&o, 1);
    assert!(stderr(&o).contains("pass-fds"), "{}", stderr(&o));
});

#[test]
fn messages_name_every_layer_and_suggest_names() {
    let o = run(As::User, &["--help"]);
    for l in [
        "namespaces",
        "filesystem",
        "cgroups",
        "capabilities",
        "rlimits",
        "process",
        "Landlock",
        "seccomp",
    ] {
        assert!(stdout(&o).contains(l), "--help names {l}: {}", stdout(&o));
    }
    let o = run(As::User, &["run", "--without", "landlok", "--", "true"]);
    assert_code(&o, 2);
    assert!(
        stderr(&o).contains("did you mean \"landlock\""),
        "{}",
        stderr(&o)
    );
    let o = run(As::User, &["run", "-p", "stirct", "--", "true"]);
    assert_code(&o, 125);
    assert!(
        stderr(&o).contains("did you mean \"strict\""),
        "{}",
        stderr(&o)
    );
    let dir = Scratch::new("typo");
    let p = dir.write(
        "typo.yaml",
        "extends: strict\nlayers:\n  landlok:\n    mode: off\n",
    );
    let o = run(As::User, &["check", &p]);
    assert!(
        stderr(&o).contains("did you mean `landlock`"),
        "{}",
        stderr(&o)
    );
    let p = dir.write("multi.yaml", "extends: strict\n---\nextends: base\n");
    let o = run(As::User, &["check", &p]);
    assert!(stderr(&o).contains("one YAML document"), "{}", stderr(&o));
}

#[test]
fn host_uid_auto_without_a_pid_namespace_is_refused() {
    // The picked uid's lock lives as long as the supervisor. Without a pid namespace the
    // run's processes outlive a SIGKILLed supervisor (nothing ends them), and the next run
    // would be given the uid they still run as: it could signal and ptrace them, and they
    // it. So `auto` needs the pid namespace, whose end kills every process in it.
    let test = "host_uid_auto_without_a_pid_namespace_is_refused";
    if !can_run(test, As::Root) {
        return;
    }
    let dir = Scratch::new("host-auto-nopid");
    let p = profile(
        &dir,
        "auto-nopid.yaml",
        "  namespaces:\n    host-uid: auto\n    pid: false\n",
    );
    let o = run(As::Root, &["run", "-p", &p, "--", "/bin/true"]);
    assert_code(&o, 125);
    assert!(
        stderr(&o).contains("host-uid: auto needs the pid namespace"),
        "{}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains("refused before anything was created"),
        "{}",
        stderr(&o)
    );
    assert_code(&run(As::Root, &["check", &p]), 1);
    // Control: with its pid namespace the same profile runs.
    let q = profile(&dir, "auto.yaml", "  namespaces:\n    host-uid: auto\n");
    assert_code(&run(As::Root, &["run", "-p", &q, "--", "/bin/true"]), 0);
}
