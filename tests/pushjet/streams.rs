//! Live streams: Pushjet's connector protocol spoken by Python's `websockets` (a client that is
//! not ours), and ntfy's subscribe API (JSON, SSE, raw, WebSocket, poll, since) checked field by
//! field against ntfy's documented message format (`docs/ntfy-gotify.md`).

use std::process::Command;
use std::time::{Duration, Instant};

use awc::ws::Frame;
use std::pin::Pin;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;

use crate::common::{TestApp, spawn_app_with};

/// How long a test waits for a frame or a line.
const WAIT: Duration = Duration::from_secs(10);

fn client() -> awc::Client {
    awc::Client::builder()
        .connector(awc::Connector::new().limit(0))
        .timeout(Duration::from_secs(30))
        .finish()
}

/// Calls the embedded API with a form; returns the JSON answer.
async fn call(app: &TestApp, method: &str, path: &str, form: &[(&str, &str)]) -> Value {
    let method = awc::http::Method::from_bytes(method.as_bytes()).expect("a method");
    let mut response = client()
        .request(method, app.url(&format!("/pushjet{path}")))
        .send_form(&form)
        .await
        .expect("the embedded API answers");
    let body = response.body().await.expect("a body");
    serde_json::from_slice(&body).expect("a JSON answer")
}

/// A service (owner view) with a fresh device subscribed to it.
async fn service_with_device(app: &TestApp, name: &str) -> (Value, String) {
    let service = call(
        app,
        "POST",
        "/service",
        &[("name", name), ("icon", "https://example.com/i.png")],
    )
    .await;
    let device = uuid::Uuid::new_v4().to_string();
    subscribe(app, &device, &service["service"]).await;
    (service["service"].clone(), device)
}

async fn subscribe(app: &TestApp, device: &str, service: &Value) {
    let public = service["public"].as_str().expect("a public key");
    call(
        app,
        "POST",
        "/subscription",
        &[("uuid", device), ("service", public)],
    )
    .await;
}

async fn send(app: &TestApp, service: &Value, fields: &[(&str, &str)]) {
    let secret = service["secret"].as_str().expect("a secret");
    let mut form = vec![("secret", secret)];
    form.extend_from_slice(fields);
    let answer = call(app, "POST", "/message", &form).await;
    assert_eq!(answer, serde_json::json!({"status": "ok"}));
}

/// An open HTTP stream, read line by line.
struct Lines {
    response: Pin<Box<dyn futures_util::Stream<Item = Result<Bytes, awc::error::PayloadError>>>>,
    buffer: Vec<u8>,
}

impl Lines {
    async fn open(
        app: &TestApp,
        path: &str,
    ) -> (awc::http::StatusCode, awc::http::header::HeaderMap, Self) {
        let response = client()
            .get(app.url(path))
            .timeout(Duration::from_secs(600))
            .send()
            .await
            .expect("the stream opens");
        let (status, headers) = (response.status(), response.headers().clone());
        (
            status,
            headers,
            Self {
                response: Box::pin(response),
                buffer: Vec::new(),
            },
        )
    }

    /// The next line (without its `\n`), or `None` when the stream ended.
    async fn next(&mut self) -> Option<String> {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(end) = self.buffer.iter().position(|byte| *byte == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=end).collect();
                return Some(String::from_utf8_lossy(&line[..end]).into_owned());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let chunk = actix_web::rt::time::timeout(left, self.response.next())
                .await
                .expect("a line within the wait");
            match chunk {
                Some(Ok(bytes)) => self.buffer.extend_from_slice(&bytes),
                Some(Err(_)) | None => return None,
            }
        }
    }

    async fn json(&mut self) -> Value {
        let line = self.next().await.expect("a line");
        serde_json::from_str(&line).unwrap_or_else(|_| panic!("a JSON line: {line:?}"))
    }
}

fn header<'a>(headers: &'a awc::http::header::HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_else(|| panic!("a {name} header"))
}

fn object_keys(value: &Value) -> Vec<&str> {
    value
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect()
}

/// Checks a `message` event field by field.
fn assert_message_event(event: &Value, device: &str, service: &Value, expected: &[(&str, Value)]) {
    let mut keys = object_keys(event);
    keys.sort_unstable();
    let mut expected_keys: Vec<&str> = ["id", "time", "expires", "event", "topic", "message"]
        .into_iter()
        .chain(expected.iter().map(|(key, _)| *key))
        .collect();
    expected_keys.sort_unstable();
    expected_keys.dedup();
    assert_eq!(keys, expected_keys, "{event}");
    let id = event["id"].as_str().expect("an id");
    assert_eq!(id.len(), 12, "{event}");
    assert!(id.bytes().all(|b| b.is_ascii_alphanumeric()), "{event}");
    assert_eq!(event["event"], "message");
    assert_eq!(event["topic"], device);
    let time = event["time"].as_i64().expect("a time");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    assert!(
        (i64::try_from(now).expect("fits") - time).abs() < 30,
        "{event}"
    );
    assert_eq!(event["expires"].as_i64(), Some(time + 12 * 3600), "{event}");
    for (key, value) in expected {
        assert_eq!(&event[*key], value, "{key} in {event}");
    }
    if !expected.iter().any(|(key, _)| *key == "icon") {
        assert!(service["icon"].as_str().is_none_or(str::is_empty));
    }
}

fn assert_control_event(event: &Value, kind: &str, topic: &str) {
    let mut keys = object_keys(event);
    keys.sort_unstable();
    assert_eq!(keys, ["event", "id", "time", "topic"], "{event}");
    assert_eq!(event["event"], kind);
    assert_eq!(event["topic"], topic);
    assert_eq!(event["id"].as_str().map(str::len), Some(12));
}

#[actix_web::test]
async fn the_connector_protocol_works_with_a_websocket_client_that_is_not_ours() {
    let python = std::env::var("PUSHJET_BRIDGE_TEST_PYTHON").expect(
        "PUSHJET_BRIDGE_TEST_PYTHON must name a Python with tests/python/requirements.txt installed: run scripts/test",
    );
    let app = spawn_app_with(&[
        ("PUSHJET_BRIDGE_STREAM_BUFFER", "4"),
        ("PUSHJET_BRIDGE_STREAM_KEEPALIVE", "1s"),
        ("PUSHJET_BRIDGE_MAX_STREAMS_PER_DEVICE", "2"),
    ])
    .await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/connector_e2e.py");
    let url = app.url("/");
    let output = actix_web::rt::task::spawn_blocking(move || {
        Command::new(python).arg(script).arg(url).output()
    })
    .await
    .expect("the blocking task runs")
    .expect("python starts");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the connector test failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("all steps passed"), "{stdout}");
    let metrics = client()
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .body()
        .await
        .expect("a body");
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(
        metrics
            .contains(r#"pushjet_bridge_stream_slow_consumers_dropped_total{kind="connector"} 1"#),
        "{metrics}"
    );
}

#[actix_web::test]
async fn the_ntfy_json_stream_sends_open_then_each_message_without_consuming_it() {
    let app = spawn_app_with(&[("PUSHJET_BRIDGE_STREAM_KEEPALIVE", "300ms")]).await;
    let (service, device) = service_with_device(&app, "Disk alerts").await;
    let (status, headers, mut lines) = Lines::open(&app, &format!("/{device}/json")).await;
    assert_eq!(status, 200);
    assert_eq!(
        header(&headers, "content-type"),
        "application/x-ndjson; charset=utf-8"
    );
    assert_eq!(header(&headers, "access-control-allow-origin"), "*");
    assert_control_event(&lines.json().await, "open", &device);

    send(
        &app,
        &service,
        &[
            ("message", "Disk 91% full"),
            ("title", "Disk"),
            ("level", "4"),
            ("link", "https://grafana.example/d"),
        ],
    )
    .await;
    let event = lines.json().await;
    assert_message_event(
        &event,
        &device,
        &service,
        &[
            ("title", "Disk".into()),
            ("message", "Disk 91% full".into()),
            ("priority", 4.into()),
            ("click", "https://grafana.example/d".into()),
            ("icon", "https://example.com/i.png".into()),
        ],
    );
    send(&app, &service, &[("message", "untitled")]).await;
    let untitled = lines.json().await;
    assert_eq!(
        untitled["title"], "Disk alerts",
        "a message without a title shows its service's name"
    );
    assert_eq!(untitled["priority"], 3);
    assert!(
        untitled.get("click").is_none(),
        "an empty link is left out: {untitled}"
    );

    assert_control_event(&lines.json().await, "keepalive", &device);

    let messages = call(&app, "GET", &format!("/message?uuid={device}"), &[]).await;
    assert_eq!(
        messages["messages"].as_array().map(Vec::len),
        Some(2),
        "an ntfy stream does not consume: {messages}"
    );
}

#[actix_web::test]
async fn sse_raw_and_poll_frame_events_as_ntfy_documents() {
    let app = spawn_app_with(&[]).await;
    let (service, device) = service_with_device(&app, "Frames").await;
    let (_, sse_headers, mut sse) = Lines::open(&app, &format!("/{device}/sse")).await;
    let (_, raw_headers, mut raw) = Lines::open(&app, &format!("/{device}/raw")).await;
    assert_eq!(
        header(&sse_headers, "content-type"),
        "text/event-stream; charset=utf-8"
    );
    assert_eq!(
        header(&raw_headers, "content-type"),
        "text/plain; charset=utf-8"
    );
    assert_eq!(sse.next().await.as_deref(), Some("event: open"));
    let open = sse.next().await.expect("data");
    assert_control_event(
        &serde_json::from_str(open.strip_prefix("data: ").expect("data: ")).expect("JSON"),
        "open",
        &device,
    );
    assert_eq!(sse.next().await.as_deref(), Some(""));
    assert_eq!(
        raw.next().await.as_deref(),
        Some(""),
        "raw: an empty line for open"
    );

    send(&app, &service, &[("message", "two\nlines"), ("title", "T")]).await;
    let data = sse.next().await.expect("a data line");
    let event: Value =
        serde_json::from_str(data.strip_prefix("data: ").expect("a message is data only"))
            .expect("JSON");
    assert_message_event(
        &event,
        &device,
        &service,
        &[
            ("title", "T".into()),
            ("message", "two\nlines".into()),
            ("priority", 3.into()),
            ("icon", "https://example.com/i.png".into()),
        ],
    );
    assert_eq!(sse.next().await.as_deref(), Some(""));
    assert_eq!(raw.next().await.as_deref(), Some("two lines"));

    let (status, headers, mut poll) = Lines::open(&app, &format!("/{device}/json?poll=1")).await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "access-control-allow-origin"), "*");
    let polled = poll.json().await;
    assert_eq!(
        polled["id"], event["id"],
        "poll: the cached message, no open event"
    );
    assert_eq!(poll.next().await, None, "poll closes after the cache");

    let (_, _, mut nothing) = Lines::open(&app, &format!("/{device}/json?poll=1&since=none")).await;
    assert_eq!(nothing.next().await, None);
}

#[actix_web::test]
async fn a_client_that_reconnects_with_the_last_id_gets_exactly_what_it_missed() {
    let app = spawn_app_with(&[]).await;
    let (service, device) = service_with_device(&app, "Resume").await;
    let (_, _, mut first) = Lines::open(&app, &format!("/{device}/json")).await;
    first.json().await;
    send(&app, &service, &[("message", "one")]).await;
    let seen = first.json().await;
    drop(first);
    for text in ["two", "three"] {
        send(&app, &service, &[("message", text)]).await;
    }
    let id = seen["id"].as_str().expect("an id");
    let (_, _, mut again) = Lines::open(&app, &format!("/{device}/json?since={id}")).await;
    assert_eq!(again.json().await["event"], "open");
    assert_eq!(again.json().await["message"], "two");
    assert_eq!(again.json().await["message"], "three");
    send(&app, &service, &[("message", "four")]).await;
    assert_eq!(
        again.json().await["message"],
        "four",
        "then live, nothing twice"
    );

    let (_, _, mut all) = Lines::open(&app, &format!("/{device}/json?poll=1&since=all")).await;
    for text in ["one", "two", "three", "four"] {
        assert_eq!(all.json().await["message"], text);
    }
    let (_, _, mut latest) =
        Lines::open(&app, &format!("/{device}/json?poll=1&since=latest")).await;
    assert_eq!(latest.json().await["message"], "four");
    assert_eq!(latest.next().await, None);
    let (_, _, mut recent) = Lines::open(&app, &format!("/{device}/json?poll=1&since=10m")).await;
    assert_eq!(recent.json().await["message"], "one");
    let (_, _, mut header) = Lines::open(&app, &format!("/{device}/json?poll=1")).await;
    assert_eq!(
        header.json().await["message"],
        "one",
        "poll defaults to everything"
    );

    let (status, _, mut invalid) = Lines::open(&app, &format!("/{device}/json?since=soon")).await;
    assert_eq!(status, 400);
    assert_eq!(invalid.json().await["code"], 40008);
}

#[actix_web::test]
async fn the_ntfy_websocket_sends_open_cached_and_live_events() {
    let app = spawn_app_with(&[]).await;
    let (service, device) = service_with_device(&app, "Socket").await;
    send(&app, &service, &[("message", "cached")]).await;
    let url = format!("ws://127.0.0.1:{}/{device}/ws?since=all", app.port);
    let (response, mut socket) = client()
        .ws(url)
        .connect()
        .await
        .expect("the WebSocket opens");
    assert_eq!(response.status(), 101);
    let mut next = async || -> Value {
        loop {
            let frame = actix_web::rt::time::timeout(WAIT, socket.next())
                .await
                .expect("a frame within the wait")
                .expect("a frame")
                .expect("a valid frame");
            if let Frame::Text(text) = frame {
                return serde_json::from_slice(&text).expect("JSON");
            }
        }
    };
    assert_control_event(&next().await, "open", &device);
    let cached = next().await;
    assert_message_event(
        &cached,
        &device,
        &service,
        &[
            ("title", "Socket".into()),
            ("message", "cached".into()),
            ("priority", 3.into()),
            ("icon", "https://example.com/i.png".into()),
        ],
    );
    send(&app, &service, &[("message", "live")]).await;
    assert_eq!(next().await["message"], "live");
}

#[actix_web::test]
async fn the_apps_checks_and_cors_answer_as_ntfy_does() {
    let app = spawn_app_with(&[]).await;
    let device = uuid::Uuid::new_v4();
    let mut auth = client()
        .get(app.url(&format!("/{device}/auth")))
        .send()
        .await
        .expect("an answer");
    assert_eq!(auth.status(), 200);
    assert_eq!(header(auth.headers(), "access-control-allow-origin"), "*");
    let body: Value = serde_json::from_slice(&auth.body().await.expect("a body")).expect("JSON");
    assert_eq!(body, serde_json::json!({"success": true}));

    let preflight = client()
        .request(
            awc::http::Method::OPTIONS,
            app.url(&format!("/{device}/json")),
        )
        .send()
        .await
        .expect("an answer");
    assert_eq!(preflight.status(), 200);
    assert_eq!(
        header(preflight.headers(), "access-control-allow-origin"),
        "*"
    );
    assert_eq!(
        header(preflight.headers(), "access-control-allow-methods"),
        "GET, PUT, POST, PATCH, DELETE"
    );
    assert_eq!(
        header(preflight.headers(), "access-control-allow-headers"),
        "*"
    );

    let (status, _, mut invalid) = Lines::open(&app, "/mytopic/json").await;
    assert_eq!(status, 400);
    assert_eq!(invalid.json().await["code"], 40009);
    let unknown = client()
        .get(app.url("/pushjet/json"))
        .send()
        .await
        .expect("an answer");
    assert_eq!(
        unknown.status(),
        404,
        "the embedded API's own paths keep their answers"
    );
}

#[actix_web::test]
async fn a_hundred_listeners_on_one_device_each_get_every_message() {
    let app = spawn_app_with(&[("PUSHJET_BRIDGE_MAX_STREAMS_PER_DEVICE", "100")]).await;
    let (service, device) = service_with_device(&app, "Crowd").await;
    let mut listeners = Vec::new();
    for _ in 0..100 {
        let (status, _, mut lines) = Lines::open(&app, &format!("/{device}/json")).await;
        assert_eq!(status, 200);
        assert_eq!(lines.json().await["event"], "open");
        listeners.push(lines);
    }
    let (status, _, mut refused) = Lines::open(&app, &format!("/{device}/json")).await;
    assert_eq!(status, 429, "the per-device limit");
    assert_eq!(refused.json().await["code"], 42905);
    for text in ["first", "second"] {
        send(&app, &service, &[("message", text)]).await;
    }
    for lines in &mut listeners {
        assert_eq!(lines.json().await["message"], "first");
        assert_eq!(lines.json().await["message"], "second");
    }
}

#[actix_web::test]
async fn a_thousand_devices_with_one_listener_each_get_only_their_own_messages() {
    let app = spawn_app_with(&[]).await;
    let service = call(&app, "POST", "/service", &[("name", "Fleet")]).await["service"].clone();
    let mut listeners = Vec::new();
    for _ in 0..1000 {
        let device = uuid::Uuid::new_v4().to_string();
        subscribe(&app, &device, &service).await;
        let (_, _, mut lines) = Lines::open(&app, &format!("/{device}/json")).await;
        assert_eq!(lines.json().await["event"], "open");
        listeners.push((device, lines));
    }
    send(&app, &service, &[("message", "to everyone")]).await;
    let lonely = uuid::Uuid::new_v4().to_string();
    let other = call(&app, "POST", "/service", &[("name", "Other")]).await["service"].clone();
    subscribe(&app, &lonely, &other).await;
    send(&app, &other, &[("message", "only for the lonely device")]).await;
    send(&app, &service, &[("message", "again")]).await;
    for (device, lines) in &mut listeners {
        let first = lines.json().await;
        assert_eq!(first["message"], "to everyone");
        assert_eq!(first["topic"], device.as_str());
        assert_eq!(
            lines.json().await["message"],
            "again",
            "nothing of another device in between"
        );
    }
}

#[actix_web::test]
async fn a_slow_ntfy_listener_is_dropped_and_can_resume_from_the_cache() {
    // 500 messages of 40 kB: the cache's budget (8 MiB by default) raised to hold them all.
    let app = spawn_app_with(&[
        ("PUSHJET_BRIDGE_STREAM_BUFFER", "4"),
        ("PUSHJET_BRIDGE_STREAM_CACHE_MAX_BYTES", "67108864"),
    ])
    .await;
    let (service, device) = service_with_device(&app, "Flood").await;
    let (_, _, mut slow) = Lines::open(&app, &format!("/{device}/json")).await;
    let (_, _, mut fast) = Lines::open(&app, &format!("/{device}/json")).await;
    slow.json().await;
    fast.json().await;
    let padding = "x".repeat(40_000);
    let total = 500;
    for number in 0..total {
        send(
            &app,
            &service,
            &[("message", &format!("{number} {padding}"))],
        )
        .await;
        let event = fast.json().await;
        assert!(
            event["message"]
                .as_str()
                .is_some_and(|text| text.starts_with(&format!("{number} ")))
        );
    }
    let mut seen = Vec::new();
    while let Some(line) = slow.next().await {
        let event: Value = serde_json::from_str(&line).expect("JSON");
        seen.push(event);
    }
    assert!(seen.len() < total, "the slow listener was dropped");
    let last = seen.last().expect("it got some")["id"]
        .as_str()
        .expect("an id")
        .to_owned();
    let (_, _, mut resume) =
        Lines::open(&app, &format!("/{device}/json?poll=1&since={last}")).await;
    let mut resumed = 0;
    while resume.next().await.is_some() {
        resumed += 1;
    }
    assert_eq!(
        seen.len() + resumed,
        total,
        "the cache holds what it missed, nothing twice"
    );
    let metrics = client()
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .body()
        .await
        .expect("a body");
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(
        metrics.contains(r#"pushjet_bridge_stream_slow_consumers_dropped_total{kind="json"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"pushjet_bridge_streams_open{kind="json"} 1"#),
        "{metrics}"
    );
}

#[actix_web::test]
async fn ntfy_filters_select_by_priority_title_message_and_id() {
    let app = spawn_app_with(&[]).await;
    let (service, device) = service_with_device(&app, "Filtered").await;
    send(&app, &service, &[("message", "low"), ("level", "2")]).await;
    send(
        &app,
        &service,
        &[("message", "urgent"), ("level", "5"), ("title", "Pager")],
    )
    .await;
    send(&app, &service, &[("message", "high"), ("level", "4")]).await;
    let poll = async |query: &str| -> Vec<String> {
        let (status, _, mut lines) =
            Lines::open(&app, &format!("/{device}/json?poll=1&{query}")).await;
        assert_eq!(status, 200, "{query}");
        let mut texts = Vec::new();
        while let Some(line) = lines.next().await {
            let event: Value = serde_json::from_str(&line).expect("JSON");
            texts.push(event["message"].as_str().expect("a message").to_owned());
        }
        texts
    };
    assert_eq!(poll("priority=high,5").await, ["urgent", "high"]);
    assert_eq!(poll("p=low").await, ["low"]);
    assert_eq!(poll("title=Pager").await, ["urgent"]);
    assert_eq!(poll("t=Filtered").await, ["low", "high"], "the shown title");
    assert_eq!(poll("message=high").await, ["high"]);
    assert!(
        poll("tags=warning").await.is_empty(),
        "Pushjet messages have no tags"
    );
    let (_, _, mut all) = Lines::open(&app, &format!("/{device}/json?poll=1")).await;
    let id = all.json().await["id"].as_str().expect("an id").to_owned();
    assert_eq!(poll(&format!("id={id}")).await, ["low"]);
    let (status, _, mut invalid) = Lines::open(&app, &format!("/{device}/json?priority=7")).await;
    assert_eq!(status, 400);
    assert_eq!(invalid.json().await["code"], 40007);
}

/// The next frame of a WebSocket, within the wait.
async fn next_frame<S>(socket: &mut S) -> Frame
where
    S: futures_util::Stream<Item = Result<Frame, awc::error::WsProtocolError>> + Unpin,
{
    actix_web::rt::time::timeout(WAIT, socket.next())
        .await
        .expect("a frame within the wait")
        .expect("a frame")
        .expect("a valid frame")
}

#[actix_web::test]
async fn idle_websockets_are_pinged_every_keepalive_interval() {
    let app = spawn_app_with(&[("PUSHJET_BRIDGE_STREAM_KEEPALIVE", "200ms")]).await;
    let device = uuid::Uuid::new_v4().to_string();
    let connector = format!("ws://127.0.0.1:{}/pushjet/ws", app.port);
    let (_, mut socket) = client().ws(connector).connect().await.expect("connected");
    socket
        .send(awc::ws::Message::Text(device.clone().into()))
        .await
        .expect("sent");
    assert_eq!(
        next_frame(&mut socket).await,
        Frame::Text(Bytes::from_static(b"{'status': 'ok'}"))
    );
    for _ in 0..2 {
        assert!(
            matches!(next_frame(&mut socket).await, Frame::Ping(_)),
            "a ping"
        );
    }
    let ntfy = format!("ws://127.0.0.1:{}/{device}/ws", app.port);
    let (_, mut socket) = client().ws(ntfy).connect().await.expect("connected");
    assert!(
        matches!(next_frame(&mut socket).await, Frame::Text(_)),
        "the open event"
    );
    assert!(
        matches!(next_frame(&mut socket).await, Frame::Ping(_)),
        "a ping"
    );
}
