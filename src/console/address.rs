//! Who is asking, as far as the console can tell: whether the request came over HTTPS and from
//! which address, believing `X-Forwarded-Proto` and `X-Forwarded-For` only from a trusted proxy
//! (`PUSHJET_BRIDGE_TRUSTED_PROXIES`).

use std::net::IpAddr;

use actix_web::HttpRequest;

/// The request's peer, and the client behind it when the peer is a trusted proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client {
    /// The client's address: the peer's, or the nearest untrusted one a trusted proxy names.
    pub address: Option<IpAddr>,
    /// Whether the request reached the proxy or the service over HTTPS.
    pub https: bool,
}

impl Client {
    /// Reads the request's client, believing forwarding headers only from `trusted` peers.
    pub fn of(request: &HttpRequest, trusted: &[IpAddr]) -> Self {
        let peer = request.peer_addr().map(|address| address.ip());
        let direct_https = request.app_config().secure();
        let Some(peer) = peer.filter(|peer| trusted.contains(peer)) else {
            return Self {
                address: peer,
                https: direct_https,
            };
        };
        let headers = request.headers();
        let forwarded_https = headers
            .get_all("x-forwarded-proto")
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .next_back()
            .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"));
        // The nearest address that is not one of our proxies: the right-most entries were added
        // by the proxies we trust, anything left of the first untrusted one could be forged.
        let forwarded_for = headers
            .get_all("x-forwarded-for")
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .filter_map(|entry| entry.parse::<IpAddr>().ok())
            .find(|address| !trusted.contains(address));
        Self {
            address: Some(forwarded_for.unwrap_or(peer)),
            https: direct_https || forwarded_https,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use actix_web::test::TestRequest;

    use super::*;

    const PROXY: &str = "10.0.0.2";

    fn request(peer: &str, headers: &[(&str, &str)]) -> HttpRequest {
        let mut request =
            TestRequest::default().peer_addr(SocketAddr::new(peer.parse().unwrap(), 40000));
        for header in headers {
            request = request.insert_header(*header);
        }
        request.to_http_request()
    }

    #[test]
    fn forwarding_headers_are_ignored_from_an_untrusted_peer() {
        let trusted = [PROXY.parse().unwrap()];
        let headers = [
            ("x-forwarded-proto", "https"),
            ("x-forwarded-for", "1.2.3.4"),
        ];
        let client = Client::of(&request("192.0.2.9", &headers), &trusted);
        assert_eq!(client.address, Some("192.0.2.9".parse().unwrap()));
        assert!(!client.https);
    }

    #[test]
    fn a_trusted_proxy_names_the_client_and_the_scheme() {
        let trusted = [PROXY.parse().unwrap()];
        let headers = [
            ("x-forwarded-proto", "https"),
            ("x-forwarded-for", "6.6.6.6, 198.51.100.7"),
        ];
        let client = Client::of(&request(PROXY, &headers), &trusted);
        assert_eq!(client.address, Some("198.51.100.7".parse().unwrap()));
        assert!(client.https);
        let plain = Client::of(&request(PROXY, &[]), &trusted);
        assert_eq!(plain.address, Some(PROXY.parse().unwrap()));
        assert!(!plain.https);
    }
}
