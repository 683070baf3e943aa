//! Every shared fixture through the real service's `/preview/<route>`: each notification it
//! produces keeps the invariants a phone screen needs, and every odd generic body gets a 2xx or a
//! clear 4xx, never a 5xx and never a hang.

use serde_json::Value;

use crate::common::{Answer, TestApp, post, spawn_app_with, spawn_app_with_routes};
use crate::support::{borrowed, delivery_headers, fixture, fixture_names};

/// The message limit the preview route runs with, below the 10k fixtures so clipping shows.
const MAX_MESSAGE_BYTES: usize = 1000;
const MAX_MESSAGE_BYTES_TEXT: &str = "1000";
/// A valid secret key: previews render without sending, so no service needs to exist.
const UNUSED_SECRET: &str = "0123456789abcdef0123456789abcdef";

/// A service with route `fixtures` (sender recognised per request) and a small message limit.
pub async fn preview_app() -> TestApp {
    spawn_app_with(&[
        ("PUSHJET_BRIDGE_ROUTES", "fixtures"),
        ("PUSHJET_BRIDGE_ROUTE_FIXTURES_SECRET", UNUSED_SECRET),
        ("PUSHJET_BRIDGE_MAX_MESSAGE_BYTES", MAX_MESSAGE_BYTES_TEXT),
    ])
    .await
}

/// Posts one fixture to `/preview/fixtures` with the headers its sender uses.
pub async fn preview(app: &TestApp, dir: &str, file: &str) -> Answer {
    let headers = delivery_headers(dir, file);
    post(
        &app.url("/preview/fixtures"),
        &borrowed(&headers),
        fixture(dir, file),
    )
    .await
}

/// HTML entities: the bridge writes plain text, so it must never produce one.
const ENTITIES: [&str; 5] = ["&amp;", "&lt;", "&gt;", "&quot;", "&#"];
/// What a template leaks when it renders a missing value or a whole object the JavaScript way.
const LEAKS: [&str; 2] = ["undefined", "[object"];

/// Checks every notification of one preview answer; returns what is wrong, one line each.
fn problems(label: &str, raw: &str, answer: &Answer, known_event: bool) -> Vec<String> {
    let mut found = Vec::new();
    if !answer.status.is_success() {
        found.push(format!("{label}: {} {}", answer.status, answer.text));
        return found;
    }
    let preview = &answer.json["preview"];
    let notifications = preview["notifications"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for (index, prepared) in notifications.iter().enumerate() {
        let label = format!("{label}[{index}]");
        if let Some(error) = prepared.get("template_error") {
            found.push(format!("{label}: template error {error}"));
        }
        if prepared["outcome"] == "skip" {
            continue;
        }
        let notification = &prepared["notification"];
        let title = notification["title"].as_str().unwrap_or_default();
        let message = notification["message"].as_str().unwrap_or_default();
        for (field, text) in [("title", title), ("message", message)] {
            // Text the sender wrote itself (a literal `&amp;` in a generic body) passes as it is;
            // anything else would be the bridge's doing.
            for entity in ENTITIES.iter().chain(&LEAKS) {
                if text.contains(entity) && !raw.contains(entity) {
                    found.push(format!("{label}: {field} contains {entity:?}: {text:?}"));
                }
            }
            // Every payload has JSON `null` literals, so a rendered word `null` counts unless the
            // payload's own text holds one.
            let null_word = text
                .split(|c: char| !c.is_alphanumeric())
                .any(|w| w == "null");
            if null_word && !raw_has_null_text(raw) {
                found.push(format!("{label}: {field} shows a null: {text:?}"));
            }
        }
        if known_event && title.trim().is_empty() {
            found.push(format!("{label}: empty title"));
        }
        if title.chars().count() > 255 {
            found.push(format!(
                "{label}: title of {} characters",
                title.chars().count()
            ));
        }
        if message.len() > MAX_MESSAGE_BYTES {
            found.push(format!("{label}: message of {} bytes", message.len()));
        }
        if message.trim().is_empty() {
            found.push(format!("{label}: empty message sent"));
        }
        match &notification["link"] {
            Value::Null => {}
            Value::String(link) if link.starts_with("https://") || link.starts_with("http://") => {
                if url::Url::parse(link).is_err() {
                    found.push(format!("{label}: link {link:?} does not parse"));
                }
            }
            other => found.push(format!("{label}: link {other} is not absolute http(s)")),
        }
        match notification["importance"].as_u64() {
            Some(1..=5) => {}
            other => found.push(format!("{label}: importance {other:?}")),
        }
    }
    found
}

/// True when the payload holds `null` as text inside a string (not only JSON's `null` literal).
fn raw_has_null_text(raw: &str) -> bool {
    serde_json::from_str::<Value>(raw.trim_start_matches('\u{feff}'))
        .map(|value| strings_contain(&value, "null"))
        .unwrap_or(true)
}

fn strings_contain(value: &Value, needle: &str) -> bool {
    match value {
        Value::String(text) => text.contains(needle),
        Value::Array(items) => items.iter().any(|item| strings_contain(item, needle)),
        Value::Object(fields) => fields
            .iter()
            .any(|(key, item)| key.contains(needle) || strings_contain(item, needle)),
        _ => false,
    }
}

/// Previews every fixture of `dir` and fails with the list of every broken invariant.
pub async fn assert_every_fixture_previews_well(dir: &str) {
    let app = preview_app().await;
    let names = fixture_names(dir);
    assert!(!names.is_empty(), "no fixtures in {dir}");
    let mut all = Vec::new();
    let mut notifications = 0;
    for file in &names {
        let raw = String::from_utf8_lossy(&fixture(dir, file)).into_owned();
        let answer = preview(&app, dir, file).await;
        notifications += answer.json["preview"]["notifications"]
            .as_array()
            .map_or(0, Vec::len);
        all.extend(problems(&format!("{dir}/{file}"), &raw, &answer, true));
    }
    assert!(
        all.is_empty(),
        "{} problem(s):\n{}",
        all.len(),
        all.join("\n")
    );
    assert!(
        notifications > 0,
        "{dir}: no fixture produced a notification"
    );
}

#[actix_web::test]
async fn every_github_fixture_previews_as_clean_plain_text_notifications() {
    assert_every_fixture_previews_well("github").await;
}

#[actix_web::test]
async fn every_gitea_fixture_previews_as_clean_plain_text_notifications() {
    assert_every_fixture_previews_well("gitea").await;
}

#[actix_web::test]
async fn every_gitlab_fixture_previews_as_clean_plain_text_notifications() {
    assert_every_fixture_previews_well("gitlab").await;
}

#[actix_web::test]
async fn every_alertmanager_fixture_previews_as_clean_plain_text_notifications() {
    assert_every_fixture_previews_well("alertmanager").await;
}

#[actix_web::test]
async fn every_grafana_fixture_previews_as_clean_plain_text_notifications() {
    assert_every_fixture_previews_well("grafana").await;
}

/// Generic bodies: the ones that parse keep the invariants (their title may be the route's name);
/// the one that cannot be read is a clear 400.
#[actix_web::test]
async fn every_generic_fixture_previews_well_or_is_refused_with_a_clear_400() {
    let app = preview_app().await;
    let mut all = Vec::new();
    for file in fixture_names("generic") {
        let raw = String::from_utf8_lossy(&fixture("generic", &file)).into_owned();
        let answer = preview(&app, "generic", &file).await;
        if file == "deep-nesting-200.json" {
            // 200 levels is past serde_json's recursion limit of 128.
            assert_eq!(answer.status, 400, "{file}: {}", answer.text);
            assert!(answer.error().contains("line 1, column"), "{}", answer.text);
            continue;
        }
        all.extend(problems(&format!("generic/{file}"), &raw, &answer, false));
    }
    assert!(
        all.is_empty(),
        "{} problem(s):\n{}",
        all.len(),
        all.join("\n")
    );
}

#[actix_web::test]
async fn markup_in_a_generic_body_comes_out_unescaped() {
    let app = preview_app().await;
    let answer = preview(&app, "generic", "escapes-and-markup.json").await;
    let notification = &answer.json["preview"]["notifications"][0]["notification"];
    let message = notification["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("<b>bold?</b> &amp; <script>alert(1)</script>"),
        "{message:?}"
    );
    assert_eq!(
        notification["title"], "Line\nbreak \"quoted\" \\ backslash",
        "{}",
        answer.text
    );
    // `javascript:` is no link a phone should open.
    assert_eq!(notification["link"], Value::Null, "{}", answer.text);
}

#[actix_web::test]
async fn a_10k_generic_message_is_clipped_to_the_configured_limit_with_a_marker() {
    let app = preview_app().await;
    let answer = preview(&app, "generic", "long-message-10k.json").await;
    let prepared = &answer.json["preview"]["notifications"][0];
    let message = prepared["notification"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        message.len() <= MAX_MESSAGE_BYTES,
        "{} bytes",
        message.len()
    );
    assert!(message.ends_with("… (cut)"), "{message:?}");
    assert!(
        prepared["corrections"].to_string().contains("message cut"),
        "{}",
        answer.text
    );
}

/// Bodies no fixture has: each must be answered with 2xx or a 4xx that says what is wrong.
const ODD_BODIES: &[(&str, &str, &[u8])] = &[
    ("empty JSON body", "application/json", b""),
    ("empty text body", "text/plain", b""),
    ("truncated JSON", "application/json", b"{\"message\": \"cut"),
    (
        "invalid UTF-8",
        "application/json",
        b"{\"message\": \"\xff\xfe\"}",
    ),
    ("invalid UTF-8 text", "text/plain", b"caf\xe9"),
    (
        "lone surrogate escape",
        "application/json",
        br#"{"message":"\ud800"}"#,
    ),
    ("NUL in text", "text/plain", b"before\0after"),
    ("huge number", "application/json", b"{\"message\": 1e999}"),
    (
        "form without payload value",
        "application/x-www-form-urlencoded",
        b"payload=",
    ),
    (
        "form of empty fields",
        "application/x-www-form-urlencoded",
        b"&&=&",
    ),
    (
        "JSON with trailing garbage",
        "application/json",
        b"{\"message\":\"x\"} trailing",
    ),
];

/// Every generic fixture and odd body, through `/hooks` so delivery runs too.
#[actix_web::test]
async fn odd_generic_bodies_get_a_2xx_or_a_clear_4xx_never_a_5xx() {
    let app = spawn_app_with_routes(&[("PUSHJET_BRIDGE_ROUTES", "odd")]).await;
    let url = app.url("/hooks/odd");
    let mut cases: Vec<(String, String, Vec<u8>)> = fixture_names("generic")
        .into_iter()
        .map(|file| {
            let body = fixture("generic", &file);
            (file, "application/json".to_owned(), body)
        })
        .collect();
    cases.extend(
        ODD_BODIES
            .iter()
            .map(|(label, kind, body)| ((*label).to_owned(), (*kind).to_owned(), body.to_vec())),
    );
    let mut wrong = Vec::new();
    for (label, content_type, body) in cases {
        let answer = post(&url, &[("Content-Type", &content_type)], body).await;
        let clear_4xx = answer.status.is_client_error() && answer.error().len() > 20;
        if !(answer.status.is_success() || clear_4xx) {
            wrong.push(format!("{label}: {} {}", answer.status, answer.text));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
