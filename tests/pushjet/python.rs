//! The real Python client (`pushjet` 1.0.0 from PyPI) against the embedded server. The README's
//! test command creates the virtual environment and points `PUSHJET_BRIDGE_TEST_PYTHON` at it.

use std::process::Command;

use crate::common::spawn_app;

#[actix_web::test]
async fn the_real_python_client_works_against_the_embedded_server() {
    let python = std::env::var("PUSHJET_BRIDGE_TEST_PYTHON").expect(
        "PUSHJET_BRIDGE_TEST_PYTHON must name a Python with `pushjet==1.0.0` installed: run the README's test command (scripts/test)",
    );
    let app = spawn_app().await;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/pushjet_client_e2e.py"
    );
    let url = app.url("/pushjet/");
    let output = actix_web::rt::task::spawn_blocking(move || {
        Command::new(python).arg(script).arg(url).output()
    })
    .await
    .expect("the blocking task runs")
    .expect("python starts");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the Python client failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("all steps passed"), "{stdout}");
}
