//! Limits against hostile load: on every HTTP request (connections, the deadline for a request to
//! arrive, body bytes held in memory) and on the embedded Pushjet API (writes per client address,
//! who may create services, what its store keeps). README, "Limits", tables them all.

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::read::{Problems, Vars, parse_bool, parse_count, parse_duration};
use crate::secret::Secret;

const PREFIX: &str = "PUSHJET_BRIDGE_";

/// The limits every HTTP request meets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpLimits {
    /// The most requests served at once, over all workers; the ones beyond get 503 with
    /// `Retry-After`. The server accepts a quarter more connections than this to say so; more wait
    /// in the listen backlog until one closes (`PUSHJET_BRIDGE_MAX_CONNECTIONS`, default 4096).
    pub max_connections: usize,
    /// How long a request's body may take to arrive after its headers (which get 5 s at most);
    /// after it the answer is 408 and the connection is closed (`PUSHJET_BRIDGE_REQUEST_TIMEOUT`,
    /// default `30s`).
    pub request_timeout: Duration,
    /// The most request body bytes held at once over all requests; a request whose body would
    /// go beyond gets 503 with `Retry-After` (`PUSHJET_BRIDGE_MAX_BUFFERED_BYTES`, default 32 MiB).
    pub max_buffered_bytes: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_connections: 4096,
            request_timeout: Duration::from_secs(30),
            max_buffered_bytes: 32 * 1024 * 1024,
        }
    }
}

impl HttpLimits {
    /// The most connections live streams may hold: three quarters of `max_connections` (at
    /// least one), so that webhooks, health checks and the API keep connections of their own
    /// whatever the streams do.
    pub fn stream_connections(&self) -> usize {
        (self.max_connections / 4 * 3).max(1)
    }
}

/// The largest buffered-bytes budget a semaphore can count.
pub const MAX_BUFFERED_BYTES: usize = u32::MAX as usize;

/// The embedded Pushjet API's limits (`PUSHJET_BRIDGE_PUSHJET_*`).
#[derive(Debug, Clone)]
pub struct ApiLimits {
    /// Writes (`POST`, `PATCH`, `DELETE`) one client address may make per minute, in bursts of
    /// up to as many; more get 429 with `Retry-After` (`PUSHJET_BRIDGE_PUSHJET_WRITES_PER_MINUTE`,
    /// default 600).
    pub writes_per_minute: NonZeroU32,
    /// Whether loopback addresses are limited too (`PUSHJET_BRIDGE_PUSHJET_LIMIT_LOOPBACK`,
    /// default false): the bridge's own deliveries reach the embedded API over loopback.
    pub limit_loopback: bool,
    /// The most messages kept per service, and returned per device by one `GET /message`; older
    /// ones are dropped (`PUSHJET_BRIDGE_PUSHJET_MAX_UNREAD`, default 1000).
    pub max_unread: usize,
    /// How long an unread message is kept (`PUSHJET_BRIDGE_PUSHJET_MESSAGE_MAX_AGE`, default
    /// `30days`).
    pub message_max_age: Duration,
    /// The most message bytes (text, title and link) in one `GET /message` answer; the rest stays
    /// unread for the next one (`PUSHJET_BRIDGE_PUSHJET_MAX_FETCH_BYTES`, default 1 MiB).
    pub max_fetch_bytes: usize,
    /// The database size beyond which creating services, subscribing and sending get 507
    /// (`PUSHJET_BRIDGE_PUSHJET_MAX_DISK_BYTES`, default 1 GiB).
    pub max_disk_bytes: u64,
    /// The bearer token `POST /service` requires (`PUSHJET_BRIDGE_PUSHJET_CREATE_TOKEN[_FILE]`);
    /// `None` lets anybody create services, as the real server does.
    pub create_token: Option<Secret>,
}

impl Default for ApiLimits {
    fn default() -> Self {
        Self {
            writes_per_minute: NonZeroU32::new(600).unwrap_or(NonZeroU32::MIN),
            limit_loopback: false,
            max_unread: 1000,
            message_max_age: Duration::from_secs(30 * 24 * 60 * 60),
            max_fetch_bytes: 1024 * 1024,
            max_disk_bytes: 1024 * 1024 * 1024,
            create_token: None,
        }
    }
}

#[derive(Deserialize)]
struct LimitVars {
    max_connections: Option<String>,
    request_timeout: Option<String>,
    max_buffered_bytes: Option<String>,
    pushjet_writes_per_minute: Option<String>,
    pushjet_limit_loopback: Option<String>,
    pushjet_max_unread: Option<String>,
    pushjet_message_max_age: Option<String>,
    pushjet_max_fetch_bytes: Option<String>,
    pushjet_max_disk_bytes: Option<String>,
    pushjet_create_token: Option<String>,
    pushjet_create_token_file: Option<PathBuf>,
}

/// A duration longer than zero.
fn positive_duration(raw: &str) -> Result<Duration, String> {
    parse_duration(raw).and_then(|duration| {
        if duration.is_zero() {
            Err("must be longer than zero".to_owned())
        } else {
            Ok(duration)
        }
    })
}

/// Reads both sets of limits; unset or blank variables take their default.
pub(super) fn read(vars: &Vars, problems: &mut Problems) -> (HttpLimits, ApiLimits) {
    let (http, api) = (HttpLimits::default(), ApiLimits::default());
    let Some(raw) = vars.section::<LimitVars>(PREFIX, problems) else {
        return (http, api);
    };
    let name = |key: &str| format!("{PREFIX}{key}");
    let http = HttpLimits {
        max_connections: problems.parse(
            &name("MAX_CONNECTIONS"),
            raw.max_connections.as_deref(),
            http.max_connections,
            |raw| parse_count(raw, 1..=1_000_000),
        ),
        request_timeout: problems.parse(
            &name("REQUEST_TIMEOUT"),
            raw.request_timeout.as_deref(),
            http.request_timeout,
            positive_duration,
        ),
        max_buffered_bytes: problems.parse(
            &name("MAX_BUFFERED_BYTES"),
            raw.max_buffered_bytes.as_deref(),
            http.max_buffered_bytes,
            |raw| parse_count(raw, 1..=MAX_BUFFERED_BYTES),
        ),
    };
    let api = ApiLimits {
        writes_per_minute: problems.parse(
            &name("PUSHJET_WRITES_PER_MINUTE"),
            raw.pushjet_writes_per_minute.as_deref(),
            api.writes_per_minute,
            |raw| {
                parse_count(raw, 1..=u32::MAX)
                    .map(|value| NonZeroU32::new(value).unwrap_or(NonZeroU32::MIN))
            },
        ),
        limit_loopback: problems.parse(
            &name("PUSHJET_LIMIT_LOOPBACK"),
            raw.pushjet_limit_loopback.as_deref(),
            api.limit_loopback,
            parse_bool,
        ),
        max_unread: problems.parse(
            &name("PUSHJET_MAX_UNREAD"),
            raw.pushjet_max_unread.as_deref(),
            api.max_unread,
            |raw| parse_count(raw, 1..=usize::MAX),
        ),
        message_max_age: problems.parse(
            &name("PUSHJET_MESSAGE_MAX_AGE"),
            raw.pushjet_message_max_age.as_deref(),
            api.message_max_age,
            positive_duration,
        ),
        max_fetch_bytes: problems.parse(
            &name("PUSHJET_MAX_FETCH_BYTES"),
            raw.pushjet_max_fetch_bytes.as_deref(),
            api.max_fetch_bytes,
            |raw| parse_count(raw, 1..=usize::MAX),
        ),
        max_disk_bytes: problems.parse(
            &name("PUSHJET_MAX_DISK_BYTES"),
            raw.pushjet_max_disk_bytes.as_deref(),
            api.max_disk_bytes,
            |raw| parse_count(raw, 1..=u64::MAX),
        ),
        create_token: problems.optional_token(
            &name("PUSHJET_CREATE_TOKEN"),
            raw.pushjet_create_token,
            raw.pushjet_create_token_file,
        ),
    };
    (http, api)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_pairs(pairs: &[(&str, &str)]) -> Result<(HttpLimits, ApiLimits), Vec<String>> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
            .collect();
        let vars = Vars::with_env_file(&pairs).unwrap();
        let mut problems = Problems::default();
        let limits = read(&vars, &mut problems);
        problems.into_result(limits)
    }

    #[test]
    fn unset_limits_take_their_documented_defaults() {
        let (http, api) = read_pairs(&[]).unwrap();
        assert_eq!(http, HttpLimits::default());
        assert_eq!(http.max_connections, 4096);
        assert_eq!(api.writes_per_minute.get(), 600);
        assert_eq!(api.max_unread, 1000);
        assert!(api.create_token.is_none());
    }

    #[test]
    fn limits_are_read_and_every_bad_one_is_named() {
        let (http, api) = read_pairs(&[
            ("PUSHJET_BRIDGE_MAX_CONNECTIONS", "50"),
            ("PUSHJET_BRIDGE_REQUEST_TIMEOUT", "5s"),
            ("PUSHJET_BRIDGE_PUSHJET_WRITES_PER_MINUTE", "10"),
            ("PUSHJET_BRIDGE_PUSHJET_CREATE_TOKEN", " let-me-create "),
        ])
        .unwrap();
        assert_eq!(http.max_connections, 50);
        assert_eq!(http.request_timeout, Duration::from_secs(5));
        assert_eq!(api.writes_per_minute.get(), 10);
        assert!(api.create_token.unwrap().matches(b"let-me-create"));

        let (_, api) = read_pairs(&[
            ("PUSHJET_BRIDGE_PUSHJET_LIMIT_LOOPBACK", "yes"),
            ("PUSHJET_BRIDGE_PUSHJET_MAX_UNREAD", "10"),
            ("PUSHJET_BRIDGE_PUSHJET_MESSAGE_MAX_AGE", "7days"),
            ("PUSHJET_BRIDGE_PUSHJET_MAX_FETCH_BYTES", "4096"),
            ("PUSHJET_BRIDGE_PUSHJET_MAX_DISK_BYTES", "1000000"),
        ])
        .unwrap();
        assert!(api.limit_loopback);
        assert_eq!(api.max_unread, 10);
        assert_eq!(api.message_max_age, Duration::from_secs(7 * 24 * 3600));
        assert_eq!(api.max_fetch_bytes, 4096);
        assert_eq!(api.max_disk_bytes, 1_000_000);

        let problems = read_pairs(&[
            ("PUSHJET_BRIDGE_PUSHJET_MAX_UNREAD", "-1"),
            ("PUSHJET_BRIDGE_PUSHJET_CREATE_TOKEN", "a"),
            ("PUSHJET_BRIDGE_PUSHJET_CREATE_TOKEN_FILE", "/nonexistent"),
            ("PUSHJET_BRIDGE_MAX_CONNECTIONS", "0"),
            ("PUSHJET_BRIDGE_REQUEST_TIMEOUT", "0s"),
            ("PUSHJET_BRIDGE_PUSHJET_WRITES_PER_MINUTE", "0"),
            ("PUSHJET_BRIDGE_PUSHJET_LIMIT_LOOPBACK", "maybe"),
        ])
        .unwrap_err();
        assert_eq!(problems.len(), 6, "{problems:?}");
        assert!(!problems.join(" ").contains("`a`"), "{problems:?}");
    }
}
