//! ntfy's subscribe API with a Pushjet device UUID or a route's name as the topic
//! (`super::ntfy_topics`), so the ntfy apps (Android, the web app, `ntfy subscribe`) show a
//! device's messages or what a route delivers: `GET /<topic>/json`, `/sse`, `/raw`, `/ws`, and
//! `GET /<topic>/auth`, which the apps ask before they add a subscription. Several UUIDs may be
//! given comma-separated (`/<a>,<b>/json`), as the Android app does for the subscriptions it holds
//! on one server. These streams watch the device's messages without consuming them.
//!
//! The event objects follow ntfy's documented message format (`docs/ntfy-gotify.md`): `id`,
//! `time`, `expires` (messages only), `event` (`open`, `keepalive`, `message`), `topic`, `title`,
//! `message`, `priority` (the Pushjet importance), `click` (the link), `icon` (the service's icon),
//! empty fields left out. A message without a title is titled with its service's name.
//!
//! Query parameters (or `X-` headers, as ntfy reads them): `poll` (`x-poll`, `po`): answer what
//! the cache holds, then close; `since` (`x-since`, `si`): a duration (`10m`), a Unix time, a
//! message id, `all`, `latest` or `none`; the filters `id`, `message`, `title`, `priority` and
//! `tags` (see `Filter`).

use std::pin::Pin;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::{Message, MessageStream};
use bytes::Bytes;
use futures_util::{Stream as FuturesStream, StreamExt};
use serde::Serialize;

use super::Streams;
use super::hub::{self, Delivery, Since, Stream, StreamMessage};
use super::metrics::StreamKind;
use super::ntfy_topics::{Topics, resolve};
use super::websocket::{self, NotSent, Outgoing};

mod request;

use request::{Filter, is_true, param, parse_since};

/// The formats of an HTTP stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Sse,
    Raw,
}

impl Format {
    fn kind(self) -> StreamKind {
        match self {
            Self::Json => StreamKind::Json,
            Self::Sse => StreamKind::Sse,
            Self::Raw => StreamKind::Raw,
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Self::Json => "application/x-ndjson; charset=utf-8",
            Self::Sse => "text/event-stream; charset=utf-8",
            Self::Raw => "text/plain; charset=utf-8",
        }
    }
}

/// Registers the subscribe endpoints and their CORS preflights.
pub(super) fn configure(config: &mut web::ServiceConfig) {
    config
        .service(
            web::resource("/{topics}/json")
                .route(web::get().to(|r, s, p| http_stream(r, s, p, Format::Json)))
                .route(web::method(actix_web::http::Method::OPTIONS).to(preflight)),
        )
        .service(
            web::resource("/{topics}/sse")
                .route(web::get().to(|r, s, p| http_stream(r, s, p, Format::Sse)))
                .route(web::method(actix_web::http::Method::OPTIONS).to(preflight)),
        )
        .service(
            web::resource("/{topics}/raw")
                .route(web::get().to(|r, s, p| http_stream(r, s, p, Format::Raw)))
                .route(web::method(actix_web::http::Method::OPTIONS).to(preflight)),
        )
        .service(
            web::resource("/{topics}/ws")
                .route(web::get().to(websocket))
                .route(web::method(actix_web::http::Method::OPTIONS).to(preflight)),
        )
        .service(
            web::resource("/{topics}/auth")
                .route(web::get().to(auth))
                .route(web::method(actix_web::http::Method::OPTIONS).to(preflight)),
        );
}

/// An ntfy event object, fields in ntfy's order, empty ones left out.
#[derive(Debug, Serialize)]
struct Event<'a> {
    id: &'a str,
    time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires: Option<i64>,
    event: &'a str,
    topic: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    title: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    priority: Option<u8>,
    #[serde(skip_serializing_if = "str::is_empty")]
    click: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    icon: &'a str,
}

/// An `open` or `keepalive` event.
fn control_event(event: &str, topic: &str) -> String {
    let id: String = (0..hub::MESSAGE_ID_LENGTH)
        .map(|_| fastrand::alphanumeric())
        .collect();
    serde_json::to_string(&Event {
        id: &id,
        time: hub::now(),
        expires: None,
        event,
        topic,
        title: "",
        message: "",
        priority: None,
        click: "",
        icon: "",
    })
    .unwrap_or_default()
}

/// A `message` event on `topic`.
fn message_event(topic: &str, message: &StreamMessage) -> String {
    let view = &message.view;
    let title = shown_title(message);
    serde_json::to_string(&Event {
        id: &message.id,
        time: view.timestamp,
        expires: Some(message.expires),
        event: "message",
        topic,
        title,
        message: &view.message,
        priority: Some(view.level.get()),
        click: &view.link,
        icon: &view.service.icon,
    })
    .unwrap_or_default()
}

/// One event in an HTTP stream's framing.
fn frame(format: Format, event: &str, json: &str, text: &str) -> Bytes {
    let framed = match (format, event) {
        (Format::Json, _) => format!("{json}\n"),
        (Format::Sse, "message") => format!("data: {json}\n\n"),
        (Format::Sse, _) => format!("event: {event}\ndata: {json}\n\n"),
        (Format::Raw, "message") => format!("{}\n", text.replace('\n', " ")),
        (Format::Raw, _) => "\n".to_owned(),
    };
    Bytes::from(framed)
}

/// The title an event shows: the message's, or its service's name when it has none.
fn shown_title(message: &StreamMessage) -> &str {
    if message.view.title.is_empty() {
        &message.view.service.name
    } else {
        &message.view.title
    }
}

fn message_frame(
    format: Format,
    (filter, topics): (&Filter, &Topics),
    delivery: &Delivery,
) -> Option<Bytes> {
    match delivery {
        Delivery::Message { message, .. } if !filter.matches(message) => None,
        Delivery::Message { device, message } => Some(frame(
            format,
            "message",
            &message_event(topics.name(device), message),
            &message.view.message,
        )),
        Delivery::Subscription(_) => None,
    }
}

/// ntfy's error body (`{"code", "http", "error"}`), open to every origin.
pub(crate) fn error(status: StatusCode, code: u32, text: &str) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .content_type("application/json")
        .body(
            serde_json::json!({"code": code, "http": status.as_u16(), "error": text}).to_string()
                + "\n",
        )
}

/// `response` open to every origin, as ntfy answers.
pub(crate) fn with_cors(mut response: HttpResponse) -> HttpResponse {
    response.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    response
}

/// `OPTIONS`: ntfy's CORS preflight answer.
pub(crate) async fn preflight() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((
            header::ACCESS_CONTROL_ALLOW_METHODS,
            "GET, PUT, POST, PATCH, DELETE",
        ))
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, "*"))
        .finish()
}

/// `GET /<topic>/auth`: anyone may read a device's stream who knows its UUID, and a route's
/// stream who holds one of its credentials.
async fn auth(request: HttpRequest, streams: web::Data<Streams>) -> HttpResponse {
    if let Err(refused) = resolve(&request, &streams.routes, most_topics(&streams)) {
        return refused.response();
    }
    with_cors(
        HttpResponse::Ok()
            .content_type("application/json")
            .body("{\"success\":true}\n"),
    )
}

fn most_topics(streams: &Streams) -> usize {
    streams.hub.settings().max_topics_per_stream
}

fn since_of(request: &HttpRequest, poll: bool) -> Option<Since> {
    parse_since(param(request, "x-since", &["since", "si"]).as_deref(), poll)
}

fn invalid_priority() -> HttpResponse {
    error(StatusCode::BAD_REQUEST, 40007, "invalid priority parameter")
}

fn invalid_since() -> HttpResponse {
    error(StatusCode::BAD_REQUEST, 40008, "invalid since parameter")
}

fn too_many(refused: hub::Refused) -> HttpResponse {
    match refused {
        hub::Refused::ShuttingDown => error(
            StatusCode::SERVICE_UNAVAILABLE,
            50301,
            "the server is shutting down",
        ),
        hub::Refused::TooManyStreams(_) | hub::Refused::TooManyForDevice(_) => error(
            StatusCode::TOO_MANY_REQUESTS,
            42905,
            &format!("limit reached: {refused}"),
        ),
    }
}

/// `GET /<uuid>/json|sse|raw`. A poll answers the cached messages and ends; a stream starts
/// with the cached messages `since` selects. Either way the answer is written a message at a
/// time as the client takes it, never built whole: what it holds are the cache's shared messages.
async fn http_stream(
    request: HttpRequest,
    streams: web::Data<Streams>,
    _payload: web::Payload,
    format: Format,
) -> HttpResponse {
    let topics = match resolve(&request, &streams.routes, most_topics(&streams)) {
        Ok(topics) => topics,
        Err(refused) => return refused.response(),
    };
    let devices = topics.keys();
    let poll = is_true(param(&request, "x-poll", &["poll", "po"]));
    let Some(since) = since_of(&request, poll) else {
        return invalid_since();
    };
    let Some(filter) = Filter::read(&request) else {
        return invalid_priority();
    };
    let mut response = HttpResponse::Ok();
    response
        .content_type(format.content_type())
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"));
    if poll {
        let cached = streams.hub.cached(&devices, &since);
        return response.streaming(cached_frames(format, (filter, topics), cached));
    }
    let (cached, stream) = match streams.hub.open(&devices, format.kind(), &since) {
        Ok(opened) => opened,
        Err(refused) => return too_many(refused),
    };
    let open = frame(format, "open", &control_event("open", &topics.joined()), "");
    let keepalive = streams.hub.settings().keepalive;
    let live = event_stream(format, (filter.clone(), topics.clone()), stream, keepalive);
    response.streaming(
        futures_util::stream::once(async move { Ok(open) })
            .chain(cached_frames(format, (filter, topics), cached))
            .chain(live),
    )
}

type BodyStream = Pin<Box<dyn FuturesStream<Item = Result<Bytes, actix_web::Error>>>>;

/// The frames of cached messages, each made when the client is ready for it.
fn cached_frames(
    format: Format,
    (filter, topics): (Filter, Topics),
    cached: Vec<Delivery>,
) -> BodyStream {
    Box::pin(futures_util::stream::iter(
        cached
            .into_iter()
            .filter_map(move |delivery| message_frame(format, (&filter, &topics), &delivery))
            .map(Ok),
    ))
}

/// The live part of an HTTP stream: each delivery, with a keepalive after every `keepalive` of
/// silence; it ends when the hub lets go of the stream.
fn event_stream(
    format: Format,
    (filter, topics): (Filter, Topics),
    stream: Stream,
    keepalive: Duration,
) -> BodyStream {
    let state = (stream, topics, filter);
    Box::pin(futures_util::stream::unfold(
        state,
        move |(mut stream, topics, filter)| async move {
            loop {
                match actix_web::rt::time::timeout(keepalive, stream.receiver.recv()).await {
                    Err(_silent) => {
                        let event = control_event("keepalive", &topics.joined());
                        let keepalive = frame(format, "keepalive", &event, "");
                        return Some((Ok(keepalive), (stream, topics, filter)));
                    }
                    Ok(None) => return None,
                    Ok(Some(delivery)) => {
                        if let Some(bytes) = message_frame(format, (&filter, &topics), &delivery) {
                            return Some((Ok(bytes), (stream, topics, filter)));
                        }
                    }
                }
            }
        },
    ))
}

/// `GET /<uuid>/ws`: each event a text frame, pings every keepalive interval.
///
/// Every end the server chooses (the service stopping, a client too slow, a stream limit)
/// drops the connection without a close frame, as ntfy's server does: ntfy's web app reconnects
/// (with `since`) only after a close that was not clean, and its other clients after any.
async fn websocket(
    request: HttpRequest,
    body: web::Payload,
    streams: web::Data<Streams>,
) -> Result<HttpResponse, actix_web::Error> {
    let topics = match resolve(&request, &streams.routes, most_topics(&streams)) {
        Ok(topics) => topics,
        Err(refused) => return Ok(refused.response()),
    };
    let Some(since) = since_of(&request, false) else {
        return Ok(invalid_since());
    };
    let Some(filter) = Filter::read(&request) else {
        return Ok(invalid_priority());
    };
    let (response, session, messages) = websocket::upgrade(&request, body)?;
    let streams = streams.get_ref().clone();
    actix_web::rt::spawn(serve_websocket(
        streams,
        Subscribed {
            topics,
            since,
            filter,
        },
        session,
        messages,
    ));
    Ok(with_cors(response))
}

/// What an ntfy WebSocket asked for.
struct Subscribed {
    topics: Topics,
    since: Since,
    filter: Filter,
}

async fn serve_websocket(
    streams: Streams,
    Subscribed {
        topics,
        since,
        filter,
    }: Subscribed,
    mut session: Outgoing,
    mut messages: MessageStream,
) {
    let (cached, mut stream) = match streams.hub.open(&topics.keys(), StreamKind::Ws, &since) {
        Ok(opened) => opened,
        Err(refused) => {
            tracing::info!(%refused, "ntfy WebSocket refused");
            session.drop_connection();
            return;
        }
    };
    if session
        .text(control_event("open", &topics.joined()))
        .await
        .is_err()
    {
        session.drop_connection();
        return;
    }
    for delivery in cached {
        if let Delivery::Message { device, message } = delivery
            && filter.matches(&message)
            && let Err(not_sent) = session
                .text(message_event(topics.name(&device), &message))
                .await
        {
            end_websocket(&streams, &mut session, not_sent);
            return;
        }
    }
    let keepalive = streams.hub.settings().keepalive;
    let mut ping = actix_web::rt::time::interval_at(
        actix_web::rt::time::Instant::now() + keepalive,
        keepalive,
    );
    loop {
        tokio::select! {
            delivery = stream.receiver.recv() => match delivery {
                Some(Delivery::Message { device, message }) => {
                    if filter.matches(&message)
                        && let Err(not_sent) = session.text(message_event(topics.name(&device), &message)).await
                    {
                        end_websocket(&streams, &mut session, not_sent);
                        return;
                    }
                }
                Some(Delivery::Subscription(_)) => {}
                None => {
                    // The service stops, or the hub dropped a stream too slow for its buffer.
                    session.drop_connection();
                    return;
                }
            },
            incoming = messages.recv() => match incoming {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => {
                    session.close(None).await;
                    return;
                }
                Some(Ok(Message::Ping(bytes))) => {
                    if session.pong(&bytes).await.is_err() {
                        session.drop_connection();
                        return;
                    }
                }
                Some(Ok(_)) => {}
            },
            _ = ping.tick() => {
                if let Err(not_sent) = session.ping().await {
                    end_websocket(&streams, &mut session, not_sent);
                    return;
                }
            }
        }
    }
}

/// Ends an ntfy WebSocket that could not be sent to: dropped without a close frame.
fn end_websocket(streams: &Streams, session: &mut Outgoing, not_sent: NotSent) {
    if not_sent == NotSent::TooSlow {
        streams.hub.dropped_slow(StreamKind::Ws);
    }
    session.drop_connection();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_frames_put_a_message_on_one_line_and_controls_on_an_empty_one() {
        assert_eq!(
            frame(Format::Raw, "message", "{}", "a\nb"),
            Bytes::from("a b\n")
        );
        assert_eq!(frame(Format::Raw, "keepalive", "{}", ""), Bytes::from("\n"));
        assert_eq!(
            frame(Format::Sse, "open", "{\"x\":1}", ""),
            Bytes::from("event: open\ndata: {\"x\":1}\n\n")
        );
        assert_eq!(
            frame(Format::Sse, "message", "{\"x\":1}", ""),
            Bytes::from("data: {\"x\":1}\n\n")
        );
    }
}
