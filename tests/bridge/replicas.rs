//! Two services sharing one PostgreSQL outbox (`PUSHJET_BRIDGE_DATABASE_URL`), as replicas behind
//! a load balancer: a delivery posted to both is sent once, and a route's notifications posted
//! to either arrive once each, in the order they were accepted; and a database that stops: 503
//! with `Retry-After` and not ready while it is down, nothing refused kept, delivery resuming by
//! itself once it is back.

use serde_json::json;

use crate::common::postgres::TestPostgres;
use crate::common::{
    TestApp, expect_messages, post, pushjet_with_services, spawn_app_with, spawn_app_with_routes,
};
use crate::support::fixture;

const JSON: (&str, &str) = ("Content-Type", "application/json");

#[actix_web::test]
async fn two_replicas_on_one_database_send_each_notification_once_and_in_order() {
    let (upstream, secrets, device) = pushjet_with_services(1).await;

    let database = TestPostgres::shared().create_database().await;
    let api = upstream.url("/pushjet/");
    let vars = [
        ("PUSHJET_API_URL", api.as_str()),
        ("PUSHJET_BRIDGE_EMBEDDED_PUSHJET", "false"),
        ("PUSHJET_BRIDGE_ROUTES", "gh"),
        ("PUSHJET_BRIDGE_ROUTE_GH_SECRET", secrets[0].as_str()),
        ("PUSHJET_BRIDGE_DATABASE_URL", database.as_str()),
    ];
    let replicas: [TestApp; 2] = [spawn_app_with(&vars).await, spawn_app_with(&vars).await];

    let headers = [
        JSON,
        ("X-GitHub-Event", "star"),
        ("X-GitHub-Delivery", "7b5a3f7e-0000-4000-8000-00000000beef"),
    ];
    let payload = fixture("github", "star.created.json");
    let urls = replicas.each_ref().map(|replica| replica.url("/hooks/gh"));
    let (one, two) = tokio::join!(
        post(&urls[0], &headers, payload.clone()),
        post(&urls[1], &headers, payload),
    );
    let mut statuses = [one.status.as_u16(), two.status.as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 202], "{} / {}", one.text, two.text);

    let texts: Vec<String> = (1..=10).map(|n| format!("step {n}")).collect();
    for (n, text) in texts.iter().enumerate() {
        let body = json!({ "message": text }).to_string();
        let answer = post(&replicas[n % 2].url("/hooks/gh"), &[JSON], body).await;
        assert_eq!(answer.status, 202, "{}", answer.text);
    }
    let received = expect_messages(&device, 1 + texts.len()).await;
    let steps: Vec<&str> = received
        .iter()
        .map(|message| message.message.as_str())
        .filter(|message| message.starts_with("step "))
        .collect();
    assert_eq!(steps, texts, "each once, in the order accepted");
    for replica in replicas {
        replica.stop().await;
    }
}

/// The status and body of `GET url`.
async fn get(url: &str) -> (u16, String) {
    let mut response = awc::Client::default()
        .get(url)
        .send()
        .await
        .expect("an answer");
    let body = response.body().await.expect("a body");
    (
        response.status().as_u16(),
        String::from_utf8_lossy(&body).into_owned(),
    )
}

#[actix_web::test]
async fn a_database_that_stops_gets_503s_and_not_ready_then_delivery_resumes() {
    let server = TestPostgres::start();
    let database = server.create_database().await;
    let app = spawn_app_with_routes(&[
        ("PUSHJET_BRIDGE_ROUTES", "ops"),
        ("PUSHJET_BRIDGE_DATABASE_URL", &database),
        // A run the stop interrupts cannot give its lease on the route back: delivery resumes
        // once the lease lapses, so the lease is shorter than the test's deadline.
        ("PUSHJET_BRIDGE_SEND_TIMEOUT", "2s"),
        ("PUSHJET_BRIDGE_LEASE", "3s"),
    ])
    .await;
    let hook = app.url("/hooks/ops");
    let body = |text: &str| json!({ "message": text }).to_string();
    let before = post(&hook, &[JSON], body("before")).await;
    assert_eq!(before.status, 202, "{}", before.text);
    assert_eq!(get(&app.url("/readyz")).await.0, 200);

    server.stop();
    let refused = post(&hook, &[JSON], body("refused")).await;
    assert_eq!(refused.status, 503, "{}", refused.text);
    assert!(
        refused.headers.contains_key("retry-after"),
        "{:?}",
        refused.headers
    );
    // Readiness follows within the database timeout and the next refresh (a refresh that
    // began before the stop may still report the database as it was).
    let not_ready_by = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let reason = loop {
        let (ready, reason) = get(&app.url("/readyz")).await;
        if ready == 503 {
            break reason;
        }
        assert!(
            std::time::Instant::now() < not_ready_by,
            "still ready with the database stopped: {reason}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert!(reason.contains("database"), "{reason}");

    server.start_again();
    let started = std::time::Instant::now();
    loop {
        let answer = post(&hook, &[JSON], body("after")).await;
        if answer.status == 202 {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "never accepted again: {} {}",
            answer.status,
            answer.text
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(get(&app.url("/readyz")).await.0, 200, "ready again");
    let received = expect_messages(&app.device, 2).await;
    let texts: Vec<&str> = received
        .iter()
        .map(|message| message.message.as_str())
        .collect();
    assert_eq!(texts, ["before", "after"], "the refused one was not kept");
}
