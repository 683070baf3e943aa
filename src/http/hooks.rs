//! `POST /hooks/{route}` (render and queue or send) and `POST /preview/{route}` (render only): the thin
//! edge that turns a request into `(route, headers, body)` and a result into an answer.

use std::time::Instant;

use actix_web::http::StatusCode;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, ResponseError, web};
use futures_util::StreamExt;
use serde_json::json;

use crate::delivery::noise::{Admission, Admitted};
use crate::delivery::{DedupKey, DedupKind, Enqueued, Failure, Outbox, classify};
use crate::http::error::HookError;
use crate::http::recording;
use crate::http::request_id::RequestId;
use crate::http::{early, encoding, limits};
use crate::metrics::{Metrics, Rejection, route_source};
use crate::noise::{Candidate, Verdict};
use crate::notification::Assembled;
use crate::pipeline::{Bridge, Inbound, Prepared};
use crate::pushjet::{Api, NewMessage};
use crate::reload::SharedBridge;
use crate::routes::{DeliveryMode, Route, RouteName};
use crate::sources::SourceKind;
use crate::streams::RouteAnnouncer;

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

/// Reads a body whose headers passed their checks, at most `limit` bytes, decoded when it has a
/// `Content-Encoding`.
async fn read_decoded_body(
    request: &HttpRequest,
    payload: web::Payload,
    limit: usize,
) -> Result<web::Bytes, HookError> {
    let body = read_body(payload, limit).await?;
    Ok(encoding::decode(request.headers(), body, limit)?)
}

/// Reads the body of a request a protocol adapter (ntfy, Gotify) authenticates itself: refused
/// from its headers when its encoding or declared length cannot be read, then as `/hooks` reads
/// one.
pub(crate) async fn read_adapted_body(
    request: &HttpRequest,
    payload: web::Payload,
    limit: usize,
) -> Result<web::Bytes, HookError> {
    early::check_body_headers(request, limit)?;
    read_decoded_body(request, payload, limit).await
}

/// Reads the body and runs the pipeline for `route`.
async fn prepare(
    request: &HttpRequest,
    route: &Route,
    payload: web::Payload,
    bridge: &Bridge,
) -> Result<Prepared, HookError> {
    early::check_headers(request, route, bridge.max_body_bytes)?;
    let body = read_decoded_body(request, payload, bridge.max_body_bytes).await?;
    let inbound = Inbound {
        headers: request.headers(),
        query: request.query_string(),
        body: &body,
    };
    recording::keep_input(request, &inbound, None);
    Ok(bridge.prepare(route, inbound)?)
}

/// The route a path names, or the 404 that says so.
pub(crate) fn find_route<'b>(bridge: &'b Bridge, route_name: &str) -> Result<&'b Route, HookError> {
    bridge
        .routes
        .get(route_name)
        .ok_or_else(|| HookError::UnknownRoute(route_name.chars().take(64).collect()))
}

/// `POST /preview/{route}`: the notifications a payload would produce, without sending.
pub async fn preview(
    request: HttpRequest,
    route_name: web::Path<String>,
    payload: web::Payload,
    bridge: web::Data<SharedBridge>,
) -> Result<HttpResponse, HookError> {
    let bridge = bridge.load_full();
    let route = find_route(&bridge, &route_name)?;
    let prepared = prepare(&request, route, payload, &bridge).await?;
    Ok(HttpResponse::Ok().json(json!({ "route": route.name, "preview": prepared })))
}

/// Where accepted notifications go: the outbox, or Pushjet directly for `sync` routes (each
/// request timed in the metrics).
#[derive(Clone, Copy)]
pub(crate) struct Handoff<'a> {
    pub(crate) outbox: &'a Outbox,
    pub(crate) api: &'a Api,
    pub(crate) metrics: &'a Metrics,
    /// Told of what a `sync` route delivered, for the route's stream (the dispatcher tells it of
    /// the rest).
    pub(crate) announcer: Option<&'a RouteAnnouncer>,
}

/// The application's [`RouteAnnouncer`], if it has one.
pub(crate) fn announcer(request: &HttpRequest) -> Option<&RouteAnnouncer> {
    request
        .app_data::<web::Data<RouteAnnouncer>>()
        .map(|data| data.get_ref())
}

/// What happened to an accepted webhook's notifications.
pub(crate) enum Handed {
    /// Nothing to send: filtered, or every template skipped.
    Nothing,
    /// Stored in the outbox with these ids.
    Queued(Vec<u64>),
    /// The same delivery was accepted before; nothing stored.
    Duplicate,
    /// Sent directly (a `sync` route): how many.
    Sent(usize),
}

/// An accepted webhook: what it turned into and where its notifications went.
pub(crate) struct Accepted<'r> {
    route: &'r RouteName,
    prepared: Prepared,
    handed: Handed,
}

impl Accepted<'_> {
    /// What the webhook turned into.
    pub(crate) fn prepared(&self) -> &Prepared {
        &self.prepared
    }

    /// Where its notifications went.
    pub(crate) fn handed(&self) -> &Handed {
        &self.handed
    }

    /// The word the log line uses for the outcome.
    fn outcome(&self) -> &'static str {
        match self.handed {
            Handed::Nothing if self.prepared.filtered.is_some() => "filtered",
            Handed::Nothing => "nothing to send",
            Handed::Queued(_) => "queued",
            Handed::Duplicate => "duplicate",
            Handed::Sent(_) => "sent",
        }
    }

    /// The answer to the sender, serialised straight from what the webhook turned into.
    fn answer(self) -> HttpResponse {
        let mut body = AnswerBody {
            duplicate: None,
            message: None,
            queued: Some(&[]),
            result: Some(&self.prepared),
            route: self.route,
            sent: None,
        };
        let status = match &self.handed {
            Handed::Nothing => StatusCode::OK,
            Handed::Queued(ids) => {
                body.queued = Some(ids);
                StatusCode::ACCEPTED
            }
            Handed::Duplicate => {
                body.duplicate = Some(true);
                body.message = Some("this delivery was already accepted; nothing was sent again");
                body.result = None;
                StatusCode::OK
            }
            Handed::Sent(sent) => {
                body.queued = None;
                body.sent = Some(*sent);
                StatusCode::OK
            }
        };
        HttpResponse::build(status).json(body)
    }
}

/// The JSON answer to an accepted webhook; its keys in alphabetical order, as they always were.
#[derive(serde::Serialize)]
struct AnswerBody<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    duplicate: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    queued: Option<&'a [u64]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<&'a Prepared>,
    route: &'a RouteName,
    #[serde(skip_serializing_if = "Option::is_none")]
    sent: Option<usize>,
}

/// `POST /hooks/{route}`: renders the payload and hands its notifications to Pushjet: through the
/// durable outbox (202 once they are on disk), or directly for routes in `sync` mode. Decides,
/// then logs one line and counts the webhook in the metrics whatever the outcome, then answers.
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
    let (route, outcome) = match find_route(&bridge, &route_name) {
        Ok(route) => (
            Some(&route.name),
            accept(
                &request,
                route,
                payload,
                &bridge,
                Handoff {
                    outbox: &outbox,
                    api: &api,
                    metrics: &metrics,
                    announcer: announcer(&request),
                },
            )
            .await,
        ),
        Err(error) => (None, Err(error)),
    };
    observe(&metrics, &request, route, &outcome, started);
    outcome.map(Accepted::answer)
}

/// Runs an accepted route's webhook through the pipeline and hands its notifications over.
async fn accept<'r>(
    request: &HttpRequest,
    route: &'r Route,
    payload: web::Payload,
    bridge: &Bridge,
    handoff: Handoff<'_>,
) -> Result<Accepted<'r>, HookError> {
    let prepared = prepare(request, route, payload, bridge).await?;
    hand_over_prepared(route, prepared, handoff).await
}

/// Runs a request a protocol adapter (ntfy, Gotify) turned into `source`'s shape through the
/// pipeline as a webhook of `route`, and hands its notifications over as `/hooks` does.
pub(crate) async fn accept_adapted<'r>(
    route: &'r Route,
    inbound: Inbound<'_>,
    source: SourceKind,
    bridge: &Bridge,
    handoff: Handoff<'_>,
) -> Result<Accepted<'r>, HookError> {
    let prepared = bridge.prepare_as(route, inbound, source)?;
    hand_over_prepared(route, prepared, handoff).await
}

async fn hand_over_prepared<'r>(
    route: &'r Route,
    mut prepared: Prepared,
    handoff: Handoff<'_>,
) -> Result<Accepted<'r>, HookError> {
    let handed = hand_over(route, &mut prepared, handoff).await?;
    Ok(Accepted {
        route: &route.name,
        prepared,
        handed,
    })
}

/// Logs one line for the webhook and counts it in the metrics.
pub(crate) fn observe(
    metrics: &Metrics,
    request: &HttpRequest,
    route: Option<&RouteName>,
    outcome: &Result<Accepted<'_>, HookError>,
    started: Instant,
) {
    let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let request_id = request_id(request);
    let route_label = route.map_or(UNKNOWN_ROUTE, RouteName::as_str);
    match outcome {
        Ok(accepted) => {
            count_accepted(metrics, route_label, accepted);
            let prepared = &accepted.prepared;
            let ids = match &accepted.handed {
                Handed::Queued(ids) => ids.iter().map(u64::to_string).collect::<Vec<_>>().join(","),
                _ => String::new(),
            };
            tracing::info!(
                request_id = %request_id,
                route = route_label,
                source = prepared.source,
                event = %crate::telemetry::escape_controls(&prepared.event),
                action = %crate::telemetry::escape_controls(prepared.action.as_deref().unwrap_or("")),
                delivery = %crate::telemetry::escape_controls(prepared.delivery_id.as_deref().unwrap_or("")),
                outcome = accepted.outcome(),
                notifications = prepared.notifications.len(),
                ids = %ids,
                duration_ms,
                "webhook handled"
            );
        }
        Err(error) => {
            if route.is_some() {
                metrics
                    .webhooks_received
                    .get_or_create(&route_source(route_label, ""))
                    .inc();
            }
            metrics
                .webhooks_rejected
                .get_or_create(&Rejection {
                    route: route_label.to_owned(),
                    reason: error.reason().to_owned(),
                })
                .inc();
            tracing::warn!(
                request_id = %request_id,
                route = route_label,
                outcome = "rejected",
                reason = error.reason(),
                status = error.status_code().as_u16(),
                duration_ms,
                "webhook refused: {}",
                error.log_detail()
            );
        }
    }
    recording::note(request, route, outcome, &request_id);
}

/// What a protocol adapter (ntfy, Gotify) read from a request: the accepted webhook and the
/// message fields it answers with, or why it was refused.
pub(crate) type AdaptedOutcome<'r> =
    Result<(Accepted<'r>, serde_json::Map<String, serde_json::Value>), HookError>;

/// Logs and counts an adapter's publish as [`observe`] does a webhook's; returns the accepted
/// webhook (or why not) and the message fields (empty when refused).
pub(crate) fn observe_adapted<'r>(
    metrics: &Metrics,
    request: &HttpRequest,
    route: Option<&Route>,
    outcome: AdaptedOutcome<'r>,
    started: Instant,
) -> (
    Result<Accepted<'r>, HookError>,
    serde_json::Map<String, serde_json::Value>,
) {
    let (accepted, message) = match outcome {
        Ok((accepted, message)) => (Ok(accepted), message),
        Err(error) => (Err(error), serde_json::Map::new()),
    };
    observe(
        metrics,
        request,
        route.map(|route| &route.name),
        &accepted,
        started,
    );
    (accepted, message)
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
    prepared: &mut Prepared,
    handoff: Handoff<'_>,
) -> Result<Handed, HookError> {
    let notifications: Vec<NewMessage> = prepared.to_send().cloned().collect();
    if notifications.is_empty() {
        return Ok(Handed::Nothing);
    }
    let dedup = prepared.dedup_key.clone().map(|key| DedupKey {
        key,
        kind: if prepared.dedup_is_alert_state {
            DedupKind::AlertState
        } else {
            DedupKind::Delivery
        },
    });
    if route.delivery == DeliveryMode::Queued && !route.noise.is_off() {
        return admit(route, prepared, dedup, handoff).await;
    }
    match route.delivery {
        DeliveryMode::Queued => match handoff
            .outbox
            .enqueue_deduped(&route.name, notifications, dedup)
            .await
        {
            Ok(Enqueued::Queued(ids)) => Ok(Handed::Queued(ids)),
            Ok(Enqueued::Duplicate) => Ok(Handed::Duplicate),
            Err(error) => Err(HookError::Unavailable(error)),
        },
        DeliveryMode::Sync => send_now(handoff, route, &notifications)
            .await
            .map(Handed::Sent),
    }
}

/// Hands a webhook's notifications to the route's noise policy (see `delivery/noise/`): each is
/// queued, held for a digest or collapsed, and its notification in the answer says which.
async fn admit(
    route: &Route,
    prepared: &mut Prepared,
    dedup: Option<DedupKey>,
    handoff: Handoff<'_>,
) -> Result<Handed, HookError> {
    let candidates = prepared
        .notifications
        .iter()
        .filter_map(|prepared| match &prepared.assembled {
            Assembled::Send { notification, .. } => Some(Candidate {
                message: notification.clone(),
                collapse: prepared.collapse_key.clone(),
            }),
            Assembled::Skip => None,
        })
        .collect();
    let admission = Admission {
        policy: &route.noise,
        candidates,
        dedup,
    };
    match handoff.outbox.admit(&route.name, admission).await {
        Ok(Admitted::Decided { verdicts, ids }) => {
            let sent = prepared
                .notifications
                .iter_mut()
                .filter(|prepared| matches!(prepared.assembled, Assembled::Send { .. }));
            for (prepared, verdict) in sent.zip(verdicts) {
                prepared.noise = Some(verdict);
            }
            Ok(Handed::Queued(ids))
        }
        Ok(Admitted::Duplicate) => Ok(Handed::Duplicate),
        Err(error) => Err(HookError::Unavailable(error)),
    }
}

/// Counts an accepted webhook in the metrics.
fn count_accepted(metrics: &Metrics, route: &str, accepted: &Accepted<'_>) {
    let Accepted {
        prepared, handed, ..
    } = accepted;
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
    for verdict in prepared.notifications.iter().filter_map(|n| n.noise) {
        match verdict {
            Verdict::HeldRate | Verdict::HeldQuietHours => {
                let reason = if verdict == Verdict::HeldRate {
                    "rate"
                } else {
                    "quiet_hours"
                };
                metrics
                    .notifications_held
                    .get_or_create(&crate::metrics::HeldReason {
                        route: route.to_owned(),
                        reason: reason.to_owned(),
                    })
                    .inc();
            }
            Verdict::Collapsed => {
                metrics
                    .notifications_collapsed
                    .get_or_create(&crate::metrics::route_label(route))
                    .inc();
            }
            Verdict::Send => {}
        }
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
    Handoff {
        api,
        metrics,
        announcer,
        ..
    }: Handoff<'_>,
    route: &Route,
    notifications: &[NewMessage],
) -> Result<usize, HookError> {
    for (sent, notification) in notifications.iter().enumerate() {
        let started = Instant::now();
        let result = api.send(&route.secret, notification).await;
        if let (Ok(()), Some(announcer)) = (&result, announcer) {
            announcer
                .delivered(&route.name, &route.secret, notification)
                .await;
        }
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
