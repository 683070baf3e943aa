//! The history's replay and rerender (each delivers once; rerender with today's template; 409
//! without a kept body), no secret in a kept request (answers and the raw redb file searched),
//! and two replicas sharing one history on PostgreSQL, its live stream included.

use std::time::{Duration, Instant};

use base64::Engine as _;
use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::common::postgres::TestPostgres;
use crate::common::{
    assert_no_more_messages, expect_one_message, post, pushjet_with_services, spawn_app_with,
    spawn_app_with_routes,
};
use crate::support::{delivery_headers, fixture, github_signature};

const JSON: (&str, &str) = ("Content-Type", "application/json");
const ADMIN_TOKEN: &str = "admin-token-for-the-history-tests";
const TIMEOUT: Duration = Duration::from_secs(15);

async fn admin(base: &str, method: awc::http::Method, path: &str) -> (u16, Value) {
    let mut response = awc::Client::builder()
        .timeout(TIMEOUT)
        .finish()
        .request(method, format!("{base}{path}"))
        .insert_header(("Authorization", format!("Bearer {ADMIN_TOKEN}")))
        .send()
        .await
        .expect("the admin API answers");
    let body = response
        .body()
        .limit(16 * 1024 * 1024)
        .await
        .expect("a body");
    (
        response.status().as_u16(),
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    )
}

/// The id of the record of the request sent with `request_id`, once it is listed.
async fn record_of(base: &str, request_id: &str) -> u64 {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let (status, page) = admin(base, awc::http::Method::GET, "/admin/history?limit=500").await;
        assert_eq!(status, 200, "{page}");
        for summary in page["records"].as_array().into_iter().flatten() {
            let id = summary["id"].as_u64().expect("an id");
            let (_, story) = admin(
                base,
                awc::http::Method::GET,
                &format!("/admin/history/{id}"),
            )
            .await;
            if story["request_id"] == request_id {
                return id;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no record of {request_id}: {page}"
        );
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
}

#[actix_web::test]
async fn replay_and_rerender_deliver_once_each_and_rerender_uses_todays_template() {
    let templates = tempfile::tempdir().expect("a folder");
    std::fs::create_dir_all(templates.path().join("custom")).expect("a template folder");
    let template = templates.path().join("custom/note.toml");
    std::fs::write(&template, "title = 'v1'\nmessage = 'v1: {{message}}'\n").expect("a template");
    let dir = templates.path().display().to_string();
    let app = spawn_app_with_routes(&[
        ("PUSHJET_BRIDGE_ROUTES", "notes"),
        ("PUSHJET_BRIDGE_ROUTE_NOTES_TEMPLATE", "custom/note"),
        ("PUSHJET_BRIDGE_TEMPLATES_DIR", &dir),
        ("PUSHJET_BRIDGE_ADMIN_TOKEN", ADMIN_TOKEN),
        ("PUSHJET_BRIDGE_HISTORY_BODIES", "true"),
        ("PUSHJET_BRIDGE_MAX_BODY_BYTES", "1000"),
    ])
    .await;
    let base = app.url("");
    let body = json!({ "message": "hello" }).to_string();
    let answer = post(
        &app.url("/hooks/notes"),
        &[JSON, ("X-Request-Id", "original")],
        body,
    )
    .await;
    assert_eq!(answer.status, 202, "{}", answer.text);
    assert_eq!(expect_one_message(&app.device).await.message, "v1: hello");
    let id = record_of(&base, "original").await;

    let (status, replayed) = admin(
        &base,
        awc::http::Method::POST,
        &format!("/admin/history/{id}/replay"),
    )
    .await;
    assert_eq!(status, 202, "{replayed}");
    assert_eq!(replayed["record"]["via"], "replay");
    assert_eq!(replayed["record"]["again_of"], id);
    assert_eq!(
        expect_one_message(&app.device).await.message,
        "v1: hello",
        "as stored"
    );

    std::fs::write(&template, "title = 'v2'\nmessage = 'v2: {{message}}'\n")
        .expect("a new template");
    let (status, reloaded) = admin(&base, awc::http::Method::POST, "/admin/reload").await;
    assert_eq!(status, 200, "{reloaded}");
    let (status, rerendered) = admin(
        &base,
        awc::http::Method::POST,
        &format!("/admin/history/{id}/rerender"),
    )
    .await;
    assert_eq!(status, 202, "{rerendered}");
    assert_eq!(rerendered["record"]["via"], "rerender");
    assert_eq!(
        expect_one_message(&app.device).await.message,
        "v2: hello",
        "today's template"
    );
    assert_no_more_messages(&app.device).await;

    // A request refused before its body was read kept none: it cannot be rendered again.
    let large = vec![b'x'; 5_000];
    let answer = post(
        &app.url("/hooks/notes"),
        &[JSON, ("X-Request-Id", "large")],
        large,
    )
    .await;
    assert_eq!(answer.status, 413, "{}", answer.text);
    let large = record_of(&base, "large").await;
    let (status, refused) = admin(
        &base,
        awc::http::Method::POST,
        &format!("/admin/history/{large}/rerender"),
    )
    .await;
    assert_eq!(status, 409, "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .is_some_and(|e| e.contains("PUSHJET_BRIDGE_HISTORY_BODIES")),
        "{refused}"
    );
    let (status, _) = admin(
        &base,
        awc::http::Method::POST,
        "/admin/history/12345/replay",
    )
    .await;
    assert_eq!(status, 404);
    app.app.stop().await;
}

/// A request: path, headers, body.
type Request<'a> = (String, Vec<(&'a str, &'a str)>, Vec<u8>);

fn unique(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

#[actix_web::test]
async fn no_secret_is_kept_in_the_history_on_redb() {
    let webhook_secret = unique("whsec");
    let token = unique("tok");
    let password = unique("pw");
    let basic = format!("alice:{password}");
    let basic_header = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(&basic)
    );
    let app = spawn_app_with_routes(&[
        ("PUSHJET_BRIDGE_ROUTES", "gh,tok,basic"),
        ("PUSHJET_BRIDGE_ROUTE_GH_WEBHOOK_SECRET", &webhook_secret),
        ("PUSHJET_BRIDGE_ROUTE_TOK_TOKEN", &token),
        ("PUSHJET_BRIDGE_ROUTE_BASIC_BASIC_AUTH", &basic),
        ("PUSHJET_BRIDGE_ADMIN_TOKEN", ADMIN_TOKEN),
        ("PUSHJET_BRIDGE_HISTORY_BODIES", "true"),
    ])
    .await;
    let push = fixture("github", "push.json");
    let signed = github_signature(&webhook_secret, &push);
    let github = delivery_headers("github", "push.json");
    let mut github: Vec<(&str, &str)> = github.iter().map(|(n, v)| (*n, v.as_str())).collect();
    github.push(("X-Hub-Signature-256", &signed));
    let bearer = format!("Bearer {token}");
    let near = format!("Bearer {token}x");
    let hello = br#"{"message":"hello"}"#.to_vec();
    let requests: Vec<Request> = vec![
        ("/hooks/gh".into(), github.clone(), push.clone()),
        (
            "/hooks/tok".into(),
            vec![JSON, ("Authorization", &bearer)],
            hello.clone(),
        ),
        (
            format!("/hooks/tok?token={token}&title=q"),
            vec![JSON],
            hello.clone(),
        ),
        (
            "/hooks/tok".into(),
            vec![JSON, ("Authorization", &near)],
            hello.clone(),
        ),
        (
            "/hooks/basic".into(),
            vec![JSON, ("Authorization", &basic_header)],
            hello.clone(),
        ),
        (
            "/tok".into(),
            vec![("Authorization", &bearer)],
            b"ntfy".to_vec(),
        ),
        (
            "/message".into(),
            vec![JSON, ("X-Gotify-Key", &token)],
            hello.clone(),
        ),
        (format!("/message?token={token}"), vec![JSON], hello.clone()),
    ];
    for (path, headers, body) in requests {
        let answer = post(&app.url(&path), &headers, body).await;
        assert!(answer.status.as_u16() < 500, "{path}: {}", answer.text);
    }
    let base = app.url("");
    let deadline = Instant::now() + TIMEOUT;
    let mut answers = Vec::new();
    loop {
        let (_, page) = admin(&base, awc::http::Method::GET, "/admin/history?limit=500").await;
        let ids: Vec<u64> = page["records"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["id"].as_u64())
            .collect();
        if ids.len() >= 8 {
            answers.push(page.to_string());
            for id in ids {
                let (_, story) = admin(
                    &base,
                    awc::http::Method::GET,
                    &format!("/admin/history/{id}"),
                )
                .await;
                answers.push(story.to_string());
            }
            break;
        }
        assert!(Instant::now() < deadline, "8 records expected: {page}");
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    let joined = answers.join("\n");
    assert!(
        joined.contains("<redacted>"),
        "the token parameter is shown as redacted: {joined}"
    );
    assert!(
        joined.contains("x-github-event"),
        "the kept headers are there: {joined}"
    );
    let data_dir = app.app.data_dir.clone();
    app.app.stop().await;
    // The history's last commit reaches the file once the stopped service has let go of it.
    let deadline = Instant::now() + TIMEOUT;
    let raw = loop {
        let raw = std::fs::read(data_dir.join("history.redb")).expect("the history file");
        let raw = String::from_utf8_lossy(&raw).into_owned();
        if raw.contains("x-github-event") {
            break raw;
        }
        assert!(Instant::now() < deadline, "the raw file holds the records");
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    };
    for (kind, secret) in [
        ("webhook secret", webhook_secret.as_str()),
        ("signature", signed.as_str()),
        ("token", token.as_str()),
        ("basic password", password.as_str()),
        ("basic header", basic_header.trim_start_matches("Basic ")),
        ("admin token", ADMIN_TOKEN),
    ] {
        assert!(
            !joined.contains(secret),
            "the {kind} is in a history answer"
        );
        assert!(!raw.contains(secret), "the {kind} is in history.redb");
    }
}

/// Reads server-sent events from `stream` until one holds `needle`; that event.
async fn event_with(
    stream: &mut (
             impl futures_util::Stream<Item = Result<bytes::Bytes, awc::error::PayloadError>> + Unpin
         ),
    needle: &str,
) -> String {
    let deadline = Instant::now() + TIMEOUT;
    let mut text = String::new();
    loop {
        if let Some(event) = text.split("\n\n").find(|event| event.contains(needle)) {
            return event.to_owned();
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let chunk = tokio::time::timeout(left, stream.next())
            .await
            .unwrap_or_else(|_| panic!("no event with {needle} within {TIMEOUT:?}: {text}"))
            .expect("the stream stays open")
            .expect("a chunk");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
}

#[actix_web::test]
async fn two_replicas_share_one_history_and_its_live_stream() {
    let (upstream, secrets, device) = pushjet_with_services(1).await;
    let database = TestPostgres::shared().create_database().await;
    let api = upstream.url("/pushjet/");
    let vars = [
        ("PUSHJET_API_URL", api.as_str()),
        ("PUSHJET_BRIDGE_EMBEDDED_PUSHJET", "false"),
        ("PUSHJET_BRIDGE_ROUTES", "gh"),
        ("PUSHJET_BRIDGE_ROUTE_GH_SECRET", secrets[0].as_str()),
        ("PUSHJET_BRIDGE_DATABASE_URL", database.as_str()),
        ("PUSHJET_BRIDGE_ADMIN_TOKEN", ADMIN_TOKEN),
    ];
    let a = spawn_app_with(&vars).await;
    let b = spawn_app_with(&vars).await;

    let mut stream = awc::Client::builder()
        .timeout(Duration::from_secs(60))
        .finish()
        .get(b.url("/admin/history/stream"))
        .insert_header(("Authorization", format!("Bearer {ADMIN_TOKEN}")))
        .send()
        .await
        .expect("the stream opens");
    assert_eq!(stream.status(), 200);
    event_with(&mut stream, "history stream").await;

    let body = json!({ "message": "posted to A" }).to_string();
    let answer = post(&a.url("/hooks/gh"), &[JSON, ("X-Request-Id", "to-a")], body).await;
    assert_eq!(answer.status, 202, "{}", answer.text);
    let event = event_with(&mut stream, r#""route":"gh""#).await;
    assert!(event.starts_with("event: record"), "{event}");
    assert_eq!(expect_one_message(&device).await.message, "posted to A");

    let id = record_of(&b.url(""), "to-a").await;
    let (status, replayed) = admin(
        &b.url(""),
        awc::http::Method::POST,
        &format!("/admin/history/{id}/replay"),
    )
    .await;
    assert_eq!(status, 202, "{replayed}");
    assert_eq!(
        expect_one_message(&device).await.message,
        "posted to A",
        "replayed through B"
    );
    drop(stream);
    a.stop().await;
    b.stop().await;
}
