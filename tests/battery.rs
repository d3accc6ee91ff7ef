//! `lasagna test` and `lasagna score`: the battery against the live sandbox, its matrix
//! checked against independent runs, and what it leaves behind.

mod common;
use common::*;

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

/// One battery at a time: each plants listeners, sleepers and 5 GiB memory probes.
static ONE: Mutex<()> = Mutex::new(());

fn battery(who: As, args: &[&str]) -> (i32, serde_json::Value, String) {
    let mut argv = vec!["test"];
    argv.extend_from_slice(args);
    argv.push("--json");
    let o = output_within(command(who, &argv), Duration::from_secs(300));
    let code = o.status.code().unwrap_or(-1);
    let json = serde_json::from_str(&stdout(&o)).unwrap_or_else(|e| {
        panic!(
            "lasagna {argv:?} as {}: not JSON ({e}); stderr:\n{}",
            who.tag(),
            stderr(&o)
        )
    });
    (code, json, stderr(&o))
}

fn column_index(m: &serde_json::Value, name: &str) -> Option<usize> {
    m["columns"]
        .as_array()?
        .iter()
        .position(|c| c["name"] == name)
}

/// The probes whose cell in `column` is "through".
fn through(m: &serde_json::Value, column: usize) -> BTreeSet<String> {
    m["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["cells"][column] == "through")
        .map(|r| r["probe"].as_str().unwrap().to_string())
        .collect()
}

fn errors(m: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    for r in m["rows"].as_array().unwrap() {
        for (i, c) in r["cells"].as_array().unwrap().iter().enumerate() {
            if c.get("error").is_some() {
                out.push(format!(
                    "{} in column {}: {}",
                    r["probe"], m["columns"][i]["name"], c["error"]
                ));
            }
        }
    }
    out
}

fn leftovers() -> Vec<String> {
    let mut out = Vec::new();
    for dir in ["/var/tmp", "/tmp"] {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with("lasagna-test-") || n.starts_with("lasagna-sibling-") {
                out.push(format!("{dir}/{n}"));
            }
        }
    }
    for pid in processes_with("probe sleep") {
        out.push(format!("process {pid}"));
    }
    out
}

both!(
    strict_holds_and_each_removal_lets_through_what_the_matrix_says,
    |who| {
        let _one = ONE.lock().unwrap_or_else(|e| e.into_inner());
        let (code, m, err) = battery(who, &["strict"]);
        assert!(
            errors(&m).is_empty(),
            "probes that did not run: {:#?}\n{err}",
            errors(&m)
        );
        assert_eq!(
            code,
            0,
            "strict lets something through: {:?}",
            through(&m, 0)
        );
        assert!(m["rows"].as_array().unwrap().len() >= 40);
        // The matrix says which probes each removal lets through; a separate run of the
        // profile with that layer off must let through exactly those.
        for layer in ["seccomp", "filesystem", "process", "rlimits"] {
            let col = column_index(&m, &format!("-{layer}")).expect("a leave-one-out column");
            let expected = through(&m, col);
            assert!(
                !expected.is_empty(),
                "removing {layer} lets nothing through: the probes cannot see it"
            );
            let (code, alone, err) = battery(who, &["strict", "--without", layer, "--quick"]);
            assert!(errors(&alone).is_empty(), "{:#?}\n{err}", errors(&alone));
            assert_eq!(
                code, 1,
                "--without {layer} lets something through, so the exit is 1"
            );
            assert_eq!(
                through(&alone, 0),
                expected,
                "--without {layer}: the separate run disagrees with the matrix"
            );
        }
        // The single points of failure are named, and the ones the kernel gives a second
        // mechanism for are not among them.
        let only: BTreeSet<(String, String)> = m["rows"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|r| {
                Some((
                    r["probe"].as_str()?.to_string(),
                    r["only"].as_str()?.to_string(),
                ))
            })
            .collect();
        assert!(
            only.contains(&("keyctl".into(), "seccomp".into())),
            "{only:?}"
        );
        assert!(
            !only.iter().any(|(p, _)| p == "nested-userns"),
            "nested user namespaces have a second stop: {only:?}"
        );
        assert!(
            !only.iter().any(|(p, _)| p == "fork-bomb"),
            "a fork bomb meets cgroups and rlimits: {only:?}"
        );
        assert!(leftovers().is_empty(), "left behind: {:?}", leftovers());
    }
);

both!(a_namespaces_only_profile_fails_the_battery, |who| {
    let _one = ONE.lock().unwrap_or_else(|e| e.into_inner());
    let dir = Scratch::new("battery");
    let p = dir.write(
        "ns-only.yaml",
        "name: ns-only\nlayers:\n  namespaces:\n    mode: required\n",
    );
    let (code, m, err) = battery(who, &[&p, "--quick"]);
    assert_eq!(code, 1, "{err}");
    let got = through(&m, 0);
    for probe in ["keyctl", "environment", "fork-bomb", "file-size"] {
        assert!(
            got.contains(probe),
            "{probe} should get through namespaces alone: {got:?}"
        );
    }
    // (see-host-process is not among them: without the filesystem layer /proc is the host's.)
    for probe in ["hostname", "tcp-host-loopback", "signal-host-process"] {
        assert!(
            !got.contains(probe),
            "{probe} is the namespaces' to stop: {got:?}"
        );
    }
    assert!(leftovers().is_empty(), "left behind: {:?}", leftovers());
});

both!(an_interrupted_battery_removes_what_it_planted, |who| {
    let _one = ONE.lock().unwrap_or_else(|e| e.into_inner());
    let mut child = spawn(who, &["test", "strict"]);
    // Wait until the canaries exist and runs are under way, then Ctrl-C.
    wait_until(
        "the battery plants its canaries",
        Duration::from_secs(30),
        || !leftovers().is_empty(),
    );
    std::thread::sleep(Duration::from_millis(500));
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    );
    let status = child.wait_within(Duration::from_secs(30));
    assert_eq!(status.code(), Some(130));
    wait_until(
        "everything planted is gone",
        Duration::from_secs(10),
        || leftovers().is_empty(),
    );
});

both!(
    score_ranks_a_namespaces_only_profile_far_above_strict,
    |who| {
        let dir = Scratch::new("score");
        let p = dir.write(
            "ns-only.yaml",
            "name: ns-only\nlayers:\n  namespaces:\n    mode: required\n",
        );
        let score = |profile: &str| -> f64 {
            let o = run(who, &["score", profile, "--json"]);
            assert_code(&o, 0);
            let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
            v["exposure"].as_f64().unwrap()
        };
        let (strict, ns_only) = (score("strict"), score(&p));
        assert!(strict <= 1.0, "strict exposure {strict}");
        assert!(ns_only >= 5.0, "namespaces-only exposure {ns_only}");
        // --threshold for CI: above it, exit 1.
        assert_code(&run(who, &["score", &p, "--threshold", "3"]), 1);
        assert_code(&run(who, &["score", "strict", "--threshold", "3"]), 0);
        let text = stdout(&run(who, &["score", &p]));
        assert!(
            text.contains("seccomp") && text.contains("lasagna test --probe"),
            "{text}"
        );
    }
);

both!(another_local_user_cannot_forge_a_canary, |who| {
    // The write and create probes judge a run by whether their canary on the host changed.
    // Another local user who could change it would make a probe read "through" when the
    // sandbox held (or hide nothing, but cast doubt on every result): the canaries are the
    // payload's own host uid's, mode 0600 and 0700. An attacker of another uid polls for
    // them during the battery and tries to change each one it sees.
    let _one = ONE.lock().unwrap_or_else(|e| e.into_inner());
    let attacker = match who {
        As::Root => test_user().expect("the test user").0,
        As::User => 65534,
    };
    for attempt in 0..5 {
        let battery = spawn(
            who,
            &[
                "test",
                "strict",
                "--probe",
                "write-host-file",
                "--probe",
                "create-host-file",
                "--json",
                "-j",
                "1",
            ],
        );
        let script = format!(
            "while :; do for f in /var/tmp/lasagna-test-{}-*/write-* /var/tmp/lasagna-test-{}-*/create-*; do \
               [ -e \"$f\" ] || continue; echo \"seen $f\"; \
               if [ -d \"$f\" ]; then (: > \"$f/forged\") 2>/dev/null && echo \"forged $f\"; \
               else (echo forged > \"$f\") 2>/dev/null && echo \"forged $f\"; fi; \
             done; done",
            battery.id(),
            battery.id()
        );
        let mut cmd = std::process::Command::new("setpriv");
        cmd.arg(format!("--reuid={attacker}"))
            .arg(format!("--regid={attacker}"))
            .arg("--clear-groups")
            .args(["--", "/bin/sh", "-c", &script])
            .current_dir("/")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null());
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut spy = Spawned::new(&mut cmd);
        let spy_out = spy.child().stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut seen = String::new();
            // Bounded: the spy is killed once the battery ends.
            let _ = std::io::Read::read_to_string(
                &mut std::io::Read::take(spy_out, 1 << 24),
                &mut seen,
            );
            seen
        });
        let o = battery.output_within(Duration::from_secs(300));
        drop(spy);
        let spied = reader.join().unwrap();
        assert!(
            !spied.contains("forged"),
            "uid {attacker} changed a canary:\n{}",
            spied
                .lines()
                .filter(|l| l.starts_with("forged"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        assert_code(&o, 0);
        let m: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        assert!(errors(&m).is_empty(), "{:?}", errors(&m));
        let full = column_index(&m, "full").expect("the full profile's column");
        assert!(through(&m, full).is_empty(), "{m:#}");
        // Control: with every layer off the payload changes both; they are its own.
        let none = column_index(&m, "none").expect("the column without layers");
        assert_eq!(
            through(&m, none),
            BTreeSet::from([
                "create-host-file".to_string(),
                "write-host-file".to_string()
            ]),
            "{m:#}"
        );
        if spied.contains("seen ") {
            return;
        }
        eprintln!("attempt {attempt}: the spy saw no canary; again");
    }
    panic!("the spy never saw a canary in five batteries");
});
