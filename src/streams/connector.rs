//! `GET /pushjet/ws`: the WebSocket protocol of Pushjet's connectors (Pushjet-Connectors'
//! `protocolBase.py` and WebSocket server; §1.13 of `docs/pushjet-protocol.md`), so that the
//! clients written for them work unchanged.
//!
//! 1. The client sends its device UUID as one text frame.
//! 2. The server answers `{'status': 'ok'}` (single quotes: the connector's literal text), then
//!    each unread message as `{"message": M}`, marking them read as `GET /message` does.
//! 3. Every message stored afterwards for the device arrives as `{"message": M}` and is marked
//!    read; a subscription made, or removed with its service, arrives as `{"subscription": S}`.
//!    A subscription change takes effect at once.
//!
//! Frames are written the way the connector's Python wrote them ([`super::python_json`]). A
//! first frame that is not a UUID gets `{"error":{"id":1,"message":"Invalid client uuid"}}`, a
//! binary frame `{"error":{"id":-1,"message":"Expected text got binary data"}}`, each followed by
//! a close; text frames after the UUID are ignored. The server pings an idle connection every
//! keepalive interval. When the service stops, the server closes with 1001; a stream refused by
//! a limit gets 1013. A client that reads too slowly (more than
//! [`super::websocket::MAX_UNSENT_BYTES`] unsent, or messages coming faster than it takes them)
//! is disconnected: with a close (1008, "too slow") if it takes it within
//! [`super::websocket::CLOSE_GRACE`], else by dropping the connection. What it did not receive
//! stays unread.

use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::{CloseCode, CloseReason, Message, MessageStream};

use super::Streams;
use super::hub::{Delivery, Refused, Since};
use super::metrics::StreamKind;
use super::websocket::{self, NotSent, Outgoing};
use crate::pushjet::DeviceUuid;

/// The connector's acknowledgement, verbatim (it is not JSON).
pub const STATUS_OK: &str = "{'status': 'ok'}";
/// The answer to a first frame that is not a device UUID.
pub const INVALID_UUID: &str = r#"{"error":{"id":1,"message":"Invalid client uuid"}}"#;
/// The answer to a binary frame.
pub const BINARY_FRAME: &str = r#"{"error":{"id":-1,"message":"Expected text got binary data"}}"#;

/// How long a new connection may take to send its UUID.
const HELLO_TIMEOUT: Duration = Duration::from_secs(30);

/// Upgrades the request and serves the connection in its own task.
pub(super) async fn connect(
    request: HttpRequest,
    body: web::Payload,
    streams: web::Data<Streams>,
) -> Result<HttpResponse, actix_web::Error> {
    let (response, session, messages) = websocket::upgrade(&request, body)?;
    let streams = streams.get_ref().clone();
    actix_web::rt::spawn(serve(streams, session, messages));
    Ok(response)
}

/// What the client's first frame asked for.
enum Hello {
    Device(DeviceUuid),
    Refuse(&'static str),
    Gone,
}

async fn hello(session: &mut Outgoing, messages: &mut MessageStream) -> Hello {
    loop {
        let next = actix_web::rt::time::timeout(HELLO_TIMEOUT, messages.recv()).await;
        match next {
            Err(_elapsed) => return Hello::Gone,
            Ok(None | Some(Err(_)) | Some(Ok(Message::Close(_)))) => return Hello::Gone,
            Ok(Some(Ok(Message::Ping(bytes)))) => {
                if session.pong(&bytes).await.is_err() {
                    return Hello::Gone;
                }
            }
            Ok(Some(Ok(Message::Text(text)))) => {
                return match DeviceUuid::parse(&text) {
                    Ok(device) => Hello::Device(device),
                    Err(_) => Hello::Refuse(INVALID_UUID),
                };
            }
            Ok(Some(Ok(Message::Binary(_) | Message::Continuation(_)))) => {
                return Hello::Refuse(BINARY_FRAME);
            }
            Ok(Some(Ok(Message::Pong(_) | Message::Nop))) => {}
        }
    }
}

async fn serve(streams: Streams, mut session: Outgoing, mut messages: MessageStream) {
    let device = match hello(&mut session, &mut messages).await {
        Hello::Device(device) => device,
        Hello::Refuse(error) => {
            let _closing_anyway = session.text(error).await;
            session.close(None).await;
            return;
        }
        Hello::Gone => {
            session.close(None).await;
            return;
        }
    };
    let mut stream = match streams.hub.open(
        std::slice::from_ref(&device),
        StreamKind::Connector,
        &Since::Nothing,
    ) {
        Ok((_, stream)) => stream,
        Err(refused) => {
            session.close(Some(close_reason(refused))).await;
            return;
        }
    };
    if session.text(STATUS_OK).await.is_err() {
        return;
    }
    let unread = match streams.store.fetch_unread(&device).await {
        Ok(unread) => unread,
        Err(error) => {
            tracing::warn!(%error, "connector: cannot read the device's unread messages");
            session.close(Some(CloseCode::Error.into())).await;
            return;
        }
    };
    for (_, message) in &unread.messages {
        let frame = super::python_json::to_string(&serde_json::json!({ "message": message }));
        match session.text(frame).await {
            Ok(()) => {}
            Err(NotSent::Closed) => return,
            Err(NotSent::TooSlow) => {
                drop((stream, unread));
                streams.hub.dropped_slow(StreamKind::Connector);
                session.close_or_drop(too_slow(), &mut messages).await;
                return;
            }
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
                Some(Delivery::Message { message, .. }) => {
                    if message.seq <= unread.watermark {
                        continue;
                    }
                    match session.text(message.connector_frame()).await {
                        Ok(()) => {}
                        Err(NotSent::Closed) => return,
                        Err(NotSent::TooSlow) => {
                            drop(stream);
                            streams.hub.dropped_slow(StreamKind::Connector);
                            session.close_or_drop(too_slow(), &mut messages).await;
                            return;
                        }
                    }
                    streams.marks.mark(&device, message.seq);
                }
                Some(Delivery::Subscription(frame)) => {
                    if session.text(&*frame).await.is_err() {
                        return;
                    }
                }
                None => {
                    let reason = if streams.hub.is_closing() {
                        close_reason(Refused::ShuttingDown)
                    } else {
                        too_slow()
                    };
                    drop(stream);
                    session.close_or_drop(reason, &mut messages).await;
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
                        return;
                    }
                }
                Some(Ok(Message::Binary(_) | Message::Continuation(_))) => {
                    let _closing_anyway = session.text(BINARY_FRAME).await;
                    session.close(None).await;
                    return;
                }
                Some(Ok(Message::Text(_) | Message::Pong(_) | Message::Nop)) => {}
            },
            _ = ping.tick() => match session.ping().await {
                Ok(()) => {}
                Err(NotSent::Closed) => return,
                Err(NotSent::TooSlow) => {
                    drop(stream);
                    streams.hub.dropped_slow(StreamKind::Connector);
                    session.close_or_drop(too_slow(), &mut messages).await;
                    return;
                }
            },
        }
    }
}

/// The close a client too slow for its stream gets (if it takes it).
fn too_slow() -> CloseReason {
    CloseReason {
        code: CloseCode::Policy,
        description: Some("too slow: the stream's buffer was full; reconnect".to_owned()),
    }
}

/// The close a refused stream gets.
pub(super) fn close_reason(refused: Refused) -> CloseReason {
    let code = match refused {
        Refused::ShuttingDown => CloseCode::Away,
        Refused::TooManyStreams(_) | Refused::TooManyForDevice(_) => CloseCode::Again,
    };
    CloseReason {
        code,
        description: Some(refused.to_string()),
    }
}
