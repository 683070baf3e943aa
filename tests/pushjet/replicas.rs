//! The embedded API on several replicas sharing one PostgreSQL database
//! (`PUSHJET_BRIDGE_DATABASE_URL`): the real Python client sees one API through either, a live
//! stream on one replica receives what is sent through another, a replica started later replays
//! the stream cache, and replicas starting together make one demo route.

use std::process::Command;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::Value;

use crate::common::postgres::TestPostgres;
use crate::common::{TestApp, post, spawn_app_with};

/// How long a test waits for a line or a message.
const WAIT: Duration = Duration::from_secs(15);

/// A replica on `database` with `extra` settings.
async fn replica(database: &str, extra: &[(&str, &str)]) -> TestApp {
    let mut vars = vec![("PUSHJET_BRIDGE_DATABASE_URL", database)];
    vars.extend_from_slice(extra);
    spawn_app_with(&vars).await
}

/// Calls the embedded API with a form; returns the JSON answer.
async fn call(app: &TestApp, method: &str, path: &str, form: &[(&str, &str)]) -> Value {
    let method = awc::http::Method::from_bytes(method.as_bytes()).expect("a method");
    let mut response = awc::Client::default()
        .request(method, app.url(&format!("/pushjet{path}")))
        .timeout(WAIT)
        .send_form(&form)
        .await
        .expect("the embedded API answers");
    let body = response.body().await.expect("a body");
    serde_json::from_slice(&body).expect("a JSON answer")
}

/// The next JSON line of an ntfy stream; panics after [`WAIT`].
async fn next_line<S>(stream: &mut S, buffer: &mut Vec<u8>) -> Option<Value>
where
    S: futures_util::Stream<Item = Result<bytes::Bytes, awc::error::PayloadError>> + Unpin,
{
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(end) = buffer.iter().position(|byte| *byte == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            return Some(serde_json::from_slice(&line[..end]).expect("a JSON line"));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match actix_web::rt::time::timeout(left, stream.next())
            .await
            .expect("a line within the wait")
        {
            Some(Ok(bytes)) => buffer.extend_from_slice(&bytes),
            Some(Err(_)) | None => return None,
        }
    }
}

/// The messages `GET /{device}/json?poll=1&since=all` answers on `app`, as (id, message).
async fn replayed(app: &TestApp, device: &str) -> Vec<(String, String)> {
    let mut response = awc::Client::default()
        .get(app.url(&format!("/{device}/json?poll=1&since=all")))
        .timeout(WAIT)
        .send()
        .await
        .expect("the poll answers");
    let body = response.body().await.expect("a body");
    String::from_utf8_lossy(&body)
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).expect("a JSON line"))
        .filter(|event| event["event"] == "message")
        .map(|event| {
            (
                event["id"].as_str().unwrap_or_default().to_owned(),
                event["message"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// [`replayed`] once `app` has every message of `expected` in its cache: a replica reads the
/// stream feed from the database (on its `NOTIFY`, within milliseconds), so its cache catches up
/// with another's a moment later, not at once.
async fn replayed_when_caught_up(
    app: &TestApp,
    device: &str,
    expected: &[(String, String)],
) -> Vec<(String, String)> {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let seen = replayed(app, device).await;
        if seen.len() >= expected.len() || std::time::Instant::now() >= deadline {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[actix_web::test]
async fn the_real_python_client_sees_one_api_through_two_replicas() {
    let python = std::env::var("PUSHJET_BRIDGE_TEST_PYTHON").expect(
        "PUSHJET_BRIDGE_TEST_PYTHON must name a Python with `pushjet==1.0.0` installed: run the README's test command (scripts/test)",
    );
    let database = TestPostgres::shared().create_database().await;
    let (a, b) = tokio::join!(replica(&database, &[]), replica(&database, &[]));
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/pushjet_replicas_e2e.py"
    );
    let (url_a, url_b) = (a.url("/pushjet/"), b.url("/pushjet/"));
    let output = actix_web::rt::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .arg(url_a)
            .arg(url_b)
            .output()
    })
    .await
    .expect("the blocking task runs")
    .expect("python starts");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the Python client failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("all steps passed"), "{stdout}");
}

#[actix_web::test]
async fn a_stream_on_one_replica_gets_what_is_sent_through_another_and_a_new_replica_replays_it() {
    let database = TestPostgres::shared().create_database().await;
    let (a, b) = tokio::join!(replica(&database, &[]), replica(&database, &[]));
    let service = call(&a, "POST", "/service", &[("name", "Shared")]).await["service"].clone();
    let (secret, public) = (
        service["secret"].as_str().expect("a secret"),
        service["public"].as_str().expect("a public key"),
    );
    let device = uuid::Uuid::new_v4().to_string();
    let subscribed = call(
        &a,
        "POST",
        "/subscription",
        &[("uuid", &device), ("service", public)],
    )
    .await;
    assert_eq!(subscribed["service"]["public"], public, "{subscribed}");

    let response = awc::Client::default()
        .get(a.url(&format!("/{device}/json")))
        .timeout(Duration::from_secs(600))
        .send()
        .await
        .expect("the stream opens");
    assert_eq!(response.status(), 200);
    let mut stream = Box::pin(response);
    let mut buffer = Vec::new();
    let opened = next_line(&mut stream, &mut buffer)
        .await
        .expect("an open event");
    assert_eq!(opened["event"], "open");

    for text in ["first via B", "second via B"] {
        let sent = call(
            &b,
            "POST",
            "/message",
            &[("secret", secret), ("message", text)],
        )
        .await;
        assert_eq!(sent["status"], "ok", "{sent}");
    }
    let mut streamed = Vec::new();
    while streamed.len() < 2 {
        let event = next_line(&mut stream, &mut buffer).await.expect("an event");
        if event["event"] == "message" {
            streamed.push((
                event["id"].as_str().unwrap_or_default().to_owned(),
                event["message"].as_str().unwrap_or_default().to_owned(),
            ));
        }
    }
    let texts: Vec<&str> = streamed.iter().map(|(_, text)| text.as_str()).collect();
    assert_eq!(
        texts,
        ["first via B", "second via B"],
        "each once, in order"
    );
    assert_eq!(
        replayed_when_caught_up(&b, &device, &streamed).await,
        streamed,
        "the same ids on B"
    );

    let c = replica(&database, &[]).await;
    assert_eq!(
        replayed(&c, &device).await,
        streamed,
        "a replica started afterwards replays the same messages with the same ids"
    );
    let fetched = call(&c, "GET", &format!("/message?uuid={device}"), &[]).await;
    assert_eq!(
        fetched["messages"].as_array().map(Vec::len),
        Some(2),
        "{fetched}"
    );
}

#[actix_web::test]
async fn two_replicas_starting_together_on_a_fresh_database_share_one_demo_route() {
    let database = TestPostgres::shared().create_database().await;
    let (a, b) = tokio::join!(replica(&database, &[]), replica(&database, &[]));
    let (client, connection) = tokio_postgres::connect(&database, tokio_postgres::NoTls)
        .await
        .expect("connect to the test database");
    let driver = actix_web::rt::spawn(connection);
    let services: i64 = client
        .query_one("SELECT count(*) FROM pushjet_services", &[])
        .await
        .expect("count the services")
        .get(0);
    assert_eq!(services, 1, "one demo service for both replicas");
    let device: String = client
        .query_one("SELECT device FROM pushjet_demo", &[])
        .await
        .expect("the demo row")
        .get(0);
    drop(client);
    let _closed = driver.await;

    for (app, text) in [(&a, "to A"), (&b, "to B")] {
        let body = serde_json::json!({ "message": text }).to_string();
        let answer = post(
            &app.url("/hooks/demo"),
            &[("Content-Type", "application/json")],
            body,
        )
        .await;
        assert_eq!(answer.status, 202, "{}", answer.text);
    }
    let deadline = Instant::now() + WAIT;
    let mut received: Vec<String> = Vec::new();
    while received.len() < 2 {
        assert!(
            Instant::now() < deadline,
            "the demo device got only {received:?}"
        );
        let fetched = call(&a, "GET", &format!("/message?uuid={device}"), &[]).await;
        received.extend(
            fetched["messages"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|message| message["message"].as_str().map(str::to_owned)),
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    received.sort();
    assert_eq!(received, ["to A", "to B"]);
}
