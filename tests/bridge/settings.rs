//! The binary and its settings: a misspelled `PUSHJET_BRIDGE_*` variable stops the start (exit 2)
//! with every problem and the name meant, and `check` reports the same.

use std::process::{Command, Output};

/// Runs the binary with only `vars` (and `args`) and waits for it to exit.
async fn run(args: &[&str], vars: &[(&str, &str)]) -> Output {
    let data = tempfile::tempdir().expect("a data directory");
    let mut command = Command::new(env!("CARGO_BIN_EXE_pushjet-bridge"));
    command
        .env_clear()
        .env("PUSHJET_BRIDGE_LISTEN", "127.0.0.1:0")
        .env("PUSHJET_BRIDGE_DATA_DIR", data.path())
        .envs(vars.iter().copied())
        .args(args);
    actix_web::rt::task::spawn_blocking(move || command.output())
        .await
        .expect("joined")
        .expect("the binary runs")
}

const MISSPELLED: [(&str, &str); 4] = [
    ("PUSHJET_BRIDGE_ROUTES", "gh"),
    (
        "PUSHJET_BRIDGE_ROUTE_GH_SECRET",
        "3ad3ed6d089e9ff87f6a4c7247ca5940",
    ),
    (
        "PUSHJET_BRIDGE_ROUTE_GH_WEBHOOK_SECRETS",
        "hmac-secret-value",
    ),
    ("PUSHJET_BRIDGE_MAX_BODYBYTES", "1000"),
];

#[actix_web::test]
async fn a_misspelled_setting_stops_the_start_with_exit_2_and_the_name_meant() {
    let output = run(&[], &MISSPELLED).await;
    let errors = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{errors}");
    assert!(errors.contains("2 problem(s)"), "{errors}");
    assert!(
        errors.contains(
            "PUSHJET_BRIDGE_ROUTE_GH_WEBHOOK_SECRETS is not a setting (did you mean \
             `PUSHJET_BRIDGE_ROUTE_GH_WEBHOOK_SECRET`?)"
        ),
        "{errors}"
    );
    assert!(
        errors.contains("did you mean `PUSHJET_BRIDGE_MAX_BODY_BYTES`?"),
        "{errors}"
    );
    assert!(!errors.contains("hmac-secret-value"), "{errors}");
}

#[actix_web::test]
async fn check_reports_a_misspelled_setting() {
    let output = run(&["check"], &MISSPELLED).await;
    let report = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{report}");
    assert!(
        report.contains("did you mean `PUSHJET_BRIDGE_ROUTE_GH_WEBHOOK_SECRET`?"),
        "{report}"
    );
}
