//! `POST /hooks/{route}` (render and queue or send) and `POST /preview/{route}` (render only): the thin
//! edge that turns a request into `(route, headers, body)` and a result into an answer.

use std::time::Instant;

use actix_web::http::StatusCode;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, ResponseError, web};
use futures_util::StreamExt;
use serde_json::json;

use crate::delivery::{Enqueued, Failure, Outbox, classify};
use crate::http::error::HookError;
use crate::http::request_id::RequestId;
use crate::http::{early, encoding, limits};
use crate::metrics::{Metrics, Rejection, route_source};
use crate::pipeline::{Bridge, Inbound, Prepared};
use crate::pushjet::{Api, NewMessage};
use crate::reload::SharedBridge;
use crate::routes::{DeliveryMode, Route};

/// Reads the body up to `limit` bytes (its declared length was checked with the headers). The
/// buffer grows with what arrives, never to what a client merely declares.
async fn read_body(mut payload: web::Payload, limit: usize) -> Result<web::Bytes, HookError> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|error| {
            if limits::is_timed_out(&error) {
                HookError::TimedOut
            } else if limits::is_over_budget(&error) {
                HookError::Busy
            } else {
                HookError::Incomplete(error.to_string())
            }
        })?;
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
    early::check_headers(request, &route, bridge.max_body_bytes)?;
    let body = read_body(payload, bridge.max_body_bytes).await?;
    let body = encoding::decode(request.headers(), body, bridge.max_body_bytes)?;
    let inbound = Inbound {
        headers: request.headers(),
        query: request.query_string(),
        body: &body,
    };
    let prepared = bridge.prepare(&route, inbound)?;
    Ok((route, prepared))
}

/// `POST /preview/{route}`: the notifications a payload would produce, without sending.
pub async fn preview(
    request: HttpRequest,
    route_name: web::Path<String>,
    payload: web::Payload,
    bridge: web::Data<SharedBridge>,
) -> Result<HttpResponse, HookError> {
    let bridge = bridge.load_full();
    let (route, prepared) = prepare(&request, &route_name, payload, &bridge).await?;
    Ok(HttpResponse::Ok().json(json!({ "route": route.name, "preview": prepared })))
}

/// What happened to an accepted webhook's notifications.
enum Handed {
    /// Nothing to send: filtered, or every template skipped.
    Nothing,
    /// Stored in the outbox with these ids.
    Queued(Vec<u64>),
    /// The same delivery was accepted before; nothing stored.
    Duplicate,
    /// Sent directly (a `sync` route): how many.
    Sent(usize),
}

/// `POST /hooks/{route}`: renders the payload and hands its notifications to Pushjet: through the
/// durable outbox (202 once they are on disk), or directly for routes in `sync` mode. Logs one
/// line per webhook and counts it in the metrics, whatever the outcome.
pub async fn receive(
    request: HttpRequest,
    route_name: web::Path<String>,
    payload: web::Payload,
    bridge: web::Data<SharedBridge>,
    outbox: web::Data<Outbox>,
    api: web::Data<Api>,
    metrics: web::Data<Metrics>,
) -> Result<HttpResponse, HookError> {
    let started = Instant::now();
    let bridge = bridge.load_full();
    let request_id = request_id(&request);
    let outcome = match prepare(&request, &route_name, payload, &bridge).await {
        Ok((route, prepared)) => hand_over(&route, &prepared, &outbox, &api, &metrics)
            .await
            .map(|handed| (route, prepared, handed)),
        Err(error) => Err(error),
    };
    let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let known_route = bridge
        .routes
        .get(&route_name)
        .map(|route| route.name.to_string());
    let route_label = known_route.unwrap_or_else(|| UNKNOWN_ROUTE.to_owned());
    match outcome {
        Ok((route, prepared, handed)) => {
            count_accepted(&metrics, &route_label, &prepared, &handed);
            let ids = match &handed {
                Handed::Queued(ids) => ids.iter().map(u64::to_string).collect::<Vec<_>>().join(","),
                _ => String::new(),
            };
            let (status, word, body) = match handed {
                Handed::Nothing => (
                    StatusCode::OK,
                    if prepared.filtered.is_some() {
                        "filtered"
                    } else {
                        "nothing to send"
                    },
                    json!({ "route": route.name, "queued": [], "result": prepared }),
                ),
                Handed::Queued(ids) => (
                    StatusCode::ACCEPTED,
                    "queued",
                    json!({ "route": route.name, "queued": ids, "result": prepared }),
                ),
                Handed::Duplicate => (
                    StatusCode::OK,
                    "duplicate",
                    json!({
                        "route": route.name,
                        "duplicate": true,
                        "queued": [],
                        "message": "this delivery was already accepted; nothing was sent again",
                    }),
                ),
                Handed::Sent(sent) => (
                    StatusCode::OK,
                    "sent",
                    json!({ "route": route.name, "sent": sent, "result": prepared }),
                ),
            };
            tracing::info!(
                request_id = %request_id,
                route = %route.name,
                source = prepared.source,
                event = %crate::telemetry::escape_controls(&prepared.event),
                action = prepared.action.as_deref().unwrap_or(""),
                delivery = prepared.delivery_id.as_deref().unwrap_or(""),
                outcome = word,
                notifications = prepared.notifications.len(),
                ids = %ids,
                duration_ms,
                "webhook handled"
            );
            Ok(HttpResponse::build(status).json(body))
        }
        Err(error) => {
            if !matches!(error, HookError::UnknownRoute(_)) {
                metrics
                    .webhooks_received
                    .get_or_create(&route_source(&route_label, ""))
                    .inc();
            }
            metrics
                .webhooks_rejected
                .get_or_create(&Rejection {
                    route: route_label.clone(),
                    reason: error.reason().to_owned(),
                })
                .inc();
            tracing::warn!(
                request_id = %request_id,
                route = %route_label,
                outcome = "rejected",
                reason = error.reason(),
                status = error.status_code().as_u16(),
                duration_ms,
                "webhook refused: {}",
                error.log_detail()
            );
            Err(error)
        }
    }
}

/// The label of requests to a path that names no route (never the path itself: that would let
/// anybody create label values).
const UNKNOWN_ROUTE: &str = "(unknown)";

/// The request id set by the request-id middleware, or `-`.
fn request_id(request: &HttpRequest) -> String {
    request
        .extensions()
        .get::<RequestId>()
        .map_or_else(|| "-".to_owned(), |id| id.0.clone())
}

/// Queues or sends the notifications of an accepted webhook.
async fn hand_over(
    route: &Route,
    prepared: &Prepared,
    outbox: &Outbox,
    api: &Api,
    metrics: &Metrics,
) -> Result<Handed, HookError> {
    let notifications: Vec<NewMessage> = prepared.to_send().cloned().collect();
    if notifications.is_empty() {
        return Ok(Handed::Nothing);
    }
    match route.delivery {
        DeliveryMode::Queued => match outbox
            .enqueue(&route.name, notifications, prepared.dedup_key.clone())
            .await
        {
            Ok(Enqueued::Queued(ids)) => Ok(Handed::Queued(ids)),
            Ok(Enqueued::Duplicate) => Ok(Handed::Duplicate),
            Err(error) => Err(HookError::Unavailable(error)),
        },
        DeliveryMode::Sync => send_now(api, route, &notifications, metrics)
            .await
            .map(Handed::Sent),
    }
}

/// Counts an accepted webhook in the metrics.
fn count_accepted(metrics: &Metrics, route: &str, prepared: &Prepared, handed: &Handed) {
    let labels = route_source(route, prepared.source);
    metrics.webhooks_received.get_or_create(&labels).inc();
    if prepared.filtered.is_some() {
        metrics.webhooks_filtered.get_or_create(&labels).inc();
    }
    if matches!(handed, Handed::Duplicate) {
        metrics.webhooks_deduplicated.get_or_create(&labels).inc();
    }
    let rendered = prepared.notifications.len() as u64;
    metrics
        .notifications_rendered
        .get_or_create(&labels)
        .inc_by(rendered);
    let failed = prepared
        .notifications
        .iter()
        .filter(|n| n.template_error.is_some())
        .count() as u64;
    if failed > 0 {
        metrics
            .template_errors
            .get_or_create(&labels)
            .inc_by(failed);
    }
    if let Handed::Sent(sent) = handed {
        metrics
            .notifications_sent
            .get_or_create(&crate::metrics::route_label(route))
            .inc_by(*sent as u64);
    }
}

/// Sends every notification now, in order; the first failure is the answer (502 when trying again
/// may work, 424 when Pushjet refused the route's service). Each request is timed in the metrics
/// like a queued send.
async fn send_now(
    api: &Api,
    route: &Route,
    notifications: &[NewMessage],
    metrics: &Metrics,
) -> Result<usize, HookError> {
    for (sent, notification) in notifications.iter().enumerate() {
        let started = Instant::now();
        let result = api.send(&route.secret, notification).await;
        let outcome = match &result {
            Ok(()) => "ok",
            Err(error) if error.is_transient() => "transient",
            Err(_) => "permanent",
        };
        metrics.observe_pushjet(outcome, started.elapsed());
        if let Err(error) = result {
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
