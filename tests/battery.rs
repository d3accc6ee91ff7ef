//! `lasagna test` and `lasagna score`: the battery against the live sandbox, its matrix
//! checked against independent runs, and what it leaves behind.

mod common;
use common::*;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

/// One battery at a time: each plants listeners, sleepers and 5 GiB memory probes.
static ONE: Mutex<()> = Mutex::new(());

/// `lasagna test ARGS --json` as `who`: its exit code, the matrix, its stderr, and its pid
/// (the tag of everything that battery plants).
fn battery(who: As, args: &[&str]) -> (i32, serde_json::Value, String, u32) {
    let mut argv = vec!["test"];
    argv.extend_from_slice(args);
    argv.push("--json");
    let child = spawn(who, &argv);
    // setpriv execs lasagna: the pid is the battery's own.
    let pid = child.id();
    let o = child.output_within(Duration::from_secs(300));
    let code = o.status.code().unwrap_or(-1);
    let json = serde_json::from_str(&stdout(&o)).unwrap_or_else(|e| {
        panic!(
            "lasagna {argv:?} as {}: not JSON ({e}); stderr:\n{}",
            who.tag(),
            stderr(&o)
        )
    });
    (code, json, stderr(&o), pid)
}

fn column_index(m: &serde_json::Value, name: &str) -> Option<usize> {
    m["columns"]
        .as_array()?
        .iter()
        .position(|c| c["name"] == name)
}

/// The probes whose cell in `column` is "through".
fn through(m: &serde_json::Value, column: usize) -> BTreeSet<String> {
    m["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["cells"][column] == "through")
        .map(|r| r["probe"].as_str().unwrap().to_string())
        .collect()
}

fn errors(m: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    for r in m["rows"].as_array().unwrap() {
        for (i, c) in r["cells"].as_array().unwrap().iter().enumerate() {
            if c.get("error").is_some() {
                out.push(format!(
                    "{} in column {}: {}",
                    r["probe"], m["columns"][i]["name"], c["error"]
                ));
            }
        }
    }
    out
}

/// What the battery with pid `pid` left behind: its canary directory
/// (`lasagna-test-PID-*`, in /var/tmp or /tmp), its abstract sockets (the same tag) and
/// processes whose command line names that directory (its sleepers, its runs). Another
/// battery on the same machine has another pid, so its canaries are not counted here.
fn leftovers(pid: u32) -> Vec<String> {
    let tag = format!("lasagna-test-{pid}-");
    let mut out = Vec::new();
    for dir in ["/var/tmp", "/tmp"] {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with(&tag) {
                out.push(format!("{dir}/{n}"));
            }
        }
    }
    let sockets = std::fs::read_to_string("/proc/net/unix").unwrap_or_default();
    for l in sockets.lines().filter(|l| l.contains(&format!("@{tag}"))) {
        out.push(format!(
            "socket {}",
            l.split_whitespace().last().unwrap_or("")
        ));
    }
    for p in tagged_processes(&tag) {
        out.push(format!("process {p}"));
    }
    out
}

/// Host pids whose command line contains `tag`, this test's own left out.
fn tagged_processes(tag: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if pid == std::process::id() as i32 {
            continue;
        }
        let raw = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&raw).contains(tag) {
            out.push(pid);
        }
    }
    out
}

/// The layers a column leaves out, as `--without` arguments.
fn without_args(m: &serde_json::Value, column: usize) -> Vec<String> {
    m["columns"][column]["without"]
        .as_array()
        .expect("a column lists what it leaves out")
        .iter()
        .flat_map(|l| ["--without".to_string(), l.as_str().unwrap().to_string()])
        .collect()
}

/// The profile's layers whose leave-one-out column lets through a probe the full column
/// stops: the layers the battery can see.
fn seen_layers(m: &serde_json::Value) -> BTreeSet<String> {
    let full = through(m, 0);
    m["columns"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .filter_map(|(i, c)| {
            let layer = c["name"].as_str()?.strip_prefix('-')?.to_string();
            (!through(m, i).is_subset(&full)).then_some(layer)
        })
        .collect()
}

/// Files an attack made by the test itself aims at: a secret to read and a file to
/// overwrite, in a directory of this test's own under /var/tmp (outside every profile's
/// view, and not the host's /tmp, which the sandbox's own /tmp is without the filesystem
/// layer). The target is world-writable so that the payload's host uid may change it
/// when no layer stops it.
struct Targets {
    dir: std::path::PathBuf,
    secret: String,
}

impl Targets {
    fn new(who: As) -> Targets {
        let tag = marker("battery-targets", who);
        let dir = std::path::PathBuf::from(format!("/var/tmp/lasagna-{tag}"));
        std::fs::create_dir(&dir).unwrap();
        set_mode(&dir, 0o755);
        let secret = format!("secret-{tag}");
        std::fs::write(dir.join("secret"), &secret).unwrap();
        set_mode(&dir.join("secret"), 0o644);
        let t = Targets { dir, secret };
        t.reset();
        t
    }

    fn secret_path(&self) -> String {
        self.dir.join("secret").display().to_string()
    }

    fn target_path(&self) -> String {
        self.dir.join("target").display().to_string()
    }

    /// Plant the target anew before each attack.
    fn reset(&self) {
        std::fs::write(self.target_path(), "planted").unwrap();
        set_mode(Path::new(&self.target_path()), 0o666);
    }

    fn target_changed(&self) -> bool {
        std::fs::read_to_string(self.target_path()).unwrap() != "planted"
    }
}

impl Drop for Targets {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn set_mode(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
}

/// One of the battery's attacks, made again by the test itself with its own tools.
#[derive(Debug, Clone, Copy)]
enum Attack {
    /// `cat` the secret (read-host-file).
    ReadSecret,
    /// Truncate the target with tee (write-host-file).
    WriteTarget,
    /// `add_key(2)` through python's ctypes (keyctl): seccomp's to refuse.
    AddKey,
    /// Connect to a listener of the test's own on the host's 127.0.0.1 (tcp-host-loopback).
    TcpLoopback,
}

impl Attack {
    fn probe(self) -> &'static str {
        match self {
            Attack::ReadSecret => "read-host-file",
            Attack::WriteTarget => "write-host-file",
            Attack::AddKey => "keyctl",
            Attack::TcpLoopback => "tcp-host-loopback",
        }
    }
}

/// Make `attack` under `lasagna run -p PROFILE` with `without` switched off, as `who`;
/// whether it got through, judged from the host (the file, the listener) or the kernel's
/// answer, never from lasagna's probes.
fn attack(who: As, profile: &str, without: &[String], attack: Attack, t: &Targets) -> bool {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let add_key = "import ctypes, os\n\
        libc = ctypes.CDLL(None, use_errno=True)\n\
        libc.syscall.restype = ctypes.c_long\n\
        # add_key(2) is 248 on x86_64; KEY_SPEC_PROCESS_KEYRING is -2\n\
        r = libc.syscall(248, b'user', b'battery', b'x', ctypes.c_size_t(1), ctypes.c_int(-2))\n\
        print('added' if r >= 0 else 'refused ' + os.strerror(ctypes.get_errno()))\n";
    let connect = "import socket, sys\n\
        s = socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=2)\n\
        s.sendall(b'x')\nprint('connected')\n";
    let secret = t.secret_path();
    let target = t.target_path();
    let cmd: Vec<&str> = match attack {
        Attack::ReadSecret => vec!["/usr/bin/cat", &secret],
        // tee truncates the target (its stdin is empty) and exits 1 when it cannot.
        Attack::WriteTarget => vec!["/usr/bin/tee", &target],
        Attack::AddKey => vec!["/usr/bin/python3", "-c", add_key],
        Attack::TcpLoopback => vec!["/usr/bin/python3", "-c", connect, &port],
    };
    t.reset();
    let mut args = vec!["run", "-p", profile, "--degrade-dependents"];
    args.extend(without.iter().map(String::as_str));
    args.push("--");
    args.extend(cmd);
    let o = run(who, &args);
    let out = stdout(&o);
    // 0 or the command's own failure (1); lasagna's own refusals and launch errors are
    // other codes.
    assert!(
        matches!(o.status.code(), Some(0 | 1)),
        "{args:?} did not run its payload: {:?}\n{}",
        o.status,
        stderr(&o)
    );
    match attack {
        Attack::ReadSecret => out.contains(&t.secret),
        Attack::WriteTarget => t.target_changed(),
        Attack::AddKey => {
            assert!(
                out.starts_with("added") || out.starts_with("refused"),
                "{out}\n{}",
                stderr(&o)
            );
            out.starts_with("added")
        }
        Attack::TcpLoopback => listener.accept().is_ok(),
    }
}

/// The matrix's cells for `samples` (column name, attack) agree with the same attacks
/// made by the test under `lasagna run` with that column's layers off; every verdict the
/// samples name must occur, so that both a stop and a through are checked.
fn cells_agree(who: As, profile: &str, m: &serde_json::Value, samples: &[(&str, Attack)]) {
    let t = Targets::new(who);
    let mut verdicts = BTreeSet::new();
    for (column, a) in samples {
        let col = column_index(m, column).unwrap_or_else(|| panic!("no column {column}"));
        let claimed = through(m, col).contains(a.probe());
        let real = attack(who, profile, &without_args(m, col), *a, &t);
        assert_eq!(
            claimed,
            real,
            "{} in column {column}: the matrix says {}, the test's own attack {}",
            a.probe(),
            if claimed { "through" } else { "stopped" },
            if real { "got through" } else { "was stopped" }
        );
        verdicts.insert(real);
    }
    assert_eq!(verdicts.len(), 2, "the samples show a stop and a through");
}

/// strict, with the payload uid 0 inside its user namespace: what the capabilities layer
/// drops is then there to drop, so its column can show something.
const ROOT_INSIDE: &str =
    "name: strict-root-inside\nextends: strict\nlayers:\n  namespaces:\n    uid: 0\n    gid: 0\n";

both!(
    strict_holds_and_each_removal_lets_through_what_the_matrix_says,
    |who| {
        let _one = ONE.lock().unwrap_or_else(|e| e.into_inner());
        let dir = Scratch::new("battery");
        let p = dir.write("root-inside.yaml", ROOT_INSIDE);
        let (code, m, err, pid) = battery(who, &[&p]);
        assert!(
            errors(&m).is_empty(),
            "probes that did not run: {:#?}\n{err}",
            errors(&m)
        );
        assert_eq!(
            code,
            0,
            "strict lets something through: {:?}",
            through(&m, 0)
        );
        assert!(m["rows"].as_array().unwrap().len() >= 40);
        assert!(
            leftovers(pid).is_empty(),
            "left behind: {:?}",
            leftovers(pid)
        );
        // The matrix's claims, checked against the test's own attacks: seccomp refuses
        // add_key; the namespaces alone do not keep the host's loopback out (Landlock's
        // empty connect list does), nothing does with every layer off; a host file outside
        // the view is Landlock's to deny with the filesystem layer off, and readable and
        // writable with both off.
        cells_agree(
            who,
            &p,
            &m,
            &[
                ("full", Attack::AddKey),
                ("-seccomp", Attack::AddKey),
                ("-namespaces", Attack::TcpLoopback),
                ("none", Attack::TcpLoopback),
                ("-filesystem", Attack::ReadSecret),
                ("-landlock", Attack::WriteTarget),
                ("none", Attack::ReadSecret),
            ],
        );
        // With the filesystem layer already off, Landlock alone denies the host file.
        let (code, bare, err, pid) = battery(who, &[&p, "--without", "filesystem"]);
        assert!(errors(&bare).is_empty(), "{:#?}\n{err}", errors(&bare));
        assert_eq!(code, 1, "without the filesystem layer a probe gets through");
        assert!(
            leftovers(pid).is_empty(),
            "left behind: {:?}",
            leftovers(pid)
        );
        cells_agree(
            who,
            &p,
            &bare,
            &[
                ("full", Attack::ReadSecret),
                ("full", Attack::WriteTarget),
                ("-landlock", Attack::ReadSecret),
                ("-landlock", Attack::WriteTarget),
            ],
        );
        // Every layer the profile applies has a column, and removing it lets through
        // something the full column stops, in one of the two batteries (Landlock's rules
        // duplicate the filesystem view, so it shows only with that view off).
        let applied: BTreeSet<String> = m["columns"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| Some(c["name"].as_str()?.strip_prefix('-')?.to_string()))
            .collect();
        for layer in [
            "filesystem",
            "namespaces",
            "rlimits",
            "capabilities",
            "process",
            "landlock",
            "seccomp",
        ] {
            assert!(
                applied.contains(layer),
                "strict applies {layer}: {applied:?}"
            );
        }
        let seen: BTreeSet<String> = seen_layers(&m)
            .union(&seen_layers(&bare))
            .cloned()
            .collect();
        let blind: Vec<&String> = applied.difference(&seen).collect();
        assert!(
            blind.is_empty(),
            "removing {blind:?} lets nothing through: the probes cannot see it"
        );
        // The single points of failure are named, and the ones the kernel gives a second
        // mechanism for are not among them.
        let only: BTreeSet<(String, String)> = m["rows"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|r| {
                Some((
                    r["probe"].as_str()?.to_string(),
                    r["only"].as_str()?.to_string(),
                ))
            })
            .collect();
        assert!(
            only.contains(&("keyctl".into(), "seccomp".into())),
            "{only:?}"
        );
        assert!(
            !only.iter().any(|(p, _)| p == "nested-userns"),
            "nested user namespaces have a second stop: {only:?}"
        );
        assert!(
            !only.iter().any(|(p, _)| p == "fork-bomb"),
            "a fork bomb meets cgroups and rlimits: {only:?}"
        );
    }
);

both!(a_namespaces_only_profile_fails_the_battery, |who| {
    let _one = ONE.lock().unwrap_or_else(|e| e.into_inner());
    let dir = Scratch::new("battery");
    let p = dir.write(
        "ns-only.yaml",
        "name: ns-only\nlayers:\n  namespaces:\n    mode: required\n",
    );
    let (code, m, err, pid) = battery(who, &[&p, "--quick"]);
    assert_eq!(code, 1, "{err}");
    let got = through(&m, 0);
    for probe in ["keyctl", "environment", "fork-bomb", "file-size"] {
        assert!(
            got.contains(probe),
            "{probe} should get through namespaces alone: {got:?}"
        );
    }
    // (see-host-process is not among them: without the filesystem layer /proc is the host's.)
    for probe in ["hostname", "tcp-host-loopback", "signal-host-process"] {
        assert!(
            !got.contains(probe),
            "{probe} is the namespaces' to stop: {got:?}"
        );
    }
    assert!(
        leftovers(pid).is_empty(),
        "left behind: {:?}",
        leftovers(pid)
    );
});

both!(an_interrupted_battery_removes_what_it_planted, |who| {
    let _one = ONE.lock().unwrap_or_else(|e| e.into_inner());
    let mut child = spawn(who, &["test", "strict"]);
    let pid = child.id();
    let tag = format!("lasagna-test-{pid}-");
    // Runs are under way once a `lasagna run` of this battery's profile (its canary
    // directory in the arguments) exists; then Ctrl-C.
    wait_until(
        "the battery starts its runs",
        Duration::from_secs(30),
        || {
            tagged_processes(&tag).into_iter().any(|p| {
                let raw = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
                String::from_utf8_lossy(&raw)
                    .replace('\0', " ")
                    .contains(" run -p ")
            })
        },
    );
    assert!(!leftovers(pid).is_empty(), "the canaries are planted");
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGINT,
    );
    let status = child.wait_within(Duration::from_secs(30));
    assert_eq!(status.code(), Some(130));
    wait_until(
        "everything planted is gone",
        Duration::from_secs(10),
        || leftovers(pid).is_empty(),
    );
});

both!(
    score_ranks_a_namespaces_only_profile_far_above_strict,
    |who| {
        let dir = Scratch::new("score");
        let p = dir.write(
            "ns-only.yaml",
            "name: ns-only\nlayers:\n  namespaces:\n    mode: required\n",
        );
        let score = |profile: &str| -> f64 {
            let o = run(who, &["score", profile, "--json"]);
            assert_code(&o, 0);
            let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
            v["exposure"].as_f64().unwrap()
        };
        let (strict, ns_only) = (score("strict"), score(&p));
        assert!(strict <= 1.0, "strict exposure {strict}");
        assert!(ns_only >= 5.0, "namespaces-only exposure {ns_only}");
        // --threshold for CI: above it, exit 1.
        assert_code(&run(who, &["score", &p, "--threshold", "3"]), 1);
        assert_code(&run(who, &["score", "strict", "--threshold", "3"]), 0);
        let text = stdout(&run(who, &["score", &p]));
        assert!(
            text.contains("seccomp") && text.contains("lasagna test --probe"),
            "{text}"
        );
    }
);

/// The weights README.md gives the checks of `lasagna score` ("kept-capabilities" is the
/// one it leaves out; its weight is src/cli/score.rs's).
const WEIGHTS: &[(&str, u64)] = &[
    ("network", 2500),
    ("host-root", 2000),
    ("filesystem", 2000),
    ("capabilities", 1500),
    ("cap-sys-admin", 1500),
    ("kept-capabilities", 500),
    ("seccomp", 1500),
    ("pid", 1000),
    ("landlock", 1000),
    ("no-new-privs", 1000),
    ("environment", 500),
    ("new-session", 500),
    ("memory", 500),
    ("pids", 500),
    ("ipc", 300),
    ("landlock-net", 300),
    ("landlock-scopes", 300),
    ("read-only-root", 300),
    ("nofile", 200),
    ("fsize", 200),
    ("cpu", 200),
    ("uts", 200),
];

fn documented_weight(check: &str) -> u64 {
    WEIGHTS
        .iter()
        .find(|(id, _)| *id == check)
        .unwrap_or_else(|| panic!("README gives no weight for {check}"))
        .1
}

/// `lasagna score PROFILE --json` as `who`.
fn score_json(who: As, profile: &str) -> serde_json::Value {
    let o = run(who, &["score", profile, "--json"]);
    assert_code(&o, 0);
    serde_json::from_str(&stdout(&o))
        .unwrap_or_else(|e| panic!("score {profile}: not JSON ({e}):\n{}", stdout(&o)))
}

fn findings(s: &serde_json::Value) -> &Vec<serde_json::Value> {
    s["findings"].as_array().expect("a score has findings")
}

/// What each open check says is open, by its id.
fn open_checks(s: &serde_json::Value) -> std::collections::BTreeMap<String, String> {
    findings(s)
        .iter()
        .filter_map(|f| Some((f["id"].as_str()?.into(), f["open"].as_str()?.into())))
        .collect()
}

fn open_weight(s: &serde_json::Value) -> u64 {
    findings(s)
        .iter()
        .filter(|f| !f["open"].is_null())
        .map(|f| f["weight"].as_u64().unwrap())
        .sum()
}

/// The exposure is the open share of the total weight on a scale of 10, to one decimal.
#[track_caller]
fn assert_exposure_is_the_open_share(s: &serde_json::Value) {
    let total: u64 = WEIGHTS.iter().map(|(_, w)| w).sum();
    let share = 10.0 * open_weight(s) as f64 / total as f64;
    let exposure = s["exposure"].as_f64().expect("a number");
    assert!(
        (exposure - share).abs() <= 0.05 + 1e-9,
        "exposure {exposure} for an open share of {share:.3}: {s:#}"
    );
}

both!(score_gives_the_documented_figures_and_fields, |who| {
    let dir = Scratch::new("score");
    let ns_only = dir.write(
        "ns-only.yaml",
        "name: ns-only\nlayers:\n  namespaces:\n    mode: required\n",
    );
    // README's figures.
    for (profile, name, exposure) in [
        ("strict", "strict", 0.0),
        ("base", "base", 1.4),
        (ns_only.as_str(), "ns-only", 5.2),
    ] {
        let s = score_json(who, profile);
        assert_eq!(s["version"], 1, "{s:#}");
        assert_eq!(s["profile"], name, "{s:#}");
        assert_eq!(s["exposure"].as_f64(), Some(exposure), "{profile}: {s:#}");
        assert_exposure_is_the_open_share(&s);
    }
    // 22 checks, each once, with the documented weights, and nothing but their fields.
    let s = score_json(who, "strict");
    let ids: Vec<&str> = findings(&s)
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 22, "{ids:?}");
    assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), 22, "{ids:?}");
    // The probes `lasagna test` knows, from its refusal of an unknown one.
    let o = run(who, &["test", "strict", "--probe", "no-such-probe"]);
    let probes: BTreeSet<String> = stderr(&o)
        .split_once("probes: ")
        .unwrap_or_else(|| panic!("the refusal lists the probes: {}", stderr(&o)))
        .1
        .trim()
        .split(", ")
        .map(String::from)
        .collect();
    for f in findings(&s) {
        let keys: BTreeSet<&str> = f.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            BTreeSet::from(["id", "weight", "open", "why", "fix", "probe"]),
            "{f:#}"
        );
        let id = f["id"].as_str().unwrap();
        assert_eq!(f["weight"].as_u64(), Some(documented_weight(id)), "{f:#}");
        assert!(f["open"].is_null(), "strict leaves {id} open: {f:#}");
        for text in ["why", "fix"] {
            assert!(!f[text].as_str().unwrap().is_empty(), "{f:#}");
        }
        assert!(
            probes.contains(f["probe"].as_str().unwrap()),
            "{id} names a probe `lasagna test` does not have: {f:#}\n{probes:?}"
        );
    }
    // The text: every check closed for strict, 12 open for the namespaces alone.
    let text = stdout(&run(who, &["score", "strict"]));
    assert!(
        text.contains("22 of 22 checks closed; exposure 0.0 / 10"),
        "{text}"
    );
    let text = stdout(&run(who, &["score", &ns_only]));
    assert!(
        text.contains("10 of 22 checks closed; exposure 5.2 / 10"),
        "{text}"
    );
    // --threshold N exits 1 above N, not at it.
    assert_code(&run(who, &["score", "base", "--threshold", "1.4"]), 0);
    assert_code(&run(who, &["score", "base", "--threshold", "1.3"]), 1);
});

/// One check of `lasagna score`, shown by two profiles that differ in one setting: with it
/// the check is closed, without it open, saying `says`.
struct Move {
    check: &'static str,
    closed: &'static str,
    open: &'static str,
    says: &'static str,
}

/// strict with the one setting of a case changed.
macro_rules! strict_with {
    ($layers:expr) => {
        concat!("extends: strict\nlayers:\n", $layers)
    };
}

/// base with a Landlock layer that closes all three of its checks.
const LANDLOCK_FULL: &str = "extends: base\nlayers:\n  landlock:\n    read: [/usr]\n    \
    net:\n      bind: []\n      connect: []\n    scope: [abstract-unix-socket, signal]\n";

const MOVES: &[Move] = &[
    Move {
        check: "network",
        closed: "extends: strict\n",
        open: strict_with!("  namespaces:\n    net: false\n"),
        says: "no network namespace",
    },
    Move {
        check: "network",
        closed: strict_with!("  network:\n    net: none\n"),
        open: strict_with!("  network:\n    net: host\n"),
        says: "network: net: host",
    },
    Move {
        check: "host-root",
        closed: "extends: strict\n",
        open: strict_with!("  namespaces:\n    user: false\n"),
        says: "no user namespace, or host root allowed",
    },
    Move {
        check: "host-root",
        closed: "extends: strict\n",
        open: strict_with!("  namespaces:\n    run-as-host-root: true\n"),
        says: "no user namespace, or host root allowed",
    },
    Move {
        check: "filesystem",
        closed: "extends: strict\n",
        open: strict_with!("  filesystem:\n    mode: off\n"),
        says: "filesystem layer off",
    },
    Move {
        check: "capabilities",
        closed: "extends: strict\n",
        open: strict_with!("  capabilities:\n    mode: off\n"),
        says: "capabilities layer off",
    },
    Move {
        check: "kept-capabilities",
        closed: "extends: strict\n",
        open: strict_with!("  capabilities:\n    keep: [net_bind_service]\n"),
        says: "1 kept",
    },
    // One capability kept in both: only which one differs.
    Move {
        check: "cap-sys-admin",
        closed: strict_with!("  capabilities:\n    keep: [net_bind_service]\n"),
        open: strict_with!("  capabilities:\n    keep: [sys_admin]\n"),
        says: "CAP_SYS_ADMIN kept",
    },
    Move {
        check: "seccomp",
        closed: "extends: strict\n",
        open: strict_with!("  seccomp:\n    mode: off\n"),
        says: "seccomp layer off",
    },
    // A seccomp filter needs no_new_privs (or CAP_SYS_ADMIN), so the check is open only
    // with seccomp off too.
    Move {
        check: "no-new-privs",
        closed: strict_with!("  seccomp:\n    mode: off\n"),
        open: strict_with!("  seccomp:\n    mode: off\n  process:\n    no-new-privs: false\n"),
        says: "no_new_privs unset",
    },
    Move {
        check: "pid",
        closed: "extends: strict\n",
        open: strict_with!("  namespaces:\n    pid: false\n"),
        says: "no pid namespace",
    },
    Move {
        check: "landlock",
        closed: "extends: strict\n",
        open: strict_with!("  landlock:\n    mode: off\n"),
        says: "landlock layer off",
    },
    // The session is the caller's in both: only the environment's allow-list differs.
    Move {
        check: "environment",
        closed: strict_with!("  process:\n    new-session: false\n"),
        open: strict_with!("  process:\n    mode: off\n"),
        says: "process layer off",
    },
    Move {
        check: "new-session",
        closed: "extends: strict\n",
        open: strict_with!("  process:\n    new-session: false\n"),
        says: "same session",
    },
    // strict's nproc rlimit keeps the process check closed without cgroups.
    Move {
        check: "memory",
        closed: "extends: strict\n",
        open: strict_with!("  cgroups:\n    mode: off\n"),
        says: "no memory limit",
    },
    Move {
        check: "memory",
        closed: strict_with!("  cgroups:\n    mode: off\n  rlimits:\n    as: 4G\n"),
        open: strict_with!("  cgroups:\n    mode: off\n"),
        says: "no memory limit",
    },
    Move {
        check: "pids",
        closed: strict_with!("  cgroups:\n    mode: off\n"),
        open: strict_with!("  cgroups:\n    mode: off\n  rlimits:\n    nproc: unlimited\n"),
        says: "no process limit",
    },
    Move {
        check: "pids",
        closed: "extends: base\nlayers:\n  cgroups:\n    pids:\n      max: 1024\n",
        open: "extends: base\n",
        says: "no process limit",
    },
    Move {
        check: "ipc",
        closed: "extends: strict\n",
        open: strict_with!("  namespaces:\n    ipc: false\n"),
        says: "no ipc namespace",
    },
    Move {
        check: "landlock-net",
        closed: LANDLOCK_FULL,
        open: "extends: base\nlayers:\n  landlock:\n    read: [/usr]\n    \
            scope: [abstract-unix-socket, signal]\n",
        says: "no TCP rules",
    },
    Move {
        check: "landlock-scopes",
        closed: LANDLOCK_FULL,
        open: "extends: base\nlayers:\n  landlock:\n    read: [/usr]\n    \
            net:\n      bind: []\n      connect: []\n",
        says: "no scopes",
    },
    Move {
        check: "landlock-scopes",
        closed: LANDLOCK_FULL,
        open: "extends: base\nlayers:\n  landlock:\n    read: [/usr]\n    \
            net:\n      bind: []\n      connect: []\n    scope: []\n",
        says: "no scopes",
    },
    Move {
        check: "read-only-root",
        closed: "extends: strict\n",
        open: strict_with!("  filesystem:\n    read-only-root: false\n"),
        says: "writable root",
    },
    Move {
        check: "nofile",
        closed: "extends: strict\n",
        open: strict_with!("  rlimits:\n    nofile: unlimited\n"),
        says: "no nofile limit",
    },
    Move {
        check: "fsize",
        closed: "extends: strict\n",
        open: strict_with!("  rlimits:\n    fsize: unlimited\n"),
        says: "no fsize limit",
    },
    Move {
        check: "cpu",
        closed: "extends: strict\n",
        open: strict_with!("  rlimits:\n    cpu: unlimited\n"),
        says: "no CPU limit",
    },
    Move {
        check: "cpu",
        closed: strict_with!("  rlimits:\n    cpu: unlimited\n  process:\n    timeout: 1h\n"),
        open: strict_with!("  rlimits:\n    cpu: unlimited\n"),
        says: "no CPU limit",
    },
    // strict sets a hostname, which needs the uts namespace: the namespaces alone do not.
    Move {
        check: "uts",
        closed: "layers:\n  namespaces:\n    mode: required\n",
        open: "layers:\n  namespaces:\n    mode: required\n    uts: false\n",
        says: "no uts namespace",
    },
];

both!(score_moves_by_each_checks_weight_and_says_why, |who| {
    let dir = Scratch::new("score");
    for (n, m) in MOVES.iter().enumerate() {
        let file = |side: &str, body: &str| {
            dir.write(
                &format!("{n}-{side}.yaml"),
                &format!("name: {}-{n}-{side}\n{body}", m.check),
            )
        };
        let (closed, open) = (file("closed", m.closed), file("open", m.open));
        let (before, after) = (score_json(who, &closed), score_json(who, &open));
        let case = format!("{} (case {n})", m.check);
        let mut moved = open_checks(&after);
        assert_eq!(
            moved.remove(m.check).as_deref(),
            Some(m.says),
            "{case}: the open profile's check says what is open: {after:#}"
        );
        // Nothing else moves: the two profiles differ in this one setting.
        assert_eq!(moved, open_checks(&before), "{case}: other checks moved");
        let weight = documented_weight(m.check);
        assert_eq!(
            open_weight(&after) - open_weight(&before),
            weight,
            "{case}: the score moves by the check's weight"
        );
        assert_exposure_is_the_open_share(&before);
        assert_exposure_is_the_open_share(&after);
        assert!(
            after["exposure"].as_f64() > before["exposure"].as_f64(),
            "{case}: {} -> {}",
            before["exposure"],
            after["exposure"]
        );
        // The text names the check with its weight, what is open and why, the fix and
        // the probe that shows it; the closed profile's text does not name it.
        let f = findings(&after)
            .iter()
            .find(|f| f["id"] == m.check)
            .unwrap();
        let head = format!("  {weight:>5}  {:<18} ", m.check);
        let line = format!(
            "{head}{}: {}\n         fix: {}   (shown by: lasagna test --probe {})\n",
            m.says,
            f["why"].as_str().unwrap(),
            f["fix"].as_str().unwrap(),
            f["probe"].as_str().unwrap()
        );
        let text = stdout(&run(who, &["score", &open]));
        assert!(text.contains(&line), "{case}: no\n{line}in\n{text}");
        let text = stdout(&run(who, &["score", &closed]));
        assert!(
            !text.lines().any(|l| l.starts_with(&head)),
            "{case}: the closed check is listed:\n{text}"
        );
    }
    // With the filter on, no_new_privs unset is no opening: the kernel installs a seccomp
    // filter only with no_new_privs set (or CAP_SYS_ADMIN, which the payload lacks).
    let p = dir.write(
        "nnp-off.yaml",
        concat!(
            "name: nnp-off\n",
            strict_with!("  process:\n    no-new-privs: false\n")
        ),
    );
    assert_eq!(open_checks(&score_json(who, &p)), Default::default());
    // Every check of the score has a case.
    let checks: BTreeSet<String> = findings(&score_json(who, "strict"))
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_string())
        .collect();
    let cased: BTreeSet<String> = MOVES.iter().map(|m| m.check.to_string()).collect();
    assert_eq!(
        checks, cased,
        "checks without a case, or cases without a check"
    );
});

both!(another_local_user_cannot_forge_a_canary, |who| {
    // The write and create probes judge a run by whether their canary on the host changed.
    // Another local user who could change it would make a probe read "through" when the
    // sandbox held (or hide nothing, but cast doubt on every result): the canaries are the
    // payload's own host uid's, mode 0600 and 0700. An attacker of another uid polls for
    // them during the battery and tries to change each one it sees.
    let _one = ONE.lock().unwrap_or_else(|e| e.into_inner());
    let attacker = match who {
        As::Root => test_user().expect("the test user").0,
        As::User => 65534,
    };
    for attempt in 0..5 {
        let battery = spawn(
            who,
            &[
                "test",
                "strict",
                "--probe",
                "write-host-file",
                "--probe",
                "create-host-file",
                "--json",
                "-j",
                "1",
            ],
        );
        let script = format!(
            "while :; do for f in /var/tmp/lasagna-test-{}-*/write-* /var/tmp/lasagna-test-{}-*/create-*; do \
               [ -e \"$f\" ] || continue; echo \"seen $f\"; \
               if [ -d \"$f\" ]; then (: > \"$f/forged\") 2>/dev/null && echo \"forged $f\"; \
               else (echo forged > \"$f\") 2>/dev/null && echo \"forged $f\"; fi; \
             done; done",
            battery.id(),
            battery.id()
        );
        let mut cmd = std::process::Command::new("setpriv");
        cmd.arg(format!("--reuid={attacker}"))
            .arg(format!("--regid={attacker}"))
            .arg("--clear-groups")
            .args(["--", "/bin/sh", "-c", &script])
            .current_dir("/")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null());
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut spy = Spawned::new(&mut cmd);
        let spy_out = spy.child().stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut seen = String::new();
            // Bounded: the spy is killed once the battery ends.
            let _ = std::io::Read::read_to_string(
                &mut std::io::Read::take(spy_out, 1 << 24),
                &mut seen,
            );
            seen
        });
        let o = battery.output_within(Duration::from_secs(300));
        drop(spy);
        let spied = reader.join().unwrap();
        assert!(
            !spied.contains("forged"),
            "uid {attacker} changed a canary:\n{}",
            spied
                .lines()
                .filter(|l| l.starts_with("forged"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        assert_code(&o, 0);
        let m: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        assert!(errors(&m).is_empty(), "{:?}", errors(&m));
        let full = column_index(&m, "full").expect("the full profile's column");
        assert!(through(&m, full).is_empty(), "{m:#}");
        // Control: with every layer off the payload changes both; they are its own.
        let none = column_index(&m, "none").expect("the column without layers");
        assert_eq!(
            through(&m, none),
            BTreeSet::from([
                "create-host-file".to_string(),
                "write-host-file".to_string()
            ]),
            "{m:#}"
        );
        if spied.contains("seen ") {
            return;
        }
        eprintln!("attempt {attempt}: the spy saw no canary; again");
    }
    panic!("the spy never saw a canary in five batteries");
});
