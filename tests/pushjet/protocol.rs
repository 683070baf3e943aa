//! The embedded server's raw answers: every error id of the protocol's table, the level rule and
//! title truncation, read back through a subscribed device.

use awc::http::{Method, StatusCode};
use serde_json::Value;

use crate::common::{TestApp, spawn_app};

const UUID: &str = "0f0f0f0f-1111-4222-8333-444455556666";

/// Sends a form-encoded request and returns status, Content-Type and the body as JSON (or Null).
async fn call(
    app: &TestApp,
    method: Method,
    path_and_query: &str,
    form: &[(&str, &str)],
) -> (StatusCode, String, Value) {
    let client = awc::Client::default();
    let mut response = client
        .request(method, app.url(&format!("/pushjet{path_and_query}")))
        .send_form(&form)
        .await
        .expect("the embedded server answers");
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = response.body().await.expect("a body");
    (
        response.status(),
        content_type,
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    )
}

async fn create(app: &TestApp) -> (String, String) {
    let (status, _, body) = call(app, Method::POST, "/service", &[("name", "raw")]).await;
    assert_eq!(status, StatusCode::OK);
    let service = &body["service"];
    (
        service["secret"].as_str().unwrap().to_owned(),
        service["public"].as_str().unwrap().to_owned(),
    )
}

fn assert_error(answer: (StatusCode, String, Value), status: u16, id: i64, message: &str) {
    let (got_status, content_type, body) = answer;
    assert_eq!(got_status.as_u16(), status, "{body}");
    assert_eq!(body["error"]["id"], id, "{body}");
    assert_eq!(body["error"]["message"], message, "{body}");
    assert!(content_type.starts_with("text/html"), "{content_type}");
}

#[actix_web::test]
async fn every_error_id_of_the_table_with_its_status_and_text() {
    let app = spawn_app().await;
    let (secret, public) = create(&app).await;
    let unknown_public = "0000-000000-000000000000-00000-000000000";
    let unknown_secret = "0123456789abcdef0123456789abcdef";

    assert_error(
        call(&app, Method::GET, "/message?uuid=nope", &[]).await,
        400,
        1,
        "Invalid client uuid",
    );
    assert_error(
        call(&app, Method::GET, "/service?service=bad", &[]).await,
        400,
        2,
        "Invalid service",
    );
    assert_error(
        call(&app, Method::GET, "/service?secret=bad", &[]).await,
        400,
        3,
        "Invalid secret",
    );
    assert_eq!(
        call(
            &app,
            Method::POST,
            &format!("/subscription?uuid={UUID}"),
            &[("service", &public)]
        )
        .await
        .0,
        StatusCode::OK
    );
    assert_error(
        call(
            &app,
            Method::POST,
            &format!("/subscription?uuid={UUID}"),
            &[("service", &public)],
        )
        .await,
        409,
        4,
        "Already subscribed to that service",
    );
    assert_error(
        call(
            &app,
            Method::GET,
            &format!("/service?service={unknown_public}"),
            &[],
        )
        .await,
        404,
        6,
        "Service not found",
    );
    assert_error(
        call(
            &app,
            Method::POST,
            "/message",
            &[("secret", unknown_secret), ("message", "x")],
        )
        .await,
        404,
        6,
        "Service not found",
    );
    assert_error(
        call(&app, Method::POST, "/message", &[("message", "x")]).await,
        400,
        7,
        "Missing argument secret",
    );
    assert_error(
        call(&app, Method::POST, "/message", &[("secret", &secret)]).await,
        400,
        7,
        "Missing argument message",
    );
    assert_error(
        call(&app, Method::POST, "/service", &[("name", "   ")]).await,
        400,
        7,
        "Missing argument name",
    );
    assert_error(
        call(&app, Method::GET, "/subscription", &[]).await,
        400,
        7,
        "Missing argument uuid",
    );
    assert_error(
        call(&app, Method::PATCH, "/service", &[("secret", &secret)]).await,
        400,
        10,
        "No changes were made",
    );
    assert_error(
        call(
            &app,
            Method::DELETE,
            "/subscription",
            &[
                ("uuid", "aaaaaaaa-1111-4222-8333-444455556666"),
                ("service", &public),
            ],
        )
        .await,
        409,
        11,
        "Not subscribed to that service",
    );
}

#[actix_web::test]
async fn validation_checks_uuid_before_service_before_secret() {
    let app = spawn_app().await;
    assert_error(
        call(
            &app,
            Method::POST,
            "/subscription",
            &[("uuid", "bad"), ("service", "bad")],
        )
        .await,
        400,
        1,
        "Invalid client uuid",
    );
    assert_error(
        call(
            &app,
            Method::POST,
            "/subscription",
            &[("uuid", UUID), ("service", "bad")],
        )
        .await,
        400,
        2,
        "Invalid service",
    );
}

#[actix_web::test]
async fn content_fields_in_the_query_string_are_invisible() {
    let app = spawn_app().await;
    let (secret, _) = create(&app).await;
    assert_error(
        call(
            &app,
            Method::POST,
            "/message?message=hello",
            &[("secret", &secret)],
        )
        .await,
        400,
        7,
        "Missing argument message",
    );
}

#[actix_web::test]
async fn identity_in_the_body_wins_over_the_query() {
    let app = spawn_app().await;
    let (secret, _) = create(&app).await;
    let (status, _, body) = call(
        &app,
        Method::GET,
        "/service?secret=bad",
        &[("secret", &secret)],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[actix_web::test]
async fn level_reads_the_first_character_and_title_is_cut_to_255() {
    let app = spawn_app().await;
    let (secret, public) = create(&app).await;
    call(
        &app,
        Method::POST,
        &format!("/subscription?uuid={UUID}"),
        &[("service", &public)],
    )
    .await;
    let long_title = format!("  {}  ", "t".repeat(300));
    for (level, text) in [
        ("10", "ten"),
        ("9", "nine"),
        ("42", "forty-two"),
        ("", "empty"),
    ] {
        let (status, content_type, body) = call(
            &app,
            Method::POST,
            "/message",
            &[
                ("secret", &secret),
                ("message", text),
                ("level", level),
                ("title", &long_title),
            ],
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, serde_json::json!({"status": "ok"}));
        assert!(content_type.starts_with("text/html"));
    }
    let (_, content_type, body) =
        call(&app, Method::GET, &format!("/message?uuid={UUID}"), &[]).await;
    assert!(content_type.starts_with("application/json"));
    let levels: Vec<(String, i64, usize)> = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["message"].as_str().unwrap().to_owned(),
                m["level"].as_i64().unwrap(),
                m["title"].as_str().unwrap().len(),
            )
        })
        .collect();
    assert_eq!(
        levels,
        [
            ("ten".to_owned(), 1, 255),
            ("nine".to_owned(), 3, 255),
            ("forty-two".to_owned(), 4, 255),
            ("empty".to_owned(), 3, 255)
        ]
    );
}

#[actix_web::test]
async fn json_request_bodies_are_ignored() {
    let app = spawn_app().await;
    let response = awc::Client::default()
        .post(app.url("/pushjet/service"))
        .send_json(&serde_json::json!({"name": "json"}))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[actix_web::test]
async fn bad_input_never_gets_a_500() {
    let app = spawn_app().await;
    let client = awc::Client::default();
    let invalid_utf8 = client
        .post(app.url("/pushjet/service"))
        .insert_header(("content-type", "application/x-www-form-urlencoded"))
        .send_body(&b"name=%FF%FE\xff"[..])
        .await
        .unwrap();
    assert!(
        invalid_utf8.status().is_client_error(),
        "{}",
        invalid_utf8.status()
    );
    let huge = client
        .post(app.url("/pushjet/message"))
        .insert_header(("content-type", "application/x-www-form-urlencoded"))
        .send_body(format!("message={}", "a".repeat(3 * 1024 * 1024)))
        .await
        .unwrap();
    assert_eq!(huge.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let wrong_method = client
        .put(app.url("/pushjet/service"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_method.status(), StatusCode::METHOD_NOT_ALLOWED);
    let unknown = client
        .get(app.url("/pushjet/nothing-here"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
}
