//! Why a console request failed, mapped to its answer in one place.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpResponse, ResponseError};

use crate::delivery::OutboxError;
use crate::history::{AgainError, HistoryError};

/// Why a console request failed.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// No admin token is configured.
    #[error("the console is off: set PUSHJET_BRIDGE_ADMIN_TOKEN to turn it on")]
    Off,
    /// A page was asked for without a session: answered with the sign-in page's address.
    #[error("sign in first")]
    SignInNeeded,
    /// A request that changes something came without a session.
    #[error("sign in first: this request needs a console session")]
    Unauthorized,
    /// A request that changes something came without its session's CSRF token.
    #[error("this request lacks the page's CSRF token: reload the page and try again")]
    Csrf,
    /// Too many failed sign-ins from this address.
    #[error("too many failed sign-ins from this address: try again in {} s", .0.as_secs().max(1))]
    TooManyFailures(Duration),
    /// The request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// Nothing is at this address.
    #[error("{0}")]
    NotFound(String),
    /// The outbox failed or refused.
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    /// The history failed, is off, or has no such record.
    #[error(transparent)]
    History(#[from] HistoryError),
    /// A record could not be replayed or rendered again.
    #[error(transparent)]
    Again(#[from] AgainError),
    /// Too many live streams are open.
    #[error("too many live history streams are open; close one and try again")]
    TooManyStreams,
    /// A page could not be rendered.
    #[error("the page could not be rendered: {0}")]
    Page(#[from] askama::Error),
    /// Something else failed on our side.
    #[error("{0}")]
    Internal(String),
}

impl ResponseError for ConsoleError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Off
            | Self::NotFound(_)
            | Self::Outbox(OutboxError::NoSuchDeadLetter(_))
            | Self::History(HistoryError::Off | HistoryError::NotFound(_))
            | Self::Again(AgainError::History(HistoryError::Off | HistoryError::NotFound(_))) => {
                StatusCode::NOT_FOUND
            }
            Self::Again(
                AgainError::RouteGone(_) | AgainError::NothingToSend(_) | AgainError::NoBody(_),
            ) => StatusCode::CONFLICT,
            Self::Again(AgainError::Pipeline(_)) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::TooManyStreams => StatusCode::TOO_MANY_REQUESTS,
            Self::History(HistoryError::Unavailable(_))
            | Self::Again(
                AgainError::History(HistoryError::Unavailable(_))
                | AgainError::Outbox(OutboxError::Full { .. } | OutboxError::Unavailable(_)),
            ) => StatusCode::SERVICE_UNAVAILABLE,
            Self::History(HistoryError::Record(_))
            | Self::Again(AgainError::History(HistoryError::Record(_)) | AgainError::Outbox(_)) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            Self::SignInNeeded => StatusCode::SEE_OTHER,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Csrf => StatusCode::FORBIDDEN,
            Self::TooManyFailures(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Outbox(OutboxError::Full { .. } | OutboxError::Unavailable(_)) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Outbox(_) | Self::Page(_) | Self::Internal(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        response.insert_header((header::CACHE_CONTROL, "no-store"));
        match self {
            Self::SignInNeeded => {
                response.insert_header((header::LOCATION, "/console/sign-in"));
            }
            Self::TooManyFailures(wait) => {
                response.insert_header((header::RETRY_AFTER, wait.as_secs().max(1).to_string()));
            }
            Self::Outbox(error) => {
                if let Some(wait) = error.retry_after() {
                    response.insert_header((header::RETRY_AFTER, wait.as_secs().to_string()));
                }
            }
            _ => {}
        }
        response
            .content_type("text/plain; charset=utf-8")
            .body(format!("{self}\n"))
    }
}
