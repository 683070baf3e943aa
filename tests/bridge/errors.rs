//! What the service answers when a webhook cannot (or need not) become a notification, and what
//! reaches the device then: unknown routes, authentication, size and type limits, malformed
//! bodies, event filters, user templates and their failures, and a route whose service is gone.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;

use crate::common::{
    REQUEST_TIMEOUT, RoutedApp, assert_no_more_messages, expect_one_message, post,
    spawn_app_with_routes,
};
use crate::support::{borrowed, delivery_headers, fixture};

const JSON: (&str, &str) = ("Content-Type", "application/json");
const HELLO: &str = r#"{"message":"hello"}"#;

#[actix_web::test]
async fn an_unknown_route_is_404_naming_the_route() {
    let app = spawn_app_with_routes(&[("PUSHJET_BRIDGE_ROUTES", "known")]).await;
    let answer = post(&app.url("/hooks/unknown"), &[JSON], HELLO).await;
    assert_eq!(answer.status, 404, "{}", answer.text);
    assert!(answer.error().contains("`unknown`"), "{}", answer.text);
    let invalid = post(&app.url("/hooks/Not.A.Route"), &[JSON], HELLO).await;
    assert_eq!(invalid.status, 404, "{}", invalid.text);
}

async fn token_app() -> RoutedApp {
    spawn_app_with_routes(&[
        ("PUSHJET_BRIDGE_ROUTES", "tok"),
        ("PUSHJET_BRIDGE_ROUTE_TOK_TOKEN", "right-token"),
    ])
    .await
}

#[actix_web::test]
async fn a_wrong_or_missing_bearer_token_is_401_asking_for_bearer() {
    let app = token_app().await;
    for headers in [
        vec![JSON, ("Authorization", "Bearer wrong-token")],
        vec![JSON, ("Authorization", "Bearer right-token-but-longer")],
        vec![JSON],
    ] {
        let answer = post(&app.url("/hooks/tok"), &headers, HELLO).await;
        assert_eq!(answer.status, 401, "{headers:?}: {}", answer.text);
        assert_eq!(
            answer
                .headers
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok()),
            Some("Bearer")
        );
    }
    assert_no_more_messages(&app.device).await;
}

#[actix_web::test]
async fn a_bearer_token_or_a_token_query_parameter_is_accepted() {
    let app = token_app().await;
    let bearer = post(
        &app.url("/hooks/tok"),
        &[JSON, ("Authorization", "Bearer right-token")],
        r#"{"message":"by header"}"#,
    )
    .await;
    assert!(bearer.status.is_success(), "{}", bearer.text);
    let query = post(
        &app.url("/hooks/tok?token=right-token"),
        &[JSON],
        r#"{"message":"by query"}"#,
    )
    .await;
    assert!(query.status.is_success(), "{}", query.text);
    let mut texts: Vec<String> = crate::common::wait_for_messages(&app.device, 2)
        .await
        .into_iter()
        .map(|m| m.message)
        .collect();
    texts.sort();
    assert_eq!(texts, ["by header", "by query"]);
}

async fn basic_app() -> RoutedApp {
    spawn_app_with_routes(&[
        ("PUSHJET_BRIDGE_ROUTES", "basic"),
        ("PUSHJET_BRIDGE_ROUTE_BASIC_BASIC_AUTH", "grafana:pa:ss"),
    ])
    .await
}

fn basic(credentials: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(credentials)
    )
}

#[actix_web::test]
async fn basic_auth_with_the_right_user_and_password_is_accepted() {
    let app = basic_app().await;
    let authorization = basic("grafana:pa:ss");
    let answer = post(
        &app.url("/hooks/basic"),
        &[JSON, ("Authorization", &authorization)],
        HELLO,
    )
    .await;
    assert!(answer.status.is_success(), "{}", answer.text);
    assert_eq!(expect_one_message(&app.device).await.message, "hello");
}

#[actix_web::test]
async fn basic_auth_with_a_wrong_password_user_or_encoding_is_401() {
    let app = basic_app().await;
    let wrong_password = basic("grafana:pa:sS");
    let wrong_user = basic("admin:pa:ss");
    for authorization in [
        wrong_password.as_str(),
        &wrong_user,
        "Basic %%%",
        "Bearer pa:ss",
    ] {
        let answer = post(
            &app.url("/hooks/basic"),
            &[JSON, ("Authorization", authorization)],
            HELLO,
        )
        .await;
        assert_eq!(answer.status, 401, "{authorization}: {}", answer.text);
    }
    assert_no_more_messages(&app.device).await;
}

const LIMIT: usize = 1000;

async fn limited_app() -> RoutedApp {
    spawn_app_with_routes(&[
        ("PUSHJET_BRIDGE_ROUTES", "small"),
        ("PUSHJET_BRIDGE_MAX_BODY_BYTES", "1000"),
    ])
    .await
}

/// A JSON body of exactly `size` bytes.
fn body_of(size: usize) -> String {
    let overhead = r#"{"message":""}"#.len();
    format!(r#"{{"message":"{}"}}"#, "x".repeat(size - overhead))
}

#[actix_web::test]
async fn a_body_at_the_limit_is_accepted_and_one_byte_more_is_413() {
    let app = limited_app().await;
    let at_limit = post(&app.url("/hooks/small"), &[JSON], body_of(LIMIT)).await;
    assert!(at_limit.status.is_success(), "{}", at_limit.text);
    let over = post(&app.url("/hooks/small"), &[JSON], body_of(LIMIT + 1)).await;
    assert_eq!(over.status, 413, "{}", over.text);
    assert!(over.error().contains("1000 bytes"), "{}", over.text);
    assert!(
        over.error().contains("PUSHJET_BRIDGE_MAX_BODY_BYTES"),
        "{}",
        over.text
    );
    expect_one_message(&app.device).await;
}

/// Sends raw HTTP/1.1 bytes and returns what came back before the server closed. The server may
/// answer before it read the whole request, so write errors are not failures.
async fn raw_http(port: u16, request: Vec<u8>) -> String {
    actix_web::rt::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("the service listens");
        stream
            .set_read_timeout(Some(REQUEST_TIMEOUT))
            .expect("a read timeout");
        let _ = stream.write_all(&request);
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response);
        String::from_utf8_lossy(&response).into_owned()
    })
    .await
    .expect("the blocking task runs")
}

#[actix_web::test]
async fn a_chunked_body_over_the_limit_is_413_though_it_declares_no_length() {
    let app = limited_app().await;
    let chunk = "x".repeat(600);
    let request = format!(
        "POST /hooks/small HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
         {len:x}\r\n{chunk}\r\n{len:x}\r\n{chunk}\r\n0\r\n\r\n",
        len = chunk.len()
    );
    let response = raw_http(app.app.port, request.into_bytes()).await;
    assert!(
        response.starts_with("HTTP/1.1 413"),
        "expected 413, got: {response}"
    );
    assert!(
        response.contains("PUSHJET_BRIDGE_MAX_BODY_BYTES"),
        "{response}"
    );
    // The same service takes a chunked body under the limit.
    let small = "POST /hooks/small HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nsmall\r\n0\r\n\r\n";
    let response = raw_http(app.app.port, small.as_bytes().to_vec()).await;
    assert!(response.starts_with("HTTP/1.1 2"), "{response}");
    assert_eq!(expect_one_message(&app.device).await.message, "small");
}

#[actix_web::test]
async fn an_image_png_body_is_415_listing_the_types_it_takes() {
    let app = spawn_app_with_routes(&[("PUSHJET_BRIDGE_ROUTES", "img")]).await;
    let answer = post(
        &app.url("/hooks/img"),
        &[("Content-Type", "image/png")],
        &b"\x89PNG\r\n\x1a\n"[..],
    )
    .await;
    assert_eq!(answer.status, 415, "{}", answer.text);
    assert!(answer.error().contains("image/png"), "{}", answer.text);
    assert!(
        answer.error().contains("application/json"),
        "{}",
        answer.text
    );
    assert_no_more_messages(&app.device).await;
}

#[actix_web::test]
async fn malformed_json_is_400_naming_the_line_and_column() {
    let app = spawn_app_with_routes(&[("PUSHJET_BRIDGE_ROUTES", "json")]).await;
    let answer = post(
        &app.url("/hooks/json"),
        &[JSON],
        "{\n  \"message\": \"trailing comma\",\n}",
    )
    .await;
    assert_eq!(answer.status, 400, "{}", answer.text);
    assert!(
        answer.error().contains("line 3, column 1"),
        "{}",
        answer.text
    );
    assert_no_more_messages(&app.device).await;
}

async fn deliver_github(app: &RoutedApp, route: &str, file: &str) -> crate::common::Answer {
    let headers = delivery_headers("github", file);
    post(
        &app.url(&format!("/hooks/{route}")),
        &borrowed(&headers),
        fixture("github", file),
    )
    .await
}

#[actix_web::test]
async fn github_ping_is_answered_and_sends_nothing_unless_events_names_ping() {
    let app = spawn_app_with_routes(&[("PUSHJET_BRIDGE_ROUTES", "gh")]).await;
    let answer = deliver_github(&app, "gh", "ping.json").await;
    assert!(answer.status.is_success(), "{}", answer.text);
    assert_eq!(
        answer.json["queued"],
        serde_json::json!([]),
        "{}",
        answer.text
    );
    let filtered = answer.json["result"]["filtered"]
        .as_str()
        .unwrap_or_default();
    assert!(
        filtered.contains("PUSHJET_BRIDGE_ROUTE_GH_EVENTS"),
        "{}",
        answer.text
    );
    assert_no_more_messages(&app.device).await;
}

#[actix_web::test]
async fn github_ping_is_sent_when_events_names_ping() {
    let app = spawn_app_with_routes(&[
        ("PUSHJET_BRIDGE_ROUTES", "gh"),
        ("PUSHJET_BRIDGE_ROUTE_GH_EVENTS", "ping,push"),
    ])
    .await;
    let answer = deliver_github(&app, "gh", "ping.json").await;
    assert!(answer.status.is_success(), "{}", answer.text);
    let message = expect_one_message(&app.device).await;
    assert_eq!(
        message.title.as_deref(),
        Some("Octocoders/Hello-World: webhook connected"),
        "{message:#?}"
    );
    assert!(message.message.starts_with("GitHub says: "), "{message:#?}");
}

#[actix_web::test]
async fn an_events_allow_list_answers_filtered_and_sends_only_listed_events() {
    let app = spawn_app_with_routes(&[
        ("PUSHJET_BRIDGE_ROUTES", "pushes"),
        (
            "PUSHJET_BRIDGE_ROUTE_PUSHES_EVENTS",
            "push,pull_request.closed",
        ),
    ])
    .await;
    let answer = deliver_github(&app, "pushes", "pull_request.opened.json").await;
    assert!(answer.status.is_success(), "{}", answer.text);
    let filtered = answer.json["result"]["filtered"]
        .as_str()
        .unwrap_or_default();
    assert!(
        filtered.contains("pull_request.opened is not in PUSHJET_BRIDGE_ROUTE_PUSHES_EVENTS"),
        "{}",
        answer.text
    );
    let listed = deliver_github(&app, "pushes", "push.json").await;
    assert!(listed.status.is_success(), "{}", listed.text);
    let message = expect_one_message(&app.device).await;
    assert_eq!(
        message.title.as_deref(),
        Some("Codertocat/Hello-World: deleted tag simple-tag")
    );
}

/// Writes `<dir>/<name>.toml`, making its source folder.
fn write_template(dir: &Path, name: &str, text: &str) {
    let path = dir.join(format!("{name}.toml"));
    std::fs::create_dir_all(path.parent().expect("a folder")).expect("the folder is made");
    std::fs::write(&path, text).expect("the template is written");
}

#[actix_web::test]
async fn a_template_in_the_user_template_dir_overrides_the_built_in_one() {
    let templates = tempfile::tempdir().expect("a temporary folder");
    write_template(
        templates.path(),
        "github/push",
        "# Ours: one line per push.\n\
         title = 'ours: {{repository.name}} {{ref_name ref}}'\n\
         message = 'pushed by {{pusher.name}}'\n\
         link = '{{repository.html_url}}/activity'\n\
         importance = '5'\n",
    );
    let dir = templates.path().display().to_string();
    let app = spawn_app_with_routes(&[
        ("PUSHJET_BRIDGE_ROUTES", "gh"),
        ("PUSHJET_BRIDGE_TEMPLATES_DIR", &dir),
    ])
    .await;
    let answer = deliver_github(&app, "gh", "push.json").await;
    assert!(answer.status.is_success(), "{}", answer.text);
    let message = expect_one_message(&app.device).await;
    assert_eq!(
        message.title.as_deref(),
        Some("ours: Hello-World simple-tag")
    );
    assert_eq!(message.message, "pushed by Codertocat");
    assert_eq!(
        message.link.as_deref(),
        Some("https://github.com/Codertocat/Hello-World/activity")
    );
    assert_eq!(message.importance.get(), 5);
    // Other events keep their built-in template.
    let other = deliver_github(&app, "gh", "star.created.json").await;
    assert!(other.status.is_success(), "{}", other.text);
    let star = expect_one_message(&app.device).await;
    assert_eq!(
        star.title.as_deref(),
        Some("Codertocat/Hello-World: starred by Codertocat")
    );
}

#[actix_web::test]
async fn a_template_failing_at_render_time_still_delivers_the_fallback_notification() {
    let templates = tempfile::tempdir().expect("a temporary folder");
    // Compiles, but `truncate` refuses a length that is not a number when it runs.
    write_template(
        templates.path(),
        "custom/broken",
        "# Broken on purpose.\n\
         title = 'never shown'\n\
         message = '{{truncate message \"ten\"}}'\n",
    );
    let dir = templates.path().display().to_string();
    let app = spawn_app_with_routes(&[
        ("PUSHJET_BRIDGE_ROUTES", "broken"),
        ("PUSHJET_BRIDGE_TEMPLATES_DIR", &dir),
        ("PUSHJET_BRIDGE_ROUTE_BROKEN_TEMPLATE", "custom/broken"),
    ])
    .await;
    let answer = post(
        &app.url("/hooks/broken"),
        &[JSON],
        r#"{"message":"disk full"}"#,
    )
    .await;
    assert!(answer.status.is_success(), "{}", answer.text);
    let error = answer.json["result"]["notifications"][0]["template_error"]
        .as_str()
        .unwrap_or_default();
    assert!(error.contains("truncate"), "{}", answer.text);
    let message = expect_one_message(&app.device).await;
    assert_eq!(message.title.as_deref(), Some("broken: template error"));
    assert!(message.message.contains("truncate"), "{message:#?}");
    assert!(message.message.contains("disk full"), "{message:#?}");
}

#[actix_web::test]
async fn a_template_rendering_an_empty_message_sends_nothing_and_says_skipped() {
    let templates = tempfile::tempdir().expect("a temporary folder");
    write_template(
        templates.path(),
        "custom/quiet",
        "# Only speaks up when asked to.\n\
         title = 'loud'\n\
         message = '{{#if loud}}{{message}}{{/if}}'\n",
    );
    let dir = templates.path().display().to_string();
    let app = spawn_app_with_routes(&[
        ("PUSHJET_BRIDGE_ROUTES", "quiet"),
        ("PUSHJET_BRIDGE_TEMPLATES_DIR", &dir),
        ("PUSHJET_BRIDGE_ROUTE_QUIET_TEMPLATE", "custom/quiet"),
    ])
    .await;
    let answer = post(&app.url("/hooks/quiet"), &[JSON], HELLO).await;
    assert!(answer.status.is_success(), "{}", answer.text);
    assert_eq!(
        answer.json["queued"],
        serde_json::json!([]),
        "{}",
        answer.text
    );
    assert_eq!(
        answer.json["result"]["notifications"][0]["outcome"], "skip",
        "{}",
        answer.text
    );
    assert_no_more_messages(&app.device).await;
}

/// Today delivery is synchronous, so the refusal comes back as 424. Once delivery is queued
/// (202), this webhook is accepted and dead-lettered instead: change this test then to assert
/// the 202 and the dead letter.
#[actix_web::test]
async fn a_sync_route_whose_secret_names_no_service_is_424_naming_the_route() {
    const NEVER_CREATED: &str = "0123456789abcdef0123456789abcdef";
    let app = spawn_app_with_routes(&[
        ("PUSHJET_BRIDGE_ROUTES", "gone"),
        ("PUSHJET_BRIDGE_ROUTE_GONE_SECRET", NEVER_CREATED),
        ("PUSHJET_BRIDGE_ROUTE_GONE_DELIVERY", "sync"),
    ])
    .await;
    let answer = post(&app.url("/hooks/gone"), &[JSON], HELLO).await;
    assert_eq!(answer.status, 424, "{}", answer.text);
    assert!(answer.error().contains("route `gone`"), "{}", answer.text);
    assert!(!answer.text.contains(NEVER_CREATED), "{}", answer.text);
    assert_no_more_messages(&app.device).await;
}

#[actix_web::test]
async fn a_blank_events_setting_filters_nothing() {
    let app = spawn_app_with_routes(&[
        ("PUSHJET_BRIDGE_ROUTES", "blank"),
        ("PUSHJET_BRIDGE_ROUTE_BLANK_EVENTS", ""),
    ])
    .await;
    let answer = post(&app.url("/hooks/blank"), &[JSON], HELLO).await;
    assert!(answer.status.is_success(), "{}", answer.text);
    assert!(
        answer.json["result"].get("filtered").is_none(),
        "{}",
        answer.text
    );
    assert_eq!(expect_one_message(&app.device).await.message, "hello");
}

/// Today delivery is synchronous, so an unreachable Pushjet API answers 502 (and Alertmanager
/// retries). Once delivery is queued this becomes a 202 and the worker retries: change this test
/// then.
#[actix_web::test]
async fn a_sync_route_with_an_unreachable_pushjet_api_is_502_without_the_secret() {
    const SECRET: &str = "0123456789abcdef0123456789abcdef";
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let api = format!("http://127.0.0.1:{closed}/");
    let app = crate::common::spawn_app_with(&[
        ("PUSHJET_API_URL", &api),
        ("PUSHJET_BRIDGE_ROUTES", "away"),
        ("PUSHJET_BRIDGE_ROUTE_AWAY_SECRET", SECRET),
        ("PUSHJET_BRIDGE_ROUTE_AWAY_DELIVERY", "sync"),
    ])
    .await;
    let answer = post(&app.url("/hooks/away"), &[JSON], HELLO).await;
    assert_eq!(answer.status, 502, "{}", answer.text);
    assert!(
        answer
            .error()
            .starts_with("Pushjet did not take the notification"),
        "{}",
        answer.text
    );
    assert!(!answer.text.contains(SECRET), "{}", answer.text);
}
