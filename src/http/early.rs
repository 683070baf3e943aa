//! What a webhook can be refused for from its headers alone, checked before its body is read so
//! that an unauthenticated or unreadable request costs no memory: the route's token, basic auth
//! and signature header, the content type, the content encoding, and the declared length.

use actix_web::HttpRequest;
use actix_web::http::header;

use crate::http::encoding;
use crate::http::error::HookError;
use crate::routes::Route;
use crate::sources::{DecodeError, check_content_type};

/// Refuses a request to `route` that would be refused anyway once its body is read.
pub fn check_headers(request: &HttpRequest, route: &Route, limit: usize) -> Result<(), HookError> {
    route
        .auth
        .verify_headers(request.headers(), request.query_string())
        .map_err(HookError::Unauthorized)?;
    check_content_type(request.headers()).map_err(|error| match error {
        error @ DecodeError::UnsupportedContentType(_) => HookError::UnsupportedMediaType(error),
        other => HookError::Malformed(other),
    })?;
    check_body_headers(request, limit)
}

/// Refuses a body that could not be read whatever the endpoint: an unknown content encoding or a
/// declared length over `limit`.
pub fn check_body_headers(request: &HttpRequest, limit: usize) -> Result<(), HookError> {
    encoding::check(request.headers())?;
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok());
    if declared.is_some_and(|length| length > u64::try_from(limit).unwrap_or(u64::MAX)) {
        return Err(HookError::TooLarge { limit });
    }
    Ok(())
}
