//! `net: proxy`: the supervisor's side of the sandbox's only way out.
//!
//! The child opens a listening TCP socket on `127.0.0.1:PORT` inside its network namespace
//! (which has no route anywhere else) and passes it out over a socketpair (SCM_RIGHTS,
//! step 4e). The supervisor accepts on that socket, so every accepted connection is one the
//! sandbox made, and connects outward from its own namespace. One port speaks HTTP
//! `CONNECT`, HTTP with an absolute `http://` URI, and SOCKS5 (told apart by the first
//! byte, 5). Each connection is decided against the allow-list ([`decide`]) and logged:
//! allowed or denied, host, port, the address connected to, bytes each way, duration.
//!
//! Threads: one acceptor and one per open connection (at most [`MAX_OPEN`]), started after
//! the clone. Every wait polls the stop pipe too, so [`Running::stop`] ends them at once.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use super::{Entry, HostPattern};

/// Connections open at once; one more is closed at accept and logged as denied.
pub const MAX_OPEN: usize = 256;
/// Connections kept in the log (the report); later ones are counted.
const MAX_LOGGED: usize = 10_000;
/// Bytes of host names and reasons kept in the log, all connections together; past it,
/// connections are counted only. With [`MAX_FIELD`] per field, the log stays near 2 MiB
/// whatever the payload sends.
const MAX_LOG_BYTES: usize = 1024 * 1024;
/// A host name or reason in the log is cut to this many bytes.
const MAX_FIELD: usize = 256;
/// The longest host name DNS can carry; a longer one is refused before any decision.
const MAX_HOST: usize = 253;
/// How long a client has to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long an outward connect may take, per address.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A request head larger than this is refused (nginx's default allows 8 KiB a line).
const MAX_HEAD: usize = 16 * 1024;
/// Each connection's relay buffer.
const RELAY_BUFFER: usize = 32 * 1024;
/// How long `stop` waits for connections still being set up (a name lookup cannot be
/// interrupted) before it leaves them.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// One connection the sandbox made to the proxy, as the report and `-v` show it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Connection {
    pub allowed: bool,
    /// `connect`, `http` or `socks5` (empty when the request never came).
    pub protocol: &'static str,
    pub host: String,
    pub port: u16,
    /// The address connected to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Why it was denied or failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// From the sandbox to the endpoint.
    pub bytes_out: u64,
    /// From the endpoint to the sandbox.
    pub bytes_in: u64,
    pub duration_ms: u64,
}

impl Connection {
    fn new() -> Connection {
        Connection {
            allowed: false,
            protocol: "",
            host: String::new(),
            port: 0,
            address: None,
            reason: None,
            bytes_out: 0,
            bytes_in: 0,
            duration_ms: 0,
        }
    }

    /// `allowed CONNECT example.com:443 (93.184.216.34): 517 B out, 4 KiB in, 120 ms`.
    pub fn line(&self) -> String {
        let what = match self.protocol {
            "connect" => "CONNECT",
            "http" => "HTTP",
            "socks5" => "SOCKS5",
            _ => "request",
        };
        let target = if self.host.is_empty() {
            String::new()
        } else if self.host.contains(':') {
            format!(" [{}]:{}", self.host, self.port)
        } else {
            format!(" {}:{}", self.host, self.port)
        };
        let host = crate::text::escape(&target).into_owned();
        let verdict = if self.allowed { "allowed" } else { "denied" };
        let mut out = format!("{verdict} {what}{host}");
        if let Some(a) = &self.address {
            out.push_str(&format!(" ({a})"));
        }
        if let Some(r) = &self.reason {
            out.push_str(&format!(": {}", crate::text::escape(r)));
        }
        if self.allowed {
            out.push_str(&format!(
                "; {} out, {} in, {} ms",
                bytes(self.bytes_out),
                bytes(self.bytes_in),
                self.duration_ms
            ));
        }
        out
    }
}

fn bytes(n: u64) -> String {
    match n {
        n if n < 10 * 1024 => format!("{n} B"),
        n if n < 10 * 1024 * 1024 => format!("{} KiB", n / 1024),
        n => format!("{} MiB", n / (1024 * 1024)),
    }
}

/// What the proxy saw, for the report.
#[derive(Debug, Default)]
pub struct Log {
    pub connections: Vec<Connection>,
    /// Connections beyond [`MAX_LOGGED`] or [`MAX_LOG_BYTES`], counted only.
    pub unlogged: u64,
    /// Bytes of host names and reasons in `connections`.
    kept_bytes: usize,
}

pub struct Settings {
    pub allow: Vec<Entry>,
    /// `-v`: one line on stderr per connection, as it ends.
    pub log_stderr: bool,
}

struct Shared {
    settings: Settings,
    /// This host's own addresses: a name entry never reaches them.
    own: Vec<IpAddr>,
    log: Mutex<Log>,
    open: Mutex<usize>,
    closed: Condvar,
    /// Read end of the stop pipe: readable (EOF) once `stop` closed the write end.
    stop: OwnedFd,
}

/// The proxy while the sandbox runs.
pub struct Running {
    shared: Arc<Shared>,
    stop_w: Option<OwnedFd>,
    acceptor: Option<JoinHandle<()>>,
}

/// Start serving: the acceptor thread receives the listening socket from the child on
/// `channel`, then accepts on it until [`Running::stop`].
pub fn start(channel: OwnedFd, settings: Settings) -> io::Result<Running> {
    let (stop_r, stop_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let shared = Arc::new(Shared {
        settings,
        own: own_addresses(),
        log: Mutex::new(Log::default()),
        open: Mutex::new(0),
        closed: Condvar::new(),
        stop: stop_r,
    });
    let s = Arc::clone(&shared);
    let acceptor = std::thread::Builder::new()
        .name("proxy".into())
        .stack_size(256 * 1024)
        .spawn(move || accept_loop(&s, channel))?;
    Ok(Running {
        shared,
        stop_w: Some(stop_w),
        acceptor: Some(acceptor),
    })
}

impl Running {
    /// End every connection, wait for the threads (a lookup still running is left after
    /// [`STOP_GRACE`]) and return the log.
    pub fn stop(mut self) -> Log {
        drop(self.stop_w.take());
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
        let until = Instant::now() + STOP_GRACE;
        let mut open = self.shared.open.lock().unwrap_or_else(|e| e.into_inner());
        while *open > 0 {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            open = self
                .shared
                .closed
                .wait_timeout(open, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        drop(open);
        std::mem::take(&mut *self.shared.log.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Shared {
    fn stopped(&self) -> bool {
        let mut fds = [PollFd::new(self.stop.as_fd(), PollFlags::POLLIN)];
        matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
    }

    fn record(&self, mut c: Connection) {
        // Every field here may be the payload's choice: cut before it is kept or printed.
        crate::text::clip(&mut c.host, MAX_FIELD);
        if let Some(r) = c.reason.as_mut() {
            crate::text::clip(r, MAX_FIELD);
        }
        if self.settings.log_stderr {
            eprintln!("lasagna: network: {}", c.line());
        }
        let size = c.host.len() + c.reason.as_ref().map_or(0, String::len);
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        if log.connections.len() < MAX_LOGGED && log.kept_bytes + size <= MAX_LOG_BYTES {
            log.kept_bytes += size;
            log.connections.push(c);
        } else {
            log.unlogged += 1;
        }
    }
}

fn own_addresses() -> Vec<IpAddr> {
    let mut out = Vec::new();
    if let Ok(addrs) = nix::ifaddrs::getifaddrs() {
        for a in addrs {
            let Some(addr) = a.address else { continue };
            if let Some(v4) = addr.as_sockaddr_in() {
                out.push(IpAddr::V4(v4.ip()));
            } else if let Some(v6) = addr.as_sockaddr_in6() {
                out.push(IpAddr::V6(v6.ip()));
            }
        }
    }
    out
}

/// Wait until `fd` is ready for `events`, the stop pipe is readable, or `deadline`.
fn wait(
    shared: &Shared,
    fd: BorrowedFd<'_>,
    events: PollFlags,
    deadline: Option<Instant>,
) -> io::Result<()> {
    loop {
        let timeout = match deadline {
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, "timed out"));
                }
                PollTimeout::try_from(left.as_millis().clamp(1, 60_000) as i32)
                    .unwrap_or(PollTimeout::MAX)
            }
            None => PollTimeout::NONE,
        };
        let mut fds = [
            PollFd::new(fd, events),
            PollFd::new(shared.stop.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, timeout) {
            Err(Errno::EINTR) | Ok(0) => continue,
            Err(e) => return Err(e.into()),
            Ok(_) => {}
        }
        if fds[1].revents().is_some_and(|r| !r.is_empty()) {
            return Err(io::Error::new(
                io::ErrorKind::Interrupted,
                "the sandbox ended",
            ));
        }
        if fds[0].revents().is_some_and(|r| !r.is_empty()) {
            return Ok(());
        }
    }
}

fn read_some(
    shared: &Shared,
    s: &TcpStream,
    buf: &mut [u8],
    deadline: Option<Instant>,
) -> io::Result<usize> {
    loop {
        match (&*s).read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                wait(shared, s.as_fd(), PollFlags::POLLIN, deadline)?
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

fn write_all(shared: &Shared, s: &TcpStream, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        match (&*s).write(data) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                wait(shared, s.as_fd(), PollFlags::POLLOUT, None)?
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn accept_loop(shared: &Arc<Shared>, channel: OwnedFd) {
    // The child sends the listener at step 4e; EOF: it failed before (its message is on
    // the status pipe).
    if wait(shared, channel.as_fd(), PollFlags::POLLIN, None).is_err() {
        return;
    }
    let Ok(Some(fd)) = crate::sys::recv_fd(channel.as_fd()) else {
        return;
    };
    drop(channel);
    let listener = TcpListener::from(fd);
    if listener.set_nonblocking(true).is_err() {
        return;
    }
    while wait(shared, listener.as_fd(), PollFlags::POLLIN, None).is_ok() {
        let client = match listener.accept() {
            Ok((c, _)) => c,
            Err(_) => continue,
        };
        {
            let mut open = shared.open.lock().unwrap_or_else(|e| e.into_inner());
            if *open >= MAX_OPEN {
                drop(open);
                let mut c = Connection::new();
                c.reason = Some(format!("{MAX_OPEN} connections are open already"));
                shared.record(c);
                continue;
            }
            *open += 1;
        }
        let s = Arc::clone(shared);
        let spawned = std::thread::Builder::new()
            .name("proxy-conn".into())
            .stack_size(256 * 1024)
            .spawn(move || {
                let start = Instant::now();
                let mut c = Connection::new();
                if let Err(e) = serve(&s, client, &mut c) {
                    if c.reason.is_none() && e.kind() != io::ErrorKind::Interrupted {
                        c.reason = Some(e.to_string());
                    }
                }
                c.duration_ms = start.elapsed().as_millis() as u64;
                if c.protocol.is_empty() && c.reason.is_none() {
                    c.reason = Some("no request".into());
                }
                s.record(c);
                let mut open = s.open.lock().unwrap_or_else(|e| e.into_inner());
                *open -= 1;
                s.closed.notify_all();
            });
        if spawned.is_err() {
            let mut open = shared.open.lock().unwrap_or_else(|e| e.into_inner());
            *open -= 1;
        }
    }
}

/// Read from the client until `buf` holds at least `n` bytes.
fn fill(
    shared: &Shared,
    s: &TcpStream,
    buf: &mut Vec<u8>,
    n: usize,
    deadline: Instant,
) -> io::Result<()> {
    let mut chunk = [0u8; 4096];
    while buf.len() < n {
        let got = read_some(shared, s, &mut chunk, Some(deadline))?;
        if got == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the client closed the connection",
            ));
        }
        buf.extend_from_slice(&chunk[..got]);
    }
    Ok(())
}

fn serve(shared: &Shared, client: TcpStream, c: &mut Connection) -> io::Result<()> {
    client.set_nonblocking(true)?;
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    let mut buf = Vec::with_capacity(4096);
    fill(shared, &client, &mut buf, 1, deadline)?;
    if buf[0] == 5 {
        c.protocol = "socks5";
        socks5(shared, &client, buf, deadline, c)
    } else {
        http(shared, &client, buf, deadline, c)
    }
}

/// Decide, then connect to the first allowed address that answers.
fn open(shared: &Shared, c: &mut Connection) -> Result<TcpStream, Failure> {
    let addrs = decide(
        &shared.settings.allow,
        &c.host,
        c.port,
        &shared.own,
        &resolve,
    )
    .map_err(|why| {
        c.reason = Some(why);
        Failure::Denied
    })?;
    c.allowed = true;
    let mut last = None;
    for a in addrs {
        if shared.stopped() {
            return Err(Failure::Io(io::ErrorKind::Interrupted.into()));
        }
        let to = SocketAddr::new(a, c.port);
        match TcpStream::connect_timeout(&to, CONNECT_TIMEOUT) {
            Ok(s) => {
                c.address = Some(to.to_string());
                s.set_nonblocking(true).map_err(Failure::Io)?;
                return Ok(s);
            }
            Err(e) => last = Some((to, e)),
        }
    }
    let (to, e) = last.expect("decide returns at least one address");
    c.reason = Some(format!("connect {to}: {e}"));
    Err(Failure::Io(e))
}

enum Failure {
    Denied,
    Io(io::Error),
}

fn resolve(name: &str) -> io::Result<Vec<IpAddr>> {
    Ok((name, 0u16).to_socket_addrs()?.map(|a| a.ip()).collect())
}

/// Whether a name may be resolved here without DNS (RFC 6761: `localhost` and every name
/// below it are the loopback).
fn is_localhost(name: &str) -> bool {
    name == "localhost" || name.ends_with(".localhost")
}

/// Addresses a name entry never reaches: this host's loopback, link-local, unspecified,
/// multicast and broadcast addresses, and its own addresses. A name the sandbox may use
/// cannot be pointed there by its DNS answer; an address entry can name them.
fn internal(a: IpAddr, own: &[IpAddr]) -> bool {
    let special = match a {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_unspecified()
                || v4.is_link_local()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.octets()[0] == 0
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (v6.segments()[0] & 0xffc0) == 0xfe80
        }
    };
    special || own.contains(&a)
}

/// The allow-list's verdict on `host:port`: the addresses that may be connected to, or
/// why not. An address literal needs an address entry that covers it. A name needs a name
/// entry (exact, or `*.domain` for names below the domain) or an address entry covering
/// one of its addresses; a name that no entry names is not looked up at all. Resolved
/// addresses that [`internal`] flags are dropped for name entries, except for `localhost`
/// names, which are the loopback by definition and are not looked up.
pub fn decide(
    allow: &[Entry],
    host: &str,
    port: u16,
    own: &[IpAddr],
    resolve: &dyn Fn(&str) -> io::Result<Vec<IpAddr>>,
) -> Result<Vec<IpAddr>, String> {
    let nets: Vec<&Entry> = allow
        .iter()
        .filter(|e| matches!(e.host, HostPattern::Net(..)) && e.allows_port(port))
        .collect();
    let covered = |a: IpAddr| nets.iter().any(|e| e.host.matches_addr(a));
    if let Ok(a) = host.parse::<IpAddr>() {
        let a = a.to_canonical();
        return if covered(a) {
            Ok(vec![a])
        } else {
            Err(format!("{} is not on the allow-list", shown(host, port)))
        };
    }
    let name = host.trim_end_matches('.').to_ascii_lowercase();
    if !super::valid_name(&name) {
        return Err(format!("{host:?} is not a host name"));
    }
    let by_name = allow.iter().any(|e| {
        matches!(e.host, HostPattern::Name(_) | HostPattern::Below(_))
            && e.allows_port(port)
            && e.host.matches_name(&name)
    });
    // A name is looked up only for a name entry that matches it: with address entries
    // alone, a name the payload made up (`<secret>.attacker.example`) never leaves the host
    // in a DNS query.
    if !by_name {
        return Err(if nets.is_empty() {
            format!("{} is not on the allow-list", shown(&name, port))
        } else {
            format!(
                "{} is not on the allow-list (address entries cover addresses, not names; a name is looked up only for a name entry that matches it)",
                shown(&name, port)
            )
        });
    }
    let local = is_localhost(&name);
    let found: Vec<IpAddr> = if local {
        vec![
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
        ]
    } else {
        resolve(&name).map_err(|e| format!("cannot resolve {name}: {e}"))?
    };
    let mut kept = Vec::new();
    for a in found.iter().map(|a| a.to_canonical()) {
        if (covered(a) || (by_name && (local || !internal(a, own)))) && !kept.contains(&a) {
            kept.push(a);
        }
    }
    if kept.is_empty() {
        let list: Vec<String> = found.iter().map(IpAddr::to_string).collect();
        let list = if list.is_empty() {
            "nothing".to_string()
        } else {
            list.join(", ")
        };
        return Err(format!(
            "{name} resolves to {list}: a name entry does not reach a loopback, link-local or this host's own address (an address entry does)"
        ));
    }
    Ok(kept)
}

fn shown(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

// ---- SOCKS5 (RFC 1928), CONNECT only, no authentication ----------------------------

fn socks5(
    shared: &Shared,
    client: &TcpStream,
    mut buf: Vec<u8>,
    deadline: Instant,
    c: &mut Connection,
) -> io::Result<()> {
    fill(shared, client, &mut buf, 2, deadline)?;
    let n = buf[1] as usize;
    fill(shared, client, &mut buf, 2 + n, deadline)?;
    if !buf[2..2 + n].contains(&0) {
        write_all(shared, client, &[5, 0xff])?;
        c.reason = Some("SOCKS5 client offers no method without authentication".into());
        return Ok(());
    }
    write_all(shared, client, &[5, 0])?;
    buf.drain(..2 + n);
    fill(shared, client, &mut buf, 5, deadline)?;
    let (ver, cmd, atyp) = (buf[0], buf[1], buf[3]);
    if ver != 5 {
        c.reason = Some(format!("SOCKS5 request with version {ver}"));
        return Ok(());
    }
    let (host, at) = match atyp {
        1 => {
            fill(shared, client, &mut buf, 4 + 4 + 2, deadline)?;
            (Ipv4Addr::new(buf[4], buf[5], buf[6], buf[7]).to_string(), 8)
        }
        3 => {
            let len = buf[4] as usize;
            fill(shared, client, &mut buf, 5 + len + 2, deadline)?;
            (
                String::from_utf8_lossy(&buf[5..5 + len]).into_owned(),
                5 + len,
            )
        }
        4 => {
            fill(shared, client, &mut buf, 4 + 16 + 2, deadline)?;
            let mut o = [0u8; 16];
            o.copy_from_slice(&buf[4..20]);
            (Ipv6Addr::from(o).to_string(), 20)
        }
        other => {
            write_all(shared, client, &socks_reply(8))?;
            c.reason = Some(format!("SOCKS5 address type {other} is not one"));
            return Ok(());
        }
    };
    c.host = host;
    c.port = u16::from_be_bytes([buf[at], buf[at + 1]]);
    buf.drain(..at + 2);
    if cmd != 1 {
        write_all(shared, client, &socks_reply(7))?;
        c.reason = Some(format!("SOCKS5 command {cmd}: only CONNECT (1) is served"));
        return Ok(());
    }
    let remote = match open(shared, c) {
        Ok(r) => r,
        Err(Failure::Denied) => return write_all(shared, client, &socks_reply(2)),
        Err(Failure::Io(e)) => {
            let code = match e.kind() {
                io::ErrorKind::ConnectionRefused => 5,
                io::ErrorKind::TimedOut => 6,
                _ => 4,
            };
            let _ = write_all(shared, client, &socks_reply(code));
            return Err(e);
        }
    };
    write_all(shared, client, &socks_reply(0))?;
    relay(shared, client, &remote, &buf, c)
}

fn socks_reply(code: u8) -> [u8; 10] {
    [5, code, 0, 1, 0, 0, 0, 0, 0, 0]
}

// ---- HTTP: CONNECT, and absolute-URI requests ---------------------------------------

fn http(
    shared: &Shared,
    client: &TcpStream,
    mut buf: Vec<u8>,
    deadline: Instant,
    c: &mut Connection,
) -> io::Result<()> {
    let end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > MAX_HEAD {
            c.reason = Some(format!("request head over {} KiB", MAX_HEAD / 1024));
            return respond(
                shared,
                client,
                "431 Request Header Fields Too Large",
                &format!("the request head is over {} KiB", MAX_HEAD / 1024),
            );
        }
        let have = buf.len();
        fill(shared, client, &mut buf, have + 1, deadline)?;
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let rest = buf[end..].to_vec();
    let mut lines = head.split("\r\n");
    let request = lines.next().unwrap_or_default();
    let mut parts = request.split(' ');
    let (method, target, version) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    if !version.starts_with("HTTP/1.") || parts.next().is_some() {
        c.reason = Some(format!("not an HTTP/1 request: {:?}", truncate(request)));
        return respond(shared, client, "400 Bad Request", "not an HTTP/1 request");
    }
    if method.eq_ignore_ascii_case("CONNECT") {
        c.protocol = "connect";
        let Some((host, port)) = authority(target, None) else {
            c.reason = Some(format!(
                "CONNECT target {:?} is not host:port with a name of at most {MAX_HOST} bytes",
                truncate(target)
            ));
            return respond(shared, client, "400 Bad Request", "CONNECT takes host:port");
        };
        (c.host, c.port) = (host, port);
        let Some(remote) = open_http(shared, client, c)? else {
            return Ok(());
        };
        write_all(
            shared,
            client,
            b"HTTP/1.1 200 Connection established\r\n\r\n",
        )?;
        return relay(shared, client, &remote, &rest, c);
    }
    c.protocol = "http";
    let Some(after) = target
        .get(..7)
        .filter(|s| s.eq_ignore_ascii_case("http://"))
        .map(|_| &target[7..])
    else {
        c.reason = Some(format!(
            "{method} {:?}: not an absolute http:// URI",
            truncate(target)
        ));
        return respond(
            shared,
            client,
            "400 Bad Request",
            "lasagna's proxy serves CONNECT and absolute http:// URIs",
        );
    };
    let cut = after.find(['/', '?', '#']).unwrap_or(after.len());
    let (auth, path) = after.split_at(cut);
    let auth = auth.rsplit('@').next().unwrap_or(auth);
    let Some((host, port)) = authority(auth, Some(80)) else {
        c.reason = Some(format!("{:?} is not host[:port]", truncate(auth)));
        return respond(
            shared,
            client,
            "400 Bad Request",
            "the URI's host is not host[:port]",
        );
    };
    (c.host, c.port) = (host, port);
    let path = match path {
        "" => "/".to_string(),
        p if p.starts_with('/') => p.to_string(),
        p => format!("/{p}"),
    };
    let mut forward = format!("{method} {path} {version}\r\n");
    let mut has_host = false;
    for line in lines.filter(|l| !l.is_empty()) {
        let name = line.split(':').next().unwrap_or_default().trim();
        let hop = [
            "proxy-connection",
            "proxy-authorization",
            "connection",
            "keep-alive",
        ];
        if hop.iter().any(|h| name.eq_ignore_ascii_case(h)) {
            continue;
        }
        has_host |= name.eq_ignore_ascii_case("host");
        forward.push_str(line);
        forward.push_str("\r\n");
    }
    if !has_host {
        forward.push_str(&format!("Host: {auth}\r\n"));
    }
    // One request per connection: the next one may name another host.
    forward.push_str("Connection: close\r\n\r\n");
    let Some(remote) = open_http(shared, client, c)? else {
        return Ok(());
    };
    let mut first = forward.into_bytes();
    first.extend_from_slice(&rest);
    relay(shared, client, &remote, &first, c)
}

/// [`open`] for an HTTP client: a denial is answered 403 and a failed connect 502, with
/// the reason as the body (`None`: answered, nothing to relay).
fn open_http(
    shared: &Shared,
    client: &TcpStream,
    c: &mut Connection,
) -> io::Result<Option<TcpStream>> {
    match open(shared, c) {
        Ok(r) => Ok(Some(r)),
        Err(Failure::Denied) => {
            let why = c.reason.clone().unwrap_or_default();
            respond(shared, client, "403 Forbidden", &why).map(|()| None)
        }
        Err(Failure::Io(e)) => {
            let why = c.reason.clone().unwrap_or_default();
            let _ = respond(shared, client, "502 Bad Gateway", &why);
            Err(e)
        }
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(80).collect()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// `host:port`, `[v6]:port`, or (with a default port) `host`.
fn authority(s: &str, default_port: Option<u16>) -> Option<(String, u16)> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        match after.strip_prefix(':') {
            Some(p) => (h, Some(p)),
            None if after.is_empty() => (h, None),
            None => return None,
        }
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    let port = match port {
        Some(p) => p.parse::<u16>().ok().filter(|p| *p != 0)?,
        None => default_port?,
    };
    (!host.is_empty() && host.len() <= MAX_HOST).then(|| (host.to_string(), port))
}

/// An answer from the proxy itself, and the end of the connection.
fn respond(shared: &Shared, client: &TcpStream, status: &str, body: &str) -> io::Result<()> {
    let body = format!("lasagna: {body}\n");
    let text = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    write_all(shared, client, text.as_bytes())
}

// ---- relay ---------------------------------------------------------------------------

/// Copy both ways until both sides are done (`first`: bytes for the endpoint first).
fn relay(
    shared: &Shared,
    client: &TcpStream,
    remote: &TcpStream,
    first: &[u8],
    c: &mut Connection,
) -> io::Result<()> {
    if !first.is_empty() {
        write_all(shared, remote, first)?;
        c.bytes_out += first.len() as u64;
    }
    let mut buf = vec![0u8; RELAY_BUFFER];
    let (mut out_open, mut in_open) = (true, true);
    while out_open || in_open {
        let mut fds = Vec::with_capacity(3);
        fds.push(PollFd::new(shared.stop.as_fd(), PollFlags::POLLIN));
        if out_open {
            fds.push(PollFd::new(client.as_fd(), PollFlags::POLLIN));
        }
        if in_open {
            fds.push(PollFd::new(remote.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
            Ok(_) => {}
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        if ready[0] {
            return Ok(());
        }
        let mut i = 1;
        if out_open {
            if ready[i] {
                match copy(shared, client, remote, &mut buf)? {
                    Some(0) => out_open = false,
                    Some(n) => c.bytes_out += n as u64,
                    None => {}
                }
            }
            i += 1;
        }
        if in_open && ready[i] {
            match copy(shared, remote, client, &mut buf)? {
                Some(0) => in_open = false,
                Some(n) => c.bytes_in += n as u64,
                None => {}
            }
        }
    }
    Ok(())
}

/// One read from `from` written to `to`: `Some(0)` at EOF (then `to`'s write side is
/// shut), `None` when nothing was there after all.
fn copy(
    shared: &Shared,
    from: &TcpStream,
    to: &TcpStream,
    buf: &mut [u8],
) -> io::Result<Option<usize>> {
    let n = match (&*from).read(buf) {
        Ok(n) => n,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
            ) =>
        {
            return Ok(None)
        }
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => 0,
        Err(e) => return Err(e),
    };
    if n == 0 {
        let _ = to.shutdown(std::net::Shutdown::Write);
        return Ok(Some(0));
    }
    write_all(shared, to, &buf[..n])?;
    Ok(Some(n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::network::parse_entry;

    fn list(entries: &[&str]) -> Vec<Entry> {
        entries.iter().map(|e| parse_entry(e).unwrap()).collect()
    }

    fn dns(
        answers: &'static [(&'static str, &'static str)],
    ) -> impl Fn(&str) -> io::Result<Vec<IpAddr>> {
        move |name: &str| {
            let found: Vec<IpAddr> = answers
                .iter()
                .filter(|(n, _)| *n == name)
                .map(|(_, a)| a.parse().unwrap())
                .collect();
            if found.is_empty() {
                Err(io::Error::new(io::ErrorKind::NotFound, "no such name"))
            } else {
                Ok(found)
            }
        }
    }

    #[test]
    fn names_need_a_name_entry_and_a_port_in_its_range() {
        let allow = list(&["api.example.com:443", "*.pkg.example:8000-8010"]);
        let r = dns(&[
            ("api.example.com", "203.0.113.5"),
            ("a.pkg.example", "203.0.113.6"),
        ]);
        assert_eq!(
            decide(&allow, "api.example.com", 443, &[], &r).unwrap(),
            vec!["203.0.113.5".parse::<IpAddr>().unwrap()]
        );
        assert!(decide(&allow, "api.example.com", 80, &[], &r)
            .unwrap_err()
            .contains("not on the allow-list"));
        assert!(decide(&allow, "a.pkg.example", 8005, &[], &r).is_ok());
        assert!(
            decide(&allow, "pkg.example", 8005, &[], &r).is_err(),
            "the bare domain"
        );
        assert!(
            decide(&allow, "xpkg.example", 8005, &[], &r).is_err(),
            "a sibling"
        );
        assert!(
            decide(&allow, "203.0.113.5", 443, &[], &r).is_err(),
            "a name entry does not allow its address"
        );
    }

    #[test]
    fn a_name_entry_never_reaches_loopback_link_local_or_this_host() {
        let allow = list(&["evil.example:80"]);
        let own: Vec<IpAddr> = vec!["192.0.2.2".parse().unwrap()];
        for answer in [
            &[("evil.example", "127.0.0.1")][..],
            &[("evil.example", "::1")],
            &[("evil.example", "169.254.169.254")],
            &[("evil.example", "::ffff:127.0.0.1")],
            &[("evil.example", "0.0.0.0")],
            &[("evil.example", "192.0.2.2")],
            &[("evil.example", "fe80::1")],
        ] {
            let leaked: &'static [(&'static str, &'static str)] =
                Box::leak(answer.to_vec().into_boxed_slice());
            let err = decide(&allow, "evil.example", 80, &own, &dns(leaked)).unwrap_err();
            assert!(err.contains("does not reach"), "{answer:?}: {err}");
        }
        // Mixed answers keep only the outside address.
        let r = dns(&[
            ("evil.example", "127.0.0.1"),
            ("evil.example", "203.0.113.9"),
        ]);
        assert_eq!(
            decide(&allow, "evil.example", 80, &own, &r).unwrap(),
            vec!["203.0.113.9".parse::<IpAddr>().unwrap()]
        );
    }

    #[test]
    fn localhost_names_are_the_loopback_without_a_lookup() {
        let allow = list(&["localhost:8080", "*.test.localhost:9000"]);
        let none = |_: &str| -> io::Result<Vec<IpAddr>> { panic!("no lookup for localhost names") };
        let got = decide(&allow, "localhost", 8080, &[], &none).unwrap();
        assert!(got.iter().all(|a| a.is_loopback()));
        assert!(decide(&allow, "a.test.localhost", 9000, &[], &none).is_ok());
        assert!(decide(&allow, "test.localhost", 9000, &[], &none).is_err());
        assert!(decide(&allow, "localhost", 8081, &[], &none).is_err());
    }

    #[test]
    fn address_entries_cover_literals_and_resolved_names() {
        let allow = list(&["127.0.0.1:5432", "10.0.0.0/8:443"]);
        let r = dns(&[
            ("db.internal", "10.1.2.3"),
            ("outside.example", "203.0.113.1"),
        ]);
        assert!(decide(&allow, "127.0.0.1", 5432, &[], &r).is_ok());
        assert!(
            decide(&allow, "::ffff:127.0.0.1", 5432, &[], &r).is_ok(),
            "v4-mapped is the same address"
        );
        assert!(decide(&allow, "127.0.0.2", 5432, &[], &r).is_err());
        let unlisted =
            |_: &str| -> io::Result<Vec<IpAddr>> { panic!("an unlisted name is not looked up") };
        // Address entries alone never send a name to DNS.
        assert!(decide(&allow, "db.internal", 443, &[], &unlisted)
            .unwrap_err()
            .contains("address entries cover addresses, not names"));
        // A name entry has it looked up.
        let named = list(&["*.internal:443", "10.0.0.0/8:443", "*.example:443"]);
        assert!(decide(&named, "db.internal", 443, &[], &r).is_ok());
        assert!(decide(&named, "outside.example", 443, &[], &r).is_ok());
        assert!(decide(
            &list(&["api.example.com:443"]),
            "other.example",
            443,
            &[],
            &unlisted
        )
        .is_err());
    }

    #[test]
    fn authorities_parse() {
        assert_eq!(
            authority("example.com:443", None),
            Some(("example.com".into(), 443))
        );
        assert_eq!(authority("[::1]:8080", None), Some(("::1".into(), 8080)));
        assert_eq!(
            authority("example.com", Some(80)),
            Some(("example.com".into(), 80))
        );
        assert_eq!(authority("example.com", None), None);
        assert_eq!(authority("example.com:0", None), None);
        assert_eq!(authority(":80", None), None);
        // No name DNS could carry is kept: a payload's 60,000-byte "host" is refused whole.
        let longest = format!("{}:80", "a".repeat(MAX_HOST));
        assert!(authority(&longest, None).is_some());
        let over = format!("{}:80", "a".repeat(MAX_HOST + 1));
        assert_eq!(authority(&over, None), None);
    }

    #[test]
    fn clip_cuts_at_a_character_boundary_and_marks_the_cut() {
        let mut s = "é".repeat(200);
        crate::text::clip(&mut s, MAX_FIELD);
        assert!(s.len() <= MAX_FIELD && s.ends_with("..."), "{}", s.len());
        let mut short = "example.com".to_string();
        crate::text::clip(&mut short, MAX_FIELD);
        assert_eq!(short, "example.com");
    }

    #[test]
    fn a_name_entry_never_reaches_multicast_broadcast_or_unspecified_addresses() {
        let allow = list(&["evil.example:80"]);
        for answer in [
            &[("evil.example", "224.0.0.1")][..],
            &[("evil.example", "255.255.255.255")],
            &[("evil.example", "0.1.2.3")],
            &[("evil.example", "::")],
            &[("evil.example", "ff02::1")],
            &[("evil.example", "febf::1")],
        ] {
            let leaked: &'static [(&'static str, &'static str)] =
                Box::leak(answer.to_vec().into_boxed_slice());
            let err = decide(&allow, "evil.example", 80, &[], &dns(leaked)).unwrap_err();
            assert!(err.contains("does not reach"), "{answer:?}: {err}");
        }
        // The control: the neighbours of those ranges are outside addresses.
        for outside in [
            "223.255.255.1",
            "255.255.255.254",
            "1.0.0.1",
            "fec0::1",
            "2001:db8::1",
        ] {
            let a: IpAddr = outside.parse().unwrap();
            assert!(!internal(a, &[]), "{outside}");
        }
    }

    #[test]
    fn an_address_entry_allows_only_its_ports() {
        let allow = list(&["127.0.0.1:5432-5433"]);
        let unlisted =
            |_: &str| -> io::Result<Vec<IpAddr>> { panic!("an unlisted name is not looked up") };
        assert!(decide(&allow, "127.0.0.1", 5433, &[], &unlisted).is_ok());
        let err = decide(&allow, "127.0.0.1", 5434, &[], &unlisted).unwrap_err();
        assert_eq!(err, "127.0.0.1:5434 is not on the allow-list");
        let err = decide(&allow, "::1", 5432, &[], &unlisted).unwrap_err();
        assert_eq!(err, "[::1]:5432 is not on the allow-list");
        // With name entries alone, an unlisted name is refused without the hint about
        // address entries.
        let names = list(&["api.example.com:443"]);
        let err = decide(&names, "other.example", 443, &[], &unlisted).unwrap_err();
        assert_eq!(err, "other.example:443 is not on the allow-list");
    }

    // ---- one connection served end to end, over the loopback ----------------------------

    /// A proxy's shared state with `allow`, and the write end of its stop pipe.
    fn shared(allow: &[&str]) -> (Shared, OwnedFd) {
        let (stop, stop_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        let shared = Shared {
            settings: Settings {
                allow: list(allow),
                log_stderr: false,
            },
            own: Vec::new(),
            log: Mutex::new(Log::default()),
            open: Mutex::new(0),
            closed: Condvar::new(),
            stop,
        };
        (shared, stop_w)
    }

    /// An endpoint on 127.0.0.1 that answers one connection: it reads until the proxy
    /// shuts its side, then sends `reply`. The thread returns what it read.
    fn endpoint(reply: &'static [u8]) -> (u16, JoinHandle<Vec<u8>>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let t = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut got = Vec::new();
            let _ = s.read_to_end(&mut got);
            s.write_all(reply).unwrap();
            got
        });
        (port, t)
    }

    /// A port on 127.0.0.1 where nothing listens.
    fn closed_port() -> u16 {
        TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    /// The client's side of one connection: `request` sent (then the client's write side
    /// shut), what the proxy answered, and what it logged.
    fn exchange(allow: &[&str], request: &[u8]) -> (Vec<u8>, Connection, io::Result<()>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (server, _) = l.accept().unwrap();
        client.write_all(request).unwrap();
        client.shutdown(std::net::Shutdown::Write).unwrap();
        let (sh, _stop_w) = shared(allow);
        let mut c = Connection::new();
        let served = serve(&sh, server, &mut c);
        client
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut answer = Vec::new();
        let _ = client.read_to_end(&mut answer);
        (answer, c, served)
    }

    fn text(b: &[u8]) -> String {
        String::from_utf8_lossy(b).into_owned()
    }

    fn socks_connect(atyp: u8, addr: &[u8], port: u16) -> Vec<u8> {
        let mut v = vec![5, 1, 0, 5, 1, 0, atyp];
        v.extend_from_slice(addr);
        v.extend_from_slice(&port.to_be_bytes());
        v
    }

    #[test]
    fn socks5_connects_to_an_allowed_address_and_relays_both_ways() {
        let (port, ep) = endpoint(b"pong");
        let mut req = socks_connect(1, &[127, 0, 0, 1], port);
        req.extend_from_slice(b"ping");
        let (answer, c, served) = exchange(&[&format!("127.0.0.1:{port}")], &req);
        served.unwrap();
        let mut want = vec![5, 0];
        want.extend_from_slice(&socks_reply(0));
        want.extend_from_slice(b"pong");
        assert_eq!(answer, want);
        assert_eq!(ep.join().unwrap(), b"ping");
        assert!(c.allowed, "{c:?}");
        assert_eq!((c.host.as_str(), c.port), ("127.0.0.1", port));
        assert_eq!(c.address, Some(format!("127.0.0.1:{port}")));
        assert_eq!((c.bytes_out, c.bytes_in), (4, 4));
    }

    #[test]
    fn socks5_takes_a_name_and_a_v6_address() {
        // A name: `localhost` is the loopback without a lookup.
        let (port, ep) = endpoint(b"");
        let mut req = vec![5, 1, 0, 5, 1, 0, 3, 9];
        req.extend_from_slice(b"localhost");
        req.extend_from_slice(&port.to_be_bytes());
        let (answer, c, served) = exchange(&[&format!("localhost:{port}")], &req);
        served.unwrap();
        assert_eq!(answer[2..], socks_reply(0));
        assert_eq!(
            (c.host.as_str(), c.port, c.allowed),
            ("localhost", port, true)
        );
        ep.join().unwrap();
        // A v6 address, denied: the reply says "not allowed" and the log has the address.
        let mut six = [0u8; 16];
        six[15] = 1;
        let (answer, c, _) = exchange(&[], &socks_connect(4, &six, 8443));
        assert_eq!(answer, [&[5, 0][..], &socks_reply(2)].concat());
        assert_eq!((c.host.as_str(), c.port, c.allowed), ("::1", 8443, false));
        assert!(c.reason.unwrap().contains("not on the allow-list"));
    }

    #[test]
    fn socks5_refusals_answer_with_their_codes() {
        // Not allowed: 2.
        let (answer, c, _) = exchange(&[], &socks_connect(1, &[127, 0, 0, 1], 9));
        assert_eq!(answer, [&[5, 0][..], &socks_reply(2)].concat());
        assert_eq!(
            (c.host.as_str(), c.port, c.allowed),
            ("127.0.0.1", 9, false)
        );
        // Allowed, and nothing listens: 5 (connection refused), and the error is returned.
        let port = closed_port();
        let (answer, c, served) = exchange(
            &[&format!("127.0.0.1:{port}")],
            &socks_connect(1, &[127, 0, 0, 1], port),
        );
        assert_eq!(answer, [&[5, 0][..], &socks_reply(5)].concat());
        assert_eq!(served.unwrap_err().kind(), io::ErrorKind::ConnectionRefused);
        assert!(c
            .reason
            .unwrap()
            .starts_with(&format!("connect 127.0.0.1:{port}")));
        // Only CONNECT: 7; an unknown address type: 8.
        let mut bind = socks_connect(1, &[127, 0, 0, 1], 9);
        bind[4] = 2;
        let (answer, c, _) = exchange(&["127.0.0.1:9"], &bind);
        assert_eq!(answer, [&[5, 0][..], &socks_reply(7)].concat());
        assert!(!c.allowed && c.reason.unwrap().contains("only CONNECT"));
        let (answer, c, _) = exchange(&[], &socks_connect(2, &[1, 2, 3, 4], 9));
        assert_eq!(answer, [&[5, 0][..], &socks_reply(8)].concat());
        assert!(c.reason.unwrap().contains("address type 2"));
        // A request of another version: the methods were answered, nothing else.
        let mut v4 = socks_connect(1, &[127, 0, 0, 1], 9);
        v4[3] = 4;
        let (answer, c, _) = exchange(&["127.0.0.1:9"], &v4);
        assert_eq!(answer, [5, 0]);
        assert!(c.reason.unwrap().contains("version 4"));
        // No method without authentication among those offered.
        let (answer, c, _) = exchange(&[], &[5, 2, 1, 2]);
        assert_eq!(answer, [5, 0xff]);
        assert!(c
            .reason
            .unwrap()
            .contains("no method without authentication"));
        // The control: the same offer with 0 among them is accepted.
        let (answer, _, _) = exchange(&[], &[5, 3, 1, 2, 0]);
        assert_eq!(answer, [5, 0]);
    }

    #[test]
    fn http_connect_is_answered_200_then_relayed() {
        let (port, ep) = endpoint(b"tls bytes");
        let req = format!("CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: x\r\n\r\nhello");
        let (answer, c, served) = exchange(&[&format!("127.0.0.1:{port}")], req.as_bytes());
        served.unwrap();
        assert_eq!(
            text(&answer),
            "HTTP/1.1 200 Connection established\r\n\r\ntls bytes"
        );
        assert_eq!(ep.join().unwrap(), b"hello");
        assert_eq!(c.protocol, "connect");
        assert_eq!(
            (c.host.as_str(), c.port, c.allowed),
            ("127.0.0.1", port, true)
        );
        assert_eq!((c.bytes_out, c.bytes_in), (5, 9));
    }

    #[test]
    fn http_refusals_are_answered_with_a_status_and_the_reason() {
        let (answer, c, _) = exchange(&[], b"connect example.com:443 HTTP/1.1\r\n\r\n");
        let answer = text(&answer);
        assert!(answer.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{answer}");
        let body = "lasagna: example.com:443 is not on the allow-list\n";
        assert!(
            answer.ends_with(&format!(
                "Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )),
            "{answer}"
        );
        assert_eq!(
            (c.protocol, c.host.as_str(), c.port),
            ("connect", "example.com", 443)
        );
        let port = closed_port();
        let (answer, c, served) = exchange(
            &[&format!("127.0.0.1:{port}")],
            format!("CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n").as_bytes(),
        );
        assert!(text(&answer).starts_with("HTTP/1.1 502 Bad Gateway\r\n"));
        assert!(served.is_err() && c.allowed);
        for (req, status, why) in [
            (
                &b"CONNECT example.com HTTP/1.1\r\n\r\n"[..],
                "400",
                "is not host:port",
            ),
            (
                b"GET http://example.com/ HTTP/2\r\n\r\n",
                "400",
                "not an HTTP/1 request",
            ),
            (
                b"GET http://example.com/ HTTP/1.1 x\r\n\r\n",
                "400",
                "not an HTTP/1 request",
            ),
            (
                b"GET /index.html HTTP/1.1\r\n\r\n",
                "400",
                "not an absolute http:// URI",
            ),
            (
                b"GET http://:80/ HTTP/1.1\r\n\r\n",
                "400",
                "is not host[:port]",
            ),
        ] {
            let (answer, c, _) = exchange(&[], req);
            let answer = text(&answer);
            assert!(
                answer.starts_with(&format!("HTTP/1.1 {status} ")),
                "{answer}"
            );
            assert!(c.reason.as_deref().unwrap_or("").contains(why), "{c:?}");
            assert!(!c.allowed);
        }
    }

    #[test]
    fn a_request_head_over_the_limit_is_answered_431() {
        let mut big = b"GET http://example.com/ HTTP/1.1\r\nX: ".to_vec();
        big.resize(MAX_HEAD + 1, b'a');
        let (answer, c, _) = exchange(&[], &big);
        assert!(text(&answer).starts_with("HTTP/1.1 431 "));
        assert!(c.reason.unwrap().contains("16 KiB"));
        // The control: a head of exactly the limit is read whole, and decided.
        let mut fits = b"GET http://example.com/ HTTP/1.1\r\nX: ".to_vec();
        fits.resize(MAX_HEAD - 4, b'a');
        fits.extend_from_slice(b"\r\n\r\n");
        let (answer, c, _) = exchange(&[], &fits);
        assert!(
            text(&answer).starts_with("HTTP/1.1 403 "),
            "{}",
            text(&answer)
        );
        assert_eq!(c.host, "example.com");
    }

    #[test]
    fn an_absolute_uri_is_sent_on_in_origin_form_with_one_request() {
        let (port, ep) = endpoint(b"HTTP/1.0 204 No Content\r\n\r\n");
        let req = format!(
            "GET http://user:pw@127.0.0.1:{port}?q=1 HTTP/1.1\r\nProxy-Connection: keep-alive\r\nAccept: */*\r\nKeep-Alive: 5\r\nConnection: keep-alive\r\nProxy-Authorization: x\r\n\r\nbody"
        );
        let (answer, c, served) = exchange(&[&format!("127.0.0.1:{port}")], req.as_bytes());
        served.unwrap();
        assert_eq!(text(&answer), "HTTP/1.0 204 No Content\r\n\r\n");
        assert_eq!(
            text(&ep.join().unwrap()),
            format!("GET /?q=1 HTTP/1.1\r\nAccept: */*\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\nbody")
        );
        assert_eq!(
            (c.protocol, c.host.as_str(), c.port),
            ("http", "127.0.0.1", port)
        );
        // A Host header of the client's is kept, and none is added; a path stays as sent.
        let (port, ep) = endpoint(b"");
        let req = format!("GET HTTP://127.0.0.1:{port}/a/b HTTP/1.1\r\nhost: kept\r\n\r\n");
        exchange(&[&format!("127.0.0.1:{port}")], req.as_bytes())
            .2
            .unwrap();
        assert_eq!(
            text(&ep.join().unwrap()),
            "GET /a/b HTTP/1.1\r\nhost: kept\r\nConnection: close\r\n\r\n"
        );
        // Without a port the URI means 80.
        let (_, c, _) = exchange(&[], b"GET http://example.com HTTP/1.1\r\n\r\n");
        assert_eq!((c.host.as_str(), c.port), ("example.com", 80));
    }

    #[test]
    fn the_log_line_says_what_happened() {
        let mut c = Connection::new();
        assert_eq!(c.line(), "denied request");
        c.reason = Some("no\nrequest".into());
        assert_eq!(c.line(), "denied request: no\\nrequest");
        c = Connection {
            allowed: true,
            protocol: "connect",
            host: "example.com".into(),
            port: 443,
            address: Some("192.0.2.1:443".into()),
            bytes_out: 10 * 1024 - 1,
            bytes_in: 10 * 1024,
            duration_ms: 7,
            ..Connection::new()
        };
        assert_eq!(
            c.line(),
            "allowed CONNECT example.com:443 (192.0.2.1:443); 10239 B out, 10 KiB in, 7 ms"
        );
        c.protocol = "socks5";
        c.host = "::1".into();
        c.bytes_out = 10 * 1024 * 1024 - 1;
        c.bytes_in = 10 * 1024 * 1024;
        assert_eq!(
            c.line(),
            "allowed SOCKS5 [::1]:443 (192.0.2.1:443); 10239 KiB out, 10 MiB in, 7 ms"
        );
        c.protocol = "http";
        c.allowed = false;
        c.address = None;
        assert_eq!(c.line(), "denied HTTP [::1]:443");
    }

    #[test]
    fn the_log_keeps_clipped_fields_within_its_budget_and_counts_the_rest() {
        let (sh, _stop_w) = shared(&[]);
        let long = |n: usize| Connection {
            host: "h".repeat(n),
            reason: Some("r".repeat(n)),
            ..Connection::new()
        };
        sh.record(long(10_000));
        {
            let log = sh.log.lock().unwrap();
            let c = &log.connections[0];
            assert_eq!(
                (c.host.len(), c.reason.as_ref().unwrap().len()),
                (MAX_FIELD, MAX_FIELD)
            );
            assert_eq!(log.kept_bytes, 2 * MAX_FIELD);
        }
        // Fill the byte budget to exactly its end: the entry that fits is kept, the next
        // one is counted.
        let per = 2 * MAX_FIELD;
        let fits = MAX_LOG_BYTES / per - 1;
        for _ in 0..fits {
            sh.record(long(MAX_FIELD));
        }
        let rest = MAX_LOG_BYTES - (fits + 1) * per;
        sh.record(Connection {
            host: "h".repeat(rest),
            ..Connection::new()
        });
        sh.record(Connection {
            host: "h".into(),
            ..Connection::new()
        });
        let log = sh.log.lock().unwrap();
        assert_eq!(log.kept_bytes, MAX_LOG_BYTES);
        assert_eq!((log.connections.len(), log.unlogged), (fits + 2, 1));
    }

    #[test]
    fn the_log_keeps_at_most_its_number_of_connections() {
        let (sh, _stop_w) = shared(&[]);
        for _ in 0..MAX_LOGGED + 2 {
            sh.record(Connection::new());
        }
        let log = sh.log.lock().unwrap();
        assert_eq!((log.connections.len(), log.unlogged), (MAX_LOGGED, 2));
    }

    #[test]
    fn the_running_proxy_serves_the_listener_it_was_sent_and_logs_each_connection() {
        use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
        let (ours, childs) = socketpair(
            AddressFamily::Unix,
            SockType::Stream,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .unwrap();
        let (port, ep) = endpoint(b"pong");
        let running = start(
            ours,
            Settings {
                allow: list(&[&format!("127.0.0.1:{port}")]),
                log_stderr: false,
            },
        )
        .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let at = listener.local_addr().unwrap();
        crate::sys::send_fd(childs.as_fd(), listener.as_fd()).unwrap();
        drop(listener);
        let talk = |request: &[u8]| {
            let mut s = TcpStream::connect(at).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s.write_all(request).unwrap();
            s.shutdown(std::net::Shutdown::Write).unwrap();
            let mut answer = Vec::new();
            let _ = s.read_to_end(&mut answer);
            answer
        };
        let answer = talk(format!("CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\nping").as_bytes());
        assert_eq!(
            text(&answer),
            "HTTP/1.1 200 Connection established\r\n\r\npong"
        );
        assert_eq!(ep.join().unwrap(), b"ping");
        let answer = talk(b"CONNECT example.com:443 HTTP/1.1\r\n\r\n");
        assert!(text(&answer).starts_with("HTTP/1.1 403 "));
        // A connection that sends nothing, still open when the sandbox ends.
        let idle = TcpStream::connect(at).unwrap();
        // Until its thread runs and the two before it are logged (5 s at most).
        let settled = || {
            *running.shared.open.lock().unwrap() == 1
                && running.shared.log.lock().unwrap().connections.len() == 2
        };
        for _ in 0..500 {
            if settled() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(settled());
        let log = running.stop();
        drop(idle);
        let lines: Vec<String> = log.connections.iter().map(Connection::line).collect();
        assert_eq!(lines.len(), 3, "{lines:?}");
        // The two finished connections are logged as each relay ends, in either order;
        // the idle one when the proxy stops.
        let allowed =
            format!("allowed CONNECT 127.0.0.1:{port} (127.0.0.1:{port}); 4 B out, 4 B in");
        let denied = "denied CONNECT example.com:443: example.com:443 is not on the allow-list";
        assert!(
            lines[..2].iter().any(|l| l.starts_with(&allowed)),
            "{lines:?}"
        );
        assert!(lines[..2].iter().any(|l| l == denied), "{lines:?}");
        assert_eq!(lines[2], "denied request: no request");
        assert_eq!(log.unlogged, 0);
    }
}
