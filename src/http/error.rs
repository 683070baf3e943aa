//! Every error a webhook or preview request can meet, mapped to an HTTP answer in one place. Each
//! body is `{"error": "<a sentence the sender can act on>"}`; none names a secret.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

use std::time::Duration;

use crate::delivery::OutboxError;
use crate::http::encoding::EncodingError;
use crate::pipeline::PipelineError;
use crate::pushjet::Error as PushjetError;
use crate::sources::DecodeError;
use crate::verify::AuthError;

/// Why a webhook was not (fully) handled.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// No route of that name.
    #[error("no route named `{0}`; the configured routes are listed in PUSHJET_BRIDGE_ROUTES")]
    UnknownRoute(String),
    /// Authentication failed. The answer never says which check failed; the log does (see
    /// [`HookError::log_detail`]).
    #[error("authentication failed")]
    Unauthorized(AuthError),
    /// The body is larger than the limit.
    #[error("the body is larger than {limit} bytes (PUSHJET_BRIDGE_MAX_BODY_BYTES)")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The body could not be read from the connection.
    #[error("the body could not be read: {0}")]
    Incomplete(String),
    /// The body did not arrive within the request timeout; the connection is closed.
    #[error("the request body did not arrive in time (PUSHJET_BRIDGE_REQUEST_TIMEOUT)")]
    TimedOut,
    /// The memory set aside for request bodies is taken: try again shortly.
    #[error(
        "too many request bodies are being received at once (PUSHJET_BRIDGE_MAX_BUFFERED_BYTES); try again shortly"
    )]
    Busy,
    /// The body's content type is not one the bridge reads.
    #[error("{0}")]
    UnsupportedMediaType(DecodeError),
    /// The body's `Content-Encoding` is not supported, the body does not decode, or it decodes
    /// to more than the body limit.
    #[error(transparent)]
    Encoding(#[from] EncodingError),
    /// The body is malformed.
    #[error("{0}")]
    Malformed(DecodeError),
    /// A protocol adapter (ntfy, Gotify) found a parameter it cannot use; the text says which.
    #[error("{0}")]
    InvalidParameter(String),
    /// Pushjet failed or could not be reached; trying again later may work.
    #[error("Pushjet did not take the notification: {0}")]
    Upstream(PushjetError),
    /// The outbox cannot take the notifications now (full, or the disk refuses): try again later.
    #[error("the notifications cannot be stored now: {0}; nothing was accepted, try again later")]
    Unavailable(OutboxError),
    /// Pushjet refused the route's service or secret: a configuration error.
    #[error(
        "Pushjet refused route `{route}`: {error}; check PUSHJET_BRIDGE_ROUTE_*_SECRET for this route"
    )]
    UpstreamRefused {
        /// The route.
        route: String,
        /// What Pushjet said.
        error: PushjetError,
    },
}

impl From<PipelineError> for HookError {
    fn from(error: PipelineError) -> Self {
        match error {
            PipelineError::Unauthorized(error) => Self::Unauthorized(error),
            PipelineError::Decode(error @ DecodeError::UnsupportedContentType(_)) => {
                Self::UnsupportedMediaType(error)
            }
            PipelineError::Decode(error) => Self::Malformed(error),
        }
    }
}

impl HookError {
    /// What the log says: the answer's sentence, and for a failed authentication which check
    /// failed (no secret is in it); control characters from the request come out escaped.
    pub fn log_detail(&self) -> String {
        let detail = match self {
            Self::Unauthorized(reason) => format!("authentication failed: {reason}"),
            other => other.to_string(),
        };
        crate::telemetry::escape_controls(&detail).into_owned()
    }

    /// True for refusals decided from the headers alone, while the body may still be arriving.
    fn refused_before_the_body(&self) -> bool {
        matches!(
            self,
            Self::UnknownRoute(_)
                | Self::Unauthorized(_)
                | Self::TooLarge { .. }
                | Self::UnsupportedMediaType(_)
                | Self::Encoding(EncodingError::Unsupported(_))
                | Self::Busy
        )
    }

    /// A short word for metrics and logs: why the webhook was refused.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::UnknownRoute(_) => "unknown_route",
            Self::Unauthorized(_) => "auth",
            Self::TooLarge { .. } => "size",
            Self::UnsupportedMediaType(_) | Self::Encoding(EncodingError::Unsupported(_)) => {
                "content_type"
            }
            Self::Encoding(EncodingError::TooLarge { .. }) => "size",
            Self::Encoding(EncodingError::Corrupt { .. }) => "malformed",
            Self::Incomplete(_) | Self::Malformed(_) | Self::InvalidParameter(_) => "malformed",
            Self::Unavailable(_) | Self::Busy => "unavailable",
            Self::TimedOut => "timeout",
            Self::Upstream(_) | Self::UpstreamRefused { .. } => "upstream",
        }
    }
}

impl ResponseError for HookError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::UnknownRoute(_) => StatusCode::NOT_FOUND,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Incomplete(_) | Self::Malformed(_) | Self::InvalidParameter(_) => {
                StatusCode::BAD_REQUEST
            }
            Self::UnsupportedMediaType(_) | Self::Encoding(EncodingError::Unsupported(_)) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            Self::Encoding(EncodingError::TooLarge { .. }) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Encoding(EncodingError::Corrupt { .. }) => StatusCode::BAD_REQUEST,
            Self::Upstream(_) => StatusCode::BAD_GATEWAY,
            Self::UpstreamRefused { .. } => StatusCode::FAILED_DEPENDENCY,
            Self::Unavailable(_) | Self::Busy => StatusCode::SERVICE_UNAVAILABLE,
            Self::TimedOut => StatusCode::REQUEST_TIMEOUT,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        match self {
            Self::Unauthorized(_) => {
                response
                    .insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
            }
            Self::Unavailable(error) => {
                let seconds = error
                    .retry_after()
                    .unwrap_or(Duration::from_secs(30))
                    .as_secs()
                    .max(1);
                response.insert_header((header::RETRY_AFTER, seconds));
            }
            Self::Busy => {
                response.insert_header((header::RETRY_AFTER, 1));
            }
            Self::TimedOut => {
                response.force_close();
            }
            _ => {}
        }
        if self.refused_before_the_body() {
            // The body was never read: close rather than read and drop it.
            response.force_close();
        }
        response.json(json!({ "error": self.to_string() }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_has_its_status() {
        let cases = [
            (HookError::UnknownRoute("x".into()), 404),
            (
                HookError::Unauthorized(crate::verify::AuthError::TokenMismatch),
                401,
            ),
            (HookError::TooLarge { limit: 1 }, 413),
            (
                HookError::UnsupportedMediaType(DecodeError::UnsupportedContentType(
                    "image/png".into(),
                )),
                415,
            ),
            (
                HookError::Malformed(DecodeError::MalformedJson {
                    line: 1,
                    column: 2,
                    detail: "x".into(),
                }),
                400,
            ),
            (HookError::InvalidParameter("priority".into()), 400),
            (
                HookError::Upstream(PushjetError::RateLimited { retry_after: None }),
                502,
            ),
            (
                HookError::UpstreamRefused {
                    route: "r".into(),
                    error: PushjetError::Nonexistent {
                        id: 6,
                        message: "Service not found".into(),
                    },
                },
                424,
            ),
        ];
        for (error, status) in cases {
            assert_eq!(error.status_code().as_u16(), status, "{error}");
        }
    }

    #[test]
    fn unauthorized_never_says_which_check_failed() {
        let error: HookError =
            PipelineError::Unauthorized(crate::verify::AuthError::TokenMismatch).into();
        assert_eq!(error.to_string(), "authentication failed");
    }
}
