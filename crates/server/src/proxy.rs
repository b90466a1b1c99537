//! Who is asking, behind a reverse proxy: the client's address (for rate limits) and the host
//! the browser addressed (for the Origin check). Forwarding headers are believed only from a
//! peer inside `--trusted-proxy`; from anyone else they are ignored, so a client cannot pick
//! its own rate-limit bucket or host.

use std::net::IpAddr;

use actix_web::http::header::{HeaderMap, FORWARDED, HOST};
use actix_web::HttpRequest;
use ipnet::IpNet;

/// The networks whose forwarding headers the relay believes.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(pub Vec<IpNet>);

impl TrustedProxies {
    /// Parses `--trusted-proxy` values: CIDRs (`10.0.0.0/8`) or single addresses.
    pub fn parse(values: &[String]) -> Result<Self, String> {
        values
            .iter()
            .map(|v| {
                let v = v.trim();
                v.parse::<IpNet>()
                    .or_else(|_| v.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("--trusted-proxy {v:?} is not an address or CIDR (like 10.0.0.0/8)"))
            })
            .collect::<Result<_, _>>()
            .map(TrustedProxies)
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client's address: the peer's, or, when the peer is a trusted proxy, the nearest
    /// address in its `Forwarded` (else `X-Forwarded-For`) chain that is not a trusted proxy.
    pub fn client_ip(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = canonical(peer?);
        if !self.trusts(peer) {
            return Some(peer);
        }
        let chain = forwarded_for(headers);
        // From the nearest hop outwards: the first address no trusted proxy accounts for.
        let mut client = peer;
        for hop in chain.iter().rev() {
            client = *hop;
            if !self.trusts(*hop) {
                break;
            }
        }
        Some(client)
    }

    /// The host the browser addressed: `Host`, or a trusted proxy's `Forwarded: host=` (else
    /// `X-Forwarded-Host`).
    pub fn host<'a>(&self, peer: Option<IpAddr>, headers: &'a HeaderMap) -> &'a str {
        let direct = headers.get(HOST).and_then(|h| h.to_str().ok()).unwrap_or_default();
        if !peer.is_some_and(|p| self.trusts(p)) {
            return direct;
        }
        let forwarded = headers
            .get(FORWARDED)
            .and_then(|h| h.to_str().ok())
            .and_then(|v| {
                pairs(v.split(',').next_back()?).find(|(k, _)| k.eq_ignore_ascii_case("host")).map(|(_, v)| v)
            })
            .or_else(|| {
                let v = headers.get("x-forwarded-host")?.to_str().ok()?;
                Some(v.split(',').next_back()?.trim())
            });
        forwarded.filter(|h| !h.is_empty()).unwrap_or(direct)
    }

    /// [`client_ip`](Self::client_ip) of a request, as a rate-limit key.
    pub fn client_of(&self, req: &HttpRequest) -> String {
        self.client_ip(req.peer_addr().map(|a| a.ip()), req.headers())
            .map_or_else(|| "unknown".to_owned(), |ip| ip.to_string())
    }
}

/// IPv4-mapped IPv6 addresses as IPv4, so `127.0.0.1/8` matches `::ffff:127.0.0.1`.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// `key=value` pairs of one `Forwarded` element, quotes removed.
fn pairs(element: &str) -> impl Iterator<Item = (&str, &str)> {
    element.split(';').filter_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        Some((k.trim(), v.trim().trim_matches('"')))
    })
}

/// The addresses a proxy chain reports, farthest first: `Forwarded: for=` if present, else
/// `X-Forwarded-For`. Unparseable entries (obfuscated ids, "unknown") end the chain there.
fn forwarded_for(headers: &HeaderMap) -> Vec<IpAddr> {
    let parse = |v: &str| -> Option<IpAddr> {
        let v = v.trim();
        // `[2001:db8::1]:4711`, `192.0.2.1:80` or a bare address.
        let bare = if let Some(rest) = v.strip_prefix('[') {
            rest.split(']').next()?
        } else if v.matches(':').count() == 1 {
            v.split(':').next()?
        } else {
            v
        };
        bare.parse().ok().map(canonical)
    };
    let collect = |values: Vec<&str>| -> Vec<IpAddr> {
        // Keep the nearest run of parseable addresses.
        let mut out: Vec<IpAddr> = Vec::new();
        for v in values {
            match parse(v) {
                Some(ip) => out.push(ip),
                None => out.clear(),
            }
        }
        out
    };
    let forwarded: Vec<&str> = headers
        .get_all(FORWARDED)
        .filter_map(|h| h.to_str().ok())
        .flat_map(|h| h.split(','))
        .filter_map(|element| pairs(element).find(|(k, _)| k.eq_ignore_ascii_case("for")).map(|(_, v)| v))
        .collect();
    if !forwarded.is_empty() {
        return collect(forwarded);
    }
    collect(
        headers
            .get_all("x-forwarded-for")
            .filter_map(|h| h.to_str().ok())
            .flat_map(|h| h.split(','))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn headers(list: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in list {
            h.append(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        h
    }

    fn ip(s: &str) -> Option<IpAddr> {
        s.parse().ok()
    }

    #[test]
    fn forwarding_headers_from_an_untrusted_peer_are_ignored() {
        let none = TrustedProxies::default();
        let h = headers(&[
            ("x-forwarded-for", "203.0.113.9"),
            ("forwarded", "for=198.51.100.1;host=evil.example"),
        ]);
        assert_eq!(none.client_ip(ip("192.0.2.7"), &h), ip("192.0.2.7"));
        let h = headers(&[("host", "chat.example"), ("x-forwarded-host", "evil.example")]);
        assert_eq!(none.host(ip("192.0.2.7"), &h), "chat.example");
    }

    #[test]
    fn a_trusted_proxy_names_the_client_and_the_host() {
        let t = TrustedProxies::parse(&["10.0.0.0/8".into(), "127.0.0.1".into()]).unwrap();
        // A client-supplied entry before the real one does not help it: the nearest untrusted
        // address wins.
        let h = headers(&[("x-forwarded-for", "1.2.3.4, 203.0.113.9, 10.1.1.1")]);
        assert_eq!(t.client_ip(ip("127.0.0.1"), &h), ip("203.0.113.9"));
        let h = headers(&[("forwarded", "for=\"[2001:db8::7]:4711\";host=chat.example;proto=https")]);
        assert_eq!(t.client_ip(ip("::ffff:127.0.0.1"), &h), ip("2001:db8::7"));
        assert_eq!(t.host(ip("127.0.0.1"), &h), "chat.example");
        // Without forwarding headers, the proxy itself.
        assert_eq!(t.client_ip(ip("10.0.0.2"), &HeaderMap::new()), ip("10.0.0.2"));
        // "unknown" ends the chain.
        let h = headers(&[("x-forwarded-for", "198.51.100.5, unknown")]);
        assert_eq!(t.client_ip(ip("127.0.0.1"), &h), ip("127.0.0.1"));
    }

    #[test]
    fn bad_values_are_refused_with_a_sentence() {
        let e = TrustedProxies::parse(&["10.0.0.0/33".into()]).unwrap_err();
        assert!(e.contains("not an address or CIDR"), "{e}");
    }
}
