//! How the built-in templates read what older and other senders send and what an update
//! changed: alert groups named by their shared alertname, GitLab pushes from before `project`,
//! pipeline statuses in words, GitLab and Gitea updates that say what changed.

use serde_json::{Value, json};

use super::fixture_tests::{Case, case_of, fixture, render_fields};

#[test]
fn alert_group_sharing_one_alertname_is_titled_by_it_and_a_missing_one_falls_back() {
    let alike = json!({"version": "4", "status": "resolved", "alerts": [
        {"status": "resolved", "labels": {"alertname": "DiskSpace", "instance": "db-1"}},
        {"status": "resolved", "labels": {"alertname": "DiskSpace", "instance": "db-2"}}
    ]});
    let fields = render_fields(&case_of("alertmanager", "alike", alike));
    assert_eq!(fields.title, "RESOLVED 2: DiskSpace");
    let unnamed = json!({"version": "4", "status": "firing", "groupLabels": {"alertname": "HostDown"},
        "alerts": [{"status": "firing", "labels": {"instance": "db-1.example:9100"}}]});
    let fields = render_fields(&case_of("alertmanager", "unnamed", unnamed));
    assert_eq!(fields.title, "FIRING: HostDown on db-1");
}

#[test]
fn gitlab_push_and_tag_push_from_before_project_existed_name_and_link_the_repository() {
    let push = render_fields(&fixture("gitlab", "push.gitlab-7-docs.json"));
    assert_eq!(push.title, "Diaspora: 4 commits to master");
    assert_eq!(
        push.link,
        "http://example.com/mike/diaspora/-/compare/95790bf891e76fee5e1747ab589903a6a1f80f22...da1560886d4f094c3e6c9ef40349f7d38b5d27d7"
    );
    let tag = render_fields(&fixture("gitlab", "tag_push.gitlab-7-docs.json"));
    assert_eq!(tag.title, "jsmith: new tag v1.0.0");
    assert_eq!(tag.link, "http://example.com/jsmith/example/-/tags/v1.0.0");
}

#[test]
fn gitlab_pipeline_statuses_other_senders_use_read_in_words_and_importance() {
    let pipeline = |status: &str| {
        let mut case = fixture("gitlab", "pipeline.success-with-failed-job.json");
        case.context["object_attributes"]["status"] = json!(status);
        case.context["object_attributes"]["ref"] = case.context["project"]["default_branch"].clone();
        render_fields(&case)
    };
    for (status, word, importance) in [
        ("failure", "FAILED", "5"),
        ("error", "FAILED", "5"),
        ("canceled", "Canceled", "2"),
        ("cancelled", "Canceled", "2"),
        ("waiting_for_resource", "Waiting", "1"),
        ("something_new", "something new", "1"),
    ] {
        let fields = pipeline(status);
        assert!(fields.title.starts_with(&format!("{word}: pipeline")), "{status}: {}", fields.title);
        assert_eq!(fields.importance, importance, "{status}");
    }
}

#[test]
fn gitlab_updates_say_what_changed() {
    let pushed = render_fields(&fixture("gitlab", "merge_request.update-push.go-gitlab.json"));
    assert!(
        pushed.message.contains("New commits pushed, the last: Update state.go"),
        "{}",
        pushed.message
    );
    // GitLab's documented issue example, as an update: its `changes` name labels, title and
    // description.
    let mut issue = fixture("gitlab", "issue.open.json");
    issue.context["object_attributes"]["action"] = json!("update");
    issue.context["bridge"]["action"] = json!("update");
    issue.action = Some("update".to_owned());
    let fields = render_fields(&issue);
    for line in ["Title: New title", "Description edited", "Labels: added Platform; removed API"] {
        assert!(fields.message.contains(line), "{line} in {}", fields.message);
    }
}

/// Gitea's pull request fixture as another action's hook sends it: `pull` merged into
/// `pull_request`, `top` into the payload.
fn gitea_pull_request(action: &str, pull: Value, top: Value) -> Case {
    let mut case = fixture("gitea", "pull_request.opened.json");
    case.action = Some(action.to_owned());
    case.context["action"] = json!(action);
    case.context["bridge"]["action"] = json!(action);
    if let (Value::Object(pull_request), Value::Object(pull)) =
        (&mut case.context["pull_request"], pull)
    {
        pull_request.extend(pull);
    }
    if let (Value::Object(context), Value::Object(top)) = (&mut case.context, top) {
        context.extend(top);
    }
    case
}

#[test]
fn gitea_pull_request_label_milestone_assignee_and_review_changes_name_what_changed() {
    // Gitea's PullRequestPayload as its pull_request_label, _milestone, _assign and
    // _review_request hooks send it (the labels are the new set, as woodpecker-ci's captured
    // Gitea deliveries show).
    let message = |action: &str, pull: Value, top: Value| {
        render_fields(&gitea_pull_request(action, pull, top)).message
    };
    let none = json!({});
    let labels = message(
        "label_updated",
        json!({"labels": [{"id": 285, "name": "bug"}, {"id": 297, "name": "help wanted"}]}),
        none.clone(),
    );
    assert!(labels.contains("Labels: bug, help wanted"), "{labels}");
    let milestone = message("milestoned", json!({"milestone": {"id": 1, "title": "v1.2"}}), none.clone());
    assert!(milestone.contains("Milestone: v1.2"), "{milestone}");
    let assigned = message("assigned", json!({"assignees": [{"login": "jony"}]}), none.clone());
    assert!(assigned.contains("Assigned to jony"), "{assigned}");
    let review = message(
        "review_requested",
        none,
        json!({"requested_reviewer": {"login": "a_nice_user"}}),
    );
    assert!(review.contains("Review requested from a_nice_user"), "{review}");
}

#[test]
fn gitea_issue_label_milestone_and_assignee_changes_name_what_changed() {
    let message = |action: &str, issue: Value| {
        let mut case = fixture("gitea", "issues.opened.json");
        case.action = Some(action.to_owned());
        case.context["action"] = json!(action);
        case.context["bridge"]["action"] = json!(action);
        if let (Value::Object(fields), Value::Object(issue)) = (&mut case.context["issue"], issue) {
            fields.extend(issue);
        }
        render_fields(&case).message
    };
    let labels = message("label_updated", json!({"labels": [{"name": "bug"}, {"name": "help wanted"}]}));
    assert!(labels.contains("Labels: bug, help wanted"), "{labels}");
    let milestone = message("milestoned", json!({"milestone": {"title": "v1.2"}}));
    assert!(milestone.contains("Milestone: v1.2"), "{milestone}");
    let assigned = message("assigned", json!({"assignees": [{"login": "jony"}, {"login": "ann"}]}));
    assert!(assigned.contains("Assigned to jony, ann"), "{assigned}");
}
