//! `/admin/history`: the delivery history over HTTP, behind the admin token.
//!
//! | method and path | does | answers |
//! |---|---|---|
//! | `GET /admin/history?route=&source=&event=&state=&since=&until=&q=&limit=&cursor=` | lists records newest first (default 50, at most 500); `since`/`until` are RFC 3339 times or milliseconds since the epoch | `{"records": [summary…], "next_cursor": id \| null}` |
//! | `GET /admin/history/counts?since=` | records per route and state since `since` (default: 24 hours ago) | `{"since": ms, "counts": [{"route", "state", "count"}…]}` |
//! | `GET /admin/history/stream?route=` | server-sent events: `record` for each new record, `state` for each state change, each a summary as JSON | `text/event-stream` |
//! | `GET /admin/history/{id}` | the whole story: request (when kept), verdict, notifications, each one's delivery and attempts | the record |
//! | `POST /admin/history/{id}/replay` | queues its notifications again, as stored | `202 {"record": new record}` |
//! | `POST /admin/history/{id}/rerender` | renders the kept body again with today's templates and queues the result; 409 when no body was kept | `202 {"record": new record}` |
//!
//! Off (404) without `PUSHJET_BRIDGE_ADMIN_TOKEN`; 401 without the token; 404 with the reason
//! when the history is off (`PUSHJET_BRIDGE_HISTORY=0`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpMessage, HttpRequest, HttpResponse, ResponseError, web};
use futures_util::stream;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast;

use crate::delivery::OutboxError;
use crate::history::{self, AgainError, Change, History, HistoryError, Query};
use crate::http::admin::Admin;
use crate::http::request_id::RequestId;
use crate::reload::SharedBridge;

/// How many records a page lists by default.
const DEFAULT_PAGE: usize = 50;
/// The most records one page lists.
const MAX_PAGE: usize = 500;
/// The most live streams open at once.
const MAX_STREAMS: usize = 64;
/// How long a live stream may stay silent before a comment keeps it open.
const KEEPALIVE: Duration = Duration::from_secs(15);
/// What `counts` looks back over by default.
const DAY_MS: u64 = 24 * 60 * 60 * 1000;

/// Live streams open now.
#[derive(Debug, Default)]
pub struct OpenStreams(AtomicUsize);

/// Mounts the endpoints under `/admin/history`; needs `web::Data<Admin>`, `web::Data<History>`
/// and `web::Data<SharedBridge>`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let open = web::Data::new(OpenStreams::default());
    cfg.service(
        web::scope("/admin/history")
            .app_data(open)
            .app_data(web::QueryConfig::default().error_handler(|error, _| {
                ApiError::BadRequest(format!("bad query: {error}")).into()
            }))
            .route("", web::get().to(list))
            .route("/counts", web::get().to(counts))
            .route("/stream", web::get().to(stream_changes))
            .route("/{id}", web::get().to(show))
            .route("/{id}/replay", web::post().to(replay))
            .route("/{id}/rerender", web::post().to(rerender)),
    );
}

/// Why a history request failed; mapped to its status in one place.
#[derive(Debug, thiserror::Error)]
enum ApiError {
    #[error("the admin endpoints are off: set PUSHJET_BRIDGE_ADMIN_TOKEN to turn them on")]
    Disabled,
    #[error("this endpoint needs the header `Authorization: Bearer <PUSHJET_BRIDGE_ADMIN_TOKEN>`")]
    Unauthorized,
    #[error("{0}")]
    BadRequest(String),
    #[error("too many history streams are open ({MAX_STREAMS}); close one and try again")]
    TooManyStreams,
    #[error(transparent)]
    History(#[from] HistoryError),
    #[error(transparent)]
    Again(#[from] AgainError),
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Disabled
            | Self::History(HistoryError::Off | HistoryError::NotFound(_))
            | Self::Again(AgainError::History(HistoryError::Off | HistoryError::NotFound(_))) => {
                StatusCode::NOT_FOUND
            }
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::TooManyStreams => StatusCode::TOO_MANY_REQUESTS,
            Self::Again(
                AgainError::RouteGone(_) | AgainError::NothingToSend(_) | AgainError::NoBody(_),
            ) => StatusCode::CONFLICT,
            Self::Again(AgainError::Pipeline(_)) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Again(AgainError::Outbox(
                OutboxError::Full { .. } | OutboxError::Unavailable(_),
            ))
            | Self::History(HistoryError::Unavailable(_))
            | Self::Again(AgainError::History(HistoryError::Unavailable(_))) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::History(HistoryError::Record(_))
            | Self::Again(AgainError::History(HistoryError::Record(_)) | AgainError::Outbox(_)) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        if let Self::Unauthorized = self {
            response.insert_header((
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"pushjet-bridge admin\""),
            ));
        }
        if self.status_code() == StatusCode::SERVICE_UNAVAILABLE {
            response.insert_header((header::RETRY_AFTER, "30"));
        }
        response.json(json!({ "error": self.to_string() }))
    }
}

fn authorize(request: &HttpRequest, admin: &Admin) -> Result<(), ApiError> {
    let token = admin.token().ok_or(ApiError::Disabled)?;
    if token.is_bearer_of(request.headers()) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
}

/// A time: milliseconds since the epoch, or an RFC 3339 time.
fn parse_time(name: &str, raw: &str) -> Result<u64, ApiError> {
    if let Ok(millis) = raw.parse::<u64>() {
        return Ok(millis);
    }
    humantime::parse_rfc3339_weak(raw)
        .ok()
        .and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|since| u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "`{name}` must be an RFC 3339 time (2026-01-31T12:00:00Z) or milliseconds since the epoch"
            ))
        })
}

fn record_id(raw: &str) -> Result<u64, ApiError> {
    raw.parse().map_err(|_| {
        ApiError::BadRequest(format!(
            "`{}` is not a history record id: ids are whole numbers, as listed by GET /admin/history",
            raw.chars().take(40).collect::<String>()
        ))
    })
}

/// The query string of `GET /admin/history`.
#[derive(Debug, Deserialize)]
struct ListQuery {
    route: Option<String>,
    source: Option<String>,
    event: Option<String>,
    state: Option<String>,
    since: Option<String>,
    until: Option<String>,
    q: Option<String>,
    limit: Option<usize>,
    cursor: Option<u64>,
}

/// Blank filters are no filters.
fn filter(value: Option<String>) -> Option<String> {
    value.filter(|value| !value.trim().is_empty())
}

impl ListQuery {
    fn into_query(self) -> Result<Query, ApiError> {
        let limit = self.limit.unwrap_or(DEFAULT_PAGE);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(ApiError::BadRequest(format!(
                "limit must be from 1 to {MAX_PAGE}"
            )));
        }
        if self.q.as_ref().is_some_and(|q| q.len() > 200) {
            return Err(ApiError::BadRequest(
                "q is at most 200 characters".to_owned(),
            ));
        }
        Ok(Query {
            route: filter(self.route),
            source: filter(self.source),
            event: filter(self.event),
            state: filter(self.state),
            since: filter(self.since)
                .map(|raw| parse_time("since", &raw))
                .transpose()?,
            until: filter(self.until)
                .map(|raw| parse_time("until", &raw))
                .transpose()?,
            q: filter(self.q),
            cursor: self.cursor,
            limit,
        })
    }
}

async fn list(
    request: HttpRequest,
    admin: web::Data<Admin>,
    history: web::Data<History>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    authorize(&request, &admin)?;
    let page = history.list(query.into_inner().into_query()?).await?;
    Ok(HttpResponse::Ok().json(page))
}

#[derive(Debug, Deserialize)]
struct CountsQuery {
    since: Option<String>,
}

async fn counts(
    request: HttpRequest,
    admin: web::Data<Admin>,
    history: web::Data<History>,
    query: web::Query<CountsQuery>,
) -> Result<HttpResponse, ApiError> {
    authorize(&request, &admin)?;
    let since = match filter(query.into_inner().since) {
        Some(raw) => parse_time("since", &raw)?,
        None => history::now_millis().saturating_sub(DAY_MS),
    };
    let counts = history.counts(since).await?;
    Ok(HttpResponse::Ok().json(json!({ "since": since, "counts": counts })))
}

async fn show(
    request: HttpRequest,
    admin: web::Data<Admin>,
    history: web::Data<History>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    authorize(&request, &admin)?;
    let story = history.story(record_id(&id)?).await?;
    Ok(HttpResponse::Ok().json(story))
}

/// The request's id (`X-Request-Id`), `-` when it has none.
pub fn request_id(request: &HttpRequest) -> String {
    request
        .extensions()
        .get::<RequestId>()
        .map_or_else(|| "-".to_owned(), |id| id.0.clone())
}

async fn replay(
    request: HttpRequest,
    admin: web::Data<Admin>,
    history: web::Data<History>,
    bridge: web::Data<SharedBridge>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    authorize(&request, &admin)?;
    let id = record_id(&id)?;
    let bridge = bridge.load_full();
    let record =
        history::replay(&history, admin.outbox(), &bridge, id, &request_id(&request)).await?;
    tracing::info!(
        id,
        replay = record.id,
        "history record {id} replayed by an admin request"
    );
    Ok(HttpResponse::Accepted().json(json!({ "record": record })))
}

async fn rerender(
    request: HttpRequest,
    admin: web::Data<Admin>,
    history: web::Data<History>,
    bridge: web::Data<SharedBridge>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    authorize(&request, &admin)?;
    let id = record_id(&id)?;
    let bridge = bridge.load_full();
    let record =
        history::rerender(&history, admin.outbox(), &bridge, id, &request_id(&request)).await?;
    tracing::info!(
        id,
        rerender = record.id,
        "history record {id} rendered again by an admin request"
    );
    let status = if record.notifications.iter().any(|n| n.id.is_some()) {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok(HttpResponse::build(status).json(json!({ "record": record })))
}

#[derive(Debug, Deserialize)]
struct StreamQuery {
    route: Option<String>,
}

/// Counts an open stream while it lives.
struct StreamSlot(web::Data<OpenStreams>);

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One server-sent event for a change.
fn event(change: &Change) -> web::Bytes {
    let kind = match change.kind {
        history::ChangeKind::Record => "record",
        history::ChangeKind::State => "state",
    };
    let data = serde_json::to_string(&change.record).unwrap_or_else(|_| "{}".to_owned());
    web::Bytes::from(format!("event: {kind}\ndata: {data}\n\n"))
}

async fn stream_changes(
    request: HttpRequest,
    admin: web::Data<Admin>,
    history: web::Data<History>,
    open: web::Data<OpenStreams>,
    query: web::Query<StreamQuery>,
) -> Result<HttpResponse, ApiError> {
    authorize(&request, &admin)?;
    let receiver = history.subscribe()?;
    change_stream(receiver, open, filter(query.into_inner().route)).ok_or(ApiError::TooManyStreams)
}

/// The live changes from `receiver` as server-sent events (`record`, `state`, `lagged`), only
/// `route`'s when given; `None` when [`MAX_STREAMS`] are open already. Shared with the console's
/// session-checked stream.
pub fn change_stream(
    receiver: broadcast::Receiver<Change>,
    open: web::Data<OpenStreams>,
    route: Option<String>,
) -> Option<HttpResponse> {
    if open.0.fetch_add(1, Ordering::Relaxed) >= MAX_STREAMS {
        open.0.fetch_sub(1, Ordering::Relaxed);
        return None;
    }
    let slot = Arc::new(StreamSlot(open));
    let opening = stream::once(async {
        Ok::<_, actix_web::Error>(web::Bytes::from_static(b": history stream\n\n"))
    });
    let changes = stream::unfold(
        (receiver, route, slot),
        |(mut receiver, route, slot)| async move {
            loop {
                let next = tokio::time::timeout(KEEPALIVE, receiver.recv()).await;
                let bytes = match next {
                    Err(_) => web::Bytes::from_static(b": keepalive\n\n"),
                    Ok(Ok(change)) => {
                        if route
                            .as_ref()
                            .is_some_and(|route| *route != change.record.route)
                        {
                            continue;
                        }
                        event(&change)
                    }
                    Ok(Err(broadcast::error::RecvError::Lagged(missed))) => web::Bytes::from(
                        format!("event: lagged\ndata: {{\"missed\": {missed}}}\n\n"),
                    ),
                    Ok(Err(broadcast::error::RecvError::Closed)) => return None,
                };
                return Some((Ok::<_, actix_web::Error>(bytes), (receiver, route, slot)));
            }
        },
    );
    use futures_util::StreamExt;
    Some(
        HttpResponse::Ok()
            .insert_header((header::CONTENT_TYPE, "text/event-stream; charset=utf-8"))
            .insert_header((header::CACHE_CONTROL, "no-cache"))
            .insert_header(("X-Accel-Buffering", "no"))
            .streaming(opening.chain(changes)),
    )
}
