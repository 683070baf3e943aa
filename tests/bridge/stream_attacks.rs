//! The stream surfaces under the attacks of issue 19, against the real binary: what the streams
//! keep (the cache, WebSocket clients that never read, polls) stays within its bounds, measured
//! as the process's peak resident memory (`VmHWM`); many UUIDs in one stream count once each;
//! streams closed by their client (FIN) let go of their connection at once, and webhooks and
//! health checks are answered during a storm of them.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use futures_util::SinkExt;
use serde_json::Value;

use crate::common::post;
use crate::support::{Process, free_port};

const MIB: u64 = 1024 * 1024;

/// Nearly the largest message the embedded API takes (64 KiB).
pub(crate) const MESSAGE_BYTES: usize = 60_000;

/// The binary on a free port with `vars`; its data directory lives as long as the returned one.
pub(crate) async fn start(vars: &[(&str, &str)]) -> (Process, u16, tempfile::TempDir) {
    let data = tempfile::tempdir().expect("a directory");
    let port = free_port();
    let process = Process::start(data.path(), port, vars);
    Process::wait_ready(port).await;
    (process, port, data)
}

/// A line of `/proc/<pid>/status` in bytes (`VmRSS`, `VmHWM`).
fn memory(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the status");
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| {
            rest.trim_start_matches(':')
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .ok()
        })
        .expect("the memory line");
    kib * 1024
}

fn client() -> awc::Client {
    awc::Client::builder()
        .connector(awc::Connector::new().limit(0))
        .timeout(Duration::from_secs(60))
        .finish()
}

/// Calls the embedded API with a form; returns the JSON answer.
async fn call(port: u16, method: &str, path: &str, form: &[(&str, &str)]) -> Value {
    let method = awc::http::Method::from_bytes(method.as_bytes()).expect("a method");
    let mut response = client()
        .request(method, format!("http://127.0.0.1:{port}/pushjet{path}"))
        .send_form(&form)
        .await
        .expect("the embedded API answers");
    let body = response
        .body()
        .limit(64 * 1024 * 1024)
        .await
        .expect("a body");
    serde_json::from_slice(&body).expect("a JSON answer")
}

/// A new service with `devices` fresh devices subscribed: its secret and the devices.
pub(crate) async fn service_with_devices(port: u16, devices: usize) -> (String, Vec<String>) {
    let service = call(port, "POST", "/service", &[("name", "Load")]).await;
    let secret = service["service"]["secret"]
        .as_str()
        .expect("a secret")
        .to_owned();
    let public = service["service"]["public"]
        .as_str()
        .expect("a public key")
        .to_owned();
    let mut uuids = Vec::new();
    for _ in 0..devices {
        let device = uuid::Uuid::new_v4().to_string();
        let answer = call(
            port,
            "POST",
            "/subscription",
            &[("uuid", &device), ("service", &public)],
        )
        .await;
        assert!(answer.get("service").is_some(), "{answer}");
        uuids.push(device);
    }
    (secret, uuids)
}

pub(crate) async fn send(port: u16, secret: &str, text: &str) {
    let answer = call(
        port,
        "POST",
        "/message",
        &[("secret", secret), ("message", text)],
    )
    .await;
    assert_eq!(answer, serde_json::json!({"status": "ok"}));
}

/// A large message, numbered.
pub(crate) fn large(number: usize, bytes: usize) -> String {
    format!("{number} {}", "x".repeat(bytes))
}

/// The value of the metric line starting with `series`, 0 when absent.
async fn metric(port: u16, series: &str) -> f64 {
    let body = client()
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .expect("metrics")
        .body()
        .await
        .expect("a body");
    String::from_utf8_lossy(&body)
        .lines()
        .find_map(|line| line.strip_prefix(series))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Waits until `series` is `value`; its last value.
pub(crate) async fn wait_for_metric(port: u16, series: &str, value: f64, wait: Duration) -> f64 {
    let deadline = Instant::now() + wait;
    loop {
        let now = metric(port, series).await;
        if (now - value).abs() < f64::EPSILON || Instant::now() > deadline {
            return now;
        }
        actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The body of `GET path` (at most 1 GiB).
async fn get_body(port: u16, path: &str) -> (u16, String) {
    let mut response = client()
        .get(format!("http://127.0.0.1:{port}{path}"))
        .send()
        .await
        .expect("an answer");
    let body = response.body().limit(1 << 30).await.expect("a body");
    (
        response.status().as_u16(),
        String::from_utf8_lossy(&body).into_owned(),
    )
}

#[actix_web::test]
async fn the_stream_cache_stays_within_its_byte_budget() {
    let (process, port, _data) =
        start(&[("PUSHJET_BRIDGE_STREAM_CACHE_MAX_BYTES", "4194304")]).await;
    let pid = process.pid();
    let before = memory(pid, "VmRSS");
    let (secret, devices) = service_with_devices(port, 3).await;
    let sent = 600;
    for number in 0..sent {
        send(port, &secret, &large(number, MESSAGE_BYTES)).await;
    }
    let peak = memory(pid, "VmHWM");
    println!(
        "stream cache: {sent} messages of 60 kB to 3 devices: resident {} MiB before, peak {} MiB",
        before / MIB,
        peak / MIB
    );
    let (status, body) = get_body(port, &format!("/{}/json?poll=1&since=all", devices[0])).await;
    assert_eq!(status, 200);
    let kept: Vec<usize> = body
        .lines()
        .map(|line| {
            let event: Value = serde_json::from_str(line).expect("a JSON line");
            let text = event["message"].as_str().expect("a message");
            text.split(' ')
                .next()
                .and_then(|n| n.parse().ok())
                .expect("its number")
        })
        .collect();
    // 4 MiB holds about 34 of these messages (each counted twice its text, as the connector's
    // frame may copy it): the newest ones, in order.
    assert!(!kept.is_empty() && kept.len() <= 35, "{} kept", kept.len());
    assert_eq!(kept.last(), Some(&(sent - 1)));
    assert!(
        kept.windows(2).all(|pair| pair[0] + 1 == pair[1]),
        "{kept:?}"
    );
    assert!(
        peak < before + 64 * MIB,
        "peak {} MiB from {} MiB",
        peak / MIB,
        before / MIB
    );
}

#[actix_web::test]
async fn a_stream_counts_once_per_uuid_and_names_at_most_the_topic_limit() {
    let (_process, port, _data) = start(&[
        ("PUSHJET_BRIDGE_MAX_STREAMS", "10"),
        ("PUSHJET_BRIDGE_MAX_TOPICS_PER_STREAM", "6"),
    ])
    .await;
    let uuids = |count: usize| {
        (0..count)
            .map(|_| uuid::Uuid::new_v4().to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let (status, body) = get_body(port, &format!("/{}/json?poll=1", uuids(7))).await;
    assert_eq!(status, 400);
    assert!(
        body.contains("at most 6 topics (PUSHJET_BRIDGE_MAX_TOPICS_PER_STREAM)"),
        "{body}"
    );
    let open = |path: String| async move {
        client()
            .get(format!("http://127.0.0.1:{port}{path}"))
            .timeout(Duration::from_secs(600))
            .send()
            .await
            .expect("an answer")
    };
    let first = open(format!("/{}/json", uuids(6))).await;
    assert_eq!(first.status(), 200);
    let refused = open(format!("/{}/json", uuids(5))).await;
    assert_eq!(
        refused.status(),
        429,
        "6 + 5 UUIDs are more than 10 streams"
    );
    let second = open(format!("/{}/json", uuids(4))).await;
    assert_eq!(second.status(), 200);
    let full = open(format!("/{}/json", uuids(1))).await;
    assert_eq!(full.status(), 429);
    drop((first, second));
}

#[actix_web::test]
async fn websocket_clients_that_never_read_are_dropped_and_their_memory_released() {
    let (process, port, _data) =
        start(&[("PUSHJET_BRIDGE_STREAM_CACHE_MAX_BYTES", "4194304")]).await;
    let pid = process.pid();
    let (secret, devices) = service_with_devices(port, 1).await;
    let device = devices[0].clone();
    let clients = 20;
    let mut sockets = Vec::new();
    for _ in 0..clients {
        let (_, ntfy) = client()
            .ws(format!("ws://127.0.0.1:{port}/{device}/ws"))
            .connect()
            .await
            .expect("the ntfy WebSocket opens");
        sockets.push(ntfy);
        let (_, mut connector) = client()
            .ws(format!("ws://127.0.0.1:{port}/pushjet/ws"))
            .connect()
            .await
            .expect("the connector opens");
        connector
            .send(awc::ws::Message::Text(device.clone().into()))
            .await
            .expect("the UUID is sent");
        sockets.push(connector);
    }
    let open = wait_for_metric(
        port,
        "pushjet_bridge_streams_open{kind=\"ws\"}",
        f64::from(clients),
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(open, f64::from(clients));
    let before = memory(pid, "VmRSS");
    // None of the clients reads a byte from here on.
    let sent = 300;
    for number in 0..sent {
        send(port, &secret, &large(number, MESSAGE_BYTES)).await;
    }
    let peak = memory(pid, "VmHWM");
    let ws = wait_for_metric(
        port,
        "pushjet_bridge_streams_open{kind=\"ws\"}",
        0.0,
        Duration::from_secs(20),
    )
    .await;
    let connector = wait_for_metric(
        port,
        "pushjet_bridge_streams_open{kind=\"connector\"}",
        0.0,
        Duration::from_secs(20),
    )
    .await;
    println!(
        "{} WebSockets that never read, {sent} messages of 60 kB: resident {} MiB before, peak {} MiB; open after: {ws} ntfy, {connector} connector",
        2 * clients,
        before / MIB,
        peak / MIB
    );
    assert_eq!((ws, connector), (0.0, 0.0), "the slow clients were dropped");
    assert!(
        peak < before + 64 * MIB,
        "peak {} MiB from {} MiB",
        peak / MIB,
        before / MIB
    );
    drop(sockets);
}

#[actix_web::test]
async fn a_poll_naming_many_uuids_is_streamed_and_lists_each_message_once() {
    // 120 messages of 60 kB: the cache's budget (8 MiB by default) raised to hold them all.
    let (process, port, _data) =
        start(&[("PUSHJET_BRIDGE_STREAM_CACHE_MAX_BYTES", "67108864")]).await;
    let pid = process.pid();
    let (secret, devices) = service_with_devices(port, 10).await;
    let sent = 120;
    for number in 0..sent {
        send(port, &secret, &large(number, MESSAGE_BYTES)).await;
    }
    let before = memory(pid, "VmHWM");
    let path = format!("/{}/json?poll=1&since=all", devices.join(","));
    let polls = futures_util::future::join_all((0..4).map(|_| get_body(port, &path))).await;
    let peak = memory(pid, "VmHWM");
    println!(
        "4 polls naming 10 UUIDs over {sent} cached messages of 60 kB: peak {} MiB before, {} MiB after",
        before / MIB,
        peak / MIB
    );
    for (status, body) in polls {
        assert_eq!(status, 200);
        assert_eq!(body.lines().count(), sent, "each message once");
    }
    assert!(
        peak < before + 64 * MIB,
        "peak {} MiB from {} MiB",
        peak / MIB,
        before / MIB
    );
}

/// Opens a `/json` stream, reads its `open` event and closes the connection (FIN).
fn open_and_close(port: u16, device: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let request = format!("GET /{device}/json HTTP/1.1\r\nHost: x\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = Vec::new();
    let mut buffer = [0_u8; 4096];
    while !String::from_utf8_lossy(&answer).contains("\"open\"") {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => return false,
            Ok(read) => answer.extend_from_slice(&buffer[..read]),
        }
    }
    let _ = stream.shutdown(Shutdown::Write);
    true
}

#[actix_web::test]
async fn streams_closed_by_their_clients_let_go_at_once_and_webhooks_answer_during_a_storm() {
    let (_process, port, _data) = start(&[("PUSHJET_BRIDGE_MAX_CONNECTIONS", "64")]).await;
    let devices: Vec<String> = (0..40).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    let storm = actix_web::rt::task::spawn_blocking(move || {
        let started = Instant::now();
        let mut opened = 0;
        let mut round = 0;
        while started.elapsed() < Duration::from_secs(6) {
            for device in &devices {
                opened += usize::from(open_and_close(port, device));
            }
            round += 1;
        }
        (opened, round)
    });
    actix_web::rt::time::sleep(Duration::from_secs(1)).await;
    for _ in 0..5 {
        let health = actix_web::rt::time::timeout(
            Duration::from_secs(5),
            client()
                .get(format!("http://127.0.0.1:{port}/healthz"))
                .send(),
        )
        .await
        .expect("/healthz answers during the storm")
        .expect("an answer");
        assert_eq!(health.status(), 200);
        let hook = actix_web::rt::time::timeout(
            Duration::from_secs(5),
            post(
                &format!("http://127.0.0.1:{port}/hooks/demo"),
                &[],
                "during the storm",
            ),
        )
        .await
        .expect("a webhook is answered during the storm");
        assert_eq!(hook.status, 202, "{}", hook.text);
        actix_web::rt::time::sleep(Duration::from_millis(500)).await;
    }
    let (opened, rounds) = storm.await.expect("the storm ran");
    println!("{opened} streams opened and closed in {rounds} rounds");
    assert!(opened >= 100, "only {opened} streams opened");
    let open = wait_for_metric(
        port,
        "pushjet_bridge_streams_open{kind=\"json\"}",
        0.0,
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(open, 0.0, "closed streams are let go of within seconds");
}
