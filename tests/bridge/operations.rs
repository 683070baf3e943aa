//! Running it in production: exact metrics over a scripted sequence, readiness and the
//! healthcheck command, and request ids.

use std::process::Command;
use std::time::{Duration, Instant};

use pushjet_bridge::pushjet::SecretKey;

use crate::common::{RoutedApp, post, spawn_app_with_routes, wait_for_messages};
use crate::support::fixture;

const JSON: (&str, &str) = ("Content-Type", "application/json");
const TOKEN: &str = "metrics-test-token";

async fn get(url: &str, headers: &[(&str, &str)]) -> (u16, awc::http::header::HeaderMap, String) {
    let mut request = awc::Client::default().get(url);
    for header in headers {
        request = request.insert_header(*header);
    }
    let mut response = request.send().await.expect("an answer");
    let body = response
        .body()
        .limit(4 * 1024 * 1024)
        .await
        .expect("a body");
    (
        response.status().as_u16(),
        response.headers().clone(),
        String::from_utf8_lossy(&body).into_owned(),
    )
}

/// The value of one sample line (`name{labels} value`) in the exposition, or 0 when absent.
fn sample(exposition: &str, series: &str) -> f64 {
    exposition
        .lines()
        .find_map(|line| {
            line.strip_prefix(series)?
                .strip_prefix(' ')?
                .parse::<f64>()
                .ok()
        })
        .unwrap_or(0.0)
}

/// Scrapes until every `(series, value)` holds exactly (delivery settles in the background), or
/// returns the last scrape after 10 s for the assertions to report.
async fn metrics_until(app: &RoutedApp, settled: &[(&str, f64)]) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _, text) = get(
            &app.url("/metrics"),
            &[("Authorization", "Bearer scrape-me")],
        )
        .await;
        assert_eq!(status, 200, "{text}");
        let done = settled
            .iter()
            .all(|(series, value)| sample(&text, series) == *value);
        if done || Instant::now() >= deadline {
            return text;
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

#[actix_web::test]
async fn metrics_count_a_scripted_sequence_exactly() {
    let never_created = SecretKey::generate().expect("randomness");
    let app = spawn_app_with_routes(&[
        ("PUSHJET_BRIDGE_ROUTES", "m,gh,dead"),
        ("PUSHJET_BRIDGE_ROUTE_M_TOKEN", TOKEN),
        ("PUSHJET_BRIDGE_ROUTE_GH_EVENTS", "push"),
        ("PUSHJET_BRIDGE_ROUTE_DEAD_SECRET", never_created.expose()),
        ("PUSHJET_BRIDGE_METRICS_TOKEN", "scrape-me"),
    ])
    .await;
    let bearer = format!("Bearer {TOKEN}");
    let auth = ("Authorization", bearer.as_str());
    let m = app.url("/hooks/m");
    assert_eq!(
        post(&m, &[JSON, auth], r#"{"message":"one"}"#).await.status,
        202
    );
    assert_eq!(
        post(&m, &[JSON], r#"{"message":"no token"}"#).await.status,
        401
    );
    assert_eq!(
        post(&m, &[("Content-Type", "image/png"), auth], "png")
            .await
            .status,
        415
    );
    assert_eq!(
        post(&app.url("/hooks/nope"), &[JSON], "{}").await.status,
        404
    );
    let keyed = [JSON, auth, ("Idempotency-Key", "k-1")];
    assert_eq!(post(&m, &keyed, r#"{"message":"keyed"}"#).await.status, 202);
    assert_eq!(post(&m, &keyed, r#"{"message":"keyed"}"#).await.status, 200);
    let star = [
        JSON,
        ("X-GitHub-Event", "star"),
        ("X-GitHub-Delivery", "d-1"),
    ];
    assert_eq!(
        post(
            &app.url("/hooks/gh"),
            &star,
            fixture("github", "star.created.json")
        )
        .await
        .status,
        200
    );
    assert_eq!(
        post(&app.url("/hooks/dead"), &[JSON], r#"{"message":"lost"}"#)
            .await
            .status,
        202
    );
    wait_for_messages(&app.device, 2).await;

    let text = metrics_until(
        &app,
        &[
            (
                r#"pushjet_bridge_notifications_dead_lettered_total{route="dead"}"#,
                1.0,
            ),
            (r#"pushjet_bridge_notifications_sent_total{route="m"}"#, 2.0),
            ("pushjet_bridge_outbox_pending", 0.0),
        ],
    )
    .await;
    let expected = [
        (
            r#"pushjet_bridge_webhooks_received_total{route="m",source="generic"}"#,
            3.0,
        ),
        (
            r#"pushjet_bridge_webhooks_received_total{route="m",source=""}"#,
            2.0,
        ),
        (
            r#"pushjet_bridge_webhooks_received_total{route="gh",source="github"}"#,
            1.0,
        ),
        (
            r#"pushjet_bridge_webhooks_received_total{route="dead",source="generic"}"#,
            1.0,
        ),
        (
            r#"pushjet_bridge_webhooks_rejected_total{route="m",reason="auth"}"#,
            1.0,
        ),
        (
            r#"pushjet_bridge_webhooks_rejected_total{route="m",reason="content_type"}"#,
            1.0,
        ),
        (
            r#"pushjet_bridge_webhooks_rejected_total{route="(unknown)",reason="unknown_route"}"#,
            1.0,
        ),
        (
            r#"pushjet_bridge_webhooks_filtered_total{route="gh",source="github"}"#,
            1.0,
        ),
        (
            r#"pushjet_bridge_webhooks_deduplicated_total{route="m",source="generic"}"#,
            1.0,
        ),
        (
            r#"pushjet_bridge_notifications_rendered_total{route="m",source="generic"}"#,
            3.0,
        ),
        (r#"pushjet_bridge_notifications_sent_total{route="m"}"#, 2.0),
        (
            r#"pushjet_bridge_notifications_dead_lettered_total{route="dead"}"#,
            1.0,
        ),
        (
            r#"pushjet_bridge_template_errors_total{route="m",source="generic"}"#,
            0.0,
        ),
        ("pushjet_bridge_outbox_pending", 0.0),
        ("pushjet_bridge_config_generation", 1.0),
    ];
    for (series, value) in expected {
        assert_eq!(sample(&text, series), value, "{series}\n{text}");
    }
    assert!(
        text.contains(r#"pushjet_bridge_pushjet_request_duration_seconds_count{outcome="ok"} 2"#),
        "{text}"
    );
    assert!(
        text.contains(
            r#"pushjet_bridge_pushjet_request_duration_seconds_count{outcome="permanent"} 1"#
        ),
        "{text}"
    );
    assert!(text.contains(r#"path="/hooks/{route}""#), "{text}");
    assert!(
        text.contains("pushjet_bridge_build_info{version="),
        "{text}"
    );
}

#[actix_web::test]
async fn metrics_need_their_token_when_one_is_set() {
    let app = spawn_app_with_routes(&[
        ("PUSHJET_BRIDGE_ROUTES", "m"),
        ("PUSHJET_BRIDGE_METRICS_TOKEN", "scrape-me"),
    ])
    .await;
    assert_eq!(get(&app.url("/metrics"), &[]).await.0, 401);
    assert_eq!(
        get(&app.url("/metrics"), &[("Authorization", "Bearer wrong")])
            .await
            .0,
        401
    );
    assert_eq!(
        get(
            &app.url("/metrics"),
            &[("Authorization", "Bearer scrape-me")]
        )
        .await
        .0,
        200
    );
}

#[actix_web::test]
async fn a_request_id_is_echoed_or_made() {
    let app = spawn_app_with_routes(&[("PUSHJET_BRIDGE_ROUTES", "m")]).await;
    let answer = post(
        &app.url("/hooks/m"),
        &[JSON, ("X-Request-Id", "trace-42")],
        r#"{"message":"x"}"#,
    )
    .await;
    assert_eq!(
        answer
            .headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some("trace-42")
    );
    let (_, headers, _) = get(&app.url("/healthz"), &[]).await;
    let made = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(uuid::Uuid::parse_str(made).is_ok(), "{made:?}");
}

#[actix_web::test]
async fn readiness_turns_503_when_the_data_directory_is_unwritable() {
    let app = spawn_app_with_routes(&[("PUSHJET_BRIDGE_ROUTES", "m")]).await;
    assert_eq!(get(&app.url("/readyz"), &[]).await.0, 200);
    let status = Command::new("chattr")
        .arg("+i")
        .arg(&app.app.data_dir)
        .status()
        .expect("chattr runs");
    assert!(status.success(), "chattr +i needs an ext4-like file system");
    let (ready, _, body) = get(&app.url("/readyz"), &[]).await;
    let _ = Command::new("chattr")
        .arg("-i")
        .arg(&app.app.data_dir)
        .status();
    assert_eq!(ready, 503, "{body}");
    assert!(body.contains("not writable"), "{body}");
    assert_eq!(
        get(&app.url("/readyz"), &[]).await.0,
        200,
        "ready again once writable"
    );
}

#[actix_web::test]
async fn the_healthcheck_command_exits_0_when_healthy_and_1_otherwise() {
    let app = spawn_app_with_routes(&[("PUSHJET_BRIDGE_ROUTES", "m")]).await;
    let binary = env!("CARGO_BIN_EXE_pushjet-bridge");
    let url = app.url("/healthz");
    let healthy = actix_web::rt::task::spawn_blocking(move || {
        Command::new(binary)
            .args(["healthcheck", "--url", &url])
            .status()
    })
    .await
    .expect("joined")
    .expect("runs");
    assert_eq!(healthy.code(), Some(0));
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a port")
        .port();
    let url = format!("http://127.0.0.1:{closed}/healthz");
    let down = actix_web::rt::task::spawn_blocking(move || {
        Command::new(binary)
            .args(["healthcheck", "--url", &url])
            .status()
    })
    .await
    .expect("joined")
    .expect("runs");
    assert_eq!(down.code(), Some(1));
}

const TEMPLATE_V1: &str = "title = 'version one'\nmessage = '{{message}}'\n";
const TEMPLATE_V2: &str = "title = 'version two'\nmessage = '{{message}}'\n";
const TEMPLATE_BROKEN: &str = "title = '{{#if}}'\nmessage = 'x'\n";

fn write_generic_template(dir: &std::path::Path, text: &str) {
    std::fs::create_dir_all(dir.join("generic")).expect("a folder");
    std::fs::write(dir.join("generic/default.toml"), text).expect("the template is written");
}

async fn preview_title(url: &str) -> String {
    let answer = post(url, &[JSON], r#"{"message":"hi"}"#).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    answer.json["preview"]["notifications"][0]["notification"]["title"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

async fn admin_reload(app: &RoutedApp) -> (u16, serde_json::Value) {
    let mut response = awc::Client::default()
        .post(app.url("/admin/reload"))
        .insert_header(("Authorization", "Bearer reload-admin-token"))
        .send()
        .await
        .expect("an answer");
    let body = response.body().await.expect("a body");
    (
        response.status().as_u16(),
        serde_json::from_slice(&body).unwrap_or_default(),
    )
}

#[actix_web::test]
async fn a_changed_template_takes_effect_on_reload_and_a_broken_one_is_refused() {
    let templates = tempfile::tempdir().expect("a folder");
    write_generic_template(templates.path(), TEMPLATE_V1);
    let dir = templates.path().display().to_string();
    let app = spawn_app_with_routes(&[
        ("PUSHJET_BRIDGE_ROUTES", "m"),
        ("PUSHJET_BRIDGE_TEMPLATES_DIR", &dir),
        ("PUSHJET_BRIDGE_ADMIN_TOKEN", "reload-admin-token"),
    ])
    .await;
    let preview = app.url("/preview/m");
    assert_eq!(preview_title(&preview).await, "version one");

    write_generic_template(templates.path(), TEMPLATE_V2);
    assert_eq!(
        preview_title(&preview).await,
        "version one",
        "nothing changes before the reload"
    );
    let (status, body) = admin_reload(&app).await;
    assert_eq!(
        (status, body["generation"].as_i64()),
        (200, Some(2)),
        "{body}"
    );
    assert_eq!(preview_title(&preview).await, "version two");

    write_generic_template(templates.path(), TEMPLATE_BROKEN);
    let (status, body) = admin_reload(&app).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("generic/default"),
        "{body}"
    );
    assert_eq!(
        preview_title(&preview).await,
        "version two",
        "the old template keeps working"
    );
    let (_, _, text) = get(&app.url("/metrics"), &[]).await;
    assert_eq!(
        sample(&text, "pushjet_bridge_config_generation"),
        2.0,
        "{text}"
    );
    assert_eq!(
        sample(&text, "pushjet_bridge_config_last_reload_success"),
        0.0,
        "{text}"
    );
}

#[actix_web::test]
async fn routes_from_the_env_file_reload_on_sighup() {
    let upstream = spawn_app_with_routes(&[("PUSHJET_BRIDGE_ROUTES", "unused")]).await;
    let folder = tempfile::tempdir().expect("a folder");
    let env_file = folder.path().join("routes.env");
    std::fs::write(
        &env_file,
        format!(
            "PUSHJET_BRIDGE_ROUTES=first\nPUSHJET_BRIDGE_ROUTE_FIRST_SECRET={}\n",
            upstream.secret
        ),
    )
    .expect("written");
    let port = crate::support::free_port();
    let api = upstream.url("/pushjet/");
    let env_path = env_file.display().to_string();
    let data_dir = tempfile::tempdir().expect("a data directory");
    let process = crate::support::Process::start(
        data_dir.path(),
        port,
        &[
            ("PUSHJET_API_URL", api.as_str()),
            ("PUSHJET_BRIDGE_EMBEDDED_PUSHJET", "false"),
            ("PUSHJET_BRIDGE_ENV_FILE", env_path.as_str()),
        ],
    );
    crate::support::Process::wait_ready(port).await;
    let base = format!("http://127.0.0.1:{port}");
    assert_eq!(
        post(
            &format!("{base}/hooks/first"),
            &[JSON],
            r#"{"message":"one"}"#
        )
        .await
        .status,
        202
    );
    assert_eq!(
        post(
            &format!("{base}/hooks/second"),
            &[JSON],
            r#"{"message":"two"}"#
        )
        .await
        .status,
        404
    );

    std::fs::write(
        &env_file,
        format!(
            "PUSHJET_BRIDGE_ROUTES=first,second\nPUSHJET_BRIDGE_ROUTE_FIRST_SECRET={0}\nPUSHJET_BRIDGE_ROUTE_SECOND_SECRET={0}\n",
            upstream.secret
        ),
    )
    .expect("rewritten");
    let pid = process.0.id().to_string();
    let sent = Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .expect("kill runs");
    assert!(sent.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = post(
            &format!("{base}/hooks/second"),
            &[JSON],
            r#"{"message":"two"}"#,
        )
        .await;
        if answer.status == 202 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "route `second` never appeared: {}",
            answer.text
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    let texts: Vec<String> = wait_for_messages(&upstream.device, 2)
        .await
        .into_iter()
        .map(|m| m.message)
        .collect();
    assert_eq!(texts, ["one", "two"]);
}

#[actix_web::test]
async fn json_logs_have_one_line_per_webhook_with_what_happened() {
    let upstream = spawn_app_with_routes(&[("PUSHJET_BRIDGE_ROUTES", "unused")]).await;
    let folder = tempfile::tempdir().expect("a folder");
    let log_path = folder.path().join("service.log");
    let log = std::fs::File::create(&log_path).expect("a log file");
    let port = crate::support::free_port();
    let api = upstream.url("/pushjet/");
    let secret = upstream.secret.clone();
    let _process = crate::support::Process::start_logging(
        folder.path(),
        port,
        &[
            ("PUSHJET_API_URL", api.as_str()),
            ("PUSHJET_BRIDGE_EMBEDDED_PUSHJET", "false"),
            ("PUSHJET_BRIDGE_LOG_FORMAT", "json"),
            ("PUSHJET_BRIDGE_ROUTES", "logged"),
            ("PUSHJET_BRIDGE_ROUTE_LOGGED_SECRET", secret.as_str()),
        ],
        log,
    );
    crate::support::Process::wait_ready(port).await;
    let headers = [
        JSON,
        ("X-GitHub-Event", "star"),
        ("X-GitHub-Delivery", "log-1"),
        ("X-Request-Id", "req-77"),
    ];
    let answer = post(
        &format!("http://127.0.0.1:{port}/hooks/logged"),
        &headers,
        fixture("github", "star.created.json"),
    )
    .await;
    assert_eq!(answer.status, 202, "{}", answer.text);
    wait_for_messages(&upstream.device, 1).await;

    // The delivery line is written just after Pushjet answered: give it a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut text = std::fs::read_to_string(&log_path).expect("the log");
    while !text.contains(r#""outcome":"sent""#) && Instant::now() < deadline {
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        text = std::fs::read_to_string(&log_path).expect("the log");
    }
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|_| panic!("not one JSON object per line: {line}"))
        })
        .collect();
    let handled = lines
        .iter()
        .find(|line| line["message"] == "webhook handled")
        .unwrap_or_else(|| panic!("no webhook line in {text}"));
    assert_eq!(handled["request_id"], "req-77", "{handled}");
    assert_eq!(handled["route"], "logged", "{handled}");
    assert_eq!(handled["source"], "github", "{handled}");
    assert_eq!(handled["event"], "star", "{handled}");
    assert_eq!(handled["delivery"], "log-1", "{handled}");
    assert_eq!(handled["outcome"], "queued", "{handled}");
    assert_eq!(handled["notifications"], 1, "{handled}");
    let id = handled["ids"].as_str().unwrap_or_default().to_owned();
    assert!(!id.is_empty(), "{handled}");
    assert!(
        lines
            .iter()
            .any(
                |line| line["id"].as_u64().map(|n| n.to_string()).as_deref() == Some(id.as_str())
                    && line["outcome"] == "sent"
            ),
        "no delivery line for notification {id}: {text}"
    );
    assert!(handled["duration_ms"].is_u64(), "{handled}");
    assert!(!text.contains(&secret), "the Pushjet secret is in the log");
}

#[actix_web::test]
async fn a_start_that_fails_half_way_lets_go_of_the_stores_it_opened() {
    // history.redb held open elsewhere makes the start fail after the Pushjet store was opened
    // and the streams' tasks started; a second start in the same process must then open it all.
    let temp = tempfile::tempdir().expect("temporary directory");
    let vars = || {
        pushjet_bridge::config::Settings::from_vars(vec![
            ("PUSHJET_BRIDGE_LISTEN".to_owned(), "127.0.0.1:0".to_owned()),
            (
                "PUSHJET_BRIDGE_DATA_DIR".to_owned(),
                temp.path().display().to_string(),
            ),
        ])
        .expect("valid settings")
    };
    let held = redb::Database::create(temp.path().join("history.redb")).expect("history.redb");
    let failed = pushjet_bridge::app::Application::build(vars()).await;
    assert!(
        matches!(failed, Err(pushjet_bridge::app::AppError::History(_))),
        "the start fails on the history: {:?}",
        failed.err()
    );
    drop(held);
    // The failed start's tasks end once they run again.
    actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    let application = pushjet_bridge::app::Application::build(vars())
        .await
        .expect("the second start opens every store");
    drop(application);
}
