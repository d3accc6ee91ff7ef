//! The launcher's contract: exit codes, signal forwarding, reaping, timeout, the report.

mod common;
use common::*;

use std::process::Stdio;
use std::time::{Duration, Instant};

both!(exit_codes_follow_the_payload, |who| {
    let cases: &[(&[&str], i32)] = &[
        (&["/bin/sh", "-c", "exit 3"], 3),
        (&["/bin/true"], 0),
        (&["/bin/sh", "-c", "kill -9 $$"], 137),
        (&["/bin/sh", "-c", "kill -TERM $$"], 143),
        (&["no-such-program-anywhere"], 127),
        (&["/etc/passwd"], 126),
        (&["/usr"], 126),
    ];
    for (cmd, code) in cases {
        let mut args = vec!["run", "-p", "strict", "--"];
        args.extend_from_slice(cmd);
        let o = run(who, &args);
        assert_code(&o, *code);
    }
    let o = run(
        who,
        &["run", "-p", "strict", "--", "no-such-program-anywhere"],
    );
    assert!(
        stderr(&o).contains("cannot run no-such-program-anywhere"),
        "{}",
        stderr(&o)
    );
});

both!(program_found_through_the_sandbox_path, |who| {
    let o = run(who, &["run", "-p", "strict", "--", "id", "-u"]);
    assert_code(&o, 0);
    assert_eq!(stdout(&o), "1000\n");
});

both!(signals_are_forwarded_to_the_payload, |who| {
    // Every forwarded signal reaches the payload's own handler (the effect), and the report
    // lists it (the claim).
    use nix::sys::signal::Signal;
    for (sig, name) in [
        (Signal::SIGTERM, "TERM"),
        (Signal::SIGUSR1, "USR1"),
        (Signal::SIGINT, "INT"),
        (Signal::SIGHUP, "HUP"),
        (Signal::SIGQUIT, "QUIT"),
        (Signal::SIGUSR2, "USR2"),
        (Signal::SIGWINCH, "WINCH"),
    ] {
        let script = format!(
            "trap 'echo got {name}; exit 42' {name}; echo ready; while :; do sleep 0.05; done"
        );
        let mut child = spawn(
            who,
            &[
                "run",
                "-p",
                "strict",
                "--report-fd",
                "2",
                "--",
                "/bin/sh",
                "-c",
                &script,
            ],
        );
        let mut out = child.child().stdout.take().unwrap();
        let mut buf = [0u8; 6];
        std::io::Read::read_exact(&mut out, &mut buf).unwrap();
        assert_eq!(&buf, b"ready\n");
        // The launcher (through setpriv, which execs it: same pid) gets the signal.
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), sig).unwrap();
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
        let mut err = String::new();
        std::io::Read::read_to_string(child.child().stderr.as_mut().unwrap(), &mut err).unwrap();
        let status = child.wait_within(Duration::from_secs(10));
        assert_eq!(rest, format!("got {name}\n"));
        assert_eq!(
            status.code(),
            Some(42),
            "payload's own exit status after {name}"
        );
        // The report follows any note on stderr (strict's best-effort cgroups degrade for
        // a user without delegation).
        let report: serde_json::Value =
            serde_json::from_str(&err[err.find('{').unwrap()..]).unwrap();
        assert_eq!(
            report["signals_forwarded"],
            serde_json::json!([sig as i32]),
            "{name}"
        );
    }
});

/// The single-letter state of `pid` from /proc/PID/stat (`T` stopped), if it exists.
fn state_of(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The state follows the command name, which is in parentheses and may hold spaces.
    stat[stat.rfind(')')? + 1..].trim_start().chars().next()
}

both!(a_signal_before_execve_ends_the_run, |who| {
    // SIGTERM while the sandbox is still being set up, before the payload even exists.
    // The supervisor is stopped first (it would resume a stopped init at once), then init
    // (the process that sets up and then forks the payload); the test sees init stopped
    // with no child when it signals lasagna, and lets the supervisor go on. The
    // supervisor resumes init, forwards the signal meanwhile, and the payload ends by it
    // instead of the run hanging or the signal being lost. An attempt where init had
    // already forked the payload proves nothing and is retried, a bounded number of times.
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let dir = Scratch::new("early-signal");
    for attempt in 1..=30 {
        let rp = dir.for_anyone(&format!("r{attempt}.json"));
        let mut child = spawn(
            who,
            &[
                "run",
                "-p",
                "strict",
                "--report",
                &rp,
                "--",
                "/bin/sleep",
                "30",
            ],
        );
        let lasagna = Pid::from_raw(child.id() as i32);
        let init = first_child(child.id());
        kill(lasagna, Signal::SIGSTOP).unwrap();
        let stopped = kill(Pid::from_raw(init), Signal::SIGSTOP);
        wait_until("lasagna and init to stop", Duration::from_secs(5), || {
            state_of(lasagna.as_raw()) == Some('T')
                && (stopped.is_err() || matches!(state_of(init), Some('T') | None))
        });
        let children = std::fs::read_to_string(format!("/proc/{init}/task/{init}/children"))
            .unwrap_or_default();
        if stopped.is_err() || state_of(init) != Some('T') || !children.trim().is_empty() {
            // Too late: the payload was forked (and may have run) before init stopped. init
            // is in a session of its own, out of the launcher's group: killed by pid (not
            // yet reaped, so the pid is still init's).
            let _ = kill(Pid::from_raw(init), Signal::SIGKILL);
            drop(child);
            continue;
        }
        // init is stopped and the payload does not exist: its execve comes after this.
        kill(lasagna, Signal::SIGTERM).unwrap();
        kill(lasagna, Signal::SIGCONT).unwrap();
        let status = child.wait_within(Duration::from_secs(20));
        let mut err = String::new();
        std::io::Read::read_to_string(child.child().stderr.as_mut().unwrap(), &mut err).unwrap();
        assert_eq!(status.code(), Some(128 + 15), "{err}");
        // The run saw init stopped (the test's doing) and forwarded the signal.
        assert!(
            err.contains("init was stopped by another process and resumed"),
            "{err}"
        );
        let r: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&rp).unwrap()).unwrap();
        assert_eq!(r["signals_forwarded"], serde_json::json!([15]), "{r:#}");
        assert_eq!(r["ending"]["signaled"]["name"], "SIGTERM", "{r:#}");
        eprintln!("signalled before the payload existed on attempt {attempt}");
        return;
    }
    panic!("in 30 attempts init never stopped before it forked the payload");
});

both!(orphans_are_reaped, |who| {
    // A grandchild orphaned inside the sandbox (its parent exits at once) must not stay a
    // zombie: init, pid 1 with a pid namespace and a child subreaper without one, reaps it.
    // The payload waits for the grandchild's pid to disappear, not for a fixed time.
    let dir = Scratch::new("reap");
    let nopid = dir.write(
        "nopid.yaml",
        "extends: strict\nlayers:\n  namespaces:\n    pid: false\n  filesystem:\n    mode: best-effort\n  landlock:\n    mode: off\n",
    );
    let script = "pid=$(sh -c 'sleep 0.1 >/dev/null & echo $!'); \
                  for i in $(seq 500); do [ -e /proc/$pid ] || { echo reaped; exit 0; }; \
                  grep -q '^State:.*Z' /proc/$pid/status 2>/dev/null && z=1; sleep 0.01; done; echo stuck${z:+ as a zombie}";
    for profile in ["strict", nopid.as_str()] {
        let o = run(who, &["run", "-p", profile, "--", "/bin/sh", "-c", script]);
        assert_code(&o, 0);
        assert_eq!(stdout(&o), "reaped\n", "{profile}");
    }
});

both!(payload_is_not_pid_one, |who| {
    let o = run(
        who,
        &[
            "run",
            "-p",
            "strict",
            "--",
            "/bin/sh",
            "-c",
            "echo $$; cat /proc/1/comm 2>&1 | head -c 100",
        ],
    );
    assert_code(&o, 0);
    let out = stdout(&o);
    assert!(out.starts_with("2\n"), "{out}");
});

both!(timeout_kills_the_whole_sandbox, |who| {
    let start = Instant::now();
    let o = run(
        who,
        &[
            "run",
            "-p",
            "strict",
            "--timeout",
            "1s",
            "--",
            "/bin/sh",
            "-c",
            "sleep 60 & sleep 60 & wait",
        ],
    );
    assert_code(&o, 124);
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "took {:?}",
        start.elapsed()
    );
    assert!(stderr(&o).contains("timed out"), "{}", stderr(&o));
    // The profile's own timeout works too.
    let dir = Scratch::new("timeout");
    let profile = dir.write(
        "p.yaml",
        "extends: strict\nlayers:\n  process:\n    timeout: 500ms\n",
    );
    let o = run(who, &["run", "-p", &profile, "--", "sleep", "60"]);
    assert_code(&o, 124);
});

both!(report_matches_what_the_kernel_shows, |who| {
    let dir = Scratch::new("report");
    let report = dir.path().join("report.json");
    let _ = std::process::Command::new("chmod")
        .arg("0777")
        .arg(dir.path())
        .status();
    // The payload waits on its stdin until the supervisor has observed it (a condition, not
    // a fixed time).
    let observed_run = |extra: &[&str], script: &str| -> std::process::Output {
        let mut args = vec!["run", "-p", "strict", "--report", report.to_str().unwrap()];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--", "/bin/sh", "-c", script]);
        let mut cmd = command(who, &args);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = Spawned::new(&mut cmd);
        let mut stdin = child.child().stdin.take().unwrap();
        wait_observed(child.id());
        std::io::Write::write_all(&mut stdin, b"go\n").unwrap();
        drop(stdin);
        child.output_within(DEADLINE)
    };
    let o = observed_run(
        &[],
        "read go; grep -E '^(CapEff|NoNewPrivs)' /proc/self/status",
    );
    assert_code(&o, 0);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(json["version"], 1);
    assert_eq!(json["exit_code"], 0);
    let layers = json["layers"].as_array().unwrap();
    let outcome = |name: &str| {
        layers
            .iter()
            .find(|l| l["layer"] == name)
            .map(|l| l["outcome"].as_str().unwrap().to_string())
            .unwrap()
    };
    for l in [
        "namespaces",
        "filesystem",
        "capabilities",
        "rlimits",
        "process",
    ] {
        assert_eq!(outcome(l), "applied", "{l}");
    }
    let observed = &json["observed"];
    let status = &observed["status"];
    assert_eq!(status["CapEff"], "0000000000000000");
    assert_eq!(status["CapBnd"], "0000000000000000");
    assert_eq!(status["NoNewPrivs"], "1");
    // The payload's own view agrees with the report.
    assert_eq!(stdout(&o), "CapEff:\t0000000000000000\nNoNewPrivs:\t1\n");
    let new_ns: Vec<&str> = observed["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["new"] == true)
        .map(|n| n["kind"].as_str().unwrap())
        .collect();
    for k in [
        "user", "pid", "mount", "net", "ipc", "uts", "cgroup", "time",
    ] {
        assert!(new_ns.contains(&k), "{k} namespace is new: {new_ns:?}");
    }
    // Switched off with --without: reported as skipped, and the kernel agrees.
    let o = observed_run(
        &[
            "--without",
            "process",
            "--without",
            "seccomp",
            "--without",
            "landlock",
        ],
        "read go",
    );
    assert_code(&o, 0);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let p = json["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["layer"] == "process")
        .unwrap()
        .clone();
    assert_eq!(p["outcome"], "skipped");
    assert!(p["reason"].as_str().unwrap().contains("--without process"));
    assert_eq!(json["observed"]["status"]["NoNewPrivs"], "0");
});

both!(verbose_prints_the_layer_table, |who| {
    let o = run(who, &["run", "-v", "-p", "strict", "--", "/bin/true"]);
    assert_code(&o, 0);
    let err = stderr(&o);
    for l in [
        "namespaces",
        "filesystem",
        "capabilities",
        "rlimits",
        "process",
    ] {
        assert!(
            err.lines()
                .any(|line| line.trim_start().starts_with(l) && line.contains("applied")),
            "{l}: {err}"
        );
    }
});

/// What `lasagna ARGS` did to the system, as strace saw it in lasagna and everything it
/// started: the successful calls that start a process (beyond lasagna's own execve),
/// enter or make a namespace, mount, or create, write, link, rename or remove a file or
/// directory (a cgroup is a directory). Also the run's output.
fn traced_changes(who: As, tag: &str, args: &[&str]) -> (Vec<String>, std::process::Output) {
    let dir = Scratch::new(tag);
    let trace = dir.for_anyone("trace");
    let bin = bin();
    let mut argv = vec![
        "strace",
        "-f",
        "-qq",
        "-o",
        &trace,
        "-e",
        "trace=%process,unshare,setns,mount,umount2,pivot_root,mkdir,mkdirat,mknodat,creat,open,openat,link,linkat,symlink,symlinkat,rename,renameat,renameat2,unlink,unlinkat,rmdir,truncate",
        "-e",
        "status=successful",
        &bin,
    ];
    argv.extend_from_slice(args);
    let o = output_within(as_who(who, &argv), DEADLINE);
    let text = std::fs::read_to_string(&trace).unwrap();
    let mut execs = 0;
    let changes = text
        .lines()
        .filter(|l| {
            // `PID name(args) = result`; a call split by another one's shows its name in the
            // first half.
            let call = l.split_once(' ').map_or("", |(_, c)| c.trim_start());
            let name = call.split('(').next().unwrap_or("");
            match name {
                "execve" | "execveat" => {
                    execs += 1;
                    execs > 1
                }
                "open" | "openat" => ["O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC"]
                    .iter()
                    .any(|f| call.contains(f)),
                "exit" | "exit_group" | "wait4" | "waitid" | "kill" | "tkill" | "tgkill"
                | "rt_sigqueueinfo" | "rt_tgsigqueueinfo" | "pidfd_send_signal" | "pidfd_open"
                | "" => false,
                _ => !call.starts_with('<') && !call.starts_with("+++"),
            }
        })
        .map(str::to_string)
        .collect();
    assert!(execs >= 1, "strace saw lasagna start:\n{text}");
    (changes, o)
}

both!(dry_run_creates_nothing_and_shows_the_plan, |who| {
    if !std::path::Path::new("/usr/bin/strace").exists() {
        return skip(
            "dry_run_creates_nothing_and_shows_the_plan",
            "no /usr/bin/strace (apt-get install strace)",
        );
    }
    let cmd = ["-p", "strict", "--", "/bin/sh", "-c", "echo RAN"];
    let mut dry = vec!["run", "--dry-run"];
    dry.extend_from_slice(&cmd);
    let (changes, o) = traced_changes(who, "dry-run", &dry);
    assert_code(&o, 0);
    assert!(stdout(&o).contains("filesystem"), "{}", stdout(&o));
    assert!(!stdout(&o).contains("RAN\n"), "{}", stdout(&o));
    // No process, namespace, mount, cgroup directory or file.
    assert!(
        changes.is_empty(),
        "a dry run changed things:\n{changes:#?}"
    );
    // Control: the same run for real, seen the same way, forks, mounts and (as root) makes
    // its cgroup directory.
    let mut real = vec!["run"];
    real.extend_from_slice(&cmd);
    let (changes, o) = traced_changes(who, "real-run", &real);
    assert_code(&o, 0);
    assert_eq!(stdout(&o), "RAN\n", "{}", stderr(&o));
    let has = |call: &str, arg: &str| {
        changes.iter().any(|l| {
            l.split_once(' ')
                .is_some_and(|(_, c)| c.trim_start().starts_with(call))
                && l.contains(arg)
        })
    };
    assert!(has("clone", ""), "{changes:#?}");
    assert!(has("mount(", ""), "{changes:#?}");
    assert!(has("pivot_root(", ""), "{changes:#?}");
    if who == As::Root {
        assert!(has("mkdir(", "/lasagna-"), "{changes:#?}");
    }
});

both!(sandbox_dies_with_a_killed_launcher, |who| {
    for extra in [
        &[][..],
        &["--without", "namespaces", "--without", "filesystem"][..],
    ] {
        // A sleep length unique to this variant (root and user run at the same time).
        let marker = format!("{}{}.{}", 300 + extra.len(), who as u8, std::process::id());
        let mut args = vec!["run", "-p", "strict"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--", "sleep", &marker]);
        let mut child = Spawned::new(&mut command(who, &args));
        let deadline = Instant::now() + Duration::from_secs(5);
        while processes_with(&marker).is_empty() {
            assert!(Instant::now() < deadline, "payload never started");
            std::thread::sleep(Duration::from_millis(20));
        }
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        let _ = child.wait_within(Duration::from_secs(10));
        let deadline = Instant::now() + Duration::from_secs(5);
        while !processes_with(&marker).is_empty() {
            assert!(
                Instant::now() < deadline,
                "payload outlived its launcher ({extra:?}): {:?}",
                processes_with(&marker)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
});

both!(nothing_of_the_sandbox_outlives_the_run, |who| {
    // The payload exits at once and leaves two background processes, one of them in a new
    // session and ignoring SIGTERM/SIGHUP. When `run` returns, neither may exist any more:
    // init kills and reaps what is left in its pid namespace before it reports.
    for round in 0..5 {
        // Unique per run: the root and the user variant run at the same time.
        let marker = format!("{}.{round}{}", 400 + who as u32, std::process::id());
        // `&` forks at once: both exist when the shell exits.
        let script = format!(
            "sleep {marker} & setsid sh -c 'trap \"\" TERM HUP; exec sleep {marker}' & exit 7"
        );
        // Only the launcher is waited for: no pipe that a leftover could hold open.
        let mut cmd = command(
            who,
            &["run", "-p", "strict", "--", "/bin/sh", "-c", &script],
        );
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        let status = Spawned::new(&mut cmd).wait_within(Duration::from_secs(20));
        assert_eq!(status.code(), Some(7));
        let left = processes_with(&marker);
        assert!(left.is_empty(), "left behind after run returned: {left:?}");
    }
});

/// A caller whose uid /etc/passwd does not name (a container's, `setpriv --reuid N`) runs
/// the launcher like any other: no user database module is loaded into the static binary
/// (nsswitch.conf here reads `files systemd`, and the fall-through to `systemd` crashed it).
#[test]
fn a_caller_without_a_passwd_entry_runs() {
    if !can_run("a_caller_without_a_passwd_entry_runs", As::Root) {
        return;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let named = |id: u32| {
        passwd
            .lines()
            .any(|l| l.split(':').nth(2) == Some(id.to_string().as_str()))
    };
    let id = (61000..62000).find(|id| !named(*id)).expect("a free uid");
    let as_nobody_named = |args: &[&str]| {
        let mut cmd = std::process::Command::new("setpriv");
        cmd.args([
            format!("--reuid={id}"),
            format!("--regid={id}"),
            "--clear-groups".into(),
        ])
        .arg(bin())
        .args(args)
        .env_remove("HOME")
        .env_remove("USER")
        .current_dir("/");
        output_within(cmd, DEADLINE)
    };
    let o = as_nobody_named(&["run", "-p", "strict", "--", "/bin/echo", "ran"]);
    assert_code(&o, 0);
    assert_eq!(stdout(&o), "ran\n", "{}", stderr(&o));
    let o = as_nobody_named(&["check", "strict"]);
    assert_code(&o, 0);
}
