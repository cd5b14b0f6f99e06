//! Where a request came from, when gateways sit behind a load balancer.
//!
//! A balancer opens its own connections to the gateways, so the connection's peer is the
//! balancer. It names the client in `X-Forwarded-For` (HAProxy's `option forwardfor`, nginx's
//! `proxy_add_x_forwarded_for`, AWS's load balancers), each proxy appending the address it
//! was connected from. The header is believed only on a connection from an address in
//! `server.trusted_proxies`, and read from the right: the first address that is not itself a
//! trusted proxy is the client. Whatever a client wrote to the left of that is ignored, so a
//! forged header changes nothing; and with no trusted proxies configured (the default) the
//! header is never read.
//!
//! The address found is what retrieval records and events name as the source, and what a
//! policy's `aws:SourceIp` is compared with.
//!
//! A balancer that ends TLS says how the client reached it in `X-Forwarded-Proto`, which it
//! sets (HAProxy's `set-header`, nginx's `proxy_set_header`), replacing whatever the client
//! sent. On a connection from a trusted proxy the header says `https` only when every value
//! of it does: a value a client slipped in front of a proxy that appends can make a request
//! count as plain HTTP, never the other way. Whether that word decides `aws:SecureTransport`
//! is a setting of its own (`server.trust_forwarded_proto`): a proxy trusted for
//! `X-Forwarded-For` may pass a client's `X-Forwarded-Proto` through untouched.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;
use serde::de;

/// The address a request came from: the connection's peer, or the client a trusted proxy
/// forwarded (whose port the proxy does not say).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr {
    /// IPv4-mapped IPv6 addresses are written as IPv4.
    pub ip: IpAddr,
    /// The peer's port; unknown for a forwarded client.
    pub port: Option<u16>,
    /// On a trusted proxy's connection, whether it said (`X-Forwarded-Proto: https`) that the
    /// client's connection to it was TLS; `None` on any other connection.
    pub proxy_said_https: Option<bool>,
}

impl ClientAddr {
    /// The client of a request that came on a connection from `peer` with `headers`.
    #[must_use]
    pub fn of(peer: SocketAddr, headers: &http::HeaderMap, trusted: &TrustedProxies) -> Self {
        let connection = Self { ip: peer.ip().to_canonical(), port: Some(peer.port()), proxy_said_https: None };
        if !trusted.contains(connection.ip) {
            return connection;
        }
        let proxy_said_https = Some(said_https(headers));
        // Several header lines are one list, in order (RFC 9110, section 5.3). Entries are
        // split from the raw bytes: a proxy appends the client's address to the line the
        // client sent, so a line is never dropped whole for bytes a client put in it.
        let forwarded = headers.get_all("x-forwarded-for").iter();
        let hops: Vec<&[u8]> = forwarded.flat_map(|line| line.as_bytes().split(|&byte| byte == b',')).collect();
        let mut client = Self { proxy_said_https, ..connection };
        for hop in hops.iter().rev() {
            // An entry that is not an address (`unknown`, garbage) ends the walk: nothing to
            // its left was appended by a proxy that could be asked.
            let Some(ip) = std::str::from_utf8(hop).ok().and_then(|hop| parse_hop(hop.trim())) else { break };
            client = Self { ip, port: None, proxy_said_https };
            if !trusted.contains(ip) {
                break;
            }
        }
        client
    }
}

/// Whether `X-Forwarded-Proto` is present and every value of it (lines and comma-separated
/// entries) is `https`.
fn said_https(headers: &http::HeaderMap) -> bool {
    let mut values = headers
        .get_all("x-forwarded-proto")
        .iter()
        .flat_map(|line| line.as_bytes().split(|&byte| byte == b','))
        .map(<[u8]>::trim_ascii)
        .peekable();
    values.peek().is_some() && values.all(|value| value.eq_ignore_ascii_case(b"https"))
}

/// An `X-Forwarded-For` entry: an address, optionally with a port (`[2001:db8::1]:443`,
/// `192.0.2.7:5000`), as some proxies write it.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let ip = hop
        .parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|addr| addr.ip()))
        .or_else(|| hop.strip_prefix('[')?.strip_suffix(']')?.parse().ok())?;
    Some(ip.to_canonical())
}

impl fmt::Display for ClientAddr {
    /// `ip:port` (`[ip]:port` for IPv6) for a connection's peer, the bare address for a
    /// forwarded client.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(port) => SocketAddr::new(self.ip, port).fmt(f),
            None => self.ip.fmt(f),
        }
    }
}

/// `server.trusted_proxies`: the load balancers whose `X-Forwarded-For` is believed. Written
/// as addresses or CIDR blocks, in a TOML list or comma-separated (`"10.0.0.0/8, ::1"`, the
/// shape of the environment variable and the flag).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Whether `ip` (IPv4 when it was IPv4-mapped) is in a listed block: an IPv6 block holds
    /// the IPv4 addresses whose mapped forms it holds (`::ffff:10.0.0.0/104`, `::/64`).
    #[must_use]
    pub fn contains(&self, ip: IpAddr) -> bool {
        let mapped = match ip {
            IpAddr::V4(v4) => Some(IpAddr::V6(v4.to_ipv6_mapped())),
            IpAddr::V6(_) => None,
        };
        self.0.iter().any(|net| net.contains(&ip) || mapped.is_some_and(|mapped| net.contains(&mapped)))
    }

    fn push(&mut self, text: &str) -> Result<(), String> {
        let text = text.trim();
        let net = text
            .parse::<IpNet>()
            .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
            .map_err(|_| format!("{text:?} is not an IP address or CIDR block"))?;
        self.0.push(net);
        Ok(())
    }
}

impl std::str::FromStr for TrustedProxies {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let mut proxies = Self::default();
        for entry in text.split(',').filter(|entry| !entry.trim().is_empty()) {
            proxies.push(entry)?;
        }
        Ok(proxies)
    }
}

impl<'de> de::Deserialize<'de> for TrustedProxies {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entries;

        impl<'de> de::Visitor<'de> for Entries {
            type Value = TrustedProxies;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("IP addresses or CIDR blocks, in a list or separated by commas")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<TrustedProxies, E> {
                text.parse().map_err(E::custom)
            }

            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<TrustedProxies, A::Error> {
                let mut proxies = TrustedProxies::default();
                while let Some(entry) = seq.next_element::<String>()? {
                    proxies.push(&entry).map_err(de::Error::custom)?;
                }
                Ok(proxies)
            }
        }

        // A string for the key walk, the environment and flags; a TOML file may give a list.
        deserializer.deserialize_string(Entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(peer: &str, forwarded: &[&str], trusted: &str) -> String {
        let mut headers = http::HeaderMap::new();
        for line in forwarded {
            headers.append("x-forwarded-for", line.parse().unwrap());
        }
        ClientAddr::of(peer.parse().unwrap(), &headers, &trusted.parse().unwrap()).to_string()
    }

    #[test]
    fn the_header_is_read_only_from_a_trusted_proxy() {
        assert_eq!(client("192.0.2.7:5000", &["203.0.113.9"], ""), "192.0.2.7:5000");
        assert_eq!(client("192.0.2.7:5000", &["203.0.113.9"], "10.0.0.0/8"), "192.0.2.7:5000");
        assert_eq!(client("10.1.2.3:5000", &["203.0.113.9"], "10.0.0.0/8"), "203.0.113.9");
        assert_eq!(client("10.1.2.3:5000", &[], "10.0.0.0/8"), "10.1.2.3:5000");
    }

    #[test]
    fn what_a_client_wrote_before_the_proxy_appended_is_ignored() {
        // The client sent `X-Forwarded-For: 198.51.100.1`; the proxy appended its peer.
        assert_eq!(client("10.1.2.3:5000", &["198.51.100.1, 203.0.113.9"], "10.0.0.0/8"), "203.0.113.9");
        assert_eq!(client("10.1.2.3:5000", &["198.51.100.1", "203.0.113.9"], "10.0.0.0/8"), "203.0.113.9");
        // A chain of trusted proxies is walked through.
        assert_eq!(client("10.1.2.3:5000", &["203.0.113.9, 10.4.4.4"], "10.0.0.0/8"), "203.0.113.9");
        // Garbage ends the walk at the last address a trusted proxy vouched for.
        assert_eq!(client("10.1.2.3:5000", &["203.0.113.9, unknown, 10.4.4.4"], "10.0.0.0/8"), "10.4.4.4");
        assert_eq!(client("10.1.2.3:5000", &["not an address"], "10.0.0.0/8"), "10.1.2.3:5000");
    }

    #[test]
    fn addresses_with_ports_and_ipv6_are_understood() {
        assert_eq!(client("[::1]:5000", &["[2001:db8::7]:443"], "::1"), "2001:db8::7");
        assert_eq!(client("[::1]:5000", &["[2001:db8::7]"], "::1"), "2001:db8::7");
        assert_eq!(client("[::ffff:10.0.0.1]:5000", &["192.0.2.1:80"], "10.0.0.0/8"), "192.0.2.1");
        assert_eq!(client("[::1]:5000", &[], ""), "[::1]:5000");
        // A block written IPv4-mapped matches the IPv4 peers it stands for.
        assert_eq!(client("10.1.2.3:5000", &["192.0.2.1"], "::ffff:10.0.0.0/104"), "192.0.2.1");
        assert_eq!(client("10.1.2.3:5000", &["192.0.2.1"], "::ffff:10.1.2.3"), "192.0.2.1");
        // So does a wider IPv6 block that holds the mapped addresses.
        assert_eq!(client("10.1.2.3:5000", &["192.0.2.1"], "::/64"), "192.0.2.1");
        assert_eq!(client("[::ffff:10.1.2.3]:5000", &["192.0.2.1"], "::/80"), "192.0.2.1");
        assert_eq!(client("10.1.2.3:5000", &["192.0.2.1"], "2001:db8::/32"), "10.1.2.3:5000");
    }

    #[test]
    fn bytes_a_client_wrote_cannot_hide_the_address_a_proxy_appended() {
        // nginx and AWS's balancers append to the line the client sent: a byte that is not
        // visible ASCII in that line must not make the whole line, the proxy's entry with it,
        // vanish (leaving the proxy's own address as the client's).
        let mut headers = http::HeaderMap::new();
        headers.append("x-forwarded-for", http::HeaderValue::from_bytes(b"\xff, 203.0.113.9").unwrap());
        let trusted = "10.0.0.0/8".parse().unwrap();
        let found = ClientAddr::of("10.1.2.3:5000".parse().unwrap(), &headers, &trusted);
        assert_eq!(found.to_string(), "203.0.113.9");
    }

    fn said_https(peer: &str, forwarded_proto: &[&[u8]]) -> Option<bool> {
        let mut headers = http::HeaderMap::new();
        for line in forwarded_proto {
            headers.append("x-forwarded-proto", http::HeaderValue::from_bytes(line).unwrap());
        }
        ClientAddr::of(peer.parse().unwrap(), &headers, &"10.0.0.0/8".parse().unwrap()).proxy_said_https
    }

    #[test]
    fn only_a_trusted_proxy_that_says_https_alone_says_it() {
        assert_eq!(said_https("10.1.2.3:5000", &[b"https"]), Some(true));
        assert_eq!(said_https("10.1.2.3:5000", &[b"HTTPS"]), Some(true));
        assert_eq!(said_https("10.1.2.3:5000", &[b"https, https"]), Some(true));
        // A client's own word, on a connection that is not a trusted proxy's.
        assert_eq!(said_https("192.0.2.7:5000", &[b"https"]), None);
        // Whatever is not https, wherever it is in the list, wins.
        assert_eq!(said_https("10.1.2.3:5000", &[b"https, http"]), Some(false));
        assert_eq!(said_https("10.1.2.3:5000", &[b"https", b"http"]), Some(false));
        assert_eq!(said_https("10.1.2.3:5000", &[b"https,"]), Some(false));
        assert_eq!(said_https("10.1.2.3:5000", &[b"\xffhttps"]), Some(false));
        assert_eq!(said_https("10.1.2.3:5000", &[b"http"]), Some(false));
        assert_eq!(said_https("10.1.2.3:5000", &[]), Some(false));
    }

    #[test]
    fn the_setting_is_a_list_or_commas_and_refuses_what_is_not_an_address() {
        assert_eq!(" 10.0.0.0/8 , ::1,".parse::<TrustedProxies>().unwrap().0.len(), 2);
        assert_eq!("".parse::<TrustedProxies>().unwrap(), TrustedProxies::default());
        assert!("10.0.0.0/33".parse::<TrustedProxies>().is_err());
        assert!("balancer.internal".parse::<TrustedProxies>().is_err());
        #[derive(serde::Deserialize)]
        struct File {
            trusted_proxies: TrustedProxies,
        }
        let file: File = toml::from_str(r#"trusted_proxies = ["10.0.0.0/8", "192.0.2.1"]"#).unwrap();
        assert_eq!(file.trusted_proxies.0.len(), 2);
        assert!(toml::from_str::<File>(r#"trusted_proxies = ["nope"]"#).is_err());
    }
}
