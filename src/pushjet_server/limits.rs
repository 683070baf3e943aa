//! Limits of the embedded Pushjet API, which the real server does not have: a rate limit on each
//! client address's writes, an optional token to create services, caps on what the store keeps
//! (unread messages per service and device, their age, the database's size) and on the size of
//! one `GET /message` answer.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{ResponseError, web};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::error::ProtocolError;
use super::store::StoreLimits;
use crate::delivery::settings::{parse_duration, setting};

/// The embedded API's limits (`PUSHJET_BRIDGE_PUSHJET_*`).
#[derive(Debug, Clone, PartialEq, Eq)]
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
    pub create_token: Option<CreateToken>,
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

/// The token that creating a service requires. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct CreateToken(String);

impl std::fmt::Debug for CreateToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CreateToken(<redacted>)")
    }
}

impl CreateToken {
    /// Whether `offered` is the token (constant time).
    fn matches(&self, offered: &str) -> bool {
        bool::from(self.0.as_bytes().ct_eq(offered.as_bytes()))
    }
}

/// Why the API limits could not be read; every problem names its variable.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.join("; "))]
pub struct ApiLimitsError(pub Vec<String>);

#[derive(Deserialize)]
struct Vars {
    pushjet_writes_per_minute: Option<String>,
    pushjet_limit_loopback: Option<String>,
    pushjet_max_unread: Option<String>,
    pushjet_message_max_age: Option<String>,
    pushjet_max_fetch_bytes: Option<String>,
    pushjet_max_disk_bytes: Option<String>,
    pushjet_create_token: Option<String>,
    pushjet_create_token_file: Option<PathBuf>,
}

impl ApiLimits {
    /// Reads the limits from the given variables; unset or blank ones take their default.
    pub fn from_vars(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ApiLimitsError> {
        let vars: Vars = envy::prefixed("PUSHJET_BRIDGE_")
            .from_iter(vars)
            .map_err(|error| ApiLimitsError(vec![error.to_string()]))?;
        let defaults = Self::default();
        let mut problems = Vec::new();
        let writes_per_minute = setting(
            &mut problems,
            "PUSHJET_WRITES_PER_MINUTE",
            vars.pushjet_writes_per_minute,
            defaults.writes_per_minute,
            |raw| {
                raw.parse::<NonZeroU32>()
                    .map_err(|_| "is not a whole number of at least 1".to_owned())
            },
        );
        let limit_loopback = setting(
            &mut problems,
            "PUSHJET_LIMIT_LOOPBACK",
            vars.pushjet_limit_loopback,
            defaults.limit_loopback,
            |raw| crate::config::parse_bool(raw).ok_or_else(|| "is not true or false".to_owned()),
        );
        let max_unread = setting(
            &mut problems,
            "PUSHJET_MAX_UNREAD",
            vars.pushjet_max_unread,
            defaults.max_unread,
            |raw| at_least_one(raw).map(|value| usize::try_from(value).unwrap_or(usize::MAX)),
        );
        let message_max_age = setting(
            &mut problems,
            "PUSHJET_MESSAGE_MAX_AGE",
            vars.pushjet_message_max_age,
            defaults.message_max_age,
            parse_duration,
        );
        let max_fetch_bytes = setting(
            &mut problems,
            "PUSHJET_MAX_FETCH_BYTES",
            vars.pushjet_max_fetch_bytes,
            defaults.max_fetch_bytes,
            |raw| at_least_one(raw).map(|value| usize::try_from(value).unwrap_or(usize::MAX)),
        );
        let max_disk_bytes = setting(
            &mut problems,
            "PUSHJET_MAX_DISK_BYTES",
            vars.pushjet_max_disk_bytes,
            defaults.max_disk_bytes,
            at_least_one,
        );
        let create_token = match (vars.pushjet_create_token, vars.pushjet_create_token_file) {
            (Some(_), Some(_)) => {
                problems.push(
                    "PUSHJET_BRIDGE_PUSHJET_CREATE_TOKEN and PUSHJET_BRIDGE_PUSHJET_CREATE_TOKEN_FILE are both set; keep one"
                        .to_owned(),
                );
                None
            }
            (Some(token), None) => Some(token),
            (None, Some(path)) => match std::fs::read_to_string(&path) {
                Ok(text) => Some(text),
                Err(error) => {
                    problems.push(format!(
                        "PUSHJET_BRIDGE_PUSHJET_CREATE_TOKEN_FILE: cannot read {}: {error}",
                        path.display()
                    ));
                    None
                }
            },
            (None, None) => None,
        }
        .map(|token| token.trim().to_owned())
        .filter(|token| !token.is_empty())
        .map(CreateToken);
        if problems.is_empty() {
            Ok(Self {
                writes_per_minute,
                limit_loopback,
                max_unread,
                message_max_age,
                max_fetch_bytes,
                max_disk_bytes,
                create_token,
            })
        } else {
            Err(ApiLimitsError(problems))
        }
    }
}

impl ApiLimits {
    /// The part of the limits the store applies.
    pub fn store_limits(&self) -> StoreLimits {
        StoreLimits {
            max_unread: self.max_unread,
            message_max_age: self.message_max_age,
            max_fetch_bytes: self.max_fetch_bytes,
            max_disk_bytes: self.max_disk_bytes,
        }
    }
}

fn at_least_one(raw: &str) -> Result<u64, String> {
    raw.parse::<u64>()
        .ok()
        .filter(|value| *value >= 1)
        .ok_or_else(|| "is not a whole number of at least 1".to_owned())
}

/// The rate limit on writes, per client address, shared by every worker.
pub(crate) struct WriteLimiter {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    limit_loopback: bool,
}

/// What the API's middleware checks against, shared by every worker; cheap to clone.
#[derive(Clone)]
pub struct ApiGuard {
    pub(crate) limiter: web::Data<WriteLimiter>,
    pub(crate) limits: web::Data<ApiLimits>,
}

impl ApiGuard {
    /// A guard for `limits`, with a fresh rate limit.
    pub fn new(limits: &ApiLimits) -> Self {
        Self {
            limiter: web::Data::from(WriteLimiter::new(limits)),
            limits: web::Data::new(limits.clone()),
        }
    }
}

impl Default for ApiGuard {
    fn default() -> Self {
        Self::new(&ApiLimits::default())
    }
}

/// Past this many tracked addresses, those whose limit has fully recovered are forgotten.
const TRACKED_ADDRESSES: usize = 10_000;

impl WriteLimiter {
    pub(crate) fn new(limits: &ApiLimits) -> Arc<Self> {
        Arc::new(Self {
            limiter: RateLimiter::keyed(Quota::per_minute(limits.writes_per_minute)),
            limit_loopback: limits.limit_loopback,
        })
    }

    /// `Err(wait)` when `address` has used up its writes for now.
    fn check(&self, address: IpAddr) -> Result<(), Duration> {
        if address.is_loopback() && !self.limit_loopback {
            return Ok(());
        }
        if self.limiter.len() > TRACKED_ADDRESSES {
            self.limiter.retain_recent();
        }
        self.limiter
            .check_key(&address)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

/// Middleware of the `/pushjet` scope: refuses a write beyond its client address's rate (429 with
/// `Retry-After`), and `POST /service` without the create token when one is configured (401).
pub(crate) async fn guard(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<actix_web::body::BoxBody>, actix_web::Error> {
    if let Err(error) = admit(&request) {
        let response = error.error_response();
        return Ok(request.into_response(response));
    }
    Ok(next.call(request).await?.map_into_boxed_body())
}

fn admit(request: &ServiceRequest) -> Result<(), ProtocolError> {
    let method = request.method();
    if method == Method::GET || method == Method::HEAD {
        return Ok(());
    }
    if let (Some(limiter), Some(address)) = (
        request.app_data::<web::Data<WriteLimiter>>(),
        request.peer_addr(),
    ) {
        limiter
            .check(address.ip())
            .map_err(|retry_after| ProtocolError::RateLimited { retry_after })?;
    }
    let creating =
        method == Method::POST && request.path().trim_end_matches('/').ends_with("/service");
    let token = request
        .app_data::<web::Data<ApiLimits>>()
        .and_then(|limits| limits.create_token.clone());
    if let (true, Some(token)) = (creating, token) {
        let offered = request
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, credentials)| credentials.trim());
        if !offered.is_some_and(|offered| token.matches(offered)) {
            return Err(ProtocolError::CreateTokenRequired);
        }
    }
    Ok(())
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
    fn defaults_apply_when_unset_and_values_are_read() {
        assert_eq!(
            ApiLimits::from_vars(vars(&[])).unwrap(),
            ApiLimits::default()
        );
        let limits = ApiLimits::from_vars(vars(&[
            ("PUSHJET_BRIDGE_PUSHJET_WRITES_PER_MINUTE", "60"),
            ("PUSHJET_BRIDGE_PUSHJET_LIMIT_LOOPBACK", "yes"),
            ("PUSHJET_BRIDGE_PUSHJET_MAX_UNREAD", "10"),
            ("PUSHJET_BRIDGE_PUSHJET_MESSAGE_MAX_AGE", "7days"),
            ("PUSHJET_BRIDGE_PUSHJET_MAX_FETCH_BYTES", "4096"),
            ("PUSHJET_BRIDGE_PUSHJET_MAX_DISK_BYTES", "1000000"),
            ("PUSHJET_BRIDGE_PUSHJET_CREATE_TOKEN", " token \n"),
        ]))
        .unwrap();
        assert_eq!(limits.writes_per_minute.get(), 60);
        assert!(limits.limit_loopback);
        assert_eq!(limits.max_unread, 10);
        assert_eq!(limits.message_max_age, Duration::from_secs(7 * 24 * 3600));
        assert_eq!(limits.max_fetch_bytes, 4096);
        assert_eq!(limits.max_disk_bytes, 1_000_000);
        assert!(
            limits
                .create_token
                .as_ref()
                .is_some_and(|token| token.matches("token"))
        );
        assert_eq!(
            format!("{:?}", limits.create_token),
            "Some(CreateToken(<redacted>))"
        );
    }

    #[test]
    fn every_bad_value_is_named() {
        let error = ApiLimits::from_vars(vars(&[
            ("PUSHJET_BRIDGE_PUSHJET_WRITES_PER_MINUTE", "0"),
            ("PUSHJET_BRIDGE_PUSHJET_MAX_UNREAD", "-1"),
            ("PUSHJET_BRIDGE_PUSHJET_MESSAGE_MAX_AGE", "forever"),
            ("PUSHJET_BRIDGE_PUSHJET_CREATE_TOKEN", "a"),
            ("PUSHJET_BRIDGE_PUSHJET_CREATE_TOKEN_FILE", "/nonexistent"),
        ]))
        .unwrap_err();
        assert_eq!(error.0.len(), 4, "{error}");
        assert!(!error.to_string().contains("=a"), "{error}");
    }

    #[test]
    fn loopback_is_exempt_unless_asked_and_others_are_limited_per_address() {
        let limits = ApiLimits {
            writes_per_minute: NonZeroU32::new(2).unwrap(),
            ..ApiLimits::default()
        };
        let limiter = WriteLimiter::new(&limits);
        let loopback: IpAddr = "127.0.0.1".parse().unwrap();
        let one: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..10 {
            assert!(limiter.check(loopback).is_ok());
        }
        assert!(limiter.check(one).is_ok() && limiter.check(one).is_ok());
        let wait = limiter.check(one).unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(30),
            "{wait:?}"
        );
        assert!(
            limiter.check(other).is_ok(),
            "another address has its own limit"
        );
        let strict = WriteLimiter::new(&ApiLimits {
            limit_loopback: true,
            ..limits
        });
        assert!(strict.check(loopback).is_ok() && strict.check(loopback).is_ok());
        assert!(strict.check(loopback).is_err());
    }
}
