//! The landlock layer alone, shown blocking on the real kernel, as root and as an unprivileged
//! user: every other layer is switched off, so what is denied is denied by Landlock. Each test
//! has a control (the same probe without Landlock, or without the rule under test) that
//! succeeds, so each test can fail. One test runs `strict` to show Landlock's part in the stack.

mod common;
use common::*;

use std::os::unix::process::CommandExt;
use std::process::{Child, Output};
use std::sync::OnceLock;

/// Every layer but landlock switched off.
const LANDLOCK_ONLY: [&str; 12] = [
    "--without",
    "namespaces",
    "--without",
    "filesystem",
    "--without",
    "capabilities",
    "--without",
    "rlimits",
    "--without",
    "process",
    "--without",
    "seccomp",
];

/// The payload's interpreters, by absolute path: the environment is inherited (the process
/// layer is off) and root's PATH may lead to a shim under /root.
const SH: &str = "/bin/sh";
const PYTHON: &str = "/usr/bin/python3";

/// First ABI with TCP port rules, and with scopes.
const NET_ABI: u32 = 4;
const SCOPE_ABI: u32 = 6;

/// The host's Landlock ABI, asked of the kernel directly rather than of lasagna
/// (`landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION)`, syscall 444).
fn host_abi() -> u32 {
    static ABI: OnceLock<u32> = OnceLock::new();
    *ABI.get_or_init(|| {
        let o = std::process::Command::new(PYTHON)
            .args([
                "-c",
                "import ctypes; print(ctypes.CDLL(None, use_errno=True).syscall(444, None, 0, 1))",
            ])
            .output()
            .expect("python3 runs");
        stdout(&o).trim().parse::<i64>().unwrap_or(-1).max(0) as u32
    })
}

/// Whether the host has at least `abi`; skips loudly when not.
fn need_abi(test: &str, abi: u32) -> bool {
    let host = host_abi();
    if host >= abi {
        return true;
    }
    skip(test, &format!("needs Landlock ABI {abi}, host has {host}"));
    false
}

/// A landlock-only profile: enough of the system readable for sh and python3 to run.
struct Profile {
    mode: &'static str,
    read: Vec<String>,
    write: Vec<String>,
    exec: Vec<String>,
    /// Further `layers: landlock:` keys, one per line, unindented.
    extra: Vec<String>,
}

impl Profile {
    fn new() -> Profile {
        Profile {
            mode: "required",
            read: vec!["/usr".into(), "/etc".into(), "/proc".into()],
            write: vec!["/dev/null".into()],
            exec: vec!["/usr".into()],
            extra: Vec::new(),
        }
    }

    fn read(mut self, path: &str) -> Profile {
        self.read.push(path.into());
        self
    }

    fn write(mut self, path: &str) -> Profile {
        self.write.push(path.into());
        self
    }

    fn exec(mut self, path: &str) -> Profile {
        self.exec.push(path.into());
        self
    }

    fn mode(mut self, mode: &'static str) -> Profile {
        self.mode = mode;
        self
    }

    fn with(mut self, line: &str) -> Profile {
        self.extra.push(line.into());
        self
    }

    /// A copy with one more line.
    fn clone_with(&self, line: &str) -> Profile {
        Profile {
            mode: self.mode,
            read: self.read.clone(),
            write: self.write.clone(),
            exec: self.exec.clone(),
            extra: self.extra.clone(),
        }
        .with(line)
    }

    /// Write the profile into `dir` as `name` and return its path.
    fn save(&self, dir: &Scratch, name: &str) -> String {
        let mut yaml = format!(
            "name: {name}\nlayers:\n  landlock:\n    mode: {}\n    read: [{}]\n    write: [{}]\n    exec: [{}]\n",
            self.mode,
            self.read.join(", "),
            self.write.join(", "),
            self.exec.join(", ")
        );
        for line in &self.extra {
            for l in line.lines() {
                yaml.push_str(&format!("    {l}\n"));
            }
        }
        dir.write(&format!("{name}.yaml"), &yaml)
    }
}

/// `lasagna run -p PROFILE <landlock only> FLAGS -- CMD`.
fn landlock_only(who: As, profile: &str, flags: &[&str], cmd: &[&str]) -> Output {
    let mut args = vec!["run", "-p", profile];
    args.extend(LANDLOCK_ONLY);
    args.extend(flags);
    args.push("--");
    args.extend(cmd);
    run(who, &args)
}

/// `sh -c SCRIPT` under Landlock alone, and (the control) with Landlock off too.
fn sh_both_ways(who: As, profile: &str, script: &str) -> (Output, Output) {
    (
        landlock_only(who, profile, &[], &[SH, "-c", script]),
        landlock_only(
            who,
            profile,
            &["--without", "landlock"],
            &[SH, "-c", script],
        ),
    )
}

/// A scratch subdirectory any identity may write to.
fn open_dir(dir: &Scratch, name: &str) -> String {
    let p = dir.path().join(name);
    std::fs::create_dir_all(&p).unwrap();
    let _ = std::process::Command::new("chmod")
        .arg("0777")
        .arg(&p)
        .status();
    p.display().to_string()
}

/// A `sleep` owned by the uid and gid the payload runs as (as root, lasagna gives the payload
/// an unprivileged uid even with namespaces off), so that only Landlock can stop a signal.
fn sleeper(who: As, profile: &str) -> Child {
    let id = |flag: &str| -> u32 {
        let o = landlock_only(
            who,
            profile,
            &["--without", "landlock"],
            &["/usr/bin/id", flag],
        );
        assert_code(&o, 0);
        stdout(&o).trim().parse().unwrap()
    };
    let (uid, gid) = (id("-u"), id("-g"));
    std::process::Command::new("/usr/bin/sleep")
        .arg("30")
        .uid(uid)
        .gid(gid)
        .spawn()
        .expect("sleep starts")
}

/// How `target` ended within two seconds, or `None` (it is then killed).
fn ended_soon(target: &mut Child) -> Option<std::process::ExitStatus> {
    for _ in 0..200 {
        if let Some(status) = target.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let _ = target.kill();
    let _ = target.wait();
    None
}

/// Connect to each TCP port on 127.0.0.1; print 0 or the errno per port, space-separated.
const TCP_PROBE: &str = "import socket, sys\nout = []\nfor p in sys.argv[1:]:\n  s = socket.socket()\n  s.settimeout(5)\n  try:\n    s.connect(('127.0.0.1', int(p))); out.append('0')\n  except OSError as e:\n    out.append(str(e.errno))\nprint(' '.join(out))";

/// Connect to the abstract unix socket named by argv[1]; print 0 or the errno.
const ABSTRACT_PROBE: &str = "import socket, sys\ns = socket.socket(socket.AF_UNIX)\ntry:\n  s.connect('\\0' + sys.argv[1]); print(0)\nexcept OSError as e:\n  print(e.errno)";

const EACCES: &str = "13";
const EPERM: &str = "1";

both!(read_outside_read_paths_is_denied, |who| {
    let dir = Scratch::new("ll-read");
    let allowed = open_dir(&dir, "allowed");
    let inside = format!("{allowed}/f");
    std::fs::write(&inside, "inside\n").unwrap();
    let outside = dir.write("secret.txt", "host secret\n");
    let profile = Profile::new().read(&allowed).save(&dir, "read");
    let script = format!("cat {inside}; cat {outside} 2>&1; echo rc=$?");
    let (confined, control) = sh_both_ways(who, &profile, &script);
    assert_code(&confined, 0);
    assert_eq!(
        stdout(&confined),
        format!("inside\ncat: {outside}: Permission denied\nrc=1\n")
    );
    assert_code(&control, 0);
    assert_eq!(stdout(&control), "inside\nhost secret\nrc=0\n");
});

both!(write_outside_write_paths_is_denied, |who| {
    let dir = Scratch::new("ll-write");
    let writable = open_dir(&dir, "writable");
    let other = open_dir(&dir, "other");
    let profile = Profile::new().write(&writable).save(&dir, "write");
    let script = format!(
        "echo in > {writable}/f && cat {writable}/f; {{ echo out > {other}/f; }} 2>&1; echo rc=$?"
    );
    let confined = landlock_only(who, &profile, &[], &[SH, "-c", &script]);
    assert_code(&confined, 0);
    let out = stdout(&confined);
    assert!(out.starts_with("in\n"), "{out}");
    assert!(out.contains("Permission denied"), "{out}");
    assert!(out.ends_with("rc=2\n"), "{out}");
    // The kernel's word, not the shell's: nothing was created outside `write`.
    assert!(!dir.path().join("other/f").exists());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("writable/f")).unwrap(),
        "in\n"
    );
    std::fs::remove_file(dir.path().join("writable/f")).unwrap();
    let control = landlock_only(
        who,
        &profile,
        &["--without", "landlock"],
        &[SH, "-c", &script],
    );
    assert_code(&control, 0);
    assert_eq!(stdout(&control), "in\nrc=0\n");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("other/f")).unwrap(),
        "out\n"
    );
});

both!(exec_outside_exec_paths_is_denied, |who| {
    let dir = Scratch::new("ll-exec");
    let bin = open_dir(&dir, "bin");
    let copy = format!("{bin}/true");
    std::fs::copy("/usr/bin/true", &copy).unwrap();
    let _ = std::process::Command::new("chmod")
        .arg("0755")
        .arg(&copy)
        .status();
    // Readable, so only `execute` is missing.
    let profile = Profile::new().read(&bin).save(&dir, "exec");
    let script = format!("{copy} 2>&1; echo rc=$?; /usr/bin/true; echo rc=$?");
    let (confined, control) = sh_both_ways(who, &profile, &script);
    assert_code(&confined, 0);
    let out = stdout(&confined);
    assert!(out.contains("Permission denied"), "{out}");
    assert!(out.ends_with("rc=126\nrc=0\n"), "{out}");
    assert_code(&control, 0);
    assert_eq!(stdout(&control), "rc=0\nrc=0\n");

    // As the payload itself: the launcher reports EACCES and exits 126.
    let o = landlock_only(who, &profile, &[], &[&copy]);
    assert_code(&o, 126);
    assert!(stderr(&o).contains("Permission denied"), "{}", stderr(&o));
    // Granting `exec` on the copy's directory lets it run.
    let granted = Profile::new().exec(&bin).save(&dir, "exec-granted");
    assert_code(&landlock_only(who, &granted, &[], &[&copy]), 0);
});

both!(tcp_connect_outside_connect_ports_is_eacces, |who| {
    if !need_abi("tcp_connect_outside_connect_ports_is_eacces", NET_ABI) {
        return;
    }
    let allowed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let denied = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = |l: &std::net::TcpListener| l.local_addr().unwrap().port().to_string();
    let (allowed_port, denied_port) = (port(&allowed), port(&denied));
    let dir = Scratch::new("ll-tcp");
    let profile = Profile::new()
        .with(&format!("net: {{connect: [{allowed_port}]}}"))
        .save(&dir, "tcp");
    let probe = [PYTHON, "-c", TCP_PROBE, &allowed_port, &denied_port];
    let confined = landlock_only(who, &profile, &[], &probe);
    assert_code(&confined, 0);
    assert_eq!(stdout(&confined), format!("0 {EACCES}\n"));
    let control = landlock_only(who, &profile, &["--without", "landlock"], &probe);
    assert_code(&control, 0);
    assert_eq!(stdout(&control), "0 0\n");
});

/// Connect to argv[1] with a plain TCP socket, then an MPTCP one; print 0 or the errno for each.
const MPTCP_PROBE: &str = "import socket, sys\nout = []\nfor proto in (0, 262):\n  try:\n    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, proto)\n    s.settimeout(5)\n    s.connect(('127.0.0.1', int(sys.argv[1]))); out.append('0')\n  except OSError as e:\n    out.append(str(e.errno))\nprint(' '.join(out))";

const MPTCP_GAP: &str = "tcp port rules do not cover MPTCP sockets";

both!(mptcp_gap_is_reported_as_the_kernel_shows_it, |who| {
    if !need_abi("mptcp_gap_is_reported_as_the_kernel_shows_it", NET_ABI) {
        return;
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let probe = [PYTHON, "-c", MPTCP_PROBE, &port];
    let mut host = std::process::Command::new(PYTHON);
    host.args(&probe[1..]);
    let host = output_within(host, DEADLINE);
    if stdout(&host) != "0 0\n" {
        skip(
            "mptcp_gap_is_reported_as_the_kernel_shows_it",
            &format!("MPTCP unavailable on this host: {}", stdout(&host).trim()),
        );
        return;
    }
    let dir = Scratch::new("ll-mptcp");
    let profile = Profile::new()
        .with("net: {connect: []}")
        .save(&dir, "mptcp");
    // Landlock alone: TCP is denied, MPTCP is not, and the report says so.
    let o = landlock_only(who, &profile, &["-v"], &probe);
    assert_code(&o, 0);
    assert_eq!(
        stdout(&o),
        format!("{EACCES} 0\n"),
        "if MPTCP is now denied, the report's gap note is wrong"
    );
    assert!(stderr(&o).contains(MPTCP_GAP), "{}", stderr(&o));
    // Control: with seccomp on as well, MPTCP sockets are refused and no gap is reported.
    let with_seccomp = dir.write(
        "with-seccomp.yaml",
        &std::fs::read_to_string(&profile).unwrap().replace(
            "name: mptcp\n",
            "name: with-seccomp\nextends: seccomp-default\n",
        ),
    );
    let mut args = vec!["run", "-p", &with_seccomp, "-v"];
    // Every layer but landlock and seccomp: LANDLOCK_ONLY ends with `--without seccomp`.
    assert_eq!(LANDLOCK_ONLY[10..], ["--without", "seccomp"]);
    args.extend(LANDLOCK_ONLY[..10].iter().copied());
    args.push("--");
    args.extend(probe);
    let o = run(who, &args);
    assert_code(&o, 0);
    let out = stdout(&o);
    assert!(out.starts_with(&format!("{EACCES} ")), "{out}");
    assert!(!out.ends_with(" 0\n"), "MPTCP must be refused: {out}");
    assert!(!stderr(&o).contains(MPTCP_GAP), "{}", stderr(&o));
});

both!(abstract_unix_socket_scope_is_eperm, |who| {
    if !need_abi("abstract_unix_socket_scope_is_eperm", SCOPE_ABI) {
        return;
    }
    use std::os::linux::net::SocketAddrExt;
    let name = format!("lasagna-landlock-it-{}-{who:?}", std::process::id());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let _listener = std::os::unix::net::UnixListener::bind_addr(&addr).unwrap();
    let dir = Scratch::new("ll-abstract");
    let scoped = Profile::new()
        .with("scope: [abstract-unix-socket]")
        .save(&dir, "scoped");
    let unscoped = Profile::new().save(&dir, "unscoped");
    let probe = [PYTHON, "-c", ABSTRACT_PROBE, &name];
    let o = landlock_only(who, &scoped, &[], &probe);
    assert_code(&o, 0);
    assert_eq!(stdout(&o), format!("{EPERM}\n"));
    // Control: Landlock on, without the scope.
    let o = landlock_only(who, &unscoped, &[], &probe);
    assert_code(&o, 0);
    assert_eq!(stdout(&o), "0\n");
});

both!(signal_scope_is_eperm, |who| {
    if !need_abi("signal_scope_is_eperm", SCOPE_ABI) {
        return;
    }
    use std::os::unix::process::ExitStatusExt;
    let dir = Scratch::new("ll-signal");
    let scoped = Profile::new().with("scope: [signal]").save(&dir, "scoped");
    let unscoped = Profile::new().save(&dir, "unscoped");
    let mut target = sleeper(who, &scoped);
    let script = format!("kill -TERM {} 2>&1; echo rc=$?", target.id());
    let o = landlock_only(who, &scoped, &[], &[SH, "-c", &script]);
    // The kernel's word: the target is still alive.
    let alive = target.try_wait().unwrap().is_none();
    let _ = target.kill();
    let _ = target.wait();
    assert_code(&o, 0);
    let out = stdout(&o);
    assert!(out.contains("Operation not permitted"), "{out}");
    assert!(!out.ends_with("rc=0\n"), "{out}");
    assert!(
        alive,
        "the scoped payload must not kill the sleep outside: {out}"
    );

    // Control: Landlock on, without the scope: the signal arrives.
    let mut target = sleeper(who, &unscoped);
    let script = format!("kill -TERM {} 2>&1; echo rc=$?", target.id());
    let o = landlock_only(who, &unscoped, &[], &[SH, "-c", &script]);
    let ended = ended_soon(&mut target);
    assert_code(&o, 0);
    assert_eq!(stdout(&o), "rc=0\n");
    assert_eq!(ended.and_then(|s| s.signal()), Some(15), "{ended:?}");
});

both!(abi_3_best_effort_drops_net_rules_and_says_so, |who| {
    if !need_abi("abi_3_best_effort_drops_net_rules_and_says_so", NET_ABI) {
        return;
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let dir = Scratch::new("ll-abi3");
    let secret = dir.write("secret.txt", "host secret\n");
    let reports = open_dir(&dir, "reports");
    let report = format!("{reports}/r.json");
    let net = "net: {connect: [1]}";
    let degraded = Profile::new()
        .mode("best-effort")
        .with("abi: 3")
        .with(net)
        .save(&dir, "degraded");
    let full = Profile::new()
        .mode("best-effort")
        .with(net)
        .save(&dir, "full");
    // Files stay confined; TCP is really open.
    let script = format!(
        "import socket\ntry:\n  open('{secret}').read(); print('read')\nexcept OSError as e:\n  print(e.errno)\n{TCP_PROBE}"
    );
    let o = landlock_only(
        who,
        &degraded,
        &["-v", "--report", &report],
        &[PYTHON, "-c", &script, &port],
    );
    assert_code(&o, 0);
    assert_eq!(stdout(&o), format!("{EACCES}\n0\n"));
    let err = stderr(&o);
    assert!(
        err.contains("landlock degraded: net rules dropped: ABI 3 < 4"),
        "{err}"
    );
    assert!(err.contains("ABI 3 (host "), "{err}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let ll = landlock_report(&json);
    assert_eq!(ll["outcome"], "degraded", "{ll}");
    assert!(
        ll["reason"]
            .as_str()
            .unwrap()
            .contains("net rules dropped: ABI 3 < 4"),
        "{ll}"
    );
    assert!(
        notes(ll).contains(&format!("ABI 3 (host {})", host_abi())),
        "{ll}"
    );
    // Control: without the cap the same connect is refused.
    let o = landlock_only(who, &full, &[], &[PYTHON, "-c", &script, &port]);
    assert_code(&o, 0);
    assert_eq!(stdout(&o), format!("{EACCES}\n{EACCES}\n"));
});

both!(abi_3_required_refuses_before_anything_runs, |who| {
    if !need_abi("abi_3_required_refuses_before_anything_runs", NET_ABI) {
        return;
    }
    let dir = Scratch::new("ll-abi3req");
    let work = open_dir(&dir, "work");
    let marker = format!("{work}/marker");
    let capped = Profile::new()
        .write(&work)
        .with("abi: 3")
        .with("net: {connect: [1]}")
        .save(&dir, "capped");
    let uncapped = Profile::new()
        .write(&work)
        .with("net: {connect: [1]}")
        .save(&dir, "uncapped");
    let o = landlock_only(who, &capped, &[], &["/usr/bin/touch", &marker]);
    assert_code(&o, 125);
    let err = stderr(&o);
    assert!(err.contains("refused"), "{err}");
    assert!(err.contains("net rules dropped: ABI 3 < 4"), "{err}");
    assert!(err.contains("abi: 3"), "the fix names the cap: {err}");
    assert!(
        !std::path::Path::new(&marker).exists(),
        "nothing ran: {err}"
    );
    // Control: the same profile without the cap runs the payload.
    let o = landlock_only(who, &uncapped, &[], &["/usr/bin/touch", &marker]);
    assert_code(&o, 0);
    assert!(std::path::Path::new(&marker).exists());
});

both!(missing_rule_path_fails_unless_optional, |who| {
    let dir = Scratch::new("ll-missing");
    let work = open_dir(&dir, "work");
    let marker = format!("{work}/marker");
    let missing = format!("{}/does-not-exist", dir.path().display());
    let required = Profile::new()
        .write(&work)
        .read(&missing)
        .save(&dir, "required");
    let optional = Profile::new()
        .write(&work)
        .with(&format!(
            "rules:\n  - {{path: {missing}, access: [read], optional: true}}"
        ))
        .save(&dir, "optional");
    let allow_missing = Profile::new()
        .write(&work)
        .read(&missing)
        .with("allow-missing: true")
        .save(&dir, "allow-missing");
    let touch = ["/usr/bin/touch", &marker];
    let o = landlock_only(who, &required, &[], &touch);
    assert_code(&o, 125);
    assert!(stderr(&o).contains(&missing), "{}", stderr(&o));
    assert!(stderr(&o).contains("landlock"), "{}", stderr(&o));
    assert!(!std::path::Path::new(&marker).exists());
    for profile in [&optional, &allow_missing] {
        let o = landlock_only(who, profile, &[], &touch);
        assert_code(&o, 0);
        assert!(std::path::Path::new(&marker).exists(), "{profile}");
        std::fs::remove_file(&marker).unwrap();
    }
});

fn landlock_report(json: &serde_json::Value) -> &serde_json::Value {
    json["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["layer"] == "landlock")
        .expect("the report has a landlock entry")
}

fn notes(layer: &serde_json::Value) -> Vec<String> {
    layer["notes"]
        .as_array()
        .map(|n| n.iter().map(|s| s.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

both!(report_says_applied_and_names_the_abi, |who| {
    if !need_abi("report_says_applied_and_names_the_abi", 1) {
        return;
    }
    let dir = Scratch::new("ll-report");
    let secret = dir.write("secret.txt", "host secret\n");
    let reports = open_dir(&dir, "reports");
    let profile = Profile::new().save(&dir, "report");
    let read = |flags: &[&str], report: &str| -> (Output, serde_json::Value) {
        let mut f = flags.to_vec();
        f.extend(["--report", report]);
        let o = landlock_only(who, &profile, &f, &["/usr/bin/cat", &secret]);
        let json = serde_json::from_str(&std::fs::read_to_string(report).unwrap()).unwrap();
        (o, json)
    };
    // The report's claim agrees with what the payload met.
    let (o, json) = read(&[], &format!("{reports}/on.json"));
    assert_code(&o, 1);
    assert!(stderr(&o).contains("Permission denied"), "{}", stderr(&o));
    let ll = landlock_report(&json);
    assert_eq!(ll["outcome"], "applied", "{ll}");
    assert_eq!(ll["requested"], "required", "{ll}");
    let abi = host_abi().min(9);
    assert!(
        notes(ll).contains(&format!("ABI {abi} (host {})", host_abi())),
        "{ll}"
    );
    assert_eq!(json["exit_code"], 1);
    // Control: without the layer the report says skipped and the read works.
    let (o, json) = read(&["--without", "landlock"], &format!("{reports}/off.json"));
    assert_code(&o, 0);
    assert_eq!(stdout(&o), "host secret\n");
    assert_eq!(landlock_report(&json)["outcome"], "skipped");
});

both!(strict_landlock_denies_what_the_mount_view_shows, |who| {
    let dir = Scratch::new("ll-strict");
    dir.write("secret.txt", "bound in\n");
    let d = dir.path().display().to_string();
    let mount = format!(
        "extends: strict\nlayers:\n  filesystem:\n    mounts:\n      - ro-bind: /data\n        source: {d}\n"
    );
    let bound = dir.write("bound.yaml", &mount);
    let granted = dir.write(
        "granted.yaml",
        &format!("{mount}  landlock:\n    read: [/data]\n"),
    );
    let script = "ls /data; cat /data/secret.txt 2>&1; echo rc=$?";
    let sh = |profile: &str, flags: &[&str]| {
        let mut args = vec!["run", "-p", profile];
        args.extend(flags);
        args.extend(["--", SH, "-c", script]);
        run(who, &args)
    };
    // The file is in the mount view (listed) but not in landlock's read list.
    let o = sh(&bound, &[]);
    assert_code(&o, 0);
    let out = stdout(&o);
    assert!(
        out.contains("secret.txt"),
        "visible in the mount view: {out}"
    );
    assert!(
        out.ends_with("cat: /data/secret.txt: Permission denied\nrc=1\n"),
        "{out}"
    );
    // Controls: without landlock, or with /data in its read list, the read works.
    for o in [sh(&bound, &["--without", "landlock"]), sh(&granted, &[])] {
        assert_code(&o, 0);
        assert!(stdout(&o).ends_with("bound in\nrc=0\n"), "{}", stdout(&o));
    }
});

// ---- ABI downgrades through the binary: what each ABI restricts, shown by the kernel ----

both!(abi_5_best_effort_leaves_scopes_unenforced, |who| {
    // Scopes came with ABI 6: `abi: 5` in best-effort drops them, and the payload then
    // reaches the host's abstract socket that ABI 6 refuses.
    if !need_abi("abi_5_best_effort_leaves_scopes_unenforced", SCOPE_ABI) {
        return;
    }
    use std::os::linux::net::SocketAddrExt;
    let name = format!("lasagna-landlock-abi5-{}-{who:?}", std::process::id());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let _listener = std::os::unix::net::UnixListener::bind_addr(&addr).unwrap();
    let dir = Scratch::new("ll-abi5");
    let at5 = Profile::new()
        .mode("best-effort")
        .with("abi: 5")
        .with("scope: [abstract-unix-socket]")
        .save(&dir, "at5");
    let at6 = Profile::new()
        .with("abi: 6")
        .with("scope: [abstract-unix-socket]")
        .save(&dir, "at6");
    let probe = [PYTHON, "-c", ABSTRACT_PROBE, &name];
    let o = landlock_only(who, &at6, &[], &probe);
    assert_eq!(stdout(&o), format!("{EPERM}\n"), "ABI 6 enforces the scope");
    let o = landlock_only(who, &at5, &["-v"], &probe);
    assert_code(&o, 0);
    assert_eq!(stdout(&o), "0\n", "ABI 5 cannot");
    assert!(
        stderr(&o).contains("scopes dropped: ABI 5 < 6"),
        "{}",
        stderr(&o)
    );
});

both!(abi_2_leaves_truncate_open_and_abi_3_closes_it, |who| {
    // truncate came with ABI 3: a file granted only `read` can still be truncated under
    // ABI 2 (the right is not handled), not under ABI 3.
    if !need_abi("abi_2_leaves_truncate_open_and_abi_3_closes_it", 3) {
        return;
    }
    let dir = Scratch::new("ll-truncate");
    let data = open_dir(&dir, "data");
    let file = format!("{data}/f");
    let script = format!("echo content > {file}; chmod 0666 {file}");
    assert!(std::process::Command::new("sh")
        .args(["-c", &script])
        .status()
        .unwrap()
        .success());
    let base = Profile::new().read(&data);
    let at2 = base.clone_with("abi: 2").save(&dir, "at2");
    let at3 = base.clone_with("abi: 3").save(&dir, "at3");
    // truncate(2) by path: no open for writing, so only the truncate right decides.
    let probe = format!(
        "import os\ntry:\n  os.truncate('{file}', 0); print('truncated')\nexcept OSError:\n  print('denied')"
    );
    let o = landlock_only(who, &at3, &[], &[PYTHON, "-c", &probe]);
    assert_eq!(stdout(&o), "denied\n", "ABI 3");
    let o = landlock_only(who, &at2, &[], &[PYTHON, "-c", &probe]);
    assert_eq!(stdout(&o), "truncated\n", "ABI 2");
});

both!(
    abi_1_denies_every_cross_directory_rename_and_abi_2_grants_refer,
    |who| {
        // refer came with ABI 2: under ABI 1 a rename across directories is always denied
        // (EXDEV), even inside a tree the payload may write.
        if !need_abi(
            "abi_1_denies_every_cross_directory_rename_and_abi_2_grants_refer",
            2,
        ) {
            return;
        }
        let dir = Scratch::new("ll-refer");
        let data = open_dir(&dir, "data");
        let base = Profile::new().write(&data);
        let at1 = base.clone_with("abi: 1").save(&dir, "at1");
        let at2 = base.clone_with("abi: 2").save(&dir, "at2");
        // rename(2) itself: mv would fall back to copy and unlink on EXDEV.
        let probe = format!(
        "import os, shutil, errno\nd = '{data}'\nshutil.rmtree(d + '/a', True)\nshutil.rmtree(d + '/b', True)\nos.makedirs(d + '/a')\nos.makedirs(d + '/b')\nopen(d + '/a/f', 'w').write('x')\ntry:\n  os.rename(d + '/a/f', d + '/b/f'); print('moved')\nexcept OSError as e:\n  print(errno.errorcode[e.errno])"
    );
        let o = landlock_only(who, &at1, &[], &[PYTHON, "-c", &probe]);
        assert_eq!(stdout(&o), "EXDEV\n", "ABI 1");
        let o = landlock_only(who, &at2, &[], &[PYTHON, "-c", &probe]);
        assert_eq!(stdout(&o), "moved\n", "ABI 2");
    }
);

both!(
    abi_4_leaves_device_ioctls_open_and_abi_5_closes_them,
    |who| {
        // ioctl-dev came with ABI 5: on a device granted only `read`, an ioctl reaches the
        // driver under ABI 4 (ENOTTY: /dev/null has no terminal) and is refused under ABI 5.
        if !need_abi("abi_4_leaves_device_ioctls_open_and_abi_5_closes_them", 5) {
            return;
        }
        let dir = Scratch::new("ll-ioctl");
        let mut base = Profile::new();
        base.write.retain(|w| w != "/dev/null");
        let base = base.read("/dev/null");
        let at4 = base.clone_with("abi: 4").save(&dir, "at4");
        let at5 = base.clone_with("abi: 5").save(&dir, "at5");
        let probe = "import fcntl, os, termios, errno\nfd = os.open('/dev/null', os.O_RDONLY)\ntry:\n  fcntl.ioctl(fd, termios.TCGETS, bytes(64)); print('ok')\nexcept OSError as e:\n  print(errno.errorcode[e.errno])";
        let o = landlock_only(who, &at5, &[], &[PYTHON, "-c", probe]);
        assert_eq!(stdout(&o), "EACCES\n", "ABI 5");
        let o = landlock_only(who, &at4, &[], &[PYTHON, "-c", probe]);
        assert_eq!(stdout(&o), "ENOTTY\n", "ABI 4");
    }
);
