//! The `network` layer: which network the sandbox gets.
//!
//! ```yaml
//! network:
//!   mode: required
//!   net: none            # none | host
//! ```
//! - `none`: a network namespace of its own with only its loopback (created by this layer,
//!   with a user namespace of its own when not root and the namespaces layer is off).
//! - `host`: no network namespace: the host's interfaces, its loopback services and its
//!   abstract unix sockets are reachable. Landlock's TCP rules, seccomp's socket rules and
//!   Landlock's abstract-socket scope still apply.
//!
//! The layer owns the network namespace when its section is present: `net: host` leaves out
//! the one the namespaces layer would create, and says so. Allow-list entries
//! (`host:port`, `*.domain:port`, `address/prefix:port`, port ranges) are parsed here for
//! the `proxy` mode; `user` (pasta) and `proxy` are not in this version and are refused at
//! validation with that said.

use std::net::IpAddr;

use serde::Deserialize;

use crate::launch::Decision;
use crate::types::{Loc, ProfileError, Requirement, Spanned};

// ---- section: the profile's `network:` as written, and its check ---------------------

#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Section {
    pub mode: Option<Requirement>,
    /// `none` (default) or `host`.
    pub net: Option<Spanned<String>>,
    /// Endpoints the `proxy` mode lets through.
    #[serde(default)]
    pub allow: Vec<Spanned<String>>,
}

crate::merge_fields!(Section {
    mode: or,
    net: or,
    allow: append
});

/// What the sandbox's network is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Net {
    None,
    Host,
}

impl Net {
    pub fn name(self) -> &'static str {
        match self {
            Net::None => "none",
            Net::Host => "host",
        }
    }

    pub fn parse(s: &str) -> Result<Net, String> {
        match s {
            "none" => Ok(Net::None),
            "host" => Ok(Net::Host),
            "user" | "proxy" => Err(format!(
                "net: {s} is not available in this version of lasagna; use none or host"
            )),
            other => Err(format!(
                "unknown net {other:?}{}; one of none, host",
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
                ProfileError::at(Loc::of(n), m).hint("net: none (loopback only) or net: host")
            })?,
            None => Net::None,
        };
        let mut allow = Vec::new();
        for e in &self.allow {
            allow.push(
                parse_entry(&e.value)
                    .map_err(|m| ProfileError::at(Loc::of(e), format!("allow: {m}")))?,
            );
        }
        if let Some(first) = self.allow.first() {
            return Err(ProfileError::at(
                Loc::of(first),
                format!("allow: entries need net: proxy, which this version of lasagna does not have (net is {})", net.name()),
            )
            .hint("remove allow, or use net: host with landlock's net: connect ports"));
        }
        Ok(Config {
            mode: self.mode.unwrap_or_default(),
            net,
            allow,
        })
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
    pub notes: Vec<String>,
}

/// The layer's decision; `ns_has_net`: the namespaces layer would create a network
/// namespace.
pub fn plan(cfg: &Config, ns_has_net: bool) -> Plan {
    let mut notes = Vec::new();
    let own_netns = match cfg.net {
        Net::None => true,
        Net::Host => {
            if ns_has_net {
                notes.push(
                    "net: host: the namespaces layer's network namespace is not created".into(),
                );
            }
            false
        }
    };
    Plan {
        decision: Decision::Apply,
        own_netns,
        notes,
    }
}

// ---- explain -------------------------------------------------------------------------

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
