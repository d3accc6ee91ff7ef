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
    // The payload did not run (it would have exited 1).
    assert!(!text.is_empty());
});
