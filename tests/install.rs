//! What an installation gets from the binary: the JSON Schema, shell completions and man
//! pages (`make install` and `make deb` package them; tools/check-deb.sh installs the
//! package for real).

mod common;
use common::*;

use std::path::Path;

#[test]
fn the_schema_is_json_schema_of_the_profile_format() {
    let o = run(As::Root, &["schema", "--json"]);
    assert_code(&o, 0);
    let s: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("JSON");
    assert_eq!(s["$schema"], "https://json-schema.org/draft/2020-12/schema");
    assert_eq!(s["title"], "lasagna profile");
    assert_eq!(s["additionalProperties"], false, "unknown keys are errors");
    for key in ["name", "extends", "command", "program", "layers"] {
        assert!(s["properties"].get(key).is_some(), "{key}");
    }
    // The commented reference is still what `schema` prints without --json.
    let o = run(As::Root, &["schema"]);
    assert!(stdout(&o).starts_with("# lasagna profile reference."));
}

#[test]
fn completions_know_the_subcommands_and_flags() {
    for (shell, marker) in [
        ("bash", "_lasagna()"),
        ("zsh", "#compdef lasagna"),
        ("fish", "complete -c lasagna"),
    ] {
        let o = run(As::Root, &["completions", shell]);
        assert_code(&o, 0);
        let text = stdout(&o);
        assert!(text.contains(marker), "{shell}");
        let flag = |f: &str| text.contains(&format!("--{f}")) || text.contains(&format!("-l {f}"));
        assert!(
            flag("allow") && flag("ro-bind") && text.contains("profiles"),
            "{shell}"
        );
    }
    let o = run(As::Root, &["completions", "tcsh"]);
    assert_code(&o, 2);
}

#[test]
fn man_pages_cover_every_subcommand_and_the_format() {
    let dir = Scratch::new("man");
    let out = dir.path().join("man");
    let o = run(As::Root, &["man", out.to_str().unwrap()]);
    assert_code(&o, 0);
    for page in [
        "lasagna.1",
        "lasagna-run.1",
        "lasagna-test.1",
        "lasagna-profiles.1",
        "lasagna-profile.5",
    ] {
        let text = std::fs::read_to_string(out.join(page)).unwrap_or_else(|_| panic!("{page}"));
        assert!(
            text.starts_with(".TH") || text.contains("\n.TH"),
            "{page} is roff"
        );
    }
    let run_page = std::fs::read_to_string(out.join("lasagna-run.1")).unwrap();
    assert!(
        run_page.contains("allow") && run_page.contains("bind"),
        "run's flags"
    );
    let format = std::fs::read_to_string(out.join("lasagna-profile.5")).unwrap();
    assert!(
        format.contains("host-id-range") && format.contains("proxy-port"),
        "the reference is in it"
    );
}

/// `lasagna doctor --json` as `who`: its findings.
fn doctor(who: As) -> Vec<serde_json::Value> {
    let o = run(who, &["doctor", "--json"]);
    assert_code(&o, 0);
    let findings: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    findings.as_array().expect("a list of findings").clone()
}

fn detail(f: &serde_json::Value) -> &str {
    f["detail"].as_str().expect("a finding has a detail")
}

/// The one finding of `layer` whose detail starts with `prefix`.
fn finding<'a>(
    findings: &'a [serde_json::Value],
    layer: &str,
    prefix: &str,
) -> &'a serde_json::Value {
    let found: Vec<&serde_json::Value> = findings
        .iter()
        .filter(|f| f["layer"] == layer && detail(f).starts_with(prefix))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one {layer} finding {prefix:?}: {findings:#?}"
    );
    found[0]
}

/// Whether `argv`, run as `who`, exits 0: the kernel's own answer.
fn succeeds(who: As, argv: &[&str]) -> bool {
    output_within(as_who(who, argv), DEADLINE).status.success()
}

both!(doctor_has_four_statuses, |who| {
    let findings = doctor(who);
    let statuses: Vec<&str> = findings
        .iter()
        .map(|f| f["status"].as_str().unwrap())
        .collect();
    assert!(
        statuses
            .iter()
            .all(|s| ["ok", "warn", "fail", "info"].contains(s)),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&"ok") && statuses.contains(&"info"),
        "{statuses:?}"
    );
    // `supported` is kept for older readers: every status but fail.
    for f in &findings {
        assert_eq!(f["supported"], f["status"] != "fail", "{f:#}");
    }
    // legacy TIOCSTI is a warning where the kernel has it on, not an ok.
    let tiocsti = findings
        .iter()
        .find(|f| detail(f).contains("TIOCSTI"))
        .unwrap();
    let on = std::fs::read_to_string("/proc/sys/dev/tty/legacy_tiocsti")
        .map(|v| v.trim() != "0")
        .unwrap_or(true);
    assert_eq!(tiocsti["status"], if on { "warn" } else { "ok" });
    let text = stdout(&run(who, &["doctor"]));
    assert!(
        text.lines()
            .all(|l| ["ok ", "WARN", "FAIL", "info", "     "]
                .iter()
                .any(|p| l.starts_with(p))),
        "{text}"
    );
});

both!(doctor_reports_what_this_caller_can_get, |who| {
    let findings = doctor(who);
    // Who is asking, and what root's own uid means for the payload.
    let uid = match who {
        As::Root => 0,
        As::User => test_user()
            .map(|(uid, _)| uid)
            .unwrap_or_else(|_| nix::unistd::geteuid().as_raw()),
    };
    let host = detail(finding(&findings, "host", "kernel "));
    assert!(host.contains(&format!(", running as uid {uid}")), "{host}");
    assert_eq!(
        host.ends_with("(root: the payload still gets an unprivileged uid)"),
        who == As::Root,
        "{host}"
    );
    // User namespaces: ok exactly when this caller can create one; the filesystem layer
    // needs one unless the caller is root.
    let userns = succeeds(who, &["unshare", "--user", "true"]);
    // The first namespaces finding is the user namespace's (the time namespace's follows).
    let f = findings
        .iter()
        .find(|f| f["layer"] == "namespaces")
        .expect("a user namespace finding");
    assert_eq!(f["status"], if userns { "ok" } else { "fail" }, "{f:#}");
    let f = finding(&findings, "filesystem", "mount namespace + pivot_root");
    assert_eq!(
        f["status"],
        if userns || who == As::Root {
            "ok"
        } else {
            "fail"
        },
        "{f:#}"
    );
    // Each cgroup it reports writable or not is so for this caller: the cgroup directory
    // and its cgroup.procs, by access(2) as this caller.
    let writable = |dir: &str| {
        succeeds(
            who,
            &[
                "/bin/sh",
                "-c",
                "test -w \"$1\" && test -w \"$1/cgroup.procs\"",
                "sh",
                dir,
            ],
        )
    };
    let mut cgroups = 0;
    for f in findings.iter().filter(|f| f["layer"] == "cgroups") {
        let d = detail(f);
        if let Some(rest) = d.strip_prefix("cgroup v2 delegation: ") {
            let (claim, dir) = if let Some(dir) = rest.strip_prefix("yes: ") {
                (true, dir.strip_suffix(" is writable").unwrap())
            } else {
                let dir = rest.strip_prefix("no: ").unwrap_or_else(|| panic!("{d}"));
                (false, dir.strip_suffix(" is not writable").unwrap())
            };
            assert_eq!(claim, writable(dir), "as {}: {d}", who.tag());
            cgroups += 1;
        } else if let Some(rest) = d.strip_prefix("cgroup v1 ") {
            let (_, rest) = rest.split_once(": ").unwrap_or_else(|| panic!("{d}"));
            let (place, claim) = rest.rsplit_once("), ").unwrap_or_else(|| panic!("{d}"));
            let (mount, own) = place.split_once(" (own /").unwrap_or_else(|| panic!("{d}"));
            let dir = Path::new(mount).join(own);
            let claim = match claim {
                "writable" => true,
                "not writable by this user" => false,
                _ => panic!("{d}"),
            };
            assert_eq!(
                claim,
                writable(dir.to_str().unwrap()),
                "as {}: {d}",
                who.tag()
            );
            cgroups += 1;
        }
    }
    assert!(cgroups > 0, "no cgroup is reported: {findings:#?}");
    // The kernel's audit records, for --explain-denials, are root's (CAP_AUDIT_READ) from
    // Landlock ABI 7 on: the unprivileged caller is told so, root is not.
    let abi: u32 = detail(finding(&findings, "landlock", "Landlock ABI "))
        .trim_start_matches("Landlock ABI ")
        .parse()
        .unwrap();
    let denials = finding(&findings, "landlock", "run --explain-denials");
    if abi >= 7 {
        assert_eq!(
            detail(denials).contains("readable only with CAP_AUDIT_READ"),
            who == As::User,
            "{denials:#}"
        );
    }
    if who == As::User {
        assert_eq!(denials["status"], "info", "{denials:#}");
    }
});
