//! Request ids: taken from `X-Request-Id` when the caller sends a usable one, else a new UUID;
//! kept in the request's extensions for the log line and echoed in the answer.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage};

/// The header that carries the id both ways.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The longest caller-chosen id kept.
const MAX_ID_CHARS: usize = 128;

/// This request's id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

/// The caller's id when it is 1–128 visible ASCII characters, else a new UUID.
fn choose(offered: Option<&HeaderValue>) -> String {
    offered
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .filter(|id| {
            !id.is_empty() && id.len() <= MAX_ID_CHARS && id.bytes().all(|b| b.is_ascii_graphic())
        })
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned)
}

/// Middleware: assigns the id before the handler runs and echoes it on every answer.
pub async fn assign(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let id = choose(request.headers().get(REQUEST_ID_HEADER));
    request.extensions_mut().insert(RequestId(id.clone()));
    let mut response = next.call(request).await?;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_usable_caller_id_is_kept_and_anything_else_replaced() {
        assert_eq!(
            choose(Some(&HeaderValue::from_static("abc-123"))),
            "abc-123"
        );
        let fresh = choose(Some(&HeaderValue::from_static("has space")));
        assert!(uuid::Uuid::parse_str(&fresh).is_ok(), "{fresh}");
        assert!(uuid::Uuid::parse_str(&choose(None)).is_ok());
        let long = "x".repeat(129);
        assert_ne!(choose(Some(&HeaderValue::from_str(&long).unwrap())), long);
    }
}
