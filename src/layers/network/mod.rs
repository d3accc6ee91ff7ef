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
}
