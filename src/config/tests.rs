use std::time::Duration;

use super::*;
use crate::sources::{AlertGrouping, ResolvedPolicy, SourceSetting};

fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn defaults_serve_the_embedded_api_on_8080() {
    let settings = Settings::from_vars(vars(&[])).unwrap();
    assert_eq!(settings.server.listen.to_string(), "0.0.0.0:8080");
    assert_eq!(settings.server.data_dir, PathBuf::from("data"));
    assert!(settings.pushjet.embedded);
    assert_eq!(settings.pushjet.api_url, None);
    assert_eq!(settings.server.log_format, LogFormat::Human);
}

#[test]
fn every_problem_is_reported_at_once() {
    let error = Settings::from_vars(vars(&[
        ("PUSHJET_BRIDGE_LISTEN", "nowhere"),
        ("PUSHJET_BRIDGE_EMBEDDED_PUSHJET", "maybe"),
        ("PUSHJET_BRIDGE_LOG_FORMAT", "xml"),
        ("PUSHJET_API_URL", "ftp://example.com/"),
    ]))
    .unwrap_err();
    assert_eq!(error.0.len(), 4, "{error}");
}

#[test]
fn api_url_gets_a_trailing_slash() {
    let settings =
        Settings::from_vars(vars(&[("PUSHJET_API_URL", "http://pushjet.local/api")])).unwrap();
    assert_eq!(
        settings.pushjet.api_url.unwrap().to_string(),
        "http://pushjet.local/api/"
    );
}

#[test]
fn embedded_off_needs_an_api_url() {
    let error =
        Settings::from_vars(vars(&[("PUSHJET_BRIDGE_EMBEDDED_PUSHJET", "false")])).unwrap_err();
    assert!(error.to_string().contains("PUSHJET_API_URL"));
}

const SECRET: &str = "3ad3ed6d089e9ff87f6a4c7247ca5940";

#[test]
fn a_route_reads_every_setting_and_secrets_from_files() {
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
    let settings = Settings::from_vars(vars(&[
        ("PUSHJET_BRIDGE_ROUTES", "gh-prod, alerts"),
        (
            "PUSHJET_BRIDGE_ROUTE_GH_PROD_SECRET_FILE",
            secret_file.to_str().unwrap(),
        ),
        ("PUSHJET_BRIDGE_ROUTE_GH_PROD_SOURCE", "github"),
        ("PUSHJET_BRIDGE_ROUTE_GH_PROD_WEBHOOK_SECRET", "old,new"),
        (
            "PUSHJET_BRIDGE_ROUTE_GH_PROD_EVENTS",
            "push,pull_request.opened",
        ),
        ("PUSHJET_BRIDGE_ROUTE_GH_PROD_TEMPLATE", "github/push"),
        ("PUSHJET_BRIDGE_ROUTE_ALERTS_SECRET", SECRET),
        ("PUSHJET_BRIDGE_ROUTE_ALERTS_TOKEN", "t0ken"),
        ("PUSHJET_BRIDGE_ROUTE_ALERTS_IMPORTANCE", "4"),
        ("PUSHJET_BRIDGE_ROUTE_ALERTS_ALERT_GROUPING", "alert"),
        ("PUSHJET_BRIDGE_ROUTE_ALERTS_RESOLVED", "suppress"),
        (
            "PUSHJET_BRIDGE_ROUTE_ALERTS_SEVERITY_IMPORTANCE",
            "critical=5,warning=3",
        ),
        ("PUSHJET_BRIDGE_MAX_MESSAGE_BYTES", "1000"),
    ]))
    .unwrap();
    assert_eq!(settings.limits.max_message_bytes, 1000);
    let github = settings.routes.get("gh-prod").unwrap();
    assert_eq!(github.secret.expose(), SECRET);
    assert_eq!(
        github.source.setting,
        SourceSetting::Fixed(crate::sources::SourceKind::Github)
    );
    assert_eq!(github.template.as_deref(), Some("github/push"));
    assert!(github.sends("pull_request", Some("opened")));
    assert!(!github.sends("pull_request", Some("closed")));
    assert!(!github.auth.is_open());
    let alerts = settings.routes.get("alerts").unwrap();
    assert_eq!(alerts.source.default_importance.get(), 4);
    assert_eq!(alerts.source.grouping, AlertGrouping::Alert);
    assert_eq!(alerts.source.resolved, ResolvedPolicy::Suppress);
    assert!(!alerts.sends("ping", None));
}

#[test]
fn every_route_problem_is_reported_and_no_secret_is_shown() {
    let error = Settings::from_vars(vars(&[
        ("PUSHJET_BRIDGE_ROUTES", "a,b,Bad!,a"),
        ("PUSHJET_BRIDGE_ROUTE_A_SECRET", "not-a-valid-secret-value"),
        ("PUSHJET_BRIDGE_ROUTE_A_SOURCE", "jira"),
        ("PUSHJET_BRIDGE_ROUTE_A_IMPORTANCE", "7"),
        ("PUSHJET_BRIDGE_ROUTE_B_SECRET", SECRET),
        ("PUSHJET_BRIDGE_ROUTE_B_SECRET_FILE", "/nonexistent"),
        ("PUSHJET_BRIDGE_ROUTE_B_BASIC_AUTH", "no-colon-here"),
    ]))
    .unwrap_err();
    let text = error.to_string();
    assert_eq!(error.0.len(), 7, "{text}");
    assert!(text.contains("PUSHJET_BRIDGE_ROUTE_A_SOURCE"), "{text}");
    assert!(text.contains("PUSHJET_BRIDGE_ROUTE_A_IMPORTANCE"), "{text}");
    assert!(text.contains("named twice"), "{text}");
    assert!(!text.contains("not-a-valid-secret-value"), "{text}");
    assert!(!text.contains(SECRET), "{text}");
    assert!(!text.contains("no-colon-here"), "{text}");
}

#[test]
fn a_blank_events_setting_is_unset_and_sends_every_event() {
    let settings = Settings::from_vars(vars(&[
        ("PUSHJET_BRIDGE_ROUTES", "ci"),
        ("PUSHJET_BRIDGE_ROUTE_CI_SECRET", SECRET),
        ("PUSHJET_BRIDGE_ROUTE_CI_EVENTS", " "),
    ]))
    .unwrap();
    let route = settings.routes.get("ci").unwrap();
    assert!(route.events.is_none());
    assert!(route.sends("push", None));
    assert!(route.sends("message", None));
}

#[test]
fn settings_debug_shows_no_secret() {
    let settings = Settings::from_vars(vars(&[
        ("PUSHJET_BRIDGE_ROUTES", "r"),
        ("PUSHJET_BRIDGE_ROUTE_R_SECRET", SECRET),
        ("PUSHJET_BRIDGE_ROUTE_R_TOKEN", "route-token-value"),
        (
            "PUSHJET_BRIDGE_ROUTE_R_WEBHOOK_SECRET",
            "webhook-secret-value",
        ),
        (
            "PUSHJET_BRIDGE_ROUTE_R_BASIC_AUTH",
            "user:basic-password-value",
        ),
        ("PUSHJET_BRIDGE_METRICS_TOKEN", "metrics-token-value"),
        ("PUSHJET_BRIDGE_ADMIN_TOKEN", "admin-token-value-long"),
    ]))
    .unwrap();
    let printed = format!("{settings:?}");
    for secret in [
        SECRET,
        "route-token-value",
        "webhook-secret-value",
        "basic-password-value",
        "metrics-token-value",
        "admin-token-value-long",
    ] {
        assert!(!printed.contains(secret), "{secret} in {printed}");
    }
}

#[test]
fn a_route_without_a_secret_is_refused() {
    let error = Settings::from_vars(vars(&[("PUSHJET_BRIDGE_ROUTES", "plain")])).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("PUSHJET_BRIDGE_ROUTE_PLAIN_SECRET"),
        "{error}"
    );
}

const ADMIN_TOKEN: &str = "s3cr3t-admin-token-0123456789";

#[test]
fn the_admin_token_comes_from_the_variable_or_its_file_and_must_be_long_enough() {
    let admin = |pairs: &[(&str, &str)]| Settings::from_vars(vars(pairs)).map(|s| s.tokens.admin);
    assert!(admin(&[]).unwrap().is_none());
    assert!(
        admin(&[("PUSHJET_BRIDGE_ADMIN_TOKEN", "  ")])
            .unwrap()
            .is_none()
    );
    let set = admin(&[("PUSHJET_BRIDGE_ADMIN_TOKEN", ADMIN_TOKEN)])
        .unwrap()
        .unwrap();
    assert!(set.matches(ADMIN_TOKEN.as_bytes()));
    let short = admin(&[("PUSHJET_BRIDGE_ADMIN_TOKEN", "short")]).unwrap_err();
    assert!(
        short.to_string().contains("at least 16 characters"),
        "{short}"
    );
    assert!(!short.to_string().contains("short`"), "{short}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, format!("{ADMIN_TOKEN}\n")).unwrap();
    let path = file.to_str().unwrap();
    let token = admin(&[("PUSHJET_BRIDGE_ADMIN_TOKEN_FILE", path)])
        .unwrap()
        .unwrap();
    assert!(token.matches(ADMIN_TOKEN.as_bytes()));
    assert!(!format!("{token:?}").contains(ADMIN_TOKEN));
    let both = admin(&[
        ("PUSHJET_BRIDGE_ADMIN_TOKEN", ADMIN_TOKEN),
        ("PUSHJET_BRIDGE_ADMIN_TOKEN_FILE", path),
    ])
    .unwrap_err();
    assert!(both.to_string().contains("both set"), "{both}");
}

#[test]
fn the_metrics_token_is_a_secret_read_like_the_others() {
    let settings =
        Settings::from_vars(vars(&[("PUSHJET_BRIDGE_METRICS_TOKEN", " m-token ")])).unwrap();
    let token = settings.tokens.metrics.unwrap();
    assert!(token.matches(b"m-token"));
    let open = Settings::from_vars(vars(&[("PUSHJET_BRIDGE_METRICS_TOKEN", "")])).unwrap();
    assert!(open.tokens.metrics.is_none());
}

#[test]
fn a_misspelled_route_setting_is_a_problem_with_the_name_meant() {
    let error = Settings::from_vars(vars(&[
        ("PUSHJET_BRIDGE_ROUTES", "gh"),
        ("PUSHJET_BRIDGE_ROUTE_GH_SECRET", SECRET),
        (
            "PUSHJET_BRIDGE_ROUTE_GH_WEBHOOK_SECRETS",
            "hmac-secret-value",
        ),
    ]))
    .unwrap_err();
    assert_eq!(
        error.0,
        vec![
            "PUSHJET_BRIDGE_ROUTE_GH_WEBHOOK_SECRETS is not a setting (did you mean \
             `PUSHJET_BRIDGE_ROUTE_GH_WEBHOOK_SECRET`?)"
                .to_owned()
        ]
    );
    assert!(!error.to_string().contains("hmac-secret-value"));
}

#[test]
fn a_misspelled_global_setting_is_a_problem_with_the_name_meant() {
    let error = Settings::from_vars(vars(&[("PUSHJET_BRIDGE_MAX_BODYBYTES", "1000")])).unwrap_err();
    assert_eq!(
        error.0,
        vec![
            "PUSHJET_BRIDGE_MAX_BODYBYTES is not a setting (did you mean \
             `PUSHJET_BRIDGE_MAX_BODY_BYTES`?)"
                .to_owned()
        ]
    );
}

#[test]
fn a_setting_of_a_route_not_listed_is_a_problem() {
    let error = Settings::from_vars(vars(&[
        ("PUSHJET_BRIDGE_ROUTES", "gh"),
        ("PUSHJET_BRIDGE_ROUTE_GH_SECRET", SECRET),
        ("PUSHJET_BRIDGE_ROUTE_GH_PROD_WEBHOOK_SECRET", "x"),
        (
            "PUSHJET_BRIDGE_ROUTE_ALERTS_TOKEN_FILE",
            "/run/secrets/token",
        ),
    ]))
    .unwrap_err();
    let text = error.to_string();
    assert_eq!(error.0.len(), 2, "{text}");
    assert!(
        text.contains(
            "PUSHJET_BRIDGE_ROUTE_GH_PROD_WEBHOOK_SECRET is set, but PUSHJET_BRIDGE_ROUTES does \
             not name `gh_prod` (or `gh-prod`)"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "PUSHJET_BRIDGE_ROUTE_ALERTS_TOKEN_FILE is set, but PUSHJET_BRIDGE_ROUTES does not \
             name `alerts`"
        ),
        "{text}"
    );
}

#[test]
fn unknown_settings_are_reported_with_every_other_problem_at_once() {
    let error = Settings::from_vars(vars(&[
        ("PUSHJET_BRIDGE_LISTEN", "nowhere"),
        ("PUSHJET_BRIDGE_MAX_BODYBYTES", "1000"),
        ("PUSHJET_BRIDGE_COLOUR", "blue"),
        ("PUSHJET_BRIDGE_ROUTE_X_SECRET", SECRET),
    ]))
    .unwrap_err();
    let text = error.to_string();
    assert_eq!(error.0.len(), 4, "{text}");
    assert!(text.contains("PUSHJET_BRIDGE_LISTEN: `nowhere`"), "{text}");
    assert!(
        text.contains("PUSHJET_BRIDGE_COLOUR is not a setting (the README's tables"),
        "{text}"
    );
}

#[test]
fn file_variants_the_test_suites_variable_and_kubernetes_service_links_are_not_problems() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, SECRET).unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "a-token-of-sixteen-chars").unwrap();
    let (secret, token) = (secret.to_str().unwrap(), token.to_str().unwrap());
    Settings::from_vars(vars(&[
        ("PUSHJET_BRIDGE_ROUTES", "gh-prod"),
        ("PUSHJET_BRIDGE_ROUTE_GH_PROD_SECRET_FILE", secret),
        ("PUSHJET_BRIDGE_ROUTE_GH_PROD_WEBHOOK_SECRET_FILE", token),
        ("PUSHJET_BRIDGE_ROUTE_GH_PROD_TOKEN_FILE", token),
        ("PUSHJET_BRIDGE_ADMIN_TOKEN_FILE", token),
        ("PUSHJET_BRIDGE_METRICS_TOKEN_FILE", token),
        ("PUSHJET_BRIDGE_TEST_PYTHON", "/usr/bin/python3"),
        ("PUSHJET_BRIDGE_SERVICE_HOST", "10.96.0.12"),
        ("PUSHJET_BRIDGE_PORT_8080_TCP_ADDR", "10.96.0.12"),
        ("PUSHJET_BRIDGE_ENV_FILE", ""),
        ("PUSHJET_API_URL", ""),
    ]))
    .unwrap();
}

#[test]
fn a_routes_noise_settings_are_read_into_its_policy() {
    let settings = Settings::from_vars(vars(&[
        ("PUSHJET_BRIDGE_ROUTES", "ci"),
        ("PUSHJET_BRIDGE_ROUTE_CI_SECRET", SECRET),
        ("PUSHJET_BRIDGE_ROUTE_CI_RATE", "10/1m"),
        ("PUSHJET_BRIDGE_ROUTE_CI_QUIET_HOURS", "22:00-07:00"),
        ("PUSHJET_BRIDGE_ROUTE_CI_QUIET_TIMEZONE", "Europe/Berlin"),
        ("PUSHJET_BRIDGE_ROUTE_CI_QUIET_MIN_IMPORTANCE", "4"),
        ("PUSHJET_BRIDGE_ROUTE_CI_COLLAPSE", "30m"),
        ("PUSHJET_BRIDGE_ALERT_DEDUP_WINDOW", "2m"),
    ]))
    .unwrap();
    let route = settings.routes.get("ci").unwrap();
    let rate = route.noise.rate.unwrap();
    assert_eq!((rate.count, rate.window), (10, Duration::from_secs(60)));
    let quiet = route.noise.quiet.as_ref().unwrap();
    assert_eq!(quiet.to_string(), "22:00-07:00 Europe/Berlin");
    assert_eq!(quiet.min_importance().get(), 4);
    assert_eq!(route.noise.collapse, Some(Duration::from_secs(30 * 60)));
    assert_eq!(
        settings.delivery.alert_dedup_window,
        Duration::from_secs(120)
    );
}

#[test]
fn every_noise_problem_of_a_route_is_reported_at_once() {
    let error = Settings::from_vars(vars(&[
        ("PUSHJET_BRIDGE_ROUTES", "ci,now"),
        ("PUSHJET_BRIDGE_ROUTE_CI_SECRET", SECRET),
        ("PUSHJET_BRIDGE_ROUTE_CI_RATE", "10 per minute"),
        ("PUSHJET_BRIDGE_ROUTE_CI_QUIET_HOURS", "22:00-25:00"),
        ("PUSHJET_BRIDGE_ROUTE_CI_QUIET_TIMEZONE", "Europe/Atlantis"),
        ("PUSHJET_BRIDGE_ROUTE_CI_COLLAPSE", "forever"),
        ("PUSHJET_BRIDGE_ROUTE_NOW_SECRET", SECRET),
        ("PUSHJET_BRIDGE_ROUTE_NOW_DELIVERY", "sync"),
        ("PUSHJET_BRIDGE_ROUTE_NOW_RATE", "5/10s"),
        ("PUSHJET_BRIDGE_ROUTE_NOW_QUIET_MIN_IMPORTANCE", "4"),
    ]))
    .unwrap_err();
    let text = error.to_string();
    for variable in [
        "PUSHJET_BRIDGE_ROUTE_CI_RATE",
        "PUSHJET_BRIDGE_ROUTE_CI_QUIET_HOURS",
        "PUSHJET_BRIDGE_ROUTE_CI_QUIET_TIMEZONE",
        "PUSHJET_BRIDGE_ROUTE_CI_COLLAPSE",
        "PUSHJET_BRIDGE_ROUTE_NOW_DELIVERY",
        "PUSHJET_BRIDGE_ROUTE_NOW_QUIET_MIN_IMPORTANCE",
    ] {
        assert!(text.contains(variable), "{variable} not in: {text}");
    }
    assert_eq!(error.0.len(), 6, "{text}");
}

#[test]
fn a_routes_read_only_credentials_come_from_variables_or_files_and_stay_hidden() {
    use crate::verify::ReadAccess;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("subscribe-token");
    std::fs::write(&file, "read-token-value\n").unwrap();
    let path = file.display().to_string();
    let settings = Settings::from_vars(vars(&[
        ("PUSHJET_BRIDGE_ROUTES", "r"),
        ("PUSHJET_BRIDGE_ROUTE_R_SECRET", SECRET),
        ("PUSHJET_BRIDGE_ROUTE_R_SUBSCRIBE_TOKEN_FILE", &path),
        (
            "PUSHJET_BRIDGE_ROUTE_R_SUBSCRIBE_BASIC_AUTH",
            "phone:pin-value",
        ),
    ]))
    .unwrap();
    let route = settings.routes.get("r").unwrap();
    assert_eq!(
        route.readers.check(Some("Bearer read-token-value")),
        ReadAccess::Granted
    );
    assert_eq!(route.readers.check(None), ReadAccess::Missing);
    let printed = format!("{settings:?}");
    assert!(!printed.contains("read-token-value") && !printed.contains("pin-value"));

    let error = Settings::from_vars(vars(&[
        ("PUSHJET_BRIDGE_ROUTES", "r"),
        ("PUSHJET_BRIDGE_ROUTE_R_SECRET", SECRET),
        (
            "PUSHJET_BRIDGE_ROUTE_R_SUBSCRIBE_BASIC_AUTH",
            "no-colon-value",
        ),
    ]))
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("PUSHJET_BRIDGE_ROUTE_R_SUBSCRIBE_*"),
        "{error}"
    );
    assert!(!error.contains("no-colon-value"), "{error}");
}
