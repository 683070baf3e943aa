//! Renders every real payload in `tests/fixtures` through the built-in templates, checks the
//! invariants every notification must keep, and snapshots how each one reads.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use super::{RenderedFields, Renderer};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

/// One notification to render: which template chain to use and its context.
pub(super) struct Case {
    pub(super) label: String,
    pub(super) source: &'static str,
    pub(super) event: String,
    pub(super) action: Option<String>,
    pub(super) context: Value,
}

/// The fixture files of one source, sorted.
fn fixture_files(source: &str) -> Vec<PathBuf> {
    let dir = Path::new(FIXTURES).join(source);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    files
}

/// The template context the bridge builds, following `templates/README.md` (test-only copy).
fn with_bridge(payload: Value, bridge: Value) -> Value {
    let mut context = match payload {
        Value::Object(fields) => fields,
        other => Map::from_iter([("payload".to_owned(), other)]),
    };
    context.insert("bridge".to_owned(), bridge);
    Value::Object(context)
}

fn bridge(source: &str, event: &str, action: Option<&str>, importance: &str) -> Value {
    json!({"route": "test", "source": source, "event": event, "action": action, "importance": importance})
}

/// GitHub and Gitea: event from the file name (the header's value), action from the body.
fn forge_case(source: &'static str, stem: &str, payload: Value) -> Case {
    let event = stem.split('.').next().unwrap_or(stem).to_owned();
    let action = payload["action"].as_str().map(str::to_owned);
    let bridge = bridge(source, &event, action.as_deref(), "3");
    Case {
        label: format!("{source}/{stem}"),
        source,
        event,
        action,
        context: with_bridge(payload, bridge),
    }
}

/// GitLab: event from `object_kind` (`build` is `job`; without one, the header's, which the file
/// name starts with), action from `object_attributes.action`.
fn gitlab_case(stem: &str, payload: Value) -> Case {
    let event = match payload["object_kind"].as_str() {
        Some("build") => "job".to_owned(),
        Some(kind) => kind.to_owned(),
        // Member and subgroup hooks have no object_kind: the header names them, as the file does.
        None => stem.split('.').next().unwrap_or(stem).to_owned(),
    };
    let action = payload["object_attributes"]["action"]
        .as_str()
        .map(str::to_owned);
    let mut bridge = bridge("gitlab", &event, action.as_deref(), "3");
    // As the source adds it: what a merge request's or issue's update changed.
    let changes = crate::sources::gitlab_change_lines(&payload);
    if matches!(event.as_str(), "merge_request" | "issue") && !changes.is_empty() {
        bridge["changes"] = json!(changes);
    }
    Case {
        label: format!("gitlab/{stem}"),
        source: "gitlab",
        event,
        action,
        context: with_bridge(payload, bridge),
    }
}

/// Alertmanager and Grafana: one notification per group, importance from the severities.
fn alert_case(source: &'static str, stem: &str, mut payload: Value) -> Case {
    // As the source does: an alert without a status of its own (before 0.6) has the group's.
    let group_status = payload["status"].clone();
    if let Some(alerts) = payload["alerts"].as_array_mut() {
        for alert in alerts.iter_mut().filter(|alert| alert.is_object() && alert.get("status").is_none()) {
            alert["status"] = group_status.clone();
        }
    }
    let alerts = payload["alerts"].as_array().cloned().unwrap_or_default();
    let with_status = |status: &str| -> Vec<Value> {
        alerts
            .iter()
            .filter(|alert| alert["status"] == status)
            .cloned()
            .collect()
    };
    let (firing, resolved) = (with_status("firing"), with_status("resolved"));
    let status = match payload["status"].as_str() {
        Some(status) => status.to_owned(),
        None if payload["state"] == "ok" => "resolved".to_owned(),
        None => "firing".to_owned(),
    };
    let importance = if status == "resolved" {
        1
    } else {
        firing
            .iter()
            .map(|alert| match alert["labels"]["severity"].as_str() {
                Some("critical" | "page") => 5,
                Some("warning" | "error" | "major") => 4,
                Some("info") => 2,
                _ => 3,
            })
            .max()
            .unwrap_or(3)
    };
    let mut bridge = bridge(source, &status, None, &importance.to_string());
    bridge["firing"] = Value::Array(firing);
    bridge["resolved"] = Value::Array(resolved);
    bridge["more"] = payload["truncatedAlerts"].clone();
    if bridge["more"].is_null() {
        bridge["more"] = json!(0);
    }
    bridge["alertname"] = crate::sources::group_alert_name(&payload).map_or(Value::Null, Value::from);
    Case {
        label: format!("{source}/{stem}"),
        source,
        event: status,
        action: None,
        context: with_bridge(payload, bridge),
    }
}

pub(super) fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for source in ["github", "gitea", "gitlab", "alertmanager", "grafana"] {
        for path in fixture_files(source) {
            let stem = path
                .file_stem()
                .and_then(|stem| stem.to_str())
                .expect("UTF-8 name")
                .to_owned();
            let text = fs::read_to_string(&path).expect("readable fixture");
            let payload: Value = serde_json::from_str(&text).expect("JSON fixture");
            cases.push(case_of(source, &stem, payload));
        }
    }
    cases
}

/// What is wrong with a rendered notification, if anything.
fn violations(fields: &RenderedFields) -> Vec<String> {
    let mut found = Vec::new();
    let all = [
        &fields.title,
        &fields.message,
        &fields.link,
        &fields.importance,
    ];
    for text in all {
        for bad in [
            "&amp;",
            "&lt;",
            "&gt;",
            "&quot;",
            "&#",
            "null",
            "undefined",
            "[object",
        ] {
            if text.contains(bad) {
                found.push(format!("contains {bad:?}: {text:?}"));
            }
        }
    }
    if fields.title.is_empty() {
        found.push("empty title".to_owned());
    }
    if fields.title.chars().count() > 255 {
        found.push("title over 255 characters".to_owned());
    }
    if fields.message.trim().is_empty() {
        found.push("empty message".to_owned());
    }
    let link_ok = fields.link.is_empty()
        || fields.link.starts_with("https://")
        || fields.link.starts_with("http://");
    if !link_ok {
        found.push(format!("link is not absolute http(s): {:?}", fields.link));
    }
    if !matches!(fields.importance.parse::<u8>(), Ok(1..=5)) {
        found.push(format!("importance not 1..=5: {:?}", fields.importance));
    }
    found
}

pub(super) fn render_case(renderer: &Renderer, case: &Case) -> (String, RenderedFields) {
    let name = renderer
        .lookup(case.source, &case.event, case.action.as_deref(), None)
        .unwrap_or_else(|| panic!("{}: no template", case.label));
    let fields = renderer
        .render(name, &case.context)
        .unwrap_or_else(|error| panic!("{}: {error}", case.label));
    (name.to_owned(), fields)
}

#[test]
fn every_fixture_renders_a_notification_that_keeps_the_invariants() {
    let renderer = Renderer::load(None).expect("built-ins load");
    let cases = cases();
    assert!(cases.len() > 60, "fixtures not found under {FIXTURES}");

    let mut failures = Vec::new();
    for case in &cases {
        let (name, fields) = render_case(&renderer, case);
        for violation in violations(&fields) {
            failures.push(format!("{} ({name}): {violation}", case.label));
        }
    }

    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn every_fixture_reads_as_its_snapshot() {
    let renderer = Renderer::load(None).expect("built-ins load");
    for case in cases() {
        let (name, fields) = render_case(&renderer, &case);
        let shown = format!(
            "template:   {name}\ntitle:      {}\nimportance: {}\nlink:       {}\nmessage:\n{}\n",
            fields.title, fields.importance, fields.link, fields.message
        );
        let snapshot = case.label.replace('/', "__");
        insta::with_settings!({prepend_module_to_snapshot => false, omit_expression => true}, {
            insta::assert_snapshot!(snapshot, shown);
        });
    }
}

/// The case built from one fixture file, e.g. `fixture("github", "push.json")`.
pub(super) fn fixture(source: &'static str, file: &str) -> Case {
    let path = Path::new(FIXTURES).join(source).join(file);
    let text = fs::read_to_string(&path).expect("readable fixture");
    let payload: Value = serde_json::from_str(&text).expect("JSON fixture");
    case_of(source, file.trim_end_matches(".json"), payload)
}

/// The case of a payload of `source` from the fixture named `stem` (its name without `.json`).
pub(super) fn case_of(source: &'static str, stem: &str, payload: Value) -> Case {
    match source {
        "github" | "gitea" => forge_case(source, stem, payload),
        "gitlab" => gitlab_case(stem, payload),
        _ => alert_case(source, stem, payload),
    }
}

pub(super) fn render_fields(case: &Case) -> RenderedFields {
    let renderer = Renderer::load(None).expect("built-ins load");
    render_case(&renderer, case).1
}

#[test]
fn github_push_lists_five_commits_and_counts_the_rest() {
    let mut case = fixture("github", "push.real-2019.json");
    let commit = case.context["commits"][0].clone();
    case.context["commits"] = Value::Array(vec![commit; 7]);

    let fields = render_fields(&case);

    assert_eq!(
        fields.title,
        "ailisp/gcbapp-buildconfig-example: 7 commits to ailisp-patch-1"
    );
    assert_eq!(fields.message.lines().count(), 6, "{}", fields.message);
    assert!(
        fields.message.ends_with("\n… and 2 more"),
        "{}",
        fields.message
    );
}

#[test]
fn github_force_push_to_default_branch_says_so_and_is_importance_4() {
    let mut case = fixture("github", "push.real-2019.json");
    case.context["forced"] = json!(true);
    case.context["ref"] = json!("refs/heads/master");

    let fields = render_fields(&case);

    assert_eq!(
        fields.title,
        "ailisp/gcbapp-buildconfig-example: force-pushed master"
    );
    assert!(
        fields
            .message
            .starts_with("History rewritten by ailisp: 605521c → e238171")
    );
    assert_eq!(fields.importance, "4");
}

#[test]
fn github_check_suite_failure_is_5_on_default_branch_and_4_elsewhere() {
    let mut case = fixture("github", "check_suite.completed.json");
    case.context["check_suite"]["conclusion"] = json!("failure");

    let elsewhere = render_fields(&case);
    case.context["check_suite"]["head_branch"] = json!("master");
    let on_default = render_fields(&case);

    assert!(
        elsewhere.title.starts_with("FAILED: "),
        "{}",
        elsewhere.title
    );
    assert_eq!(
        (
            elsewhere.importance.as_str(),
            on_default.importance.as_str()
        ),
        ("4", "5")
    );
}

#[test]
fn github_workflow_run_failure_on_default_branch_is_5() {
    let mut case = fixture("github", "workflow_run.completed.json");
    case.context["workflow_run"]["conclusion"] = json!("failure");

    let fields = render_fields(&case);

    assert_eq!(fields.title, "FAILED: test on octo-repo (master)");
    assert!(
        fields.message.starts_with("Run #163 failed after"),
        "{}",
        fields.message
    );
    assert_eq!(fields.importance, "5");
}

#[test]
fn github_review_request_uses_its_own_template_and_is_4() {
    let mut case = fixture("github", "pull_request.opened.json");
    case.action = Some("review_requested".to_owned());
    case.context["action"] = json!("review_requested");
    case.context["requested_reviewer"] = json!({"login": "octocat"});

    let fields = render_fields(&case);

    assert!(
        fields
            .title
            .starts_with("Review requested: Codertocat/Hello-World#2")
    );
    assert!(
        fields
            .message
            .starts_with("Codertocat asks octocat to review")
    );
    assert_eq!(fields.importance, "4");
}

#[test]
fn github_event_without_a_template_names_event_action_and_sender() {
    let mut case = fixture("github", "star.created.json");
    case.event = "future_event".to_owned();
    case.action = Some("first_sent".to_owned());
    case.context["bridge"]["event"] = json!("future_event");
    case.context["bridge"]["action"] = json!("first_sent");

    let fields = render_fields(&case);

    assert_eq!(
        fields.title,
        "Codertocat/Hello-World: future event first sent"
    );
    assert_eq!(fields.message, "by Codertocat");
    assert_eq!(fields.importance, "3");
}

#[test]
fn alert_split_per_status_reads_resolved_for_the_resolved_part() {
    let mut case = fixture("alertmanager", "captured-mixed-firing-resolved.json");
    let resolved = case.context["bridge"]["resolved"].clone();
    case.event = "resolved".to_owned();
    case.context["alerts"] = resolved;
    case.context["bridge"]["event"] = json!("resolved");
    case.context["bridge"]["firing"] = json!([]);
    case.context["bridge"]["importance"] = json!("1");

    let fields = render_fields(&case);

    assert_eq!(fields.title, "RESOLVED: HighRequestLatency on api-3");
    assert!(
        fields.message.starts_with("Resolved after 11s (info)"),
        "{}",
        fields.message
    );
    assert_eq!(fields.importance, "1");
}

#[test]
fn grafana_single_firing_alert_says_since_when() {
    let mut case = fixture("grafana", "firing.grafana-alerting-default-payload.json");
    case.context["alerts"][0]["startsAt"] = json!("2021-10-12T09:51:03.157076+02:00");
    case.context["bridge"]["firing"][0]["startsAt"] = json!("2021-10-12T09:51:03.157076+02:00");

    let fields = render_fields(&case);

    assert!(
        fields
            .message
            .starts_with("Firing since 2021-10-12 07:51 UTC"),
        "{}",
        fields.message
    );
}

#[test]
fn alert_resolved_without_an_end_time_says_resolved_without_a_duration() {
    let mut case = fixture("alertmanager", "captured-resolved-single.json");
    case.context["alerts"][0]["endsAt"] = json!("0001-01-01T00:00:00Z");

    let fields = render_fields(&case);

    assert!(
        fields.message.starts_with("Resolved (warning)\n"),
        "{}",
        fields.message
    );
}

#[test]
fn grafana_group_is_titled_after_its_first_firing_alert() {
    let mut case = fixture("grafana", "firing.docs-two-alerts.json");
    case.context["alerts"][0]["status"] = json!("resolved");
    case.context["commonLabels"]
        .as_object_mut()
        .expect("labels")
        .remove("alertname");
    let alerts = case.context["alerts"].clone();
    case.context["bridge"]["firing"] = json!([alerts[1]]);
    case.context["bridge"]["resolved"] = json!([alerts[0]]);

    let fields = render_fields(&case);

    assert_eq!(fields.title, "FIRING 1: High CPU usage and others");
    assert_eq!(
        fields.link,
        "https://play.grafana.org/alerting/d1rdpdv7k/edit"
    );
}

#[test]
fn gitlab_merge_request_without_iid_or_target_branch_reads_whole() {
    let mut case = fixture("gitlab", "merge_request.open.json");
    let attributes = case.context["object_attributes"]
        .as_object_mut()
        .expect("attributes");
    attributes.remove("iid");
    attributes.remove("target_branch");

    let fields = render_fields(&case);

    assert_eq!(fields.title, "MR opened: gitlabhq/gitlab-test MS-Viewport");
    assert_eq!(fields.message, "user1 wants to merge ms-viewport");
}

#[test]
fn gitlab_pipeline_without_detailed_status_names_its_status() {
    let mut case = fixture("gitlab", "pipeline.success-with-failed-job.json");
    case.context["object_attributes"]
        .as_object_mut()
        .expect("attributes")
        .remove("detailed_status");

    let fields = render_fields(&case);

    assert!(
        fields.message.contains("Pipeline success after 1m 3s\n"),
        "{}",
        fields.message
    );
}

#[test]
fn github_workflow_run_reads_its_conclusion_whatever_the_action() {
    let mut case = fixture("github", "workflow_run.completed.json");
    case.context["action"] = json!("in_progress");
    case.context["bridge"]["action"] = json!("in_progress");
    case.context["workflow_run"]["conclusion"] = json!("failure");
    let failed = render_fields(&case);
    case.context["workflow_run"]["conclusion"] = json!("action_required");
    let waiting = render_fields(&case);

    assert_eq!(failed.title, "FAILED: test on octo-repo (master)");
    assert!(
        failed.message.starts_with("Run #163 failed"),
        "{}",
        failed.message
    );
    assert_eq!(failed.importance, "5");
    assert_eq!(waiting.title, "APPROVAL NEEDED: test on octo-repo (master)");
    assert!(
        waiting
            .message
            .starts_with("Run #163 waits for someone to approve it\n"),
        "{}",
        waiting.message
    );
    assert_eq!(waiting.importance, "4");
}

#[test]
fn github_pull_request_action_is_in_words() {
    let mut case = fixture("github", "pull_request.opened.json");
    case.action = Some("converted_to_draft".to_owned());
    case.context["action"] = json!("converted_to_draft");
    case.context["bridge"]["action"] = json!("converted_to_draft");

    let fields = render_fields(&case);

    assert!(
        fields
            .title
            .starts_with("PR converted to draft: Codertocat/Hello-World#2 "),
        "{}",
        fields.title
    );
    assert!(fields.title.chars().count() <= 80, "{}", fields.title);
}

#[test]
fn github_organisation_event_without_a_template_is_placed_in_the_organisation() {
    let mut case = fixture("github", "workflow_dispatch.json");
    case.event = "future_event".to_owned();
    case.action = Some("created".to_owned());
    case.context["bridge"]["event"] = json!("future_event");
    case.context["bridge"]["action"] = json!("created");
    case.context["action"] = json!("created");
    case.context
        .as_object_mut()
        .expect("payload")
        .remove("repository");

    let fields = render_fields(&case);

    assert_eq!(
        fields.title,
        "octo-org: future event created"
    );
    assert_eq!(fields.message, "by Codertocat");
    assert_eq!(fields.link, "https://github.com/Codertocat");
}

/// A GitHub fixture turned into an event no fixture of ours holds: its repository, organization
/// and sender, with `fields` added (the event's own object) and `action` set.
fn github_event(fixture_file: &str, event: &str, action: &str, fields: Value) -> Case {
    let mut case = fixture("github", fixture_file);
    case.event = event.to_owned();
    case.action = Some(action.to_owned());
    case.context["bridge"]["event"] = json!(event);
    case.context["bridge"]["action"] = json!(action);
    case.context["action"] = json!(action);
    if let (Value::Object(context), Value::Object(fields)) = (&mut case.context, fields) {
        context.extend(fields);
    }
    case
}

#[test]
fn github_sub_issue_added_names_both_issues_and_links_the_parent() {
    let issues = json!({"parent_issue": {"number": 1, "title": "Spice up the README",
                           "html_url": "https://github.com/Codertocat/Hello-World/issues/1"},
                        "sub_issue": {"number": 2, "title": "Add a logo",
                           "html_url": "https://github.com/Codertocat/Hello-World/issues/2"}});
    let case = github_event(
        "issues.opened.json",
        "sub_issues",
        "sub_issue_added",
        issues.clone(),
    );
    let removed = github_event(
        "issues.opened.json",
        "sub_issues",
        "parent_issue_removed",
        issues,
    );

    let fields = render_fields(&case);
    let removed = render_fields(&removed);

    assert_eq!(
        fields.title,
        "Codertocat/Hello-World: #2 now a sub-issue of #1"
    );
    assert_eq!(
        fields.message,
        "Parent #1: Spice up the README\nSub-issue #2: Add a logo\nby Codertocat"
    );
    assert_eq!(
        fields.link,
        "https://github.com/Codertocat/Hello-World/issues/1"
    );
    assert_eq!(fields.importance, "2");
    assert_eq!(
        removed.title,
        "Codertocat/Hello-World: #2 no longer a sub-issue of #1"
    );
    assert_eq!(
        removed.link,
        "https://github.com/Codertocat/Hello-World/issues/2"
    );
}

#[test]
fn github_org_block_names_the_blocked_user_and_links_the_blocked_list() {
    let case = github_event(
        "workflow_dispatch.json",
        "org_block",
        "blocked",
        json!({"blocked_user": {"login": "hubot", "html_url": "https://github.com/hubot"}}),
    );

    let fields = render_fields(&case);

    assert_eq!(fields.title, "octo-org: hubot blocked");
    assert_eq!(
        fields.message,
        "They can no longer open issues, comment or contribute here\nby Codertocat"
    );
    assert_eq!(
        fields.link,
        "https://github.com/organizations/octo-org/settings/blocked_users"
    );
    assert_eq!(fields.importance, "3");
}

#[test]
fn github_secret_found_at_a_new_location_is_4_and_says_where() {
    let case = github_event(
        "secret_scanning_alert.reopened.json",
        "secret_scanning_alert_location",
        "created",
        json!({"location": {"type": "commit", "details": {"path": "config/deploy.yml", "start_line": 12,
               "commit_sha": "f95f852bd8fca8fcc58a9a2d6c842781e32a215e"}}}),
    );

    let fields = render_fields(&case);

    assert!(
        fields.title.starts_with("SECRET FOUND again: "),
        "{}",
        fields.title
    );
    assert!(
        fields
            .message
            .starts_with("commit: config/deploy.yml line 12 @ f95f852\nAlert #191"),
        "{}",
        fields.message
    );
    assert!(
        fields.link.ends_with("/security/secret-scanning/191"),
        "{}",
        fields.link
    );
    assert_eq!(fields.importance, "4");
}

#[test]
fn github_deployment_protection_rule_asks_for_an_answer_at_importance_4() {
    let case = github_event(
        "deployment.created.json",
        "deployment_protection_rule",
        "requested",
        json!({"environment": "my-environment", "event": "pull_request",
               "pull_requests": [{"number": 2, "title": "Update the README with new information."}]}),
    );

    let fields = render_fields(&case);

    assert_eq!(
        fields.title,
        format!(
            "APPROVAL NEEDED: deploy {} to my-environment",
            case.context["repository"]["name"].as_str().expect("name")
        )
    );
    assert!(
        fields
            .message
            .ends_with("Triggered by pull request\n#2 Update the README with new information."),
        "{}",
        fields.message
    );
    assert!(
        fields.link.ends_with("/deployments/my-environment"),
        "{}",
        fields.link
    );
    assert_eq!(fields.importance, "4");
}

#[test]
fn github_app_authorization_revoked_and_installation_target_renamed_read_in_words() {
    let revoked = github_event(
        "star.created.json",
        "github_app_authorization",
        "revoked",
        json!({}),
    );
    let mut renamed = github_event(
        "installation.created.json",
        "installation_target",
        "renamed",
        json!({"account": {"login": "octo-renamed", "html_url": "https://github.com/octo-renamed"},
               "changes": {"login": {"from": "Codertocat"}}, "target_type": "User"}),
    );
    renamed.context["installation"] = json!({"id": 957387});
    let token = github_event(
        "personal_access_token_request.approved.json",
        "personal_access_token_request",
        "created",
        json!({}),
    );

    let revoked = render_fields(&revoked);
    let renamed = render_fields(&renamed);
    let token = render_fields(&token);

    assert_eq!(revoked.title, "GitHub App revoked by Codertocat");
    assert_eq!(revoked.message, "The app can no longer act for Codertocat");
    assert_eq!(
        renamed.title,
        "GitHub App account renamed: Codertocat → octo-renamed"
    );
    assert_eq!(
        renamed.message,
        "User account, installation 957387\nby Codertocat"
    );
    assert_eq!(renamed.link, "https://github.com/octo-renamed");
    assert_eq!(token.title, "test-org: TOKEN APPROVAL NEEDED for octocat");
    assert_eq!(
        token.link,
        "https://github.com/organizations/test-org/settings/personal-access-token-requests"
    );
    assert_eq!(token.importance, "4");
}

#[test]
fn gitea_review_events_say_what_the_review_decided() {
    let approved = fixture("gitea", "pull_request_approved.reviewed.json");
    let read_as = |event: &str, review_type: &str| {
        let mut case = fixture("gitea", "pull_request_approved.reviewed.json");
        case.event = event.to_owned();
        case.context["bridge"]["event"] = json!(event);
        case.context["review"]["type"] = json!(review_type);
        render_fields(&case)
    };

    let rejected = read_as("pull_request_rejected", "pull_request_review_rejected");
    let comment = read_as("pull_request_comment", "pull_request_review_comment");

    assert_eq!(
        render_fields(&approved).title,
        "Approved: jcitizen/my-repo#1 Add LICENSE File"
    );
    assert_eq!(
        rejected.title,
        "Changes requested: jcitizen/my-repo#1 Add LICENSE File"
    );
    assert_eq!(rejected.message, "jcitizen requested changes: I approve");
    assert_eq!(rejected.importance, "4");
    assert_eq!(
        comment.title,
        "Reviewed: jcitizen/my-repo#1 Add LICENSE File"
    );
    assert_eq!(comment.importance, "2");
}

#[test]
fn gitea_event_without_a_template_names_the_object_and_links_it() {
    let mut case = fixture("gitea", "issues.opened.json");
    case.event = "future_event".to_owned();
    case.action = Some("failure".to_owned());
    case.context["bridge"]["event"] = json!("future_event");
    case.context["bridge"]["action"] = json!("failure");
    case.context["action"] = json!("failure");

    let fields = render_fields(&case);

    assert_eq!(
        fields.title,
        "example/example: future event failure #1 example"
    );
    assert_eq!(
        fields.link,
        case.context["issue"]["html_url"].as_str().expect("URL")
    );
    assert_eq!(fields.importance, "3");
}

/// A Forgejo Actions run notification (Forgejo 12+, no published example): the `create`
/// fixture's repository and sender with Forgejo's ActionRun of `ci.yml` on `branch`.
fn forgejo_action_run(event: &str, action: &str, branch: &str) -> Case {
    let mut case = gitea_event(
        event,
        Some(action),
        json!({"action": action, "prior_status": "running", "run": {"id": 12, "title": "Fix login\n\nDetails",
            "workflow_id": "ci.yml", "index_in_repo": 4, "prettyref": branch,
            "commit_sha": "9b3a1cd2f7e6d1c0a1b2c3d4e5f6a7b8c9d0e1f2", "event": "push", "trigger_event": "push",
            "status": action, "started": "2025-05-01T10:00:00Z", "stopped": "2025-05-01T10:02:13Z",
            "trigger_user": {"login": "example"},
            "html_url": "http://localhost:3000/example/example/actions/runs/4"}}),
    );
    case.context["run"]["repository"] = case.context["repository"].clone();
    case
}

#[test]
fn forgejo_action_run_failure_recover_and_success_read_like_workflow_runs() {
    let failed = render_fields(&forgejo_action_run("action_run_failure", "failure", "master"));
    let failed_elsewhere = render_fields(&forgejo_action_run("action_run_failure", "failure", "feature"));
    let fixed = render_fields(&forgejo_action_run("action_run_recover", "success", "master"));
    let passed = render_fields(&forgejo_action_run("action_run_success", "success", "feature"));

    assert_eq!(failed.title, "FAILED: ci.yml on example (master)");
    assert_eq!(
        failed.message,
        "Run #4 failed after 2m 13s\nTriggered by push 9b3a1cd by example\nFix login"
    );
    assert_eq!(failed.link, "http://localhost:3000/example/example/actions/runs/4");
    assert_eq!(failed.importance, "5");
    assert_eq!(failed_elsewhere.importance, "4");
    assert_eq!(fixed.title, "FIXED: ci.yml on example (master)");
    assert!(
        fixed.message.starts_with("Run #4 passed after 2m 13s; the run before it failed\n"),
        "{}",
        fixed.message
    );
    assert_eq!(fixed.importance, "2");
    assert_eq!(passed.title, "Passed: ci.yml on example (feature)");
    assert_eq!(passed.importance, "2");
}

/// A Gitea Actions delivery (Gitea 1.24+, no published example): the `create` fixture's repository
/// and sender with a run of `workflow` on `branch` that ended in `conclusion`.
fn gitea_actions_event(event: &str, action: &str, conclusion: &str, branch: &str) -> Case {
    let run = json!({"id": 3, "run_number": 3, "display_title": "Fix login", "event": "push",
        "head_branch": branch, "head_sha": "9b3a1cd2f7e6d1c0", "status": "completed",
        "conclusion": conclusion, "started_at": "2025-05-01T10:00:00Z",
        "completed_at": "2025-05-01T10:02:13Z", "actor": {"login": "example"},
        "html_url": "http://localhost:3000/example/example/actions/runs/3"});
    let job = json!({"id": 7, "run_id": 3, "name": "test", "head_branch": branch,
        "head_sha": "9b3a1cd2f7e6d1c0", "status": "completed", "conclusion": conclusion,
        "started_at": "2025-05-01T10:00:05Z", "completed_at": "2025-05-01T10:02:10Z",
        "runner_name": "runner-1", "steps": [{"name": "cargo test", "conclusion": conclusion}],
        "html_url": "http://localhost:3000/example/example/actions/runs/3/jobs/0",
        "run_url": "http://localhost:3000/example/example/actions/runs/3"});
    gitea_event(
        event,
        Some(action),
        json!({"action": action, "workflow": {"name": "CI"}, "workflow_run": run, "workflow_job": job}),
    )
}

#[test]
fn gitea_actions_runs_and_jobs_read_like_github_ones() {
    let failed_run = render_fields(&gitea_actions_event(
        "workflow_run",
        "completed",
        "failure",
        "master",
    ));
    let passed_job = render_fields(&gitea_actions_event(
        "workflow_job",
        "completed",
        "success",
        "feature",
    ));
    let failed_job = render_fields(&gitea_actions_event(
        "workflow_job",
        "completed",
        "failure",
        "feature",
    ));

    assert_eq!(failed_run.title, "FAILED: CI on example (master)");
    assert_eq!(
        failed_run.message,
        "Run #3 failed after 2m 13s\nTriggered by push 9b3a1cd by example\nFix login"
    );
    assert_eq!(
        failed_run.link,
        "http://localhost:3000/example/example/actions/runs/3"
    );
    assert_eq!(failed_run.importance, "5");
    assert_eq!(passed_job.title, "Passed: test on example (feature)");
    assert_eq!(passed_job.importance, "2");
    assert_eq!(
        failed_job.message,
        "Job \"test\" failed after 2m 5s\nFailed step: cargo test\nCommit 9b3a1cd on feature · runner-1"
    );
    assert_eq!(failed_job.importance, "4");
    assert_eq!(
        failed_job.link,
        "http://localhost:3000/example/example/actions/runs/3/jobs/0"
    );
}

#[test]
fn gitlab_event_without_a_template_names_the_object_and_links_it() {
    let mut case = fixture("gitlab", "issue.open.json");
    case.event = "future_event".to_owned();
    case.action = None;
    case.context["bridge"]["event"] = json!("future_event");
    case.context["bridge"]["action"] = json!(null);
    case.context["object_kind"] = json!("future_event");
    case.context["object_attributes"] = json!({
        "title": "REXML DoS vulnerability",
        "state": "confirmed",
        "severity": "high",
        "url": "https://example.com/flightjs/Flight/-/security/vulnerabilities/1"
    });

    let fields = render_fields(&case);

    assert_eq!(
        fields.title,
        "gitlabhq/gitlab-test: future event confirmed REXML DoS vulnerability"
    );
    assert_eq!(fields.message, "by root");
    assert_eq!(
        fields.link,
        "https://example.com/flightjs/Flight/-/security/vulnerabilities/1"
    );
}

#[test]
fn gitlab_vulnerability_dismissed_is_2_and_a_code_finding_names_its_file_and_line() {
    let mut case = fixture("gitlab", "vulnerability.confirmed.json");
    case.context["object_attributes"]["state"] = json!("dismissed");
    case.context["object_attributes"]["location"] =
        json!({"file": "app/models/user.rb", "start_line": 42});

    let fields = render_fields(&case);

    assert_eq!(
        fields.title,
        "Vulnerability dismissed (high): REXML DoS vulnerability"
    );
    assert!(
        fields.message.starts_with("app/models/user.rb line 42\nCVE-2024-41123"),
        "{}",
        fields.message
    );
    assert_eq!(fields.importance, "2");
}

#[test]
fn github_review_thread_resolved_names_the_thread_and_links_its_first_comment() {
    let mut case = fixture("github", "pull_request_review_comment.created.json");
    case.event = "pull_request_review_thread".to_owned();
    case.action = Some("resolved".to_owned());
    case.context["bridge"]["event"] = json!("pull_request_review_thread");
    case.context["bridge"]["action"] = json!("resolved");
    case.context["action"] = json!("resolved");
    let comment = case.context["comment"].clone();
    case.context["thread"] = json!({"node_id": "PRRT_1", "comments": [comment.clone(), comment]});
    case.context
        .as_object_mut()
        .expect("payload")
        .remove("comment");

    let fields = render_fields(&case);

    assert!(
        fields
            .title
            .starts_with("Review thread resolved: Codertocat/Hello-World#2 "),
        "{}",
        fields.title
    );
    assert_eq!(
        fields.message,
        "Codertocat resolved a thread on README.md\nCodertocat: Maybe you should use more emoji on this line.\n… and 1 more comment"
    );
    assert_eq!(
        fields.link,
        case.context["thread"]["comments"][0]["html_url"]
            .as_str()
            .expect("URL")
    );
}

#[test]
fn github_deployment_review_requested_asks_for_approval_at_importance_4() {
    let mut case = fixture("github", "workflow_run.completed.json");
    case.event = "deployment_review".to_owned();
    case.action = Some("requested".to_owned());
    case.context["bridge"]["event"] = json!("deployment_review");
    case.context["bridge"]["action"] = json!("requested");
    case.context["action"] = json!("requested");
    case.context["environment"] = json!("production");
    case.context["requestor"] = json!({"login": "ilmax"});
    case.context["reviewers"] = json!([{"type": "User", "reviewer": {"login": "octocat"}}, {"type": "Team", "reviewer": {"name": "ops"}}]);
    let requested = render_fields(&case);
    case.action = Some("rejected".to_owned());
    case.context["bridge"]["action"] = json!("rejected");
    case.context["action"] = json!("rejected");
    case.context["approver"] = json!({"login": "octocat"});
    case.context["comment"] = json!("Not on a Friday");
    let rejected = render_fields(&case);

    assert_eq!(
        requested.title,
        "APPROVAL NEEDED: deploy octo-repo to production"
    );
    assert_eq!(
        requested.message,
        "ilmax asks octocat, ops to approve\ntest run #163 on master"
    );
    assert_eq!(requested.importance, "4");
    assert_eq!(rejected.title, "Deploy rejected: octo-repo to production");
    assert!(
        rejected
            .message
            .starts_with("octocat rejected: Not on a Friday\n"),
        "{}",
        rejected.message
    );
    assert_eq!(
        requested.link,
        "https://github.com/octo-org/octo-repo/actions/runs/289782451"
    );
}

/// A Gitea fixture turned into another event: its repository and sender, with `fields` added.
fn gitea_event(event: &str, action: Option<&str>, fields: Value) -> Case {
    let mut case = fixture("gitea", "create.json");
    case.event = event.to_owned();
    case.action = action.map(str::to_owned);
    case.context["bridge"]["event"] = json!(event);
    case.context["bridge"]["action"] = json!(action);
    let context = case.context.as_object_mut().expect("payload");
    for key in ["ref", "ref_type", "sha"] {
        context.remove(key);
    }
    if let Value::Object(fields) = fields {
        context.extend(fields);
    }
    case
}

#[test]
fn gitea_wiki_status_and_package_events_read_in_words() {
    let wiki = render_fields(&gitea_event(
        "wiki",
        Some("edited"),
        json!({"action": "edited", "page": "Getting Started", "comment": "Fix the install steps"}),
    ));
    let status = render_fields(&gitea_event(
        "status",
        None,
        json!({"state": "failure", "context": "ci/build", "description": "2 tests failed",
               "sha": "9b3a1cd2f7e6", "target_url": "https://ci.example.com/builds/7",
               "commit": {"message": "Fix login\n\nDetails", "author": {"name": "Jane"}}}),
    ));
    let package = render_fields(&gitea_event(
        "package",
        Some("created"),
        json!({"action": "created", "package": {"type": "npm", "name": "left-pad", "version": "1.3.0",
               "html_url": "http://localhost:3000/example/-/packages/npm/left-pad/1.3.0"}}),
    ));

    assert_eq!(
        wiki.title,
        "example/example: wiki page edited Getting Started"
    );
    assert_eq!(wiki.message, "example: Fix the install steps");
    assert_eq!(
        wiki.link,
        "http://localhost:3000/example/example/wiki/Getting%20Started"
    );
    assert_eq!(status.title, "FAILED: ci/build on example (9b3a1cd)");
    assert_eq!(status.message, "2 tests failed\n9b3a1cd Fix login — Jane");
    assert_eq!(status.importance, "4");
    assert_eq!(status.link, "https://ci.example.com/builds/7");
    assert_eq!(
        package.title,
        "example/example: package created left-pad 1.3.0"
    );
    assert_eq!(package.message, "npm package by example");
}

#[test]
fn github_package_published_names_package_and_version_and_links_the_version() {
    let read_as = |event: &str| {
        let mut case = fixture("github", "release.published.json");
        case.event = event.to_owned();
        case.context["bridge"]["event"] = json!(event);
        case.context[event] = json!({
            "name": "hello-world-npm",
            "package_type": "npm",
            "html_url": "https://github.com/Codertocat/hello-world-npm/packages/10696",
            "package_version": {
                "version": "1.0.4",
                "summary": "A simple npm package to demonstrate GitHub Packages",
                "html_url": "https://github.com/Codertocat/hello-world-npm/packages/10696?version=1.0.4",
                "author": {"login": "Codertocat"}
            }
        });
        case.context
            .as_object_mut()
            .expect("payload")
            .remove("release");
        render_fields(&case)
    };

    for event in ["package", "registry_package"] {
        let fields = read_as(event);
        assert_eq!(
            fields.title, "Codertocat/Hello-World: package published hello-world-npm 1.0.4",
            "{event}"
        );
        assert_eq!(
            fields.message,
            "npm package by Codertocat\nA simple npm package to demonstrate GitHub Packages"
        );
        assert_eq!(
            fields.link,
            "https://github.com/Codertocat/hello-world-npm/packages/10696?version=1.0.4"
        );
    }
}

#[test]
fn github_security_feature_turned_off_is_4_and_says_what_it_was() {
    let mut case = fixture("github", "security_and_analysis.json");
    let turned_on = render_fields(&case);
    case.context["repository"]["security_and_analysis"]["secret_scanning"]["status"] =
        json!("disabled");
    case.context["changes"]["from"]["security_and_analysis"]["secret_scanning"]["status"] =
        json!("enabled");
    let turned_off = render_fields(&case);

    assert_eq!(turned_on.importance, "3");
    assert_eq!(
        turned_off.message,
        "secret scanning: disabled (was enabled)\nby octocat"
    );
    assert_eq!(turned_off.importance, "4");
}
