//! The console in a real browser: `tests/python/console_e2e.py` drives Debian's Chromium with
//! Playwright against the real service: sign-in (wrong and right token, keyboard only), the
//! cookie's attributes, CSRF refusals, sign-out, the rate limit on failed sign-ins, a dead letter
//! retried from its page once the upstream is fixed, the history (a webhook appearing live, its
//! page with the notification and the attempt, Replay and Re-render, a kept body in the
//! playground), the playground's live preview and its error line, the live inbox, every page at
//! 375 and 1280 px with screenshots and an axe-core check, and no secret of this configuration
//! in any page. `scripts/test` installs what it needs and names it in
//! `PUSHJET_BRIDGE_TEST_PYTHON` and `PUSHJET_BRIDGE_TEST_AXE`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::flaky::{Fault, Flaky};
use crate::common::{RoutedApp, post, spawn_app_with_routes, wait_for_messages};

const ADMIN_TOKEN: &str = "console-admin-token-for-the-browser-test";
const WEBHOOK_SECRET: &str = "console-webhook-secret-9f8e7d";
const ROUTE_TOKEN: &str = "console-route-token-5a4b3c";
const BASIC_AUTH: &str = "ops:console-basic-password-1q2w";

/// The Python with tests/python/requirements.txt installed (Playwright among them).
fn test_python() -> String {
    std::env::var("PUSHJET_BRIDGE_TEST_PYTHON").expect(
        "PUSHJET_BRIDGE_TEST_PYTHON must name a Python with tests/python/requirements.txt installed: run scripts/test",
    )
}

/// axe-core's `axe.min.js`, installed from npm by scripts/test.
fn axe_script() -> String {
    std::env::var("PUSHJET_BRIDGE_TEST_AXE").expect(
        "PUSHJET_BRIDGE_TEST_AXE must name axe-core's axe.min.js (npm axe-core): run scripts/test",
    )
}

async fn dead_letters(app: &RoutedApp) -> Vec<Value> {
    let mut response = awc::Client::default()
        .get(app.url("/admin/dead-letters"))
        .insert_header(("Authorization", format!("Bearer {ADMIN_TOKEN}")))
        .send()
        .await
        .expect("the admin API answers");
    let body: Value = response.json().await.expect("a JSON listing");
    body["dead_letters"].as_array().cloned().unwrap_or_default()
}

#[actix_web::test]
async fn the_console_works_in_a_real_browser() {
    let flaky = Flaky::start();
    let secret_holder_vars = [
        ("PUSHJET_BRIDGE_ROUTES", "r,gh"),
        ("PUSHJET_API_URL", flaky.url.as_str()),
        ("PUSHJET_BRIDGE_ADMIN_TOKEN", ADMIN_TOKEN),
        ("PUSHJET_BRIDGE_HISTORY_BODIES", "true"),
        ("PUSHJET_BRIDGE_TRUSTED_PROXIES", "127.0.0.1"),
        ("PUSHJET_BRIDGE_RETRY_MIN_DELAY", "20ms"),
        ("PUSHJET_BRIDGE_RETRY_MAX_DELAY", "200ms"),
        ("PUSHJET_BRIDGE_ROUTE_GH_SOURCE", "github"),
        ("PUSHJET_BRIDGE_ROUTE_GH_WEBHOOK_SECRET", WEBHOOK_SECRET),
        ("PUSHJET_BRIDGE_ROUTE_GH_TOKEN", ROUTE_TOKEN),
        ("PUSHJET_BRIDGE_ROUTE_GH_BASIC_AUTH", BASIC_AUTH),
    ];
    let app = spawn_app_with_routes(&secret_holder_vars).await;
    flaky.forward_to(&app.url("/pushjet/"));

    // The upstream refuses the route's secret, so the notification is dead at once; then the
    // upstream is fixed, and the test in the browser retries it from the dead-letters page.
    flaky.script(&[Fault::InvalidSecret]);
    let body = json!({ "title": "Deploy", "message": "dead then fixed" }).to_string();
    let answer = post(
        &app.url("/hooks/r"),
        &[("Content-Type", "application/json")],
        body,
    )
    .await;
    assert_eq!(answer.status, 202, "{}", answer.text);
    let deadline = Instant::now() + Duration::from_secs(10);
    while dead_letters(&app).await.is_empty() {
        assert!(Instant::now() < deadline, "no dead letter within 10 s");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    flaky.clear_script();

    let secrets = [
        ADMIN_TOKEN,
        WEBHOOK_SECRET,
        ROUTE_TOKEN,
        BASIC_AUTH,
        "console-basic-password-1q2w",
        app.secret.as_str(),
    ]
    .join("\n");
    let artifacts = Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/console_e2e.py");
    let arguments = [
        app.url(""),
        ADMIN_TOKEN.to_owned(),
        app.device.uuid().to_string(),
        artifacts.display().to_string(),
        axe_script(),
    ];
    let python = test_python();
    let output = actix_web::rt::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .args(arguments)
            .env("CONSOLE_TEST_SECRETS", secrets)
            .output()
    })
    .await
    .expect("the blocking task runs")
    .expect("python starts");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the browser test failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("all steps passed"), "{stdout}");
    println!("{stdout}");

    // The retried dead letter, the inbox's live message and the history's webhook three times
    // (sent, then replayed and rendered again from its page) reached the device.
    let texts: Vec<String> = wait_for_messages(&app.device, 5)
        .await
        .into_iter()
        .map(|message| message.message)
        .collect();
    assert!(texts.contains(&"dead then fixed".to_owned()), "{texts:?}");
    assert!(texts.contains(&"arrived live".to_owned()), "{texts:?}");
    let replayed = texts
        .iter()
        .filter(|text| *text == "seen in the history")
        .count();
    assert_eq!(replayed, 3, "{texts:?}");
    assert!(dead_letters(&app).await.is_empty());
}

#[actix_web::test]
async fn the_live_inbox_offers_the_demo_device_when_the_demo_route_exists() {
    let app = crate::common::spawn_app_with(&[("PUSHJET_BRIDGE_ADMIN_TOKEN", ADMIN_TOKEN)]).await;
    let client = awc::Client::builder().disable_redirects().finish();
    let signed_in = client
        .post(app.url("/console/sign-in"))
        .send_form(&[("token", ADMIN_TOKEN)])
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
    let mut page = client
        .get(app.url("/console/inbox"))
        .insert_header(("Cookie", cookie))
        .send()
        .await
        .expect("the console answers");
    assert_eq!(page.status().as_u16(), 200);
    let html = String::from_utf8_lossy(&page.body().await.expect("a page")).into_owned();
    assert!(
        html.contains("The demo route's device is filled in"),
        "{html}"
    );
    let value = html
        .split("aria-describedby=\"device-hint\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the device field has a value");
    assert!(
        pushjet_bridge::pushjet::DeviceUuid::parse(value).is_ok(),
        "{value}"
    );
    assert!(!html.contains(ADMIN_TOKEN));
}
