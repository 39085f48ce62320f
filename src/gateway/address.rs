//! Who is on the other end of a request: the TCP peer, or the client a trusted proxy names.

use std::net::{IpAddr, SocketAddr};

use axum::extract::ConnectInfo;

use crate::config::TrustedProxies;

/// The TCP peer of a request, as the listener recorded it.
pub(super) fn peer(extensions: &http::Extensions) -> Option<IpAddr> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_canonical())
}

/// The client's address of a request (its extensions and headers): the peer, or behind
/// trusted proxies the nearest address in `X-Forwarded-For` that is not one of them (the
/// ones further left are the client's word).
pub(super) fn client(
    extensions: &http::Extensions,
    headers: &http::HeaderMap,
    trusted: &TrustedProxies,
) -> Option<IpAddr> {
    client_of(peer(extensions)?, headers, trusted)
}

fn client_of(peer: IpAddr, headers: &http::HeaderMap, trusted: &TrustedProxies) -> Option<IpAddr> {
    if !trusted.contains(peer) {
        return Some(peer);
    }
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|a| a.trim().parse::<IpAddr>().ok())
        .map(|a| a.to_canonical())
        .collect::<Vec<_>>();
    Some(
        forwarded
            .iter()
            .rev()
            .find(|a| !trusted.contains(**a))
            .or(forwarded.first())
            .copied()
            .unwrap_or(peer),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies() -> TrustedProxies {
        TrustedProxies(vec!["10.0.0.0/8".parse().unwrap()])
    }

    fn forwarded(value: &str) -> http::HeaderMap {
        let mut headers = http::HeaderMap::new();
        headers.insert("x-forwarded-for", value.parse().unwrap());
        headers
    }

    #[test]
    fn a_forwarded_address_counts_only_from_a_trusted_proxy() {
        let headers = forwarded("203.0.113.9");
        let untrusted: IpAddr = "198.51.100.1".parse().unwrap();
        assert_eq!(client_of(untrusted, &headers, &proxies()), Some(untrusted));
        let proxy: IpAddr = "10.1.2.3".parse().unwrap();
        assert_eq!(
            client_of(proxy, &headers, &proxies()),
            Some("203.0.113.9".parse().unwrap())
        );
        assert_eq!(
            client_of(proxy, &http::HeaderMap::new(), &proxies()),
            Some(proxy)
        );
    }

    #[test]
    fn the_client_cannot_choose_its_address_by_prepending_to_the_header() {
        // The client wrote "1.1.1.1"; the proxy appended the address it saw.
        let headers = forwarded("1.1.1.1, 203.0.113.9, 10.0.0.7");
        let proxy: IpAddr = "10.1.2.3".parse().unwrap();
        assert_eq!(
            client_of(proxy, &headers, &proxies()),
            Some("203.0.113.9".parse().unwrap())
        );
    }
}
