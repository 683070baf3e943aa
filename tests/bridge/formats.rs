//! The chat and notification formats other tools send (Slack and Mattermost, Discord, Microsoft
//! Teams, Apprise's `json://` and `form://`) posted to `/hooks/<route>` of the real service:
//! every fixture keeps the invariants and reads as its snapshot, and each format reaches a
//! subscribed device, recognised with `SOURCE=auto` and with its explicit `SOURCE`.

use crate::common::{expect_one_message, post, spawn_app_with_routes};
use crate::fixtures::assert_every_fixture_previews_well;
use crate::snapshots::snapshot_every_fixture;
use crate::support::fixture;

const FORMATS: [&str; 4] = ["slack", "discord", "teams", "apprise"];

#[actix_web::test]
async fn every_format_fixture_previews_as_clean_plain_text_notifications() {
    for dir in FORMATS {
        assert_every_fixture_previews_well(dir).await;
    }
}

#[actix_web::test]
async fn every_format_fixture_reads_as_in_its_snapshot() {
    for dir in FORMATS {
        snapshot_every_fixture(dir).await;
    }
}

/// What one request should become on the device.
#[derive(Clone)]
struct Case {
    label: &'static str,
    source: &'static str,
    content_type: &'static str,
    body: Vec<u8>,
    title: &'static str,
    message_start: &'static str,
    link: Option<&'static str>,
    importance: u8,
}

fn slack_form_body() -> Vec<u8> {
    let json = fixture("slack", "mattermost.attachment.docs.json");
    url::form_urlencoded::Serializer::new(String::new())
        .append_pair("payload", &String::from_utf8_lossy(&json))
        .finish()
        .into_bytes()
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            label: "Alertmanager's slack_configs body",
            source: "slack",
            content_type: "application/json",
            body: fixture("slack", "alertmanager-0.25.firing.json"),
            title: "[FIRING:1] DiskFull (db-1 critical)",
            message_start: "[FIRING:1] DiskFull (db-1 critical) | http://vm:18766/",
            link: Some("http://vm:18766/#/alerts?receiver=chat"),
            importance: 4,
        },
        Case {
            label: "Slack's form variant (payload=)",
            source: "mattermost",
            content_type: "application/x-www-form-urlencoded",
            body: slack_form_body(),
            title: "Example Attachment",
            message_start: "This is optional pretext that shows above the attachment.",
            link: Some(
                "https://developers.mattermost.com/integrate/reference/message-attachments/",
            ),
            importance: 3,
        },
        Case {
            label: "Discord embeds",
            source: "discord",
            content_type: "application/json",
            body: fixture("discord", "grafana.firing-one-alert.json"),
            title: "[FIRING:1] (val1)",
            message_start: "Firing\n\nValue: [no value]",
            link: Some("http://localhost/alerting/list"),
            importance: 4,
        },
        Case {
            label: "a Teams MessageCard",
            source: "teams",
            content_type: "application/json",
            body: fixture("teams", "messagecard.connectors-using-docs.json"),
            title: "Larry Bryant created a new task",
            message_start: "On Project Tango\n\nAssigned to: Unassigned",
            link: Some("https://docs.microsoft.com/outlook/actionable-messages"),
            importance: 3,
        },
        Case {
            label: "Apprise's form://",
            source: "apprise",
            content_type: "application/x-www-form-urlencoded",
            body: fixture("apprise", "form.failure.form"),
            title: "Backup failed",
            message_start: "db-1: pg_dump exited with 1",
            link: None,
            importance: 5,
        },
    ]
}

/// Posts every case to `/hooks/auto` (`SOURCE=auto`) and to the route named after its format
/// (an explicit `SOURCE`), and reads each notification back from the device.
#[actix_web::test]
async fn each_format_is_recognised_and_reaches_the_device() {
    let app = spawn_app_with_routes(&[
        (
            "PUSHJET_BRIDGE_ROUTES",
            "auto,slack,mattermost,discord,teams,apprise",
        ),
        ("PUSHJET_BRIDGE_ROUTE_SLACK_SOURCE", "slack"),
        ("PUSHJET_BRIDGE_ROUTE_MATTERMOST_SOURCE", "mattermost"),
        ("PUSHJET_BRIDGE_ROUTE_DISCORD_SOURCE", "discord"),
        ("PUSHJET_BRIDGE_ROUTE_TEAMS_SOURCE", "teams"),
        ("PUSHJET_BRIDGE_ROUTE_APPRISE_SOURCE", "apprise"),
    ])
    .await;
    for (case, route) in cases()
        .into_iter()
        .flat_map(|case| ["auto", case.source].map(|route| (case.clone(), route)))
    {
        let answer = post(
            &app.url(&format!("/hooks/{route}")),
            &[("Content-Type", case.content_type)],
            case.body.clone(),
        )
        .await;
        assert_eq!(
            answer.status, 202,
            "{} on {route}: {}",
            case.label, answer.text
        );
        let message = expect_one_message(&app.device).await;
        assert_eq!(message.title.as_deref(), Some(case.title), "{}", case.label);
        assert!(
            message.message.starts_with(case.message_start),
            "{}: {:?}",
            case.label,
            message.message
        );
        assert_eq!(message.link.as_deref(), case.link, "{}", case.label);
        assert_eq!(message.importance.get(), case.importance, "{}", case.label);
    }
}

#[actix_web::test]
async fn a_fixed_source_refuses_another_format_with_a_clear_400() {
    let app = spawn_app_with_routes(&[
        ("PUSHJET_BRIDGE_ROUTES", "teams"),
        ("PUSHJET_BRIDGE_ROUTE_TEAMS_SOURCE", "teams"),
    ])
    .await;
    let answer = post(
        &app.url("/hooks/teams"),
        &[("Content-Type", "application/json")],
        fixture("slack", "alertmanager-0.25.firing.json"),
    )
    .await;
    assert_eq!(answer.status, 400, "{}", answer.text);
    assert!(
        answer.error().contains("a teams webhook body must be"),
        "{}",
        answer.text
    );
}
