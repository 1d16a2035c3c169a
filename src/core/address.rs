//! The client's network address, as shown and as counted.
//!
//! Throttling counts per *network*, not per address: an IPv6 client
//! usually controls a whole /64 (2^64 addresses from one subscriber), so
//! counting per /128 would give an attacker a fresh counter per request.
//! IPv4 is counted per address (/32), and an IPv4-mapped IPv6 address as
//! the IPv4 address it is.

use std::net::{IpAddr, Ipv6Addr};

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClientAddress {
    /// The address as it arrived, for the security log.
    pub shown: String,
    /// What throttling counts: `203.0.113.7` or `2001:db8:1:2::/64`.
    pub key: String,
}

impl ClientAddress {
    pub fn of(ip: IpAddr) -> Self {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        let key = match ip {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => {
                let s = v6.segments();
                let network = Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
                format!("{network}/64")
            }
        };
        Self {
            shown: ip.to_string(),
            key,
        }
    }

    /// When the address could not be determined (no peer address).
    pub fn unknown() -> Self {
        Self {
            shown: "unknown".into(),
            key: "unknown".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> String {
        ClientAddress::of(s.parse().unwrap()).key
    }

    #[test]
    fn ipv6_counts_per_64() {
        assert_eq!(key("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(key("2001:db8:1:2:ffff:ffff:ffff:ffff"), "2001:db8:1:2::/64");
        assert_ne!(key("2001:db8:1:3::1"), key("2001:db8:1:2::1"));
        assert_eq!(
            ClientAddress::of("2001:db8:1:2::9".parse().unwrap()).shown,
            "2001:db8:1:2::9"
        );
    }

    #[test]
    fn ipv4_counts_per_address() {
        assert_eq!(key("203.0.113.7"), "203.0.113.7");
        assert_eq!(key("::ffff:203.0.113.7"), "203.0.113.7", "mapped IPv4 is IPv4");
        assert_ne!(key("203.0.113.7"), key("203.0.113.8"));
    }
}
