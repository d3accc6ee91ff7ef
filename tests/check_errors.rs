//! `check` reports every unknown key and every value of the wrong kind of a file in one
//! run, each at its line:column, while `run` still stops at the first; a file that parses
//! reports its validation errors as before; aliases are never expanded on the way.

mod common;
use common::*;

/// The error lines of `check` on `path`, with its exit code asserted.
fn check_lines(who: As, path: &str) -> Vec<String> {
    let o = run(who, &["check", path]);
    assert_code(&o, 1);
    let err = stderr(&o);
    assert!(!err.contains("panicked"), "{err}");
    err.lines().map(str::to_string).collect()
}

both!(every_unknown_key_and_wrong_kind_is_reported, |who| {
    let dir = Scratch::new("check-errors");
    let path = dir.write(
        "many.yaml",
        "\
name: many
extendz: strict
layers:
  procss: {}
  network:
    mode: off
    nett: none
  namespaces:
    pid: maybe
",
    );
    let lines = check_lines(who, &path);
    let want = [
        format!("{path}:2:1: unknown field `extendz`, expected one of name, description, extends, command, program, package, layers (hint: did you mean `extends`? unknown keys are errors; see 'lasagna schema' for the format)"),
        format!("{path}:4:3: unknown field `procss`, expected one of namespaces, filesystem, cgroups, capabilities, rlimits, process, landlock, seccomp, network (hint: did you mean `process`? unknown keys are errors; see 'lasagna schema' for the format)"),
        format!("{path}:7:5: unknown field `nett`, "),
        format!("{path}:9:10: invalid boolean (write true or false)"),
    ];
    assert_eq!(lines.len(), want.len(), "{lines:#?}");
    for (line, want) in lines.iter().zip(&want) {
        assert!(
            line.starts_with(want.as_str()),
            "want {want:?}, got {line:?}"
        );
    }
    assert!(
        lines[2].contains("(hint: did you mean `net`?"),
        "{lines:#?}"
    );

    // `run` stops at the first, in the same words.
    let o = run(who, &["run", "-p", &path, "--", "/bin/true"]);
    assert_code(&o, 125);
    let err = stderr(&o);
    assert_eq!(err.trim_end(), format!("lasagna: {}", want[0]), "{err}");
});

both!(one_unknown_key_is_one_error, |who| {
    let dir = Scratch::new("check-errors");
    let path = dir.write("one.yaml", "layers:\n  network:\n    nett: none\n");
    let lines = check_lines(who, &path);
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(
        lines[0].starts_with(&format!("{path}:3:5: unknown field `nett`")),
        "{lines:#?}"
    );
    // Two on one line, as `layers: {filesystm: {}, proces: {}}` was reported: both.
    let path = dir.write("flow.yaml", "layers: {filesystm: {}, proces: {}}\n");
    let lines = check_lines(who, &path);
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert!(lines[0].starts_with(&format!("{path}:1:10: unknown field `filesystm`")));
    assert!(lines[1].starts_with(&format!("{path}:1:25: unknown field `proces`")));
    // chroot keeps its refusal.
    let path = dir.write("chroot.yaml", "layers:\n  chroot: {}\n  netwrk: {}\n");
    let lines = check_lines(who, &path);
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert!(lines[0].starts_with(&format!(
        "{path}:2:3: chroot refused: chroot is not a security boundary"
    )));
    assert!(lines[1].starts_with(&format!("{path}:3:3: unknown field `netwrk`")));
});

both!(a_file_that_parses_reports_its_validation_errors, |who| {
    let dir = Scratch::new("check-errors");
    let path = dir.write(
        "invalid.yaml",
        "layers:\n  process:\n    cwd: work\n  landlock:\n    read: [usr]\n",
    );
    let lines = check_lines(who, &path);
    assert_eq!(
        lines,
        [
            format!("{path}:3:10: path \"work\" is relative; write it absolute, starting with /"),
            format!("{path}:5:12: path \"usr\" is relative; write it absolute, starting with /"),
        ]
    );
});

both!(aliases_are_not_expanded, |who| {
    let dir = Scratch::new("check-errors");
    // The shape of an alias bomb (10^12 copies, expanded), with an unknown key at each
    // level, and aliases at known places.
    let mut yaml = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        let p = format!("*a{}", i - 1);
        yaml.push_str(&format!("a{i}: &a{i} [{}]\n", [p.as_str(); 10].join(", ")));
    }
    yaml.push_str("layers:\n  network: *a11\n  process:\n    env:\n      set: *a11\n");
    let path = dir.write("bomb.yaml", &yaml);
    let lines = check_lines(who, &path);
    assert_eq!(lines.len(), 12, "{lines:#?}");
    for (i, line) in lines.iter().enumerate() {
        let at = format!("{path}:{}:1: unknown field `a{i}`", i + 1);
        assert!(line.starts_with(&at), "want {at:?}, got {line:?}");
    }
    // Control: aliases at known places, and no unknown key: the profile is fine.
    let path = dir.write(
        "aliases.yaml",
        "layers:\n  network: &n {mode: off}\n  seccomp: *n\n",
    );
    let o = run(who, &["check", &path]);
    assert_code(&o, 0);
    assert_eq!(stdout(&o), format!("{path}: ok\n"));
});
