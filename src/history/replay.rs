//! Sending a recorded request's notifications again: [`replay`] sends them as stored,
//! [`rerender`] renders the kept body again with today's templates and sends the result. Both
//! queue through the outbox (whatever the route's delivery mode) without a dedup key, and are
//! recorded as records of their own (`via` replay or rerender, `again_of` the original).

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};

use crate::delivery::{Enqueued, Outbox, OutboxError};
use crate::pipeline::{Bridge, Inbound, PipelineError};
use crate::pushjet::NewMessage;
use crate::routes::Route;
use crate::sources::SourceKind;

use super::record::{Record, Verdict, Via};
use super::rendered::rendered;
use super::store::HistoryError;
use super::{History, now_millis};

/// Why a record could not be sent again.
#[derive(Debug, thiserror::Error)]
pub enum AgainError {
    /// The history could not be read.
    #[error(transparent)]
    History(#[from] HistoryError),
    /// The record's route is not configured any more.
    #[error("route `{0}` is no longer configured: add it back to PUSHJET_BRIDGE_ROUTES first")]
    RouteGone(String),
    /// Nothing to send: the record has no notification (filtered, refused, skipped).
    #[error("history record {0} has no notification to send")]
    NothingToSend(u64),
    /// Re-rendering needs the request's body, which was not kept.
    #[error(
        "history record {0} kept no request body (PUSHJET_BRIDGE_HISTORY_BODIES was off, or it \
         was refused before its body was read): it can be replayed, not rendered again"
    )]
    NoBody(u64),
    /// The kept body no longer goes through the pipeline.
    #[error("the kept body cannot be rendered again: {0}")]
    Pipeline(#[from] PipelineError),
    /// The outbox refused the notifications.
    #[error(transparent)]
    Outbox(#[from] OutboxError),
}

/// Queues `id`'s notifications again, as stored; the new record.
pub async fn replay(
    history: &History,
    outbox: &Outbox,
    bridge: &Bridge,
    id: u64,
    request_id: &str,
) -> Result<Record, AgainError> {
    let original = history.story(id).await?.record;
    let route = route(bridge, &original.route)?;
    let messages: Vec<NewMessage> = original
        .notifications
        .iter()
        .filter_map(|rendered| rendered.notification.clone())
        .collect();
    if messages.is_empty() {
        return Err(AgainError::NothingToSend(id));
    }
    let queued = enqueue(outbox, route, messages).await?;
    let mut ids = queued.iter().copied();
    let notifications = original
        .notifications
        .into_iter()
        .map(|mut rendered| {
            rendered.id = rendered.notification.as_ref().and_then(|_| ids.next());
            rendered.delivery = None;
            rendered
        })
        .collect();
    let record = Record {
        id: history.next_id(now_millis()),
        at: now_millis(),
        via: Via::Replay,
        request_id: request_id.to_owned(),
        status: 202,
        verdict: Verdict::Queued,
        reason: None,
        notifications,
        request: None,
        again_of: Some(id),
        ..original
    };
    history.record(record.clone());
    Ok(record)
}

/// Renders `id`'s kept body again with today's templates and route settings (without
/// authenticating it: its secrets were not kept) and queues the result; the new record.
pub async fn rerender(
    history: &History,
    outbox: &Outbox,
    bridge: &Bridge,
    id: u64,
    request_id: &str,
) -> Result<Record, AgainError> {
    let original = history.story(id).await?.record;
    let route = route(bridge, &original.route)?;
    let kept = original.request.clone().ok_or(AgainError::NoBody(id))?;
    let mut headers = HeaderMap::new();
    for (name, value) in &kept.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.append(name, value);
        }
    }
    let source = kept
        .read_as
        .as_deref()
        .and_then(|name| name.parse::<SourceKind>().ok());
    let prepared = bridge.prepare_again(
        route,
        Inbound {
            headers: &headers,
            query: &kept.query,
            body: kept.body.as_bytes(),
        },
        source,
    )?;
    let messages: Vec<NewMessage> = prepared.to_send().cloned().collect();
    let (status, verdict, queued) = if messages.is_empty() {
        let verdict = if prepared.filtered.is_some() {
            Verdict::Filtered
        } else {
            Verdict::Skipped
        };
        (200, verdict, Vec::new())
    } else {
        (
            202,
            Verdict::Queued,
            enqueue(outbox, route, messages).await?,
        )
    };
    let at = now_millis();
    let record = Record {
        id: history.next_id(at),
        at,
        route: original.route,
        via: Via::Rerender,
        source: prepared.source.to_owned(),
        event: prepared.event.clone(),
        action: prepared.action.clone(),
        delivery_id: prepared.delivery_id.clone(),
        request_id: request_id.to_owned(),
        status,
        verdict,
        reason: prepared.filtered.clone(),
        notifications: rendered(&prepared, &queued, None),
        request: Some(kept),
        again_of: Some(id),
    };
    history.record(record.clone());
    Ok(record)
}

fn route<'b>(bridge: &'b Bridge, name: &str) -> Result<&'b Route, AgainError> {
    bridge
        .routes
        .get(name)
        .ok_or_else(|| AgainError::RouteGone(name.to_owned()))
}

async fn enqueue(
    outbox: &Outbox,
    route: &Route,
    messages: Vec<NewMessage>,
) -> Result<Vec<u64>, AgainError> {
    match outbox.enqueue(&route.name, messages, None).await? {
        Enqueued::Queued(ids) => Ok(ids),
        // Without a dedup key an enqueue is never a duplicate.
        Enqueued::Duplicate => Ok(Vec::new()),
    }
}
