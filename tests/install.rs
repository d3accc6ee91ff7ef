//! What an installation gets from the binary: the JSON Schema, shell completions and man
//! pages (`make install` and `make deb` package them; tools/check-deb.sh installs the
//! package for real).

mod common;
use common::*;

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

#[test]
fn doctor_has_four_statuses() {
    let o = run(As::Root, &["doctor", "--json"]);
    assert_code(&o, 0);
    let findings: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let statuses: Vec<&str> = findings
        .as_array()
        .unwrap()
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
    // legacy TIOCSTI is a warning where the kernel has it on, not an ok.
    let tiocsti = findings
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["detail"].as_str().unwrap().contains("TIOCSTI"))
        .unwrap();
    let on = std::fs::read_to_string("/proc/sys/dev/tty/legacy_tiocsti")
        .map(|v| v.trim() != "0")
        .unwrap_or(true);
    assert_eq!(tiocsti["status"], if on { "warn" } else { "ok" });
    let text = stdout(&run(As::Root, &["doctor"]));
    assert!(
        text.lines()
            .all(|l| ["ok ", "WARN", "FAIL", "info", "     "]
                .iter()
                .any(|p| l.starts_with(p))),
        "{text}"
    );
}
