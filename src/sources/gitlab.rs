//! GitLab: the event is the payload's `object_kind` (`build` is renamed `job`), or the
//! `X-Gitlab-Event` header when the payload has none; the action is `object_attributes.action`;
//! the delivery id is `X-Gitlab-Event-UUID`. A merge request's or issue's `bridge.changes` lists
//! what an update changed, in words (`gitlab_changes.rs`).

use actix_web::http::header::HeaderMap;
use serde_json::Value;

use super::body::Body;
use super::gitlab_changes;
use super::{
    DecodeError, Decoded, SourceKind, SourceOptions, delivery_header, forge_decoded, header_text,
    json_object,
};

/// GitLab's event header (`Push Hook`, `Merge Request Hook`, ...).
const EVENT_HEADER: &str = "x-gitlab-event";
/// GitLab's per-event id.
const DELIVERY_HEADER: &str = "x-gitlab-event-uuid";

/// True when the request names a GitLab event.
pub(super) fn recognises(headers: &HeaderMap) -> bool {
    headers.contains_key(EVENT_HEADER)
}

/// The event name for an `object_kind`: GitLab calls its job events `build` in the body.
fn event_from_kind(kind: &str) -> String {
    match kind {
        "build" => "job".to_owned(),
        other => other.to_owned(),
    }
}

/// The event name for an `X-Gitlab-Event` value: `Merge Request Hook` → `merge_request`.
fn event_from_header(hook: &str) -> String {
    let name = hook.strip_suffix(" Hook").unwrap_or(hook).trim();
    name.split_whitespace()
        .collect::<Vec<_>>()
        .join("_")
        .to_ascii_lowercase()
}

/// Decodes a GitLab delivery into its one context.
pub(super) fn decode(
    headers: &HeaderMap,
    body: Body,
    options: &SourceOptions,
) -> Result<Decoded, DecodeError> {
    let hook = header_text(headers, EVENT_HEADER)?;
    let payload = json_object(body, SourceKind::Gitlab)?;
    let event = payload
        .get("object_kind")
        .and_then(Value::as_str)
        .filter(|kind| !kind.is_empty())
        .map(event_from_kind)
        .or_else(|| hook.map(event_from_header))
        .ok_or(DecodeError::MissingEventHeader {
            sender: SourceKind::Gitlab,
            header: "X-Gitlab-Event",
        })?;
    let action = payload
        .get("object_attributes")
        .and_then(|attributes| attributes.get("action"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let changes = match event.as_str() {
        "merge_request" | "issue" => gitlab_changes::change_lines(&payload),
        _ => Vec::new(),
    };
    let mut decoded = forge_decoded(
        SourceKind::Gitlab,
        event,
        action,
        delivery_header(headers, &[DELIVERY_HEADER]),
        payload,
        options,
    );
    if !changes.is_empty() {
        for context in &mut decoded.contexts {
            if let Some(bridge) = context.tree.get_mut("bridge").and_then(Value::as_object_mut) {
                bridge.insert("changes".into(), changes.clone().into());
            }
        }
    }
    Ok(decoded)
}

#[cfg(test)]
mod tests {
    use super::super::decode as decode_request;
    use super::super::test_support::{fixture, fixture_names, headers};
    use super::*;
    use serde_json::json;

    /// Each fixture's `X-Gitlab-Event`, expected event and action, from gitlab/HEADERS.md.
    const EXPECTED: &[(&str, &str, &str, Option<&str>)] = &[
        ("issue.open.json", "Issue Hook", "issue", Some("open")),
        ("job.failed.gitlab-16.11.json", "Job Hook", "job", None),
        ("job.success.json", "Job Hook", "job", None),
        (
            "merge_request.open.json",
            "Merge Request Hook",
            "merge_request",
            Some("open"),
        ),
        (
            "note.merge_request.json",
            "Note Hook",
            "note",
            Some("create"),
        ),
        (
            "pipeline.success-with-failed-job.json",
            "Pipeline Hook",
            "pipeline",
            None,
        ),
        ("push.json", "Push Hook", "push", None),
        ("push.gitlab-7-docs.json", "Push Hook", "push", None),
        ("tag_push.gitlab-7-docs.json", "Tag Push Hook", "tag_push", None),
        (
            "merge_request.update-push.go-gitlab.json",
            "Merge Request Hook",
            "merge_request",
            Some("update"),
        ),
        ("tag_push.json", "Tag Push Hook", "tag_push", None),
        (
            "access_token.expiring.json",
            "Resource Access Token Hook",
            "access_token",
            None,
        ),
        (
            "deployment.success.json",
            "Deployment Hook",
            "deployment",
            None,
        ),
        ("emoji.award.json", "Emoji Hook", "emoji", Some("award")),
        (
            "feature_flag.json",
            "Feature Flag Hook",
            "feature_flag",
            None,
        ),
        (
            "member.user_add_to_group.json",
            "Member Hook",
            "member",
            None,
        ),
        ("release.create.json", "Release Hook", "release", None),
        (
            "subgroup.subgroup_create.json",
            "Subgroup Hook",
            "subgroup",
            None,
        ),
        (
            "vulnerability.confirmed.json",
            "Vulnerability Hook",
            "vulnerability",
            None,
        ),
        (
            "wiki_page.create.json",
            "Wiki Page Hook",
            "wiki_page",
            Some("create"),
        ),
    ];

    fn deliver(body: &[u8], hook: &str) -> Result<Decoded, DecodeError> {
        let request = headers(&[
            ("Content-Type", "application/json"),
            ("X-Gitlab-Event", hook),
            (
                "X-Gitlab-Event-UUID",
                "04862d56-febc-4be8-8339-be10e5120f02",
            ),
            ("X-Gitlab-Token", "[REDACTED]"),
        ]);
        decode_request(&request, "", body, &SourceOptions::new("lab"))
    }

    #[test]
    fn every_fixture_yields_its_event_and_action() {
        assert_eq!(fixture_names("gitlab").len(), EXPECTED.len());
        for (file, hook, event, action) in EXPECTED {
            let decoded = deliver(&fixture("gitlab", file), hook)
                .unwrap_or_else(|error| panic!("{file}: {error}"));
            assert_eq!(decoded.source, SourceKind::Gitlab, "{file}");
            assert_eq!(decoded.event, *event, "{file}");
            assert_eq!(decoded.action.as_deref(), *action, "{file}");
            assert_eq!(decoded.contexts[0].tree["bridge"]["event"], json!(event));
        }
    }

    #[test]
    fn header_names_the_event_when_the_body_does_not() {
        let decoded =
            deliver(br#"{"project":{"name":"x"}}"#, "Merge Request Hook").expect("decodes");
        assert_eq!(decoded.event, "merge_request");
    }

    #[test]
    fn event_uuid_is_the_dedup_key() {
        let decoded = deliver(&fixture("gitlab", "push.json"), "Push Hook").expect("decodes");
        assert_eq!(
            decoded.dedup_key().as_deref(),
            Some("gitlab:04862d56-febc-4be8-8339-be10e5120f02")
        );
    }

    #[test]
    fn no_event_anywhere_is_an_error() {
        let mut options = SourceOptions::new("lab");
        options.setting = super::super::SourceSetting::Fixed(SourceKind::Gitlab);
        let request = headers(&[("Content-Type", "application/json")]);
        let error = decode_request(&request, "", b"{}", &options);
        assert!(matches!(
            error,
            Err(DecodeError::MissingEventHeader {
                sender: SourceKind::Gitlab,
                ..
            })
        ));
    }
}
