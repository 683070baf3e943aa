//! Collapse keys: what makes two notifications repeats of each other for a route's `COLLAPSE`.
//! An `X-Collapse-Key` (or ntfy-style `X-Sequence-ID`) header from any sender; else the alerts'
//! fingerprints (Alertmanager, Grafana) in their state (`firing`, `resolved`); else a forge's
//! event and object (the same pull request's `synchronize`, the same workflow's failure).

use actix_web::http::header::HeaderMap;
use serde_json::Value;

use super::{Context, SourceKind, header_text};
use crate::noise::CollapseKey;

/// The headers any sender may name a collapse key in, first found wins.
const COLLAPSE_HEADERS: [&str; 2] = ["x-collapse-key", "x-sequence-id"];
/// The longest collapse key kept, in characters (a longer one is cut).
const MAX_KEY_CHARS: usize = 200;

/// The collapse key of one notification's context, if it has one.
pub fn collapse_key(
    source: SourceKind,
    headers: &HeaderMap,
    context: &Context,
) -> Option<CollapseKey> {
    let state = state(source, context);
    if let Some(key) = COLLAPSE_HEADERS
        .iter()
        .find_map(|name| header_text(headers, name).ok().flatten())
    {
        return Some(CollapseKey {
            identity: format!("header:{}", cut(key)),
            state,
        });
    }
    let identity = match source {
        SourceKind::Alertmanager | SourceKind::Grafana => alert_identity(&context.tree),
        SourceKind::Github | SourceKind::Gitea | SourceKind::Gitlab => {
            forge_identity(context)
        }
        _ => None,
    }?;
    Some(CollapseKey {
        identity: cut(&identity),
        state,
    })
}

/// What state the notification reports: an alert's `firing`/`resolved`, a workflow's or check's
/// conclusion, a GitLab pipeline's status; empty when the sender names none.
fn state(source: SourceKind, context: &Context) -> String {
    let tree = &context.tree;
    match source {
        SourceKind::Alertmanager | SourceKind::Grafana => context.event.clone(),
        _ => [
            &tree["workflow_run"]["conclusion"],
            &tree["workflow_job"]["conclusion"],
            &tree["check_run"]["conclusion"],
            &tree["check_suite"]["conclusion"],
            &tree["object_attributes"]["status"],
            &tree["object_attributes"]["state"],
        ]
        .into_iter()
        .find_map(Value::as_str)
        .unwrap_or_default()
        .to_owned(),
    }
}

/// The alerts' fingerprints, sorted; the group key (or a legacy rule) when they have none.
fn alert_identity(tree: &Value) -> Option<String> {
    let mut fingerprints: Vec<&str> = tree["alerts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|alert| alert["fingerprint"].as_str())
        .collect();
    fingerprints.sort_unstable();
    fingerprints.dedup();
    if !fingerprints.is_empty() {
        return Some(format!("alerts:{}", fingerprints.join(",")));
    }
    [&tree["groupKey"], &tree["ruleId"], &tree["ruleName"]]
        .into_iter()
        .find_map(|value| match value {
            Value::String(text) if !text.is_empty() => Some(text.clone()),
            Value::Number(number) => Some(number.to_string()),
            _ => None,
        })
        .map(|group| format!("group:{group}"))
}

/// The event (with its action) and the object it is about: the repository and the pull
/// request, issue, merge request, workflow or check; `None` for an event about no such object.
fn forge_identity(context: &Context) -> Option<String> {
    let tree = &context.tree;
    let repository = [
        &tree["repository"]["full_name"],
        &tree["project"]["path_with_namespace"],
    ]
    .into_iter()
    .find_map(Value::as_str)
    .unwrap_or_default();
    let object = [
        ("pr", &tree["pull_request"]["number"]),
        ("issue", &tree["issue"]["number"]),
        ("iid", &tree["object_attributes"]["iid"]),
        ("workflow", &tree["workflow_run"]["name"]),
        ("job", &tree["workflow_job"]["name"]),
        ("check", &tree["check_run"]["name"]),
        ("suite", &tree["check_suite"]["head_branch"]),
        ("pipeline", &tree["object_attributes"]["ref"]),
    ]
    .into_iter()
    .find_map(|(kind, value)| match value {
        Value::String(text) if !text.is_empty() => Some(format!("{kind} {text}")),
        Value::Number(number) => Some(format!("{kind} {number}")),
        _ => None,
    })?;
    let event = match &context.action {
        Some(action) => format!("{}.{action}", context.event),
        None => context.event.clone(),
    };
    Some(format!("{event}:{repository}:{object}"))
}

fn cut(text: &str) -> String {
    text.chars().take(MAX_KEY_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{HeaderName, HeaderValue};

    use super::super::test_support::{fixture, headers, json_headers};
    use super::super::{SourceOptions, decode};
    use super::*;

    fn contexts(sender: &str, file: &str, headers: &HeaderMap) -> Vec<Context> {
        decode(headers, "", &fixture(sender, file), &SourceOptions::new("ops"))
            .expect("the fixture decodes")
            .contexts
    }

    #[test]
    fn an_alert_is_keyed_by_its_fingerprint_in_its_state() {
        let headers = json_headers();
        let firing = contexts("alertmanager", "captured-firing-single.json", &headers);
        let resolved = contexts("alertmanager", "captured-resolved-single.json", &headers);
        let firing = collapse_key(SourceKind::Alertmanager, &headers, &firing[0]).expect("a key");
        let resolved =
            collapse_key(SourceKind::Alertmanager, &headers, &resolved[0]).expect("a key");
        assert!(firing.identity.starts_with("alerts:"), "{firing:?}");
        assert_eq!(firing.identity, resolved.identity);
        assert_eq!((firing.state.as_str(), resolved.state.as_str()), ("firing", "resolved"));
    }

    #[test]
    fn a_header_names_the_key_for_any_sender() {
        let mut headers = json_headers();
        headers.insert(
            HeaderName::from_static("x-collapse-key"),
            HeaderValue::from_static("backup-nightly"),
        );
        let context = &contexts("alertmanager", "captured-firing-single.json", &headers)[0];
        let key = collapse_key(SourceKind::Alertmanager, &headers, context).expect("a key");
        assert_eq!(key.identity, "header:backup-nightly");
    }

    fn github_key(file: &str) -> Option<CollapseKey> {
        let event = file.split('.').next().unwrap_or_default();
        let headers = headers(&[("Content-Type", "application/json"), ("X-GitHub-Event", event)]);
        let context = &contexts("github", file, &headers)[0];
        collapse_key(SourceKind::Github, &headers, context)
    }

    #[test]
    fn a_forge_event_is_keyed_by_its_event_and_object() {
        let key = github_key("pull_request.synchronize.json").expect("a pull request has a key");
        assert!(key.identity.starts_with("pull_request.synchronize:"), "{key:?}");
        assert!(key.identity.contains(":pr "), "{key:?}");
        let failed = github_key("check_run.completed.failure.json").expect("a check has a key");
        let passed = github_key("check_run.completed.json").expect("a check has a key");
        assert_eq!((failed.state.as_str(), passed.state.as_str()), ("failure", "success"));
        assert_eq!(github_key("push.json"), None, "a push is news each time");
    }

    #[test]
    fn a_plain_message_without_a_header_has_no_key() {
        let headers = json_headers();
        let context = Context {
            event: "message".into(),
            action: None,
            importance: crate::pushjet::Importance::DEFAULT,
            tree: serde_json::json!({"message": "hi"}),
        };
        assert_eq!(collapse_key(SourceKind::Generic, &headers, &context), None);
    }
}
