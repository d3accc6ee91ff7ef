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

/// The host pids of a run's init (lasagna's child) and payload (init's child), once the
/// payload has exec'd `/bin/sleep`.
fn init_and_sleeping_payload(lasagna: u32) -> (i32, i32) {
    let init = first_child(lasagna);
    let payload = first_child(init as u32);
    wait_until("the payload execs sleep", Duration::from_secs(10), || {
        let cmd = std::fs::read(format!("/proc/{payload}/cmdline")).unwrap_or_default();
        cmd.starts_with(b"/bin/sleep\0")
    });
    (init, payload)
}

/// The host's view of a running payload: the `Uid:`, `Gid:` and `Groups:` lines of
/// `/proc/PID/status` of lasagna's init's child (the payload), once it has exec'd `sleep`.
fn payload_ids_on_the_host(lasagna: u32) -> (String, String, String) {
    let (_, payload) = init_and_sleeping_payload(lasagna);
    let status = std::fs::read_to_string(format!("/proc/{payload}/status")).unwrap();
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

// ---- the README's security notes ---------------------------------------------------------

/// The uid that owns `/proc/PID/FILE`: the process's euid while it is dumpable, root once it
/// is not (proc(5), "PR_SET_DUMPABLE").
fn proc_owner(pid: i32, file: &str) -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/{pid}/{file}"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/{file}: {e}"))
        .uid()
}

both!(init_is_not_dumpable, |who| {
    // Inside, the payload tries init's environment and memory, then reads its own.
    let inside = "for f in environ mem; do head -c1 /proc/1/$f 2>&1 >/dev/null; done; \
                  head -c1 /proc/self/environ >/dev/null && echo own environ read; \
                  exec /bin/sleep 30";
    let lasagna = spawn(who, &["run", "-p", "strict", "--", "/bin/sh", "-c", inside]);
    let (init, payload) = init_and_sleeping_payload(lasagna.id());
    // On the host the kernel gives a non-dumpable process's /proc files to root; the
    // payload (the control: dumpable, the same host uid as init) keeps its own uid on them.
    let uid_of = |pid: i32| {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let line = status.lines().find_map(|l| l.strip_prefix("Uid:")).unwrap();
        line.split_whitespace()
            .nth(1)
            .unwrap()
            .parse::<u32>()
            .unwrap()
    };
    let host_uid = uid_of(payload);
    assert_ne!(host_uid, 0, "the payload runs as an unprivileged host uid");
    assert_eq!(
        uid_of(init),
        host_uid,
        "init runs as the payload's host uid"
    );
    for file in ["environ", "mem", "fd"] {
        assert_eq!(proc_owner(init, file), 0, "init's {file}: non-dumpable");
        assert_eq!(proc_owner(payload, file), host_uid, "the payload's {file}");
    }
    if who == As::User {
        // The caller's own uid, on the host, reads the payload's environment but not
        // init's. (As root the run's host uid is 65534 inside a user namespace root owns,
        // which may read neither, so there is no control for that read.)
        let read = |pid: i32| {
            let path = format!("/proc/{pid}/environ");
            output_within(as_who(who, &["head", "-c1", &path]), DEADLINE)
        };
        let o = read(init);
        assert_code(&o, 1);
        assert!(stderr(&o).contains("Permission denied"), "{}", stderr(&o));
        assert_code(&read(payload), 0);
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(lasagna.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let o = lasagna.output_within(DEADLINE);
    assert_eq!(
        stdout(&o),
        "head: cannot open '/proc/1/environ' for reading: Permission denied\n\
         head: cannot open '/proc/1/mem' for reading: Permission denied\n\
         own environ read\n",
        "{}",
        stderr(&o)
    );
});

#[test]
fn roots_supplementary_groups_are_dropped() {
    let test = "roots_supplementary_groups_are_dropped";
    if !can_run(test, As::Root) {
        return;
    }
    // Two groups no name stands for; a file only the first may read. The payload runs as
    // host uid 65534, with a user namespace (where setgroups is denied, so the supervisor
    // drops them) and without one (where the child drops them with its uid switch).
    let group = 2_900_000_000 + std::process::id() % 100_000;
    let groups = format!("{group},{}", group + 1);
    let dir = Scratch::new("groups");
    let secret = dir.write("secret", "for the group\n");
    let chown = Command::new("chown")
        .arg(format!("0:{group}"))
        .arg(&secret)
        .status()
        .unwrap();
    assert!(chown.success());
    let chmod = Command::new("chmod").arg("0040").arg(&secret).status();
    assert!(chmod.unwrap().success());
    let no_userns = profile(&dir, "no-userns.yaml", "  namespaces:\n    user: false\n");
    let probe = "grep ^Groups: /proc/self/status; cat /e/secret 2>&1";
    let bind = format!("{}:/e", dir.path().display());
    for p in ["strict", no_userns.as_str()] {
        let mut cmd = vec!["setpriv", "--groups", &groups, "--"];
        let lasagna = bin();
        cmd.extend([lasagna.as_str(), "run", "-p", p, "--ro-bind", &bind]);
        cmd.extend(["--", "/bin/sh", "-c", probe]);
        let o = output_within(as_who(As::Root, &cmd), DEADLINE);
        assert_code(&o, 1);
        let out = stdout(&o);
        let mut lines = out.lines();
        assert_eq!(
            lines.next().map(str::trim_end),
            Some("Groups:"),
            "{p}: {out}"
        );
        assert_eq!(
            lines.next(),
            Some("cat: /e/secret: Permission denied"),
            "{p}: {out}"
        );
    }
    // Control: lasagna's parent had both groups, and with them host uid 65534 reads the file.
    let o = output_within(
        as_who(
            As::Root,
            &[
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--groups",
                &groups,
                "--",
                "/bin/sh",
                "-c",
                &format!("grep ^Groups: /proc/self/status; cat {secret}"),
            ],
        ),
        DEADLINE,
    );
    assert_code(&o, 0);
    let out = stdout(&o);
    let mut lines = out.lines();
    assert_eq!(
        lines
            .next()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")),
        Some(format!("Groups: {group} {}", group + 1)),
        "{out}"
    );
    assert_eq!(lines.next(), Some("for the group"), "{out}");
}

both!(proc_irq_bus_and_fs_are_read_only, |who| {
    // A chmod to a path's own mode changes nothing even where it succeeds. The kernel
    // checks the mount (EROFS) before the owner (EPERM), so the error names the layer:
    // read-only mounts inside, and without the filesystem layer the host's /proc, whose
    // owner check refuses the payload. /proc itself, the same proc inside, is the control
    // within the run.
    let mut paths = vec!["/proc/sys", "/proc/irq", "/proc/bus", "/proc/fs"];
    if std::path::Path::new("/proc/sysrq-trigger").exists() {
        paths.push("/proc/sysrq-trigger");
    }
    let script = "import errno, os, stat, sys\n\
        for p in sys.argv[1:]:\n\
        \x20 try:\n\
        \x20   os.chmod(p, stat.S_IMODE(os.stat(p).st_mode))\n\
        \x20   print(p, 'changed')\n\
        \x20 except OSError as e:\n\
        \x20   print(p, errno.errorcode[e.errno])\n";
    let mut cmd = vec!["python3", "-c", script];
    cmd.extend(&paths);
    cmd.push("/proc");
    let c = Contrast::run(who, &["-p", "strict"], &["--without", "filesystem"], &cmd);
    let expect = |errno: &str| {
        let mut out: String = paths.iter().map(|p| format!("{p} {errno}\n")).collect();
        out.push_str("/proc EPERM\n");
        out
    };
    c.prints(&expect("EROFS"), &expect("EPERM"));
});

/// A tmpfs the test mounts on the host at `path` (world-writable), unmounted on drop.
struct HostTmpfs(std::path::PathBuf);

impl HostTmpfs {
    fn mount(path: std::path::PathBuf) -> HostTmpfs {
        std::fs::create_dir_all(&path).unwrap();
        let o = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m,mode=1777", "lasagna-test"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        HostTmpfs(path)
    }
}

impl Drop for HostTmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

both!(read_only_binds_are_read_only_below_too, |who| {
    if !nix::unistd::geteuid().is_root() {
        skip(
            "read_only_binds_are_read_only_below_too",
            "needs root to mount a tmpfs on the host",
        );
        return;
    }
    // A host directory with a writable tmpfs mounted below it. Bound read-only, the
    // submount is read-only too (its mount options, and a write refused); bound writable
    // (the control), the same write lands in the host's tmpfs. Landlock is off in both:
    // it gives a read-only bind no write right, and would refuse the write on its own.
    let dir = Scratch::new("ro-rec");
    let sub = HostTmpfs::mount(dir.path().join("sub"));
    let bind = format!("{}:/e", dir.path().display());
    let probe = "grep ' /e/sub ' /proc/self/mountinfo | cut -d' ' -f6 | cut -d, -f1; \
                 touch /e/sub/f 2>&1 | grep -o 'Read-only file system'; \
                 [ -e /e/sub/f ] && echo written; true";
    let c = Contrast::of(
        who,
        &["-p", "strict", "--without", "landlock", "--ro-bind", &bind],
        &["-p", "strict", "--without", "landlock", "--bind", &bind],
        &["/bin/sh", "-c", probe],
    );
    c.prints("ro\nRead-only file system\n", "rw\nwritten\n");
    assert!(
        sub.0.join("f").exists(),
        "the write reached the host's tmpfs"
    );
});
