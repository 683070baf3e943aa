//! How ntfy streams end and whom they belong to (issue 23): every end the server chooses drops
//! an ntfy WebSocket without a close frame, which is what ntfy's web app reconnects after (a
//! close that is not clean); a device UUID in upper case is the same device everywhere.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{post, spawn_app_with_routes};
use crate::stream_attacks::{
    MESSAGE_BYTES, large, send, service_with_devices, start, wait_for_metric,
};
use crate::support::{Process, free_port};

/// A WebSocket spoken by hand, to see exactly which frames arrive before the TCP close.
struct RawWebSocket {
    stream: TcpStream,
    buffer: Vec<u8>,
}

/// A frame from the server (servers do not mask): its opcode and payload.
type RawFrame = (u8, Vec<u8>);

impl RawWebSocket {
    /// Opens `path` and reads the handshake's answer; `None` when it is not 101.
    fn open(port: u16, path: &str) -> Option<Self> {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("a connection");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("a timeout");
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).expect("the handshake");
        let mut socket = Self {
            stream,
            buffer: Vec::new(),
        };
        let end = loop {
            if let Some(end) = socket.buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break end;
            }
            if !socket.fill() {
                return None;
            }
        };
        let head: Vec<u8> = socket.buffer.drain(..end + 4).collect();
        String::from_utf8_lossy(&head)
            .starts_with("HTTP/1.1 101")
            .then_some(socket)
    }

    /// Reads more; false at the end of the connection.
    fn fill(&mut self) -> bool {
        let mut chunk = [0_u8; 8192];
        match self.stream.read(&mut chunk) {
            Ok(0) => false,
            Ok(read) => {
                self.buffer.extend_from_slice(&chunk[..read]);
                true
            }
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
                ) =>
            {
                false
            }
            Err(error) => panic!("the connection neither sent nor closed: {error}"),
        }
    }

    /// The next whole frame, or `None` when the connection closed first.
    fn frame(&mut self) -> Option<RawFrame> {
        loop {
            if let Some(frame) = self.parse() {
                return Some(frame);
            }
            if !self.fill() {
                return None;
            }
        }
    }

    fn parse(&mut self) -> Option<RawFrame> {
        let buffer = &self.buffer;
        if buffer.len() < 2 {
            return None;
        }
        let opcode = buffer[0] & 0x0f;
        let (length, start) = match buffer[1] & 0x7f {
            126 if buffer.len() >= 4 => {
                (usize::from(u16::from_be_bytes([buffer[2], buffer[3]])), 4)
            }
            127 if buffer.len() >= 10 => {
                let bytes: [u8; 8] = buffer[2..10].try_into().ok()?;
                (usize::try_from(u64::from_be_bytes(bytes)).ok()?, 10)
            }
            126 | 127 => return None,
            short => (usize::from(short), 2),
        };
        if buffer.len() < start + length {
            return None;
        }
        let payload = buffer[start..start + length].to_vec();
        self.buffer.drain(..start + length);
        Some((opcode, payload))
    }

    /// Every frame until the connection closes (within `wait`).
    fn frames_until_closed(&mut self, wait: Duration) -> Vec<RawFrame> {
        let deadline = Instant::now() + wait;
        let mut frames = Vec::new();
        while let Some(frame) = self.frame() {
            frames.push(frame);
            assert!(Instant::now() < deadline, "the connection stayed open");
        }
        frames
    }
}

const CLOSE: u8 = 0x8;
const TEXT: u8 = 0x1;

fn event_of(frame: &RawFrame) -> Value {
    assert_eq!(frame.0, TEXT, "a text frame");
    serde_json::from_slice(&frame.1).expect("a JSON event")
}

#[actix_web::test]
async fn sigterm_drops_an_ntfy_websocket_without_a_close_frame() {
    let data = tempfile::tempdir().expect("a directory");
    let port = free_port();
    let process = Process::start(data.path(), port, &[]);
    Process::wait_ready(port).await;
    let device = uuid::Uuid::new_v4();
    let frames = actix_web::rt::task::spawn_blocking(move || {
        let mut socket = RawWebSocket::open(port, &format!("/{device}/ws")).expect("101");
        let open = socket.frame().expect("the open event");
        assert_eq!(event_of(&open)["event"], "open");
        let sent = Command::new("kill")
            .args(["-TERM", &process.pid().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success());
        let frames = socket.frames_until_closed(Duration::from_secs(10));
        drop(process);
        frames
    })
    .await
    .expect("the client ran");
    assert!(
        frames.iter().all(|(opcode, _)| *opcode != CLOSE),
        "no close frame before the TCP close: {frames:?}"
    );
}

#[actix_web::test]
async fn an_ntfy_websocket_beyond_a_limit_is_dropped_without_a_close_frame() {
    let data = tempfile::tempdir().expect("a directory");
    let port = free_port();
    let _process = Process::start(
        data.path(),
        port,
        &[("PUSHJET_BRIDGE_MAX_STREAMS_PER_DEVICE", "1")],
    );
    Process::wait_ready(port).await;
    let device = uuid::Uuid::new_v4();
    let frames = actix_web::rt::task::spawn_blocking(move || {
        let mut first = RawWebSocket::open(port, &format!("/{device}/ws")).expect("101");
        assert_eq!(event_of(&first.frame().expect("open"))["event"], "open");
        let mut second = RawWebSocket::open(port, &format!("/{device}/ws")).expect("101");
        let frames = second.frames_until_closed(Duration::from_secs(10));
        drop(first);
        frames
    })
    .await
    .expect("the client ran");
    assert!(
        frames.is_empty(),
        "the refused stream is dropped at once, without a close frame: {frames:?}"
    );
}

#[actix_web::test]
async fn an_ntfy_websocket_too_slow_for_its_messages_is_dropped_without_a_close_frame() {
    let (_process, port, _data) = start(&[]).await;
    let (secret, devices) = service_with_devices(port, 1).await;
    let device = devices[0].clone();
    let mut socket = actix_web::rt::task::spawn_blocking(move || {
        let mut socket = RawWebSocket::open(port, &format!("/{device}/ws")).expect("101");
        assert_eq!(event_of(&socket.frame().expect("open"))["event"], "open");
        socket
    })
    .await
    .expect("the client ran");
    // The client reads nothing more until the server has let go of it.
    for number in 0..300 {
        send(port, &secret, &large(number, MESSAGE_BYTES)).await;
    }
    let open = wait_for_metric(
        port,
        "pushjet_bridge_streams_open{kind=\"ws\"}",
        0.0,
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(open, 0.0, "the slow client was dropped");
    let frames = actix_web::rt::task::spawn_blocking(move || {
        socket.frames_until_closed(Duration::from_secs(30))
    })
    .await
    .expect("the client ran");
    assert!(
        !frames.is_empty() && frames.len() < 300,
        "{} frames",
        frames.len()
    );
    assert!(
        frames.iter().all(|(opcode, _)| *opcode == TEXT),
        "only messages, no close frame, before the TCP close"
    );
}

#[actix_web::test]
async fn an_upper_case_uuid_streams_the_same_device_and_reads_the_same_mailbox() {
    let app = spawn_app_with_routes(&[("PUSHJET_BRIDGE_ROUTES", "ops")]).await;
    let lower = app.device.uuid().as_str().to_owned();
    let upper = lower.to_ascii_uppercase();
    assert_ne!(lower, upper);
    let response = awc::Client::default()
        .get(app.url(&format!("/{upper}/json")))
        .timeout(Duration::from_secs(600))
        .send()
        .await
        .expect("the stream opens");
    assert_eq!(response.status(), 200);
    let mut body = Box::pin(response);
    let answer = post(&app.url("/hooks/ops"), &[], "seen in any case").await;
    assert_eq!(answer.status, 202, "{}", answer.text);
    let mut received = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !received.contains("seen in any case") {
        let left = deadline.saturating_duration_since(Instant::now());
        let chunk = actix_web::rt::time::timeout(left, futures_util::StreamExt::next(&mut body))
            .await
            .expect("the message within the wait")
            .expect("the stream goes on")
            .expect("a chunk");
        received.push_str(&String::from_utf8_lossy(&chunk));
    }
    let mut mailbox = awc::Client::default()
        .get(app.url(&format!("/pushjet/message?uuid={upper}")))
        .send()
        .await
        .expect("the mailbox answers");
    let messages: Value = mailbox.json().await.expect("JSON");
    let texts: Vec<&str> = messages["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|message| message["message"].as_str())
        .collect();
    assert_eq!(texts, ["seen in any case"], "{messages}");
}
