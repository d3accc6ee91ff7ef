//! The shipped per-app profiles, each running its real program doing real work in a
//! working directory of the test's, and the denials that matter for the main three
//! (`untrusted`, `judge`, `agent`). `.ci/run` installs the programs from Debian packages.

mod common;
use common::*;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Output;

/// A working directory anyone may write, removed with its scratch.
struct Work {
    _scratch: Scratch,
    dir: PathBuf,
}

impl Work {
    fn new(tag: &str) -> Work {
        let scratch = Scratch::new(tag);
        let dir = scratch.path().join("work");
        std::fs::create_dir_all(&dir).unwrap();
        chmod("0777", &dir);
        Work {
            _scratch: scratch,
            dir,
        }
    }

    fn put(&self, name: &str, text: &str) {
        let p = self.dir.join(name);
        std::fs::write(&p, text).unwrap();
        chmod("0666", &p);
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// `lasagna run -p PROFILE [extra] -- argv` in this directory.
    fn run(&self, who: As, profile: &str, extra: &[&str], argv: &[&str]) -> Output {
        let mut args = vec!["run", "-p", profile];
        args.extend_from_slice(extra);
        args.push("--");
        args.extend_from_slice(argv);
        let mut cmd = command(who, &args);
        cmd.current_dir(&self.dir);
        output_within(cmd, DEADLINE)
    }
}

fn chmod(mode: &str, p: &std::path::Path) {
    let _ = std::process::Command::new("chmod")
        .arg(mode)
        .arg(p)
        .status();
}

/// Runs and prints `want` on stdout.
fn prints(o: &Output, want: &str) {
    assert_eq!(
        stdout(o),
        want,
        "exit {:?}, stderr: {}",
        o.status.code(),
        stderr(o)
    );
}

both!(interpreters_run_scripts_from_the_working_directory, |who| {
    let w = Work::new("shipped-interp");
    w.put("s.py", "import sys\nprint(sum(range(10)), sys.argv[1])\n");
    w.put("s.js", "console.log(6 * 7)\n");
    w.put("s.pl", "print \"perl \", 2 ** 5, \"\\n\";\n");
    w.put("s.rb", "puts [1, 2, 3].sum\n");
    w.put("s.lua", "print(string.rep('ab', 3))\n");
    w.put("s.sh", "echo \"sh $((6 * 7))\"\n");
    prints(
        &w.run(who, "python3", &[], &["python3", "s.py", "arg"]),
        "45 arg\n",
    );
    prints(&w.run(who, "node", &[], &["node", "s.js"]), "42\n");
    prints(&w.run(who, "perl", &[], &["perl", "s.pl"]), "perl 32\n");
    prints(&w.run(who, "ruby", &[], &["ruby", "s.rb"]), "6\n");
    prints(&w.run(who, "lua", &[], &["lua5.4", "s.lua"]), "ababab\n");
    prints(&w.run(who, "sh", &[], &["sh", "s.sh"]), "sh 42\n");
    // The scripts' directory is read-only to them.
    let o = w.run(
        who,
        "python3",
        &[],
        &["python3", "-c", "open('written', 'w')"],
    );
    assert_ne!(o.status.code(), Some(0));
    assert!(
        stderr(&o).contains("Read-only file system") || stderr(&o).contains("Permission denied"),
        "{}",
        stderr(&o)
    );
    assert!(!w.path("written").exists());
    // sh: none of the caller's environment.
    let mut cmd = command(
        who,
        &[
            "run",
            "-p",
            "sh",
            "--",
            "sh",
            "-c",
            "echo ${LASAGNA_SHIPPED_SECRET:-clean}",
        ],
    );
    cmd.env("LASAGNA_SHIPPED_SECRET", "leaked")
        .current_dir(&w.dir);
    prints(&output_within(cmd, DEADLINE), "clean\n");
});

both!(data_tools_do_real_work, |who| {
    let w = Work::new("shipped-data");
    w.put("d.json", "{\"a\": [1, 2, 3], \"b\": {\"c\": \"deep\"}}\n");
    w.put("t.txt", "alpha 1\nbeta 2\ngamma 3\n");
    prints(
        &w.run(
            who,
            "jq",
            &[],
            &["jq", "-c", "[(.a | add), .b.c]", "d.json"],
        ),
        "[6,\"deep\"]\n",
    );
    prints(
        &w.run(
            who,
            "awk",
            &[],
            &["awk", "{ s += $2 } END { print s }", "t.txt"],
        ),
        "6\n",
    );
    prints(
        &w.run(who, "ripgrep", &[], &["rg", "-c", "mm", "t.txt"]),
        "1\n",
    );
    let o = w.run(who, "sed", &[], &["sed", "-i", "s/beta/BETA/", "t.txt"]);
    assert_code(&o, 0);
    assert!(std::fs::read_to_string(w.path("t.txt"))
        .unwrap()
        .contains("BETA 2"));
    prints(
        &w.run(
            who,
            "sqlite3",
            &[],
            &[
                "sqlite3",
                "db.sqlite",
                "create table t(x); insert into t values (2), (40); select sum(x) from t;",
            ],
        ),
        "42\n",
    );
    prints(
        &w.run(
            who,
            "sqlite3",
            &[],
            &["sqlite3", "db.sqlite", "select count(*) from t;"],
        ),
        "2\n",
    );
    // Archives and compressors: a round trip each, inside the sandbox.
    let roundtrip = [
        ("tar", "tar cf a.tar t.txt d.json && mkdir -p x && tar xf a.tar -C x && cmp t.txt x/t.txt && echo same"),
        ("gzip", "gzip -c t.txt > t.gz && gzip -dc t.gz | cmp - t.txt && echo same"),
        ("xz", "xz -c t.txt > t.xz && xz -dc t.xz | cmp - t.txt && echo same"),
        ("zstd", "zstd -q -c t.txt > t.zst && zstd -q -dc t.zst | cmp - t.txt && echo same"),
    ];
    for (profile, script) in roundtrip {
        prints(
            &w.run(who, profile, &[], &["/bin/sh", "-c", script]),
            "same\n",
        );
    }
    // unzip: an archive made on the host (Python's zipfile), unpacked inside.
    let made = std::process::Command::new("python3")
        .args(["-c", "import sys, zipfile; z = zipfile.ZipFile(sys.argv[1], 'w'); z.writestr('in/z.txt', 'zipped\\n'); z.close()"])
        .arg(w.path("a.zip"))
        .status()
        .unwrap();
    assert!(made.success());
    chmod("0666", &w.path("a.zip"));
    prints(
        &w.run(
            who,
            "unzip",
            &[],
            &["/bin/sh", "-c", "unzip -q a.zip && cat in/z.txt"],
        ),
        "zipped\n",
    );
    // A read-only profile cannot change the directory.
    let o = w.run(who, "jq", &[], &["/bin/sh", "-c", "echo x > new.json"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(!w.path("new.json").exists());
});

both!(build_tools_build_and_run, |who| {
    let w = Work::new("shipped-build");
    w.put(
        "hello.c",
        "#include <stdio.h>\nint main(void) { puts(\"built and ran\"); return 0; }\n",
    );
    w.put("Makefile", "hello: hello.c\n\tcc -O2 -o hello hello.c\n");
    prints(
        &w.run(who, "make", &[], &["/bin/sh", "-c", "make -s && ./hello"]),
        "built and ran\n",
    );
    let c = Work::new("shipped-cmake");
    c.put(
        "hello.c",
        "#include <stdio.h>\nint main(void) { puts(\"cmake built\"); return 0; }\n",
    );
    c.put(
        "CMakeLists.txt",
        "cmake_minimum_required(VERSION 3.10)\nproject(hello C)\nadd_executable(hello hello.c)\n",
    );
    prints(
        &c.run(
            who,
            "cmake",
            &[],
            &[
                "/bin/sh",
                "-c",
                "cmake -S . -B b >/dev/null && cmake --build b >/dev/null && ./b/hello",
            ],
        ),
        "cmake built\n",
    );
    // No network for a build: the host's loopback is out of reach.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let script =
        format!("(exec 3<>/dev/tcp/127.0.0.1/{port}) 2>/dev/null && echo reached || echo offline");
    prints(
        &w.run(who, "make", &[], &["/bin/bash", "-c", &script]),
        "offline\n",
    );
});

#[test]
fn cargo_builds_offline() {
    // Debian's cargo (/usr/bin/cargo), with a HOME of the test's own: as root the payload's
    // uid cannot read /root, so root's rustup toolchain is out of its reach (bound
    // sources are opened with the payload's host ids).
    if !std::path::Path::new("/usr/bin/cargo").exists() {
        return skip(
            "cargo_builds_offline",
            "no /usr/bin/cargo (apt-get install cargo)",
        );
    }
    let w = Work::new("shipped-cargo");
    let home = w.path("home");
    std::fs::create_dir_all(home.join(".cargo")).unwrap();
    let _ = std::process::Command::new("chmod")
        .args(["-R", "0777"])
        .arg(&home)
        .status();
    let project = w.path("hello");
    std::fs::create_dir_all(project.join("src")).unwrap();
    std::fs::write(
        project.join("Cargo.toml"),
        "[package]\nname = \"hello\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
    )
    .unwrap();
    std::fs::write(
        project.join("src/main.rs"),
        "fn main() { println!(\"cargo built\"); }\n",
    )
    .unwrap();
    let _ = std::process::Command::new("chmod")
        .args(["-R", "a+rwX"])
        .arg(&project)
        .status();
    let mut cmd = command(
        As::Root,
        &[
            "run",
            "-p",
            "cargo",
            "--",
            "/bin/sh",
            "-c",
            "cargo build -q --offline && ./target/debug/hello",
        ],
    );
    cmd.current_dir(&project).env("HOME", &home);
    prints(&output_within(cmd, DEADLINE), "cargo built\n");
}

both!(media_tools_convert, |who| {
    let w = Work::new("shipped-media");
    let o = w.run(
        who,
        "imagemagick",
        &[],
        &[
            "/bin/sh",
            "-c",
            "convert -size 16x8 xc:red red.png && identify -format '%w %h\\n' red.png",
        ],
    );
    assert_eq!(stdout(&o).lines().last(), Some("16 8"), "{}", stderr(&o));
    let o = w.run(who, "ffmpeg", &[], &["/bin/sh", "-c", "ffmpeg -loglevel error -f lavfi -i sine=frequency=440:duration=0.5 -y beep.wav && echo done"]);
    prints(&o, "done\n");
    let size = std::fs::metadata(w.path("beep.wav")).unwrap().len();
    assert!(size > 10_000, "a half-second wav: {size} bytes");
});

both!(network_clients_reach_only_what_is_allowed, |who| {
    let (ok, other) = (http_server(), http_server());
    let w = Work::new("shipped-net");
    let allow = format!("localhost:{ok}");
    let script = format!(
        "curl -sS -m 10 -o got.txt http://localhost:{ok}/ && cat got.txt; \
         curl -sS -m 10 -o /dev/null -w '%{{http_code}}\\n' http://localhost:{other}/"
    );
    prints(
        &w.run(
            who,
            "curl",
            &["--allow", &allow],
            &["/bin/sh", "-c", &script],
        ),
        format!("body {ok}\n403\n").as_str(),
    );
    let script = format!(
        "wget -q -O w.txt http://localhost:{ok}/ && cat w.txt; wget -q -O - http://localhost:{other}/ || echo refused"
    );
    prints(
        &w.run(
            who,
            "wget",
            &["--allow", &allow],
            &["/bin/sh", "-c", &script],
        ),
        format!("body {ok}\nrefused\n").as_str(),
    );
    // Without --allow, nothing.
    let o = w.run(
        who,
        "curl",
        &[],
        &[
            "/bin/sh",
            "-c",
            &format!("curl -sS -m 10 -o /dev/null -w '%{{http_code}}\\n' http://localhost:{ok}/"),
        ],
    );
    prints(&o, "403\n");
});

both!(git_works_on_the_callers_repository, |who| {
    let w = Work::new("shipped-git");
    let script = "git init -q repo && cd repo && echo hi > f && git add f \
                  && git -c user.name=t -c user.email=t@example.invalid commit -q -m first \
                  && git log --format=%s && git status --short | wc -l";
    prints(
        &w.run(who, "git", &[], &["/bin/sh", "-c", script]),
        "first\n0\n",
    );
    // A repository the caller made (as root: owned by root, not by the payload's uid).
    let status = std::process::Command::new("git")
        .args(["-c", "init.defaultBranch=main", "init", "-q"])
        .arg(w.path("mine"))
        .status()
        .unwrap();
    assert!(status.success());
    let _ = std::process::Command::new("chmod")
        .args(["-R", "a+rwX"])
        .arg(w.path("mine"))
        .status();
    prints(
        &w.run(
            who,
            "git",
            &[],
            &["/bin/sh", "-c", "cd mine && git status --short | wc -l"],
        ),
        "0\n",
    );
});

#[test]
fn a_profile_for_a_missing_program_names_it() {
    let dir = Scratch::new("shipped-missing");
    let p = dir.write("p.yaml", "extends: jq\nname: missing\nprogram: lasagna-no-such-program\npackage: lasagna-no-such-package\n");
    let mut cmd = command(As::Root, &["run", "-p", &p, "--", "/bin/true"]);
    cmd.current_dir(dir.path());
    let o = output_within(cmd, DEADLINE);
    assert_code(&o, 127);
    let err = stderr(&o);
    assert!(
        err.contains("profile missing is for lasagna-no-such-program, which is not installed here")
            && err.contains("apt-get install lasagna-no-such-package"),
        "{err}"
    );
}

both!(untrusted_stops_every_attack_lasagna_test_knows, |who| {
    let w = Work::new("shipped-untrusted");
    w.put("payload.sh", "echo hi\n");
    let dir = Scratch::new("shipped-untrusted-profile");
    let p = dir.write(
        "untrusted-sandbox.yaml",
        &format!("extends: untrusted\nlayers:\n  filesystem:\n    mounts:\n      - ro-bind: /sandbox\n        source: {}\n  landlock:\n    read: [/sandbox]\n", w.dir.display()),
    );
    let o = run(who, &["test", &p, "--quick"]);
    assert_code(&o, 0);
    assert!(
        stdout(&o).contains(" 0 through the full profile"),
        "{}",
        stdout(&o)
    );
    // The files given are there, read-only.
    let mut args = vec!["run", "-p", "untrusted", "--ro-bind"];
    let bind = format!("{}:/sandbox", w.dir.display());
    args.push(&bind);
    args.extend_from_slice(&[
        "--",
        "/bin/sh",
        "-c",
        "sh /sandbox/payload.sh; (echo x > /sandbox/x) 2>/dev/null || echo read-only",
    ]);
    let o = run(who, &args);
    prints(&o, "hi\nread-only\n");
});

both!(judge_ends_runaway_submissions_and_says_why, |who| {
    let w = Work::new("shipped-judge");
    let report = |tag: &str| {
        let r = Scratch::new(&format!("judge-{tag}"));
        (r.for_anyone("r.json"), r)
    };
    let read = |path: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    };
    // A correct submission writes its answer to /out.
    let (rp, _keep) = report("ok");
    let o = w.run(
        who,
        "judge",
        &["--report", &rp],
        &["/bin/sh", "-c", "echo 42 > /out/answer && cat /out/answer"],
    );
    prints(&o, "42\n");
    assert_eq!(read(&rp)["ending"]["exited"]["code"], 0);
    // An endless loop is ended by its CPU time (2 s), not the wall clock.
    let (rp, _keep) = report("cpu");
    let o = w.run(
        who,
        "judge",
        &["--report", &rp],
        &["python3", "-c", "while True: pass"],
    );
    assert_ne!(o.status.code(), Some(0));
    let r = read(&rp);
    assert_eq!(r["ending"]["signaled"]["name"], "SIGXCPU", "{r:#}");
    // The verdict a judge reads: the CPU time limit, with no margin to apply.
    assert_eq!(r["limit"]["kind"], "cpu-time", "{r:#}");
    assert_eq!(r["limit"]["max_ms"], 2000);
    assert!(
        stderr(&o).contains("killed: CPU time limit 2 s reached"),
        "{}",
        stderr(&o)
    );
    // Whether the judge's cgroup holds the run (always as root; an unprivileged caller on
    // a host without delegation gets rlimits standing in, named in the cgroups notes).
    let cgroup = |r: &serde_json::Value| {
        let outcome = layer_of(r, "cgroups")["outcome"].clone();
        if who == As::Root {
            assert_eq!(outcome, "applied", "{r:#}");
        }
        outcome == "applied"
    };
    let stands_in = |r: &serde_json::Value, note: &str| {
        let notes = layer_of(r, "cgroups")["notes"].clone();
        assert!(
            notes.as_array().is_some_and(|n| n
                .iter()
                .any(|n| n.as_str().is_some_and(|n| n.starts_with(note)))),
            "no note {note:?}: {notes:#}"
        );
    };
    // A fork bomb meets the process limit and the run still ends: the shell goes on past
    // the refused forks and says so itself.
    let (rp, _keep) = report("pids");
    let o = w.run(
        who,
        "judge",
        &["--report", &rp],
        &[
            "/bin/sh",
            "-c",
            "b() { b | b & }; b; sleep 1; echo survived",
        ],
    );
    assert_code(&o, 0);
    assert_eq!(stdout(&o), "survived\n", "{}", stderr(&o));
    assert!(stderr(&o).contains("Cannot fork"), "{}", stderr(&o));
    let r = read(&rp);
    if cgroup(&r) {
        // The cgroup counts what it refused: the verdict names pids.max, which did not end
        // the run.
        assert_eq!(r["limit"]["kind"], "pids", "{r:#}");
        assert_eq!(r["limit"]["max"], 64, "{r:#}");
        assert_eq!(r["limit"]["ended_run"], false, "{r:#}");
        assert_eq!(r["limit"]["refused"], r["usage"]["fork_refusals"], "{r:#}");
        assert!(r["limit"]["refused"].as_u64().unwrap() >= 1, "{r:#}");
        assert!(r["usage"]["pids_peak"].as_u64().unwrap() <= 64, "{r:#}");
        assert!(
            stderr(&o).contains("lasagna: process limit 64 reached: ")
                && stderr(&o).contains(" forks refused (cgroups: pids.max)"),
            "{}",
            stderr(&o)
        );
    } else {
        // RLIMIT_NPROC stands in and refuses without counting.
        stands_in(&r, "pids.max replaced by RLIMIT_NPROC = 64 ");
    }
    // Memory: 400 MiB against 256 MiB. As root the cgroup OOM-kills it and says so; with
    // RLIMIT_AS standing in the allocation fails in the payload.
    let alloc = |mib: u32| {
        format!("b = bytearray({mib} << 20); b[::4096] = b'x' * len(b[::4096]); print('allocated')")
    };
    let (rp, _keep) = report("memory");
    let o = w.run(
        who,
        "judge",
        &["--report", &rp],
        &["python3", "-c", &alloc(400)],
    );
    assert!(!stdout(&o).contains("allocated"));
    let r = read(&rp);
    if cgroup(&r) {
        assert_code(&o, 137);
        assert_eq!(r["ending"]["signaled"]["name"], "SIGKILL", "{r:#}");
        assert_eq!(r["limit"]["kind"], "memory", "{r:#}");
        assert_eq!(r["limit"]["max_bytes"], 256 << 20, "{r:#}");
        assert_eq!(r["limit"]["ended_run"], true, "{r:#}");
        assert!(r["usage"]["oom_kills"].as_u64().unwrap() >= 1, "{r:#}");
        assert!(
            stderr(&o).contains("lasagna: killed: memory limit 256 MiB reached (cgroups: memory.max; the kernel OOM-killed the payload)"),
            "{}",
            stderr(&o)
        );
    } else {
        assert_code(&o, 1);
        assert!(stderr(&o).contains("MemoryError"), "{}", stderr(&o));
        stands_in(&r, "memory.max replaced by RLIMIT_AS = 268435456 ");
    }
    // Control: the same submission asking for 64 MiB fits, and no limit is reported.
    let (rp, _keep) = report("memory-fits");
    let o = w.run(
        who,
        "judge",
        &["--report", &rp],
        &["python3", "-c", &alloc(64)],
    );
    prints(&o, "allocated\n");
    let r = read(&rp);
    assert!(r.get("limit").is_none(), "{r:#}");
});

both!(agent_hides_secrets_and_reaches_only_registries, |who| {
    let w = Work::new("shipped-agent");
    std::fs::create_dir_all(w.path(".ssh")).unwrap();
    w.put(".ssh/id_ed25519", "PRIVATE KEY\n");
    w.put(".env", "TOKEN=secret\n");
    w.put("code.py", "print('ok')\n");
    let _ = std::process::Command::new("chmod")
        .args(["-R", "a+rwX"])
        .arg(&w.dir)
        .status();
    let port = http_server();
    let allow = format!("localhost:{port}");
    let script = format!(
        "python3 code.py; echo built > out.txt && cat out.txt; \
         cat .ssh/id_ed25519 2>/dev/null || echo no-key; \
         grep -q secret .env 2>/dev/null && echo leaked || echo no-env; \
         curl -sS -m 10 http://localhost:{port}/; \
         curl -sS -m 10 -o /dev/null -w '%{{http_code}}\\n' http://localhost:{}/",
        port + 1
    );
    let o = w.run(
        who,
        "agent",
        &["--allow", &allow],
        &["/bin/sh", "-c", &script],
    );
    prints(
        &o,
        &format!("ok\nbuilt\nno-key\nno-env\nbody {port}\n403\n"),
    );
    // The rest of the host's home is not there at all.
    let o = w.run(
        who,
        "agent",
        &[],
        &["/bin/sh", "-c", "ls /root /home 2>/dev/null | wc -l"],
    );
    prints(&o, "0\n");
});
