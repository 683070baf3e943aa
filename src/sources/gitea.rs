//! Gitea and Forgejo: the event is in `X-Gitea-Event` or `X-Forgejo-Event`, the action in the
//! payload's `action`, the delivery id in `X-Gitea-Delivery` or `X-Forgejo-Delivery`. Both also
//! send GitHub's headers, so they must be recognised before GitHub.

use actix_web::http::header::HeaderMap;
use serde_json::Value;

use super::body::Body;
use super::{
    DecodeError, Decoded, SourceKind, SourceOptions, delivery_header, forge_decoded, header_text,
    json_object,
};

/// The event headers, Gitea's first.
const EVENT_HEADERS: [&str; 2] = ["x-gitea-event", "x-forgejo-event"];
/// The delivery id headers, Gitea's first.
const DELIVERY_HEADERS: [&str; 2] = ["x-gitea-delivery", "x-forgejo-delivery"];

/// True when the request names a Gitea or Forgejo event.
pub(super) fn recognises(headers: &HeaderMap) -> bool {
    EVENT_HEADERS.iter().any(|name| headers.contains_key(*name))
}

/// Decodes a Gitea or Forgejo delivery into its one context.
pub(super) fn decode(
    headers: &HeaderMap,
    body: Body,
    options: &SourceOptions,
) -> Result<Decoded, DecodeError> {
    let mut event = None;
    for name in EVENT_HEADERS {
        event = header_text(headers, name)?;
        if event.is_some() {
            break;
        }
    }
    let event = event.ok_or(DecodeError::MissingEventHeader {
        sender: SourceKind::Gitea,
        header: "X-Gitea-Event or X-Forgejo-Event",
    })?;
    let payload = json_object(body, SourceKind::Gitea)?;
    let action = payload
        .get("action")
        .and_then(Value::as_str)
        .map(str::to_owned);
    Ok(forge_decoded(
        SourceKind::Gitea,
        event.to_owned(),
        action,
        delivery_header(headers, &DELIVERY_HEADERS),
        payload,
        options,
    ))
}

#[cfg(test)]
mod tests {
    use super::super::decode as decode_request;
    use super::super::test_support::{fixture, fixture_names, headers};
    use super::*;
    use serde_json::json;

    /// The event header and body `action` of each fixture, from gitea/HEADERS.md.
    const EXPECTED: &[(&str, &str, Option<&str>)] = &[
        ("create.json", "create", None),
        ("delete.json", "delete", None),
        ("fork.json", "fork", None),
        (
            "issue_comment.created.json",
            "issue_comment",
            Some("created"),
        ),
        ("issues.opened.json", "issues", Some("opened")),
        ("pull_request.opened.json", "pull_request", Some("opened")),
        (
            "pull_request_approved.reviewed.json",
            "pull_request_approved",
            Some("reviewed"),
        ),
        ("push.forgejo-codeberg.json", "push", None),
        ("push.gitea-docs.json", "push", None),
        ("push.json", "push", None),
        ("release.published.json", "release", Some("published")),
        ("repository.created.json", "repository", Some("created")),
    ];

    const DELIVERY: &str = "f6266f16-1bf3-46a5-9ea4-602e06ead473";

    fn gitea_headers(event: &str) -> Vec<(&'static str, String)> {
        [
            "X-GitHub-Event",
            "X-Gogs-Event",
            "X-Gitea-Event",
            "X-GitHub-Delivery",
            "X-Gitea-Delivery",
        ]
        .into_iter()
        .map(|name| {
            let value = if name.ends_with("Delivery") {
                DELIVERY
            } else {
                event
            };
            (name, value.to_owned())
        })
        .collect()
    }

    fn deliver(file: &str, pairs: &[(&str, String)]) -> Decoded {
        let mut all = vec![("Content-Type", "application/json")];
        all.extend(pairs.iter().map(|(name, value)| (*name, value.as_str())));
        decode_request(
            &headers(&all),
            "",
            &fixture("gitea", file),
            &SourceOptions::new("tea"),
        )
        .unwrap_or_else(|error| panic!("{file}: {error}"))
    }

    #[test]
    fn every_fixture_yields_its_event_and_action() {
        assert_eq!(fixture_names("gitea").len(), EXPECTED.len());
        for (file, event, action) in EXPECTED {
            let decoded = deliver(file, &gitea_headers(event));
            assert_eq!(decoded.source, SourceKind::Gitea, "{file}");
            assert_eq!(decoded.event, *event, "{file}");
            assert_eq!(decoded.action.as_deref(), *action, "{file}");
            assert_eq!(decoded.contexts[0].tree["bridge"]["source"], json!("gitea"));
        }
    }

    #[test]
    fn gitea_delivery_header_is_the_dedup_key() {
        let decoded = deliver("push.json", &gitea_headers("push"));
        assert_eq!(decoded.dedup_key(), Some(format!("gitea:{DELIVERY}")));
    }

    #[test]
    fn forgejo_headers_alone_are_enough() {
        let forgejo = [
            ("X-Forgejo-Event", "push".to_owned()),
            (
                "X-Forgejo-Delivery",
                "3a7eee03-a3b4-473e-be5a-9e73f44bc382".to_owned(),
            ),
        ];
        let decoded = deliver("push.forgejo-codeberg.json", &forgejo);
        assert_eq!(decoded.source, SourceKind::Gitea);
        assert_eq!(decoded.event, "push");
        assert_eq!(
            decoded.delivery_id.as_deref(),
            Some("3a7eee03-a3b4-473e-be5a-9e73f44bc382")
        );
    }
}
