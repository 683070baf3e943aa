//! How every shared fixture reads through the real service: the preview's title, message, link
//! and importance, one insta JSON snapshot per fixture in `tests/bridge/snapshots/`. The message
//! is stored as a list of its lines, so a snapshot reads like the notification.

use serde_json::{Value, json};

use crate::fixtures::{preview, preview_app};
use crate::support::fixture_names;

/// What a preview answer shows a reader: the notifications, a skip, a filter, or the error.
pub fn readable(answer: &crate::common::Answer) -> Value {
    if !answer.status.is_success() {
        return json!({ "status": answer.status.as_u16(), "error": answer.error() });
    }
    let preview = &answer.json["preview"];
    let notifications: Vec<Value> = preview["notifications"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|prepared| {
            if prepared["outcome"] == "skip" {
                return json!({ "skipped": "the template rendered an empty message" });
            }
            let notification = &prepared["notification"];
            let lines: Vec<&str> = notification["message"]
                .as_str()
                .unwrap_or_default()
                .split('\n')
                .collect();
            let mut shown = json!({
                "title": notification["title"],
                "message": lines,
                "link": notification["link"],
                "importance": notification["importance"],
            });
            if let Some(error) = prepared.get("template_error") {
                shown["template_error"] = error.clone();
            }
            shown
        })
        .collect();
    match preview.get("filtered") {
        Some(reason) => json!({ "filtered": reason, "notifications": notifications }),
        None => json!({ "notifications": notifications }),
    }
}

pub async fn snapshot_every_fixture(dir: &str) {
    let app = preview_app().await;
    for file in fixture_names(dir) {
        let answer = preview(&app, dir, &file).await;
        let name = format!("{dir}__{}", file.trim_end_matches(".json"));
        insta::with_settings!({ prepend_module_to_snapshot => false, info => &format!("{dir}/{file}") }, {
            insta::assert_json_snapshot!(name, readable(&answer));
        });
    }
}

#[actix_web::test]
async fn github_fixtures_read_as_in_their_snapshots() {
    snapshot_every_fixture("github").await;
}

#[actix_web::test]
async fn gitea_fixtures_read_as_in_their_snapshots() {
    snapshot_every_fixture("gitea").await;
}

#[actix_web::test]
async fn gitlab_fixtures_read_as_in_their_snapshots() {
    snapshot_every_fixture("gitlab").await;
}

#[actix_web::test]
async fn alertmanager_fixtures_read_as_in_their_snapshots() {
    snapshot_every_fixture("alertmanager").await;
}

#[actix_web::test]
async fn grafana_fixtures_read_as_in_their_snapshots() {
    snapshot_every_fixture("grafana").await;
}

#[actix_web::test]
async fn generic_fixtures_read_as_in_their_snapshots() {
    snapshot_every_fixture("generic").await;
}
