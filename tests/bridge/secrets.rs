//! No secret leaks: with every kind of secret configured (the outbox's database URL included), a
//! sequence of good and bad requests leaves none of them in the service's logs (captured at
//! TRACE, whatever `RUST_LOG` says), in any answer, in any page of the console, in any delivered
//! notification, in any answer of the delivery history (bodies kept) or in its tables as stored.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use base64::Engine as _;
use tracing_subscriber::fmt::MakeWriter;

use crate::common::{Answer, post, spawn_app_with_routes, wait_for_messages};
use crate::support::{delivery_headers, fixture, github_signature};

/// Everything every thread of this test process logs, as text.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl LogBuffer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("the log buffer")).into_owned()
    }
}

impl Write for LogBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .expect("the log buffer")
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogBuffer {
    type Writer = LogBuffer;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Installs, once for this test process, a global subscriber that records every event at TRACE
/// level (the `log` records of actix and awc included) into a buffer. The service's handlers run
/// on its own worker threads, so a thread-local subscriber would miss them.
fn captured_logs() -> &'static LogBuffer {
    static LOGS: OnceLock<LogBuffer> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = LogBuffer::default();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(buffer.clone())
            .try_init()
            .expect("no other test installs a global subscriber");
        buffer
    })
}

/// A secret no other test uses, so finding it anywhere means this test leaked it.
fn unique(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

#[actix_web::test]
async fn no_secret_appears_in_logs_answers_or_notifications() {
    let logs = captured_logs();
    let webhook_secret = unique("whsecnew");
    let old_webhook_secret = unique("whsecold");
    let token = unique("tok");
    let password = unique("pw");
    let basic = format!("alice:{password}");
    let basic_header = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(&basic)
    );
    // A valid secret key of a service that was never created: the route fails with 424.
    let unknown_service = uuid::Uuid::new_v4().simple().to_string();
    let templates = tempfile::tempdir().expect("a temporary folder");
    std::fs::create_dir_all(templates.path().join("custom")).expect("a template folder");
    std::fs::write(
        templates.path().join("custom/broken.toml"),
        "# Fails at render time.\ntitle = 'x'\nmessage = '{{truncate message \"ten\"}}'\n",
    )
    .expect("a template file");
    let templates_dir = templates.path().display().to_string();
    let rotation = format!("{old_webhook_secret},{webhook_secret}");
    let admin_token = unique("admintoken");
    // The outbox in PostgreSQL, with a password in its URL (the test server trusts every local
    // connection, so the password is only carried around, never checked).
    let database_password = unique("dbpw");
    let database = crate::common::postgres::TestPostgres::shared()
        .create_database()
        .await
        .replacen("postgres@", &format!("postgres:{database_password}@"), 1);

    let app = spawn_app_with_routes(&[
        (
            "PUSHJET_BRIDGE_ROUTES",
            "leak-gh,leak-token,leak-basic,leak-gone,leak-broken",
        ),
        ("PUSHJET_BRIDGE_TEMPLATES_DIR", &templates_dir),
        ("PUSHJET_BRIDGE_ROUTE_LEAK_GH_WEBHOOK_SECRET", &rotation),
        ("PUSHJET_BRIDGE_ROUTE_LEAK_TOKEN_TOKEN", &token),
        ("PUSHJET_BRIDGE_ROUTE_LEAK_BASIC_BASIC_AUTH", &basic),
        ("PUSHJET_BRIDGE_ROUTE_LEAK_GONE_SECRET", &unknown_service),
        ("PUSHJET_BRIDGE_ROUTE_LEAK_GONE_DELIVERY", "sync"),
        ("PUSHJET_BRIDGE_ROUTE_LEAK_BROKEN_TOKEN", &token),
        ("PUSHJET_BRIDGE_ROUTE_LEAK_BROKEN_TEMPLATE", "custom/broken"),
        ("PUSHJET_BRIDGE_DATABASE_URL", &database),
        ("PUSHJET_BRIDGE_ADMIN_TOKEN", &admin_token),
        ("PUSHJET_BRIDGE_HISTORY_BODIES", "true"),
    ])
    .await;
    let pushjet_secret = app.secret.clone();

    let push = fixture("github", "push.json");
    let signed_new = github_signature(&webhook_secret, &push);
    let signed_old = github_signature(&old_webhook_secret, &push);
    let signed_wrong = github_signature(&format!("{webhook_secret}x"), &push);
    let malformed = b"{\"message\": ".to_vec();
    let signed_malformed = github_signature(&webhook_secret, &malformed);
    // Credentials a client might send by mistake that contain the real ones.
    let near_token = format!("Bearer {token}x");
    let near_gitlab = format!("{webhook_secret}x");
    let good_bearer = format!("Bearer {token}");
    let near_basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{basic}x"))
    );
    let ntfy_auth = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&good_bearer);
    let json = ("Content-Type", "application/json");
    let hello = r#"{"message":"hello"}"#;
    // Each request gets the sender's headers with a delivery id of its own, as GitHub sends them.
    let with = |extra: &[(&'static str, &str)]| -> Vec<(String, String)> {
        delivery_headers("github", "push.json")
            .iter()
            .map(|(name, value)| ((*name).to_owned(), value.clone()))
            .chain(
                extra
                    .iter()
                    .map(|(n, v)| ((*n).to_owned(), (*v).to_owned())),
            )
            .collect()
    };

    let requests: Vec<Request> = vec![
        (
            "/hooks/leak-gh".into(),
            with(&[("X-Hub-Signature-256", &signed_new)]),
            push.clone(),
            2,
        ),
        (
            "/hooks/leak-gh".into(),
            with(&[("X-Hub-Signature-256", &signed_old)]),
            push.clone(),
            2,
        ),
        (
            "/hooks/leak-gh".into(),
            with(&[("X-Hub-Signature-256", &signed_wrong)]),
            push.clone(),
            401,
        ),
        (
            "/hooks/leak-gh".into(),
            with(&[("X-Gitlab-Token", &near_gitlab)]),
            push.clone(),
            401,
        ),
        ("/hooks/leak-gh".into(), with(&[]), push.clone(), 401),
        (
            "/hooks/leak-gh".into(),
            with(&[("X-Hub-Signature-256", &signed_malformed)]),
            malformed,
            400,
        ),
        (
            "/preview/leak-gh".into(),
            with(&[("X-Hub-Signature-256", &signed_new)]),
            push.clone(),
            2,
        ),
        (
            "/hooks/leak-token".into(),
            owned(&[json, ("Authorization", &good_bearer)]),
            hello.into(),
            2,
        ),
        (
            format!("/hooks/leak-token?token={token}"),
            owned(&[json]),
            hello.into(),
            2,
        ),
        (
            "/hooks/leak-token".into(),
            owned(&[json, ("Authorization", &near_token)]),
            hello.into(),
            401,
        ),
        (
            format!("/hooks/leak-token?token={token}x"),
            owned(&[json]),
            hello.into(),
            401,
        ),
        (
            "/hooks/leak-basic".into(),
            owned(&[json, ("Authorization", &basic_header)]),
            hello.into(),
            2,
        ),
        (
            "/hooks/leak-basic".into(),
            owned(&[json, ("Authorization", &near_basic)]),
            hello.into(),
            401,
        ),
        ("/hooks/leak-gone".into(), owned(&[json]), hello.into(), 424),
        (
            "/hooks/leak-broken".into(),
            owned(&[json, ("Authorization", &good_bearer)]),
            hello.into(),
            2,
        ),
        // ntfy's publish (a bearer token, then ntfy's ?auth=), Gotify's (the first route by name
        // with the token: leak-broken) and Apprise's Pushjet send (the service's secret).
        (
            "/leak-token".into(),
            owned(&[("Authorization", &good_bearer)]),
            b"ntfy".to_vec(),
            2,
        ),
        (
            format!("/leak-token?auth={ntfy_auth}"),
            Vec::new(),
            b"ntfy auth".to_vec(),
            2,
        ),
        (
            "/leak-token".into(),
            owned(&[("Authorization", &near_token)]),
            b"ntfy".to_vec(),
            401,
        ),
        (
            "/message".into(),
            owned(&[json, ("X-Gotify-Key", &token)]),
            hello.into(),
            2,
        ),
        (
            format!("/message?token={token}x"),
            owned(&[json]),
            hello.into(),
            401,
        ),
        (
            format!("/message/?secret={pushjet_secret}"),
            owned(&[("Content-Type", "application/x-www-form-urlencoded")]),
            hello.into(),
            2,
        ),
    ];
    let mut answers: Vec<(String, Answer)> = Vec::new();
    for (path, headers, body, expected) in requests {
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();
        let answer = post(&app.url(&path), &headers, body).await;
        if expected == 2 {
            assert!(
                answer.status.is_success(),
                "{path}: {} {}",
                answer.status,
                answer.text
            );
        } else {
            assert_eq!(answer.status, expected, "{path}: {}", answer.text);
        }
        answers.push((path, answer));
    }
    answers.extend(console_pages(&app, &admin_token).await);
    // Two pushes, two tokens, one basic, one template-error fallback, two ntfy publishes, one
    // Gotify message (a fallback too) and one Pushjet send: wait until all were delivered, so the
    // delivery's own logging is captured too.
    let messages = wait_for_messages(&app.device, 10).await;
    // The delivery history: every answer of its API, and its tables as stored.
    let history = history_answers(&app.url(""), &admin_token).await;
    let port = app.app.port;
    app.app.stop().await;
    let stored = history_tables(&database).await;
    assert!(
        stored.contains("leak-token") && stored.contains("<redacted>") && stored.contains(hello),
        "the history holds this test's requests: {stored}"
    );

    let secrets = [
        ("Pushjet secret", pushjet_secret.as_str()),
        ("unknown Pushjet secret", unknown_service.as_str()),
        ("webhook secret", webhook_secret.as_str()),
        ("old webhook secret", old_webhook_secret.as_str()),
        ("token", token.as_str()),
        ("token as ntfy's auth parameter", ntfy_auth.as_str()),
        ("basic auth password", password.as_str()),
        ("database password", database_password.as_str()),
        ("admin token", admin_token.as_str()),
        (
            "basic auth header",
            basic_header.trim_start_matches("Basic "),
        ),
    ];
    let log_text = logs.text();
    // The capture really holds this service's logs, down to TRACE.
    assert!(
        log_text.contains("route=leak-token"),
        "no log of this test's requests"
    );
    assert!(
        log_text.contains("route=leak-gone"),
        "no log of the refused delivery"
    );
    assert!(log_text.contains(" TRACE "), "no TRACE line was captured");
    assert!(
        log_text.contains("the outbox is kept in PostgreSQL"),
        "no log of the database"
    );
    assert!(
        log_text.contains(&format!("127.0.0.1:{port}")),
        "no log of this service"
    );
    for (kind, secret) in secrets {
        if let Some(at) = log_text.find(secret) {
            let start = log_text[..at].rfind('\n').map_or(0, |i| i + 1);
            let end = log_text[at..].find('\n').map_or(log_text.len(), |i| at + i);
            panic!("the {kind} is in the logs: {}", &log_text[start..end]);
        }
        for (path, answer) in &answers {
            let headers = format!("{:?}", answer.headers);
            assert!(
                !answer.text.contains(secret),
                "the {kind} is in the answer to {path}: {}",
                answer.text
            );
            assert!(
                !headers.contains(secret),
                "the {kind} is in the headers of {path}: {headers}"
            );
        }
        for message in &messages {
            let shown = format!("{message:?}");
            assert!(!shown.contains(secret), "the {kind} was delivered: {shown}");
        }
        for answer in &history {
            assert!(
                !answer.contains(secret),
                "the {kind} is in a history answer: {answer}"
            );
        }
        assert!(
            !stored.contains(secret),
            "the {kind} is in the history's tables"
        );
    }
}

/// Every console page, and a preview of every route, seen after signing in with `admin_token`.
async fn console_pages(app: &crate::common::RoutedApp, admin_token: &str) -> Vec<(String, Answer)> {
    let client = awc::Client::builder().disable_redirects().finish();
    let signed_in = client
        .post(app.url("/console/sign-in"))
        .send_form(&[("token", admin_token)])
        .await
        .expect("the console answers");
    assert_eq!(signed_in.status().as_u16(), 303);
    let cookie = signed_in
        .headers()
        .get("set-cookie")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .expect("a session cookie")
        .to_owned();
    let mut seen = Vec::new();
    for path in [
        "/console/",
        "/console/dead-letters",
        "/console/playground",
        "/console/playground?route=leak-broken",
        "/console/inbox",
    ] {
        let mut response = client
            .get(app.url(path))
            .insert_header(("Cookie", cookie.clone()))
            .send()
            .await
            .expect("the console answers");
        let body = response.body().await.expect("a page");
        assert_eq!(response.status().as_u16(), 200, "{path}");
        seen.push((path.to_owned(), answer(&response, &body)));
    }
    // The history's pages: its list (once the last request's record is written), each
    // webhook's story and each kept body as the playground reads it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let history_page = loop {
        let mut response = client
            .get(app.url("/console/history"))
            .insert_header(("Cookie", cookie.clone()))
            .send()
            .await
            .expect("the console answers");
        let body = response.body().await.expect("a page");
        assert_eq!(response.status().as_u16(), 200, "/console/history");
        let page = answer(&response, &body);
        if page.text.contains(" gotify ") || std::time::Instant::now() > deadline {
            break page;
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let ids: Vec<String> = history_page
        .text
        .split("href=\"/console/history/")
        .skip(1)
        .map(|rest| rest.chars().take_while(char::is_ascii_digit).collect())
        .filter(|id: &String| !id.is_empty())
        .collect();
    assert!(ids.len() >= 5, "{}", history_page.text);
    seen.push(("/console/history".to_owned(), history_page));
    for id in ids {
        for path in [
            format!("/console/history/{id}"),
            format!("/console/api/history/{id}/body"),
        ] {
            let mut response = client
                .get(app.url(&path))
                .insert_header(("Cookie", cookie.clone()))
                .send()
                .await
                .expect("the console answers");
            let body = response.body().await.expect("a page");
            let status = response.status().as_u16();
            assert!(status == 200 || status == 404, "{path}: {status}");
            seen.push((path, answer(&response, &body)));
        }
    }
    let page = &seen[2].1.text;
    let start = page
        .find("name=\"csrf-token\" content=\"")
        .expect("the CSRF token")
        + 27;
    let csrf = page[start..start + 64].to_owned();
    for route in [
        "leak-gh",
        "leak-token",
        "leak-basic",
        "leak-gone",
        "leak-broken",
    ] {
        let mut response = client
            .post(app.url("/console/api/preview"))
            .insert_header(("Cookie", cookie.clone()))
            .insert_header(("X-CSRF-Token", csrf.clone()))
            .send_json(&serde_json::json!({
                "route": route, "event": "push", "payload": r#"{"message":"hello"}"#,
            }))
            .await
            .expect("the console answers");
        let body = response.body().await.expect("an answer");
        seen.push((
            format!("the console's preview of {route}"),
            answer(&response, &body),
        ));
    }
    seen
}

fn answer(response: &awc::ClientResponse<impl futures_util::Stream>, body: &[u8]) -> Answer {
    let text = String::from_utf8_lossy(body).into_owned();
    Answer {
        status: response.status(),
        headers: response.headers().clone(),
        json: serde_json::from_str(&text).unwrap_or_default(),
        text,
    }
}

/// Every answer of the history API: the list, and each record's whole story.
async fn history_answers(base: &str, admin_token: &str) -> Vec<String> {
    let client = awc::Client::default();
    let get = |path: String| {
        let request = client
            .get(format!("{base}{path}"))
            .insert_header(("Authorization", format!("Bearer {admin_token}")));
        async move {
            let mut response = request.send().await.expect("the history answers");
            assert_eq!(response.status(), 200);
            let body = response
                .body()
                .limit(16 * 1024 * 1024)
                .await
                .expect("a body");
            String::from_utf8_lossy(&body).into_owned()
        }
    };
    // The records are written just behind the answers: wait for the last request's.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let list = loop {
        let list = get("/admin/history?limit=500".to_owned()).await;
        if list.contains("\"via\":\"gotify\"") || std::time::Instant::now() > deadline {
            break list;
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let page: serde_json::Value = serde_json::from_str(&list).expect("JSON");
    let mut answers = vec![list];
    for summary in page["records"].as_array().into_iter().flatten() {
        let id = summary["id"].as_u64().expect("an id");
        answers.push(get(format!("/admin/history/{id}")).await);
    }
    answers.push(get("/admin/history/counts".to_owned()).await);
    answers
}

/// The history's tables as stored in the database, as text.
async fn history_tables(database: &str) -> String {
    let (client, connection) = tokio_postgres::connect(database, tokio_postgres::NoTls)
        .await
        .expect("the test database");
    actix_web::rt::spawn(connection);
    let rows = client
        .query(
            "SELECT record || coalesce(request, '') || route || search, request_body \
             FROM history_records \
             UNION ALL SELECT attempts::TEXT || coalesce(reason, ''), NULL FROM history_deliveries",
            &[],
        )
        .await
        .expect("the history's tables");
    rows.iter()
        .map(|row| {
            // A kept body is stored compressed (an LZ4 block, its length before it).
            let body = row
                .get::<_, Option<Vec<u8>>>(1)
                .map(|body| lz4_flex::decompress_size_prepended(&body).expect("a kept body"))
                .map(|body| String::from_utf8(body).expect("a kept body's text"));
            row.get::<_, String>(0) + body.as_deref().unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A request of the sequence: path, headers, body, and the expected status (2 for any 2xx).
type Request = (String, Vec<(String, String)>, Vec<u8>, u16);

fn owned(headers: &[(&str, &str)]) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect()
}
