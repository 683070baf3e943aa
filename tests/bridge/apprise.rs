//! The real Apprise library (PyPI `apprise`, in the test virtual environment that `scripts/test`
//! creates, named by `PUSHJET_BRIDGE_TEST_PYTHON`) sending through its ntfy://, gotify://,
//! pjet://, json:// and form:// plugins to the real service; each notification is read back from
//! a subscribed device.

use std::process::Command;

use crate::common::expect_messages;
use crate::publish::{PASSWORD, TOKEN, USER, app};

#[actix_web::test]
async fn every_apprise_plugin_that_can_reach_the_bridge_delivers() {
    let python = std::env::var("PUSHJET_BRIDGE_TEST_PYTHON").expect(
        "PUSHJET_BRIDGE_TEST_PYTHON must name a Python with tests/python/requirements.txt installed: run the README's test command (scripts/test)",
    );
    let app = app().await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/apprise_e2e.py");
    let address = format!("127.0.0.1:{}", app.app.port);
    let args = [
        script.to_owned(),
        address,
        TOKEN.to_owned(),
        format!("{USER}:{PASSWORD}"),
        app.secret.clone(),
    ];
    let output =
        actix_web::rt::task::spawn_blocking(move || Command::new(python).args(args).output())
            .await
            .expect("the blocking task runs")
            .expect("python starts");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "Apprise failed:\n{stdout}\n{stderr}"
    );

    let mut received: Vec<(String, String, u8)> = expect_messages(&app.device, 6)
        .await
        .into_iter()
        .map(|message| {
            (
                message.title.unwrap_or_default(),
                message.message,
                message.importance.get(),
            )
        })
        .collect();
    received.sort();
    let expected = [
        ("Apprise form", "sent by form", 2),
        ("Apprise gotify", "sent by gotify", 4),
        ("Apprise json", "sent by json", 5),
        ("Apprise ntfy basic", "sent by ntfy with basic auth", 5),
        ("Apprise ntfy token", "sent by ntfy with a token", 3),
        ("Apprise pjet", "sent by pushjet", 3),
    ]
    .map(|(title, message, importance)| (title.to_owned(), message.to_owned(), importance));
    assert_eq!(received, expected, "{stdout}");
}
