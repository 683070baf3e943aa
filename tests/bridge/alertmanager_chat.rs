//! The real Prometheus Alertmanager's Slack and Discord receivers (`slack_configs`,
//! `discord_configs`, which Debian's 0.25 has) pointed at the bridge: an alert fired and resolved
//! with `amtool` arrives as Slack- and Discord-format webhooks, recognised with `SOURCE=auto`.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pushjet_bridge::pushjet::Message;

use crate::alertmanager::{Alertmanager, amtool_add, required, rfc3339};
use crate::common::{POLL_INTERVAL, RoutedApp, assert_no_more_messages, spawn_app_with_routes};

const TOKEN: &str = "am-chat-bearer-51d0";
/// Alertmanager waits `group_wait` (1 s) and `group_interval` (1 s); room for a slow machine.
const NOTIFICATION_TIMEOUT: Duration = Duration::from_secs(20);

/// The Slack and the Discord notification of one group state, in that order.
async fn slack_and_discord(app: &RoutedApp, alertmanager: &Alertmanager) -> (Message, Message) {
    let deadline = Instant::now() + NOTIFICATION_TIMEOUT;
    let mut received = Vec::new();
    while received.len() < 2 {
        received.extend(app.device.messages().await.expect("the device reads"));
        assert!(
            Instant::now() < deadline,
            "{} of 2 notifications within {NOTIFICATION_TIMEOUT:?}: {received:#?}\nalertmanager log:\n{}",
            received.len(),
            alertmanager.log()
        );
        actix_web::rt::time::sleep(POLL_INTERVAL).await;
    }
    assert_eq!(received.len(), 2, "{received:#?}");
    // Discord's message starts with the alert list, Slack's with its title (its fallback).
    received.sort_by_key(|message| message.message.starts_with("Alerts"));
    let discord = received.pop().expect("two messages");
    let slack = received.pop().expect("two messages");
    (slack, discord)
}

#[actix_web::test]
async fn a_real_alertmanager_slack_and_discord_receiver_deliver_firing_then_resolved() {
    let binary = required(&["alertmanager", "prometheus-alertmanager"]);
    let amtool = required(&["amtool"]);
    let app = spawn_app_with_routes(&[
        ("PUSHJET_BRIDGE_ROUTES", "slack,discord"),
        ("PUSHJET_BRIDGE_ROUTE_SLACK_TOKEN", TOKEN),
        ("PUSHJET_BRIDGE_ROUTE_DISCORD_TOKEN", TOKEN),
    ])
    .await;
    let authorization = format!(
        "        http_config:\n          authorization:\n            type: Bearer\n            credentials: {TOKEN}\n"
    );
    let receiver = format!(
        "    slack_configs:\n      - api_url: {slack}\n        channel: '#alerts'\n        send_resolved: true\n{authorization}\
         \x20   discord_configs:\n      - webhook_url: {discord}\n        send_resolved: true\n{authorization}",
        slack = app.url("/hooks/slack"),
        discord = app.url("/hooks/discord"),
    );
    let dir = tempfile::tempdir().expect("a temporary folder");
    let mut alertmanager = Alertmanager::start_with_receiver(&binary, dir.path(), &receiver);
    alertmanager.ready().await;

    amtool_add(&amtool, &alertmanager, &[]).await;
    let (slack, discord) = slack_and_discord(&app, &alertmanager).await;
    for message in [&slack, &discord] {
        assert_eq!(
            message.title.as_deref(),
            Some("[FIRING:1] DiskFull (db-1 critical)"),
            "{message:#?}"
        );
        assert_eq!(message.importance.get(), 4, "{message:#?}");
    }
    assert!(slack.link.is_some(), "{slack:#?}");
    assert!(
        discord.message.starts_with("Alerts Firing:")
            && discord.message.contains("summary = Disk 95% full"),
        "{discord:#?}"
    );

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_secs();
    amtool_add(&amtool, &alertmanager, &[format!("--end={}", rfc3339(now))]).await;
    let (slack, discord) = slack_and_discord(&app, &alertmanager).await;
    for message in [&slack, &discord] {
        assert_eq!(
            message.title.as_deref(),
            Some("[RESOLVED] DiskFull (db-1 critical)"),
            "{message:#?}"
        );
        assert_eq!(message.importance.get(), 3, "{message:#?}");
    }
    assert!(
        discord.message.starts_with("Alerts Resolved:"),
        "{discord:#?}"
    );
    assert_no_more_messages(&app.device).await;
}
