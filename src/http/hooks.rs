//! `POST /hooks/{route}` (render and queue or send) and `POST /preview/{route}` (render only): the thin
//! edge that turns a request into `(route, headers, body)` and a result into an answer.

use std::time::Instant;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use serde_json::json;

use crate::delivery::{Enqueued, Failure, Outbox, classify};
use crate::http::error::HookError;
use crate::pipeline::{Bridge, Inbound, Prepared};
use crate::pushjet::{Api, NewMessage};
use crate::routes::{DeliveryMode, Route};

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

/// `POST /hooks/{route}`: renders the payload and hands its notifications to Pushjet: through the
/// durable outbox (202 once they are on disk), or directly for routes in `sync` mode.
pub async fn receive(
    request: HttpRequest,
    route_name: web::Path<String>,
    payload: web::Payload,
    bridge: web::Data<Bridge>,
    outbox: web::Data<Outbox>,
    api: web::Data<Api>,
) -> Result<HttpResponse, HookError> {
    let started = Instant::now();
    let (route, prepared) = prepare(&request, &route_name, payload, &bridge).await?;
    let notifications: Vec<NewMessage> = prepared.to_send().cloned().collect();
    let (status, outcome, body) = if notifications.is_empty() {
        let outcome = if prepared.filtered.is_some() {
            "filtered"
        } else {
            "nothing to send"
        };
        (
            StatusCode::OK,
            outcome,
            json!({ "route": route.name, "queued": [], "result": prepared }),
        )
    } else {
        match route.delivery {
            DeliveryMode::Queued => {
                match outbox
                    .enqueue(&route.name, notifications, prepared.dedup_key.clone())
                    .await
                {
                    Ok(Enqueued::Queued(ids)) => (
                        StatusCode::ACCEPTED,
                        "queued",
                        json!({ "route": route.name, "queued": ids, "result": prepared }),
                    ),
                    Ok(Enqueued::Duplicate) => (
                        StatusCode::OK,
                        "duplicate",
                        json!({
                            "route": route.name,
                            "duplicate": true,
                            "queued": [],
                            "message": "this delivery was already accepted; nothing was sent again",
                        }),
                    ),
                    Err(error) => {
                        tracing::error!(route = %route.name, %error, "the outbox refused the webhook's notifications");
                        return Err(HookError::Unavailable(error));
                    }
                }
            }
            DeliveryMode::Sync => {
                let sent = send_now(&api, &route, &notifications).await?;
                (
                    StatusCode::OK,
                    "sent",
                    json!({ "route": route.name, "sent": sent, "result": prepared }),
                )
            }
        }
    };
    let count = prepared.notifications.len();
    tracing::info!(
        route = %route.name,
        source = prepared.source,
        event = %prepared.event,
        action = prepared.action.as_deref().unwrap_or(""),
        delivery = prepared.delivery_id.as_deref().unwrap_or(""),
        outcome,
        notifications = count,
        duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "webhook handled"
    );
    Ok(HttpResponse::build(status).json(body))
}

/// Sends every notification now, in order; the first failure is the answer (502 when trying again
/// may work, 424 when Pushjet refused the route's service).
async fn send_now(
    api: &Api,
    route: &Route,
    notifications: &[NewMessage],
) -> Result<usize, HookError> {
    for (sent, notification) in notifications.iter().enumerate() {
        if let Err(error) = api.send(&route.secret, notification).await {
            tracing::error!(route = %route.name, sent, %error, "delivery to Pushjet failed");
            return Err(match classify(&error, &route.name) {
                Failure::Transient { .. } => HookError::Upstream(error),
                Failure::Permanent { reason } => {
                    tracing::error!(route = %route.name, "configuration error: {reason}");
                    HookError::UpstreamRefused {
                        route: route.name.to_string(),
                        error,
                    }
                }
            });
        }
    }
    Ok(notifications.len())
}
