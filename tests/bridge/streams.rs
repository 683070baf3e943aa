//! Live streams with the rest of the bridge: a webhook's notification reaches a listening stream
//! (delivered by the dispatcher through the embedded API, stored, then published), and SIGTERM
//! closes open streams at once (a connector WebSocket with 1001 and its reason) instead of
//! letting them hold the graceful stop.

use std::pin::Pin;
use std::process::Command;
use std::time::{Duration, Instant};

use awc::ws::{CloseCode, Frame};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;

use crate::common::{post, spawn_app_with_routes};
use crate::support::{Process, free_port};

type Body = Pin<Box<dyn futures_util::Stream<Item = Result<Bytes, awc::error::PayloadError>>>>;

/// Opens `url` as a stream and returns its body.
async fn open(url: &str) -> Body {
    let response = awc::Client::default()
        .get(url)
        .timeout(Duration::from_secs(600))
        .send()
        .await
        .expect("the stream opens");
    assert_eq!(response.status(), 200);
    Box::pin(response)
}

/// The next JSON line of `body` (each chunk of these streams is whole lines), or `None` at its
/// end; panics after `wait`.
async fn next_event(body: &mut Body, wait: Duration) -> Option<Value> {
    let chunk = actix_web::rt::time::timeout(wait, body.next())
        .await
        .expect("an event or the end within the wait")?;
    let chunk = chunk.ok()?;
    let line = String::from_utf8_lossy(&chunk);
    Some(serde_json::from_str(line.lines().next().expect("a line")).expect("a JSON line"))
}

#[actix_web::test]
async fn a_webhooks_notification_reaches_a_listening_stream() {
    let app = spawn_app_with_routes(&[("PUSHJET_BRIDGE_ROUTES", "ops")]).await;
    let device = app.device.uuid().as_str().to_owned();
    let mut body = open(&app.url(&format!("/{device}/json"))).await;
    let open_event = next_event(&mut body, Duration::from_secs(10)).await;
    assert_eq!(open_event.expect("an open event")["event"], "open");
    let answer = post(
        &app.url("/hooks/ops"),
        &[("Content-Type", "application/json")],
        r#"{"title":"Deploy","message":"v1.2 is live","priority":4}"#,
    )
    .await;
    assert_eq!(answer.status, 202, "{}", answer.text);
    let event = next_event(&mut body, Duration::from_secs(10))
        .await
        .expect("the notification");
    assert_eq!(event["event"], "message");
    assert_eq!(event["topic"], device);
    assert_eq!(event["title"], "Deploy");
    assert_eq!(event["message"], "v1.2 is live");
    assert_eq!(event["priority"], 4);
}

#[actix_web::test]
async fn sigterm_closes_open_streams_and_the_service_stops_cleanly() {
    let data = tempfile::tempdir().expect("a directory");
    let port = free_port();
    let mut process = Process::start(data.path(), port, &[]);
    Process::wait_ready(port).await;
    let device = uuid::Uuid::new_v4();
    let mut body = open(&format!("http://127.0.0.1:{port}/{device}/json")).await;
    let open_event = next_event(&mut body, Duration::from_secs(10)).await;
    assert_eq!(open_event.expect("an open event")["event"], "open");
    let (_, mut socket) = awc::Client::default()
        .ws(format!("ws://127.0.0.1:{port}/pushjet/ws"))
        .connect()
        .await
        .expect("the connector opens");
    socket
        .send(awc::ws::Message::Text(device.to_string().into()))
        .await
        .expect("sent");
    let greeting = socket
        .next()
        .await
        .expect("a frame")
        .expect("a valid frame");
    assert_eq!(
        greeting,
        Frame::Text(Bytes::from_static(b"{'status': 'ok'}"))
    );
    let sent = Command::new("kill")
        .args(["-TERM", &process.0.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(sent.success());
    // The HTTP server would wait 10 s for a stream that stays open; a closed one ends sooner.
    let ended = next_event(&mut body, Duration::from_secs(5)).await;
    assert!(ended.is_none(), "the stream ended: {ended:?}");
    let closed = actix_web::rt::time::timeout(Duration::from_secs(5), socket.next())
        .await
        .expect("the connector is closed at once")
        .expect("a frame")
        .expect("a valid frame");
    let Frame::Close(Some(reason)) = closed else {
        panic!("a close frame with a reason: {closed:?}");
    };
    assert_eq!(reason.code, CloseCode::Away);
    assert_eq!(
        reason.description.as_deref(),
        Some("the server is shutting down")
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(status) = process.0.try_wait().expect("the process can be waited for") {
            break status;
        }
        assert!(Instant::now() < deadline, "the service did not stop");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status}");
}
