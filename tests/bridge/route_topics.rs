//! A route is an ntfy topic both ways: `GET /<route>/json` (and `/auth`, `/ws`) with one of the
//! route's credentials streams every notification the route delivers; without one ntfy's 403,
//! with a wrong one ntfy's 401; and with two replicas on PostgreSQL a stream on either gets what
//! both deliver.

use std::pin::Pin;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::common::postgres::TestPostgres;
use crate::common::{
    REQUEST_TIMEOUT, post, pushjet_with_services, spawn_app_with, spawn_app_with_routes,
};

type Body = Pin<Box<dyn futures_util::Stream<Item = Result<Bytes, awc::error::PayloadError>>>>;

const WAIT: Duration = Duration::from_secs(20);

/// `GET url` with the given `Authorization`: the status and, for a 200, the open stream.
async fn open(url: &str, authorization: Option<&str>) -> (u16, Option<Body>) {
    let mut request = awc::Client::default()
        .get(url)
        .timeout(Duration::from_secs(600));
    if let Some(value) = authorization {
        request = request.insert_header(("Authorization", value));
    }
    let response = request.send().await.expect("an answer");
    let status = response.status().as_u16();
    (status, (status == 200).then(|| Box::pin(response) as Body))
}

/// The next event of a JSON stream that is not a keepalive.
async fn next_event(body: &mut Body) -> Value {
    loop {
        let chunk = actix_web::rt::time::timeout(WAIT, body.next())
            .await
            .expect("an event in time")
            .expect("the stream goes on")
            .expect("a chunk");
        let line = String::from_utf8_lossy(&chunk);
        let event: Value =
            serde_json::from_str(line.lines().next().expect("a line")).expect("JSON");
        if event["event"] != "keepalive" {
            return event;
        }
    }
}

/// The status and ntfy error code of `GET url` with `authorization`.
async fn refusal(url: &str, authorization: Option<&str>) -> (u16, Value) {
    let mut request = awc::Client::default().get(url).timeout(REQUEST_TIMEOUT);
    if let Some(value) = authorization {
        request = request.insert_header(("Authorization", value));
    }
    let mut response = request.send().await.expect("an answer");
    let body: Value = response.json().await.unwrap_or(Value::Null);
    (response.status().as_u16(), body["code"].clone())
}

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
}

const ROUTE_VARS: [(&str, &str); 3] = [
    ("PUSHJET_BRIDGE_ROUTES", "ops"),
    ("PUSHJET_BRIDGE_ROUTE_OPS_TOKEN", "tk_write"),
    ("PUSHJET_BRIDGE_ROUTE_OPS_SUBSCRIBE_TOKEN", "tk_read"),
];

#[actix_web::test]
async fn a_routes_stream_with_its_credentials_gets_a_webhooks_notification() {
    let app = spawn_app_with_routes(&ROUTE_VARS).await;
    let (status, body) = open(&app.url("/ops/json"), Some("Bearer tk_read")).await;
    assert_eq!(status, 200);
    let mut body = body.expect("the stream");
    let opened = next_event(&mut body).await;
    assert_eq!(
        (opened["event"].as_str(), opened["topic"].as_str()),
        (Some("open"), Some("ops"))
    );

    let answer = post(
        &app.url("/hooks/ops"),
        &[
            ("Content-Type", "application/json"),
            ("Authorization", "Bearer tk_write"),
        ],
        json!({"title": "Deploy", "message": "v1.2 is live", "priority": 4}).to_string(),
    )
    .await;
    assert_eq!(answer.status, 202, "{}", answer.text);
    let event = next_event(&mut body).await;
    assert_eq!(event["event"], "message", "{event}");
    assert_eq!(event["topic"], "ops", "{event}");
    assert_eq!(event["title"], "Deploy", "{event}");
    assert_eq!(event["message"], "v1.2 is live", "{event}");
    assert_eq!(event["priority"], 4, "{event}");

    let since = event["id"].as_str().expect("an id");
    let poll = awc::Client::default()
        .get(app.url(&format!(
            "/ops/json?poll=1&since=all&auth={}",
            URL_SAFE_NO_PAD.encode(basic("", "tk_write"))
        )))
        .send()
        .await
        .expect("an answer")
        .body()
        .await
        .expect("a body");
    let cached: Value = serde_json::from_slice(&poll).expect("one event");
    assert_eq!(
        cached["id"], since,
        "the token as basic auth's password, in ?auth="
    );
}

#[actix_web::test]
async fn a_routes_topic_without_or_with_wrong_credentials_is_refused_as_ntfy_does() {
    let app = spawn_app_with_routes(&ROUTE_VARS).await;
    let auth = app.url("/ops/auth");
    assert_eq!(
        refusal(&auth, None).await,
        (403, json!(40301)),
        "anonymous: forbidden"
    );
    assert_eq!(
        refusal(&auth, Some("Bearer nope")).await,
        (401, json!(40101))
    );
    assert_eq!(refusal(&auth, Some(&basic("ops", "nope"))).await.0, 401);
    assert_eq!(refusal(&app.url("/ops/json"), None).await.0, 403);
    assert_eq!(
        refusal(&app.url("/ops/ws"), Some("Bearer nope")).await.0,
        401
    );
    for granted in ["Bearer tk_read", "Bearer tk_write", &basic("", "tk_read")] {
        let (status, _) = refusal(&auth, Some(granted)).await;
        assert_eq!(status, 200, "{granted}");
    }
    assert_eq!(refusal(&app.url("/nothing-here/auth"), None).await.0, 400);
}

#[actix_web::test]
async fn two_replicas_route_streams_each_get_what_either_delivers() {
    let database = TestPostgres::shared().create_database().await;
    let mut vars = ROUTE_VARS.to_vec();
    vars.push(("PUSHJET_BRIDGE_DATABASE_URL", database.as_str()));
    let first = spawn_app_with_routes(&vars).await;
    let secret_var = ("PUSHJET_BRIDGE_ROUTE_OPS_SECRET", first.secret.as_str());
    vars.push(secret_var);
    let second = spawn_app_with(&vars).await;

    let mut streams = Vec::new();
    for url in [first.url("/ops/json"), second.url("/ops/json")] {
        let (status, body) = open(&url, Some("Bearer tk_read")).await;
        assert_eq!(status, 200);
        let mut body = body.expect("the stream");
        assert_eq!(next_event(&mut body).await["event"], "open");
        streams.push(body);
    }
    for (n, hook) in [first.url("/hooks/ops"), second.url("/hooks/ops")]
        .iter()
        .enumerate()
    {
        let answer = post(
            hook,
            &[("Authorization", "Bearer tk_write")],
            format!("through replica {n}"),
        )
        .await;
        assert_eq!(answer.status, 202, "{}", answer.text);
    }
    for body in &mut streams {
        let mut got = vec![
            next_event(body).await["message"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            next_event(body).await["message"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        ];
        got.sort();
        assert_eq!(got, ["through replica 0", "through replica 1"]);
    }
    second.stop().await;
}

#[actix_web::test]
async fn a_routes_stream_gets_what_it_delivers_to_a_remote_pushjet_server() {
    let (upstream, secrets, device) = pushjet_with_services(1).await;
    let api = upstream.url("/pushjet/");
    let bridge = spawn_app_with(&[
        ("PUSHJET_API_URL", api.as_str()),
        ("PUSHJET_BRIDGE_EMBEDDED_PUSHJET", "false"),
        ("PUSHJET_BRIDGE_ROUTES", "ops"),
        ("PUSHJET_BRIDGE_ROUTE_OPS_SECRET", secrets[0].as_str()),
        ("PUSHJET_BRIDGE_ROUTE_OPS_SUBSCRIBE_TOKEN", "tk_read"),
    ])
    .await;

    let (status, body) = open(&bridge.url("/ops/json"), Some("Bearer tk_read")).await;
    assert_eq!(status, 200);
    let mut body = body.expect("the stream");
    assert_eq!(next_event(&mut body).await["event"], "open");
    let answer = post(&bridge.url("/hooks/ops"), &[], "sent upstream").await;
    assert_eq!(answer.status, 202, "{}", answer.text);
    let event = next_event(&mut body).await;
    assert_eq!(event["message"], "sent upstream", "{event}");
    assert_eq!(event["topic"], "ops", "{event}");
    let received = crate::common::expect_one_message(&device).await;
    assert_eq!(
        received.message, "sent upstream",
        "delivered upstream as well"
    );
    bridge.stop().await;
}

#[actix_web::test]
async fn a_sync_routes_stream_gets_what_it_sent_before_the_answer() {
    let mut vars = ROUTE_VARS.to_vec();
    vars.push(("PUSHJET_BRIDGE_ROUTE_OPS_DELIVERY", "sync"));
    let app = spawn_app_with_routes(&vars).await;
    let (status, body) = open(&app.url("/ops/json"), Some("Bearer tk_read")).await;
    assert_eq!(status, 200);
    let mut body = body.expect("the stream");
    assert_eq!(next_event(&mut body).await["event"], "open");
    let answer = post(
        &app.url("/hooks/ops"),
        &[("Authorization", "Bearer tk_write")],
        "sent at once",
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let event = next_event(&mut body).await;
    assert_eq!(event["message"], "sent at once", "{event}");
}
