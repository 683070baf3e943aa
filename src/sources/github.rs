//! GitHub: the event is in `X-GitHub-Event`, the action in the payload's `action`, the delivery
//! id in `X-GitHub-Delivery`.

use actix_web::http::header::HeaderMap;
use serde_json::Value;

use super::body::Body;
use super::{
    DecodeError, Decoded, SourceKind, SourceOptions, delivery_header, forge_decoded, header_text,
    json_object,
};

/// GitHub's event header.
const EVENT_HEADER: &str = "x-github-event";
/// GitHub's delivery id header.
const DELIVERY_HEADER: &str = "x-github-delivery";

/// True when the request names a GitHub event (Gitea sends this header too; check it first).
pub(super) fn recognises(headers: &HeaderMap) -> bool {
    headers.contains_key(EVENT_HEADER)
}

/// Decodes a GitHub delivery into its one context.
pub(super) fn decode(
    headers: &HeaderMap,
    body: Body,
    options: &SourceOptions,
) -> Result<Decoded, DecodeError> {
    let event = header_text(headers, EVENT_HEADER)?.ok_or(DecodeError::MissingEventHeader {
        sender: SourceKind::Github,
        header: "X-GitHub-Event",
    })?;
    let payload = json_object(body, SourceKind::Github)?;
    let action = payload
        .get("action")
        .and_then(Value::as_str)
        .map(str::to_owned);
    Ok(forge_decoded(
        SourceKind::Github,
        event.to_owned(),
        action,
        delivery_header(headers, &[DELIVERY_HEADER]),
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

    /// The `X-GitHub-Event` and body `action` of each fixture, from github/HEADERS.md.
    const EXPECTED: &[(&str, &str, Option<&str>)] = &[
        (
            "branch_protection_rule.created.json",
            "branch_protection_rule",
            Some("created"),
        ),
        (
            "branch_protection_configuration.disabled.json",
            "branch_protection_configuration",
            Some("disabled"),
        ),
        (
            "check_run.completed.failure.json",
            "check_run",
            Some("completed"),
        ),
        ("check_run.completed.json", "check_run", Some("completed")),
        (
            "check_suite.completed.json",
            "check_suite",
            Some("completed"),
        ),
        (
            "code_scanning_alert.created.json",
            "code_scanning_alert",
            Some("created"),
        ),
        (
            "commit_comment.created.json",
            "commit_comment",
            Some("created"),
        ),
        ("create.json", "create", None),
        ("custom_property.created.json", "custom_property", Some("created")),
        (
            "custom_property_values.updated.json",
            "custom_property_values",
            Some("updated"),
        ),
        ("delete.json", "delete", None),
        (
            "dependabot_alert.created.json",
            "dependabot_alert",
            Some("created"),
        ),
        ("deploy_key.created.json", "deploy_key", Some("created")),
        ("deployment.created.json", "deployment", Some("created")),
        (
            "deployment_protection_rule.requested.json",
            "deployment_protection_rule",
            Some("requested"),
        ),
        (
            "deployment_status.created.json",
            "deployment_status",
            Some("created"),
        ),
        ("discussion.created.json", "discussion", Some("created")),
        (
            "discussion_comment.created.json",
            "discussion_comment",
            Some("created"),
        ),
        ("fork.json", "fork", None),
        ("gollum.json", "gollum", None),
        (
            "issue_comment.created.json",
            "issue_comment",
            Some("created"),
        ),
        (
            "issue_comment.created.real-2025.json",
            "issue_comment",
            Some("created"),
        ),
        ("installation.created.json", "installation", Some("created")),
        (
            "installation_repositories.added.json",
            "installation_repositories",
            Some("added"),
        ),
        ("issues.opened.empty-body.json", "issues", Some("opened")),
        ("issues.opened.json", "issues", Some("opened")),
        ("issues.opened.real-2025.json", "issues", Some("opened")),
        (
            "issue_dependencies.blocked_by_added.json",
            "issue_dependencies",
            Some("blocked_by_added"),
        ),
        ("label.created.json", "label", Some("created")),
        (
            "marketplace_purchase.purchased.json",
            "marketplace_purchase",
            Some("purchased"),
        ),
        ("member.added.json", "member", Some("added")),
        (
            "membership.removed.with-deleted-team.json",
            "membership",
            Some("removed"),
        ),
        ("meta.deleted.json", "meta", Some("deleted")),
        (
            "merge_group.checks_requested.json",
            "merge_group",
            Some("checks_requested"),
        ),
        ("milestone.created.json", "milestone", Some("created")),
        (
            "organization.member_invited.json",
            "organization",
            Some("member_invited"),
        ),
        ("page_build.json", "page_build", None),
        ("ping.app.json", "ping", None),
        ("ping.json", "ping", None),
        ("ping.real-2019.json", "ping", None),
        (
            "personal_access_token_request.approved.json",
            "personal_access_token_request",
            Some("approved"),
        ),
        ("project.created.json", "project", Some("created")),
        ("project_card.created.json", "project_card", Some("created")),
        (
            "project_column.created.json",
            "project_column",
            Some("created"),
        ),
        ("projects_v2.created.json", "projects_v2", Some("created")),
        (
            "projects_v2_item.created.json",
            "projects_v2_item",
            Some("created"),
        ),
        (
            "projects_v2_status_update.created.json",
            "projects_v2_status_update",
            Some("created"),
        ),
        ("public.json", "public", None),
        ("pull_request.closed.json", "pull_request", Some("closed")),
        (
            "pull_request.closed.not-merged.json",
            "pull_request",
            Some("closed"),
        ),
        ("pull_request.opened.json", "pull_request", Some("opened")),
        (
            "pull_request.opened.null-body.json",
            "pull_request",
            Some("opened"),
        ),
        (
            "pull_request.opened.real-2025.json",
            "pull_request",
            Some("opened"),
        ),
        (
            "pull_request.synchronize.json",
            "pull_request",
            Some("synchronize"),
        ),
        (
            "pull_request_review.submitted.json",
            "pull_request_review",
            Some("submitted"),
        ),
        (
            "pull_request_review_comment.created.json",
            "pull_request_review_comment",
            Some("created"),
        ),
        ("push.json", "push", None),
        ("push.new-branch.json", "push", None),
        ("push.real-2019.json", "push", None),
        ("release.prereleased.json", "release", Some("prereleased")),
        ("release.published.json", "release", Some("published")),
        ("repository.created.json", "repository", Some("created")),
        (
            "repository_advisory.published.json",
            "repository_advisory",
            Some("published"),
        ),
        (
            "repository_dispatch.json",
            "repository_dispatch",
            Some("on-demand-test"),
        ),
        ("repository_import.json", "repository_import", None),
        (
            "repository_ruleset.created.json",
            "repository_ruleset",
            Some("created"),
        ),
        (
            "repository_vulnerability_alert.create.json",
            "repository_vulnerability_alert",
            Some("create"),
        ),
        (
            "secret_scanning_alert.reopened.json",
            "secret_scanning_alert",
            Some("reopened"),
        ),
        (
            "secret_scanning_scan.completed.json",
            "secret_scanning_scan",
            Some("completed"),
        ),
        (
            "security_advisory.published.json",
            "security_advisory",
            Some("published"),
        ),
        ("security_and_analysis.json", "security_and_analysis", None),
        ("sponsorship.created.json", "sponsorship", Some("created")),
        ("star.created.json", "star", Some("created")),
        ("star.created.real-2025.json", "star", Some("created")),
        ("star.deleted.json", "star", Some("deleted")),
        ("status.json", "status", None),
        ("team.created.json", "team", Some("created")),
        ("team_add.json", "team_add", None),
        ("watch.started.json", "watch", Some("started")),
        ("watch.started.real-2025.json", "watch", Some("started")),
        ("workflow_dispatch.json", "workflow_dispatch", None),
        (
            "workflow_job.completed.failure.json",
            "workflow_job",
            Some("completed"),
        ),
        (
            "workflow_job.completed.json",
            "workflow_job",
            Some("completed"),
        ),
        ("workflow_job.queued.json", "workflow_job", Some("queued")),
        (
            "workflow_run.completed.json",
            "workflow_run",
            Some("completed"),
        ),
        (
            "workflow_run.completed.with-pull-requests.json",
            "workflow_run",
            Some("completed"),
        ),
        (
            "workflow_run.requested.with-conclusion.json",
            "workflow_run",
            Some("requested"),
        ),
    ];

    fn deliver(file: &str, event: &str) -> Decoded {
        let request = headers(&[
            ("Content-Type", "application/json"),
            ("X-GitHub-Event", event),
            ("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
        ]);
        let options = SourceOptions::new("gh");
        decode_request(&request, "", &fixture("github", file), &options)
            .unwrap_or_else(|error| panic!("{file}: {error}"))
    }

    #[test]
    fn every_fixture_yields_its_event_and_action() {
        let names = fixture_names("github");
        assert_eq!(
            names.len(),
            EXPECTED.len(),
            "a fixture lacks an expectation"
        );
        for (file, event, action) in EXPECTED {
            assert!(names.iter().any(|name| name == file), "{file} is missing");
            let decoded = deliver(file, event);
            assert_eq!(decoded.event, *event, "{file}");
            assert_eq!(decoded.action.as_deref(), *action, "{file}");
            let bridge = &decoded.contexts[0].tree["bridge"];
            assert_eq!(bridge["event"], json!(event), "{file}");
            assert_eq!(bridge["action"], json!(action), "{file}");
        }
    }

    #[test]
    fn context_is_the_payload_plus_bridge() {
        let decoded = deliver("pull_request.closed.json", "pull_request");
        assert_eq!(decoded.contexts.len(), 1);
        let context = &decoded.contexts[0].tree;
        assert_eq!(context["pull_request"]["merged"], json!(true));
        assert_eq!(
            context["bridge"],
            json!({
                "route": "gh",
                "source": "github",
                "event": "pull_request",
                "action": "closed",
                "importance": "3",
            })
        );
    }

    #[test]
    fn delivery_header_is_the_dedup_key() {
        let decoded = deliver("ping.json", "ping");
        assert_eq!(
            decoded.dedup_key().as_deref(),
            Some("github:72d3162e-cc78-11e3-81ab-4c9367dc0958")
        );
    }

    #[test]
    fn form_delivery_reads_the_payload_field() {
        let json = String::from_utf8(fixture("github", "ping.json")).expect("UTF-8 fixture");
        let form: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("payload", &json)
            .finish();
        let request = headers(&[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("X-GitHub-Event", "ping"),
        ]);
        let decoded = decode_request(&request, "", form.as_bytes(), &SourceOptions::new("gh"))
            .expect("decodes");
        assert_eq!(decoded.source, SourceKind::Github);
        assert!(decoded.contexts[0].tree["zen"].is_string());
    }
}
