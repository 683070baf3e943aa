//! Endpoint tests: the whole scope behind `actix_web::test::init_service`, with a store in a
//! temporary directory. Each test proves one behaviour of the protocol.

use std::sync::Arc;

use actix_web::http::header::{ALLOW, CONTENT_TYPE, LOCATION};
use actix_web::test::{self, TestRequest};
use actix_web::{App, web::Bytes};
use serde_json::{Value, json};
use tempfile::TempDir;

use super::{Store, scope};
use crate::pushjet::SecretKey;

const DEVICE: &str = "01234567-89ab-cdef-0123-456789abcdef";
const OTHER_DEVICE: &str = "fedcba98-7654-3210-fedc-ba9876543210";
const UNKNOWN_SECRET: &str = "0123456789abcdef0123456789abcdef";
const UNKNOWN_PUBLIC: &str = "0123-456789-abcdef012345-67890-abcdef012";
const HTML: &str = "text/html; charset=utf-8";

/// A store in a temporary directory; every request runs through a fresh app sharing it.
struct Harness {
    dir: TempDir,
    store: Arc<Store>,
}

/// What came back.
struct Reply {
    status: u16,
    content_type: String,
    location: Option<String>,
    allow: Option<String>,
    body: Bytes,
}

impl Reply {
    fn text(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

fn keys(value: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = value
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

fn assert_error(reply: &Reply, status: u16, id: i64, message: &str) {
    assert_eq!(reply.status, status, "body: {}", reply.text());
    assert_eq!(reply.content_type, HTML);
    assert_eq!(
        reply.json(),
        json!({"error": {"id": id, "message": message}})
    );
}

fn assert_status_ok(reply: &Reply) {
    assert_eq!(reply.status, 200, "body: {}", reply.text());
    assert_eq!(reply.content_type, HTML);
    assert_eq!(reply.text(), r#"{"status": "ok"}"#);
}

impl Harness {
    fn new() -> Self {
        let dir = TempDir::new().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        Self { dir, store }
    }

    /// Drops the store and opens the same directory again, as a restarted process would.
    fn restart(self) -> Self {
        let Self { dir, store } = self;
        drop(store);
        let store = Arc::new(Store::open(dir.path()).unwrap());
        Self { dir, store }
    }

    async fn call(&self, request: TestRequest) -> Reply {
        let app = test::init_service(
            App::new().service(scope(self.store.clone(), super::ApiGuard::default())),
        )
        .await;
        let response = test::call_service(&app, request.to_request()).await;
        let header = |name| {
            response
                .headers()
                .get(name)
                .map(|value: &actix_web::http::header::HeaderValue| {
                    value.to_str().unwrap().to_owned()
                })
        };
        let content_type = header(CONTENT_TYPE).unwrap_or_default();
        let location = header(LOCATION);
        let allow = header(ALLOW);
        let status = response.status().as_u16();
        let body = test::read_body(response).await;
        Reply {
            status,
            content_type,
            location,
            allow,
            body,
        }
    }

    /// Creates a service; returns (secret, public).
    async fn create_service(&self, name: &str) -> (String, String) {
        let reply = self
            .call(
                TestRequest::post()
                    .uri("/pushjet/service")
                    .set_form([("name", name), ("icon", "http://example.com/i.png")]),
            )
            .await;
        assert_eq!(reply.status, 200, "body: {}", reply.text());
        let service = &reply.json()["service"];
        (
            service["secret"].as_str().unwrap().to_owned(),
            service["public"].as_str().unwrap().to_owned(),
        )
    }

    async fn subscribe(&self, device: &str, public: &str) -> Reply {
        self.call(
            TestRequest::post()
                .uri(&format!("/pushjet/subscription?uuid={device}"))
                .set_form([("service", public)]),
        )
        .await
    }

    async fn send(&self, secret: &str, fields: &[(&str, &str)]) -> Reply {
        self.call(
            TestRequest::post()
                .uri(&format!("/pushjet/message?secret={secret}"))
                .set_form(fields),
        )
        .await
    }

    async fn messages(&self, device: &str) -> Vec<Value> {
        let reply = self
            .call(TestRequest::get().uri(&format!("/pushjet/message?uuid={device}")))
            .await;
        assert_eq!(reply.status, 200, "body: {}", reply.text());
        reply.json()["messages"].as_array().unwrap().clone()
    }

    async fn subscriptions(&self, device: &str) -> Vec<Value> {
        let reply = self
            .call(TestRequest::get().uri(&format!("/pushjet/subscription?uuid={device}")))
            .await;
        assert_eq!(reply.status, 200, "body: {}", reply.text());
        reply.json()["subscriptions"].as_array().unwrap().clone()
    }

    /// A service with `DEVICE` subscribed; returns (secret, public).
    async fn subscribed_service(&self) -> (String, String) {
        let (secret, public) = self.create_service("Bridge test").await;
        assert_eq!(self.subscribe(DEVICE, &public).await.status, 200);
        (secret, public)
    }
}

fn now() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

// ---- success shapes ------------------------------------------------------------------------

#[actix_web::test]
async fn create_service_answers_the_owner_view_as_compact_sorted_json() {
    let harness = Harness::new();
    let reply = harness
        .call(TestRequest::post().uri("/pushjet/service").set_form([
            ("name", "  Bridge test \n"),
            ("icon", " http://i.example/x.png "),
        ]))
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.content_type, "application/json");
    assert!(reply.text().starts_with(r#"{"service":{"created":"#));
    let service = &reply.json()["service"];
    assert_eq!(
        keys(service),
        ["created", "icon", "name", "public", "secret"]
    );
    assert_eq!(service["name"], "Bridge test");
    assert_eq!(service["icon"], "http://i.example/x.png");
    let secret = SecretKey::parse(service["secret"].as_str().unwrap()).unwrap();
    assert_eq!(service["public"], secret.public_key().as_str());
    assert!((service["created"].as_i64().unwrap() - now()).abs() < 60);
}

#[actix_web::test]
async fn read_service_by_public_key_or_secret_never_shows_the_secret() {
    let harness = Harness::new();
    let (secret, public) = harness.create_service("Bridge test").await;
    for query in [format!("service={public}"), format!("secret={secret}")] {
        let reply = harness
            .call(TestRequest::get().uri(&format!("/pushjet/service?{query}")))
            .await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.content_type, "application/json");
        let service = &reply.json()["service"];
        assert_eq!(keys(service), ["created", "icon", "name", "public"]);
        assert_eq!(service["public"], public.as_str());
    }
}

#[actix_web::test]
async fn patch_service_answers_status_ok_and_stores_the_stripped_name() {
    let harness = Harness::new();
    let (secret, public) = harness.create_service("Old").await;
    let reply = harness
        .call(
            TestRequest::patch()
                .uri(&format!("/pushjet/service?secret={secret}"))
                .set_form([("name", " New ")]),
        )
        .await;
    assert_status_ok(&reply);
    let reply = harness
        .call(TestRequest::get().uri(&format!("/pushjet/service?service={public}")))
        .await;
    assert_eq!(reply.json()["service"]["name"], "New");
    assert_eq!(reply.json()["service"]["icon"], "http://example.com/i.png");
}

#[actix_web::test]
async fn patch_service_with_a_present_empty_icon_clears_it() {
    let harness = Harness::new();
    let (secret, public) = harness.create_service("Named").await;
    let reply = harness
        .call(
            TestRequest::patch()
                .uri(&format!("/pushjet/service?secret={secret}"))
                .set_form([("icon", "")]),
        )
        .await;
    assert_status_ok(&reply);
    let reply = harness
        .call(TestRequest::get().uri(&format!("/pushjet/service?service={public}")))
        .await;
    assert_eq!(reply.json()["service"]["icon"], "");
    assert_eq!(reply.json()["service"]["name"], "Named");
}

#[actix_web::test]
async fn patch_service_with_a_present_empty_name_blanks_it() {
    let harness = Harness::new();
    let (secret, public) = harness.create_service("Named").await;
    let reply = harness
        .call(
            TestRequest::patch()
                .uri("/pushjet/service")
                .set_form([("secret", secret.as_str()), ("name", "   ")]),
        )
        .await;
    assert_status_ok(&reply);
    let reply = harness
        .call(TestRequest::get().uri(&format!("/pushjet/service?service={public}")))
        .await;
    assert_eq!(reply.json()["service"]["name"], "");
}

#[actix_web::test]
async fn send_message_answers_status_ok_as_html() {
    let harness = Harness::new();
    let (secret, _) = harness.subscribed_service().await;
    let reply = harness.send(&secret, &[("message", "hello")]).await;
    assert_status_ok(&reply);
}

#[actix_web::test]
async fn fetched_messages_carry_every_field_and_the_public_service_view() {
    let harness = Harness::new();
    let (secret, public) = harness.subscribed_service().await;
    harness
        .send(
            &secret,
            &[
                ("message", "  build failed  "),
                ("title", " CI "),
                ("link", " http://ci.example/1 "),
                ("level", "5"),
            ],
        )
        .await;
    let reply = harness
        .call(TestRequest::get().uri(&format!("/pushjet/message?uuid={DEVICE}")))
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.content_type, "application/json");
    let messages = reply.json()["messages"].as_array().unwrap().clone();
    assert_eq!(messages.len(), 1);
    let message = &messages[0];
    assert_eq!(
        keys(message),
        ["level", "link", "message", "service", "timestamp", "title"]
    );
    assert_eq!(message["message"], "  build failed  ");
    assert_eq!(message["title"], "CI");
    assert_eq!(message["link"], "http://ci.example/1");
    assert_eq!(message["level"], 5);
    assert!((message["timestamp"].as_i64().unwrap() - now()).abs() < 60);
    assert_eq!(
        keys(&message["service"]),
        ["created", "icon", "name", "public"]
    );
    assert_eq!(message["service"]["public"], public.as_str());
}

#[actix_web::test]
async fn subscribe_answers_the_public_service_view() {
    let harness = Harness::new();
    let (_, public) = harness.create_service("Bridge test").await;
    let reply = harness.subscribe(DEVICE, &public).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.content_type, "application/json");
    let service = &reply.json()["service"];
    assert_eq!(keys(service), ["created", "icon", "name", "public"]);
    assert_eq!(service["public"], public.as_str());
}

#[actix_web::test]
async fn subscriptions_list_uuid_service_and_timestamps_in_subscription_order() {
    let harness = Harness::new();
    let (_, first) = harness.create_service("First").await;
    let (_, second) = harness.create_service("Second").await;
    harness.subscribe(DEVICE, &second).await;
    harness.subscribe(DEVICE, &first).await;
    let reply = harness
        .call(TestRequest::get().uri(&format!("/pushjet/subscription?uuid={DEVICE}")))
        .await;
    assert_eq!(reply.content_type, "application/json");
    let subscriptions = reply.json()["subscriptions"].as_array().unwrap().clone();
    assert_eq!(subscriptions.len(), 2);
    assert_eq!(
        keys(&subscriptions[0]),
        ["service", "timestamp", "timestamp_checked", "uuid"]
    );
    assert_eq!(subscriptions[0]["uuid"], DEVICE);
    assert_eq!(subscriptions[0]["service"]["public"], second.as_str());
    assert_eq!(subscriptions[1]["service"]["public"], first.as_str());
    assert!((subscriptions[0]["timestamp"].as_i64().unwrap() - now()).abs() < 60);
    assert!(subscriptions[0]["timestamp_checked"].is_i64());
}

#[actix_web::test]
async fn unsubscribe_with_a_form_body_on_delete_removes_the_subscription() {
    let harness = Harness::new();
    let (_, public) = harness.subscribed_service().await;
    let reply = harness
        .call(
            TestRequest::delete()
                .uri(&format!("/pushjet/subscription?uuid={DEVICE}"))
                .set_form([("service", public.as_str())]),
        )
        .await;
    assert_status_ok(&reply);
    assert!(harness.subscriptions(DEVICE).await.is_empty());
}

#[actix_web::test]
async fn unknown_devices_get_empty_lists() {
    let harness = Harness::new();
    assert!(harness.messages(OTHER_DEVICE).await.is_empty());
    assert!(harness.subscriptions(OTHER_DEVICE).await.is_empty());
    let reply = harness
        .call(TestRequest::delete().uri(&format!("/pushjet/message?uuid={OTHER_DEVICE}")))
        .await;
    assert_status_ok(&reply);
}

#[actix_web::test]
async fn root_redirects_to_the_pushjet_docs() {
    let harness = Harness::new();
    for path in ["/pushjet/", "/pushjet"] {
        let reply = harness.call(TestRequest::get().uri(path)).await;
        assert_eq!(reply.status, 302);
        assert_eq!(reply.location.as_deref(), Some("http://docs.pushjet.io"));
    }
}

#[actix_web::test]
async fn version_is_the_crate_version_as_text() {
    let harness = Harness::new();
    let reply = harness
        .call(TestRequest::get().uri("/pushjet/version"))
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.content_type, HTML);
    assert_eq!(reply.text(), env!("CARGO_PKG_VERSION"));
}

// ---- the error table -----------------------------------------------------------------------

#[actix_web::test]
async fn error_bodies_are_the_python_servers_bytes() {
    let harness = Harness::new();
    let reply = harness
        .call(TestRequest::get().uri("/pushjet/message?uuid=nope"))
        .await;
    assert_eq!(
        reply.text(),
        r#"{"error": {"message": "Invalid client uuid", "id": 1}}"#
    );
}

#[actix_web::test]
async fn malformed_uuid_is_id_1() {
    let harness = Harness::new();
    let reply = harness
        .call(TestRequest::get().uri("/pushjet/subscription?uuid=0123-not-a-uuid"))
        .await;
    assert_error(&reply, 400, 1, "Invalid client uuid");
}

#[actix_web::test]
async fn malformed_public_key_is_id_2() {
    let harness = Harness::new();
    let reply = harness.subscribe(DEVICE, "not-a-public-key").await;
    assert_error(&reply, 400, 2, "Invalid service");
}

#[actix_web::test]
async fn malformed_secret_is_id_3() {
    let harness = Harness::new();
    let reply = harness.send("tooshort", &[("message", "hi")]).await;
    assert_error(&reply, 400, 3, "Invalid secret");
}

#[actix_web::test]
async fn subscribing_twice_is_409_id_4() {
    let harness = Harness::new();
    let (_, public) = harness.subscribed_service().await;
    let reply = harness.subscribe(DEVICE, &public).await;
    assert_error(&reply, 409, 4, "Already subscribed to that service");
}

#[actix_web::test]
async fn well_formed_unknown_keys_are_404_id_6() {
    let harness = Harness::new();
    let by_secret = harness.send(UNKNOWN_SECRET, &[("message", "hi")]).await;
    assert_error(&by_secret, 404, 6, "Service not found");
    let by_public = harness.subscribe(DEVICE, UNKNOWN_PUBLIC).await;
    assert_error(&by_public, 404, 6, "Service not found");
}

#[actix_web::test]
async fn keys_are_case_sensitive() {
    let harness = Harness::new();
    let (secret, _) = harness.subscribed_service().await;
    let reply = harness
        .send(&secret.to_uppercase(), &[("message", "hi")])
        .await;
    assert_error(&reply, 404, 6, "Service not found");
}

#[actix_web::test]
async fn missing_arguments_are_id_7_naming_the_argument() {
    let harness = Harness::new();
    let (secret, _) = harness.create_service("Bridge test").await;
    let cases = [
        (TestRequest::get().uri("/pushjet/message"), "uuid"),
        (
            TestRequest::post().uri(&format!("/pushjet/subscription?uuid={DEVICE}")),
            "service",
        ),
        (TestRequest::post().uri("/pushjet/message"), "secret"),
        (
            TestRequest::post()
                .uri("/pushjet/message")
                .set_form([("secret", secret.as_str()), ("message", "")]),
            "message",
        ),
        (
            TestRequest::post()
                .uri("/pushjet/service")
                .set_form([("name", "  ")]),
            "name",
        ),
        (TestRequest::get().uri("/pushjet/service"), "service"),
    ];
    for (request, argument) in cases {
        let reply = harness.call(request).await;
        assert_error(&reply, 400, 7, &format!("Missing argument {argument}"));
    }
}

#[actix_web::test]
async fn patch_with_neither_name_nor_icon_is_id_10() {
    let harness = Harness::new();
    let (secret, _) = harness.create_service("Bridge test").await;
    let reply = harness
        .call(TestRequest::patch().uri(&format!("/pushjet/service?secret={secret}")))
        .await;
    assert_error(&reply, 400, 10, "No changes were made");
}

#[actix_web::test]
async fn unsubscribing_without_a_subscription_is_409_id_11() {
    let harness = Harness::new();
    let (_, public) = harness.create_service("Bridge test").await;
    let reply = harness
        .call(
            TestRequest::delete()
                .uri(&format!("/pushjet/subscription?uuid={DEVICE}"))
                .set_form([("service", public.as_str())]),
        )
        .await;
    assert_error(&reply, 409, 11, "Not subscribed to that service");
}

// ---- validation order ----------------------------------------------------------------------

#[actix_web::test]
async fn uuid_is_checked_before_service() {
    let harness = Harness::new();
    let malformed = harness.subscribe("bad", "also-bad").await;
    assert_error(&malformed, 400, 1, "Invalid client uuid");
    let missing = harness
        .call(
            TestRequest::post()
                .uri("/pushjet/subscription")
                .set_form([("service", "also-bad")]),
        )
        .await;
    assert_error(&missing, 400, 7, "Missing argument uuid");
}

#[actix_web::test]
async fn service_existence_is_checked_before_the_subscription() {
    let harness = Harness::new();
    let reply = harness
        .call(
            TestRequest::delete()
                .uri(&format!("/pushjet/subscription?uuid={DEVICE}"))
                .set_form([("service", UNKNOWN_PUBLIC)]),
        )
        .await;
    assert_error(&reply, 404, 6, "Service not found");
}

#[actix_web::test]
async fn unknown_secret_is_reported_before_a_missing_message() {
    let harness = Harness::new();
    let reply = harness.send(UNKNOWN_SECRET, &[]).await;
    assert_error(&reply, 404, 6, "Service not found");
}

#[actix_web::test]
async fn unknown_secret_is_reported_before_no_changes() {
    let harness = Harness::new();
    let reply = harness
        .call(TestRequest::patch().uri(&format!("/pushjet/service?secret={UNKNOWN_SECRET}")))
        .await;
    assert_error(&reply, 404, 6, "Service not found");
}

#[actix_web::test]
async fn read_service_uses_the_public_key_when_both_keys_are_given() {
    let harness = Harness::new();
    let (secret, public) = harness.create_service("Bridge test").await;
    let ok = harness
        .call(TestRequest::get().uri(&format!("/pushjet/service?service={public}&secret=bad")))
        .await;
    assert_eq!(ok.status, 200);
    let malformed = harness
        .call(TestRequest::get().uri(&format!("/pushjet/service?service=bad&secret={secret}")))
        .await;
    assert_error(&malformed, 400, 2, "Invalid service");
}

// ---- where parameters are read -------------------------------------------------------------

#[actix_web::test]
async fn identity_in_the_form_body_wins_over_the_query_string() {
    let harness = Harness::new();
    let (secret, _) = harness.subscribed_service().await;
    let reply = harness
        .call(
            TestRequest::post()
                .uri(&format!("/pushjet/message?secret={UNKNOWN_SECRET}"))
                .set_form([("secret", secret.as_str()), ("message", "from body")]),
        )
        .await;
    assert_status_ok(&reply);
    assert_eq!(harness.messages(DEVICE).await.len(), 1);
}

#[actix_web::test]
async fn an_empty_identity_in_the_form_falls_back_to_the_query_string() {
    let harness = Harness::new();
    let (_, public) = harness.create_service("Bridge test").await;
    harness.subscribe(DEVICE, &public).await;
    let reply = harness
        .call(
            TestRequest::get()
                .uri(&format!("/pushjet/subscription?uuid={DEVICE}"))
                .set_form([("uuid", "")]),
        )
        .await;
    assert_eq!(reply.json()["subscriptions"].as_array().unwrap().len(), 1);
}

#[actix_web::test]
async fn a_uuid_in_a_get_form_body_wins_over_the_query_string() {
    let harness = Harness::new();
    harness.subscribed_service().await;
    let reply = harness
        .call(
            TestRequest::get()
                .uri(&format!("/pushjet/subscription?uuid={DEVICE}"))
                .set_form([("uuid", OTHER_DEVICE)]),
        )
        .await;
    assert_eq!(reply.json(), json!({"subscriptions": []}));
}

#[actix_web::test]
async fn content_fields_in_the_query_string_are_invisible() {
    let harness = Harness::new();
    let (secret, _) = harness.subscribed_service().await;
    let reply = harness
        .call(TestRequest::post().uri(&format!("/pushjet/message?secret={secret}&message=hi")))
        .await;
    assert_error(&reply, 400, 7, "Missing argument message");
}

#[actix_web::test]
async fn json_request_bodies_are_ignored() {
    let harness = Harness::new();
    let reply = harness
        .call(
            TestRequest::post()
                .uri("/pushjet/service")
                .insert_header((CONTENT_TYPE, "application/json"))
                .set_payload(r#"{"name": "Bridge test"}"#),
        )
        .await;
    assert_error(&reply, 400, 7, "Missing argument name");
}

#[actix_web::test]
async fn a_form_content_type_with_a_charset_parameter_is_still_a_form() {
    let harness = Harness::new();
    let reply = harness
        .call(
            TestRequest::post()
                .uri("/pushjet/service")
                .insert_header((
                    CONTENT_TYPE,
                    "Application/X-WWW-Form-Urlencoded; charset=UTF-8",
                ))
                .set_payload("name=Bridge+test%21"),
        )
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["service"]["name"], "Bridge test!");
}

// ---- message content -----------------------------------------------------------------------

#[actix_web::test]
async fn level_reads_only_its_first_character() {
    let harness = Harness::new();
    let (secret, _) = harness.subscribed_service().await;
    for level in ["10", "9", "", "4x"] {
        harness
            .send(&secret, &[("message", "m"), ("level", level)])
            .await;
    }
    harness.send(&secret, &[("message", "no level")]).await;
    let levels: Vec<i64> = harness
        .messages(DEVICE)
        .await
        .iter()
        .map(|message| message["level"].as_i64().unwrap())
        .collect();
    assert_eq!(levels, [1, 3, 3, 4, 3]);
}

#[actix_web::test]
async fn title_is_stripped_and_truncated_to_255_characters() {
    let harness = Harness::new();
    let (secret, _) = harness.subscribed_service().await;
    let title = format!("  {}  ", "é".repeat(300));
    harness
        .send(&secret, &[("message", "m"), ("title", &title)])
        .await;
    let messages = harness.messages(DEVICE).await;
    assert_eq!(messages[0]["title"], "é".repeat(255));
}

#[actix_web::test]
async fn sending_to_a_service_without_subscribers_is_ok_and_skips_size_checks() {
    let harness = Harness::new();
    let (secret, public) = harness.create_service("Nobody listens").await;
    let reply = harness
        .send(&secret, &[("message", &"a".repeat(70_000))])
        .await;
    assert_status_ok(&reply);
    harness.subscribe(DEVICE, &public).await;
    assert!(harness.messages(DEVICE).await.is_empty());
}

#[actix_web::test]
async fn a_message_over_65535_bytes_with_subscribers_is_400_id_7() {
    let harness = Harness::new();
    let (secret, _) = harness.subscribed_service().await;
    let reply = harness
        .send(&secret, &[("message", &"a".repeat(70_000))])
        .await;
    assert_error(
        &reply,
        400,
        7,
        "Argument message is 70000 bytes long; at most 65535 bytes are allowed",
    );
    assert!(harness.messages(DEVICE).await.is_empty());
}

#[actix_web::test]
async fn a_message_of_exactly_65535_bytes_is_stored() {
    let harness = Harness::new();
    let (secret, _) = harness.subscribed_service().await;
    let reply = harness
        .send(&secret, &[("message", &"a".repeat(65_535))])
        .await;
    assert_status_ok(&reply);
    assert_eq!(harness.messages(DEVICE).await.len(), 1);
}

#[actix_web::test]
async fn a_link_over_65535_bytes_with_subscribers_is_400_id_7() {
    let harness = Harness::new();
    let (secret, _) = harness.subscribed_service().await;
    let reply = harness
        .send(&secret, &[("message", "m"), ("link", &"l".repeat(65_536))])
        .await;
    assert_error(
        &reply,
        400,
        7,
        "Argument link is 65536 bytes long; at most 65535 bytes are allowed",
    );
}

#[actix_web::test]
async fn a_service_name_over_255_characters_is_400_id_7() {
    let harness = Harness::new();
    let long = "n".repeat(300);
    let reply = harness
        .call(
            TestRequest::post()
                .uri("/pushjet/service")
                .set_form([("name", long.as_str())]),
        )
        .await;
    assert_error(
        &reply,
        400,
        7,
        "Argument name is 300 characters long; at most 255 characters are allowed",
    );
}

#[actix_web::test]
async fn four_byte_characters_survive_the_round_trip() {
    let harness = Harness::new();
    let (secret, _) = harness.subscribed_service().await;
    harness
        .send(&secret, &[("message", "deploy 🚀 done"), ("title", "🔥")])
        .await;
    let messages = harness.messages(DEVICE).await;
    assert_eq!(messages[0]["message"], "deploy 🚀 done");
    assert_eq!(messages[0]["title"], "🔥");
}

// ---- delivery ------------------------------------------------------------------------------

#[actix_web::test]
async fn reading_messages_marks_them_read() {
    let harness = Harness::new();
    let (secret, _) = harness.subscribed_service().await;
    harness.send(&secret, &[("message", "once")]).await;
    assert_eq!(harness.messages(DEVICE).await.len(), 1);
    assert!(harness.messages(DEVICE).await.is_empty());
}

#[actix_web::test]
async fn identical_sends_make_two_messages() {
    let harness = Harness::new();
    let (secret, _) = harness.subscribed_service().await;
    harness.send(&secret, &[("message", "same")]).await;
    harness.send(&secret, &[("message", "same")]).await;
    assert_eq!(harness.messages(DEVICE).await.len(), 2);
}

#[actix_web::test]
async fn a_new_subscription_never_sees_older_messages() {
    let harness = Harness::new();
    let (secret, public) = harness.subscribed_service().await;
    harness.send(&secret, &[("message", "before")]).await;
    harness.subscribe(OTHER_DEVICE, &public).await;
    harness.send(&secret, &[("message", "after")]).await;
    let late: Vec<Value> = harness.messages(OTHER_DEVICE).await;
    assert_eq!(late.len(), 1);
    assert_eq!(late[0]["message"], "after");
    let early = harness.messages(DEVICE).await;
    assert_eq!(early.len(), 2);
    assert_eq!(early[0]["message"], "before");
    assert_eq!(early[1]["message"], "after");
}

#[actix_web::test]
async fn messages_come_grouped_by_subscription() {
    let harness = Harness::new();
    let (first_secret, first) = harness.create_service("First").await;
    let (second_secret, second) = harness.create_service("Second").await;
    harness.subscribe(DEVICE, &first).await;
    harness.subscribe(DEVICE, &second).await;
    harness.send(&second_secret, &[("message", "s1")]).await;
    harness.send(&first_secret, &[("message", "f1")]).await;
    harness.send(&second_secret, &[("message", "s2")]).await;
    let texts: Vec<String> = harness
        .messages(DEVICE)
        .await
        .iter()
        .map(|message| message["message"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(texts, ["f1", "s1", "s2"]);
}

#[actix_web::test]
async fn delete_message_marks_everything_read() {
    let harness = Harness::new();
    let (secret, _) = harness.subscribed_service().await;
    harness.send(&secret, &[("message", "unread")]).await;
    let reply = harness
        .call(TestRequest::delete().uri(&format!("/pushjet/message?uuid={DEVICE}")))
        .await;
    assert_status_ok(&reply);
    assert!(harness.messages(DEVICE).await.is_empty());
}

#[actix_web::test]
async fn one_device_reading_does_not_mark_another_devices_messages_read() {
    let harness = Harness::new();
    let (secret, public) = harness.subscribed_service().await;
    harness.subscribe(OTHER_DEVICE, &public).await;
    harness.send(&secret, &[("message", "for both")]).await;
    assert_eq!(harness.messages(DEVICE).await.len(), 1);
    assert_eq!(harness.messages(OTHER_DEVICE).await.len(), 1);
}

#[actix_web::test]
async fn deleting_a_service_removes_it_everywhere() {
    let harness = Harness::new();
    let (secret, public) = harness.subscribed_service().await;
    harness.send(&secret, &[("message", "unread")]).await;
    let reply = harness
        .call(TestRequest::delete().uri(&format!("/pushjet/service?secret={secret}")))
        .await;
    assert_status_ok(&reply);

    let by_secret = format!("/pushjet/service?secret={secret}");
    for request in [
        TestRequest::get().uri(&by_secret),
        TestRequest::patch()
            .uri(&by_secret)
            .set_form([("name", "x")]),
        TestRequest::delete().uri(&by_secret),
        TestRequest::get().uri(&format!("/pushjet/service?service={public}")),
    ] {
        assert_error(&harness.call(request).await, 404, 6, "Service not found");
    }
    let send = harness.send(&secret, &[("message", "m")]).await;
    assert_error(&send, 404, 6, "Service not found");
    let subscribe = harness.subscribe(OTHER_DEVICE, &public).await;
    assert_error(&subscribe, 404, 6, "Service not found");
    assert!(harness.subscriptions(DEVICE).await.is_empty());
    assert!(harness.messages(DEVICE).await.is_empty());
}

#[actix_web::test]
async fn services_subscriptions_and_unread_messages_survive_a_restart() {
    let harness = Harness::new();
    let (secret, public) = harness.subscribed_service().await;
    harness.send(&secret, &[("message", "kept")]).await;

    let harness = harness.restart();
    let reply = harness
        .call(TestRequest::get().uri(&format!("/pushjet/service?secret={secret}")))
        .await;
    assert_eq!(reply.json()["service"]["public"], public.as_str());
    assert_eq!(harness.subscriptions(DEVICE).await.len(), 1);
    let messages = harness.messages(DEVICE).await;
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["message"], "kept");
}

// ---- bad input never makes a 500 ------------------------------------------------------------

#[actix_web::test]
async fn a_form_body_that_is_not_utf8_is_400_id_7() {
    let harness = Harness::new();
    for body in [&b"name=%FF%FE"[..], &b"name=\xff"[..]] {
        let reply = harness
            .call(
                TestRequest::post()
                    .uri("/pushjet/service")
                    .insert_header((CONTENT_TYPE, "application/x-www-form-urlencoded"))
                    .set_payload(body.to_vec()),
            )
            .await;
        assert_error(
            &reply,
            400,
            7,
            "Malformed request: the form body is not UTF-8 text",
        );
    }
}

#[actix_web::test]
async fn a_query_string_that_is_not_utf8_is_400_id_7() {
    let harness = Harness::new();
    let reply = harness
        .call(TestRequest::get().uri("/pushjet/message?uuid=%C0%AF"))
        .await;
    assert_error(
        &reply,
        400,
        7,
        "Malformed request: the query string is not UTF-8 text",
    );
}

#[actix_web::test]
async fn a_body_over_one_mebibyte_is_413_id_7() {
    let harness = Harness::new();
    let reply = harness
        .call(
            TestRequest::post()
                .uri("/pushjet/service")
                .insert_header((CONTENT_TYPE, "application/x-www-form-urlencoded"))
                .set_payload(vec![b'a'; super::BODY_LIMIT_BYTES + 1]),
        )
        .await;
    assert_error(
        &reply,
        413,
        7,
        "Request body too large: at most 1048576 bytes are accepted",
    );
}

#[actix_web::test]
async fn a_wrong_method_on_a_known_path_is_405_html_with_allow() {
    let harness = Harness::new();
    let reply = harness
        .call(TestRequest::put().uri("/pushjet/service"))
        .await;
    assert_eq!(reply.status, 405);
    assert_eq!(reply.content_type, HTML);
    assert_eq!(reply.allow.as_deref(), Some("DELETE, GET, PATCH, POST"));
    assert!(reply.text().contains("Method Not Allowed"));
    let reply = harness
        .call(TestRequest::patch().uri("/pushjet/message"))
        .await;
    assert_eq!(reply.status, 405);
}

#[actix_web::test]
async fn an_unknown_path_is_404_html() {
    let harness = Harness::new();
    let reply = harness
        .call(TestRequest::get().uri("/pushjet/listen"))
        .await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.content_type, HTML);
    assert!(reply.text().contains("Not Found"));
}

#[actix_web::test]
async fn gcm_is_404_as_on_a_server_without_a_google_key() {
    let harness = Harness::new();
    for request in [
        TestRequest::get(),
        TestRequest::post().set_form([("uuid", DEVICE), ("regid", "r")]),
        TestRequest::delete(),
    ] {
        let reply = harness.call(request.uri("/pushjet/gcm")).await;
        assert_eq!(reply.status, 404);
        assert_eq!(reply.content_type, HTML);
    }
}

// ---- multipart/form-data -------------------------------------------------------------------

const BOUNDARY: &str = "pushjet-test-boundary";

/// A `multipart/form-data` request; each part is (name, file name, value).
fn multipart(uri: &str, parts: &[(&str, Option<&str>, &[u8])]) -> TestRequest {
    let mut body = Vec::new();
    for (name, file_name, value) in parts {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        let file = file_name.map_or(String::new(), |file| format!("; filename=\"{file}\""));
        body.extend_from_slice(
            format!("Content-Disposition: form-data; name=\"{name}\"{file}\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(value);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    TestRequest::post()
        .uri(uri)
        .insert_header((
            CONTENT_TYPE,
            format!("multipart/form-data; boundary={BOUNDARY}"),
        ))
        .set_payload(body)
}

#[actix_web::test]
async fn multipart_form_fields_count_like_urlencoded_ones() {
    let harness = Harness::new();
    let (secret, _) = harness.subscribed_service().await;
    let reply = harness
        .call(multipart(
            "/pushjet/message",
            &[
                ("secret", None, secret.as_bytes()),
                ("message", None, "multi 🚀".as_bytes()),
                ("title", None, b" T "),
                ("level", None, b"2"),
            ],
        ))
        .await;
    assert_status_ok(&reply);
    let messages = harness.messages(DEVICE).await;
    assert_eq!(messages[0]["message"], "multi 🚀");
    assert_eq!(messages[0]["title"], "T");
    assert_eq!(messages[0]["level"], 2);
}

#[actix_web::test]
async fn multipart_parts_with_a_file_name_are_files_not_fields() {
    let harness = Harness::new();
    let reply = harness
        .call(multipart(
            "/pushjet/service",
            &[("name", Some("name.txt"), b"Bridge test")],
        ))
        .await;
    assert_error(&reply, 400, 7, "Missing argument name");
}

#[actix_web::test]
async fn a_large_multipart_message_is_read_whole() {
    let harness = Harness::new();
    let (secret, _) = harness.subscribed_service().await;
    let text = "a".repeat(200_000);
    let reply = harness
        .call(multipart(
            "/pushjet/message",
            &[
                ("secret", None, secret.as_bytes()),
                ("message", None, text.as_bytes()),
            ],
        ))
        .await;
    assert_error(
        &reply,
        400,
        7,
        "Argument message is 200000 bytes long; at most 65535 bytes are allowed",
    );
}

#[actix_web::test]
async fn a_malformed_multipart_body_is_400_id_7() {
    let harness = Harness::new();
    for content_type in [
        "multipart/form-data",
        "multipart/form-data; boundary=pushjet-test-boundary",
    ] {
        let reply = harness
            .call(
                TestRequest::post()
                    .uri("/pushjet/service")
                    .insert_header((CONTENT_TYPE, content_type))
                    .set_payload("this is not multipart"),
            )
            .await;
        assert_error(
            &reply,
            400,
            7,
            "Malformed request: the multipart form body is malformed",
        );
    }
}

#[actix_web::test]
async fn a_multipart_value_that_is_not_utf8_is_400_id_7() {
    let harness = Harness::new();
    let reply = harness
        .call(multipart(
            "/pushjet/service",
            &[("name", None, b"\xff\xfe")],
        ))
        .await;
    assert_error(
        &reply,
        400,
        7,
        "Malformed request: the multipart form body is not UTF-8 text",
    );
}
