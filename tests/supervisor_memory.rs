//! Nothing the payload sends may grow the supervisor. The supervisor runs outside the
//! sandbox's cgroup, often as root: its peak resident size (VmHWM, read from the host's
//! /proc while the run is still open) stays under 32 MiB whatever the payload does with
//! its own 64 MiB, and what it keeps for the report and stderr is bounded too.

mod common;
use common::*;

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

/// The goal for the supervisor's peak resident size under any payload.
const PEAK_KIB: u64 = 32 * 1024;
const FLOOD_DEADLINE: Duration = Duration::from_secs(120);

/// What one hostile run left: the supervisor's peak, its stderr and its report.
struct Flood {
    /// What the payload printed before `flooded`.
    stdout: Vec<String>,
    peak_kib: u64,
    code: Option<i32>,
    stderr: String,
    report: serde_json::Value,
    report_bytes: u64,
}

/// `lasagna run ARGS -- /bin/bash -c SCRIPT` as `who`, with the payload limited to 64 MiB;
/// once the script prints `flooded` (it then waits on stdin), the supervisor's VmHWM is
/// read from /proc, then the run is let go.
fn flood(who: As, tag: &str, args: &[&str], script: &str) -> Flood {
    let dir = Scratch::new(tag);
    let report = dir.for_anyone("r.json");
    let err_path = dir.for_anyone("stderr.txt");
    let err_file = std::fs::File::create(&err_path).unwrap();
    let script = format!("{script}\necho flooded\nread -r go\n");
    let mut argv = vec![
        "run", "-p", "strict", "--memory", "64M", "--report", &report,
    ];
    argv.extend_from_slice(args);
    argv.extend_from_slice(&["--", "/bin/bash", "-c", &script]);
    let mut cmd = command(who, &argv);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(err_file));
    let mut run = Spawned::new(&mut cmd);
    let pid = run.id();
    let out = run.child().stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    let read_err = || std::fs::read_to_string(&err_path).unwrap_or_default();
    let mut stdout = Vec::new();
    loop {
        match rx.recv_timeout(FLOOD_DEADLINE) {
            Ok(line) if line == "flooded" => break,
            Ok(line) => stdout.push(line),
            Err(_) => panic!(
                "{tag}: the payload never finished its flood\n{}",
                read_err()
            ),
        }
    }
    // The supervisor is the process spawned (setpriv execs it as the test user).
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(status.starts_with("Name:\tlasagna"), "{status}");
    let peak_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status");
    let mut stdin = run.child().stdin.take().unwrap();
    let _ = stdin.write_all(b"go\n");
    drop(stdin);
    let code = run.wait_within(FLOOD_DEADLINE).code();
    let report_bytes = std::fs::metadata(&report).map(|m| m.len()).unwrap_or(0);
    let report = serde_json::from_str(&std::fs::read_to_string(&report).unwrap_or_default())
        .unwrap_or(serde_json::Value::Null);
    let f = Flood {
        stdout,
        peak_kib,
        code,
        stderr: read_err(),
        report,
        report_bytes,
    };
    eprintln!(
        "{tag} ({}): supervisor peak {} KiB, report {} bytes, stderr {} bytes",
        who.tag(),
        f.peak_kib,
        f.report_bytes,
        f.stderr.len()
    );
    f
}

/// The proxy's port, from the variable lasagna sets inside.
const PROXY_PORT: &str = "p=${HTTP_PROXY##*:}; p=${p%/}";

both!(proxy_floods_leave_the_supervisor_small, |who| {
    // 3,000 CONNECT requests naming a 15,000-byte host (each under the head limit, so each
    // is parsed: refused, as no DNS name is that long), 5,000 naming the longest host DNS
    // carries (decided and logged: over the log's byte bound), SOCKS5 requests with the
    // longest name that protocol carries, then every connection the proxy serves held
    // open at once with a request head it must buffer.
    let script = format!(
        "trap '' PIPE; {PROXY_PORT}
big=$(head -c 15000 /dev/zero | tr '\\0' a)
n=0; i=0
while [ $i -lt 3000 ]; do
  exec 3<>/dev/tcp/127.0.0.1/$p || exit 9
  printf 'CONNECT %s:80 HTTP/1.1\\r\\n\\r\\n' \"$big\" >&3
  read -r line <&3 && case $line in *' 400 '*) n=$((n+1));; esac
  exec 3>&-
  i=$((i+1))
done
host=$(head -c 253 /dev/zero | tr '\\0' c)
d=0; i=0
while [ $i -lt 5000 ]; do
  exec 3<>/dev/tcp/127.0.0.1/$p || exit 9
  printf 'CONNECT %s:80 HTTP/1.1\\r\\n\\r\\n' \"$host\" >&3
  read -r line <&3 && case $line in *' 403 '*) d=$((d+1));; esac
  exec 3>&-
  i=$((i+1))
done
name=$(head -c 255 /dev/zero | tr '\\0' b)
i=0
while [ $i -lt 300 ]; do
  exec 3<>/dev/tcp/127.0.0.1/$p || exit 9
  printf '\\005\\001\\000' >&3
  printf '\\005\\001\\000\\003\\377%s\\000\\120' \"$name\" >&3
  exec 3>&-
  i=$((i+1))
done
i=0
while [ $i -lt 300 ]; do
  exec {{fd}}<>/dev/tcp/127.0.0.1/$p 2>/dev/null || break
  printf 'GET http://%s/ HTTP/1.1\\r\\n' \"$big\" >&$fd
  i=$((i+1))
done
echo \"refused $n, denied $d, held $i\""
    );
    let f = flood(
        who,
        "mem-proxy",
        &["--allow", "localhost:9", "--without", "landlock"],
        &script,
    );
    assert_eq!(f.code, Some(0), "{}", f.stderr);
    let said = f.stdout.join("\n");
    assert!(
        said.starts_with("refused 3000, denied 5000, held "),
        "{said}\n{}",
        f.stderr
    );
    assert!(
        f.peak_kib < PEAK_KIB,
        "supervisor peak {} KiB under a proxy flood",
        f.peak_kib
    );
    // The report is bounded (about 2 MiB of names and reasons at most) and every name in it
    // is cut: nothing of the 15,000-byte hosts is kept whole.
    assert!(f.report_bytes < 4 * 1024 * 1024, "{} bytes", f.report_bytes);
    let connections = f.report["connections"].as_array().expect("connections");
    assert!(!connections.is_empty(), "{:#}", f.report);
    let mut kept = 0;
    for c in connections {
        let host = c["host"].as_str().unwrap_or_default();
        let reason = c["reason"].as_str().unwrap_or_default();
        assert!(host.len() <= 256 && reason.len() <= 256, "{c}");
        kept += host.len() + reason.len();
    }
    assert!(
        kept <= 1024 * 1024,
        "{kept} bytes of names and reasons kept"
    );
    let unlogged = f.report["connections_unlogged"].as_u64().unwrap_or(0);
    let logged = connections.len() as u64 + unlogged;
    assert!(logged >= 8300, "every connection counted: {logged}");
    assert!(unlogged > 0, "the log stopped at its byte bound");
});

both!(denial_floods_leave_the_supervisor_small, |who| {
    // 100,000 calls of distinct syscall numbers, each denied by the filter and answered by
    // the supervisor with --explain-denials.
    let script = "python3 -c '
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
for i in range(100000):
    libc.syscall(1000 + i)
print(\"called\", ctypes.get_errno())
'";
    let f = flood(who, "mem-denials", &["--explain-denials"], script);
    assert_eq!(f.code, Some(0), "{}", f.stderr);
    assert!(
        f.peak_kib < PEAK_KIB,
        "supervisor peak {} KiB under a denial flood",
        f.peak_kib
    );
    // Listed: a bounded number of kinds, the rest counted in one line.
    let denials = f.report["denials"].as_array().expect("denials");
    assert!(
        denials.len() <= 512,
        "{} kinds kept in the report",
        denials.len()
    );
    let counted: u64 = denials.iter().filter_map(|d| d["count"].as_u64()).sum();
    assert!(counted >= 256, "{counted}");
    let lines = f.stderr.lines().filter(|l| l.starts_with("  ")).count();
    assert!(
        lines <= 41,
        "{lines} lines of denials printed\n{}",
        f.stderr
    );
    assert!(
        f.stderr.contains("denied calls of other kinds"),
        "{}",
        f.stderr
    );
    assert!(f.report_bytes < 1024 * 1024, "{} bytes", f.report_bytes);
});
