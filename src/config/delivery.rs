//! The outbox's and the dispatcher's settings. Durations are written the humantime way: `90s`,
//! `15m`, `24h`, `1h 30m`, `250ms`.

use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;
use super::database::{DEFAULT_DATABASE_TIMEOUT, DatabaseCa, DatabaseUrl};
use super::read::{Problems, parse_count, parse_duration};

const PREFIX: &str = "PUSHJET_BRIDGE_";

/// How the outbox and its delivery workers behave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliverySettings {
    /// How many notifications are sent at once, each to a different route
    /// (`PUSHJET_BRIDGE_DELIVERY_CONCURRENCY`, default 8).
    pub concurrency: usize,
    /// How long a notification is retried after transient failures before it becomes a dead
    /// letter (`PUSHJET_BRIDGE_RETRY_FOR`, default `24h`).
    pub retry_for: Duration,
    /// The first retry's ceiling: the n-th retry waits a random time up to
    /// `retry_min_delay * 2^(n-1)` (`PUSHJET_BRIDGE_RETRY_MIN_DELAY`, default `1s`).
    pub retry_min_delay: Duration,
    /// The largest ceiling of a retry's random wait (`PUSHJET_BRIDGE_RETRY_MAX_DELAY`,
    /// default `10m`). A server's `Retry-After` may ask for longer and is honoured.
    pub retry_max_delay: Duration,
    /// How long a webhook's dedup key is remembered (`PUSHJET_BRIDGE_DEDUP_WINDOW`, default `24h`).
    pub dedup_window: Duration,
    /// How long an alert group's state (Alertmanager, Grafana: they send no delivery id) is
    /// remembered: long enough for an HA pair's two copies, short enough to let every
    /// `repeat_interval` reminder through (`PUSHJET_BRIDGE_ALERT_DEDUP_WINDOW`, default `5m`).
    pub alert_dedup_window: Duration,
    /// The most notifications waiting for delivery; beyond it new work is refused
    /// (`PUSHJET_BRIDGE_MAX_QUEUE`, default 100,000).
    pub max_queue: u64,
    /// How long sends in flight may take to finish when the service stops
    /// (`PUSHJET_BRIDGE_SHUTDOWN_GRACE`, default `10s`).
    pub shutdown_grace: Duration,
    /// How long one request to the Pushjet API may take (`PUSHJET_BRIDGE_SEND_TIMEOUT`,
    /// default `10s`).
    pub send_timeout: Duration,
    /// The PostgreSQL database the outbox (and the embedded Pushjet API's store) is kept in,
    /// shared by every replica (`PUSHJET_BRIDGE_DATABASE_URL[_FILE]`, with the CA certificates
    /// of `PUSHJET_BRIDGE_DATABASE_CA_FILE` and the bound on every wait of
    /// `PUSHJET_BRIDGE_DATABASE_TIMEOUT`); `None` keeps them in the data directory (redb).
    pub database: Option<DatabaseUrl>,
    /// How long a replica's claim on a route lasts without being renewed: a replica that dies
    /// mid-send loses its routes after this long (`PUSHJET_BRIDGE_LEASE`, default `30s`; longer
    /// than `PUSHJET_BRIDGE_SEND_TIMEOUT`). Only a shared database uses it.
    pub lease: Duration,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        Self {
            concurrency: 8,
            retry_for: Duration::from_secs(24 * 60 * 60),
            retry_min_delay: Duration::from_secs(1),
            retry_max_delay: Duration::from_secs(10 * 60),
            dedup_window: Duration::from_secs(24 * 60 * 60),
            alert_dedup_window: Duration::from_secs(5 * 60),
            max_queue: 100_000,
            shutdown_grace: Duration::from_secs(10),
            send_timeout: Duration::from_secs(10),
            database: None,
            lease: Duration::from_secs(30),
        }
    }
}

#[derive(Deserialize)]
struct Vars {
    delivery_concurrency: Option<String>,
    retry_for: Option<String>,
    retry_min_delay: Option<String>,
    retry_max_delay: Option<String>,
    dedup_window: Option<String>,
    alert_dedup_window: Option<String>,
    max_queue: Option<String>,
    shutdown_grace: Option<String>,
    send_timeout: Option<String>,
    database_url: Option<String>,
    database_url_file: Option<std::path::PathBuf>,
    database_ca_file: Option<std::path::PathBuf>,
    database_timeout: Option<String>,
    lease: Option<String>,
}

/// The shortest `PUSHJET_BRIDGE_DATABASE_TIMEOUT`: a round trip must fit in it.
const MIN_DATABASE_TIMEOUT: Duration = Duration::from_millis(100);
/// The longest `PUSHJET_BRIDGE_DATABASE_TIMEOUT`: longer, and senders time out first.
const MAX_DATABASE_TIMEOUT: Duration = Duration::from_secs(60);

/// The largest concurrency accepted; more would only open more connections to one server.
const MAX_CONCURRENCY: usize = 1024;

impl DeliverySettings {
    /// Reads only the delivery settings from the process environment (the `dead-letters` command
    /// needs no routes).
    pub fn from_env() -> Result<Self, ConfigError> {
        let vars: Vec<(String, String)> = std::env::vars().collect();
        let mut problems = Problems::default();
        let settings = super::read::Vars::with_env_file(&vars)
            .map_err(|problem| ConfigError(vec![problem]))
            .map(|vars| Self::read(&vars, &mut problems))?;
        problems.into_result(settings).map_err(ConfigError)
    }

    /// Reads the settings; unset or blank variables take their default, and each problem is
    /// recorded by its variable.
    pub(super) fn read(vars: &super::read::Vars, problems: &mut Problems) -> Self {
        let defaults = Self::default();
        let Some(raw) = vars.section::<Vars>(PREFIX, problems) else {
            return defaults;
        };
        let name = |key: &str| format!("{PREFIX}{key}");
        let mut duration = |key: &str, raw: Option<String>, default: Duration| {
            problems.parse(&name(key), raw.as_deref(), default, parse_duration)
        };
        let retry_for = duration("RETRY_FOR", raw.retry_for, defaults.retry_for);
        let retry_min_delay = duration(
            "RETRY_MIN_DELAY",
            raw.retry_min_delay,
            defaults.retry_min_delay,
        );
        let retry_max_delay = duration(
            "RETRY_MAX_DELAY",
            raw.retry_max_delay,
            defaults.retry_max_delay,
        );
        let dedup_window = duration("DEDUP_WINDOW", raw.dedup_window, defaults.dedup_window);
        let alert_dedup_window = duration(
            "ALERT_DEDUP_WINDOW",
            raw.alert_dedup_window,
            defaults.alert_dedup_window,
        );
        let shutdown_grace = duration(
            "SHUTDOWN_GRACE",
            raw.shutdown_grace,
            defaults.shutdown_grace,
        );
        let send_timeout = duration("SEND_TIMEOUT", raw.send_timeout, defaults.send_timeout);
        let lease = duration("LEASE", raw.lease, defaults.lease);
        let database_timeout = duration(
            "DATABASE_TIMEOUT",
            raw.database_timeout,
            DEFAULT_DATABASE_TIMEOUT,
        );
        let concurrency = problems.parse(
            &name("DELIVERY_CONCURRENCY"),
            raw.delivery_concurrency.as_deref(),
            defaults.concurrency,
            |raw| parse_count(raw, 1..=MAX_CONCURRENCY),
        );
        let max_queue = problems.parse(
            &name("MAX_QUEUE"),
            raw.max_queue.as_deref(),
            defaults.max_queue,
            |raw| parse_count(raw, 1..=u64::MAX),
        );
        if retry_min_delay.is_zero() {
            problems.push(format!("{PREFIX}RETRY_MIN_DELAY must be longer than zero"));
        }
        if retry_max_delay < retry_min_delay {
            problems.push(format!(
                "{PREFIX}RETRY_MAX_DELAY ({}) is shorter than {PREFIX}RETRY_MIN_DELAY ({})",
                humantime::format_duration(retry_max_delay),
                humantime::format_duration(retry_min_delay)
            ));
        }
        if send_timeout.is_zero() {
            problems.push(format!("{PREFIX}SEND_TIMEOUT must be longer than zero"));
        }
        if !(MIN_DATABASE_TIMEOUT..=MAX_DATABASE_TIMEOUT).contains(&database_timeout) {
            problems.push(format!(
                "{PREFIX}DATABASE_TIMEOUT must be from {} to {}",
                humantime::format_duration(MIN_DATABASE_TIMEOUT),
                humantime::format_duration(MAX_DATABASE_TIMEOUT)
            ));
        }
        let url_unset = raw
            .database_url
            .as_deref()
            .is_none_or(|url| url.trim().is_empty())
            && raw.database_url_file.is_none();
        let ca = raw
            .database_ca_file
            .filter(|path| !path.as_os_str().is_empty())
            .and_then(|path| {
                if url_unset {
                    problems.push(format!(
                        "{PREFIX}DATABASE_CA_FILE is set but {PREFIX}DATABASE_URL is not: \
                         there is no database to trust it for"
                    ));
                }
                DatabaseCa::read(&path)
                    .map_err(|error| problems.push(format!("{PREFIX}DATABASE_CA_FILE: {error}")))
                    .ok()
            });
        let database = problems
            .secret(
                &name("DATABASE_URL"),
                raw.database_url,
                raw.database_url_file,
            )
            .filter(|url| !url.is_empty())
            .and_then(|url| {
                DatabaseUrl::parse(&url)
                    .map_err(|error| problems.push(format!("{PREFIX}DATABASE_URL: {error}")))
                    .ok()
            })
            .map(|url| match ca {
                Some(ca) => url.with_ca(ca),
                None => url,
            })
            .map(|url| url.with_timeout(database_timeout));
        if database.is_some() && lease <= send_timeout {
            problems.push(format!(
                "{PREFIX}LEASE ({}) must be longer than {PREFIX}SEND_TIMEOUT ({}): a replica \
                 renews its lease between sends",
                humantime::format_duration(lease),
                humantime::format_duration(send_timeout)
            ));
        }
        Self {
            concurrency,
            retry_for,
            retry_min_delay,
            retry_max_delay,
            dedup_window,
            alert_dedup_window,
            max_queue,
            shutdown_grace,
            send_timeout,
            database,
            lease,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(pairs: &[(&str, &str)]) -> Result<DeliverySettings, Vec<String>> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
            .collect();
        let vars = super::super::read::Vars::with_env_file(&pairs).unwrap();
        let mut problems = Problems::default();
        let settings = DeliverySettings::read(&vars, &mut problems);
        problems.into_result(settings)
    }

    #[test]
    fn unset_variables_give_the_documented_defaults() {
        let settings = read(&[]).unwrap();
        assert_eq!(settings, DeliverySettings::default());
        assert_eq!(settings.concurrency, 8);
        assert_eq!(settings.retry_for, Duration::from_secs(86_400));
        assert_eq!(settings.dedup_window, Duration::from_secs(86_400));
        assert_eq!(settings.max_queue, 100_000);
        assert_eq!(settings.database, None);
        assert_eq!(settings.lease, Duration::from_secs(30));
    }

    #[test]
    fn the_database_url_is_a_secret_and_the_lease_outlasts_a_send() {
        let settings = read(&[
            (
                "PUSHJET_BRIDGE_DATABASE_URL",
                "postgres://bridge:pa55word@db:5432/bridge",
            ),
            ("PUSHJET_BRIDGE_LEASE", "45s"),
        ])
        .unwrap();
        let database = settings.database.as_ref().unwrap();
        assert_eq!(database.redacted(), "postgres://bridge@db:5432/bridge");
        assert_eq!(database.timeout(), Duration::from_secs(5));
        assert_eq!(settings.lease, Duration::from_secs(45));
        assert!(!format!("{settings:?}").contains("pa55word"));

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("url");
        std::fs::write(&file, "postgres://bridge:pa55word@db/bridge\n").unwrap();
        let from_file =
            read(&[("PUSHJET_BRIDGE_DATABASE_URL_FILE", file.to_str().unwrap())]).unwrap();
        assert_eq!(
            from_file.database.unwrap().redacted(),
            "postgres://bridge@db:5432/bridge"
        );

        let problems = read(&[
            (
                "PUSHJET_BRIDGE_DATABASE_URL",
                "postgres://u:pa55word@db:port/x",
            ),
            ("PUSHJET_BRIDGE_SEND_TIMEOUT", "30s"),
        ])
        .unwrap_err()
        .join("\n");
        assert!(
            problems.contains("PUSHJET_BRIDGE_DATABASE_URL"),
            "{problems}"
        );
        assert!(!problems.contains("pa55word"), "{problems}");
        let short = read(&[
            ("PUSHJET_BRIDGE_DATABASE_URL", "postgres://u@db/x"),
            ("PUSHJET_BRIDGE_LEASE", "5s"),
        ])
        .unwrap_err()
        .join("\n");
        assert!(
            short.contains("PUSHJET_BRIDGE_LEASE (5s) must be longer"),
            "{short}"
        );
    }

    /// A self-signed CA certificate, PEM.
    fn ca_pem(name: &str) -> String {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().pem()
    }

    #[test]
    fn the_database_ca_file_goes_with_the_url() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ca.pem");
        // Two CAs, and a key the reader skips.
        let key = rcgen::KeyPair::generate().unwrap().serialize_pem();
        std::fs::write(&file, ca_pem("first") + &key + &ca_pem("second")).unwrap();
        let settings = read(&[
            (
                "PUSHJET_BRIDGE_DATABASE_URL",
                "postgres://bridge:pa55word@db/bridge?sslmode=require",
            ),
            ("PUSHJET_BRIDGE_DATABASE_CA_FILE", file.to_str().unwrap()),
        ])
        .unwrap();
        let database = settings.database.as_ref().unwrap();
        assert_eq!(database.ca().trust_anchors().len(), 2);
        let debug = format!("{settings:?}");
        assert!(debug.contains("DatabaseCa(2 certificates)"), "{debug}");
        assert!(!debug.contains("pa55word"), "{debug}");

        let without = read(&[(
            "PUSHJET_BRIDGE_DATABASE_URL",
            "postgres://bridge:pa55word@db/bridge?sslmode=require",
        )])
        .unwrap();
        assert!(without.database.unwrap().ca().trust_anchors().is_empty());
    }

    #[test]
    fn a_bad_database_ca_file_is_a_problem_naming_the_variable_and_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let garbage =
            "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n";
        let not_der = "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n";
        let unended = "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n";
        let cases = [
            ("missing.pem", None, "cannot read"),
            ("empty.pem", Some(""), "holds no PEM certificate"),
            (
                "text.pem",
                Some("just some text\n"),
                "holds no PEM certificate",
            ),
            ("garbage.pem", Some(garbage), "is not valid PEM"),
            ("unended.pem", Some(unended), "is not valid PEM"),
            (
                "not-der.pem",
                Some(not_der),
                "certificate 1 is not a usable CA",
            ),
        ];
        for (name, contents, expected) in cases {
            let path = dir.path().join(name);
            if let Some(contents) = contents {
                std::fs::write(&path, contents).unwrap();
            }
            let problems = read(&[
                ("PUSHJET_BRIDGE_DATABASE_URL", "postgres://u:pa55word@db/x"),
                ("PUSHJET_BRIDGE_DATABASE_CA_FILE", path.to_str().unwrap()),
                ("PUSHJET_BRIDGE_RETRY_FOR", "forever"),
            ])
            .unwrap_err();
            let text = problems.join("\n");
            assert_eq!(problems.len(), 2, "{name}: {text}");
            let problem = problems
                .iter()
                .find(|problem| problem.starts_with("PUSHJET_BRIDGE_DATABASE_CA_FILE: "))
                .unwrap_or_else(|| panic!("{name}: {text}"));
            assert!(problem.contains(&*path.to_string_lossy()), "{name}: {text}");
            assert!(problem.contains(expected), "{name}: {text}");
            assert!(!text.contains("pa55word"), "{name}: {text}");
        }

        let file = dir.path().join("ca.pem");
        std::fs::write(&file, ca_pem("alone")).unwrap();
        let alone = read(&[("PUSHJET_BRIDGE_DATABASE_CA_FILE", file.to_str().unwrap())])
            .unwrap_err()
            .join("\n");
        assert!(
            alone.contains(
                "PUSHJET_BRIDGE_DATABASE_CA_FILE is set but PUSHJET_BRIDGE_DATABASE_URL is not"
            ),
            "{alone}"
        );
    }

    #[test]
    fn durations_are_read_the_humantime_way() {
        let settings = read(&[
            ("PUSHJET_BRIDGE_RETRY_FOR", "90s"),
            ("PUSHJET_BRIDGE_DEDUP_WINDOW", "15m"),
            ("PUSHJET_BRIDGE_SHUTDOWN_GRACE", "1h 30m"),
            ("PUSHJET_BRIDGE_RETRY_MIN_DELAY", "250ms"),
            ("PUSHJET_BRIDGE_DELIVERY_CONCURRENCY", "3"),
            ("PUSHJET_BRIDGE_MAX_QUEUE", "5_000"),
            ("PUSHJET_BRIDGE_SEND_TIMEOUT", " "),
        ])
        .unwrap();
        assert_eq!(settings.retry_for, Duration::from_secs(90));
        assert_eq!(settings.dedup_window, Duration::from_secs(15 * 60));
        assert_eq!(settings.shutdown_grace, Duration::from_secs(90 * 60));
        assert_eq!(settings.retry_min_delay, Duration::from_millis(250));
        assert_eq!(settings.concurrency, 3);
        assert_eq!(settings.max_queue, 5_000);
        assert_eq!(settings.send_timeout, Duration::from_secs(10));
    }

    #[test]
    fn every_problem_is_reported_by_its_variable() {
        let error = read(&[
            ("PUSHJET_BRIDGE_RETRY_FOR", "forever"),
            ("PUSHJET_BRIDGE_DELIVERY_CONCURRENCY", "0"),
            ("PUSHJET_BRIDGE_MAX_QUEUE", "lots"),
            ("PUSHJET_BRIDGE_RETRY_MIN_DELAY", "2m"),
            ("PUSHJET_BRIDGE_RETRY_MAX_DELAY", "1m"),
        ])
        .unwrap_err();
        let text = error.join("\n");
        assert_eq!(error.len(), 4, "{text}");
        for name in [
            "RETRY_FOR",
            "DELIVERY_CONCURRENCY",
            "MAX_QUEUE",
            "RETRY_MAX_DELAY",
        ] {
            assert!(text.contains(&format!("PUSHJET_BRIDGE_{name}")), "{text}");
        }
    }

    #[test]
    fn the_database_timeout_goes_with_the_url_within_its_range() {
        let url = ("PUSHJET_BRIDGE_DATABASE_URL", "postgres://bridge@db/bridge");
        let settings = read(&[url, ("PUSHJET_BRIDGE_DATABASE_TIMEOUT", "1500ms")]).unwrap();
        assert_eq!(
            settings.database.unwrap().timeout(),
            Duration::from_millis(1500)
        );
        for bad in ["0s", "2m", "soon"] {
            let error = read(&[url, ("PUSHJET_BRIDGE_DATABASE_TIMEOUT", bad)]).unwrap_err();
            assert_eq!(error.len(), 1, "{bad}: {error:?}");
            assert!(
                error[0].contains("PUSHJET_BRIDGE_DATABASE_TIMEOUT"),
                "{error:?}"
            );
        }
    }
}
