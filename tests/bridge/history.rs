//! The delivery history end to end, on redb and on PostgreSQL: every outcome of a webhook
//! recorded with its fields (a retry sequence against an upstream that fails twice, a dead
//! letter, a duplicate, a filtered event, a 413, a 401), no secret in the kept requests (the raw
//! redb file searched), replay and rerender delivering once each (rerender with the template of
//! today), and two replicas sharing one history with its live stream.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::flaky::{Fault, Flaky};
use crate::common::postgres::TestPostgres;
use crate::common::{expect_one_message, post, spawn_app_with_routes};
use crate::support::{delivery_headers, fixture};

const JSON: (&str, &str) = ("Content-Type", "application/json");
const ADMIN_TOKEN: &str = "admin-token-for-the-history-tests";
/// How long a test waits for the history to show what it expects.
const HISTORY_TIMEOUT: Duration = Duration::from_secs(15);

/// `GET`/`POST` an admin path of the service at `base`: status and JSON.
async fn admin(base: &str, method: awc::http::Method, path: &str) -> (u16, Value) {
    let mut response = awc::Client::builder()
        .timeout(Duration::from_secs(15))
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

async fn get(base: &str, path: &str) -> Value {
    let (status, value) = admin(base, awc::http::Method::GET, path).await;
    assert_eq!(status, 200, "{path}: {value}");
    value
}

/// Waits until the record listed with `request_id` is in `state`; its whole story.
async fn story_in_state(base: &str, request_id: &str, state: &str) -> Value {
    let deadline = Instant::now() + HISTORY_TIMEOUT;
    loop {
        let page = get(base, "/admin/history?limit=500").await;
        let found = page["records"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|summary| summary["id"].as_u64().expect("an id"))
            .collect::<Vec<_>>();
        for id in found {
            let story = get(base, &format!("/admin/history/{id}")).await;
            if story["request_id"] == request_id && story["state"] == state {
                return story;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no record {request_id} in state {state} within {HISTORY_TIMEOUT:?}: {page}"
        );
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Posts with a request id of its own; the answer's status.
async fn post_as(
    base: &str,
    path: &str,
    request_id: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> u16 {
    let mut all = headers.to_vec();
    all.push(("X-Request-Id", request_id));
    let answer = post(&format!("{base}{path}"), &all, body).await;
    answer.status.as_u16()
}

fn attempts(story: &Value) -> Vec<Value> {
    story["notifications"][0]["delivery"]["attempts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Every outcome of a webhook, on the store the variables choose.
async fn every_outcome_is_recorded(database: Option<String>) {
    let flaky = Flaky::start();
    let mut vars = vec![
        ("PUSHJET_BRIDGE_ROUTES", "r,locked".to_owned()),
        ("PUSHJET_API_URL", flaky.url.clone()),
        ("PUSHJET_BRIDGE_ADMIN_TOKEN", ADMIN_TOKEN.to_owned()),
        (
            "PUSHJET_BRIDGE_ROUTE_LOCKED_TOKEN",
            "a-token-for-locked".to_owned(),
        ),
        ("PUSHJET_BRIDGE_MAX_BODY_BYTES", "100000".to_owned()),
        ("PUSHJET_BRIDGE_RETRY_MIN_DELAY", "20ms".to_owned()),
        ("PUSHJET_BRIDGE_RETRY_MAX_DELAY", "200ms".to_owned()),
        ("PUSHJET_BRIDGE_SEND_TIMEOUT", "500ms".to_owned()),
    ];
    if let Some(url) = database {
        vars.push(("PUSHJET_BRIDGE_DATABASE_URL", url));
    }
    let borrowed: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let app = spawn_app_with_routes(&borrowed).await;
    flaky.forward_to(&app.url("/pushjet/"));
    let base = app.url("");

    // Two 500s, then Pushjet takes it: three attempts, sent.
    flaky.script(&[Fault::ServerError, Fault::ServerError]);
    let body = json!({ "title": "Retried", "message": "after two 500s" }).to_string();
    assert_eq!(
        post_as(&base, "/hooks/r", "retried", &[JSON], body.into()).await,
        202
    );
    let story = story_in_state(&base, "retried", "sent").await;
    assert_eq!(story["route"], "r");
    assert_eq!(story["via"], "hooks");
    assert_eq!(story["source"], "generic");
    assert_eq!(story["status"], 202);
    assert_eq!(story["verdict"], "queued");
    assert_eq!(
        story["notifications"][0]["notification"]["title"],
        "Retried"
    );
    assert_eq!(
        story["notifications"][0]["notification"]["message"],
        "after two 500s"
    );
    let statuses: Vec<Value> = attempts(&story)
        .iter()
        .map(|a| a["status"].clone())
        .collect();
    assert_eq!(statuses, [json!(500), json!(500), json!(200)], "{story}");
    assert!(
        attempts(&story).iter().all(|a| a["latency_ms"].is_u64()),
        "{story}"
    );
    assert_eq!(
        expect_one_message(&app.device).await.message,
        "after two 500s"
    );

    // Pushjet refuses the secret: a dead letter, with Pushjet's error id.
    flaky.script(&[Fault::InvalidSecret]);
    let body = json!({ "message": "refused" }).to_string();
    assert_eq!(
        post_as(&base, "/hooks/r", "dead", &[JSON], body.into()).await,
        202
    );
    let story = story_in_state(&base, "dead", "dead").await;
    let delivery = &story["notifications"][0]["delivery"];
    assert_eq!(delivery["state"], "dead");
    assert!(
        delivery["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "{story}"
    );
    assert_eq!(attempts(&story)[0]["status"], 400, "{story}");
    assert_eq!(attempts(&story)[0]["error_id"], 3, "{story}");
    let dead = get(&base, "/admin/history?state=dead").await;
    assert_eq!(dead["records"].as_array().map(Vec::len), Some(1), "{dead}");
    // The dead letter is still one in the outbox's own view.
    let letters = get(&base, "/admin/dead-letters").await;
    assert_eq!(letters["total"], 1, "{letters}");

    // A duplicate and a filtered event.
    let push = fixture("github", "star.created.json");
    let headers = delivery_headers("github", "star.created.json");
    let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    assert_eq!(
        post_as(&base, "/hooks/r", "first", &headers, push.clone()).await,
        202
    );
    assert_eq!(
        post_as(&base, "/hooks/r", "again", &headers, push).await,
        200
    );
    let story = story_in_state(&base, "again", "duplicate").await;
    assert_eq!(story["source"], "github");
    assert_eq!(story["verdict"], "duplicate");
    let ping = delivery_headers("github", "ping.json");
    let ping: Vec<(&str, &str)> = ping.iter().map(|(n, v)| (*n, v.as_str())).collect();
    assert_eq!(
        post_as(
            &base,
            "/hooks/r",
            "ping",
            &ping,
            fixture("github", "ping.json")
        )
        .await,
        200
    );
    let story = story_in_state(&base, "ping", "filtered").await;
    assert_eq!(story["event"], "ping");
    assert!(
        story["reason"].as_str().is_some_and(|r| r.contains("ping")),
        "{story}"
    );

    // Refused: too large (413), and unauthenticated (401, only the fact).
    let large = vec![b'x'; 200_000];
    assert_eq!(
        post_as(&base, "/hooks/r", "large", &[JSON], large).await,
        413
    );
    let story = story_in_state(&base, "large", "refused").await;
    assert_eq!(story["status"], 413);
    assert!(
        story["reason"]
            .as_str()
            .is_some_and(|r| r.contains("PUSHJET_BRIDGE_MAX_BODY_BYTES"))
    );
    let wrong = [JSON, ("Authorization", "Bearer not-the-token")];
    assert_eq!(
        post_as(&base, "/hooks/locked", "wrong", &wrong, b"{}".to_vec()).await,
        401
    );
    let story = story_in_state(&base, "wrong", "refused").await;
    assert_eq!(story["status"], 401);
    assert_eq!(story["reason"], "authentication failed");

    // A path that names no route is not recorded.
    assert_eq!(
        post_as(&base, "/hooks/nowhere", "nowhere", &[JSON], b"{}".to_vec()).await,
        404
    );
    let all = get(&base, "/admin/history?limit=500").await;
    assert_eq!(all["records"].as_array().map(Vec::len), Some(7), "{all}");
    let counts = get(&base, "/admin/history/counts").await;
    assert!(
        counts["counts"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["route"] == "r" && c["state"] == "dead" && c["count"] == 1),
        "{counts}"
    );
    app.app.stop().await;
    flaky.stop().await;
}

#[actix_web::test]
async fn every_outcome_is_recorded_on_redb() {
    every_outcome_is_recorded(None).await;
}

#[actix_web::test]
async fn every_outcome_is_recorded_on_postgres() {
    every_outcome_is_recorded(Some(TestPostgres::shared().create_database().await)).await;
}
