//! The publish APIs other tools speak, at the root of the real service: ntfy (`PUT`/`POST
//! /<route>`, `POST /` JSON), Gotify (`POST /message`) and Apprise's Pushjet (`POST /message/`
//! with the service's secret). Each message is read back from a subscribed device; bad input
//! gets 404, 401, 400 or 413.

use awc::http::Method;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use crate::common::{
    Answer, REQUEST_TIMEOUT, RoutedApp, assert_no_more_messages, expect_one_message, post,
    spawn_app_with_routes,
};

pub const TOKEN: &str = "ntfy-and-gotify-token-1";
const OTHER_TOKEN: &str = "a-second-route-token-22";
pub const USER: &str = "uptime";
pub const PASSWORD: &str = "kuma:pass";

/// Routes `ops` (a token), `home` (basic auth), `other` (another token) and `open` (no
/// authentication), all to one service, with bodies over 4 KiB refused.
pub async fn app() -> RoutedApp {
    let basic = format!("{USER}:{PASSWORD}");
    spawn_app_with_routes(&[
        ("PUSHJET_BRIDGE_ROUTES", "ops,home,other,open"),
        ("PUSHJET_BRIDGE_ROUTE_OPS_TOKEN", TOKEN),
        ("PUSHJET_BRIDGE_ROUTE_HOME_BASIC_AUTH", &basic),
        ("PUSHJET_BRIDGE_ROUTE_OTHER_TOKEN", OTHER_TOKEN),
        ("PUSHJET_BRIDGE_MAX_BODY_BYTES", "4096"),
    ])
    .await
}

/// Sends `body` with `method` and exactly the given headers.
async fn send(method: Method, url: &str, headers: &[(&str, &str)], body: &[u8]) -> Answer {
    let client = awc::Client::builder().timeout(REQUEST_TIMEOUT).finish();
    let mut request = client.request(method, url);
    for (name, value) in headers {
        request = request.append_header((*name, *value));
    }
    let mut response = request
        .send_body(body.to_vec())
        .await
        .unwrap_or_else(|error| panic!("{url}: {error}"));
    let bytes = response.body().await.expect("a readable answer");
    Answer {
        status: response.status(),
        headers: response.headers().clone(),
        text: String::from_utf8_lossy(&bytes).into_owned(),
        json: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

fn bearer() -> String {
    format!("Bearer {TOKEN}")
}

#[actix_web::test]
async fn ntfy_put_with_headers_reaches_the_device_and_answers_like_ntfy() {
    let app = app().await;
    let auth = bearer();
    let answer = send(
        Method::PUT,
        &app.url("/ops"),
        &[
            ("Authorization", &auth),
            ("Title", "Disk space"),
            ("Priority", "high"),
            ("Tags", "warning,db"),
            ("Click", "https://grafana.example/d/disk"),
        ],
        b"Disk 91% full on db-1",
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let id = answer.json["id"].as_str().unwrap_or_default();
    assert_eq!(id.len(), 12, "{}", answer.text);
    assert_eq!(answer.json["event"], json!("message"));
    assert_eq!(answer.json["topic"], json!("ops"));
    assert_eq!(answer.json["message"], json!("Disk 91% full on db-1"));
    assert_eq!(answer.json["priority"], json!(4));
    assert_eq!(answer.json["tags"], json!(["warning", "db"]));
    assert!(answer.json["time"].as_u64().is_some(), "{}", answer.text);
    let message = expect_one_message(&app.device).await;
    assert_eq!(message.title.as_deref(), Some("Disk space"));
    assert_eq!(message.message, "Disk 91% full on db-1\nTags: warning, db");
    assert_eq!(
        message.link.as_deref(),
        Some("https://grafana.example/d/disk")
    );
    assert_eq!(message.importance.get(), 4);
}

#[actix_web::test]
async fn ntfy_query_forms_and_the_auth_parameter_work_with_basic_auth() {
    let app = app().await;
    let basic = format!("Basic {}", STANDARD.encode(format!("{USER}:{PASSWORD}")));
    let auth = URL_SAFE_NO_PAD.encode(&basic);
    let url = app.url(&format!(
        "/home?auth={auth}&t=Door&p=5&click=https%3A%2F%2Fhome.example%2Fdoor&message=Front+door%5Cnopen"
    ));
    let answer = post(&url, &[], "ignored when message is given").await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let message = expect_one_message(&app.device).await;
    assert_eq!(message.title.as_deref(), Some("Door"));
    assert_eq!(message.message, "Front door\nopen");
    assert_eq!(message.importance.get(), 5);
    assert_eq!(message.link.as_deref(), Some("https://home.example/door"));
    let header = send(
        Method::POST,
        &app.url("/home"),
        &[("Authorization", &basic)],
        b"hi",
    )
    .await;
    assert_eq!(header.status, 200, "{}", header.text);
    assert_eq!(expect_one_message(&app.device).await.message, "hi");
}

#[actix_web::test]
async fn ntfy_json_publishing_at_the_root_as_apprise_sends_it() {
    let app = app().await;
    let auth = bearer();
    let answer = post(
        &app.url("/"),
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &auth),
            ("X-Priority", "max"),
            ("X-Actions", "view, Open, https://backups.example/db-1"),
        ],
        r#"{"topic": "ops", "title": "Backup failed", "message": "db-1: pg_dump exited with 1"}"#,
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.json["priority"], json!(5));
    let message = expect_one_message(&app.device).await;
    assert_eq!(message.title.as_deref(), Some("Backup failed"));
    assert_eq!(message.message, "db-1: pg_dump exited with 1");
    assert_eq!(message.importance.get(), 5);
    assert_eq!(
        message.link.as_deref(),
        Some("https://backups.example/db-1")
    );
}

#[actix_web::test]
async fn ntfy_bad_input_gets_404_401_400_and_413() {
    let app = app().await;
    let auth = bearer();
    let wrong = format!("Bearer {OTHER_TOKEN}");
    let unknown = post(&app.url("/nope"), &[("Authorization", &auth)], "x").await;
    assert_eq!(unknown.status, 404, "{}", unknown.text);
    let missing = post(&app.url("/ops"), &[], "x").await;
    let mismatched = post(&app.url("/ops"), &[("Authorization", &wrong)], "x").await;
    for refused in [&missing, &mismatched] {
        assert_eq!(refused.status, 401, "{}", refused.text);
        assert_eq!(refused.json, json!({"error": "authentication failed"}));
    }
    let json_unknown = post(
        &app.url("/"),
        &[("Content-Type", "application/json")],
        r#"{"topic": "nope", "message": "x"}"#,
    )
    .await;
    assert_eq!(json_unknown.status, 404, "{}", json_unknown.text);
    let priority = post(&app.url("/open"), &[("Priority", "loudest")], "x").await;
    assert_eq!(priority.status, 400, "{}", priority.text);
    assert!(priority.error().contains("priority"), "{}", priority.text);
    let not_json = post(&app.url("/"), &[], "plain text at the root").await;
    assert_eq!(not_json.status, 400, "{}", not_json.text);
    let binary = post(&app.url("/open"), &[], &b"\xff\xfe"[..]).await;
    assert_eq!(binary.status, 400, "{}", binary.text);
    let oversize = post(&app.url("/open"), &[], vec![b'a'; 5000]).await;
    assert_eq!(oversize.status, 413, "{}", oversize.text);
    assert_no_more_messages(&app.device).await;
}

#[actix_web::test]
async fn gotify_message_finds_the_route_by_its_token_in_each_place() {
    let app = app().await;
    let auth = bearer();
    let json_body = json!({
        "title": "Backup", "message": "db-1 done", "priority": 8,
        "extras": {"client::notification": {"click": {"url": "https://backups.example/42"}}}
    })
    .to_string();
    let with_key = post(
        &app.url("/message"),
        &[
            ("Content-Type", "application/json"),
            ("X-Gotify-Key", TOKEN),
        ],
        json_body,
    )
    .await;
    assert_eq!(with_key.status, 200, "{}", with_key.text);
    assert_eq!(with_key.json["message"], json!("db-1 done"));
    assert_eq!(with_key.json["priority"], json!(8));
    assert!(
        with_key.json["id"].as_u64().is_some_and(|id| id > 0),
        "{}",
        with_key.text
    );
    assert!(
        with_key.json["date"]
            .as_str()
            .is_some_and(|date| date.ends_with('Z'))
    );
    let message = expect_one_message(&app.device).await;
    assert_eq!(message.title.as_deref(), Some("Backup"));
    assert_eq!(message.importance.get(), 4);
    assert_eq!(message.link.as_deref(), Some("https://backups.example/42"));

    let form = post(
        &app.url(&format!("/message?token={TOKEN}")),
        &[("Content-Type", "application/x-www-form-urlencoded")],
        "title=Cron&message=nightly+ok&priority=0",
    )
    .await;
    assert_eq!(form.status, 200, "{}", form.text);
    let message = expect_one_message(&app.device).await;
    assert_eq!(
        (message.message.as_str(), message.importance.get()),
        ("nightly ok", 1)
    );

    let bearer_only = post(
        &app.url("/message?message=via+query"),
        &[("Authorization", &auth)],
        "",
    )
    .await;
    assert_eq!(bearer_only.status, 200, "{}", bearer_only.text);
    let message = expect_one_message(&app.device).await;
    assert_eq!(message.message, "via query");
    assert_eq!(message.title.as_deref(), Some("ops"));
}

#[actix_web::test]
async fn gotify_refuses_a_missing_or_unknown_token_alike_and_a_missing_message() {
    let app = app().await;
    let body = r#"{"message": "x"}"#;
    let json = ("Content-Type", "application/json");
    let missing = post(&app.url("/message"), &[json], body).await;
    let unknown = post(
        &app.url("/message"),
        &[json, ("X-Gotify-Key", "not-a-route-token")],
        body,
    )
    .await;
    for refused in [&missing, &unknown] {
        assert_eq!(refused.status, 401, "{}", refused.text);
        assert_eq!(refused.json, json!({"error": "authentication failed"}));
    }
    let no_message = post(
        &app.url("/message"),
        &[json, ("X-Gotify-Key", TOKEN)],
        r#"{"title": "t"}"#,
    )
    .await;
    assert_eq!(no_message.status, 400, "{}", no_message.text);
    assert!(
        no_message.error().contains("message"),
        "{}",
        no_message.text
    );
    assert_no_more_messages(&app.device).await;
}

#[actix_web::test]
async fn apprise_pushjet_posts_at_the_root_and_under_pushjet_with_a_json_body() {
    let app = app().await;
    let secret = app.secret.clone();
    let form_type = (
        "Content-Type",
        "application/x-www-form-urlencoded; charset=utf-8",
    );
    for path in ["/message/", "/pushjet/message/"] {
        let body = json!({"message": format!("via {path}"), "title": "Apprise", "link": null, "level": null});
        let answer = post(
            &app.url(&format!("{path}?secret={secret}")),
            &[form_type],
            body.to_string(),
        )
        .await;
        assert_eq!(answer.status, 200, "{path}: {}", answer.text);
        assert_eq!(answer.json, json!({"status": "ok"}), "{path}");
        let message = expect_one_message(&app.device).await;
        assert_eq!(message.message, format!("via {path}"));
        assert_eq!(message.title.as_deref(), Some("Apprise"));
    }
    let wrong = post(
        &app.url("/message/?secret=0123456789abcdef0123456789abcdef"),
        &[form_type],
        r#"{"message": "x"}"#,
    )
    .await;
    assert_eq!(wrong.status, 404, "{}", wrong.text);
}

/// Sonarr's and Radarr's ntfy connection: `POST /<topic>` with the message in `X-Message` and an
/// empty body, a numeric `X-Priority` and an access token.
#[actix_web::test]
async fn ntfy_message_in_a_header_as_the_arr_apps_send_it() {
    let app = app().await;
    let auth = bearer();
    let answer = post(
        &app.url("/ops"),
        &[
            ("Authorization", &auth),
            ("X-Title", "Sonarr - Test Notification"),
            ("X-Message", "This is a test message from Sonarr"),
            ("X-Priority", "2"),
        ],
        "",
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let message = expect_one_message(&app.device).await;
    assert_eq!(message.title.as_deref(), Some("Sonarr - Test Notification"));
    assert_eq!(message.message, "This is a test message from Sonarr");
    assert_eq!(message.importance.get(), 2);
}

/// A `multipart/form-data` body as `curl -F name=value …` sends it, with its content type.
fn curl_form(fields: &[(&str, &str)]) -> (String, String) {
    let boundary = "------------------------d74496d66958873e";
    let mut body = String::new();
    for (name, value) in fields {
        body.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        ));
    }
    body.push_str(&format!("--{boundary}--\r\n"));
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[actix_web::test]
async fn gotify_and_hooks_take_curl_multipart_forms_within_the_body_limit() {
    let app = app().await;
    // Gotify's README: curl "…/message?token=…" -F "title=my title" -F "message=my message" -F "priority=5"
    let (content_type, body) = curl_form(&[
        ("title", "my title"),
        ("message", "my message"),
        ("priority", "5"),
    ]);
    let gotify = post(
        &app.url(&format!("/message?token={TOKEN}")),
        &[("Content-Type", &content_type)],
        body,
    )
    .await;
    assert_eq!(gotify.status, 200, "{}", gotify.text);
    assert_eq!(gotify.json["title"], json!("my title"));
    let message = expect_one_message(&app.device).await;
    assert_eq!(
        (
            message.title.as_deref(),
            message.message.as_str(),
            message.importance.get()
        ),
        (Some("my title"), "my message", 3)
    );

    let (content_type, body) = curl_form(&[("title", "Backup"), ("message", "Finished in 4m")]);
    let hooks = post(
        &app.url("/hooks/open"),
        &[("Content-Type", &content_type)],
        body,
    )
    .await;
    assert_eq!(hooks.status, 202, "{}", hooks.text);
    let message = expect_one_message(&app.device).await;
    assert_eq!(
        (message.title.as_deref(), message.message.as_str()),
        (Some("Backup"), "Finished in 4m")
    );

    let (content_type, body) = curl_form(&[("message", &"a".repeat(5000))]);
    let oversize = post(
        &app.url("/hooks/open"),
        &[("Content-Type", &content_type)],
        body,
    )
    .await;
    assert_eq!(oversize.status, 413, "{}", oversize.text);
    let (content_type, body) = curl_form(&[("message", "cut")]);
    let cut = post(
        &app.url(&format!("/message?token={TOKEN}")),
        &[("Content-Type", &content_type)],
        body[..body.len() - 10].to_owned(),
    )
    .await;
    assert_eq!(cut.status, 400, "{}", cut.text);
    assert_no_more_messages(&app.device).await;
}
