//! `--target` values: an address or CIDR block, optionally with a port, naming server sides.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    network: IpAddr,
    prefix_len: u8,
    port: Option<u16>,
}

impl Target {
    pub fn matches(&self, endpoint: SocketAddr) -> bool {
        self.port.is_none_or(|p| p == endpoint.port()) && self.contains(endpoint.ip())
    }

    fn contains(&self, addr: IpAddr) -> bool {
        match (self.network, addr) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                prefix_eq(&net.octets(), &a.octets(), self.prefix_len)
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                prefix_eq(&net.octets(), &a.octets(), self.prefix_len)
            }
            (IpAddr::V6(net), IpAddr::V4(a)) | (IpAddr::V4(a), IpAddr::V6(net)) => {
                // An IPv4-mapped IPv6 address names the same host.
                net.to_ipv4_mapped() == Some(a) && self.prefix_len >= 32
            }
        }
    }
}

fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let full = usize::from(bits / 8);
    let rest = bits % 8;
    if a[..full] != b[..full] {
        return false;
    }
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    a[full] & mask == b[full] & mask
}

impl FromStr for Target {
    type Err = String;

    /// `198.19.2.10`, `198.19.2.0/24`, `198.19.2.10:443`, `198.19.2.0/24:443`,
    /// `2001:db8::1`, `2001:db8::/32`, `[2001:db8::1]:443`, `[2001:db8::/32]:443`.
    fn from_str(s: &str) -> Result<Target, String> {
        let bad = || {
            format!(
                "'{s}' is not an address or CIDR with an optional port (e.g. 10.1.2.3:443, 10.1.0.0/16, [2001:db8::1]:443)"
            )
        };
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (host, after) = rest.split_once(']').ok_or_else(bad)?;
            let port = match after.strip_prefix(':') {
                Some(p) => Some(p.parse::<u16>().map_err(|_| bad())?),
                None if after.is_empty() => None,
                None => return Err(bad()),
            };
            (host, port)
        } else if s.matches(':').count() == 1 {
            let (host, port) = s.split_once(':').ok_or_else(bad)?;
            (host, Some(port.parse::<u16>().map_err(|_| bad())?))
        } else {
            (s, None)
        };
        let (addr, prefix_len) = match host.split_once('/') {
            Some((a, len)) => (a, Some(len.parse::<u8>().map_err(|_| bad())?)),
            None => (host, None),
        };
        let network: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix_len = prefix_len.unwrap_or(max);
        if prefix_len > max {
            return Err(bad());
        }
        Ok(Target {
            network,
            prefix_len,
            port,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn address_port_and_cidr_forms() {
        let t: Target = "198.19.2.10:443".parse().unwrap();
        assert!(t.matches(ep("198.19.2.10:443")));
        assert!(!t.matches(ep("198.19.2.10:80")));
        let t: Target = "198.19.2.0/24".parse().unwrap();
        assert!(t.matches(ep("198.19.2.99:1")));
        assert!(!t.matches(ep("198.19.3.1:1")));
        let t: Target = "198.16.0.0/12:80".parse().unwrap();
        assert!(t.matches(ep("198.19.0.1:80")));
        let t: Target = "[2001:db8::/32]:443".parse().unwrap();
        assert!(t.matches(ep("[2001:db8::5]:443")));
        assert!(!t.matches(ep("[2001:db9::5]:443")));
        let t: Target = "2001:db8::1".parse().unwrap();
        assert!(t.matches(ep("[2001:db8::1]:8443")));
    }

    #[test]
    fn rejects_names_and_bad_prefixes() {
        assert!("example.com".parse::<Target>().is_err());
        assert!("10.0.0.0/33".parse::<Target>().is_err());
        assert!("10.0.0.1:http".parse::<Target>().is_err());
    }
}
