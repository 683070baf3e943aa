//! Noise control per route, end to end with the real service and its embedded Pushjet API:
//! reminders of an alert state go through after the alert dedup window, a rate limit sends the
//! first of a window and folds the rest into one digest (across a restart too), quiet hours hold
//! the unimportant until they end, repeats collapse, and two replicas on one database send a
//! digest once.

use std::time::{Duration, Instant};

use pushjet_bridge::pushjet::Message;
use serde_json::json;

use crate::common::postgres::TestPostgres;
use crate::common::{
    Answer, POLL_INTERVAL, RoutedApp, TestApp, assert_no_more_messages, expect_messages, post,
    pushjet_with_services, spawn_app_in, spawn_app_with, spawn_app_with_routes, wait_for_messages,
};
use crate::support::fixture;

const JSON: (&str, &str) = ("Content-Type", "application/json");

/// Reads the device's messages until `count` have arrived, for up to `within`: a digest comes at
/// the end of its window, later than a plain delivery.
async fn wait_longer(
    device: &pushjet_bridge::pushjet::Device,
    count: usize,
    within: Duration,
) -> Vec<Message> {
    let deadline = Instant::now() + within;
    let mut received = Vec::new();
    while received.len() < count {
        received.extend(
            device
                .messages()
                .await
                .expect("the device reads its messages"),
        );
        assert!(
            Instant::now() < deadline,
            "expected {count} message(s) within {within:?}, got {received:#?}"
        );
        actix_web::rt::time::sleep(POLL_INTERVAL).await;
    }
    received
}

/// The service's metrics text (no metrics token is set in these tests).
async fn metrics(url: &str) -> String {
    let mut response = awc::Client::default()
        .get(url)
        .send()
        .await
        .expect("an answer");
    let body = response
        .body()
        .limit(4 * 1024 * 1024)
        .await
        .expect("a body");
    String::from_utf8_lossy(&body).into_owned()
}

/// What the route's noise policy did with each notification of an answered webhook.
fn verdicts(answer: &Answer) -> Vec<String> {
    answer.json["result"]["notifications"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|notification| notification["noise"].as_str().map(str::to_owned))
        .collect()
}

#[actix_web::test]
async fn the_same_alert_state_goes_through_again_after_the_alert_dedup_window_but_not_within_it() {
    let routed = spawn_app_with_routes(&[
        ("PUSHJET_BRIDGE_ROUTES", "alerts"),
        ("PUSHJET_BRIDGE_ALERT_DEDUP_WINDOW", "1s"),
    ])
    .await;
    let url = routed.url("/hooks/alerts");
    let body = fixture("alertmanager", "captured-firing-single.json");
    let first = post(&url, &[JSON], body.clone()).await;
    assert_eq!(first.status, 202, "{}", first.text);
    let ha_copy = post(&url, &[JSON], body.clone()).await;
    assert_eq!(ha_copy.status, 200, "the HA pair's copy: {}", ha_copy.text);
    assert_eq!(ha_copy.json["duplicate"], json!(true));

    actix_web::rt::time::sleep(Duration::from_millis(1500)).await;
    let reminder = post(&url, &[JSON], body).await;
    assert_eq!(
        reminder.status, 202,
        "a reminder is not a duplicate: {}",
        reminder.text
    );
    expect_messages(&routed.device, 2).await;
}

/// The rate test's webhook `n`: importance 2, but 5 for number 30 (with its own link).
fn build_failure(n: usize) -> String {
    let (importance, link) = if n == 30 {
        (5, "https://ci.example.com/builds/30")
    } else {
        (2, "https://ci.example.com/builds")
    };
    json!({
        "title": format!("build {n} failed"),
        "message": format!("build {n} failed on main"),
        "importance": importance.to_string(),
        "link": link,
    })
    .to_string()
}

#[actix_web::test]
async fn over_the_rate_the_rest_of_the_window_comes_as_one_digest_also_across_a_restart() {
    let vars = [
        ("PUSHJET_BRIDGE_ROUTES", "ci"),
        // The issue's 5 per 10 s, with a window long enough for 50 webhooks and a restart on a
        // loaded machine.
        ("PUSHJET_BRIDGE_ROUTE_CI_RATE", "5/20s"),
    ];
    let routed = spawn_app_with_routes(&vars).await;
    let RoutedApp {
        app,
        secret,
        device,
        ..
    } = routed;
    let mut all_verdicts = Vec::new();
    for n in 0..25 {
        let answer = post(&app.url("/hooks/ci"), &[JSON], build_failure(n)).await;
        assert_eq!(answer.status, 202, "{}", answer.text);
        all_verdicts.extend(verdicts(&answer));
    }
    let data_dir = app.data_dir.clone();
    let _kept = app.stop().await;
    let mut restarted_vars = vars.to_vec();
    restarted_vars.push(("PUSHJET_BRIDGE_ROUTE_CI_SECRET", secret.as_str()));
    let app = spawn_app_in(&data_dir, &restarted_vars).await;
    // The restarted service listens on another port: the device reads through it.
    let device = app.pushjet().device(device.uuid().clone());
    for n in 25..50 {
        let answer = post(&app.url("/hooks/ci"), &[JSON], build_failure(n)).await;
        assert_eq!(answer.status, 202, "{}", answer.text);
        all_verdicts.extend(verdicts(&answer));
    }
    let expected: Vec<&str> = (0..50)
        .map(|n| if n < 5 { "send" } else { "held: rate" })
        .collect();
    assert_eq!(all_verdicts, expected);

    let sent = wait_for_messages(&device, 5).await;
    assert_eq!(sent.len(), 5, "{sent:#?}");
    let digest = wait_longer(&device, 1, Duration::from_secs(40)).await;
    assert_eq!(digest.len(), 1, "one digest: {digest:#?}");
    let digest = &digest[0];
    assert_eq!(digest.title.as_deref(), Some("45 more from ci"));
    assert_eq!(digest.importance.get(), 5, "the highest importance held");
    assert_eq!(
        digest.link.as_deref(),
        Some("https://ci.example.com/builds/30")
    );
    let lines: Vec<&str> = digest.message.lines().collect();
    assert_eq!(lines.first(), Some(&"build 5 failed"));
    assert_eq!(lines.last(), Some(&"build 49 failed"), "newest last");
    assert_eq!(lines.len(), 45);
    assert_no_more_messages(&device).await;
    app.stop().await;
}

/// `HH:MM:SS` in `zone`, `offset` from now.
fn wall_clock(zone: &str, offset: Duration) -> String {
    let at =
        jiff::Timestamp::now() + jiff::SignedDuration::try_from(offset).expect("a short offset");
    at.to_zoned_datetime(jiff::tz::TimeZone::get(zone).expect("a zone"))
        .time()
        .strftime("%H:%M:%S")
        .to_string()
}

#[actix_web::test]
async fn during_quiet_hours_the_unimportant_wait_for_their_end_in_their_time_zone() {
    // Quiet hours in Kolkata (UTC+5:30) that started a minute after now yesterday and end 20 s
    // from now: a range across midnight that is on now.
    let zone = "Asia/Kolkata";
    let range = format!(
        "{}-{}",
        wall_clock(zone, Duration::from_secs(60)),
        wall_clock(zone, Duration::from_secs(20))
    );
    let routed = spawn_app_with_routes(&[
        ("PUSHJET_BRIDGE_ROUTES", "ops"),
        ("PUSHJET_BRIDGE_ROUTE_OPS_QUIET_HOURS", range.as_str()),
        ("PUSHJET_BRIDGE_ROUTE_OPS_QUIET_TIMEZONE", zone),
    ])
    .await;
    let url = routed.url("/hooks/ops");
    let low = json!({"title": "disk 80%", "message": "disk at 80%", "importance": "3"});
    let high = json!({"title": "site down", "message": "the site is down", "importance": "5"});
    let held = post(&url, &[JSON], low.to_string()).await;
    assert_eq!(verdicts(&held), ["held: quiet hours"], "{}", held.text);
    let sent = post(&url, &[JSON], high.to_string()).await;
    assert_eq!(verdicts(&sent), ["send"], "{}", sent.text);

    let now = wait_for_messages(&routed.device, 1).await;
    assert_eq!(now[0].title.as_deref(), Some("site down"));
    let digest = wait_longer(&routed.device, 1, Duration::from_secs(40)).await;
    assert_eq!(digest[0].title.as_deref(), Some("1 more from ops"));
    assert_eq!(digest[0].message, "disk 80%");
    assert_eq!(digest[0].importance.get(), 3);
    let text = metrics(&routed.url("/metrics")).await;
    for series in [
        r#"pushjet_bridge_notifications_held_total{route="ops",reason="quiet_hours"} 1"#,
        r#"pushjet_bridge_notifications_digested_total{route="ops"} 1"#,
    ] {
        assert!(text.contains(series), "{series} not in:\n{text}");
    }
}

#[actix_web::test]
async fn the_same_firing_alert_collapses_and_its_resolve_goes_through_with_the_count() {
    let routed = spawn_app_with_routes(&[
        ("PUSHJET_BRIDGE_ROUTES", "alerts"),
        ("PUSHJET_BRIDGE_ROUTE_ALERTS_COLLAPSE", "30m"),
        ("PUSHJET_BRIDGE_ALERT_DEDUP_WINDOW", "1s"),
    ])
    .await;
    let url = routed.url("/hooks/alerts");
    let firing = fixture("alertmanager", "captured-firing-single.json");
    let mut seen = Vec::new();
    for _ in 0..3 {
        let answer = post(&url, &[JSON], firing.clone()).await;
        assert_eq!(answer.status, 202, "{}", answer.text);
        seen.extend(verdicts(&answer));
        // Past the alert dedup window: a reminder, not the HA pair's copy.
        actix_web::rt::time::sleep(Duration::from_millis(1200)).await;
    }
    assert_eq!(seen, ["send", "collapsed", "collapsed"]);
    let resolved = post(
        &url,
        &[JSON],
        fixture("alertmanager", "captured-resolved-single.json"),
    )
    .await;
    assert_eq!(verdicts(&resolved), ["send"], "{}", resolved.text);

    let received = expect_messages(&routed.device, 2).await;
    let title = received[1].title.as_deref().unwrap_or_default();
    assert!(
        title.ends_with("(2 repeats)"),
        "the resolve counts the repeats: {title}"
    );
    assert!(
        !received[0]
            .title
            .as_deref()
            .unwrap_or_default()
            .contains("repeat")
    );
    let text = metrics(&routed.url("/metrics")).await;
    let series = r#"pushjet_bridge_notifications_collapsed_total{route="alerts"} 2"#;
    assert!(text.contains(series), "{series} not in:\n{text}");
}

#[actix_web::test]
async fn two_replicas_on_one_database_send_a_digest_once() {
    let (upstream, secrets, device) = pushjet_with_services(1).await;

    let database = TestPostgres::shared().create_database().await;
    let api = upstream.url("/pushjet/");
    let vars = [
        ("PUSHJET_API_URL", api.as_str()),
        ("PUSHJET_BRIDGE_EMBEDDED_PUSHJET", "false"),
        ("PUSHJET_BRIDGE_ROUTES", "ci"),
        ("PUSHJET_BRIDGE_ROUTE_CI_SECRET", secrets[0].as_str()),
        ("PUSHJET_BRIDGE_ROUTE_CI_RATE", "1/5s"),
        ("PUSHJET_BRIDGE_DATABASE_URL", database.as_str()),
    ];
    let replicas: [TestApp; 2] = [spawn_app_with(&vars).await, spawn_app_with(&vars).await];
    let mut seen = Vec::new();
    for n in 0..6 {
        let body = json!({ "title": format!("deploy {n}"), "message": "deployed" }).to_string();
        let answer = post(&replicas[n % 2].url("/hooks/ci"), &[JSON], body).await;
        assert_eq!(answer.status, 202, "{}", answer.text);
        seen.extend(verdicts(&answer));
    }
    assert_eq!(
        seen.iter().filter(|verdict| *verdict == "send").count(),
        1,
        "{seen:?}"
    );

    let received = wait_longer(&device, 2, Duration::from_secs(30)).await;
    let digests: Vec<&Message> = received
        .iter()
        .filter(|message| {
            message
                .title
                .as_deref()
                .is_some_and(|title| title.ends_with("more from ci"))
        })
        .collect();
    assert_eq!(digests.len(), 1, "{received:#?}");
    assert_eq!(digests[0].title.as_deref(), Some("5 more from ci"));
    // Both replicas' releasers have passed the window's end several times by now.
    actix_web::rt::time::sleep(Duration::from_secs(2)).await;
    assert_no_more_messages(&device).await;
    for replica in replicas {
        replica.stop().await;
    }
}

#[actix_web::test]
async fn the_history_tells_held_notifications_from_queued_ones_and_gives_ids_only_to_these() {
    // Quiet hours from an hour ago to an hour from now (UTC), across midnight or not.
    let range = format!(
        "{}-{}",
        wall_clock("UTC", Duration::from_secs(23 * 3600)),
        wall_clock("UTC", Duration::from_secs(3600))
    );
    let admin_token = "admin-token-for-the-noise-history-test";
    let routed = spawn_app_with_routes(&[
        ("PUSHJET_BRIDGE_ROUTES", "alerts"),
        ("PUSHJET_BRIDGE_ADMIN_TOKEN", admin_token),
        ("PUSHJET_BRIDGE_ROUTE_ALERTS_SOURCE", "alertmanager"),
        ("PUSHJET_BRIDGE_ROUTE_ALERTS_ALERT_GROUPING", "alert"),
        ("PUSHJET_BRIDGE_ROUTE_ALERTS_QUIET_HOURS", range.as_str()),
    ])
    .await;
    // One webhook, two alerts: the warning first (held), the critical one second (sent).
    let alert = |name: &str, severity: &str| {
        json!({
            "status": "firing",
            "labels": {"alertname": name, "severity": severity},
            "annotations": {"summary": format!("{name} fired")},
            "startsAt": "2026-12-07T10:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus.example.com/graph",
            "fingerprint": format!("{name}0000000000")
        })
    };
    let body = json!({
        "version": "4",
        "groupKey": "{}:{alertname=~\".*\"}",
        "status": "firing",
        "receiver": "bridge",
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example.com",
        "alerts": [alert("DiskFilling", "warning"), alert("SiteDown", "critical")]
    });
    let answer = post(
        &routed.url("/hooks/alerts"),
        &[JSON, ("X-Request-Id", "noise-history-1")],
        body.to_string(),
    )
    .await;
    assert_eq!(answer.status, 202, "{}", answer.text);
    assert_eq!(verdicts(&answer), ["held: quiet hours", "send"]);
    let queued = answer.json["queued"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(queued.len(), 1, "{}", answer.text);

    let client = awc::Client::default();
    let get = |path: String| {
        let request = client
            .get(routed.url(&path))
            .insert_header(("Authorization", format!("Bearer {admin_token}")));
        async move {
            let mut response = request.send().await.expect("the history answers");
            let body = response.body().limit(1 << 24).await.expect("a body");
            serde_json::from_slice::<serde_json::Value>(&body).expect("JSON")
        }
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    let story = loop {
        let page = get("/admin/history?route=alerts".to_owned()).await;
        // The route's one record (this test posts one webhook).
        let id = page["records"][0]["id"].as_u64();
        if let Some(id) = id {
            break get(format!("/admin/history/{id}")).await;
        }
        assert!(Instant::now() < deadline, "no record: {page}");
        actix_web::rt::time::sleep(POLL_INTERVAL).await;
    };
    assert_eq!(story["request_id"], "noise-history-1", "{story}");
    let notifications = story["notifications"].as_array().expect("notifications");
    assert_eq!(notifications.len(), 2, "{story}");
    assert_eq!(notifications[0]["noise"], "held: quiet hours", "{story}");
    assert!(
        notifications[0].get("id").is_none(),
        "a held one has no id: {story}"
    );
    assert_eq!(notifications[1]["noise"], "send", "{story}");
    assert_eq!(notifications[1]["id"], queued[0], "{story}");
}
