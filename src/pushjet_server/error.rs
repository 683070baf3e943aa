//! The protocol's errors: each one knows its error id, its exact message text and its HTTP status,
//! and turns itself into the body the real server sends.

use actix_web::http::StatusCode;
use actix_web::http::header::RETRY_AFTER;
use actix_web::{HttpResponse, ResponseError};

use super::fields::TooLong;
use super::store::StoreError;

/// The `Content-Type` of the acknowledgement and of error bodies, as the real server sends them.
pub(crate) const TEXT_HTML: &str = "text/html; charset=utf-8";

/// Everything a Pushjet request can fail with. The messages of the variants with ids 1 to 11 are
/// the real server's texts, character for character.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// Id 1: `uuid` present but not an 8-4-4-4-12 hexadecimal UUID.
    #[error("Invalid client uuid")]
    InvalidClient,
    /// Id 2: `service` present but not a public key.
    #[error("Invalid service")]
    InvalidService,
    /// Id 3: `secret` present but not a secret key.
    #[error("Invalid secret")]
    InvalidSecret,
    /// Id 4: the device is already subscribed to the service.
    #[error("Already subscribed to that service")]
    AlreadySubscribed,
    /// Id 6: a well-formed key that matches no service.
    #[error("Service not found")]
    ServiceNotFound,
    /// Id 7: a required parameter is absent or empty.
    #[error("Missing argument {0}")]
    MissingArgument(&'static str),
    /// Id 10: `PATCH /service` with neither `name` nor `icon`.
    #[error("No changes were made")]
    NoChanges,
    /// Id 11: the device is not subscribed to the service.
    #[error("Not subscribed to that service")]
    NotSubscribed,
    /// Id 7, HTTP 400 (not in the real server, which answers 500): a field over its size limit.
    #[error("Argument {0}")]
    TooLong(#[from] TooLong),
    /// Id 7, HTTP 413 (not in the real server, which has no limit): the body is too large.
    #[error("Request body too large: at most {limit} bytes are accepted")]
    BodyTooLarge {
        /// The most bytes a body may have.
        limit: usize,
    },
    /// Id 7, HTTP 400 (not in the real server, which replaces bad bytes): an unreadable body or
    /// query string.
    #[error("Malformed request: {0}")]
    Malformed(&'static str),
    /// HTTP 500 with an HTML page, like any unhandled failure of the real server.
    #[error("internal error: {0}")]
    Internal(String),
    // Limits against hostile load (not in the real server; see `super::limits`).
    /// Id 7, HTTP 408: the body did not arrive within the request timeout; the connection closes.
    #[error("Request timed out: the body did not arrive in time")]
    TimedOut,
    /// Id 7, HTTP 503 with `Retry-After`: the memory for request bodies is taken.
    #[error("Server busy: too many request bodies at once, try again shortly")]
    Busy,
    /// Id 5, HTTP 429 with `Retry-After`: this client address sent too many writes.
    #[error("Whoaw there cowboy, slow down!")]
    RateLimited {
        /// When the next write will be accepted.
        retry_after: std::time::Duration,
    },
    /// Id 7, HTTP 401: creating services needs `PUSHJET_BRIDGE_PUSHJET_CREATE_TOKEN`.
    #[error(
        "Creating a service needs the server's create token (Authorization: Bearer <PUSHJET_BRIDGE_PUSHJET_CREATE_TOKEN>)"
    )]
    CreateTokenRequired,
    /// Id 7, HTTP 507: the embedded API reached its disk ceiling and stores nothing more.
    #[error("Insufficient storage: the server stores no more until space is freed")]
    StorageFull,
    /// Id 7, HTTP 503 with `Retry-After`: the shared database cannot be reached (the reason is
    /// logged, not sent).
    #[error("Service unavailable: the database cannot be reached, try again shortly")]
    Unavailable(String),
}

/// How long a client (the bridge's own dispatcher, mostly) is asked to wait when the database
/// cannot be reached: a database that fails over is usually back within seconds.
const UNAVAILABLE_RETRY_SECONDS: u64 = 2;

impl ProtocolError {
    /// The protocol's error id, `None` for internal failures (which have no protocol body).
    pub fn id(&self) -> Option<i64> {
        match self {
            Self::InvalidClient => Some(1),
            Self::InvalidService => Some(2),
            Self::InvalidSecret => Some(3),
            Self::AlreadySubscribed => Some(4),
            Self::ServiceNotFound => Some(6),
            Self::MissingArgument(_)
            | Self::TooLong(_)
            | Self::BodyTooLarge { .. }
            | Self::Malformed(_)
            | Self::TimedOut
            | Self::Busy
            | Self::CreateTokenRequired
            | Self::StorageFull
            | Self::Unavailable(_) => Some(7),
            Self::RateLimited { .. } => Some(5),
            Self::NoChanges => Some(10),
            Self::NotSubscribed => Some(11),
            Self::Internal(_) => None,
        }
    }
}

impl From<StoreError> for ProtocolError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::ServiceNotFound => Self::ServiceNotFound,
            StoreError::AlreadySubscribed => Self::AlreadySubscribed,
            StoreError::NotSubscribed => Self::NotSubscribed,
            StoreError::Full => Self::StorageFull,
            StoreError::Unavailable(reason) => Self::Unavailable(reason),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl ResponseError for ProtocolError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::InvalidClient
            | Self::InvalidService
            | Self::InvalidSecret
            | Self::MissingArgument(_)
            | Self::NoChanges
            | Self::TooLong(_)
            | Self::Malformed(_) => StatusCode::BAD_REQUEST,
            Self::AlreadySubscribed | Self::NotSubscribed => StatusCode::CONFLICT,
            Self::ServiceNotFound => StatusCode::NOT_FOUND,
            Self::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::TimedOut => StatusCode::REQUEST_TIMEOUT,
            Self::Busy | Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::CreateTokenRequired => StatusCode::UNAUTHORIZED,
            Self::StorageFull => StatusCode::INSUFFICIENT_STORAGE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let body = match self.id() {
            Some(id) => protocol_body(id, &self.to_string()),
            None => {
                tracing::error!(error = %self, "Pushjet request failed");
                html_page(
                    status,
                    "The server encountered an internal error and was unable to complete your \
                     request.",
                )
            }
        };
        let mut response = HttpResponse::build(status);
        match self {
            Self::TimedOut => {
                response.force_close();
            }
            Self::Busy => {
                response.insert_header((RETRY_AFTER, 1));
            }
            Self::Unavailable(reason) => {
                tracing::warn!("Pushjet request refused: {reason}");
                response.insert_header((RETRY_AFTER, UNAVAILABLE_RETRY_SECONDS));
            }
            Self::RateLimited { retry_after } => {
                let seconds = retry_after.as_millis().div_ceil(1000).max(1);
                response.insert_header((RETRY_AFTER, seconds.to_string()));
            }
            _ => {}
        }
        response.content_type(TEXT_HTML).body(body)
    }
}

/// `{"error": {"message": …, "id": …}}` with the separators and key order of Python's
/// `json.dumps`, as the real server writes it.
fn protocol_body(id: i64, message: &str) -> String {
    let message = serde_json::Value::String(message.to_owned());
    format!(r#"{{"error": {{"message": {message}, "id": {id}}}}}"#)
}

/// A small HTML error page in the style of the real server's framework pages.
pub(crate) fn html_page(status: StatusCode, explanation: &str) -> String {
    let code = status.as_u16();
    let reason = status.canonical_reason().unwrap_or("Error");
    format!(
        "<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 3.2 Final//EN\">\n<title>{code} {reason}</title>\n\
         <h1>{reason}</h1>\n<p>{explanation}</p>\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_body_matches_the_python_servers_bytes() {
        assert_eq!(
            protocol_body(3, "Invalid secret"),
            r#"{"error": {"message": "Invalid secret", "id": 3}}"#
        );
    }

    #[test]
    fn every_table_error_has_its_id_status_and_text() {
        let cases = [
            (ProtocolError::InvalidClient, 1, 400, "Invalid client uuid"),
            (ProtocolError::InvalidService, 2, 400, "Invalid service"),
            (ProtocolError::InvalidSecret, 3, 400, "Invalid secret"),
            (
                ProtocolError::AlreadySubscribed,
                4,
                409,
                "Already subscribed to that service",
            ),
            (ProtocolError::ServiceNotFound, 6, 404, "Service not found"),
            (
                ProtocolError::MissingArgument("uuid"),
                7,
                400,
                "Missing argument uuid",
            ),
            (ProtocolError::NoChanges, 10, 400, "No changes were made"),
            (
                ProtocolError::NotSubscribed,
                11,
                409,
                "Not subscribed to that service",
            ),
        ];
        for (error, id, status, text) in cases {
            assert_eq!(error.id(), Some(id));
            assert_eq!(error.status_code().as_u16(), status);
            assert_eq!(error.to_string(), text);
        }
    }

    #[test]
    fn an_unreachable_database_answers_503_with_retry_after_and_no_reason() {
        let error = ProtocolError::from(StoreError::Unavailable("the database: refused".into()));
        let response = error.error_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers().get(RETRY_AFTER).unwrap(), "2");
        assert_eq!(error.id(), Some(7));
        assert!(!error.to_string().contains("refused"), "{error}");
    }

    #[test]
    fn internal_errors_have_no_protocol_id_and_answer_500() {
        let error = ProtocolError::Internal("disk full".to_owned());
        assert_eq!(error.id(), None);
        assert_eq!(error.status_code(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
