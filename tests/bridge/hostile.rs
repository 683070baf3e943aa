//! Hostile input against the running service: what a request can make the service write to its
//! log, and how it holds against many or slow clients.

use std::time::{Duration, Instant};

use crate::common::post;
use crate::support::{Process, free_port};

/// Starts the binary (no routes: the demo route on the embedded API) with its human log going to
/// a file in `folder`; returns the process, its port and the log's path.
async fn start_logged(
    folder: &tempfile::TempDir,
    vars: &[(&str, &str)],
) -> (Process, u16, std::path::PathBuf) {
    let log_path = folder.path().join("service.log");
    let log = std::fs::File::create(&log_path).expect("a log file");
    let port = free_port();
    let data_dir = folder.path().join("data");
    let process = Process::start_logging(&data_dir, port, vars, log);
    Process::wait_ready(port).await;
    (process, port, log_path)
}

/// Reads the log until it holds `count` lines containing `needle` (up to 5 s).
async fn log_with(path: &std::path::Path, needle: &str, count: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(path).expect("the log");
        if text.matches(needle).count() >= count || Instant::now() > deadline {
            return text;
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

#[actix_web::test]
async fn control_characters_from_a_request_cannot_forge_a_log_line() {
    let folder = tempfile::tempdir().expect("a folder");
    let (_process, port, log_path) = start_logged(&folder, &[]).await;
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");

    let unknown = post(
        &url("/hooks/x%0a2026-01-01T00:00:00Z%20INFO%20forged%20by%20the%20path%0d%00"),
        &[],
        "hello",
    )
    .await;
    assert_eq!(unknown.status, 404, "{}", unknown.text);
    let by_body = post(
        &url("/hooks/demo"),
        &[
            ("Content-Type", "application/json"),
            ("X-Gitlab-Event", "Push Hook"),
        ],
        r#"{"object_kind": "push\n2026-01-01T00:00:00Z INFO forged by the body\r\u0000"}"#,
    )
    .await;
    assert!(by_body.status.is_client_error() || by_body.status.is_success());

    let text = log_with(&log_path, "webhook", 2).await;
    assert!(
        text.contains("forged by the path") && text.contains("forged by the body"),
        "both requests are logged:\n{text}"
    );
    for line in text.lines() {
        assert!(
            !line.contains("Z INFO forged") || line.contains("webhook"),
            "a request forged a log line of its own: {line:?}\n{text}"
        );
    }
    assert!(
        !text.contains(['\r', '\0']),
        "raw control characters in the log:\n{text:?}"
    );
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).expect("compressed");
    encoder.finish().expect("compressed")
}

#[actix_web::test]
async fn gzip_bodies_are_decoded_bombs_refused_and_unknown_encodings_refused() {
    let app = crate::common::spawn_app_with_routes(&[
        ("PUSHJET_BRIDGE_ROUTES", "zipped"),
        ("PUSHJET_BRIDGE_MAX_BODY_BYTES", "65536"),
    ])
    .await;
    let url = app.url("/hooks/zipped");
    let json = br#"{"title": "Zipped", "message": "from a gzip body"}"#;
    let answer = post(
        &url,
        &[
            ("Content-Type", "application/json"),
            ("Content-Encoding", "gzip"),
        ],
        gzip(json),
    )
    .await;
    assert_eq!(answer.status, 202, "{}", answer.text);
    let message = crate::common::expect_one_message(&app.device).await;
    assert_eq!(
        (message.title.as_deref(), message.message.as_str()),
        (Some("Zipped"), "from a gzip body")
    );

    let bomb = gzip(&vec![b' '; 8 * 1024 * 1024]);
    assert!(bomb.len() < 65536, "the bomb itself is under the limit");
    let answer = post(
        &url,
        &[
            ("Content-Type", "application/json"),
            ("Content-Encoding", "gzip"),
        ],
        bomb,
    )
    .await;
    assert_eq!(answer.status, 413, "{}", answer.text);

    let answer = post(
        &url,
        &[("Content-Type", "text/plain"), ("Content-Encoding", "br")],
        "not really brotli",
    )
    .await;
    assert_eq!(answer.status, 415, "{}", answer.text);
    assert!(
        answer.error().contains("Content-Encoding"),
        "{}",
        answer.text
    );
}

/// Opens a connection and sends `head` (and nothing more): a client that stalls.
fn stall(port: u16, head: &str) -> std::net::TcpStream {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connected");
    stream.write_all(head.as_bytes()).expect("sent");
    stream
}

/// What the service does with a stalled connection within `wait`: `Some(answer)` when it
/// answered (possibly empty: it closed the connection), `None` when it still holds it open.
fn outcome(mut stream: std::net::TcpStream, wait: Duration) -> Option<String> {
    use std::io::Read;
    stream.set_read_timeout(Some(wait)).expect("a timeout");
    let mut answer = Vec::new();
    match stream.read_to_end(&mut answer) {
        Ok(_) => Some(String::from_utf8_lossy(&answer).into_owned()),
        Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => Some(String::new()),
        Err(_) => None,
    }
}

#[actix_web::test]
async fn a_request_whose_headers_or_body_stall_is_cut_off_at_the_deadline() {
    let folder = tempfile::tempdir().expect("a folder");
    let (_process, port, _log) =
        start_logged(&folder, &[("PUSHJET_BRIDGE_REQUEST_TIMEOUT", "1s")]).await;
    let stalled_body = stall(
        port,
        "POST /hooks/demo HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\nonly ten..",
    );
    let stalled_api_body = stall(
        port,
        "POST /pushjet/service HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nname=",
    );
    let stalled_headers = stall(port, "POST /hooks/demo HTTP/1.1\r\nHost: x\r\n");
    let wait = Duration::from_secs(8);
    let (body, api_body, headers) = actix_web::rt::task::spawn_blocking(move || {
        (
            outcome(stalled_body, wait),
            outcome(stalled_api_body, wait),
            outcome(stalled_headers, wait),
        )
    })
    .await
    .expect("the readers finish");
    for (what, answer) in [
        ("webhook body", body),
        ("API body", api_body),
        ("headers", headers),
    ] {
        let answer =
            answer.unwrap_or_else(|| panic!("a stalled {what} still holds its connection"));
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
            "a stalled {what}: {answer}"
        );
    }
}

const SECURE_TOKEN: &str = "a-long-enough-token-for-route-secure";

#[actix_web::test]
async fn a_request_failing_a_header_check_is_answered_before_its_body_is_read() {
    let app = crate::common::spawn_app_with_routes(&[
        ("PUSHJET_BRIDGE_ROUTES", "secure"),
        ("PUSHJET_BRIDGE_ROUTE_SECURE_TOKEN", SECURE_TOKEN),
    ])
    .await;
    let port = app.app.port;
    let bearer = format!("Authorization: Bearer {SECURE_TOKEN}\r\n");
    let cases = [
        ("no token", String::new(), "text/plain", 401),
        (
            "wrong token",
            "Authorization: Bearer wrong\r\n".to_owned(),
            "text/plain",
            401,
        ),
        ("an image", bearer.clone(), "image/png", 415),
    ];
    for (what, auth, content_type, status) in cases {
        // The body is declared and never sent: only the headers can be checked.
        let stream = stall(
            port,
            &format!(
                "POST /hooks/secure HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: {content_type}\r\nContent-Length: 4000000\r\n\r\n"
            ),
        );
        let answer =
            actix_web::rt::task::spawn_blocking(move || outcome(stream, Duration::from_secs(5)))
                .await
                .expect("the reader finishes")
                .unwrap_or_else(|| panic!("{what}: no answer while the body is awaited"));
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}")),
            "{what}: {answer}"
        );
    }
}

/// The resident memory of a process, in bytes, from `/proc/<pid>/status`.
fn resident_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the status");
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmRSS line");
    kib * 1024
}

/// Opens `count` connections that each declare a 5 MiB body to `path` with `auth`, send `sent`
/// bytes of it and stall, holding their connections open.
fn trickle(
    port: u16,
    count: usize,
    path: &str,
    auth: &str,
    sent: usize,
) -> Vec<std::net::TcpStream> {
    use std::io::Write;
    let chunk = vec![b'x'; sent];
    (0..count)
        .filter_map(|_| {
            let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
            stream.set_write_timeout(Some(Duration::from_millis(200))).ok()?;
            let head = format!(
                "POST {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: text/plain\r\nContent-Length: 5242880\r\n\r\n"
            );
            let _refused_or_stalled = stream
                .write_all(head.as_bytes())
                .and_then(|()| stream.write_all(&chunk));
            Some(stream)
        })
        .collect()
}

#[actix_web::test]
async fn memory_stays_bounded_and_a_sender_is_served_while_many_connections_trickle_bodies() {
    let folder = tempfile::tempdir().expect("a folder");
    let secret = "0123456789abcdef0123456789abcdef";
    let (process, port, _log) = start_logged(
        &folder,
        &[
            ("PUSHJET_BRIDGE_ROUTES", "secure"),
            ("PUSHJET_BRIDGE_ROUTE_SECURE_SECRET", secret),
            ("PUSHJET_BRIDGE_ROUTE_SECURE_TOKEN", SECURE_TOKEN),
        ],
    )
    .await;
    let pid = process.0.id();
    let before = resident_bytes(pid);
    let bearer = format!("Authorization: Bearer {SECURE_TOKEN}\r\n");
    let held = actix_web::rt::task::spawn_blocking(move || {
        let mut held = trickle(port, 400, "/hooks/secure", "", 1024 * 1024);
        held.extend(trickle(port, 100, "/hooks/secure", &bearer, 256 * 1024));
        held
    })
    .await
    .expect("the attackers connect");
    assert!(held.len() >= 450, "only {} connections opened", held.len());

    let answer = post(
        &format!("http://127.0.0.1:{port}/hooks/secure"),
        &[("Authorization", &format!("Bearer {SECURE_TOKEN}"))],
        "a real notification",
    )
    .await;
    assert_eq!(answer.status, 202, "{}", answer.text);
    let during = resident_bytes(pid);
    println!(
        "resident memory: {} MiB before, {} MiB with {} connections trickling bodies",
        before / (1024 * 1024),
        during / (1024 * 1024),
        held.len()
    );
    assert!(
        during < 256 * 1024 * 1024,
        "resident memory grew to {} MiB",
        during / (1024 * 1024)
    );
    drop(held);
}

#[actix_web::test]
async fn bodies_beyond_the_memory_set_aside_for_them_get_503_until_it_is_free_again() {
    let app = crate::common::spawn_app_with_routes(&[
        ("PUSHJET_BRIDGE_ROUTES", "open"),
        ("PUSHJET_BRIDGE_MAX_BUFFERED_BYTES", "100000"),
    ])
    .await;
    let port = app.app.port;
    let held = actix_web::rt::task::spawn_blocking(move || {
        let mut stream = stall(
            port,
            "POST /hooks/open HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 95000\r\n\r\n",
        );
        std::io::Write::write_all(&mut stream, &[b'x'; 90_000]).expect("sent");
        stream
    })
    .await
    .expect("the first body is on its way");
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;

    let url = app.url("/hooks/open");
    let text = "y".repeat(20_000);
    let refused = post(&url, &[("Content-Type", "text/plain")], text.clone()).await;
    assert_eq!(refused.status, 503, "{}", refused.text);
    assert_eq!(
        refused
            .headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );

    drop(held);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut accepted = post(&url, &[("Content-Type", "text/plain")], text.clone()).await;
    while accepted.status != 202 && Instant::now() < deadline {
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        accepted = post(&url, &[("Content-Type", "text/plain")], text.clone()).await;
    }
    assert_eq!(accepted.status, 202, "{}", accepted.text);
}

#[actix_web::test]
async fn requests_beyond_the_connection_limit_get_503_and_health_checks_still_answer() {
    let app = crate::common::spawn_app_with(&[("PUSHJET_BRIDGE_MAX_CONNECTIONS", "10")]).await;
    let port = app.port;
    let stalled: Vec<_> = (0..10)
        .map(|_| {
            stall(
                port,
                "POST /hooks/demo HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\n",
            )
        })
        .collect();
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    let url = app.url("/hooks/demo");
    let refused = post(&url, &[("Content-Type", "text/plain")], "one too many").await;
    assert_eq!(refused.status, 503, "{}", refused.text);
    assert_eq!(
        refused
            .headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    let health = awc::Client::default()
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("an answer");
    assert_eq!(health.status(), 200);

    drop(stalled);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut accepted = post(&url, &[("Content-Type", "text/plain")], "room again").await;
    while accepted.status != 202 && Instant::now() < deadline {
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        accepted = post(&url, &[("Content-Type", "text/plain")], "room again").await;
    }
    assert_eq!(accepted.status, 202, "{}", accepted.text);
}
