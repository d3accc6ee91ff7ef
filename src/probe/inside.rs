//! The probe side: one attempt per run, made by the payload itself. Output lines:
//! `READY` first; then what was reached (`SAW ...`), and for [`super::Evidence::Kernel`]
//! probes one `RESULT open ...` or `RESULT blocked ...`. Arguments are `key=value` pairs the
//! harness passes (paths, a pid, a port); never a secret.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::sys;

type Args = HashMap<String, String>;

/// Every probe with an inside half (a unit test holds the table to this list).
#[cfg(test)]
const NAMES: &[&str] = &[
    "read-host-file",
    "write-host-file",
    "create-host-file",
    "exec-host-file",
    "proc-root",
    "leaked-file-fd",
    "leaked-dir-fd",
    "see-host-process",
    "signal-host-process",
    "ptrace-host-process",
    "tcp-host-loopback",
    "abstract-unix-socket",
    "pathname-unix-socket",
    "raw-socket",
    "packet-socket",
    "low-port",
    "capabilities",
    "setuid-gain",
    "nested-userns",
    "mount",
    "pivot-root",
    "chroot-escape",
    "bpf",
    "io-uring",
    "keyctl",
    "perf-event",
    "userfaultfd",
    "open-by-handle",
    "x32-syscall",
    "tiocsti",
    "fork-bomb",
    "memory",
    "cpu-unbounded",
    "fds",
    "file-size",
    "environment",
    "proc-sys-write",
    "hostname",
    "sibling-see",
    "sibling-signal",
    "sibling-ptrace",
    "sibling-files",
];

#[cfg(test)]
pub(super) fn knows(name: &str) -> bool {
    NAMES.contains(&name)
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn result<T>(r: Result<T, Errno>, what: &str) {
    match r {
        Ok(_) => say(&format!("RESULT open {what}")),
        Err(e) => say(&format!("RESULT blocked {what}: {e}")),
    }
}

fn arg<'a>(args: &'a Args, key: &str) -> &'a str {
    args.get(key).map(String::as_str).unwrap_or("")
}

fn pid_arg(args: &Args) -> Pid {
    Pid::from_raw(arg(args, "pid").parse().unwrap_or(0))
}

fn print_file(path: &str) {
    match std::fs::read_to_string(path) {
        Ok(s) => say(&format!("SAW {path}: {}", s.trim())),
        Err(e) => say(&format!("NOT {path}: {e}")),
    }
}

/// Command lines of every visible `probe sleep` process.
fn scan_sleepers() {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        say("NOT /proc: unreadable");
        return;
    };
    for e in dir.flatten() {
        let name = e.file_name();
        if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(raw) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let line = String::from_utf8_lossy(&raw).replace('\0', " ");
        if line.contains("probe sleep ") {
            say(&format!("SAW process {}: {line}", name.to_string_lossy()));
        }
    }
}

/// Run one probe; the exit code is 0 whatever it found.
pub fn main(name: &str, raw: &[String]) -> i32 {
    let args: Args = raw
        .iter()
        .filter_map(|a| a.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    if name == "sleep" {
        return sleep(raw);
    }
    say("READY");
    let canary = arg(&args, "canary").to_string();
    match name {
        "read-host-file" => print_file(&format!("{canary}/secret")),
        "write-host-file" => {
            let path = format!("{canary}/write-{}", arg(&args, "run"));
            let r = std::fs::OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(&path)
                .and_then(|mut f| f.write_all(b"written by the sandbox"));
            say(&format!("TRIED {path}: {r:?}"));
        }
        "create-host-file" => {
            let path = format!("{canary}/create-{}/made", arg(&args, "run"));
            say(&format!("TRIED {path}: {:?}", std::fs::write(&path, b"x")));
        }
        "exec-host-file" => {
            let script = arg(&args, "script");
            let r = std::process::Command::new(script).output();
            match r {
                Ok(o) => say(&format!(
                    "SAW {}",
                    String::from_utf8_lossy(&o.stdout).trim()
                )),
                Err(e) => say(&format!("NOT exec {script}: {e}")),
            }
        }
        "proc-root" => print_file(&format!("/proc/{}/root{canary}/secret", pid_arg(&args))),
        "leaked-file-fd" => leaked_fds(false),
        "leaked-dir-fd" => leaked_fds(true),
        "see-host-process" | "sibling-see" => scan_sleepers(),
        "signal-host-process" | "sibling-signal" => {
            result(kill(pid_arg(&args), Signal::SIGKILL), "kill")
        }
        "ptrace-host-process" | "sibling-ptrace" => {
            result(sys::probe::ptrace_seize(pid_arg(&args).as_raw()), "ptrace")
        }
        "tcp-host-loopback" => {
            let addr = format!("127.0.0.1:{}", arg(&args, "port"));
            let r = addr
                .parse()
                .map_err(|_| std::io::Error::other("bad address"))
                .and_then(|a| std::net::TcpStream::connect_timeout(&a, Duration::from_secs(2)))
                .and_then(|mut s| s.write_all(b"x"));
            say(&format!("TRIED {addr}: {r:?}"));
        }
        "abstract-unix-socket" => {
            use std::os::linux::net::SocketAddrExt;
            let r = std::os::unix::net::SocketAddr::from_abstract_name(arg(&args, "abstract"))
                .and_then(|a| std::os::unix::net::UnixStream::connect_addr(&a))
                .and_then(|mut s| s.write_all(b"x"));
            say(&format!("TRIED abstract socket: {r:?}"));
        }
        "pathname-unix-socket" => {
            let path = arg(&args, "socket");
            let r =
                std::os::unix::net::UnixStream::connect(path).and_then(|mut s| s.write_all(b"x"));
            say(&format!("TRIED {path}: {r:?}"));
        }
        "raw-socket" => result(
            nix::sys::socket::socket(
                nix::sys::socket::AddressFamily::Inet,
                nix::sys::socket::SockType::Raw,
                nix::sys::socket::SockFlag::SOCK_CLOEXEC,
                nix::sys::socket::SockProtocol::Icmp,
            ),
            "socket(AF_INET, SOCK_RAW)",
        ),
        "packet-socket" => result(
            nix::sys::socket::socket(
                nix::sys::socket::AddressFamily::Packet,
                nix::sys::socket::SockType::Raw,
                nix::sys::socket::SockFlag::SOCK_CLOEXEC,
                None,
            ),
            "socket(AF_PACKET)",
        ),
        "low-port" => low_port(),
        "capabilities" => match caps::read(None, caps::CapSet::Effective) {
            Ok(set) if !set.is_empty() => say(&format!("RESULT open effective: {set:?}")),
            Ok(_) => say("RESULT blocked no effective capability"),
            Err(e) => say(&format!("RESULT blocked capget: {e}")),
        },
        "setuid-gain" => match nix::sys::prctl::get_no_new_privs() {
            Ok(false) => say("RESULT open no_new_privs is 0"),
            Ok(true) => say("RESULT blocked no_new_privs is 1"),
            Err(e) => say(&format!("RESULT blocked prctl: {e}")),
        },
        "nested-userns" => result(
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER),
            "unshare(CLONE_NEWUSER)",
        ),
        "mount" => result(
            private_mount_ns().and_then(|()| tmpfs_on_tmp()),
            "mount tmpfs",
        ),
        "pivot-root" => result(
            private_mount_ns()
                .and_then(|()| tmpfs_on_tmp())
                .and_then(|()| nix::unistd::pivot_root("/tmp", "/tmp"))
                .or_else(|e| match e {
                    Errno::EPERM | Errno::EACCES | Errno::ENOSYS => Err(e),
                    // The call was allowed; only its arguments were refused.
                    _ => Ok(()),
                }),
            "pivot_root",
        ),
        "chroot-escape" => chroot_escape(&canary),
        "bpf" => result(sys::probe::bpf_map_create(), "bpf(BPF_MAP_CREATE)"),
        "io-uring" => result(sys::probe::io_uring_setup(), "io_uring_setup"),
        "keyctl" => result(sys::probe::add_key(c"lasagna-probe", b"x"), "add_key"),
        "perf-event" => result(sys::probe::perf_event_open(), "perf_event_open"),
        "userfaultfd" => result(sys::probe::userfaultfd(), "userfaultfd"),
        "open-by-handle" => result(sys::probe::open_by_handle(c"/"), "open_by_handle_at"),
        "x32-syscall" => x32(),
        "tiocsti" => {
            let r = sys::probe::tiocsti(0, b'#').and_then(|()| sys::probe::tiocsti(0, b'\n'));
            say(&format!("TRIED TIOCSTI: {r:?}"));
        }
        "fork-bomb" => fork_bomb(3000),
        "memory" => memory(5 << 30),
        "cpu-unbounded" => {
            match nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_CPU) {
                Ok((_, hard)) if hard == nix::sys::resource::RLIM_INFINITY => {
                    say("RESULT open RLIMIT_CPU is unlimited")
                }
                Ok((soft, _)) => say(&format!("RESULT blocked RLIMIT_CPU {soft} s")),
                Err(e) => say(&format!("RESULT blocked getrlimit: {e}")),
            }
        }
        "fds" => fds(65536),
        "file-size" => file_size(),
        "environment" => {
            for (k, v) in std::env::vars_os() {
                say(&format!(
                    "SAW env {}={}",
                    k.to_string_lossy(),
                    v.to_string_lossy()
                ));
            }
        }
        "proc-sys-write" => {
            let path = "/proc/sys/vm/overcommit_ratio";
            let r = std::fs::read_to_string(path).and_then(|v| std::fs::write(path, v.trim()));
            match r {
                Ok(()) => say(&format!("RESULT open wrote {path}")),
                Err(e) => say(&format!("RESULT blocked {path}: {e}")),
            }
        }
        "hostname" => match nix::sys::utsname::uname() {
            Ok(u) => say(&format!("SAW hostname {}", u.nodename().to_string_lossy())),
            Err(e) => say(&format!("NOT uname: {e}")),
        },
        "sibling-files" => {
            sibling_files(pid_arg(&args));
        }
        other => {
            say(&format!("UNKNOWN probe {other}"));
            return 2;
        }
    }
    0
}

/// `probe sleep SECRET [FILE-SECRET RUN]`: the host sleeper and the sibling sandbox's payload.
/// With a file secret, write it into /tmp for `sibling-files` to look for.
fn sleep(raw: &[String]) -> i32 {
    if let (Some(file_secret), Some(run)) = (raw.get(1), raw.get(2)) {
        let _ = std::fs::write(format!("/tmp/lasagna-sibling-{run}"), file_secret);
    }
    say("READY");
    std::thread::sleep(Duration::from_secs(60));
    0
}

fn leaked_fds(dirs: bool) {
    for n in 3..1024 {
        let Ok((owned, _)) = sys::dup_inherited(n) else {
            continue;
        };
        let fd = owned.as_fd();
        let Ok(st) = nix::sys::stat::fstat(fd) else {
            continue;
        };
        let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
        if dirs && is_dir {
            match nix::fcntl::openat(
                fd,
                "secret",
                nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            ) {
                Ok(f) => {
                    let mut s = String::new();
                    let _ = std::fs::File::from(f).read_to_string(&mut s);
                    say(&format!("SAW fd {n}/secret: {}", s.trim()));
                }
                Err(e) => say(&format!("NOT fd {n}/secret: {e}")),
            }
        } else if !dirs && st.st_mode & libc::S_IFMT == libc::S_IFREG {
            let mut buf = [0u8; 256];
            match nix::sys::uio::pread(fd, &mut buf, 0) {
                Ok(k) => say(&format!(
                    "SAW fd {n}: {}",
                    String::from_utf8_lossy(&buf[..k]).trim()
                )),
                Err(e) => say(&format!("NOT fd {n}: {e}")),
            }
        }
    }
}

fn low_port() {
    let mut last = Errno::UnknownErrno;
    for port in 1000..1024u16 {
        match std::net::TcpListener::bind(("127.0.0.1", port)) {
            Ok(_) => {
                say(&format!("RESULT open bound 127.0.0.1:{port}"));
                return;
            }
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => continue,
            Err(e) => {
                last = Errno::from_raw(e.raw_os_error().unwrap_or(0));
                break;
            }
        }
    }
    say(&format!("RESULT blocked bind below 1024: {last}"));
}

/// A mount namespace of the probe's own with private propagation, so nothing it mounts can
/// reach the host even when no layer holds.
fn private_mount_ns() -> Result<(), Errno> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)?;
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_PRIVATE,
        None::<&str>,
    )
}

fn tmpfs_on_tmp() -> Result<(), Errno> {
    nix::mount::mount(
        Some("tmpfs"),
        "/tmp",
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        Some("size=1M"),
    )
}

fn chroot_escape(canary: &str) {
    let dir = std::env::temp_dir().join(format!("lasagna-chroot-{}", std::process::id()));
    let _ = std::fs::create_dir(&dir);
    if let Err(e) = nix::unistd::chroot(&dir) {
        let _ = std::fs::remove_dir(&dir);
        say(&format!("NOT chroot: {e}"));
        return;
    }
    for _ in 0..64 {
        let _ = nix::unistd::chdir("..");
    }
    let _ = nix::unistd::chroot(".");
    let _ = std::fs::remove_dir(&dir);
    print_file(&format!("{canary}/secret"));
}

fn x32() {
    #[cfg(target_arch = "x86_64")]
    result(sys::probe::x32_getpid(), "x32 getpid");
    #[cfg(not(target_arch = "x86_64"))]
    say("RESULT blocked no x32 ABI on this architecture");
}

fn fork_bomb(target: usize) {
    let one = match sys::OneThread::check() {
        Ok(one) => one,
        Err(e) => {
            say(&format!("NOT fork: {e:?}"));
            return;
        }
    };
    let mut pids = Vec::new();
    let mut last = None;
    while pids.len() < target {
        match sys::fork(&one) {
            Ok(None) => {
                std::thread::sleep(Duration::from_secs(20));
                sys::exit_now(0);
            }
            Ok(Some(pid)) => pids.push(pid),
            Err(e) => {
                last = Some(e);
                break;
            }
        }
    }
    let n = pids.len();
    for pid in &pids {
        let _ = kill(*pid, Signal::SIGKILL);
    }
    for pid in &pids {
        let _ = nix::sys::wait::waitpid(*pid, None);
    }
    match last {
        None => say(&format!("RESULT open {n} processes")),
        Some(e) => say(&format!("RESULT blocked after {n} processes: {e}")),
    }
}

fn memory(bytes: usize) {
    match sys::probe::touch_memory(bytes) {
        Ok(n) => say(&format!("RESULT open touched {} MiB", n >> 20)),
        Err((n, e)) => say(&format!(
            "RESULT blocked mapping failed after {} MiB: {e}",
            n >> 20
        )),
    }
}

fn fds(target: u64) {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
    let Ok((r, _w)) = nix::unistd::pipe() else {
        say("RESULT blocked pipe");
        return;
    };
    let mut held: Vec<OwnedFd> = Vec::new();
    while (held.len() as u64) < target {
        match r.as_fd().try_clone_to_owned() {
            Ok(fd) => held.push(fd),
            Err(e) => {
                say(&format!(
                    "RESULT blocked after {} descriptors: {e}",
                    held.len()
                ));
                return;
            }
        }
    }
    say(&format!(
        "RESULT open {} descriptors (last {})",
        held.len(),
        held[held.len() - 1].as_raw_fd()
    ));
}

fn file_size() {
    // SIGXFSZ blocked: the write then fails with EFBIG instead of killing the probe.
    let mut set = nix::sys::signal::SigSet::empty();
    set.add(Signal::SIGXFSZ);
    let _ = set.thread_block();
    let candidates = [std::env::temp_dir(), std::path::PathBuf::from(".")];
    for dir in candidates {
        let path = dir.join(format!("lasagna-fsize-{}", std::process::id()));
        let Ok(f) = std::fs::File::create(&path) else {
            continue;
        };
        let r = nix::sys::uio::pwrite(&f, b"x", 1 << 30);
        let _ = std::fs::remove_file(&path);
        result(r, "write at 1 GiB");
        return;
    }
    say("RESULT blocked no writable directory");
}

fn sibling_files(pid: Pid) {
    let mut dirs = vec!["/tmp".to_string()];
    if pid.as_raw() > 0 {
        dirs.push(format!("/proc/{pid}/root/tmp"));
    }
    for d in dirs {
        let Ok(entries) = std::fs::read_dir(&d) else {
            say(&format!("NOT {d}"));
            continue;
        };
        for e in entries.flatten() {
            if e.file_name()
                .to_string_lossy()
                .starts_with("lasagna-sibling-")
            {
                print_file(&e.path().to_string_lossy());
            }
        }
    }
}

/// The interpreter half of `exec-host-file`: the kernel ran a host script whose `#!` line
/// names the probe with this argument.
pub fn exec_proof(arg: &str) -> i32 {
    say(&format!("EXECUTED {arg}"));
    0
}
