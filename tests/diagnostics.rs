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
