//! `--explain-denials` for Landlock: the kernel's audit records of Landlock denials (Linux
//! 6.15, ABI 7), read from the audit netlink socket's log multicast group. Reading them takes
//! CAP_AUDIT_READ in the initial user namespace (root), and the kernel writes them only when
//! audit is on; otherwise [`open_reader`] says which of these is missing and how to give it.

use std::collections::BTreeMap;
use std::os::fd::{AsFd, OwnedFd};

use nix::sys::socket::{
    bind, recv, sendto, socket, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol,
    SockType,
};

/// `AUDIT_GET`, `AUDIT_LANDLOCK_ACCESS`, `AUDIT_LANDLOCK_DOMAIN` (linux/audit.h).
const AUDIT_GET: u16 = 1000;
pub const LANDLOCK_ACCESS: u16 = 1423;
pub const LANDLOCK_DOMAIN: u16 = 1424;
/// `AUDIT_NLGRP_READLOG`: the multicast group of every record the kernel logs.
const NLGRP_READLOG: u32 = 1;
const NLMSG_HDRLEN: usize = 16;

/// The socket the records arrive on, or why there is none (one sentence with the fix).
pub fn open_reader(abi: u32) -> Result<OwnedFd, String> {
    if abi < 7 {
        return Err(format!(
            "landlock: denials are not listed: the kernel logs them from Landlock ABI 7 (Linux 6.15) on, and this one has ABI {abi}"
        ));
    }
    if !nix::unistd::geteuid().is_root() {
        return Err("landlock: denials are not listed: the kernel's audit records are readable only with CAP_AUDIT_READ (run lasagna as root; the sandbox still runs as an unprivileged uid)".into());
    }
    match audit_enabled() {
        Ok(true) => {}
        Ok(false) => {
            return Err("landlock: denials are not listed: audit is off on this host, so the kernel writes no records (`auditctl -e 1`, or boot with audit=1)".into())
        }
        Err(e) => {
            return Err(format!(
                "landlock: denials are not listed: the audit status cannot be read: {e}"
            ))
        }
    }
    let sock = audit_socket().map_err(|e| format!("landlock: denials are not listed: {e}"))?;
    bind(
        std::os::fd::AsRawFd::as_raw_fd(&sock),
        &NetlinkAddr::new(0, 1 << (NLGRP_READLOG - 1)),
    )
    .map_err(|e| format!("landlock: denials are not listed: join the audit log group: {e}"))?;
    Ok(sock)
}

fn audit_socket() -> Result<OwnedFd, String> {
    socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        SockProtocol::NetlinkAudit,
    )
    .map_err(|e| format!("open an audit netlink socket: {e}"))
}

/// `AUDIT_GET`'s `enabled` field (needs CAP_AUDIT_CONTROL, which root has).
fn audit_enabled() -> Result<bool, String> {
    let sock = audit_socket()?;
    let raw = std::os::fd::AsRawFd::as_raw_fd(&sock);
    let mut msg = [0u8; NLMSG_HDRLEN];
    msg[..4].copy_from_slice(&(NLMSG_HDRLEN as u32).to_ne_bytes());
    msg[4..6].copy_from_slice(&AUDIT_GET.to_ne_bytes());
    // NLM_F_REQUEST.
    msg[6..8].copy_from_slice(&1u16.to_ne_bytes());
    msg[8..12].copy_from_slice(&1u32.to_ne_bytes());
    sendto(raw, &msg, &NetlinkAddr::new(0, 0), MsgFlags::empty())
        .map_err(|e| format!("ask the kernel: {e}"))?;
    let mut buf = [0u8; 8192];
    for _ in 0..20 {
        let mut fds = [nix::poll::PollFd::new(
            sock.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        if nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(200u16)).unwrap_or(0) == 0 {
            break;
        }
        let n = recv(raw, &mut buf, MsgFlags::empty()).map_err(|e| format!("read: {e}"))?;
        for (kind, body) in messages(&buf[..n]) {
            match kind {
                AUDIT_GET if body.len() >= 8 => {
                    return Ok(u32::from_ne_bytes([body[4], body[5], body[6], body[7]]) != 0)
                }
                // NLMSG_ERROR: an error code (0 is an acknowledgement).
                2 if body.len() >= 4 => {
                    let code = i32::from_ne_bytes([body[0], body[1], body[2], body[3]]);
                    if code != 0 {
                        return Err(nix::errno::Errno::from_raw(-code).desc().to_string());
                    }
                }
                _ => {}
            }
        }
    }
    Err("no answer from the kernel".into())
}

/// The netlink messages in `buf`: each type and body.
pub fn messages(buf: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + NLMSG_HDRLEN <= buf.len() {
        let h = &buf[at..at + NLMSG_HDRLEN];
        let len = u32::from_ne_bytes([h[0], h[1], h[2], h[3]]) as usize;
        let kind = u16::from_ne_bytes([h[4], h[5]]);
        if len < NLMSG_HDRLEN || at + len > buf.len() {
            break;
        }
        out.push((kind, &buf[at + NLMSG_HDRLEN..at + len]));
        // NLMSG_ALIGN: 4 bytes.
        at += (len + 3) & !3;
    }
    out
}

/// One Landlock record: its type and its fields (`domain`, `blockers`, `path`, `pid`, ...).
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub kind: u16,
    pub fields: Vec<(String, String)>,
}

impl Record {
    /// A record's text, `audit(TIME:SERIAL): key=value ...`; `None` for other types.
    pub fn parse(kind: u16, body: &[u8]) -> Option<Record> {
        if kind != LANDLOCK_ACCESS && kind != LANDLOCK_DOMAIN {
            return None;
        }
        let text = String::from_utf8_lossy(body);
        let text = text.trim_end_matches('\0');
        let rest = text.split_once("): ").map_or(text, |(_, r)| r);
        Some(Record {
            kind,
            fields: fields(rest),
        })
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// `key=value` pairs; a value is quoted or plain (a path audit wrote in hex is decoded
/// where it is used: only paths are written that way).
fn fields(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = text.trim_start();
    while let Some(eq) = rest.find('=') {
        let key = rest[..eq].trim().to_string();
        let after = &rest[eq + 1..];
        let (value, next) = if let Some(q) = after.strip_prefix('"') {
            match q.find('"') {
                Some(end) => (q[..end].to_string(), &q[end + 1..]),
                None => (q.to_string(), ""),
            }
        } else {
            let end = after.find(' ').unwrap_or(after.len());
            (after[..end].to_string(), &after[end..])
        };
        out.push((key, value));
        rest = next.trim_start();
    }
    out
}

/// A path audit wrote in hex (it had a space, a quote or a control byte); other values as
/// they are.
fn unhex(v: &str) -> String {
    let is_hex =
        v.len() >= 2 && v.len().is_multiple_of(2) && v.bytes().all(|b| b.is_ascii_hexdigit());
    if !is_hex {
        return v.to_string();
    }
    let bytes: Option<Vec<u8>> = (0..v.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&v[i..i + 2], 16).ok())
        .collect();
    match bytes {
        Some(b) if b.iter().all(|c| *c >= 0x20 || *c == b'\t') => {
            String::from_utf8_lossy(&b).into_owned()
        }
        _ => v.to_string(),
    }
}

/// Distinct (domain, right, target) kinds a [`Tally`] keeps; later kinds are counted only.
pub const MAX_KINDS: usize = 256;
/// Domains a [`Tally`] remembers the creator of.
const MAX_DOMAINS: usize = 1024;
/// A target (a path the payload chose) is cut to this many bytes.
const MAX_TARGET: usize = 512;

/// The audit records read so far, folded as they arrive: the creator of each domain and a
/// count per kind of denial. Bounded whatever the payload makes the kernel log (a loop on
/// denied opens of ever new names): the supervisor keeps at most [`MAX_KINDS`] kinds of
/// [`MAX_TARGET`] bytes and counts the rest in `unlisted`.
#[derive(Debug, Default)]
pub struct Tally {
    /// Domain id to the pid that created it.
    domains: BTreeMap<String, String>,
    kinds: BTreeMap<(String, String, String), u64>,
    /// Denials of kinds beyond [`MAX_KINDS`] (or of domains beyond [`MAX_DOMAINS`]).
    pub unlisted: u64,
}

impl Tally {
    pub fn add(&mut self, r: &Record) {
        let Some(domain) = r.get("domain") else {
            return;
        };
        if r.kind == LANDLOCK_DOMAIN {
            if let Some(pid) = r.get("pid") {
                if self.domains.len() < MAX_DOMAINS || self.domains.contains_key(domain) {
                    self.domains.insert(domain.to_string(), pid.to_string());
                }
            }
            return;
        }
        if r.kind != LANDLOCK_ACCESS {
            return;
        }
        let what = r.get("blockers").unwrap_or("?").to_string();
        let mut target = match (r.get("path"), r.get("daddr"), r.get("dest")) {
            (Some(p), _, _) => unhex(p),
            (None, Some(a), Some(p)) => format!("{a}:{p}"),
            (None, None, Some(p)) => format!("port {p}"),
            _ => r
                .fields
                .iter()
                .filter(|(k, _)| k != "domain" && k != "blockers")
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" "),
        };
        crate::text::clip(&mut target, MAX_TARGET);
        let key = (domain.to_string(), what, target);
        if let Some(n) = self.kinds.get_mut(&key) {
            *n += 1;
        } else if self.kinds.len() < MAX_KINDS {
            self.kinds.insert(key, 1);
        } else {
            self.unlisted += 1;
        }
    }

    /// The denials of the domains `pid` created, counted by (what was blocked, on what).
    pub fn of(&self, pid: u32) -> BTreeMap<(String, String), u64> {
        let pid = pid.to_string();
        let mut out = BTreeMap::new();
        for ((domain, what, target), n) in &self.kinds {
            if self.domains.get(domain) == Some(&pid) {
                *out.entry((what.clone(), target.clone())).or_insert(0) += n;
            }
        }
        out
    }
}

/// The denials of the domains `pid` created, counted by (what was blocked, on what).
pub fn denials(records: &[Record], pid: u32) -> BTreeMap<(String, String), u64> {
    let mut t = Tally::default();
    for r in records {
        t.add(r);
    }
    t.of(pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(kind: u16, text: &str) -> Record {
        Record::parse(kind, text.as_bytes()).unwrap()
    }

    #[test]
    fn records_of_the_payloads_domain_are_counted() {
        let records = vec![
            rec(LANDLOCK_ACCESS, "audit(1.0:938): domain=11b320341 blockers=fs.read_file path=\"/etc/hostname\" dev=\"vda\" ino=611"),
            rec(LANDLOCK_DOMAIN, "audit(1.0:938): domain=11b320341 status=allocated mode=enforcing pid=873 uid=0 exe=\"/usr/bin/python3\" comm=\"python3\""),
            rec(LANDLOCK_ACCESS, "audit(1.0:939): domain=11b320341 blockers=fs.read_file path=\"/etc/hostname\" dev=\"vda\" ino=611"),
            rec(LANDLOCK_ACCESS, "audit(1.0:940): domain=11b320341 blockers=net.connect_tcp daddr=127.0.0.1 dest=80"),
            rec(LANDLOCK_ACCESS, "audit(1.0:941): domain=11b320341 blockers=fs.write_file path=2F746D702F6120622063 dev=\"vda\" ino=1"),
            // Another sandbox's domain.
            rec(LANDLOCK_ACCESS, "audit(1.0:950): domain=99 blockers=fs.read_file path=\"/x\""),
            rec(LANDLOCK_DOMAIN, "audit(1.0:950): domain=99 status=allocated mode=enforcing pid=5 uid=0"),
        ];
        let d = denials(&records, 873);
        let get = |w: &str, t: &str| d.get(&(w.to_string(), t.to_string())).copied();
        assert_eq!(get("fs.read_file", "/etc/hostname"), Some(2));
        assert_eq!(get("net.connect_tcp", "127.0.0.1:80"), Some(1));
        assert_eq!(get("fs.write_file", "/tmp/a b c"), Some(1));
        assert_eq!(d.len(), 3);
        assert!(denials(&records, 1).is_empty());
    }

    #[test]
    fn the_tally_keeps_a_bounded_number_of_kinds_and_counts_the_rest() {
        let mut t = Tally::default();
        t.add(&rec(
            LANDLOCK_DOMAIN,
            "audit(1.0:1): domain=7 status=allocated mode=enforcing pid=42 uid=0",
        ));
        let long = "a".repeat(4000);
        for i in 0..MAX_KINDS + 500 {
            let text = format!("audit(1.0:2): domain=7 blockers=fs.read_file path=\"/{i}/{long}\"");
            t.add(&rec(LANDLOCK_ACCESS, &text));
        }
        let d = t.of(42);
        assert_eq!(d.len(), MAX_KINDS);
        assert!(d.keys().all(|(_, target)| target.len() <= MAX_TARGET));
        assert_eq!(t.unlisted, 500);
    }

    #[test]
    fn netlink_messages_are_framed_and_other_types_ignored() {
        let mut buf = Vec::new();
        for (kind, text) in [
            (1300u16, "audit(1:2): arch=c000003e"),
            (
                LANDLOCK_ACCESS,
                "audit(1:2): domain=1 blockers=fs.execute path=\"/w/x\"",
            ),
        ] {
            let len = NLMSG_HDRLEN + text.len();
            buf.extend_from_slice(&(len as u32).to_ne_bytes());
            buf.extend_from_slice(&kind.to_ne_bytes());
            buf.extend_from_slice(&[0; 10]);
            buf.extend_from_slice(text.as_bytes());
            while !buf.len().is_multiple_of(4) {
                buf.push(0);
            }
        }
        let m = messages(&buf);
        assert_eq!(m.len(), 2);
        let recs: Vec<Record> = m.iter().filter_map(|(k, b)| Record::parse(*k, b)).collect();
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].get("path"), Some("/w/x"));
        assert_eq!(unhex("2F746D70"), "/tmp");
        assert_eq!(recs[0].get("blockers"), Some("fs.execute"));
    }
}
