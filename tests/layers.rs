//! Each layer of the spine, shown blocking something on the real kernel, as root and as an
//! unprivileged user.

mod common;
use common::*;

use std::path::Path;

fn sh(who: As, script: &str) -> std::process::Output {
    run(who, &["run", "-p", "strict", "--", "/bin/sh", "-c", script])
}

/// The payload's host uid for `who` (65534 as root, the test user otherwise).
fn payload_host_uid(who: As) -> u32 {
    match who {
        As::Root => 65534,
        As::User => test_user().unwrap().0,
    }
}

both!(pid_namespace_hides_and_protects_host_processes, |who| {
    // A sleeper running as the payload's own host uid: only the namespace stands between
    // them (same uid, so permissions would let the signal through).
    let tag = format!("30.{}{}", std::process::id(), who as u8);
    let uid = payload_host_uid(who);
    let mut sleeper = Spawned::new(
        std::process::Command::new("setpriv")
            .arg(format!("--reuid={uid}"))
            .arg(format!("--regid={uid}"))
            .arg("--clear-groups")
            .arg("--")
            .arg("sleep")
            .arg(&tag),
    );
    let host_pid = sleeper.id();
    // A pattern that finds the sleeper's command line but not the shell's own, which holds
    // the pattern.
    let pattern = format!("[{}]{}", &tag[..1], &tag[1..]);
    let script = format!(
        "ls /proc | grep -c '^[0-9]'; kill -0 {host_pid} 2>/dev/null && echo SIGNALLED || echo unreachable; \
         grep -l '{pattern}' /proc/[0-9]*/cmdline 2>/dev/null | wc -l"
    );
    // Control: without the namespaces (and the layers that need them, and Landlock's signal
    // scope) the same payload sees the sleeper and signals it.
    let c = Contrast::run(
        who,
        &["-p", "strict"],
        &[
            "--without",
            "namespaces",
            "--without",
            "filesystem",
            "--without",
            "landlock",
        ],
        &["/bin/sh", "-c", &script],
    );
    sleeper.child().kill().unwrap();
    assert_code(&c.with, 0);
    assert_code(&c.without, 0);
    let lines = |o: &std::process::Output| -> Vec<String> {
        stdout(o).lines().map(str::to_string).collect()
    };
    let (with, without) = (lines(&c.with), lines(&c.without));
    let visible: u32 = with[0].trim().parse().unwrap();
    assert!(
        (2..=6).contains(&visible),
        "only the sandbox's own processes (init, the shell, its pipeline) are visible: {visible}"
    );
    assert_eq!(with[1], "unreachable", "host pid {host_pid}");
    assert_eq!(with[2].trim(), "0", "the host's sleeper is not visible");
    let host_visible: u32 = without[0].trim().parse().unwrap();
    assert!(
        host_visible > 10,
        "control: the host's processes: {host_visible}"
    );
    assert_eq!(
        without[1], "SIGNALLED",
        "control: the same uid can signal it"
    );
    assert_eq!(without[2].trim(), "1", "control: the sleeper is visible");
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
        // The kernel's word on each path's mount (the first of its options: ro or rw), then
        // a write to each: refused as a read-only file system, while /work takes one.
        let mounts =
            "for p in /usr /etc /; do echo $p $(findmnt -n -o OPTIONS -T $p | cut -d, -f1); done";
        let o = sh(
            who,
            &format!("{mounts}; touch /usr/x 2>&1; touch /etc/x 2>&1; touch /newfile 2>&1; echo data > /work/f && cat /work/f"),
        );
        assert_code(&o, 0);
        let out = stdout(&o);
        assert!(out.starts_with("/usr ro\n/etc ro\n/ ro\n"), "{out}");
        assert_eq!(out.matches("Read-only file system").count(), 3, "{out}");
        assert!(out.ends_with("data\n"), "{out}");
        // Control: without the filesystem layer the payload sees the host's own mounts, and
        // these are writable ones (the payload's host uid still could not write them, so
        // nothing is tried there).
        let o = run(
            who,
            &[
                "run",
                "-p",
                "strict",
                "--without",
                "filesystem",
                "--",
                "/bin/sh",
                "-c",
                mounts,
            ],
        );
        assert_code(&o, 0);
        assert_eq!(stdout(&o), "/usr rw\n/etc rw\n/ rw\n", "{}", stderr(&o));
    }
);

both!(filesystem_masks_hide_a_path_inside_a_bind, |who| {
    let dir = Scratch::new("mask");
    dir.write("public.txt", "public\n");
    dir.write("private.key", "KEY\n");
    let d = dir.path().display().to_string();
    let bind = format!("extends: strict\nlayers:\n  filesystem:\n    mounts:\n      - ro-bind: /data\n        source: {d}\n");
    let masked = dir.write(
        "masked.yaml",
        &format!("{bind}      - mask: /data/private.key\n"),
    );
    let plain = dir.write("plain.yaml", &bind);
    // cat's own status is printed: a failing cat is not an empty file.
    let script = "cat /data/public.txt; cat /data/private.key; echo rc=$?";
    let c = Contrast::of(
        who,
        &["-p", &masked, "--without", "landlock"],
        &["-p", &plain, "--without", "landlock"],
        &["/bin/sh", "-c", script],
    );
    c.prints("public\nrc=0\n", "public\nKEY\nrc=0\n");
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
    let c = Contrast::run(
        who,
        &["-p", "strict"],
        &["--without", "capabilities"],
        &[
            "/bin/sh",
            "-c",
            "grep -E '^Cap(Eff|Prm|Inh|Bnd|Amb)' /proc/self/status",
        ],
    );
    assert_code(&c.with, 0);
    let out = stdout(&c.with);
    assert_eq!(out.lines().count(), 5, "{out}");
    for line in out.lines() {
        assert!(line.ends_with("0000000000000000"), "{line}");
    }
    // Control: without the layer the bounding set is full.
    let bnd = stdout(&c.without);
    let bnd = bnd.lines().find(|l| l.starts_with("CapBnd")).unwrap();
    assert!(!bnd.ends_with("0000000000000000"), "control: {bnd}");
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

both!(no_new_privs_is_set, |who| {
    // seccomp and Landlock set no_new_privs too (the kernel requires it of an unprivileged
    // process for either): the control run switches them off with the process layer.
    let c = Contrast::run(
        who,
        &[
            "-p",
            "strict",
            "--without",
            "seccomp",
            "--without",
            "landlock",
        ],
        &["--without", "process"],
        &["/bin/sh", "-c", "grep NoNewPrivs /proc/self/status"],
    );
    c.prints("NoNewPrivs:\t1\n", "NoNewPrivs:\t0\n");
});

both!(binds_are_nosuid, |who| {
    // A setuid binary bound in keeps its bit but the mount is nosuid. No control can run
    // it with the bit honoured: lasagna never makes a mount without nosuid (and a setuid
    // root file's owner is not mapped in the user namespace either), so this reads what
    // the kernel shows for the mount.
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
            "stat -c %A /opt/suid/suid-id; grep ' /opt/suid ' /proc/self/mountinfo",
        ],
    );
    assert_code(&o, 0);
    let out = stdout(&o);
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("-rwsr-xr-x"), "{out}");
    let options = lines.next().unwrap().split(' ').nth(5).unwrap().to_string();
    assert!(options.split(',').any(|o| o == "nosuid"), "{out}");
});

both!(rlimits_hold, |who| {
    let dir = Scratch::new("rlim");
    let profile = dir.write(
        "p.yaml",
        "extends: strict\nlayers:\n  rlimits:\n    nofile: 64\n    fsize: 1M\n",
    );
    let script = "ulimit -n; ulimit -Hn; head -c 2000000 /dev/zero > /work/big 2>/dev/null; echo rc=$?; wc -c < /work/big";
    let c = Contrast::run(
        who,
        &["-p", &profile],
        &["--without", "rlimits"],
        &["/bin/sh", "-c", script],
    );
    assert_code(&c.with, 0);
    assert_eq!(
        stdout(&c.with),
        "64\n64\nrc=153\n1048576\n",
        "SIGXFSZ (128+25) at the 1 MiB limit"
    );
    // Control: without the layer the caller's limits apply and the file is written whole.
    let without = stdout(&c.without);
    assert!(without.ends_with("rc=0\n2000000\n"), "control: {without}");
    assert!(!without.starts_with("64\n"), "control: {without}");
});

both!(inherited_fds_are_closed, |who| {
    let mut cmd = command(who, &["run", "-p", "strict", "--", "/bin/sh", "-c",
        "for fd in 3 4 5 6 7 8 9; do [ -e /proc/self/fd/$fd ] && echo open $fd; done; echo checked"]);
    // Leak fd 7 into lasagna, as a careless caller would.
    unsafe_free_dup_into(&mut cmd, 7);
    let o = output_within(cmd, DEADLINE);
    assert_code(&o, 0);
    assert_eq!(stdout(&o), "checked\n");
    // Control: the same leak reaches a program run without lasagna. (No lasagna flag
    // keeps it: closing inherited fds is step 4b, not a layer that can be switched off.)
    let mut plain = std::process::Command::new("/bin/sh");
    plain.args([
        "-c",
        "for fd in 3 4 5 6 7 8 9; do [ -e /proc/self/fd/$fd ] && echo open $fd; done; echo checked",
    ]);
    unsafe_free_dup_into(&mut plain, 7);
    let o = output_within(plain, DEADLINE);
    assert!(stdout(&o).contains("open 7"), "control: {}", stdout(&o));
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
    let mut cmd = command(who, &["run", "-p", "strict", "--", "/usr/bin/env"]);
    cmd.env("AWS_SECRET_ACCESS_KEY", "hunter2")
        .env("TERM", "xterm-test");
    let o = output_within(cmd, DEADLINE);
    assert_code(&o, 0);
    let out = stdout(&o);
    assert!(!out.contains("hunter2"), "{out}");
    // Control: without the process layer the secret reaches the payload.
    let control = output_within(
        {
            let mut c = command(
                who,
                &[
                    "run",
                    "-p",
                    "strict",
                    "--without",
                    "process",
                    "--",
                    "/usr/bin/env",
                ],
            );
            c.env("AWS_SECRET_ACCESS_KEY", "hunter2");
            c
        },
        DEADLINE,
    );
    assert!(
        stdout(&control).contains("AWS_SECRET_ACCESS_KEY=hunter2"),
        "control: {}",
        stdout(&control)
    );
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
    // Root inside the user namespace, with every capability there, owns the sandbox's uts
    // namespace: it may change its domain name, and does so through the syscall (the
    // control). Through /proc/sys only the read-only mount stops the same change: EROFS.
    let dir = Scratch::new("procsys");
    let profile = dir.write(
        "p.yaml",
        "extends: strict\nlayers:\n  namespaces:\n    uid: 0\n    gid: 0\n  capabilities:\n    mode: off\n",
    );
    let host_domain = std::fs::read_to_string("/proc/sys/kernel/domainname").unwrap();
    let host_pattern = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap();
    let script = "import ctypes, errno, os\n\
        libc = ctypes.CDLL(None, use_errno=True)\n\
        try:\n  open('/proc/sys/kernel/domainname', 'w').write('evil')\n  print('WROTE')\n\
        except OSError as e:\n  print(errno.errorcode[e.errno])\n\
        r = libc.setdomainname(b'evil', 4)\n\
        print('syscall', 'ok' if r == 0 else errno.errorcode[ctypes.get_errno()])\n\
        print(open('/proc/sys/kernel/domainname').read().strip())\n\
        for f in ('/proc/sys/kernel/core_pattern', '/proc/sysrq-trigger'):\n\
        \x20 try:\n    open(f, 'w').write('x')\n    print('WROTE', f)\n\
        \x20 except OSError as e:\n    print('denied', f)\n";
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
            script,
        ],
    );
    assert_code(&o, 0);
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "EROFS", "the read-only /proc/sys mount: {out}");
    assert_eq!(
        lines[1], "syscall ok",
        "control: the same change by syscall: {out}"
    );
    assert_eq!(lines[2], "evil", "the domain name inside changed: {out}");
    assert!(!out.contains("WROTE"), "{out}");
    // The host's values did not change.
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/domainname").unwrap(),
        host_domain
    );
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap(),
        host_pattern
    );
    // The dangerous /proc entries this kernel has are masked (a read-only /dev/null or an
    // empty tmpfs over each). Reading them is refused by permissions inside the user
    // namespace anyway, so no run could tell the mask by its effect: this reads the mounts.
    let o = sh(who, "cat /proc/self/mountinfo");
    let mounts = stdout(&o);
    let mut masked = 0;
    for name in [
        "kcore",
        "keys",
        "timer_list",
        "sched_debug",
        "latency_stats",
        "acpi",
        "scsi",
        "asound",
    ] {
        if std::path::Path::new("/proc").join(name).exists() {
            masked += 1;
            assert!(
                mounts.contains(&format!(" /proc/{name} ro,")),
                "/proc/{name} is masked read-only: {mounts}"
            );
        }
    }
    assert!(masked > 0, "this kernel has none of the masked entries");
});

/// TIOCSTI: the payload cannot push keystrokes into the terminal of the shell that ran
/// lasagna. `wrap`: through lasagna, else the same python run directly as `who` (the
/// control).
fn tiocsti_attempt(who: As, wrap: bool) -> String {
    let inner = "import fcntl, termios\ntry:\n  fcntl.ioctl(0, termios.TIOCSTI, b'X'); print('INJECTED')\nexcept OSError as e:\n  print('blocked', e.errno)";
    let cmd = if wrap {
        command(who, &["run", "-p", "strict", "--", "python3", "-c", inner])
    } else {
        as_who(who, &["python3", "-c", inner])
    };
    let argv: Vec<String> = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let out = on_a_pty(&argv.iter().map(String::as_str).collect::<Vec<_>>());
    // `<exit code> <output> | pending: …`: drop the exit code.
    out.split_once(' ')
        .map(|(_, rest)| rest.to_string())
        .unwrap_or(out)
}

both!(tiocsti_cannot_reach_the_callers_terminal, |who| {
    // Control: outside the sandbox the same call injects: root holds CAP_SYS_ADMIN, with
    // which TIOCSTI works on any terminal; an unprivileged process only where the kernel
    // still allows it (dev.tty.legacy_tiocsti=1, or before Linux 6.2).
    if who == As::Root
        || need(
            "tiocsti_cannot_reach_the_callers_terminal::as_user (control)",
            Feature::LegacyTiocsti,
        )
    {
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

// ---- behaviour that had no test ----------------------------------------------------------

both!(kept_capabilities_are_ambient_and_work, |who| {
    // `keep` leaves a capability in every set and raises it ambient, so it survives
    // execve for an unprivileged uid: binding port 80 works with it, not without.
    let dir = Scratch::new("keep");
    let keep = dir.write(
        "keep.yaml",
        "extends: strict\nlayers:\n  capabilities:\n    keep: [net_bind_service]\n",
    );
    let script = "import socket\nprint([l.split()[1] for l in open('/proc/self/status') if l.startswith('CapAmb')][0])\ns = socket.socket()\ntry:\n  s.bind(('127.0.0.1', 80)); print('bound')\nexcept PermissionError:\n  print('denied')";
    let c = Contrast::of(
        who,
        &["-p", &keep, "--without", "landlock"],
        &["-p", "strict", "--without", "landlock"],
        &["python3", "-c", script],
    );
    // CAP_NET_BIND_SERVICE is bit 10.
    c.prints("0000000000000400\nbound\n", "0000000000000000\ndenied\n");
});

// CPU time's hard limit is a second above its soft one: SIGXCPU names the cause first.
both!(every_rlimit_is_set_with_its_hard_limit, |who| {
    let dir = Scratch::new("rlimits-all");
    let p = dir.write(
        "p.yaml",
        "extends: strict\nlayers:\n  cgroups:\n    mode: off\n  rlimits:\n    nproc: 4000\n    core: 0\n    cpu: 7\n    as: 1G\n    stack: 4M\n    memlock: 64K\n",
    );
    let script = "for r in u c t v s l; do echo $(ulimit -S$r) $(ulimit -H$r); done";
    let c = Contrast::run(
        who,
        &["-p", &p],
        &["--without", "rlimits"],
        &["/bin/bash", "-c", script],
    );
    assert_code(&c.with, 0);
    assert_eq!(
        stdout(&c.with),
        "4000 4000\n0 0\n7 8\n1048576 1048576\n4096 4096\n64 64\n",
        "nproc, core, cpu (s), as, stack, memlock (KiB)"
    );
    assert_ne!(
        stdout(&c.without),
        stdout(&c.with),
        "control: the caller's limits"
    );
    // The cpu limit is enforced by the kernel: a busy loop gets SIGXCPU at the soft limit,
    // after one second of CPU time.
    let cpu = dir.write(
        "cpu.yaml",
        "extends: strict\nlayers:\n  rlimits:\n    cpu: 1\n",
    );
    let o = run(
        who,
        &[
            "run",
            "-p",
            &cpu,
            "--",
            "/bin/sh",
            "-c",
            "while :; do :; done",
        ],
    );
    assert_code(&o, 128 + libc::SIGXCPU);
});

both!(ipc_time_and_cgroup_namespaces_are_the_sandboxs_own, |who| {
    // Seen from inside: the payload's namespace links differ from the host's.
    let host = |name: &str| std::fs::read_link(format!("/proc/self/ns/{name}")).unwrap();
    let script =
        "readlink /proc/self/ns/ipc /proc/self/ns/time /proc/self/ns/cgroup; cat /proc/self/cgroup";
    let c = Contrast::run(
        who,
        &["-p", "strict"],
        &[
            "--without",
            "namespaces",
            "--without",
            "filesystem",
            "--without",
            "landlock",
        ],
        &["/bin/sh", "-c", script],
    );
    assert_code(&c.with, 0);
    let out = stdout(&c.with);
    let lines: Vec<&str> = out.lines().collect();
    for (line, name) in lines.iter().zip(["ipc", "time", "cgroup"]) {
        assert_ne!(Path::new(line), host(name), "{name} namespace: {out}");
    }
    // The cgroup namespace's root is the sandbox's own cgroup: paths inside read as /.
    assert!(lines[3..].iter().all(|l| l.ends_with(":/")), "{out}");
    // Control: without the namespaces layer they are the host's.
    let without = stdout(&c.without);
    let lines: Vec<&str> = without.lines().collect();
    for (line, name) in lines.iter().zip(["ipc", "time", "cgroup"]) {
        assert_eq!(Path::new(line), host(name), "control: {name}");
    }
});

both!(
    no_user_namespace_can_be_made_inside_unless_the_profile_allows,
    |who| {
        // Seccomp blocks unshare(CLONE_NEWUSER) too; without it, the sandbox's own
        // max_user_namespaces of 0 is what refuses, with the kernel's ENOSPC.
        let script = "cat /proc/sys/user/max_user_namespaces; unshare -U true 2>&1; echo rc=$?";
        let o = run(
            who,
            &[
                "run",
                "-p",
                "strict",
                "--without",
                "seccomp",
                "--",
                "/bin/sh",
                "-c",
                script,
            ],
        );
        assert_code(&o, 0);
        assert_eq!(
            stdout(&o),
            "0\nunshare: unshare failed: No space left on device\nrc=1\n",
            "{}",
            stderr(&o)
        );
        // Control: a profile that allows nested user namespaces gets one.
        let dir = Scratch::new("nested-userns");
        let p = dir.write(
            "nested.yaml",
            "extends: strict\nlayers:\n  namespaces:\n    nested-userns: true\n",
        );
        let o = run(
            who,
            &[
                "run",
                "-p",
                &p,
                "--without",
                "seccomp",
                "--",
                "/bin/sh",
                "-c",
                "unshare -U readlink /proc/self/ns/user; readlink /proc/self/ns/user; echo rc=$?",
            ],
        );
        assert_code(&o, 0);
        let out = stdout(&o);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3, "{out}{}", stderr(&o));
        assert!(lines[0].starts_with("user:["), "{out}");
        assert_ne!(
            lines[0], lines[1],
            "the nested namespace is a new one: {out}"
        );
        assert_eq!(lines[2], "rc=0", "{out}");
    }
);

both!(dev_holds_only_the_minimal_nodes, |who| {
    let o = sh(who, "ls -A /dev | tr '\\n' ' '; echo; stat -c '%t:%T %n' /dev/null /dev/zero /dev/full /dev/random /dev/urandom");
    assert_code(&o, 0);
    let out = stdout(&o);
    let mut lines = out.lines();
    let mut names: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    names.sort();
    let mut want = vec![
        "fd", "full", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin", "stdout", "tty",
        "urandom", "zero",
    ];
    if !Path::new("/dev/tty").exists() {
        want.retain(|n| *n != "tty");
    }
    assert_eq!(names, want, "{out}");
    // The nodes are the real devices (major:minor 1:3, 1:5, 1:7, 1:8, 1:9).
    let devs: Vec<&str> = lines.map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(devs, ["1:3", "1:5", "1:7", "1:8", "1:9"], "{out}");
    // Control: the host's /dev has far more (disks, ttys).
    assert!(std::fs::read_dir("/dev").unwrap().count() > names.len() + 10);
});
