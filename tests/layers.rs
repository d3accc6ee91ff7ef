//! Each layer of the spine, shown blocking something on the real kernel, as root and as an
//! unprivileged user.

mod common;
use common::*;

fn sh(who: As, script: &str) -> std::process::Output {
    run(who, &["run", "-p", "strict", "--", "/bin/sh", "-c", script])
}

both!(pid_namespace_hides_and_protects_host_processes, |who| {
    let mut sleeper = std::process::Command::new("sleep")
        .arg("30.123")
        .spawn()
        .unwrap();
    let host_pid = sleeper.id();
    let script = format!(
        "ls /proc | grep -c '^[0-9]'; kill -0 {host_pid} 2>/dev/null && echo SIGNALLED || echo unreachable; \
         grep -l '[3]0.123' /proc/[0-9]*/cmdline 2>/dev/null | wc -l"
    );
    let o = sh(who, &script);
    sleeper.kill().unwrap();
    let _ = sleeper.wait();
    assert_code(&o, 0);
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    let visible: u32 = lines[0].trim().parse().unwrap();
    assert!(
        visible <= 6,
        "only the sandbox's own processes are visible, saw {visible}: {out}"
    );
    assert_eq!(
        lines[1], "unreachable",
        "host pid {host_pid} must not be signalable: {out}"
    );
    assert_eq!(
        lines[2].trim(),
        "0",
        "the host's sleep is not visible: {out}"
    );
});

both!(filesystem_hides_host_files, |who| {
    let dir = Scratch::new("secret");
    let secret = dir.write("secret.txt", "host secret\n");
    let o = sh(
        who,
        &format!(
            "cat {secret} 2>&1; cat /etc/shadow 2>&1; ls /root 2>&1; ls /home 2>&1; echo done"
        ),
    );
    assert_code(&o, 0);
    let out = stdout(&o);
    assert!(!out.contains("host secret"), "{out}");
    assert!(out.contains("No such file"), "{out}");
    assert!(
        !out.contains("root:"),
        "/etc/shadow must not be visible: {out}"
    );
    assert!(out.ends_with("done\n"));
    // The same file is readable without the layer (the test can fail).
    let o = run(
        who,
        &[
            "run",
            "-p",
            "strict",
            "--without",
            "filesystem",
            "--",
            "cat",
            &secret,
        ],
    );
    assert_code(&o, 0);
    assert_eq!(stdout(&o), "host secret\n");
});

both!(
    filesystem_system_dirs_are_read_only_and_work_dir_writable,
    |who| {
        let o = sh(
        who,
        "touch /usr/x 2>&1; touch /etc/x 2>&1; touch /newfile 2>&1; echo data > /work/f && cat /work/f",
    );
        assert_code(&o, 0);
        let out = stdout(&o);
        assert_eq!(out.matches("Read-only file system").count(), 3, "{out}");
        assert!(out.ends_with("data\n"), "{out}");
    }
);

both!(filesystem_masks_hide_a_path_inside_a_bind, |who| {
    let dir = Scratch::new("mask");
    dir.write("public.txt", "public\n");
    dir.write("private.key", "KEY\n");
    let d = dir.path().display().to_string();
    let profile = dir.write(
        "p.yaml",
        &format!(
            "extends: strict\nlayers:\n  filesystem:\n    mounts:\n      - ro-bind: /data\n        source: {d}\n      - mask: /data/private.key\n"
        ),
    );
    let o = run(
        who,
        &[
            "run",
            "-p",
            &profile,
            "--without",
            "landlock",
            "--",
            "/bin/sh",
            "-c",
            "cat /data/public.txt; cat /data/private.key | wc -c",
        ],
    );
    assert_code(&o, 0);
    assert_eq!(stdout(&o), "public\n0\n");
});

both!(hostname_change_stays_inside, |who| {
    let dir = Scratch::new("uts");
    let profile = dir.write(
        "p.yaml",
        "extends: strict\nlayers:\n  namespaces:\n    uid: 0\n    gid: 0\n  capabilities:\n    mode: off\n",
    );
    let before = nix::unistd::gethostname().unwrap();
    let o = run(
        who,
        &[
            "run",
            "-p",
            &profile,
            "--without",
            "seccomp",
            "--",
            "python3",
            "-c",
            "import socket; socket.sethostname('evil-host'); print(socket.gethostname())",
        ],
    );
    assert_code(&o, 0);
    assert_eq!(stdout(&o), "evil-host\n");
    assert_eq!(nix::unistd::gethostname().unwrap(), before);
});

both!(network_namespace_cannot_reach_host_loopback, |who| {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let script = format!(
        "import socket\ns=socket.socket()\ns.settimeout(2)\ntry:\n  s.connect(('127.0.0.1',{port})); print('CONNECTED')\nexcept OSError as e:\n  print('blocked', e.errno)"
    );
    let o = run(
        who,
        &["run", "-p", "strict", "--", "python3", "-c", &script],
    );
    assert_code(&o, 0);
    assert!(stdout(&o).starts_with("blocked"), "{}", stdout(&o));
    // Without the namespaces layer the same connect succeeds: the test can fail.
    let o = run(
        who,
        &[
            "run",
            "-p",
            "strict",
            "--without",
            "namespaces",
            "--without",
            "filesystem",
            "--without",
            "landlock",
            "--",
            "python3",
            "-c",
            &script,
        ],
    );
    assert_code(&o, 0);
    assert_eq!(stdout(&o), "CONNECTED\n");
});

both!(capabilities_are_all_dropped, |who| {
    let o = sh(who, "grep -E '^Cap(Eff|Prm|Inh|Bnd|Amb)' /proc/self/status");
    assert_code(&o, 0);
    let out = stdout(&o);
    assert_eq!(out.lines().count(), 5, "{out}");
    for line in out.lines() {
        assert!(line.ends_with("0000000000000000"), "{line}");
    }
});

both!(capabilities_off_keeps_namespace_root_powers, |who| {
    // Root inside the user namespace with the capabilities layer on cannot mount;
    // with it off it can: the layer is what stops it.
    let dir = Scratch::new("caps");
    let profile = dir.write(
        "p.yaml",
        "extends: strict\nlayers:\n  namespaces:\n    uid: 0\n    gid: 0\n",
    );
    let script = "mount -t tmpfs none /work 2>/dev/null && echo MOUNTED || echo denied";
    let o = run(
        who,
        &[
            "run",
            "-p",
            &profile,
            "--without",
            "seccomp",
            "--without",
            "landlock",
            "--",
            "/bin/sh",
            "-c",
            script,
        ],
    );
    assert_code(&o, 0);
    assert_eq!(stdout(&o), "denied\n");
    let o = run(
        who,
        &[
            "run",
            "-p",
            &profile,
            "--without",
            "capabilities",
            "--without",
            "seccomp",
            "--without",
            "landlock",
            "--",
            "/bin/sh",
            "-c",
            script,
        ],
    );
    assert_code(&o, 0);
    assert_eq!(stdout(&o), "MOUNTED\n");
});

both!(no_new_privs_is_set_and_setuid_gains_nothing, |who| {
    let dir = Scratch::new("suid");
    let id_copy = dir.path().join("suid-id");
    std::fs::copy("/usr/bin/id", &id_copy).unwrap();
    let _ = std::process::Command::new("chmod")
        .arg("4755")
        .arg(&id_copy)
        .status();
    let d = dir.path().display().to_string();
    let profile = dir.write(
        "p.yaml",
        &format!("extends: strict\nlayers:\n  filesystem:\n    mounts:\n      - ro-bind: /opt/suid\n        source: {d}\n"),
    );
    let o = run(
        who,
        &[
            "run",
            "-p",
            &profile,
            "--without",
            "landlock",
            "--",
            "/bin/sh",
            "-c",
            "grep NoNewPrivs /proc/self/status; /opt/suid/suid-id -u; /opt/suid/suid-id -u -r",
        ],
    );
    assert_code(&o, 0);
    assert_eq!(stdout(&o), "NoNewPrivs:\t1\n1000\n1000\n");
});

both!(rlimits_hold, |who| {
    let dir = Scratch::new("rlim");
    let profile = dir.write(
        "p.yaml",
        "extends: strict\nlayers:\n  rlimits:\n    nofile: 64\n    fsize: 1M\n",
    );
    let o = run(who, &["run", "-p", &profile, "--", "/bin/sh", "-c",
        "ulimit -n; ulimit -Hn; head -c 2000000 /dev/zero > /work/big 2>/dev/null; echo rc=$?; wc -c < /work/big"]);
    assert_code(&o, 0);
    assert_eq!(
        stdout(&o),
        "64\n64\nrc=153\n1048576\n",
        "SIGXFSZ (128+25) at the 1 MiB limit"
    );
});

both!(inherited_fds_are_closed, |who| {
    let mut cmd = command(who, &["run", "-p", "strict", "--", "/bin/sh", "-c",
        "for fd in 3 4 5 6 7 8 9; do [ -e /proc/self/fd/$fd ] && echo open $fd; done; echo checked"]);
    // Leak fd 7 into lasagna, as a careless caller would.
    unsafe_free_dup_into(&mut cmd, 7);
    let o = cmd.output().unwrap();
    assert_code(&o, 0);
    assert_eq!(stdout(&o), "checked\n");
});

/// Run `cmd` through a shell that opens `/etc/hostname` as fd `target` without CLOEXEC,
/// as a careless caller would leak it.
fn unsafe_free_dup_into(cmd: &mut std::process::Command, target: i32) {
    let prog = cmd.get_program().to_owned();
    let args: Vec<_> = cmd.get_args().map(|a| a.to_owned()).collect();
    let mut shell = std::process::Command::new("/bin/sh");
    shell
        .arg("-c")
        .arg(format!("exec \"$0\" \"$@\" {target}</etc/hostname"))
        .arg(prog)
        .args(args)
        .current_dir("/")
        .stdin(std::process::Stdio::null());
    *cmd = shell;
}

both!(environment_is_cleared_to_the_allow_list, |who| {
    let o = command(who, &["run", "-p", "strict", "--", "/usr/bin/env"])
        .env("AWS_SECRET_ACCESS_KEY", "hunter2")
        .env("TERM", "xterm-test")
        .output()
        .unwrap();
    assert_code(&o, 0);
    let out = stdout(&o);
    assert!(!out.contains("hunter2"), "{out}");
    assert!(
        out.contains("TERM=xterm-test"),
        "allow-listed TERM kept: {out}"
    );
    assert!(out.contains("PATH=/usr/local/bin:/usr/bin:/bin"), "{out}");
    let names: Vec<&str> = out
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, _)| k))
        .collect();
    for n in &names {
        assert!(
            [
                "TERM",
                "PATH",
                "HOME",
                "LANG",
                "LANGUAGE",
                "TZ",
                "COLORTERM",
                "NO_COLOR",
                "PWD"
            ]
            .contains(n)
                || n.starts_with("LC_"),
            "unexpected variable {n} in {out}"
        );
    }
});

both!(proc_sys_is_read_only, |who| {
    // Even root inside the user namespace with every capability cannot write /proc/sys.
    let dir = Scratch::new("procsys");
    let profile = dir.write(
        "p.yaml",
        "extends: strict\nlayers:\n  namespaces:\n    uid: 0\n    gid: 0\n  capabilities:\n    mode: off\n",
    );
    let o = run(who, &["run", "-p", &profile, "--", "/bin/sh", "-c",
        "for f in /proc/sys/kernel/domainname /proc/sys/kernel/core_pattern /proc/sysrq-trigger; do \
           (echo x > $f) 2>/dev/null && echo \"WROTE $f\" || echo \"denied $f\"; done; \
         (echo x > /proc/sys/kernel/domainname) 2>&1; cat /proc/kcore 2>/dev/null | wc -c"]);
    assert_code(&o, 0);
    let out = stdout(&o);
    assert!(!out.contains("WROTE"), "{out}");
    assert_eq!(out.matches("denied").count(), 3, "{out}");
    // domainname belongs to the sandbox's own uts namespace: only the read-only mount stops it.
    assert!(out.contains("Read-only file system"), "{out}");
    assert!(
        out.trim_end().ends_with('0'),
        "/proc/kcore unreadable: {out}"
    );
    let host = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap();
    assert_ne!(host.trim(), "y");
});

/// TIOCSTI: the payload cannot push keystrokes into the terminal of the shell that ran
/// lasagna. A python harness gives lasagna a pty as its controlling terminal.
fn tiocsti_attempt(who: As, wrap: bool) -> String {
    let inner = "import fcntl, termios\ntry:\n  fcntl.ioctl(0, termios.TIOCSTI, b'X'); print('INJECTED')\nexcept OSError as e:\n  print('blocked', e.errno)";
    let mut argv: Vec<String> = Vec::new();
    if wrap {
        let cmd = command(who, &["run", "-p", "strict", "--", "python3", "-c", inner]);
        argv.push(cmd.get_program().to_string_lossy().into_owned());
        argv.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    } else {
        argv.extend(["python3".to_string(), "-c".to_string(), inner.to_string()]);
    }
    let harness = r#"
import os, pty, sys, subprocess, json, fcntl, termios
argv = json.loads(sys.argv[1])
master, slave = pty.openpty()
def ctty():
    os.setsid()
    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
p = subprocess.run(argv, stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=ctty, cwd="/")
os.set_blocking(master, False)
try:
    pending = os.read(master, 100)
except OSError:
    pending = b""
print(p.stdout.decode().strip(), "| pending:", pending)
"#;
    let o = std::process::Command::new("python3")
        .arg("-c")
        .arg(harness)
        .arg(serde_json::to_string(&argv).unwrap())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o)
}

both!(tiocsti_cannot_reach_the_callers_terminal, |who| {
    let legacy = std::fs::read_to_string("/proc/sys/dev/tty/legacy_tiocsti").unwrap_or_default();
    if legacy.trim() == "1" && who == As::Root {
        // Control: outside the sandbox, on this kernel, the same call injects.
        let out = tiocsti_attempt(who, false);
        assert!(
            out.starts_with("INJECTED"),
            "control run should inject: {out}"
        );
    }
    let out = tiocsti_attempt(who, true);
    assert!(out.starts_with("blocked"), "{out}");
    assert!(!out.contains("b'X'"), "nothing reached the terminal: {out}");
});

both!(mount_points_are_not_redirected_through_symlinks, |who| {
    // A bound host directory holds a symlink; a mount onto it must not follow it.
    let dir = Scratch::new("symlink");
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    std::os::unix::fs::symlink("sub", dir.path().join("link")).unwrap();
    let d = dir.path().display().to_string();
    let profile = dir.write(
        "p.yaml",
        &format!(
            "extends: strict\nlayers:\n  filesystem:\n    mounts:\n      - ro-bind: /data\n        source: {d}\n      - tmpfs: /data/link\n"
        ),
    );
    let o = run(who, &["run", "-p", &profile, "--", "/bin/true"]);
    assert_code(&o, 125);
    let err = stderr(&o);
    assert!(err.contains("check mount point /data/link"), "{err}");
    assert!(err.contains("ELOOP"), "{err}");
    // The same tmpfs on a real directory works.
    let profile = dir.write(
        "q.yaml",
        &format!(
            "extends: strict\nlayers:\n  filesystem:\n    mounts:\n      - ro-bind: /data\n        source: {d}\n      - tmpfs: /data/sub\n"
        ),
    );
    let o = run(who, &["run", "-p", &profile, "--", "/bin/true"]);
    assert_code(&o, 0);
});

both!(
    a_missing_bind_source_is_refused_before_anything_runs,
    |who| {
        let dir = Scratch::new("missing-source");
        let missing = format!("{}/not-there", dir.path().display());
        let mounts = format!("      - ro-bind: /data\n        source: {missing}\n");
        let profile = dir.write(
            "p.yaml",
            &format!("extends: strict\nlayers:\n  filesystem:\n    mounts:\n{mounts}"),
        );
        let o = run(who, &["run", "-p", &profile, "--", "/bin/echo", "RAN"]);
        assert_code(&o, 125);
        assert!(
            stderr(&o).contains(&format!(
                "the bind source {missing} (for /data) does not exist"
            )),
            "{}",
            stderr(&o)
        );
        assert!(!stdout(&o).contains("RAN"), "the payload ran");
        let o = run(who, &["check", &profile]);
        assert_code(&o, 1);
        assert!(stderr(&o).contains(&missing), "{}", stderr(&o));
        // Marked optional, the entry is skipped and the payload runs.
        let optional = dir.write(
            "optional.yaml",
            &format!(
            "extends: strict\nlayers:\n  filesystem:\n    mounts:\n{mounts}        optional: true\n"
        ),
        );
        let o = run(
            who,
            &[
                "run",
                "-p",
                &optional,
                "--",
                "/bin/sh",
                "-c",
                "echo RAN; test -e /data || echo ABSENT",
            ],
        );
        assert_code(&o, 0);
        assert_eq!(stdout(&o), "RAN\nABSENT\n");
    }
);

both!(binds_below_binds_land_on_the_checked_inode, |who| {
    // Binds below a bound host directory go through open_tree +
    // move_mount onto a target resolved without symlinks: a planted link is refused, and on
    // a real directory the inner bind lands there with its own read-only attribute.
    let dir = Scratch::new("nested-bind");
    let outer = dir.path().join("outer");
    let inner = dir.path().join("inner");
    std::fs::create_dir_all(outer.join("sub")).unwrap();
    std::fs::create_dir_all(&inner).unwrap();
    std::fs::write(inner.join("marker"), "inner\n").unwrap();
    std::os::unix::fs::symlink("sub", outer.join("link")).unwrap();
    let (o_dir, i_dir) = (outer.display(), inner.display());
    let planted = dir.write(
        "planted.yaml",
        &format!(
            "extends: strict\nlayers:\n  filesystem:\n    mounts:\n      - ro-bind: /data\n        source: {o_dir}\n      - ro-bind: /data/link\n        source: {i_dir}\n"
        ),
    );
    let o = run(who, &["run", "-p", &planted, "--", "/bin/true"]);
    assert_code(&o, 125);
    let err = stderr(&o);
    assert!(err.contains("check mount point /data/link"), "{err}");
    assert!(err.contains("ELOOP"), "{err}");
    let nested = dir.write(
        "nested.yaml",
        &format!(
            "extends: strict\nlayers:\n  filesystem:\n    mounts:\n      - bind: /data\n        source: {o_dir}\n      - ro-bind: /data/sub\n        source: {i_dir}\n"
        ),
    );
    let o = run(
        who,
        &[
            "run",
            "-p",
            &nested,
            "--without",
            "landlock",
            "--",
            "/bin/sh",
            "-c",
            "cat /data/sub/marker; touch /data/sub/x 2>&1 | grep -o 'Read-only file system'",
        ],
    );
    assert_code(&o, 0);
    assert_eq!(stdout(&o), "inner\nRead-only file system\n");
    // Nothing of the inner bind reached the host directory it was mounted on.
    assert!(!outer.join("sub").join("marker").exists());
});
