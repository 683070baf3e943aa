//! The ntfy apps as clients of the bridge: publishing to a device topic answers as ntfy does and
//! reaches that device alone, the stream cache survives a restart (`since=<id>`), the demo's
//! start-up log tells how to watch with curl and the ntfy app, and a real browser (Debian's
//! Chromium, driven by Playwright from `tests/python/ntfy_browser_e2e.py`) on another origin
//! subscribes and publishes through CORS.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{REQUEST_TIMEOUT, post, spawn_app_in, spawn_app_with_routes, test_python};
use crate::support::{Process, free_port};

/// `PUT url` with `body`; the status and the JSON answer.
async fn put(url: &str, body: &str) -> (u16, Value) {
    let mut response = awc::Client::default()
        .put(url)
        .timeout(REQUEST_TIMEOUT)
        .send_body(body.to_owned())
        .await
        .expect("an answer");
    let bytes = response.body().await.expect("a body");
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (response.status().as_u16(), json)
}

/// `GET url` with `?poll=1`: the message events the cache holds.
async fn poll(url: &str) -> Vec<Value> {
    let mut response = awc::Client::default()
        .get(url)
        .timeout(REQUEST_TIMEOUT)
        .send()
        .await
        .expect("an answer");
    assert_eq!(response.status(), 200);
    let bytes = response.body().await.expect("a body");
    String::from_utf8_lossy(&bytes)
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect()
}

fn new_device() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Asserts the answer is ntfy's to a publish: every field ntfy sets, in its shapes.
fn assert_ntfy_answer(answer: &Value, topic: &str, message: &str) {
    let id = answer["id"].as_str().expect("an id");
    assert!(
        id.len() == 12 && id.chars().all(|c| c.is_ascii_alphanumeric()),
        "{answer}"
    );
    let time = answer["time"].as_i64().expect("a time");
    assert!(
        answer["expires"].as_i64().expect("expires") > time,
        "{answer}"
    );
    assert_eq!(answer["event"], "message", "{answer}");
    assert_eq!(answer["topic"], topic, "{answer}");
    assert_eq!(answer["message"], message, "{answer}");
}

#[actix_web::test]
async fn publishing_to_a_device_topic_answers_as_ntfy_and_reaches_that_device_alone() {
    let app = spawn_app_with_routes(&[("PUSHJET_BRIDGE_ROUTES", "ops")]).await;
    let device = app.device.uuid().as_str().to_owned();
    let bystander = new_device();

    let body = json!({"topic": device, "message": "Test from the app", "title": "ntfy web", "priority": 4, "tags": ["test"]});
    let (status, answer) = put(&app.url("/"), &body.to_string()).await;
    assert_eq!(status, 200, "{answer}");
    assert_ntfy_answer(&answer, &device, "Test from the app");
    assert_eq!(answer["title"], "ntfy web");
    assert_eq!(answer["priority"], 4);

    let by_path = post(
        &app.url(&format!("/{device}")),
        &[("Title", "curl")],
        "by path",
    )
    .await;
    assert_eq!(by_path.status, 200, "{}", by_path.text);
    assert_ntfy_answer(&by_path.json, &device, "by path");

    let cached = poll(&app.url(&format!("/{device},{bystander}/json?poll=1"))).await;
    let texts: Vec<&str> = cached
        .iter()
        .filter_map(|event| event["message"].as_str())
        .collect();
    assert_eq!(
        texts,
        ["Test from the app", "by path"],
        "on the device's streams, the bystander's none"
    );
    assert!(cached.iter().all(|event| event["topic"] == device.as_str()));
    assert_eq!(cached[0]["priority"], 4);
    assert_eq!(cached[0]["title"], "ntfy web");

    let mailbox = crate::common::expect_messages(&app.device, 2).await;
    assert_eq!(mailbox[0].message, "Test from the app");
    assert_eq!(mailbox[1].message, "by path");
    let other = app
        .app
        .pushjet()
        .device(pushjet_bridge::pushjet::DeviceUuid::parse(&bystander).expect("a UUID"));
    assert!(other.messages().await.expect("a fetch").is_empty());
}

#[actix_web::test]
async fn a_device_topics_publish_and_preflight_are_open_to_other_origins() {
    let app = spawn_app_with_routes(&[("PUSHJET_BRIDGE_ROUTES", "ops")]).await;
    let preflight = awc::Client::default()
        .request(awc::http::Method::OPTIONS, app.url("/"))
        .insert_header(("Origin", "http://127.0.0.1:1"))
        .insert_header(("Access-Control-Request-Method", "PUT"))
        .send()
        .await
        .expect("an answer");
    assert_eq!(preflight.status(), 200);
    let allowed = |name: &str| {
        preflight
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(allowed("access-control-allow-origin"), "*");
    assert!(allowed("access-control-allow-methods").contains("PUT"));
    let unknown = post(&app.url("/no-such-route"), &[], "x").await;
    assert_eq!(unknown.status, 404);
    assert_eq!(
        unknown
            .headers
            .get("access-control-allow-origin")
            .map(|v| v.as_bytes()),
        Some(&b"*"[..]),
        "an error the app can read"
    );
}

#[actix_web::test]
async fn since_an_id_returns_exactly_what_followed_it_after_a_restart() {
    let data = tempfile::tempdir().expect("a directory");
    let app = spawn_app_in(data.path(), &[]).await;
    let device = new_device();
    for text in ["one", "two", "three"] {
        let (status, answer) = put(&app.url(&format!("/{device}")), text).await;
        assert_eq!(status, 200, "{answer}");
    }
    let before = poll(&app.url(&format!("/{device}/json?poll=1&since=all"))).await;
    assert_eq!(before.len(), 3);
    let first = before[0]["id"].as_str().expect("an id").to_owned();
    app.stop().await;

    let app = spawn_app_in(data.path(), &[]).await;
    let after = poll(&app.url(&format!("/{device}/json?poll=1&since={first}"))).await;
    assert_eq!(after, before[1..], "the same events, ids included");
    app.stop().await;
}

#[actix_web::test]
async fn the_demos_log_says_how_to_watch_with_curl_and_the_ntfy_app_without_colours() {
    let folder = tempfile::tempdir().expect("a folder");
    let log_path = folder.path().join("service.log");
    let log = std::fs::File::create(&log_path).expect("a log file");
    let port = free_port();
    let _process = Process::start_logging(&folder.path().join("data"), port, &[], log);
    Process::wait_ready(port).await;
    let text = std::fs::read_to_string(&log_path).expect("the log");
    let base = format!("http://127.0.0.1:{port}");
    let device = text
        .split("subscribe to the topic ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("the ntfy app's topic:\n{text}"));
    assert!(
        text.contains(&format!("ntfy app:  add the server {base} ")),
        "{text}"
    );
    assert!(
        text.contains(&format!("curl -s {base}/{device}/json")),
        "{text}"
    );
    assert!(
        !text.contains('\u{1b}'),
        "no colour escapes in a file:\n{text:?}"
    );
}

/// Sends SIGTERM to `process` and waits until it has exited.
async fn terminate(process: &mut Process) {
    let sent = Command::new("kill")
        .args(["-TERM", &process.pid().to_string()])
        .status()
        .expect("kill runs");
    assert!(sent.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    while process.0.try_wait().expect("waitable").is_none() {
        assert!(Instant::now() < deadline, "the service did not stop");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Reads the script's next line (a JSON object), failing on its end.
fn next_report(lines: &mut impl Iterator<Item = std::io::Result<String>>) -> Value {
    let line = lines
        .next()
        .expect("the browser script reports")
        .expect("a line");
    serde_json::from_str(&line).unwrap_or_else(|_| panic!("a JSON report: {line}"))
}

#[actix_web::test]
async fn a_browser_on_another_origin_subscribes_publishes_and_resumes_after_a_restart() {
    let data = tempfile::tempdir().expect("a directory");
    let port = free_port();
    let mut bridge = Process::start(data.path(), port, &[]);
    Process::wait_ready(port).await;
    let base = format!("http://127.0.0.1:{port}");
    let device = new_device();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/ntfy_browser_e2e.py"
    );
    let mut browser = Command::new(test_python())
        .args([script, &base, &device])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the browser script starts");
    let mut to_script = browser.stdin.take().expect("its input");
    let mut lines = BufReader::new(browser.stdout.take().expect("its output")).lines();

    let first = next_report(&mut lines);
    assert_eq!(first["published_status"], 200, "{first}");
    assert_eq!(first["published"]["topic"], device.as_str(), "{first}");
    assert_eq!(first["websocket"]["message"], "from the browser", "{first}");
    assert_eq!(
        first["eventsource"]["message"], "from the browser",
        "{first}"
    );
    let seen = first["websocket"]["id"].as_str().expect("an id").to_owned();

    terminate(&mut bridge).await;
    let mut bridge = Process::start(data.path(), port, &[]);
    Process::wait_ready(port).await;
    for text in ["while away 1", "while away 2"] {
        let (status, answer) = put(&format!("{base}/{device}"), text).await;
        assert_eq!(status, 200, "{answer}");
    }
    writeln!(to_script, "{seen}").expect("the script reads");
    let second = next_report(&mut lines);
    assert_eq!(
        second["resumed"],
        json!(["while away 1", "while away 2"]),
        "the reconnect with since= gets what was sent in between: {second}"
    );
    assert_eq!(
        second["was_clean"], false,
        "the socket's close after SIGTERM is not clean, so the web app reconnects: {second}"
    );
    drop(to_script);
    let status = browser.wait().expect("the script ends");
    assert!(status.success(), "{status}");
    terminate(&mut bridge).await;
}
