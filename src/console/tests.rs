//! The console's handlers on an app of their own: off without a token, sign-in and its cookie,
//! CSRF, the preview through the real render path, the assets' caching.

use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::ServiceResponse;
use actix_web::http::{StatusCode, header};
use actix_web::test::{self, TestRequest};
use actix_web::{App, web};
use arc_swap::ArcSwap;
use serde_json::{Value, json};
use tempfile::TempDir;

use super::Console;
use crate::config::Settings;
use crate::delivery::Outbox;
use crate::history::History;
use crate::pushjet::ApiUrl;
use crate::reload::build_bridge;

const TOKEN: &str = "console-unit-test-admin-token";
const WEBHOOK_SECRET: &str = "console-unit-webhook-secret";

fn settings(dir: &TempDir, extra: &[(&str, &str)]) -> Settings {
    let mut vars = vec![
        (
            "PUSHJET_BRIDGE_DATA_DIR".to_owned(),
            dir.path().display().to_string(),
        ),
        ("PUSHJET_BRIDGE_ROUTES".to_owned(), "gh".to_owned()),
        (
            "PUSHJET_BRIDGE_ROUTE_GH_SECRET".to_owned(),
            "0123456789abcdef0123456789abcdef".to_owned(),
        ),
        (
            "PUSHJET_BRIDGE_ROUTE_GH_SOURCE".to_owned(),
            "github".to_owned(),
        ),
        (
            "PUSHJET_BRIDGE_ROUTE_GH_WEBHOOK_SECRET".to_owned(),
            WEBHOOK_SECRET.to_owned(),
        ),
    ];
    vars.extend(
        extra
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned())),
    );
    Settings::from_vars(vars).expect("valid settings")
}

macro_rules! app {
    ($dir:expr, $extra:expr) => {
        app!($dir, $extra, History::off())
    };
    ($dir:expr, $extra:expr, $history:expr) => {{
        let history: History = $history;
        let settings = settings($dir, $extra);
        let bridge = Arc::new(ArcSwap::from_pointee(
            build_bridge(&settings, None).expect("the bridge builds"),
        ));
        let outbox = Outbox::open($dir.path(), &settings.delivery).expect("the outbox opens");
        let console = Console::new(
            &settings,
            ApiUrl::parse("http://127.0.0.1:9/pushjet/").expect("a URL"),
            None,
            Arc::new(history.clone()),
        );
        test::init_service(
            App::new()
                .app_data(web::Data::new(console))
                .app_data(web::Data::from(bridge))
                .app_data(web::Data::new(outbox))
                .app_data(web::Data::new(history))
                .configure(super::configure),
        )
        .await
    }};
}

fn peer(address: &str) -> SocketAddr {
    SocketAddr::new(address.parse().expect("an address"), 40_000)
}

async fn text(response: ServiceResponse<impl MessageBody>) -> String {
    String::from_utf8_lossy(&test::read_body(response).await).into_owned()
}

/// Signs in from `from` with `headers`; the `Set-Cookie` header of the answer.
macro_rules! sign_in {
    ($app:expr, $from:expr, $headers:expr) => {{
        let headers: &[(&str, &str)] = $headers;
        let mut request = TestRequest::post()
            .uri("/console/sign-in")
            .peer_addr(peer($from))
            .set_form([("token", TOKEN)]);
        for header in headers {
            request = request.insert_header(*header);
        }
        let response = test::call_service($app, request.to_request()).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        response
            .headers()
            .get(header::SET_COOKIE)
            .expect("a cookie")
            .to_str()
            .expect("text")
            .to_owned()
    }};
}

/// The `name=value` part of a `Set-Cookie` header.
fn cookie_pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap_or_default().to_owned()
}

/// The CSRF token of the session, read from a page as the script reads it.
macro_rules! csrf {
    ($app:expr, $cookie:expr) => {{
        let request = TestRequest::get()
            .uri("/console/playground")
            .insert_header((header::COOKIE, $cookie.to_owned()))
            .to_request();
        let page = text(test::call_service($app, request).await).await;
        let start = page
            .find("name=\"csrf-token\" content=\"")
            .expect("the meta tag")
            + 27;
        page[start..start + 64].to_owned()
    }};
}

#[actix_web::test]
async fn without_an_admin_token_the_console_is_not_found() {
    let dir = TempDir::new().unwrap();
    let app = app!(&dir, &[]);
    for uri in ["/console/sign-in", "/console/", "/console/playground"] {
        let response = test::call_service(&app, TestRequest::get().uri(uri).to_request()).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{uri}");
        assert!(text(response).await.contains("PUSHJET_BRIDGE_ADMIN_TOKEN"));
    }
}

#[actix_web::test]
async fn a_page_without_a_session_sends_to_the_sign_in_form() {
    let dir = TempDir::new().unwrap();
    let app = app!(&dir, &[("PUSHJET_BRIDGE_ADMIN_TOKEN", TOKEN)]);
    let response = test::call_service(&app, TestRequest::get().uri("/console/").to_request()).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        response.headers().get(header::LOCATION).unwrap(),
        "/console/sign-in"
    );
    let bare = test::call_service(&app, TestRequest::get().uri("/console").to_request()).await;
    assert_eq!(bare.status(), StatusCode::SEE_OTHER);
    assert_eq!(bare.headers().get(header::LOCATION).unwrap(), "/console/");
    let form = test::call_service(
        &app,
        TestRequest::get().uri("/console/sign-in").to_request(),
    )
    .await;
    assert_eq!(form.status(), StatusCode::OK);
    let page = text(form).await;
    assert!(
        page.contains("<label for=\"token\">Admin token</label>"),
        "{page}"
    );
    assert!(page.contains(">Sign in</button>"), "{page}");
}

#[actix_web::test]
async fn the_cookie_is_secure_only_when_a_trusted_proxy_says_https() {
    let dir = TempDir::new().unwrap();
    let app = app!(
        &dir,
        &[
            ("PUSHJET_BRIDGE_ADMIN_TOKEN", TOKEN),
            ("PUSHJET_BRIDGE_TRUSTED_PROXIES", "10.0.0.2"),
            ("PUSHJET_BRIDGE_CONSOLE_SESSION", "2h"),
        ]
    );
    let https = [("X-Forwarded-Proto", "https")];
    let direct = sign_in!(&app, "192.0.2.7", &https);
    assert!(direct.contains("HttpOnly"), "{direct}");
    assert!(direct.contains("SameSite=Strict"), "{direct}");
    assert!(direct.contains("Max-Age=7200"), "{direct}");
    assert!(direct.contains("Path=/console"), "{direct}");
    assert!(!direct.contains("Secure"), "{direct}");
    let proxied = sign_in!(&app, "10.0.0.2", &https);
    assert!(proxied.contains("Secure"), "{proxied}");
    assert!(!direct.contains(TOKEN) && !proxied.contains(TOKEN));
}

#[actix_web::test]
async fn the_preview_renders_an_edited_template_and_places_its_error_on_its_line() {
    let dir = TempDir::new().unwrap();
    let app = app!(&dir, &[("PUSHJET_BRIDGE_ADMIN_TOKEN", TOKEN)]);
    let cookie = cookie_pair(&sign_in!(&app, "192.0.2.7", &[]));
    let csrf = csrf!(&app, &cookie);
    let payload = String::from_utf8_lossy(crate::examples::for_event(
        crate::sources::SourceKind::Github,
        "push",
    ))
    .into_owned();
    let preview = |template: Option<&str>, token: &str| {
        TestRequest::post()
            .uri("/console/api/preview")
            .insert_header((header::COOKIE, cookie.clone()))
            .insert_header(("X-CSRF-Token", token.to_owned()))
            .set_json(json!({
                "route": "gh", "event": "push", "payload": payload, "template": template,
            }))
            .to_request()
    };

    let response = test::call_service(&app, preview(None, &csrf)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = test::read_body_json(response).await;
    assert_eq!(body["template"], "github/push");
    assert!(
        body["toml"]
            .as_str()
            .unwrap()
            .contains("repository.full_name")
    );
    assert!(
        body["save_as"]
            .as_str()
            .unwrap()
            .ends_with("/github/push.toml")
    );
    assert!(!body.to_string().contains(WEBHOOK_SECRET));

    let edited = "title = 'Pushed to {{repository.name}}'\nmessage = 'ok'\n";
    let body: Value =
        test::read_body_json(test::call_service(&app, preview(Some(edited), &csrf)).await).await;
    assert_eq!(body["notifications"][0]["title"], "Pushed to Hello-World");

    let broken = "# c\nmessage = 'ok'\ntitle = '{{#if repository}}'\n";
    let response = test::call_service(&app, preview(Some(broken), &csrf)).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = test::read_body_json(response).await;
    assert_eq!(body["line"], 3, "{body}");

    let response = test::call_service(&app, preview(None, &"0".repeat(64))).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let unsigned = TestRequest::post()
        .uri("/console/api/preview")
        .insert_header(("X-CSRF-Token", csrf.clone()))
        .set_json(json!({ "payload": "{}" }))
        .to_request();
    let response = test::call_service(&app, unsigned).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[actix_web::test]
async fn assets_are_kept_a_year_and_revalidate_with_their_etag() {
    let dir = TempDir::new().unwrap();
    let app = app!(&dir, &[("PUSHJET_BRIDGE_ADMIN_TOKEN", TOKEN)]);
    let form = test::call_service(
        &app,
        TestRequest::get().uri("/console/sign-in").to_request(),
    )
    .await;
    let page = text(form).await;
    let start = page
        .find("/console/assets/console.")
        .expect("the stylesheet's link");
    let end = start + page[start..].find('"').expect("the link's end");
    let address = &page[start..end];
    let response = test::call_service(&app, TestRequest::get().uri(address).to_request()).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response
            .headers()
            .get(header::CACHE_CONTROL)
            .unwrap()
            .to_str()
            .unwrap()
            .contains("immutable")
    );
    let etag = response.headers().get(header::ETAG).unwrap().clone();
    let again = TestRequest::get()
        .uri(address)
        .insert_header((header::IF_NONE_MATCH, etag))
        .to_request();
    let response = test::call_service(&app, again).await;
    assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
}

#[actix_web::test]
async fn with_the_history_off_the_pages_say_so_instead_of_showing_numbers() {
    let dir = TempDir::new().unwrap();
    let app = app!(&dir, &[("PUSHJET_BRIDGE_ADMIN_TOKEN", TOKEN)]);
    let cookie = cookie_pair(&sign_in!(&app, "192.0.2.7", &[]));
    for uri in ["/console/", "/console/history"] {
        let request = TestRequest::get()
            .uri(uri)
            .insert_header((header::COOKIE, cookie.clone()))
            .to_request();
        let response = test::call_service(&app, request).await;
        assert_eq!(response.status(), StatusCode::OK, "{uri}");
        let page = text(response).await;
        assert!(page.contains("history is off"), "{uri}: {page}");
        assert!(!page.contains("Last 24 hours"), "{uri}: {page}");
    }
    let request = TestRequest::get()
        .uri("/console/api/history/stream")
        .to_request();
    let response = test::call_service(&app, request).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

/// A record of route `gh` whose one notification is titled `title`.
fn gh_record(history: &History, title: &str) -> crate::history::Record {
    use crate::history::record::{Rendered, Verdict, Via};
    use crate::pushjet::{MessageText, NewMessage, Title};
    let at = crate::history::now_millis();
    crate::history::Record {
        id: history.next_id(at),
        at,
        route: "gh".to_owned(),
        via: Via::Hooks,
        source: "github".to_owned(),
        event: "push".to_owned(),
        action: None,
        delivery_id: None,
        request_id: "req".to_owned(),
        status: 202,
        verdict: Verdict::Sent,
        reason: None,
        notifications: vec![Rendered {
            id: None,
            template: "github/push".to_owned(),
            notification: Some(NewMessage {
                title: Title::new(title),
                ..NewMessage::text(MessageText::new("the text").expect("a message"))
            }),
            template_error: None,
            delivery: None,
            noise: None,
        }],
        request: None,
        again_of: None,
    }
}

#[actix_web::test]
async fn the_history_pages_filter_search_page_and_count() {
    let dir = TempDir::new().unwrap();
    let history = History::open(
        &crate::config::HistorySettings::default(),
        dir.path(),
        None,
        crate::history::HistoryMetrics::default(),
    )
    .await
    .expect("the history opens");
    let mut ids = Vec::new();
    for title in ["alpha one", "beta two", "gamma three"] {
        let record = gh_record(&history, title);
        ids.push(record.id);
        history.record(record);
    }
    history.flush(std::time::Duration::from_secs(10)).await;
    let app = app!(&dir, &[("PUSHJET_BRIDGE_ADMIN_TOKEN", TOKEN)], history);
    let cookie = cookie_pair(&sign_in!(&app, "192.0.2.7", &[]));
    let get = |uri: String| {
        TestRequest::get()
            .uri(&uri)
            .insert_header((header::COOKIE, cookie.clone()))
            .to_request()
    };
    let page = text(test::call_service(&app, get("/console/history".to_owned())).await).await;
    let (alpha, gamma) = (
        page.find("alpha one").expect("alpha listed"),
        page.find("gamma three").expect("gamma listed"),
    );
    assert!(gamma < alpha, "newest first: {page}");
    let page =
        text(test::call_service(&app, get("/console/history?q=BETA".to_owned())).await).await;
    assert!(
        page.contains("beta two") && !page.contains("alpha one"),
        "{page}"
    );
    let page = text(
        test::call_service(
            &app,
            get("/console/history?state=dead&within=1h".to_owned()),
        )
        .await,
    )
    .await;
    assert!(page.contains("No webhook matches"), "{page}");
    let uri = format!("/console/history?cursor={}", ids[2]);
    let page = text(test::call_service(&app, get(uri)).await).await;
    assert!(
        page.contains("alpha one") && !page.contains("gamma three"),
        "{page}"
    );
    assert!(
        !page.contains("data-stream"),
        "an older page is not live: {page}"
    );
    let response = test::call_service(&app, get("/console/history?within=2y".to_owned())).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    let page = text(test::call_service(&app, get("/console/".to_owned())).await).await;
    assert!(
        page.contains("3 accepted, 3 sent, 0 retrying, 0 dead, 0 refused"),
        "{page}"
    );
    assert!(!page.contains("history-note"), "{page}");

    let page =
        text(test::call_service(&app, get(format!("/console/history/{}", ids[1]))).await).await;
    assert!(
        page.contains("beta two") && page.contains("github/push"),
        "{page}"
    );
    assert!(page.contains("were not kept"), "{page}");
    let refused = TestRequest::post()
        .uri(&format!("/console/history/{}/replay", ids[1]))
        .insert_header((header::COOKIE, cookie.clone()))
        .set_form([("csrf", "0".repeat(64))])
        .to_request();
    assert_eq!(
        test::call_service(&app, refused).await.status(),
        StatusCode::FORBIDDEN
    );
    let missing = test::call_service(&app, get("/console/history/12345".to_owned())).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}
