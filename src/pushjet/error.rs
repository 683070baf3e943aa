//! The one error type of the Pushjet client, covering the Python client's exceptions and the
//! protocol's error ids.

use std::time::Duration;

use super::wire::ErrorBody;

/// Everything that can go wrong talking to a Pushjet API.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call that needs the secret key on a service opened by its public key; no request made.
    #[error("this service was opened by its public key; {0} needs its secret key")]
    Access(&'static str),
    /// The service does not exist, or no longer does (HTTP 404, error id 6).
    #[error("the Pushjet server does not know this service: {message} (error {id})")]
    Nonexistent {
        /// The protocol's error id.
        id: i64,
        /// The server's error text.
        message: String,
    },
    /// Already subscribed (HTTP 409, id 4) or not subscribed (HTTP 409, id 11).
    #[error("{message} (error {id})")]
    Subscription {
        /// The protocol's error id.
        id: i64,
        /// The server's error text.
        message: String,
    },
    /// The request was refused as invalid (HTTP 400 and other 4xx, with the server's id and text).
    #[error("the Pushjet server refused the request: {message} (HTTP {status}, error {id})")]
    Invalid {
        /// HTTP status code.
        status: u16,
        /// The protocol's error id.
        id: i64,
        /// The server's error text.
        message: String,
    },
    /// Too many requests (HTTP 429, usually from a proxy in front of the server).
    #[error("the Pushjet server asks to slow down (HTTP 429)")]
    RateLimited {
        /// How long the server asked to wait, from `Retry-After`.
        retry_after: Option<Duration>,
    },
    /// The request did not complete: connection, DNS, TLS or timeout.
    #[error("could not reach the Pushjet server: {0}")]
    Request(#[from] RequestError),
    /// The server failed (5xx) or answered something that is not the protocol.
    #[error("the Pushjet server failed: {detail} (HTTP {status})")]
    Server {
        /// HTTP status code.
        status: u16,
        /// What was wrong with the answer.
        detail: String,
    },
}

/// Why a request did not complete; keeps the transport's own description of the cause.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// No answer within the client's timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// Could not connect (DNS, refused, TLS handshake).
    #[error("connection failed: {0}")]
    Connect(String),
    /// The exchange broke off after connecting.
    #[error("{0}")]
    Transport(String),
}

impl Error {
    /// Maps a protocol error body and its HTTP status to the error a caller can act on.
    pub(crate) fn from_protocol(
        status: u16,
        body: ErrorBody,
        retry_after: Option<Duration>,
    ) -> Self {
        let ErrorBody { id, message } = body;
        match (status, id) {
            (429, _) | (_, 5) => Self::RateLimited { retry_after },
            (404, _) | (_, 6) => Self::Nonexistent { id, message },
            (409, _) | (_, 4 | 11) => Self::Subscription { id, message },
            (500..=599, _) => Self::Server {
                status,
                detail: format!("{message} (error {id})"),
            },
            _ => Self::Invalid {
                status,
                id,
                message,
            },
        }
    }

    /// True when trying again later may succeed (timeouts, connection failures, 5xx, 429); false
    /// when the request itself or the configuration must change first.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::RateLimited { .. } | Self::Request(_) | Self::Server { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(id: i64, message: &str) -> ErrorBody {
        ErrorBody {
            id,
            message: message.to_owned(),
        }
    }

    #[test]
    fn protocol_ids_map_to_the_python_clients_exceptions() {
        assert!(matches!(
            Error::from_protocol(404, body(6, "Service not found"), None),
            Error::Nonexistent { id: 6, .. }
        ));
        assert!(matches!(
            Error::from_protocol(409, body(4, "x"), None),
            Error::Subscription { id: 4, .. }
        ));
        assert!(matches!(
            Error::from_protocol(409, body(11, "x"), None),
            Error::Subscription { id: 11, .. }
        ));
        assert!(matches!(
            Error::from_protocol(400, body(3, "Invalid secret"), None),
            Error::Invalid {
                status: 400,
                id: 3,
                ..
            }
        ));
        assert!(matches!(
            Error::from_protocol(429, body(5, "x"), None),
            Error::RateLimited { .. }
        ));
    }

    #[test]
    fn old_servers_answering_errors_with_200_are_recognised_by_id() {
        assert!(matches!(
            Error::from_protocol(200, body(6, "Service not found"), None),
            Error::Nonexistent { .. }
        ));
        assert!(matches!(
            Error::from_protocol(200, body(4, "x"), None),
            Error::Subscription { .. }
        ));
        assert!(matches!(
            Error::from_protocol(200, body(7, "Missing argument message"), None),
            Error::Invalid {
                status: 200,
                id: 7,
                ..
            }
        ));
    }

    #[test]
    fn only_transport_server_and_rate_limit_errors_are_transient() {
        assert!(Error::from_protocol(503, body(0, "x"), None).is_transient());
        assert!(Error::RateLimited { retry_after: None }.is_transient());
        assert!(!Error::from_protocol(404, body(6, "x"), None).is_transient());
        assert!(!Error::from_protocol(400, body(3, "x"), None).is_transient());
        assert!(!Error::Access("send").is_transient());
    }
}
