//! Settings of the bidder registry: how often replicas poll the database,
//! and which endpoints the admin API may register.
//!
//! The allow-list exists so the admin API cannot be turned against internal
//! services (an "endpoint" pointing at a metadata service or a database
//! port). It applies to registrations through the API; bidders in the config
//! file are the operator's own and are trusted.

use std::net::IpAddr;

use http::Uri;
use serde::Deserialize;

/// `[registry]` settings.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RegistryConfig {
    /// How often each replica reads the registry's version stamp; a change
    /// is live on every replica within about this long (must be ≤ 1000).
    pub poll_interval_ms: u64,
    /// Networks (CIDR, e.g. `203.0.113.0/24`) endpoint IP literals may be in.
    /// With both allow-lists empty, every address is allowed.
    pub allowed_networks: Vec<String>,
    /// Host names endpoints may use: exact (`bidder.example`) or a suffix
    /// starting with a dot (`.dsp.example`). Empty with `allowed_networks`
    /// empty: every host is allowed.
    pub allowed_hosts: Vec<String>,
    /// Refuse loopback, private (RFC 1918, ULA), link-local and unspecified
    /// addresses, and names that resolve to one, whatever the allow-lists say.
    pub deny_private_networks: bool,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            poll_interval_ms: 250,
            allowed_networks: Vec::new(),
            allowed_hosts: Vec::new(),
            deny_private_networks: false,
        }
    }
}

/// A network in CIDR notation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `ADDR/PREFIX` (or a bare address: a single host).
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let (a, p) = s.split_once('/').unwrap_or((s, ""));
        let addr: IpAddr = a.parse().map_err(|_| format!("{s:?} is not an address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = if p.is_empty() {
            max
        } else {
            p.parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?} has a bad prefix length"))?
        };
        Ok(Cidr { addr, prefix })
    }

    /// True when `ip` is inside this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let bits = |ip: IpAddr| match ip {
            IpAddr::V4(v) => (u128::from(u32::from(v)), 32u32),
            IpAddr::V6(v) => (u128::from(v), 128u32),
        };
        let ((net, width), (x, xw)) = (bits(self.addr), bits(canonical(ip)));
        if width != xw {
            return false;
        }
        let shift = width - u32::from(self.prefix);
        shift >= width || (net >> shift) == (x >> shift)
    }
}

/// IPv4-mapped IPv6 addresses are checked as the IPv4 address they carry.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v) => v.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Loopback, private, link-local, unspecified, CGNAT or unique-local (for
/// IPv6 also NAT64 and 6to4 addresses that embed such an IPv4 address).
pub fn is_private(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v) => {
            v.is_loopback()
                || v.is_private()
                || v.is_link_local()
                || v.is_unspecified()
                || v.is_broadcast()
                // 100.64.0.0/10, carrier-grade NAT: internal in most clouds.
                || (v.octets()[0] == 100 && (v.octets()[1] & 0xC0) == 64)
        }
        IpAddr::V6(v) => {
            let seg = v.segments();
            let o = v.octets();
            // NAT64 (64:ff9b::/96) and 6to4 (2002::/16) carry an IPv4
            // address that a gateway may route to: checked as that address.
            let embedded = if seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                Some(std::net::Ipv4Addr::new(o[12], o[13], o[14], o[15]))
            } else if seg[0] == 0x2002 {
                Some(std::net::Ipv4Addr::new(o[2], o[3], o[4], o[5]))
            } else {
                None
            };
            embedded.is_some_and(|v4| is_private(IpAddr::V4(v4)))
                || v.is_loopback()
                || v.is_unspecified()
                || (v.segments()[0] & 0xFE00) == 0xFC00
                || (v.segments()[0] & 0xFFC0) == 0xFE80
        }
    }
}

/// The checks endpoints registered through the admin API must pass.
#[derive(Debug, Clone, Default)]
pub struct EndpointPolicy {
    networks: Vec<Cidr>,
    hosts: Vec<String>,
    deny_private: bool,
    /// Refuses everything (a fallback where no valid policy exists).
    refuse_all: bool,
}

impl EndpointPolicy {
    /// Builds the policy; the error names the bad list entry.
    pub fn new(c: &RegistryConfig) -> Result<Self, (String, String)> {
        let networks = c
            .allowed_networks
            .iter()
            .enumerate()
            .map(|(i, s)| {
                Cidr::parse(s).map_err(|m| (format!("registry.allowed_networks[{i}]"), m))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            networks,
            hosts: c
                .allowed_hosts
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            deny_private: c.deny_private_networks,
            refuse_all: false,
        })
    }

    /// A policy that refuses every address and name.
    pub fn refuse_all() -> Self {
        Self {
            refuse_all: true,
            ..Self::default()
        }
    }

    fn open(&self) -> bool {
        self.networks.is_empty() && self.hosts.is_empty()
    }

    /// True when `deny_private_networks` is set: names must be resolved and
    /// every address they resolve to checked.
    pub fn denies_private(&self) -> bool {
        self.deny_private
    }

    /// Checks an IP literal: not private (when denied), and inside
    /// `allowed_networks` when an allow-list is set.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), Refusal> {
        if self.refuse_all {
            return Err(Refusal::AddressNotListed(ip));
        }
        if self.deny_private && is_private(ip) {
            return Err(Refusal::PrivateAddress(ip));
        }
        if !self.open() && !self.networks.iter().any(|n| n.contains(ip)) {
            return Err(Refusal::AddressNotListed(ip));
        }
        Ok(())
    }

    /// Checks a host name (not an IP literal) against `allowed_hosts`; the
    /// addresses it resolves to still go through [`Self::check_resolved`].
    pub fn check_name(&self, name: &str) -> Result<(), Refusal> {
        let name = name.to_ascii_lowercase();
        if self.refuse_all {
            return Err(Refusal::HostNotListed(name));
        }
        if !self.open()
            && !self
                .hosts
                .iter()
                .any(|h| *h == name || (h.starts_with('.') && name.ends_with(h.as_str())))
        {
            return Err(Refusal::HostNotListed(name));
        }
        Ok(())
    }

    /// Checks one address `name` resolved to: refused when private networks
    /// are denied and it is private.
    pub fn check_resolved(&self, name: &str, ip: IpAddr) -> Result<(), Refusal> {
        if self.deny_private && is_private(ip) {
            return Err(Refusal::ResolvesPrivate {
                name: name.to_ascii_lowercase(),
                ip,
            });
        }
        Ok(())
    }

    /// Checks an endpoint URL (already known to parse and have a host).
    /// Names are resolved only when private networks are denied, so a name
    /// pointing at an internal address is refused too; the answer may change
    /// later (DNS), which is why operators should prefer `allowed_hosts`.
    pub async fn check(&self, endpoint: &str) -> Result<(), String> {
        let uri: Uri = endpoint.parse().map_err(|e| format!("not a URL: {e}"))?;
        let host = uri.host().unwrap_or("");
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return self.check_ip(ip).map_err(|r| r.to_string());
        }
        let name = bare.to_ascii_lowercase();
        self.check_name(&name).map_err(|r| r.to_string())?;
        if self.deny_private {
            let port = uri.port_u16().unwrap_or(80);
            let addrs = tokio::net::lookup_host((name.as_str(), port))
                .await
                .map_err(|e| format!("host {name} does not resolve: {e}"))?;
            for a in addrs {
                self.check_resolved(&name, a.ip())
                    .map_err(|r| r.to_string())?;
            }
        }
        Ok(())
    }
}

/// Why [`EndpointPolicy`] refuses an address or a name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// An IP literal in a private network, with `deny_private_networks`.
    #[error("address {0} is in a private network, which is not allowed")]
    PrivateAddress(IpAddr),
    /// A name that resolves to a private address, with `deny_private_networks`.
    #[error("host {name} resolves to {ip}, a private address, which is not allowed")]
    ResolvesPrivate {
        /// The name.
        name: String,
        /// The private address it resolved to.
        ip: IpAddr,
    },
    /// An IP literal outside `allowed_networks`.
    #[error("address {0} is not in registry.allowed_networks")]
    AddressNotListed(IpAddr),
    /// A name outside `allowed_hosts`.
    #[error("host {0} is not in registry.allowed_hosts")]
    HostNotListed(String),
}

impl Refusal {
    /// True for the private-network refusals (`deny_private_networks`),
    /// false for the allow-list ones.
    pub fn is_private(&self) -> bool {
        matches!(
            self,
            Refusal::PrivateAddress(_) | Refusal::ResolvesPrivate { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_contains() {
        let n = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(n.contains("10.1.2.3".parse().unwrap()));
        assert!(!n.contains("10.2.0.1".parse().unwrap()));
        assert!(Cidr::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
        assert!(Cidr::parse("::ffff:1.2.3.4/128").is_ok());
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("bogus/8").is_err());
        assert!(Cidr::parse("192.0.2.7")
            .unwrap()
            .contains("192.0.2.7".parse().unwrap()));
    }

    #[tokio::test]
    async fn policy_refuses_private_and_unlisted() {
        let open = EndpointPolicy::default();
        assert!(open.check("http://127.0.0.1:9").await.is_ok());
        let strict = EndpointPolicy::new(&RegistryConfig {
            deny_private_networks: true,
            ..RegistryConfig::default()
        })
        .unwrap();
        for e in [
            "http://127.0.0.1:9",
            "http://10.0.0.1",
            "http://[::1]:80",
            "http://169.254.169.254",
            "http://localhost:1",
        ] {
            assert!(strict.check(e).await.is_err(), "{e}");
        }
        assert!(strict.check("http://192.0.2.10").await.is_ok());
        for ip in ["64:ff9b::a00:5", "2002:a9fe:a9fe::1", "::ffff:10.0.0.5"] {
            assert!(is_private(ip.parse().unwrap()), "{ip}");
        }
        assert!(!is_private("64:ff9b::c000:20a".parse().unwrap()));
        assert!(!is_private("2001:db8::1".parse().unwrap()));
        let listed = EndpointPolicy::new(&RegistryConfig {
            allowed_networks: vec!["192.0.2.0/24".into()],
            allowed_hosts: vec![".dsp.example".into()],
            ..RegistryConfig::default()
        })
        .unwrap();
        assert!(listed.check("http://192.0.2.10").await.is_ok());
        assert!(listed.check("http://198.51.100.1").await.is_err());
        assert!(listed.check("https://a.dsp.example").await.is_ok());
        assert!(listed.check("https://evil.example").await.is_err());
    }
}
