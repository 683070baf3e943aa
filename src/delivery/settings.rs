//! The delivery layer's settings, read from `PUSHJET_BRIDGE_*` variables with envy. Durations are
//! written the humantime way: `90s`, `15m`, `24h`, `1h 30m`, `250ms`.

use std::time::Duration;

use serde::Deserialize;

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
    /// The most notifications waiting for delivery; beyond it new work is refused
    /// (`PUSHJET_BRIDGE_MAX_QUEUE`, default 100,000).
    pub max_queue: u64,
    /// How long sends in flight may take to finish when the service stops
    /// (`PUSHJET_BRIDGE_SHUTDOWN_GRACE`, default `10s`).
    pub shutdown_grace: Duration,
    /// How long one request to the Pushjet API may take (`PUSHJET_BRIDGE_SEND_TIMEOUT`,
    /// default `10s`).
    pub send_timeout: Duration,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        Self {
            concurrency: 8,
            retry_for: Duration::from_secs(24 * 60 * 60),
            retry_min_delay: Duration::from_secs(1),
            retry_max_delay: Duration::from_secs(10 * 60),
            dedup_window: Duration::from_secs(24 * 60 * 60),
            max_queue: 100_000,
            shutdown_grace: Duration::from_secs(10),
            send_timeout: Duration::from_secs(10),
        }
    }
}

/// Why the delivery settings could not be read; lists every problem at once, each naming its
/// variable.
#[derive(Debug, thiserror::Error)]
#[error("the delivery settings have {} problem(s):\n  - {}", .0.len(), .0.join("\n  - "))]
pub struct DeliverySettingsError(pub Vec<String>);

#[derive(Deserialize)]
struct Vars {
    delivery_concurrency: Option<String>,
    retry_for: Option<String>,
    retry_min_delay: Option<String>,
    retry_max_delay: Option<String>,
    dedup_window: Option<String>,
    max_queue: Option<String>,
    shutdown_grace: Option<String>,
    send_timeout: Option<String>,
}

/// The largest concurrency accepted; more would only open more connections to one server.
const MAX_CONCURRENCY: usize = 1024;

impl DeliverySettings {
    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Self, DeliverySettingsError> {
        Self::from_vars(std::env::vars())
    }

    /// Reads the settings from the given variables; unset or blank ones take their default.
    pub fn from_vars(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, DeliverySettingsError> {
        let vars: Vars = envy::prefixed("PUSHJET_BRIDGE_")
            .from_iter(vars)
            .map_err(|error| DeliverySettingsError(vec![error.to_string()]))?;
        let defaults = Self::default();
        let mut problems = Vec::new();
        let mut duration = |name: &str, raw: Option<String>, default: Duration| {
            setting(&mut problems, name, raw, default, parse_duration)
        };
        let retry_for = duration("RETRY_FOR", vars.retry_for, defaults.retry_for);
        let retry_min_delay = duration(
            "RETRY_MIN_DELAY",
            vars.retry_min_delay,
            defaults.retry_min_delay,
        );
        let retry_max_delay = duration(
            "RETRY_MAX_DELAY",
            vars.retry_max_delay,
            defaults.retry_max_delay,
        );
        let dedup_window = duration("DEDUP_WINDOW", vars.dedup_window, defaults.dedup_window);
        let shutdown_grace = duration(
            "SHUTDOWN_GRACE",
            vars.shutdown_grace,
            defaults.shutdown_grace,
        );
        let send_timeout = duration("SEND_TIMEOUT", vars.send_timeout, defaults.send_timeout);
        let concurrency = setting(
            &mut problems,
            "DELIVERY_CONCURRENCY",
            vars.delivery_concurrency,
            defaults.concurrency,
            |raw| match raw.parse::<usize>() {
                Ok(value) if (1..=MAX_CONCURRENCY).contains(&value) => Ok(value),
                _ => Err(format!("is not a whole number from 1 to {MAX_CONCURRENCY}")),
            },
        );
        let max_queue = setting(
            &mut problems,
            "MAX_QUEUE",
            vars.max_queue,
            defaults.max_queue,
            |raw| match raw.replace('_', "").parse::<u64>() {
                Ok(value) if value >= 1 => Ok(value),
                _ => Err("is not a whole number of at least 1".to_owned()),
            },
        );
        if retry_min_delay.is_zero() {
            problems.push("PUSHJET_BRIDGE_RETRY_MIN_DELAY must be longer than zero".to_owned());
        }
        if retry_max_delay < retry_min_delay {
            problems.push(format!(
                "PUSHJET_BRIDGE_RETRY_MAX_DELAY ({}) is shorter than PUSHJET_BRIDGE_RETRY_MIN_DELAY ({})",
                humantime::format_duration(retry_max_delay),
                humantime::format_duration(retry_min_delay)
            ));
        }
        if send_timeout.is_zero() {
            problems.push("PUSHJET_BRIDGE_SEND_TIMEOUT must be longer than zero".to_owned());
        }
        if problems.is_empty() {
            Ok(Self {
                concurrency,
                retry_for,
                retry_min_delay,
                retry_max_delay,
                dedup_window,
                max_queue,
                shutdown_grace,
                send_timeout,
            })
        } else {
            Err(DeliverySettingsError(problems))
        }
    }
}

/// Parses one setting (blank counts as unset), recording a problem that names the variable and
/// falling back to the default so every other problem is still found.
pub(crate) fn setting<T>(
    problems: &mut Vec<String>,
    name: &str,
    raw: Option<String>,
    default: T,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> T {
    let Some(raw) = raw.filter(|raw| !raw.trim().is_empty()) else {
        return default;
    };
    parse(raw.trim()).unwrap_or_else(|problem| {
        problems.push(format!("PUSHJET_BRIDGE_{name}: `{raw}` {problem}"));
        default
    })
}

pub(crate) fn parse_duration(raw: &str) -> Result<Duration, String> {
    humantime::parse_duration(raw)
        .map_err(|error| format!("is not a duration such as 90s, 15m or 24h ({error})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
            .collect()
    }

    #[test]
    fn unset_variables_give_the_documented_defaults() {
        let settings = DeliverySettings::from_vars(vars(&[])).unwrap();
        assert_eq!(settings, DeliverySettings::default());
        assert_eq!(settings.concurrency, 8);
        assert_eq!(settings.retry_for, Duration::from_secs(86_400));
        assert_eq!(settings.dedup_window, Duration::from_secs(86_400));
        assert_eq!(settings.max_queue, 100_000);
    }

    #[test]
    fn durations_are_read_the_humantime_way() {
        let settings = DeliverySettings::from_vars(vars(&[
            ("PUSHJET_BRIDGE_RETRY_FOR", "90s"),
            ("PUSHJET_BRIDGE_DEDUP_WINDOW", "15m"),
            ("PUSHJET_BRIDGE_SHUTDOWN_GRACE", "1h 30m"),
            ("PUSHJET_BRIDGE_RETRY_MIN_DELAY", "250ms"),
            ("PUSHJET_BRIDGE_DELIVERY_CONCURRENCY", "3"),
            ("PUSHJET_BRIDGE_MAX_QUEUE", "5_000"),
            ("PUSHJET_BRIDGE_SEND_TIMEOUT", " "),
        ]))
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
        let error = DeliverySettings::from_vars(vars(&[
            ("PUSHJET_BRIDGE_RETRY_FOR", "forever"),
            ("PUSHJET_BRIDGE_DELIVERY_CONCURRENCY", "0"),
            ("PUSHJET_BRIDGE_MAX_QUEUE", "lots"),
            ("PUSHJET_BRIDGE_RETRY_MIN_DELAY", "2m"),
            ("PUSHJET_BRIDGE_RETRY_MAX_DELAY", "1m"),
        ]))
        .unwrap_err();
        let text = error.to_string();
        assert_eq!(error.0.len(), 4, "{text}");
        for name in [
            "RETRY_FOR",
            "DELIVERY_CONCURRENCY",
            "MAX_QUEUE",
            "RETRY_MAX_DELAY",
        ] {
            assert!(text.contains(&format!("PUSHJET_BRIDGE_{name}")), "{text}");
        }
    }
}
