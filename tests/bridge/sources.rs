//! One delivery per sender, end to end: the fixture is posted to `/hooks/<route>` with the
//! sender's headers and authentication, and the device reads back what the built-in template
//! makes of it.

use pushjet_bridge::pushjet::Message;

use crate::common::{Answer, RoutedApp, expect_one_message, post, spawn_app_with_routes};
use crate::support::{borrowed, delivery_headers, fixture, github_signature, hmac_sha256_hex};

const WEBHOOK_SECRET: &str = "It's a Secret to Everybody";

/// What a notification should read like.
struct Expected<'a> {
    title: &'a str,
    message: &'a str,
    link: Option<&'a str>,
    importance: u8,
}

fn assert_message(message: &Message, expected: &Expected<'_>) {
    assert_eq!(
        message.title.as_deref(),
        Some(expected.title),
        "{message:#?}"
    );
    assert_eq!(message.message, expected.message, "{message:#?}");
    assert_eq!(message.link.as_deref(), expected.link, "{message:#?}");
    assert_eq!(
        message.importance.get(),
        expected.importance,
        "{message:#?}"
    );
}

fn assert_accepted(answer: &Answer) {
    assert!(
        answer.status.is_success(),
        "{}: {}",
        answer.status,
        answer.text
    );
}

async fn github_app() -> RoutedApp {
    spawn_app_with_routes(&[
        ("PUSHJET_BRIDGE_ROUTES", "gh"),
        ("PUSHJET_BRIDGE_ROUTE_GH_SOURCE", "github"),
        ("PUSHJET_BRIDGE_ROUTE_GH_WEBHOOK_SECRET", WEBHOOK_SECRET),
    ])
    .await
}

/// Posts a GitHub fixture as GitHub does: JSON, event and delivery headers, SHA-256 signature.
async fn deliver_github(app: &RoutedApp, file: &str) -> Answer {
    let body = fixture("github", file);
    let mut headers = delivery_headers("github", file);
    headers.push((
        "X-Hub-Signature-256",
        github_signature(WEBHOOK_SECRET, &body),
    ));
    post(&app.url("/hooks/gh"), &borrowed(&headers), body).await
}

#[actix_web::test]
async fn github_push_deleting_a_tag_arrives_as_deleted_tag_notification() {
    let app = github_app().await;
    assert_accepted(&deliver_github(&app, "push.json").await);
    let message = expect_one_message(&app.device).await;
    assert_message(
        &message,
        &Expected {
            title: "Codertocat/Hello-World: deleted tag simple-tag",
            message: "Deleted by Codertocat (was 6113728)",
            link: Some("https://github.com/Codertocat/Hello-World"),
            importance: 2,
        },
    );
}

#[actix_web::test]
async fn github_pull_request_opened_arrives_with_size_reviewers_and_pr_link() {
    let app = github_app().await;
    assert_accepted(&deliver_github(&app, "pull_request.opened.json").await);
    let message = expect_one_message(&app.device).await;
    assert_message(
        &message,
        &Expected {
            title: "PR opened: Codertocat/Hello-World#2 Update the README with new information.",
            message: "Codertocat wants to merge 1 commit into master from changes\n\
                      +1 −1 in 1 file\n\
                      Reviewers: octocat\n\
                      This is a pretty simple change that we need to pull into master.",
            link: Some("https://github.com/Codertocat/Hello-World/pull/2"),
            importance: 3,
        },
    );
}

#[actix_web::test]
async fn github_failed_workflow_job_off_the_default_branch_arrives_with_importance_4() {
    let app = github_app().await;
    assert_accepted(&deliver_github(&app, "workflow_job.completed.failure.json").await);
    let message = expect_one_message(&app.device).await;
    assert_message(
        &message,
        &Expected {
            title: "FAILED: CodeQL / linters on Hello-World (main)",
            message: "Job \"linters\" failed after 3m 18s\n\
                      Failed step: Run yarn run format-check\n\
                      Commit 3484a3f on main · GitHub Actions 5",
            link: Some("https://github.com/octo-org/octo-repo/runs/1291536064"),
            importance: 4,
        },
    );
}

#[actix_web::test]
async fn github_form_delivery_signed_over_the_raw_form_body_arrives() {
    let app = github_app().await;
    let json = String::from_utf8(fixture("github", "push.json")).expect("UTF-8 fixture");
    let form = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("payload", &json)
        .finish();
    let signature = github_signature(WEBHOOK_SECRET, form.as_bytes());
    let answer = post(
        &app.url("/hooks/gh"),
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("X-GitHub-Event", "push"),
            ("X-GitHub-Delivery", "3c3f2a9e-0000-4000-8000-000000000001"),
            ("X-Hub-Signature-256", &signature),
        ],
        form,
    )
    .await;
    assert_accepted(&answer);
    let message = expect_one_message(&app.device).await;
    assert_eq!(
        message.title.as_deref(),
        Some("Codertocat/Hello-World: deleted tag simple-tag")
    );
}

#[actix_web::test]
async fn gitea_push_signed_with_x_gitea_signature_arrives_as_new_branch() {
    let app = spawn_app_with_routes(&[
        ("PUSHJET_BRIDGE_ROUTES", "tea"),
        ("PUSHJET_BRIDGE_ROUTE_TEA_WEBHOOK_SECRET", WEBHOOK_SECRET),
    ])
    .await;
    let body = fixture("gitea", "push.json");
    let mut headers = delivery_headers("gitea", "push.json");
    headers.push(("X-Gitea-Signature", hmac_sha256_hex(WEBHOOK_SECRET, &body)));
    let answer = post(&app.url("/hooks/tea"), &borrowed(&headers), body).await;
    assert_accepted(&answer);
    assert_eq!(answer.json["result"]["source"], "gitea", "{}", answer.text);
    let message = expect_one_message(&app.device).await;
    assert_message(
        &message,
        &Expected {
            title: "example/example: new branch master",
            message: "67b5658 example — example",
            link: Some("http://localhost:3000/example/example/src/branch/master"),
            importance: 2,
        },
    );
}

#[actix_web::test]
async fn gitlab_push_with_x_gitlab_token_arrives_with_commit_lines_and_compare_link() {
    let app = spawn_app_with_routes(&[
        ("PUSHJET_BRIDGE_ROUTES", "lab"),
        ("PUSHJET_BRIDGE_ROUTE_LAB_WEBHOOK_SECRET", WEBHOOK_SECRET),
    ])
    .await;
    let mut headers = delivery_headers("gitlab", "push.json");
    headers.push(("X-Gitlab-Token", WEBHOOK_SECRET.to_owned()));
    let answer = post(
        &app.url("/hooks/lab"),
        &borrowed(&headers),
        fixture("gitlab", "push.json"),
    )
    .await;
    assert_accepted(&answer);
    let message = expect_one_message(&app.device).await;
    assert_message(
        &message,
        &Expected {
            title: "mike/diaspora: 4 commits to master",
            message: "b6568db Merge branch 'some-feature' into 'master' — Jordi Mallach\n\
                      da15608 fixed readme — GitLab dev user\n\
                      … and 2 more",
            link: Some(
                "http://example.com/mike/diaspora/-/compare/\
                 95790bf891e76fee5e1747ab589903a6a1f80f22...da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
            ),
            importance: 2,
        },
    );
}

#[actix_web::test]
async fn alertmanager_captured_firing_alert_with_bearer_token_arrives_with_severity_importance() {
    let app = spawn_app_with_routes(&[
        ("PUSHJET_BRIDGE_ROUTES", "alerts"),
        ("PUSHJET_BRIDGE_ROUTE_ALERTS_SOURCE", "alertmanager"),
        ("PUSHJET_BRIDGE_ROUTE_ALERTS_TOKEN", "s3cr3t-test-token"),
    ])
    .await;
    // The headers Alertmanager 0.25.0 sent (alertmanager/captured-HEADERS.txt).
    let answer = post(
        &app.url("/hooks/alerts"),
        &[
            ("User-Agent", "Alertmanager/0.25.0"),
            ("Authorization", "Bearer s3cr3t-test-token"),
            ("Content-Type", "application/json"),
        ],
        fixture("alertmanager", "captured-firing-single.json"),
    )
    .await;
    assert_accepted(&answer);
    let message = expect_one_message(&app.device).await;
    assert_message(
        &message,
        &Expected {
            title: "FIRING: DiskSpaceLow on db-1",
            message: "Firing since 2026-11-28 03:04 UTC (warning)\n\
                      Disk space low on db-1.example.internal\n\
                      Filesystem /var/lib/postgresql has only 7.8% space left.\n\
                      Instance: db-1.example.internal:9100\n\
                      Runbook: https://runbooks.example.com/disk-space-low",
            link: Some(
                "http://prometheus.example.internal:9090/graph?g0.expr=node_filesystem_avail_bytes\
                 %7Bmountpoint%3D%22%2Fvar%2Flib%2Fpostgresql%22%7D+%2F+node_filesystem_size_bytes\
                 +%3C+0.1&g0.tab=1",
            ),
            importance: 4,
        },
    );
}

#[actix_web::test]
async fn grafana_two_firing_alerts_arrive_as_one_group_notification() {
    let app = spawn_app_with_routes(&[
        ("PUSHJET_BRIDGE_ROUTES", "graf"),
        ("PUSHJET_BRIDGE_ROUTE_GRAF_BASIC_AUTH", "grafana:hunter2:x"),
    ])
    .await;
    let answer = post(
        &app.url("/hooks/graf"),
        &[
            ("Content-Type", "application/json"),
            // base64("grafana:hunter2:x"): the password holds a colon.
            ("Authorization", "Basic Z3JhZmFuYTpodW50ZXIyOng="),
        ],
        fixture("grafana", "firing.docs-two-alerts.json"),
    )
    .await;
    assert_accepted(&answer);
    assert_eq!(
        answer.json["result"]["source"], "grafana",
        "{}",
        answer.text
    );
    let message = expect_one_message(&app.device).await;
    assert_message(
        &message,
        &Expected {
            title: "FIRING 2: High memory usage and others",
            message: "High memory usage  This alert was triggered for zone us-1\n\
                      High CPU usage  This alert was triggered for zone eu-1",
            link: Some("https://play.grafana.org/alerting/1afz29v7z/edit"),
            importance: 3,
        },
    );
}

async fn generic_app() -> RoutedApp {
    spawn_app_with_routes(&[("PUSHJET_BRIDGE_ROUTES", "curl")]).await
}

#[actix_web::test]
async fn generic_json_gives_its_own_title_message_link_and_importance() {
    let app = generic_app().await;
    let answer = post(
        &app.url("/hooks/curl"),
        &[("Content-Type", "application/json")],
        fixture("generic", "title-link-importance.json"),
    )
    .await;
    assert_accepted(&answer);
    let message = expect_one_message(&app.device).await;
    assert_message(
        &message,
        &Expected {
            title: "Deploy finished",
            message: "api v2.3.1 is live on prod",
            link: Some("https://ci.example.com/pipelines/8812"),
            importance: 4,
        },
    );
}

#[actix_web::test]
async fn generic_form_fields_give_title_message_link_and_importance() {
    let app = generic_app().await;
    let answer = post(
        &app.url("/hooks/curl"),
        &[("Content-Type", "application/x-www-form-urlencoded")],
        "title=Backup&message=db-1+done+in+4m%2C+100%25+ok&url=https%3A%2F%2Fbackup.example%2Fjobs%2F7&priority=high",
    )
    .await;
    assert_accepted(&answer);
    let message = expect_one_message(&app.device).await;
    assert_message(
        &message,
        &Expected {
            title: "Backup",
            message: "db-1 done in 4m, 100% ok",
            link: Some("https://backup.example/jobs/7"),
            importance: 4,
        },
    );
}

#[actix_web::test]
async fn text_plain_body_is_the_message_under_the_route_name() {
    let app = generic_app().await;
    let answer = post(
        &app.url("/hooks/curl"),
        &[("Content-Type", "text/plain; charset=utf-8")],
        "Backup of db-1 finished\nin 4m12s",
    )
    .await;
    assert_accepted(&answer);
    let message = expect_one_message(&app.device).await;
    assert_message(
        &message,
        &Expected {
            title: "curl",
            message: "Backup of db-1 finished\nin 4m12s",
            link: None,
            importance: 3,
        },
    );
}

#[actix_web::test]
async fn curl_d_text_sent_as_a_form_is_the_message() {
    let app = generic_app().await;
    // What `curl -d 'Disk 91% full on db-1' .../hooks/curl` sends: a form type, no `=` in it.
    let answer = post(
        &app.url("/hooks/curl"),
        &[
            ("User-Agent", "curl/8.5.0"),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        "Disk 91% full on db-1",
    )
    .await;
    assert_accepted(&answer);
    let message = expect_one_message(&app.device).await;
    assert_message(
        &message,
        &Expected {
            title: "curl",
            message: "Disk 91% full on db-1",
            link: None,
            importance: 3,
        },
    );
}
