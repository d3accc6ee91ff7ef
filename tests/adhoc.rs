//! `run`'s ad-hoc flags: binds (with their Landlock rights under strict), the caller's
//! directory, tmpfs, environment, limits; each shown doing what it says against a run
//! without it, and bad flags named as flags.

mod common;
use common::*;

/// A scratch directory the test user may read and write, with one file in it.
fn workdir(tag: &str) -> (Scratch, String) {
    let s = Scratch::new(tag);
    let dir = s.path().join("work");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("in.txt"), "input\n").unwrap();
    let _ = std::process::Command::new("chmod")
        .args(["-R", "0777"])
        .arg(&dir)
        .status();
    let d = dir.to_string_lossy().into_owned();
    (s, d)
}

fn in_dir(who: As, dir: &str, args: &[&str]) -> std::process::Output {
    let mut cmd = command(who, args);
    cmd.current_dir(dir);
    output_within(cmd, DEADLINE)
}

both!(the_callers_directory_read_only_or_writable, |who| {
    let (_s, dir) = workdir("adhoc-cwd");
    let script = "pwd; cat in.txt; (echo out > out.txt) 2>/dev/null && echo wrote || echo no-write";
    let o = in_dir(
        who,
        &dir,
        &[
            "run",
            "-p",
            "strict",
            "--ro-bind-cwd",
            "--",
            "/bin/sh",
            "-c",
            script,
        ],
    );
    assert_code(&o, 0);
    assert_eq!(
        stdout(&o),
        format!("{dir}\ninput\nno-write\n"),
        "{}",
        stderr(&o)
    );
    let o = in_dir(
        who,
        &dir,
        &[
            "run",
            "-p",
            "strict",
            "--bind-cwd",
            "--",
            "/bin/sh",
            "-c",
            script,
        ],
    );
    assert_code(&o, 0);
    assert_eq!(
        stdout(&o),
        format!("{dir}\ninput\nwrote\n"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        std::fs::read_to_string(format!("{dir}/out.txt")).unwrap(),
        "out\n"
    );
    // Control: without the flag strict's sandbox has no such directory.
    let o = in_dir(
        who,
        &dir,
        &[
            "run",
            "-p",
            "strict",
            "--",
            "/bin/sh",
            "-c",
            "cat in.txt 2>/dev/null || echo absent",
        ],
    );
    assert_eq!(stdout(&o), "absent\n");
});

/// A directory below /var/tmp that anyone may write: outside every path strict's Landlock
/// rules grant, so that a write there is the rules' own decision once no mount is made.
struct VarTmp(std::path::PathBuf);

impl VarTmp {
    fn new(tag: &str) -> VarTmp {
        let d = std::path::PathBuf::from(format!("/var/tmp/lasagna-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let _ = std::process::Command::new("chmod")
            .arg("0777")
            .arg(&d)
            .status();
        VarTmp(d)
    }
}

impl Drop for VarTmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

both!(
    ro_bind_cwd_replaces_the_profiles_writable_bind_in_both_layers,
    |who| {
        // cli-write binds ${CWD} writable and grants Landlock write there; --ro-bind-cwd on top
        // of it is one read-only entry, and the write right goes with the writable one.
        let d = VarTmp::new(&format!("robind-{who:?}"));
        let dir = d.0.to_string_lossy().into_owned();
        let printed = in_dir(
            who,
            &dir,
            &[
                "run",
                "-p",
                "cli-write",
                "--ro-bind-cwd",
                "--print-profile",
                "--",
                "true",
            ],
        );
        assert_code(&printed, 0);
        let text = stdout(&printed);
        let entries: Vec<&str> = text
            .lines()
            .filter(|l| l.contains(&format!("bind: \"{dir}\"")))
            .collect();
        assert_eq!(entries.len(), 1, "{text}");
        assert!(
            entries[0].contains("ro-bind:") && entries[0].contains("--ro-bind-cwd"),
            "{text}"
        );
        // Landlock alone decides a write to the directory once no mount is made (the
        // filesystem layer off): the read-only flag's rights refuse it...
        let script = "(echo x > f) 2>/dev/null && echo wrote || echo refused";
        let write = |flags: &[&str]| {
            let mut args = vec!["run", "-p", "cli-write"];
            args.extend_from_slice(flags);
            args.extend(["--without", "filesystem", "--", "/bin/sh", "-c", script]);
            let o = in_dir(who, &dir, &args);
            assert_code(&o, 0);
            (stdout(&o), stderr(&o))
        };
        let (out, err) = write(&["--ro-bind-cwd"]);
        assert_eq!(out, "refused\n", "{err}");
        assert!(!d.0.join("f").exists());
        // ... and the profile's own bind (control) lets it through.
        let (out, err) = write(&[]);
        assert_eq!(out, "wrote\n", "{err}");
        assert!(d.0.join("f").exists());
    }
);

both!(
    without_the_process_layer_the_payload_still_starts_in_its_directory,
    |who| {
        let (_s, dir) = workdir("adhoc-noproc");
        let script = "pwd; cat in.txt";
        for without in [None, Some("process")] {
            let mut args = vec!["run", "-p", "strict", "--bind-cwd"];
            if let Some(l) = without {
                args.extend(["--without", l]);
            }
            args.extend(["--", "/bin/sh", "-c", script]);
            let o = in_dir(who, &dir, &args);
            assert_code(&o, 0);
            assert_eq!(
                stdout(&o),
                format!("{dir}\ninput\n"),
                "--without {without:?}: {}",
                stderr(&o)
            );
        }
        // explain says why, where the layer is off.
        let o = in_dir(who, &dir, &["explain", "cli-write", "--without", "process"]);
        assert!(
            stdout(&o).contains(&format!("the payload still starts in {dir}")),
            "{}",
            stdout(&o)
        );
    }
);

both!(binds_get_the_landlock_rights_they_need, |who| {
    let (_s, dir) = workdir("adhoc-bind");
    let rw = format!("{dir}:/data");
    let o = run(
        who,
        &[
            "run",
            "-p",
            "strict",
            "--bind",
            &rw,
            "--",
            "/bin/sh",
            "-c",
            "cat /data/in.txt && echo new > /data/new.txt && echo ok",
        ],
    );
    assert_code(&o, 0);
    assert_eq!(stdout(&o), "input\nok\n", "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(format!("{dir}/new.txt")).unwrap(),
        "new\n"
    );
    let o = run(
        who,
        &[
            "run",
            "-p",
            "strict",
            "--ro-bind",
            &rw,
            "--",
            "/bin/sh",
            "-c",
            "cat /data/in.txt; (echo x > /data/x.txt) 2>/dev/null && echo wrote || echo read-only",
        ],
    );
    assert_eq!(stdout(&o), "input\nread-only\n", "{}", stderr(&o));
    // A program in a read-only bind runs: the bind has Landlock's execute right.
    std::fs::write(format!("{dir}/tool.sh"), "#!/bin/sh\necho tool ran\n").unwrap();
    let _ = std::process::Command::new("chmod")
        .arg("0755")
        .arg(format!("{dir}/tool.sh"))
        .status();
    let o = run(
        who,
        &[
            "run",
            "-p",
            "strict",
            "--ro-bind",
            &rw,
            "--",
            "/data/tool.sh",
        ],
    );
    assert_eq!(stdout(&o), "tool ran\n", "{}", stderr(&o));
    // A tmpfs of its own, writable under strict.
    let o = run(
        who,
        &[
            "run",
            "-p",
            "strict",
            "--tmpfs",
            "/scratch",
            "--",
            "/bin/sh",
            "-c",
            "echo a > /scratch/a && cat /scratch/a",
        ],
    );
    assert_eq!(stdout(&o), "a\n", "{}", stderr(&o));
});

both!(environment_flags_set_and_keep, |who| {
    let mut cmd = command(
        who,
        &[
            "run",
            "-p",
            "strict",
            "--env",
            "GREETING=hello",
            "--keep-env",
            "LASAGNA_ADHOC_KEPT",
            "--",
            "/bin/sh",
            "-c",
            "echo $GREETING ${LASAGNA_ADHOC_KEPT:-unset} ${LASAGNA_ADHOC_DROPPED:-unset}",
        ],
    );
    cmd.env("LASAGNA_ADHOC_KEPT", "kept")
        .env("LASAGNA_ADHOC_DROPPED", "dropped");
    let o = output_within(cmd, DEADLINE);
    assert_code(&o, 0);
    assert_eq!(stdout(&o), "hello kept unset\n", "{}", stderr(&o));
});

/// A run of `lasagna ARGS --report FILE -- CMD` as `who`: its output and its report.
fn run_with_report(
    who: As,
    args: &[&str],
    cmd: &[&str],
) -> (std::process::Output, serde_json::Value) {
    let dir = Scratch::new("adhoc-report");
    let rp = dir.for_anyone("r.json");
    let mut argv = args.to_vec();
    argv.extend_from_slice(&["--report", &rp, "--"]);
    argv.extend_from_slice(cmd);
    let o = run(who, &argv);
    let text =
        std::fs::read_to_string(&rp).unwrap_or_else(|e| panic!("no report ({e}): {}", stderr(&o)));
    (o, serde_json::from_str(&text).unwrap())
}

/// The notes of the cgroups layer in a report (where a stand-in rlimit is named).
fn cgroups_notes(r: &serde_json::Value) -> Vec<String> {
    layer_of(r, "cgroups")["notes"]
        .as_array()
        .map(|n| n.iter().map(|s| s.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

both!(limit_flags_hold, |who| {
    // 200 MiB against --memory 64M: killed by the cgroup (root) or refused by the rlimit
    // that stands in for it (an unprivileged user without a delegated cgroup). Either way
    // the run says which limit it was.
    let hog = [
        "python3",
        "-c",
        "b = bytearray(200 << 20); b[::4096] = b'x' * len(b[::4096]); print('allocated')",
    ];
    let (o, r) = run_with_report(who, &["run", "-p", "strict", "--memory", "64M"], &hog);
    assert!(!stdout(&o).contains("allocated"), "{}", stdout(&o));
    if who == As::Root {
        assert_eq!(layer_of(&r, "cgroups")["outcome"], "applied", "{r:#}");
    }
    if layer_of(&r, "cgroups")["outcome"] == "applied" {
        assert_code(&o, 137);
        assert!(
            stderr(&o).contains("lasagna: killed: memory limit 64 MiB reached (cgroups: memory.max; the kernel OOM-killed the payload)"),
            "{}",
            stderr(&o)
        );
        assert_eq!(r["limit"]["kind"], "memory", "{r:#}");
        assert_eq!(r["limit"]["max_bytes"], 64 << 20, "{r:#}");
        assert_eq!(r["limit"]["ended_run"], true, "{r:#}");
        assert!(r["usage"]["oom_kills"].as_u64().unwrap() >= 1, "{r:#}");
    } else {
        // RLIMIT_AS: the allocation fails in the payload, which exits with Python's error.
        assert_code(&o, 1);
        assert!(stderr(&o).contains("MemoryError"), "{}", stderr(&o));
        let notes = cgroups_notes(&r);
        assert!(
            notes
                .iter()
                .any(|n| n.starts_with("memory.max replaced by RLIMIT_AS = 67108864 ")),
            "{notes:?}"
        );
    }
    // Control: without --memory the same allocation succeeds, and no limit is reported.
    let (o, r) = run_with_report(who, &["run", "-p", "strict"], &hog);
    assert_code(&o, 0);
    assert_eq!(stdout(&o), "allocated\n");
    assert!(r.get("limit").is_none(), "{r:#}");
    // --pids: with 6 allowed, 12 concurrent sleeps cannot all start.
    let forks = "for i in 1 2 3 4 5 6 7 8 9 10 11 12; do sleep 2 & done; wait; echo done";
    let (o, r) = run_with_report(
        who,
        &["run", "-p", "strict", "--pids", "6"],
        &["/bin/sh", "-c", forks],
    );
    // The shell's own word for a refused fork: dash exits 2 on it.
    assert_code(&o, 2);
    assert!(stderr(&o).contains("Cannot fork"), "{}", stderr(&o));
    assert_ne!(stdout(&o), "done\n");
    if layer_of(&r, "cgroups")["outcome"] == "applied" {
        // The cgroup counted the refusals: the verdict names pids.max.
        assert_eq!(r["limit"]["kind"], "pids", "{r:#}");
        assert_eq!(r["limit"]["max"], 6, "{r:#}");
        assert_eq!(r["limit"]["refused"], r["usage"]["fork_refusals"], "{r:#}");
        assert!(r["limit"]["refused"].as_u64().unwrap() >= 1, "{r:#}");
        assert!(
            stderr(&o).contains("lasagna: process limit 6 reached: ")
                && stderr(&o).contains(" refused (cgroups: pids.max)"),
            "{}",
            stderr(&o)
        );
    } else {
        // RLIMIT_NPROC stands in (it refuses without counting).
        let notes = cgroups_notes(&r);
        assert!(
            notes
                .iter()
                .any(|n| n.starts_with("pids.max replaced by RLIMIT_NPROC = 6 ")),
            "{notes:?}"
        );
    }
    // Control: without --pids all twelve run.
    let (o, r) = run_with_report(who, &["run", "-p", "strict"], &["/bin/sh", "-c", forks]);
    assert_code(&o, 0);
    assert_eq!(stdout(&o), "done\n", "{}", stderr(&o));
    assert!(!stderr(&o).contains("Cannot fork"), "{}", stderr(&o));
    assert!(r.get("limit").is_none(), "{r:#}");
});

both!(bad_flags_are_named, |who| {
    for (args, code, want) in [
        (
            &["--bind", "/tmp:relative/dir"][..],
            2,
            "--bind \"relative/dir\": path \"relative/dir\" is relative",
        ),
        (&["--ro-bind", "/tmp/../etc"], 2, "--ro-bind"),
        (
            &["--bind", "/nonexistent-lasagna-adhoc"],
            125,
            "/nonexistent-lasagna-adhoc",
        ),
        (&["--env", "NOEQUALS"], 2, "write NAME=VALUE"),
        (&["--memory", "lots"], 2, "--memory lots"),
        (&["--pids", "0"], 2, "--pids 0"),
    ] {
        let mut argv = vec!["run", "-p", "strict"];
        argv.extend_from_slice(args);
        argv.extend_from_slice(&["--", "/bin/true"]);
        let o = run(who, &argv);
        assert_code(&o, code);
        assert!(stderr(&o).contains(want), "{args:?}: {}", stderr(&o));
    }
    let o = run(
        who,
        &[
            "run",
            "-p",
            "seccomp-default",
            "--bind",
            "/tmp",
            "--",
            "/bin/true",
        ],
    );
    assert_ne!(o.status.code(), Some(0));
    assert!(
        stderr(&o).contains("no filesystem section"),
        "{}",
        stderr(&o)
    );
});

both!(a_command_needs_no_double_dash, |who| {
    // As with bwrap: the first word that is not an option of lasagna's starts the command,
    // and what follows is the command's, options included.
    let o = run(
        who,
        &[
            "run",
            "-p",
            "strict",
            "/bin/echo",
            "hi",
            "-v",
            "--bind",
            "x",
        ],
    );
    assert_code(&o, 0);
    assert_eq!(stdout(&o), "hi -v --bind x\n", "{}", stderr(&o));
    let o = run(who, &["run", "-p", "strict", "--", "/bin/echo", "dashes"]);
    assert_eq!(stdout(&o), "dashes\n");
    // An unknown option before the command is still an error, not a command.
    let o = run(who, &["run", "-p", "strict", "--bogus", "/bin/echo", "x"]);
    assert_code(&o, 2);
    assert!(
        stderr(&o).contains("unexpected argument '--bogus'"),
        "{}",
        stderr(&o)
    );
});

#[test]
fn a_degraded_layer_is_one_short_line_and_the_fix_is_in_the_report() {
    if !can_run(
        "a_degraded_layer_is_one_short_line_and_the_fix_is_in_the_report",
        As::User,
    ) {
        return;
    }
    // Unprivileged without a delegated cgroup: strict's best-effort cgroups degrade to
    // rlimits that hold both its limits, so a run says nothing about it...
    let o = run(As::User, &["run", "-p", "strict", "--", "/bin/true"]);
    assert_code(&o, 0);
    assert!(
        !stderr(&o).contains("degraded"),
        "stand-ins hold every limit asked: {}",
        stderr(&o)
    );
    // ... while -v, the report and explain still tell.
    let o = run(As::User, &["run", "-p", "strict", "-v", "--", "/bin/true"]);
    assert!(
        stderr(&o).contains("cgroups degraded") && stderr(&o).contains("chown -R"),
        "-v gives the degradation and its fix: {}",
        stderr(&o)
    );
    let o = run(As::User, &["explain", "strict"]);
    assert!(stdout(&o).contains("RLIMIT_AS"), "{}", stdout(&o));
    // A CPU quota without a timeout has no stand-in: one short line names it.
    let o = run(
        As::User,
        &["run", "-p", "strict", "--cpus", "1", "--", "/bin/true"],
    );
    assert_code(&o, 0);
    let line = stderr(&o);
    let line = line
        .lines()
        .find(|l| l.starts_with("lasagna: cgroups degraded:"))
        .unwrap_or_else(|| panic!("{line}"));
    assert!(
        line.len() < 320 && line.contains("not enforced: cpu.max") && line.contains("-v"),
        "{line}"
    );
    assert!(
        !line.contains("mkdir"),
        "the fix is not on every run's stderr: {line}"
    );
    // With a timeout, RLIMIT_CPU stands in for the quota: nothing is left undone.
    let o = run(
        As::User,
        &[
            "run",
            "-p",
            "strict",
            "--cpus",
            "1",
            "--timeout",
            "30s",
            "--",
            "/bin/true",
        ],
    );
    assert_code(&o, 0);
    assert!(!stderr(&o).contains("degraded"), "{}", stderr(&o));
}
