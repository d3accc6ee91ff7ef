//! The `network` layer: which network the sandbox gets.
//!
//! ```yaml
//! network:
//!   mode: required
//!   net: proxy           # none | host | user | proxy
//!   allow:               # proxy: the endpoints it lets through
//!     - registry.npmjs.org:443
//!     - "*.pythonhosted.org:443"
//! ```
//! - `none`: a network namespace of its own with only its loopback (created by this layer,
//!   with a user namespace of its own when not root and the namespaces layer is off).
//! - `host`: no network namespace: the host's interfaces, its loopback services and its
//!   abstract unix sockets are reachable. Landlock's TCP rules, seccomp's socket rules and
//!   Landlock's abstract-socket scope still apply.
//! - `user`: a network namespace of its own connected to the host's stack by `pasta`
//!   (outbound TCP and UDP as the host's sockets; the host's loopback is not mapped in),
//!   with optional inbound TCP forwards ([`pasta`]).
//! - `proxy`: a network namespace with only its loopback, where a listening socket the
//!   child opens is served from the host side by lasagna's HTTP CONNECT / HTTP / SOCKS5
//!   proxy ([`proxy`]): the allow-list is the only way out, names are resolved by the
//!   proxy, and a resolved address is checked against the entry.
//!
//! The layer owns the network namespace when its section is present: `net: host` leaves out
//! the one the namespaces layer would create, and says so.

pub mod pasta;
pub mod proxy;

use std::net::IpAddr;
use std::path::PathBuf;

use serde::Deserialize;

use crate::launch::Decision;
use crate::types::{Loc, ProfileError, Requirement, Spanned};

// ---- section: the profile's `network:` as written, and its check ---------------------

#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Section {
    pub mode: Option<Requirement>,
    /// `none` (default; `proxy` when `allow` has entries), `host`, `user` or `proxy`.
    pub net: Option<Spanned<String>>,
    /// Endpoints the `proxy` mode lets through.
    #[serde(default)]
    pub allow: Vec<Spanned<String>>,
    /// `proxy`: the loopback port inside where the proxy listens (default 3128).
    pub proxy_port: Option<Spanned<u32>>,
    /// `user`: inbound TCP forwards, `PORT` or `HOSTPORT:PORT` (the host's loopback port
    /// HOSTPORT reaches PORT inside).
    #[serde(default)]
    pub forward: Vec<Spanned<String>>,
}

crate::merge_fields!(Section {
    mode: or,
    net: or,
    allow: append,
    proxy_port: or,
    forward: append
});

/// The proxy's port inside when the profile names none (Squid's, which HTTP clients and
/// their users recognise).
pub const DEFAULT_PROXY_PORT: u16 = 3128;

/// What the sandbox's network is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Net {
    None,
    Host,
    User,
    Proxy,
}

impl Net {
    pub fn name(self) -> &'static str {
        match self {
            Net::None => "none",
            Net::Host => "host",
            Net::User => "user",
            Net::Proxy => "proxy",
        }
    }

    pub fn parse(s: &str) -> Result<Net, String> {
        match s {
            "none" => Ok(Net::None),
            "host" => Ok(Net::Host),
            "user" => Ok(Net::User),
            "proxy" => Ok(Net::Proxy),
            other => Err(format!(
                "unknown net {other:?}{}; one of none, host, user, proxy",
                crate::text::did_you_mean(other, ["none", "host", "user", "proxy"].into_iter())
            )),
        }
    }
}

/// The checked section.
#[derive(Debug, Clone)]
pub struct Config {
    pub mode: Requirement,
    pub net: Net,
    pub allow: Vec<Entry>,
    pub proxy_port: u16,
    /// `user`: inbound TCP forwards (host loopback port, port inside).
    pub forward: Vec<(u16, u16)>,
}

impl Config {
    /// Whether the mode has a network namespace of its own (every one but `host`).
    pub fn net_needs_namespace(&self) -> bool {
        self.net != Net::Host
    }

    /// `proxy`: the port the proxy listens on inside.
    pub fn proxy_listen(&self) -> Option<u16> {
        (self.net == Net::Proxy).then_some(self.proxy_port)
    }

    /// A section of its own for `run --net` / `--allow`: required.
    pub fn required(net: Net, allow: Vec<Entry>) -> Config {
        Config {
            mode: Requirement::Required,
            net,
            allow,
            proxy_port: DEFAULT_PROXY_PORT,
            forward: Vec::new(),
        }
    }
}

/// One allow-list entry: a host pattern and an inclusive port range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub host: HostPattern,
    pub ports: (u16, u16),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// An exact name, lower case.
    Name(String),
    /// `*.domain`: any name below `domain` (not `domain` itself), lower case.
    Below(String),
    /// `address` or `address/prefix`.
    Net(IpAddr, u8),
}

impl HostPattern {
    /// Whether a name (as the client asked for it) matches.
    pub fn matches_name(&self, name: &str) -> bool {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        match self {
            HostPattern::Name(n) => *n == name,
            HostPattern::Below(d) => {
                name.len() > d.len() + 1
                    && name.ends_with(d.as_str())
                    && name[..name.len() - d.len()].ends_with('.')
            }
            HostPattern::Net(..) => name.parse::<IpAddr>().is_ok_and(|a| self.matches_addr(a)),
        }
    }

    /// Whether an address is inside an `address/prefix` entry.
    pub fn matches_addr(&self, addr: IpAddr) -> bool {
        let HostPattern::Net(net, prefix) = self else {
            return false;
        };
        match (net, addr) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(*prefix)).unwrap_or(0);
                u32::from(*n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(*prefix)).unwrap_or(0);
                u128::from(*n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

impl Entry {
    pub fn allows_port(&self, port: u16) -> bool {
        (self.ports.0..=self.ports.1).contains(&port)
    }
}

fn parse_port(s: &str) -> Result<u16, String> {
    match s.parse::<u32>() {
        Ok(0) => Err("port 0 is not a port".into()),
        Ok(p) if p <= 65535 => Ok(p as u16),
        Ok(p) => Err(format!("port {p} is above 65535")),
        Err(_) => Err(format!("{s:?} is not a port number")),
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// `host:port`, `host:first-last`, `*.domain:port`, `address/prefix:port`, `[v6]:port`.
pub fn parse_entry(raw: &str) -> Result<Entry, String> {
    let (host, ports) = if let Some(rest) = raw.strip_prefix('[') {
        let (h, p) = rest
            .split_once("]:")
            .ok_or_else(|| format!("{raw:?}: an IPv6 entry is [address]:port"))?;
        (h, p)
    } else {
        raw.rsplit_once(':')
            .ok_or_else(|| format!("{raw:?} has no port: write host:port"))?
    };
    let ports = match ports.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (parse_port(a)?, parse_port(b)?);
            if a > b {
                return Err(format!("{raw:?}: the port range {a}-{b} is empty"));
            }
            (a, b)
        }
        None => {
            let p = parse_port(ports)?;
            (p, p)
        }
    };
    let host = if let Some((addr, prefix)) = host.split_once('/') {
        let a: IpAddr = addr
            .parse()
            .map_err(|_| format!("{raw:?}: {addr:?} is not an address"))?;
        let max = if a.is_ipv4() { 32 } else { 128 };
        let p: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= max)
            .ok_or_else(|| format!("{raw:?}: prefix {prefix:?} is not 0-{max}"))?;
        HostPattern::Net(a, p)
    } else if let Ok(a) = host.parse::<IpAddr>() {
        HostPattern::Net(a, if a.is_ipv4() { 32 } else { 128 })
    } else if let Some(domain) = host.strip_prefix("*.") {
        if !valid_name(domain) {
            return Err(format!("{raw:?}: {domain:?} is not a domain name"));
        }
        HostPattern::Below(domain.to_ascii_lowercase())
    } else {
        if !valid_name(host) {
            return Err(format!(
                "{raw:?}: {host:?} is not a host name (a wildcard is written *.domain)"
            ));
        }
        HostPattern::Name(host.to_ascii_lowercase())
    };
    Ok(Entry { host, ports })
}

impl Section {
    fn checked(&self) -> Result<Config, ProfileError> {
        let net = match &self.net {
            Some(n) => Net::parse(&n.value).map_err(|m| {
                ProfileError::at(Loc::of(n), m)
                    .hint("net: none (loopback only), host, user (pasta) or proxy (allow-list)")
            })?,
            None if !self.allow.is_empty() => Net::Proxy,
            None => Net::None,
        };
        let mut allow = Vec::new();
        for e in &self.allow {
            allow.push(
                parse_entry(&e.value)
                    .map_err(|m| ProfileError::at(Loc::of(e), format!("allow: {m}")))?,
            );
        }
        if let (Some(first), false) = (self.allow.first(), net == Net::Proxy) {
            return Err(ProfileError::at(
                Loc::of(first),
                format!("allow: entries are the proxy's, and net is {}", net.name()),
            )
            .hint(
                "net: proxy, or remove allow (with net: host, landlock's net: connect lists ports)",
            ));
        }
        let proxy_port = match &self.proxy_port {
            None => DEFAULT_PROXY_PORT,
            Some(p) if net != Net::Proxy => {
                return Err(ProfileError::at(
                    Loc::of(p),
                    format!(
                        "proxy-port applies to net: proxy, and net is {}",
                        net.name()
                    ),
                ))
            }
            Some(p) => parse_port(&p.value.to_string())
                .map_err(|m| ProfileError::at(Loc::of(p), format!("proxy-port: {m}")))?,
        };
        let mut forward = Vec::new();
        for f in &self.forward {
            if net != Net::User {
                return Err(ProfileError::at(
                    Loc::of(f),
                    format!("forward applies to net: user, and net is {}", net.name()),
                ));
            }
            forward.push(
                parse_forward(&f.value)
                    .map_err(|m| ProfileError::at(Loc::of(f), format!("forward: {m}")))?,
            );
        }
        Ok(Config {
            mode: self.mode.unwrap_or_default(),
            net,
            allow,
            proxy_port,
            forward,
        })
    }
}

/// `PORT` or `HOSTPORT:PORT`.
pub fn parse_forward(raw: &str) -> Result<(u16, u16), String> {
    match raw.split_once(':') {
        Some((h, p)) => Ok((parse_port(h)?, parse_port(p)?)),
        None => {
            let p = parse_port(raw)?;
            Ok((p, p))
        }
    }
}

impl crate::types::LayerSection for Section {
    type Config = Config;
    fn validate(&self, _dir: &std::path::Path) -> Result<Config, ProfileError> {
        self.checked()
    }
}

// ---- plan: what the layer asks of the launch ---------------------------------------------

/// What the plan does for this layer.
#[derive(Debug)]
pub struct Plan {
    pub decision: Decision,
    /// Whether the sandbox gets a network namespace of its own.
    pub own_netns: bool,
    /// The network the sandbox gets: the profile's, or `none` where `user` degraded.
    pub net: Net,
    /// `user`: the pasta binary that connects the namespace.
    pub pasta: Option<PathBuf>,
    pub notes: Vec<String>,
}

/// The layer's decision; `ns_has_net`: the namespaces layer would create a network
/// namespace; `pasta`: where the host has pasta, if it has it; `tun`: this user can open
/// `/dev/net/tun`.
pub fn plan(cfg: &Config, ns_has_net: bool, pasta: Option<&std::path::Path>, tun: bool) -> Plan {
    let mut notes = Vec::new();
    let mut decision = Decision::Apply;
    let mut net = cfg.net;
    let mut pasta_bin = None;
    match cfg.net {
        Net::None => {}
        Net::Host => {
            if ns_has_net {
                notes.push(
                    "net: host: the namespaces layer's network namespace is not created".into(),
                );
            }
        }
        Net::User => {
            let missing = match pasta {
                None => Some((
                    "net: user needs pasta, which is not installed here",
                    "install it (apt-get install passt), or use net: proxy with an allow-list",
                )),
                Some(_) if !tun => Some((
                    "net: user needs /dev/net/tun, which this user cannot open",
                    "as root: chmod 0666 /dev/net/tun (the mode udev gives it), or use net: proxy",
                )),
                Some(p) => {
                    notes.push(format!("pasta: {}", p.display()));
                    pasta_bin = Some(p.to_path_buf());
                    None
                }
            };
            match missing {
                Some((why, fix)) if cfg.mode == Requirement::BestEffort => {
                    decision = Decision::Degrade(format!(
                        "{why} (fix: {fix}): the sandbox gets net: none"
                    ));
                    net = Net::None;
                }
                Some((why, fix)) => decision = Decision::Refuse(format!("{why} (fix: {fix})")),
                None => {}
            }
        }
        Net::Proxy => {
            notes.push(format!(
                "proxy on 127.0.0.1:{} inside, {} allow-list entr{}",
                cfg.proxy_port,
                cfg.allow.len(),
                if cfg.allow.len() == 1 { "y" } else { "ies" }
            ));
            if cfg.allow.is_empty() {
                notes.push(
                    "the allow-list is empty: every connection is refused (and logged)".into(),
                );
            }
        }
    }
    Plan {
        decision,
        own_netns: net != Net::Host,
        net,
        pasta: pasta_bin,
        notes,
    }
}

/// `proxy`: the variables that point HTTP clients at the proxy (both cases, as curl, pip,
/// git, npm and Go read one or the other); `NO_PROXY` is removed, since nothing inside is
/// reachable but through the proxy.
pub fn proxy_env(envp: &mut Vec<std::ffi::CString>, port: u16) {
    const NAMES: [&str; 8] = [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "NO_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "no_proxy",
    ];
    envp.retain(|e| {
        let name = e
            .to_bytes()
            .split(|b| *b == b'=')
            .next()
            .unwrap_or_default();
        !NAMES.iter().any(|n| n.as_bytes() == name)
    });
    let http = format!("http://127.0.0.1:{port}");
    let socks = format!("socks5h://127.0.0.1:{port}");
    for (name, value) in [
        ("HTTP_PROXY", &http),
        ("HTTPS_PROXY", &http),
        ("ALL_PROXY", &socks),
        ("http_proxy", &http),
        ("https_proxy", &http),
        ("all_proxy", &socks),
    ] {
        if let Ok(c) = std::ffi::CString::new(format!("{name}={value}")) {
            envp.push(c);
        }
    }
    envp.sort();
}

// ---- explain -------------------------------------------------------------------------

impl std::fmt::Display for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.host {
            HostPattern::Name(n) => write!(f, "{n}")?,
            HostPattern::Below(d) => write!(f, "*.{d}")?,
            HostPattern::Net(a, p) if (a.is_ipv4() && *p == 32) || *p == 128 => match a {
                IpAddr::V6(_) => write!(f, "[{a}]")?,
                IpAddr::V4(_) => write!(f, "{a}")?,
            },
            HostPattern::Net(a, p) => write!(f, "{a}/{p}")?,
        }
        match self.ports {
            (a, b) if a == b => write!(f, ":{a}"),
            (a, b) => write!(f, ":{a}-{b}"),
        }
    }
}

/// `doctor`'s lines: (supported, what, fix) for each mode on this host. `netns`: this user
/// can have a network namespace (root, or user namespaces).
pub fn doctor(
    pasta: Option<&std::path::Path>,
    tun: bool,
    netns: bool,
) -> Vec<(bool, String, Option<String>)> {
    [Net::None, Net::Host, Net::User]
        .into_iter()
        .flat_map(|net| needs(net, pasta, tun, netns))
        .collect()
}

/// What `net` needs of this host, as `doctor`'s lines: (the host gives it, what, fix).
/// `none` and `proxy` need the same (a network namespace), and share a line.
pub fn needs(
    net: Net,
    pasta: Option<&std::path::Path>,
    tun: bool,
    netns: bool,
) -> Vec<(bool, String, Option<String>)> {
    match net {
        Net::None | Net::Proxy => vec![(
            netns,
            "net: none and net: proxy: a network namespace of its own (the proxy is lasagna's own, nothing to install)".to_string(),
            (!netns).then(|| {
                "see namespaces above: a network namespace needs a user namespace when not root"
                    .to_string()
            }),
        )],
        Net::Host => vec![(
            true,
            "net: host: always (no namespace; Landlock's TCP rules and seccomp still apply)"
                .to_string(),
            None,
        )],
        Net::User => match pasta {
            None => vec![(
                false,
                "net: user: pasta is not installed".into(),
                Some("apt-get install passt".into()),
            )],
            Some(p) => {
                let version = pasta::version(p).unwrap_or_else(|| "version unknown".into());
                let mut out = vec![(
                    true,
                    format!("net: user: pasta at {} ({version})", p.display()),
                    None,
                )];
                if !tun {
                    out.push((
                        false,
                        "net: user: this user cannot open /dev/net/tun, which pasta needs (udev makes it 0666; this system left it 0600)".into(),
                        Some("as root: chmod 0666 /dev/net/tun".into()),
                    ));
                }
                out
            }
        },
    }
}

pub fn explain(cfg: &Config) -> Vec<String> {
    match cfg.net {
        Net::None => vec![
            "net: none: a network namespace of its own with only its loopback".into(),
            "stops: reaching any host network, its loopback services and its abstract unix sockets"
                .into(),
        ],
        Net::Host => vec![
            "net: host: the sandbox shares the host's network".into(),
            "does NOT stop: connecting to the host's loopback services (databases, agents, \
             admin ports) and to its abstract unix sockets, or reaching every network the host \
             reaches; only Landlock's TCP rules, its abstract-socket scope and seccomp's socket \
             rules still hold"
                .into(),
        ],
        Net::User => {
            let mut lines = vec![
                "net: user: a network namespace of its own, connected by pasta to the host's stack: \
                 outbound TCP and UDP leave as the host's own sockets"
                    .into(),
                "stops: the host's loopback services (pasta runs with --no-map-gw and no \
                 namespace-to-host forwards) and its abstract unix sockets"
                    .into(),
                "does NOT stop: reaching every address the host reaches, including the host's \
                 other addresses and its LAN; use net: proxy to name the endpoints"
                    .into(),
            ];
            for (h, p) in &cfg.forward {
                lines.push(format!(
                    "inbound: the host's 127.0.0.1:{h} reaches port {p} inside"
                ));
            }
            lines
        }
        Net::Proxy => {
            let mut lines = vec![
                format!(
                    "net: proxy: a network namespace with only its loopback; lasagna's proxy \
                     (HTTP CONNECT, HTTP, SOCKS5) listens on 127.0.0.1:{} inside and is the \
                     only way out; HTTP_PROXY, HTTPS_PROXY and ALL_PROXY point at it",
                    cfg.proxy_port
                ),
                "names are resolved by the proxy on the host side (no DNS inside); a name entry \
                 never reaches a loopback, link-local or host-own address unless the name is \
                 localhost or *.localhost; an address entry reaches exactly what it covers"
                    .into(),
            ];
            if cfg.allow.is_empty() {
                lines.push("allow: nothing (every connection is refused and logged)".into());
            } else {
                let list: Vec<String> = cfg.allow.iter().map(Entry::to_string).collect();
                lines.push(format!("allow: {}", list.join(", ")));
            }
            lines.push(
                "stops: every connection that is not to an entry, a program that ignores the \
                 proxy variables (it has no route out), DNS lookups from inside"
                    .into(),
            );
            lines
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_parse_and_match() {
        let e = parse_entry("api.example.com:443").unwrap();
        assert_eq!(e.host, HostPattern::Name("api.example.com".into()));
        assert!(e.allows_port(443) && !e.allows_port(80));
        let w = parse_entry("*.example.com:8000-8100").unwrap();
        assert!(w.host.matches_name("a.example.com"));
        assert!(w.host.matches_name("a.b.EXAMPLE.com."));
        assert!(
            !w.host.matches_name("example.com"),
            "the bare domain is not below itself"
        );
        assert!(
            !w.host.matches_name("badexample.com"),
            "a sibling is not below"
        );
        assert!(w.allows_port(8050) && !w.allows_port(8101));
        let n = parse_entry("10.1.0.0/16:5432").unwrap();
        assert!(n.host.matches_addr("10.1.200.3".parse().unwrap()));
        assert!(!n.host.matches_addr("10.2.0.1".parse().unwrap()));
        assert!(!n.host.matches_addr("::1".parse().unwrap()));
        let six = parse_entry("[::1]:80").unwrap();
        assert!(six.host.matches_addr("::1".parse().unwrap()));
        let one = parse_entry("127.0.0.1:8080").unwrap();
        assert!(one.host.matches_addr("127.0.0.1".parse().unwrap()));
        assert!(!one.host.matches_addr("127.0.0.2".parse().unwrap()));
    }

    #[test]
    fn bad_entries_say_why() {
        for (raw, why) in [
            ("example.com", "no port"),
            ("example.com:0", "port 0"),
            ("example.com:70000", "above 65535"),
            ("example.com:90-80", "empty"),
            ("exa mple.com:80", "not a host name"),
            ("*.:80", "not a domain"),
            ("10.0.0.0/33:80", "prefix"),
            ("[::1:80", "IPv6"),
        ] {
            let err = parse_entry(raw).unwrap_err();
            assert!(err.contains(why), "{raw}: {err}");
        }
    }

    fn at<T>(value: T, line: u64) -> Spanned<T> {
        Spanned {
            value,
            loc: Loc::at(line, 3),
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn prefixes_cover_exactly_their_range() {
        let covers =
            |entry: &str, addr: &str| parse_entry(entry).unwrap().host.matches_addr(ip(addr));
        // /0 is everything of its family, and only of its family.
        assert!(covers("0.0.0.0/0:1", "203.0.113.7") && covers("0.0.0.0/0:1", "255.255.255.255"));
        assert!(!covers("0.0.0.0/0:1", "::1"));
        assert!(covers("::/0:1", "2001:db8::1") && !covers("::/0:1", "10.0.0.1"));
        // The edges of a v4 and a v6 network.
        assert!(covers("10.1.0.0/16:1", "10.1.0.0") && covers("10.1.0.0/16:1", "10.1.255.255"));
        assert!(!covers("10.1.0.0/16:1", "10.0.255.255") && !covers("10.1.0.0/16:1", "10.2.0.0"));
        assert!(covers("192.0.2.0/31:1", "192.0.2.1") && !covers("192.0.2.0/31:1", "192.0.2.2"));
        assert!(
            covers("128.0.0.0/1:1", "200.0.0.1") && !covers("128.0.0.0/1:1", "127.255.255.255")
        );
        assert!(covers("fd00::/8:1", "fdff:ffff::1") && !covers("fd00::/8:1", "fe00::1"));
        assert!(covers("2001:db8::/64:1", "2001:db8::ffff:ffff:ffff:ffff"));
        assert!(!covers("2001:db8::/64:1", "2001:db8:0:1::"));
        assert!(
            covers("[2001:db8::1]:1", "2001:db8::1") && !covers("[2001:db8::1]:1", "2001:db8::2")
        );
        // A name pattern covers no address.
        assert!(!covers("example.com:1", "10.0.0.1"));
    }

    #[test]
    fn names_match_case_and_trailing_dot_blind_and_addresses_as_literals() {
        let name = parse_entry("API.Example.com:443").unwrap().host;
        assert_eq!(name, HostPattern::Name("api.example.com".into()));
        assert!(name.matches_name("api.example.COM.") && name.matches_name("api.example.com"));
        assert!(!name.matches_name("x.api.example.com") && !name.matches_name("api.example.co"));
        let below = parse_entry("*.Example.COM:443").unwrap().host;
        assert_eq!(below, HostPattern::Below("example.com".into()));
        assert!(below.matches_name("a.example.com") && !below.matches_name(".example.com"));
        assert!(!below.matches_name("a.example.org"));
        // An address pattern matches a name that is its address literal.
        let net = parse_entry("10.0.0.0/8:1").unwrap().host;
        assert!(net.matches_name("10.9.8.7") && !net.matches_name("11.0.0.1"));
        assert!(!net.matches_name("ten.example"));
        assert!(!below.matches_addr(ip("10.0.0.1")));
    }

    #[test]
    fn a_port_range_includes_both_ends() {
        let e = parse_entry("example.com:8000-8010").unwrap();
        assert_eq!(e.ports, (8000, 8010));
        assert!(e.allows_port(8000) && e.allows_port(8010));
        assert!(!e.allows_port(7999) && !e.allows_port(8011));
        let one = parse_entry("example.com:1-1").unwrap();
        assert!(one.allows_port(1) && !one.allows_port(2));
        assert_eq!(
            parse_entry("example.com:65535").unwrap().ports,
            (65535, 65535)
        );
        assert_eq!(parse_entry("[::1]:80-90").unwrap().ports, (80, 90));
        for (raw, why) in [
            ("example.com:65536", "above 65535"),
            ("example.com:x", "\"x\" is not a port number"),
            ("example.com:-5", "\"\" is not a port number"),
            ("example.com:80-", "\"\" is not a port number"),
            ("example.com:0-5", "port 0"),
        ] {
            assert!(parse_entry(raw).unwrap_err().contains(why), "{raw}");
        }
    }

    #[test]
    fn host_names_follow_dns_label_rules() {
        let ok = |host: &str| parse_entry(&format!("{host}:1")).is_ok();
        let label = "a".repeat(63);
        assert!(ok(&label) && !ok(&"a".repeat(64)));
        // 253 bytes in all is the longest name.
        let name = format!("{label}.{label}.{label}.{}", "b".repeat(61));
        assert_eq!(name.len(), 253);
        assert!(ok(&name) && !ok(&format!("{name}b")));
        assert!(ok("a-b.example") && ok("x1.example"));
        for bad in [
            "-a.example",
            "a-.example",
            "a..example",
            "a_b.example",
            "é.example",
            "a.example.",
        ] {
            assert!(!ok(bad), "{bad}");
        }
        assert!(parse_entry("*.-a.example:1")
            .unwrap_err()
            .contains("not a domain name"));
        assert!(parse_entry(":1").unwrap_err().contains("not a host name"));
    }

    #[test]
    fn address_entries_check_their_address_and_prefix() {
        assert_eq!(
            parse_entry("10.0.0.0/0:1").unwrap().host,
            HostPattern::Net(ip("10.0.0.0"), 0)
        );
        assert_eq!(
            parse_entry("10.0.0.0/32:1").unwrap().host,
            HostPattern::Net(ip("10.0.0.0"), 32)
        );
        assert_eq!(
            parse_entry("[fd00::/128]:1").unwrap().host,
            HostPattern::Net(ip("fd00::"), 128)
        );
        assert_eq!(
            parse_entry("::1:80").unwrap().host,
            HostPattern::Net(ip("::1"), 128)
        );
        assert!(parse_entry("[fd00::/129]:1")
            .unwrap_err()
            .contains("prefix \"129\" is not 0-128"));
        assert!(parse_entry("10.0.0.0/x:1")
            .unwrap_err()
            .contains("is not 0-32"));
        assert!(parse_entry("10.0.0/8:1")
            .unwrap_err()
            .contains("\"10.0.0\" is not an address"));
    }

    #[test]
    fn entries_are_shown_as_written() {
        for raw in [
            "api.example.com:443",
            "*.example.org:8000-8100",
            "10.0.0.0/8:5432",
            "127.0.0.1:80",
            "[::1]:80",
            "fd00::/8:1-2",
        ] {
            assert_eq!(parse_entry(raw).unwrap().to_string(), raw);
        }
    }

    #[test]
    fn net_names_parse_back_and_unknown_ones_are_refused() {
        for net in [Net::None, Net::Host, Net::User, Net::Proxy] {
            assert_eq!(Net::parse(net.name()), Ok(net));
        }
        let e = Net::parse("proxi").unwrap_err();
        assert!(
            e.contains("did you mean") && e.contains("one of none, host, user, proxy"),
            "{e}"
        );
    }

    #[test]
    fn the_section_is_checked_against_its_net() {
        let sec = |net: Option<&str>| Section {
            net: net.map(|n| at(n.to_string(), 2)),
            ..Section::default()
        };
        let c = sec(None).checked().unwrap();
        assert_eq!(
            (c.net, c.proxy_port, c.mode),
            (Net::None, DEFAULT_PROXY_PORT, Requirement::default())
        );
        assert_eq!(c.proxy_listen(), None);
        assert!(c.net_needs_namespace());
        // allow alone means proxy.
        let c = Section {
            allow: vec![at("example.com:443".into(), 4)],
            proxy_port: Some(at(8080, 5)),
            ..sec(None)
        }
        .checked()
        .unwrap();
        assert_eq!(c.net, Net::Proxy);
        assert_eq!(c.allow, vec![parse_entry("example.com:443").unwrap()]);
        assert_eq!(c.proxy_listen(), Some(8080));
        assert!(!sec(Some("host")).checked().unwrap().net_needs_namespace());
        let c = Section {
            forward: vec![at("8080".into(), 6), at("2222:22".into(), 7)],
            mode: Some(Requirement::BestEffort),
            ..sec(Some("user"))
        }
        .checked()
        .unwrap();
        assert_eq!(c.forward, vec![(8080, 8080), (2222, 22)]);
        assert_eq!(c.mode, Requirement::BestEffort);
        // Each error is at its value.
        let err = |s: Section| {
            let e = s.checked().unwrap_err();
            (e.loc.map(|l| l.line), e.message)
        };
        let (line, m) = err(sec(Some("proxi")));
        assert!(line == Some(2) && m.contains("unknown net"), "{m}");
        let (line, m) = err(Section {
            allow: vec![at("example.com:443".into(), 4)],
            ..sec(Some("host"))
        });
        assert!(
            line == Some(4) && m.contains("allow: entries are the proxy's, and net is host"),
            "{m}"
        );
        let (line, m) = err(Section {
            allow: vec![at("example.com".into(), 4)],
            ..sec(Some("proxy"))
        });
        assert!(
            line == Some(4) && m.starts_with("allow: ") && m.contains("no port"),
            "{m}"
        );
        let (line, m) = err(Section {
            proxy_port: Some(at(8080, 5)),
            ..sec(Some("none"))
        });
        assert!(
            line == Some(5) && m.contains("proxy-port applies to net: proxy, and net is none"),
            "{m}"
        );
        let (line, m) = err(Section {
            proxy_port: Some(at(70000, 5)),
            ..sec(Some("proxy"))
        });
        assert!(
            line == Some(5) && m.contains("proxy-port: port 70000 is above 65535"),
            "{m}"
        );
        let (line, m) = err(Section {
            forward: vec![at("80".into(), 6)],
            ..sec(Some("proxy"))
        });
        assert!(
            line == Some(6) && m.contains("forward applies to net: user, and net is proxy"),
            "{m}"
        );
        let (line, m) = err(Section {
            forward: vec![at("80:0".into(), 6)],
            ..sec(Some("user"))
        });
        assert!(line == Some(6) && m.contains("forward: port 0"), "{m}");
        assert!(parse_forward("x:80").is_err() && parse_forward("").is_err());
        let req = Config::required(Net::Proxy, Vec::new());
        assert_eq!(
            (req.mode, req.proxy_listen()),
            (Requirement::Required, Some(DEFAULT_PROXY_PORT))
        );
    }

    fn config(net: Net, mode: Requirement, allow: &[&str]) -> Config {
        Config {
            mode,
            allow: allow.iter().map(|e| parse_entry(e).unwrap()).collect(),
            ..Config::required(net, Vec::new())
        }
    }

    #[test]
    fn the_plan_decides_each_net_on_this_host() {
        let pasta = std::path::Path::new("/usr/bin/pasta");
        let req = Requirement::Required;
        let p = plan(&config(Net::None, req, &[]), true, None, false);
        assert_eq!(
            (p.decision, p.own_netns, p.net),
            (Decision::Apply, true, Net::None)
        );
        assert!(p.notes.is_empty() && p.pasta.is_none());
        let p = plan(&config(Net::Host, req, &[]), true, None, false);
        assert_eq!((p.decision, p.own_netns), (Decision::Apply, false));
        assert!(p.notes[0].contains("network namespace is not created"));
        assert!(plan(&config(Net::Host, req, &[]), false, None, false)
            .notes
            .is_empty());
        let p = plan(&config(Net::User, req, &[]), false, Some(pasta), true);
        assert_eq!(
            (p.decision, p.net, p.own_netns),
            (Decision::Apply, Net::User, true)
        );
        assert_eq!(p.pasta.as_deref(), Some(pasta));
        assert_eq!(p.notes, vec!["pasta: /usr/bin/pasta".to_string()]);
        for (pasta, tun, why) in [
            (None, true, "needs pasta"),
            (Some(pasta), false, "/dev/net/tun"),
        ] {
            let p = plan(&config(Net::User, req, &[]), false, pasta, tun);
            assert!(
                matches!(&p.decision, Decision::Refuse(r) if r.contains(why) && r.contains("(fix: ")),
                "{:?}",
                p.decision
            );
            assert!(p.pasta.is_none());
            let p = plan(
                &config(Net::User, Requirement::BestEffort, &[]),
                false,
                pasta,
                tun,
            );
            assert!(
                matches!(&p.decision, Decision::Degrade(r) if r.contains(why) && r.ends_with("the sandbox gets net: none")),
                "{:?}",
                p.decision
            );
            assert_eq!((p.net, p.own_netns), (Net::None, true));
        }
        let p = plan(&config(Net::Proxy, req, &[]), false, None, false);
        assert_eq!(p.decision, Decision::Apply);
        assert_eq!(
            p.notes[0],
            "proxy on 127.0.0.1:3128 inside, 0 allow-list entries"
        );
        assert!(p.notes[1].contains("the allow-list is empty"));
        let p = plan(
            &config(Net::Proxy, req, &["a.example:1"]),
            false,
            None,
            false,
        );
        assert_eq!(
            p.notes,
            vec!["proxy on 127.0.0.1:3128 inside, 1 allow-list entry".to_string()]
        );
        let p = plan(
            &config(Net::Proxy, req, &["a.example:1", "b.example:2"]),
            false,
            None,
            false,
        );
        assert_eq!(
            p.notes[0],
            "proxy on 127.0.0.1:3128 inside, 2 allow-list entries"
        );
    }

    #[test]
    fn the_proxy_variables_replace_the_callers() {
        let c = |s: &str| std::ffi::CString::new(s).unwrap();
        let mut envp = vec![
            c("PATH=/bin"),
            c("http_proxy=http://corp:8080"),
            c("NO_PROXY=*"),
            c("no_proxy_x=1"),
        ];
        proxy_env(&mut envp, 3128);
        let got: Vec<String> = envp
            .iter()
            .map(|e| e.to_str().unwrap().to_string())
            .collect();
        assert_eq!(
            got,
            [
                "ALL_PROXY=socks5h://127.0.0.1:3128",
                "HTTPS_PROXY=http://127.0.0.1:3128",
                "HTTP_PROXY=http://127.0.0.1:3128",
                "PATH=/bin",
                "all_proxy=socks5h://127.0.0.1:3128",
                "http_proxy=http://127.0.0.1:3128",
                "https_proxy=http://127.0.0.1:3128",
                "no_proxy_x=1",
            ]
        );
    }

    #[test]
    fn doctor_names_what_each_net_needs() {
        let pasta = std::path::Path::new("/nonexistent/pasta");
        let lines = doctor(None, true, true);
        assert_eq!(lines.len(), 3);
        assert!(
            lines[0].0
                && lines[0].1.starts_with("net: none and net: proxy")
                && lines[0].2.is_none()
        );
        assert!(lines[1].0 && lines[1].1.starts_with("net: host"));
        assert_eq!(
            (lines[2].0, lines[2].2.as_deref()),
            (false, Some("apt-get install passt"))
        );
        let no_ns = needs(Net::Proxy, None, true, false);
        assert!(!no_ns[0].0 && no_ns[0].2.as_deref().unwrap().contains("user namespace"));
        let user = needs(Net::User, Some(pasta), true, true);
        assert_eq!(user.len(), 1);
        assert_eq!(
            user[0],
            (
                true,
                "net: user: pasta at /nonexistent/pasta (version unknown)".to_string(),
                None
            )
        );
        let no_tun = needs(Net::User, Some(pasta), false, true);
        assert_eq!(no_tun.len(), 2);
        assert!(!no_tun[1].0 && no_tun[1].1.contains("/dev/net/tun"));
    }

    #[test]
    fn explain_says_what_each_net_stops_and_leaves() {
        let none = explain(&config(Net::None, Requirement::Required, &[]));
        assert!(none[0].starts_with("net: none") && none[1].starts_with("stops:"));
        let host = explain(&config(Net::Host, Requirement::Required, &[]));
        assert!(host[1].starts_with("does NOT stop:"));
        let user = explain(&Config {
            forward: vec![(2222, 22)],
            ..config(Net::User, Requirement::Required, &[])
        });
        assert_eq!(user.len(), 4);
        assert_eq!(
            user[3],
            "inbound: the host's 127.0.0.1:2222 reaches port 22 inside"
        );
        let proxy = explain(&Config {
            proxy_port: 8080,
            ..config(
                Net::Proxy,
                Requirement::Required,
                &["a.example:1", "10.0.0.0/8:2"],
            )
        });
        assert!(proxy[0].contains("listens on 127.0.0.1:8080 inside"));
        assert_eq!(proxy[2], "allow: a.example:1, 10.0.0.0/8:2");
        assert!(proxy[3].starts_with("stops:"));
        let empty = explain(&config(Net::Proxy, Requirement::Required, &[]));
        assert!(empty[2].contains("allow: nothing"));
    }
}
