//! Whether the server keeps connections open between requests. awc puts a connection back in its
//! pool unless the answer says `Connection: close`, but an `HTTP/1.0` answer without
//! `Connection: keep-alive` means the server closes it too: the real Pushjet server (Werkzeug)
//! answers that way, and a request sent on such a pooled connection is never read ("connector
//! has been disconnected"). So requests ask for `Connection: close` (no pooling) until an answer
//! has shown that the server keeps connections, and again whenever one shows it does not.
//!
//! An answer to a request that asked for `Connection: close` says `close` back (actix, hyper and
//! most servers echo it), so that word is no news about the server then: such an answer is judged
//! by its version alone. Reading it as "the server closes" kept every request on a new connection
//! against servers that keep them (one TCP handshake per notification, a third of delivery's rate).

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use awc::http::{Version, header};

const UNKNOWN: u8 = 0;
const KEEPS: u8 = 1;
const CLOSES: u8 = 2;

/// What the last answer said about the server's connections; shared by the clones of one API.
#[derive(Debug, Clone)]
pub(crate) struct ConnectionReuse(Arc<AtomicU8>);

impl Default for ConnectionReuse {
    fn default() -> Self {
        Self(Arc::new(AtomicU8::new(UNKNOWN)))
    }
}

impl ConnectionReuse {
    /// Whether the next request may go on a pooled connection and stay in the pool after.
    pub(crate) fn may_reuse(&self) -> bool {
        self.0.load(Ordering::Relaxed) == KEEPS
    }

    /// Learns from an answer's version and `Connection` header; `asked_to_close` when the
    /// request said `Connection: close` (the answer's `close` is then only its echo).
    pub(crate) fn learn(
        &self,
        version: Version,
        headers: &header::HeaderMap,
        asked_to_close: bool,
    ) {
        let keeps = if asked_to_close {
            server_would_keep_connection(version, headers)
        } else {
            server_keeps_connection(version, headers)
        };
        let state = if keeps { KEEPS } else { CLOSES };
        self.0.store(state, Ordering::Relaxed);
    }
}

/// HTTP/1.1 and later keep the connection unless they say `close`; HTTP/1.0 closes it unless it
/// says `keep-alive`.
fn server_keeps_connection(version: Version, headers: &header::HeaderMap) -> bool {
    let options = || {
        headers
            .get_all(header::CONNECTION)
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
    };
    if options().any(|option| option.eq_ignore_ascii_case("close")) {
        return false;
    }
    version >= Version::HTTP_11 || options().any(|option| option.eq_ignore_ascii_case("keep-alive"))
}

/// Whether a server that answered a `Connection: close` request would have kept the connection
/// had it not been asked to close: HTTP/1.1 and later do, HTTP/1.0 only with `keep-alive`.
fn server_would_keep_connection(version: Version, headers: &header::HeaderMap) -> bool {
    version >= Version::HTTP_11
        || headers
            .get_all(header::CONNECTION)
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .any(|option| option.trim().eq_ignore_ascii_case("keep-alive"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use awc::http::header::{CONNECTION, HeaderMap, HeaderValue};

    fn connection(value: Option<&'static str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(value) = value {
            headers.insert(CONNECTION, HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn http10_without_keep_alive_and_any_close_mean_the_server_closes() {
        assert!(!server_keeps_connection(
            Version::HTTP_10,
            &connection(None)
        ));
        assert!(!server_keeps_connection(
            Version::HTTP_11,
            &connection(Some("Close"))
        ));
        assert!(!server_keeps_connection(
            Version::HTTP_10,
            &connection(Some("keep-alive, close"))
        ));
        assert!(server_keeps_connection(
            Version::HTTP_10,
            &connection(Some("Keep-Alive"))
        ));
        assert!(server_keeps_connection(Version::HTTP_11, &connection(None)));
    }

    #[test]
    fn no_reuse_until_an_answer_shows_the_server_keeps_connections() {
        let reuse = ConnectionReuse::default();
        assert!(!reuse.may_reuse());
        reuse.learn(Version::HTTP_11, &connection(None), false);
        assert!(reuse.may_reuse());
        reuse.learn(Version::HTTP_10, &connection(None), false);
        assert!(!reuse.may_reuse());
    }

    #[test]
    fn a_close_echoed_to_a_close_request_is_judged_by_the_version_alone() {
        let reuse = ConnectionReuse::default();
        reuse.learn(Version::HTTP_11, &connection(Some("close")), true);
        assert!(
            reuse.may_reuse(),
            "an HTTP/1.1 server echoing our close keeps connections"
        );
        reuse.learn(Version::HTTP_11, &connection(Some("close")), false);
        assert!(!reuse.may_reuse(), "unasked, close means close");
        reuse.learn(Version::HTTP_10, &connection(Some("close")), true);
        assert!(!reuse.may_reuse(), "HTTP/1.0 without keep-alive closes");
        reuse.learn(Version::HTTP_10, &connection(Some("keep-alive")), true);
        assert!(reuse.may_reuse());
    }
}
