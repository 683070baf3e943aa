//! `POST /hooks/{route}` (render and send) and `POST /preview/{route}` (render only): the thin
//! edge that turns a request into `(route, headers, body)` and a result into an answer.

use std::time::Instant;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use serde_json::json;

use crate::http::error::HookError;
use crate::pipeline::{Bridge, Inbound, Prepared};
use crate::pushjet::{Api, Error as PushjetError};
use crate::routes::Route;

/// Reads the body up to `limit` bytes; a larger one is refused as soon as it is known.
async fn read_body(
    request: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<web::Bytes, HookError> {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(HookError::TooLarge { limit });
    }
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(0));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|error| HookError::Incomplete(error.to_string()))?;
        if body.len() + chunk.len() > limit {
            return Err(HookError::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Finds the route, reads the body and runs the pipeline.
async fn prepare(
    request: &HttpRequest,
    route_name: &str,
    payload: web::Payload,
    bridge: &Bridge,
) -> Result<(Route, Prepared), HookError> {
    let route = bridge
        .routes
        .get(route_name)
        .ok_or_else(|| HookError::UnknownRoute(route_name.chars().take(64).collect()))?
        .clone();
    let body = read_body(request, payload, bridge.max_body_bytes).await?;
    let inbound = Inbound {
        headers: request.headers(),
        query: request.query_string(),
        body: &body,
    };
    let prepared = bridge.prepare(&route, inbound).map_err(|error| {
        tracing::warn!(route = %route.name, %error, "webhook refused");
        HookError::from(error)
    })?;
    Ok((route, prepared))
}

/// `POST /preview/{route}`: the notifications a payload would produce, without sending.
pub async fn preview(
    request: HttpRequest,
    route_name: web::Path<String>,
    payload: web::Payload,
    bridge: web::Data<Bridge>,
) -> Result<HttpResponse, HookError> {
    let (route, prepared) = prepare(&request, &route_name, payload, &bridge).await?;
    Ok(HttpResponse::Ok().json(json!({ "route": route.name, "preview": prepared })))
}

/// `POST /hooks/{route}`: renders the payload and sends its notifications to Pushjet.
pub async fn receive(
    request: HttpRequest,
    route_name: web::Path<String>,
    payload: web::Payload,
    bridge: web::Data<Bridge>,
    api: web::Data<Api>,
) -> Result<HttpResponse, HookError> {
    let started = Instant::now();
    let (route, prepared) = prepare(&request, &route_name, payload, &bridge).await?;
    let mut sent = 0usize;
    for notification in prepared.to_send() {
        if let Err(error) = api.send(&route.secret, notification).await {
            tracing::error!(route = %route.name, event = %prepared.event, sent, %error, "delivery to Pushjet failed");
            return Err(if error.is_transient() {
                HookError::Upstream(error)
            } else {
                classify_refusal(&route, error)
            });
        }
        sent += 1;
    }
    tracing::info!(
        route = %route.name,
        source = prepared.source,
        event = %prepared.event,
        action = prepared.action.as_deref().unwrap_or(""),
        delivery = prepared.delivery_id.as_deref().unwrap_or(""),
        outcome = if prepared.filtered.is_some() { "filtered" } else { "sent" },
        notifications = sent,
        duration_ms = started.elapsed().as_millis() as u64,
        "webhook handled"
    );
    Ok(HttpResponse::Ok().json(json!({
        "route": route.name,
        "sent": sent,
        "result": prepared,
    })))
}

/// A permanent refusal: the route's service is unknown or its secret refused.
fn classify_refusal(route: &Route, error: PushjetError) -> HookError {
    tracing::error!(
        route = %route.name,
        "configuration error: Pushjet refused this route's service; check {}SECRET",
        route.name.env_prefix()
    );
    HookError::UpstreamRefused {
        route: route.name.to_string(),
        error,
    }
}
