//! Failures inside that name their layer: an exec Landlock refuses, a program relative to a
//! working directory the caller's is not.

mod common;
use common::*;

both!(an_exec_failure_names_the_layer_and_the_fix, |who| {
    let s = Scratch::new("diag-exec");
    let dir = s.path().join("work");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("hello"), "#!/bin/sh\necho hello ran\n").unwrap();
    let _ = std::process::Command::new("chmod")
        .args(["-R", "0755"])
        .arg(&dir)
        .status();
    let d = dir.to_string_lossy().into_owned();
    let in_dir = |args: &[&str]| {
        let mut cmd = command(who, args);
        cmd.current_dir(&dir);
        output_within(cmd, DEADLINE)
    };
    // strict's working directory is its own empty /work.
    let o = in_dir(&["run", "-p", "strict", "./hello"]);
    assert_code(&o, 127);
    let err = stderr(&o);
    assert!(
        err.contains("cannot run ./hello: No such file or directory"),
        "{err}"
    );
    assert!(
        err.contains("relative to the working directory inside, /work (an empty tmpfs)")
            && err.contains(&format!("your directory {d} is not bound"))
            && err.contains("--ro-bind-cwd"),
        "{err}"
    );
    // cli-read binds the directory, but Landlock gives it no execute right.
    let o = in_dir(&["run", "-p", "cli-read", "./hello"]);
    assert_code(&o, 126);
    let err = stderr(&o);
    assert!(
        err.contains("cannot run ./hello: Permission denied"),
        "{err}"
    );
    assert!(
        err.contains(&format!("landlock: {d} has no execute right"))
            && err.contains(&format!("`landlock: exec: [{d}]`")),
        "{err}"
    );
    // Control: with the directory bound and its execute right, it runs.
    let o = in_dir(&["run", "-p", "strict", "--ro-bind-cwd", "./hello"]);
    assert_code(&o, 0);
    assert_eq!(stdout(&o), "hello ran\n");
    let o = in_dir(&["run", "-p", "strict", "no-such-program-here"]);
    assert_code(&o, 127);
    assert!(
        stderr(&o).contains("not in the sandbox's PATH"),
        "{}",
        stderr(&o)
    );
});

/// A profile over strict with the given rlimits, in a scratch directory anyone can read.
fn limits_profile(s: &Scratch, rlimits: &str) -> String {
    s.write(
        "limits.yaml",
        &format!(
            "name: limits\nextends: strict\nlayers:\n  rlimits:\n    mode: required\n{rlimits}"
        ),
    )
}

fn read_report(path: &str) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

both!(the_verdict_names_the_limit_that_ended_the_run, |who| {
    let s = Scratch::new("diag-limits");
    let profile = limits_profile(&s, "    cpu: 1\n    fsize: 256K\n");
    let rep = s.for_anyone("r.json");
    let run = |args: &[&str]| {
        let mut all = vec!["run", "-p", &profile, "--report", &rep];
        all.extend_from_slice(args);
        let o = output_within(command(who, &all), DEADLINE);
        (o, read_report(&rep))
    };
    // A CPU loop: SIGXCPU at the soft limit, named as the CPU time limit.
    let (o, r) = run(&["python3", "-c", "while True: pass"]);
    assert_code(&o, 128 + libc::SIGXCPU);
    let hit = &r["limit"];
    assert_eq!(hit["kind"], "cpu-time", "{r:#}");
    assert_eq!(hit["layer"], "rlimits");
    assert_eq!(hit["signal"], "SIGXCPU");
    assert_eq!(hit["max_ms"], 1000);
    assert_eq!(hit["ended_run"], true);
    let used = hit["used_ms"].as_u64().unwrap();
    assert!(
        (900..1500).contains(&used),
        "{used} ms of CPU for a 1 s limit"
    );
    assert!(
        stderr(&o)
            .contains("lasagna: killed: CPU time limit 1 s reached (rlimits: cpu; SIGXCPU after"),
        "{}",
        stderr(&o)
    );
    // A payload that ignores SIGXCPU meets the hard limit a second later.
    let (o, r) = run(&["perl", "-e", "$SIG{XCPU} = 'IGNORE'; 1 while 1"]);
    assert_code(&o, 128 + libc::SIGKILL);
    assert_eq!(r["limit"]["kind"], "cpu-time", "{r:#}");
    assert_eq!(r["limit"]["signal"], "SIGKILL");
    assert!(r["limit"]["used_ms"].as_u64().unwrap() >= 1900, "{r:#}");
    assert!(
        stderr(&o).contains("caught or ignored SIGXCPU"),
        "{}",
        stderr(&o)
    );
    // A write beyond the file size limit: SIGXFSZ, named.
    let (o, r) = run(&["dd", "if=/dev/zero", "of=/tmp/big", "bs=64k", "count=16"]);
    assert_code(&o, 128 + libc::SIGXFSZ);
    assert_eq!(r["limit"]["kind"], "file-size", "{r:#}");
    assert_eq!(r["limit"]["max_bytes"], 256 * 1024);
    assert!(
        stderr(&o).contains("killed: file size limit 256 KiB reached (rlimits: fsize"),
        "{}",
        stderr(&o)
    );
    // The wall clock.
    let (o, r) = run(&["--timeout", "1s", "sleep", "30"]);
    assert_code(&o, 124);
    assert_eq!(r["limit"]["kind"], "wall-time", "{r:#}");
    assert_eq!(r["limit"]["max_ms"], 1000);
    assert_eq!(r["limit"]["layer"], "process");
    assert!(
        stderr(&o).contains("killed: timed out after 1 s of wall-clock time"),
        "{}",
        stderr(&o)
    );
    // Control: a run within its limits has no verdict, and its CPU time is still reported.
    let (o, r) = run(&["python3", "-c", "sum(range(10**6))"]);
    assert_code(&o, 0);
    assert!(r.get("limit").is_none(), "{r:#}");
    assert!(r["payload_cpu_ms"].as_f64().unwrap() > 0.0, "{r:#}");
    assert!(!stderr(&o).contains("killed"), "{}", stderr(&o));
});
