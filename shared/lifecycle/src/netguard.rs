//! Which network destinations a URL handed to us (a customer's `webhook_url`) may reach:
//! http(s) only, no credentials in the URL, and never a private, loopback, link-local
//! (cloud metadata at 169.254.169.254 / fd00:ec2::254), shared, multicast, reserved or
//! documentation address — checked on the literal host at create time and on every address
//! DNS returns at connect time (the outbound client's resolver), so a name that resolves to
//! an internal address is refused as well. Loopback can be allowed explicitly (`executor dev`,
//! whose simulators and local test endpoints live there); nothing else can.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What outbound requests to customer URLs may reach.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OutboundPolicy {
    /// Allow 127.0.0.0/8 and ::1 (development only).
    #[serde(default)]
    pub allow_loopback: bool,
}

impl OutboundPolicy {
    /// The development policy: loopback allowed.
    pub fn dev() -> OutboundPolicy {
        OutboundPolicy {
            allow_loopback: true,
        }
    }

    /// Why `ip` may not be reached, or None if it may.
    pub fn refuses(&self, ip: IpAddr) -> Option<&'static str> {
        match ip {
            IpAddr::V4(v4) => self.refuses_v4(v4),
            IpAddr::V6(v6) => self.refuses_v6(v6),
        }
    }

    fn refuses_v4(&self, ip: Ipv4Addr) -> Option<&'static str> {
        let [a, b, c, _] = ip.octets();
        if ip.is_loopback() {
            return (!self.allow_loopback).then_some("a loopback address");
        }
        Some(match (a, b, c) {
            (0, _, _) => "an unspecified (0.0.0.0/8) address",
            (10, _, _) | (172, 16..=31, _) | (192, 168, _) => "a private address",
            (100, 64..=127, _) => "a shared (carrier-grade NAT) address",
            (169, 254, _) => "a link-local address (cloud metadata lives there)",
            (192, 0, 0) => "an IETF protocol assignment address",
            (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "a documentation address",
            (198, 18..=19, _) => "a benchmarking address",
            (224..=239, _, _) => "a multicast address",
            (240..=255, _, _) => "a reserved or broadcast address",
            _ => return None,
        })
    }

    fn refuses_v6(&self, ip: Ipv6Addr) -> Option<&'static str> {
        if let Some(v4) = ip.to_ipv4_mapped() {
            return self.refuses_v4(v4);
        }
        let s = ip.segments();
        if ip.is_loopback() {
            return (!self.allow_loopback).then_some("a loopback address");
        }
        Some(if ip.is_unspecified() {
            "an unspecified address"
        } else if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
            // NAT64 (64:ff9b::/96) embeds an IPv4 address: judge that one.
            let v4 = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
            return self.refuses_v4(v4);
        } else if s[0] & 0xfe00 == 0xfc00 {
            "a unique local address (AWS metadata fd00:ec2::254 is one)"
        } else if s[0] & 0xffc0 == 0xfe80 {
            "a link-local address"
        } else if s[0] & 0xff00 == 0xff00 {
            "a multicast address"
        } else if s[0] == 0x2001 && s[1] == 0x0db8 {
            "a documentation address"
        } else if s[0..6] == [0, 0, 0, 0, 0, 0] {
            "an IPv4-compatible address"
        } else {
            return None;
        })
    }

    /// Checks a URL before any request: scheme, credentials, and a literal IP host (a name is
    /// checked on every address it resolves to, when connecting). The error names the problem.
    pub fn check_url(&self, raw: &str) -> Result<url::Url, String> {
        let url = url::Url::parse(raw).map_err(|e| format!("not a URL ({e})"))?;
        if url.scheme() != "https" && url.scheme() != "http" {
            return Err(format!(
                "scheme '{}' is not allowed; use https (or http)",
                url.scheme()
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("credentials in the URL are not allowed".into());
        }
        match url.host() {
            None => return Err("the URL has no host".into()),
            Some(url::Host::Ipv4(ip)) => {
                if let Some(why) = self.refuses(IpAddr::V4(ip)) {
                    return Err(format!("{ip} is {why}"));
                }
            }
            Some(url::Host::Ipv6(ip)) => {
                if let Some(why) = self.refuses(IpAddr::V6(ip)) {
                    return Err(format!("{ip} is {why}"));
                }
            }
            Some(url::Host::Domain(d)) => {
                let d = d.trim_end_matches('.').to_ascii_lowercase();
                if (d == "localhost" || d.ends_with(".localhost")) && !self.allow_loopback {
                    return Err(format!("{d} is a loopback name"));
                }
            }
        }
        Ok(url)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn internal_addresses_are_refused_and_public_ones_allowed() {
        let p = OutboundPolicy::default();
        for ip in [
            "127.0.0.1",
            "127.8.9.10",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "198.18.0.1",
            "192.0.2.10",
            "::1",
            "::",
            "fd00:ec2::254",
            "fe80::1",
            "ff02::1",
            "::ffff:169.254.169.254",
            "::ffff:10.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2001:db8::1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(p.refuses(ip).is_some(), "{ip} allowed");
        }
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "172.15.255.255",
            "172.32.0.1",
            "100.63.255.255",
            "100.128.0.1",
            "2606:4700:4700::1111",
            "64:ff9b::808:808",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(p.refuses(ip), None, "{ip} refused");
        }
    }

    #[test]
    fn loopback_only_when_allowed_explicitly() {
        let dev = OutboundPolicy::dev();
        assert_eq!(dev.refuses("127.0.0.1".parse().unwrap()), None);
        assert_eq!(dev.refuses("::1".parse().unwrap()), None);
        assert!(dev.refuses("169.254.169.254".parse().unwrap()).is_some());
        assert!(dev.refuses("10.0.0.1".parse().unwrap()).is_some());
        assert!(dev.check_url("http://localhost:9000/hook").is_ok());
        assert!(
            OutboundPolicy::default()
                .check_url("http://localhost:9000/hook")
                .is_err()
        );
    }

    #[test]
    fn urls_are_checked_for_scheme_credentials_and_literal_hosts() {
        let p = OutboundPolicy::default();
        assert!(p.check_url("https://hooks.example.com/x").is_ok());
        assert!(
            p.check_url("ftp://example.com/x")
                .unwrap_err()
                .contains("scheme")
        );
        assert!(
            p.check_url("file:///etc/passwd")
                .unwrap_err()
                .contains("scheme")
        );
        assert!(
            p.check_url("https://user:pw@example.com/")
                .unwrap_err()
                .contains("credentials")
        );
        assert!(
            p.check_url("http://169.254.169.254/latest/meta-data/")
                .unwrap_err()
                .contains("link-local")
        );
        assert!(
            p.check_url("http://[::1]:8080/")
                .unwrap_err()
                .contains("loopback")
        );
        // Decimal and hex spellings of an address are normalized by the URL parser.
        assert!(
            p.check_url("http://2852039166/").is_err(),
            "169.254.169.254 in decimal"
        );
        assert!(p.check_url("http://0x7f.1/").is_err(), "127.0.0.1 in hex");
        assert!(p.check_url("not a url").is_err());
    }
}
