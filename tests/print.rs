//! `run --print-profile`: the merged profile, each value with where it comes from.

mod common;
use common::*;

both!(print_profile_names_each_values_origin, |who| {
    let dir = Scratch::new("print");
    let p = dir.write(
        "p.yaml",
        "extends: strict\nlayers:\n  process:\n    cwd: /tmp\n  filesystem:\n    mounts:\n      - tmpfs: /cache\n",
    );
    let o = run(
        who,
        &[
            "run",
            "-p",
            &p,
            "--ro-bind",
            "/usr/share:/data",
            "--memory",
            "300M",
            "--print-profile",
            "--",
            "/bin/false",
        ],
    );
    assert_code(&o, 0);
    let text = stdout(&o);
    let line = |needle: &str| {
        text.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{text}"))
            .to_string()
    };
    assert!(
        line("cwd: \"/tmp\"").ends_with(&format!("# {p}:4")),
        "{}",
        line("cwd:")
    );
    assert!(line("tmpfs: \"/cache\"").ends_with(&format!("# {p}:7")));
    assert!(
        line("\"/work\"").contains("# <shipped>/strict.yaml:"),
        "{}",
        line("\"/work\"")
    );
    assert!(line("ro-bind: \"/data\"").ends_with("# --ro-bind /usr/share:/data"));
    assert!(line("max: \"300M\"").ends_with("# --memory 300M"));
    // The payload did not run: /bin/false would have made the exit status 1.
    assert_eq!(
        text.lines().next(),
        Some("# the merged profile; each value's origin after it"),
        "{text}"
    );
    // What is printed is a whole profile: `check` accepts it, and printed again it gives the
    // same values (only the origins differ).
    let merged = dir.write("merged.yaml", &text);
    let o = run(who, &["check", &merged]);
    assert_code(&o, 0);
    assert!(
        stdout(&o).contains(&format!("{merged}: ok")),
        "{}",
        stdout(&o)
    );
    let o = run(
        who,
        &["run", "-p", &merged, "--print-profile", "--", "/bin/false"],
    );
    assert_code(&o, 0);
    let values = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| l.split("  # ").next().unwrap().to_string())
            .collect()
    };
    let again = stdout(&o);
    assert_eq!(values(&again), values(&text), "{again}");
    assert!(
        values(&text).iter().any(|l| l.trim() == "max: \"300M\""),
        "{text}"
    );
    // The origins are now the merged file's own lines.
    let cache = again
        .lines()
        .find(|l| l.contains("tmpfs: \"/cache\""))
        .unwrap_or_else(|| panic!("{again}"));
    assert!(cache.contains(&format!("# {merged}:")), "{cache}");
});

// A printing subcommand whose stdout is a closed pipe (`lasagna explain strict | head`)
// ends as `cat` does, by SIGPIPE, without a panic; `run` keeps its own handling.
both!(a_closed_stdout_ends_a_printing_command_quietly, |who| {
    use std::os::unix::process::ExitStatusExt;
    for args in [
        &["explain", "strict"][..],
        &["check", "strict"],
        &["profiles", "list"],
        &["schema"],
    ] {
        let (r, w) = std::io::pipe().unwrap();
        drop(r);
        let mut cmd = command(who, args);
        cmd.stdout(w);
        let o = cmd.output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_eq!(
            o.status.signal(),
            Some(libc::SIGPIPE),
            "{args:?}: {:?} {err}",
            o.status
        );
        // Control: with a reader, the same command prints and succeeds.
        let o = run(who, args);
        assert_code(&o, 0);
        assert!(!o.stdout.is_empty(), "{args:?}");
    }
});
