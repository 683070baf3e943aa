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
use actix_ws::{Message, MessageStream, Session};
use bytes::Bytes;
use futures_util::Stream as FuturesStream;
use serde::Serialize;

use super::Streams;
use super::hub::{self, Delivery, Since, Stream, StreamMessage};
use super::metrics::StreamKind;
use super::ntfy_topics::{Topics, resolve};

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

/// ntfy's message filters: a message is sent only when it matches every filter given.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Filter {
    id: Option<String>,
    message: Option<String>,
    title: Option<String>,
    priorities: Option<Vec<u8>>,
    tags: bool,
}

impl Filter {
    /// `id`, `message` (`m`), `title` (`t`), `priority` (`prio`, `p`: a comma-separated list of
    /// 1–5 or `min`, `low`, `default`, `high`, `max`, `urgent`) and `tags` (`tag`, `ta`: Pushjet
    /// messages have none, so nothing matches), each also as an `X-` header; `None` for a
    /// priority that is none of these.
    fn read(request: &HttpRequest) -> Option<Self> {
        let priorities = match param(request, "x-priority", &["priority", "prio", "p"]) {
            Some(raw) if !raw.is_empty() => Some(
                raw.split(',')
                    .map(|one| parse_priority(one.trim()))
                    .collect::<Option<Vec<u8>>>()?,
            ),
            _ => None,
        };
        let given = |value: Option<String>| value.filter(|value| !value.is_empty());
        Some(Self {
            id: given(param(request, "x-id", &["id"])),
            message: given(param(request, "x-message", &["message", "m"])),
            title: given(param(request, "x-title", &["title", "t"])),
            priorities,
            tags: given(param(request, "x-tags", &["tags", "tag", "ta"])).is_some(),
        })
    }

    fn matches(&self, message: &StreamMessage) -> bool {
        let view = &message.view;
        self.id.as_ref().is_none_or(|id| *id == message.id)
            && self
                .message
                .as_ref()
                .is_none_or(|text| *text == view.message)
            && self
                .title
                .as_ref()
                .is_none_or(|title| title == shown_title(message))
            && self
                .priorities
                .as_ref()
                .is_none_or(|priorities| priorities.contains(&view.level.get()))
            && !self.tags
    }
}

/// An ntfy priority: `1`–`5` or its name.
fn parse_priority(raw: &str) -> Option<u8> {
    match raw.to_ascii_lowercase().as_str() {
        "1" | "min" => Some(1),
        "2" | "low" => Some(2),
        "3" | "default" => Some(3),
        "4" | "high" => Some(4),
        "5" | "max" | "urgent" => Some(5),
        _ => None,
    }
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

/// A parameter as ntfy reads one: the first header named, then the query parameters.
fn param(request: &HttpRequest, header_name: &str, query_names: &[&str]) -> Option<String> {
    if let Some(value) = request
        .headers()
        .get(header_name)
        .and_then(|value| value.to_str().ok())
    {
        return Some(value.trim().to_owned());
    }
    let query: Vec<(String, String)> =
        url::form_urlencoded::parse(request.query_string().as_bytes())
            .into_owned()
            .collect();
    query_names.iter().find_map(|name| {
        query
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.trim().to_owned())
    })
}

fn is_true(value: Option<String>) -> bool {
    value.is_some_and(|value| matches!(value.to_ascii_lowercase().as_str(), "1" | "yes" | "true"))
}

/// ntfy's `since`: empty means nothing when streaming and everything when polling.
pub fn parse_since(raw: Option<&str>, poll: bool) -> Option<Since> {
    let raw = raw.unwrap_or_default();
    match raw {
        "" if poll => Some(Since::All),
        "" | "none" => Some(Since::Nothing),
        "all" => Some(Since::All),
        "latest" => Some(Since::Latest),
        id if id.len() == hub::MESSAGE_ID_LENGTH
            && id.bytes().all(|b| b.is_ascii_alphanumeric())
            && !id.bytes().all(|b| b.is_ascii_digit()) =>
        {
            Some(Since::Id(id.to_owned()))
        }
        time if time.bytes().all(|b| b.is_ascii_digit()) => time.parse().ok().map(Since::Time),
        duration => parse_go_duration(duration).map(|duration| {
            Since::Time(hub::now() - i64::try_from(duration.as_secs()).unwrap_or(i64::MAX / 2))
        }),
    }
}

/// A Go duration such as `10m`, `1h30m`, `45s` or `1.5h`.
fn parse_go_duration(raw: &str) -> Option<Duration> {
    let mut total = 0.0_f64;
    let mut rest = raw;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..number_end].parse().ok()?;
        rest = &rest[number_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += number * seconds;
        rest = &rest[unit_end..];
    }
    Duration::try_from_secs_f64(total).ok()
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
    if let Err(refused) = resolve(&request, &streams.routes) {
        return refused.response();
    }
    with_cors(
        HttpResponse::Ok()
            .content_type("application/json")
            .body("{\"success\":true}\n"),
    )
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

/// `GET /<uuid>/json|sse|raw`.
async fn http_stream(
    request: HttpRequest,
    streams: web::Data<Streams>,
    _payload: web::Payload,
    format: Format,
) -> HttpResponse {
    let topics = match resolve(&request, &streams.routes) {
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
        let body: Vec<u8> = streams
            .hub
            .cached(&devices, &since)
            .iter()
            .filter_map(|delivery| message_frame(format, (&filter, &topics), delivery))
            .flat_map(|bytes| bytes.to_vec())
            .collect();
        return response.body(body);
    }
    let (cached, stream) = match streams.hub.open(&devices, format.kind(), &since) {
        Ok(opened) => opened,
        Err(refused) => return too_many(refused),
    };
    let topic = topics.joined();
    let mut first = vec![frame(format, "open", &control_event("open", &topic), "")];
    first.extend(
        cached
            .iter()
            .filter_map(|delivery| message_frame(format, (&filter, &topics), delivery)),
    );
    let keepalive = streams.hub.settings().keepalive;
    response.streaming(event_stream(
        format,
        (filter, topics),
        first,
        stream,
        keepalive,
    ))
}

type BodyStream = Pin<Box<dyn FuturesStream<Item = Result<Bytes, actix_web::Error>>>>;

/// The body of an HTTP stream: the first frames, then each delivery, with a keepalive after
/// every `keepalive` of silence; it ends when the hub lets go of the stream.
fn event_stream(
    format: Format,
    (filter, topics): (Filter, Topics),
    first: Vec<Bytes>,
    stream: Stream,
    keepalive: Duration,
) -> BodyStream {
    let first: Bytes = first.concat().into();
    let state = (Some(first), stream, topics, filter);
    Box::pin(futures_util::stream::unfold(
        state,
        move |(first, mut stream, topics, filter)| async move {
            if let Some(first) = first {
                return Some((Ok(first), (None, stream, topics, filter)));
            }
            loop {
                match actix_web::rt::time::timeout(keepalive, stream.receiver.recv()).await {
                    Err(_silent) => {
                        let event = control_event("keepalive", &topics.joined());
                        let keepalive = frame(format, "keepalive", &event, "");
                        return Some((Ok(keepalive), (None, stream, topics, filter)));
                    }
                    Ok(None) => return None,
                    Ok(Some(delivery)) => {
                        if let Some(bytes) = message_frame(format, (&filter, &topics), &delivery) {
                            return Some((Ok(bytes), (None, stream, topics, filter)));
                        }
                    }
                }
            }
        },
    ))
}

/// `GET /<uuid>/ws`: each event a text frame, pings every keepalive interval.
async fn websocket(
    request: HttpRequest,
    body: web::Payload,
    streams: web::Data<Streams>,
) -> Result<HttpResponse, actix_web::Error> {
    let topics = match resolve(&request, &streams.routes) {
        Ok(topics) => topics,
        Err(refused) => return Ok(refused.response()),
    };
    let Some(since) = since_of(&request, false) else {
        return Ok(invalid_since());
    };
    let Some(filter) = Filter::read(&request) else {
        return Ok(invalid_priority());
    };
    let (response, session, messages) = actix_ws::handle(&request, body)?;
    let messages = messages.max_frame_size(4096);
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
    mut session: Session,
    mut messages: MessageStream,
) {
    let (cached, mut stream) = match streams.hub.open(&topics.keys(), StreamKind::Ws, &since) {
        Ok(opened) => opened,
        Err(refused) => {
            let _closed = session
                .close(Some(super::connector::close_reason(refused)))
                .await;
            return;
        }
    };
    if session
        .text(control_event("open", &topics.joined()))
        .await
        .is_err()
    {
        return;
    }
    for delivery in &cached {
        if let Delivery::Message { device, message } = delivery
            && filter.matches(message)
            && session
                .text(message_event(topics.name(device), message))
                .await
                .is_err()
        {
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
                        && session
                            .text(message_event(topics.name(&device), &message))
                            .await
                            .is_err()
                    {
                        return;
                    }
                }
                Some(Delivery::Subscription(_)) => {}
                None => {
                    let reason = super::websocket_end(&streams.hub, "reconnect with since");
                    let _closed = session.close(Some(reason)).await;
                    return;
                }
            },
            incoming = messages.recv() => match incoming {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => {
                    let _closed = session.close(None).await;
                    return;
                }
                Some(Ok(Message::Ping(bytes))) => {
                    if session.pong(&bytes).await.is_err() {
                        return;
                    }
                }
                Some(Ok(_)) => {}
            },
            _ = ping.tick() => {
                if session.ping(b"").await.is_err() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_every_form_ntfy_documents() {
        assert_eq!(parse_since(None, false), Some(Since::Nothing));
        assert_eq!(parse_since(None, true), Some(Since::All));
        assert_eq!(parse_since(Some("none"), true), Some(Since::Nothing));
        assert_eq!(parse_since(Some("all"), false), Some(Since::All));
        assert_eq!(parse_since(Some("latest"), false), Some(Since::Latest));
        assert_eq!(
            parse_since(Some("hwQ2YpKdmg12"), false),
            Some(Since::Id("hwQ2YpKdmg12".to_owned()))
        );
        assert_eq!(
            parse_since(Some("1635528757"), false),
            Some(Since::Time(1_635_528_757))
        );
        let Some(Since::Time(time)) = parse_since(Some("1h30m"), false) else {
            panic!("a duration is a time");
        };
        assert!((hub::now() - 5400 - time).abs() <= 1);
        assert_eq!(parse_since(Some("soon"), false), None);
        assert_eq!(parse_since(Some("10x"), false), None);
    }

    #[test]
    fn go_durations_add_up() {
        assert_eq!(parse_go_duration("10m"), Some(Duration::from_secs(600)));
        assert_eq!(parse_go_duration("1.5h"), Some(Duration::from_secs(5400)));
        assert_eq!(
            parse_go_duration("1h30m5s"),
            Some(Duration::from_secs(5405))
        );
        assert_eq!(parse_go_duration("5"), None);
        assert_eq!(parse_go_duration(""), None);
    }

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
