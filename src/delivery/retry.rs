//! The retry policy: which failures are worth another try, how long to wait before it, and when
//! to give up.
//!
//! - **Transient** (could not connect, timeout, HTTP 5xx, 408, 429): retry. The n-th retry waits a
//!   random time in `[0, ceiling(n)]` ("full jitter"), where `ceiling(n)` is the exponential
//!   sequence `min_delay, 2·min_delay, 4·min_delay, …` capped at `max_delay`, taken from backon's
//!   [`ExponentialBuilder`]. backon's own jitter adds a random part *on top of* the delay (giving
//!   `[d, 2d)`), which is not full jitter, so only its un-jittered sequence is used. A server's
//!   `Retry-After` is a floor: never retry sooner than it asked. Once the next try would fall
//!   after `retry_for` since the notification was queued, it becomes a dead letter.
//! - **Permanent** (unknown or deleted service, refused secret, any other 4xx): dead letter at
//!   once; the reason says what to fix.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

use crate::config::DeliverySettings;
use crate::pushjet::Error;
use crate::routes::RouteName;

/// What a failed send means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Trying again later may succeed.
    Transient {
        /// How long the server asked to wait, if it did.
        retry_after: Option<Duration>,
    },
    /// Trying again cannot succeed until something is fixed; the text says what.
    Permanent {
        /// What went wrong and what to fix, in one sentence.
        reason: String,
    },
}

/// Sorts a Pushjet error into transient or permanent, naming what to fix for the route when it is
/// permanent. Never includes the secret.
pub fn classify(error: &Error, route: &RouteName) -> Failure {
    let secret_variable = format!("{}SECRET", route.env_prefix());
    let reason = match error {
        Error::RateLimited { retry_after } => {
            return Failure::Transient {
                retry_after: *retry_after,
            };
        }
        Error::Request(_) => return Failure::Transient { retry_after: None },
        Error::Server { status, .. } if !(400..500).contains(status) || *status == 408 => {
            return Failure::Transient { retry_after: None };
        }
        Error::Server { status, .. } => format!(
            "the Pushjet API answered HTTP {status} with something that is not Pushjet's protocol: \
             check PUSHJET_API_URL, then retry the dead letters"
        ),
        Error::Nonexistent { id, message } => format!(
            "the Pushjet server does not know route `{route}`'s service ({message}, error {id}): \
             it was deleted, or the secret belongs to another server; create a service and put its \
             secret in {secret_variable}, then retry the dead letters"
        ),
        Error::Invalid { id: 3, message, .. } => format!(
            "the Pushjet server refused route `{route}`'s secret key ({message}, error 3): \
             check {secret_variable}, then retry the dead letters"
        ),
        Error::Invalid {
            status,
            id,
            message,
        } => format!(
            "the Pushjet server refused route `{route}`'s notification: {message} \
             (HTTP {status}, error {id}); check that PUSHJET_API_URL is a Pushjet server, then \
             retry or purge the dead letter"
        ),
        Error::Subscription { .. } | Error::Access(_) => format!(
            "the Pushjet API gave an answer that makes no sense for sending ({error}): \
             check that PUSHJET_API_URL is a Pushjet server, then retry or purge the dead letter"
        ),
    };
    Failure::Permanent { reason }
}

/// What to do after a failed try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Try again after this long.
    RetryIn(Duration),
    /// Give up: the notification becomes a dead letter for this reason.
    GiveUp(String),
}

/// Delays between tries and the time limit, from the settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    min_delay: Duration,
    max_delay: Duration,
    retry_for: Duration,
}

/// Doublings after which every ceiling is capped (2^63 ns is centuries).
const MAX_DOUBLINGS: u32 = 63;

impl RetryPolicy {
    /// The policy the settings describe.
    pub fn new(settings: &DeliverySettings) -> Self {
        Self {
            min_delay: settings.retry_min_delay,
            max_delay: settings.retry_max_delay,
            retry_for: settings.retry_for,
        }
    }

    /// The longest wait before the retry that follows the `failures`-th failed try (1 for the
    /// first): `min_delay · 2^(failures-1)`, capped at `max_delay`.
    pub fn ceiling(&self, failures: u32) -> Duration {
        let skip = failures.saturating_sub(1).min(MAX_DOUBLINGS);
        ExponentialBuilder::new()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_factor(2.0)
            .without_max_times()
            .build()
            .nth(usize::try_from(skip).unwrap_or(usize::MAX))
            .map_or(self.max_delay, |delay| delay.min(self.max_delay))
    }

    /// The wait before the next try: uniformly random in `[0, ceiling(failures)]`, but never
    /// shorter than the server's `Retry-After`.
    pub fn delay(&self, failures: u32, retry_after: Option<Duration>) -> Duration {
        self.jittered(failures, retry_after, fastrand::f64())
    }

    /// [`Self::delay`] with the random draw `unit` in `[0, 1)` given.
    fn jittered(&self, failures: u32, retry_after: Option<Duration>, unit: f64) -> Duration {
        let jittered = self.ceiling(failures).mul_f64(unit.clamp(0.0, 1.0));
        retry_after.map_or(jittered, |asked| jittered.max(asked))
    }

    /// Decides what follows a failed try: `failures` tries have failed so far (this one included)
    /// and the notification has been retried for `elapsed` since it was queued.
    pub fn decide(
        &self,
        error: &Error,
        route: &RouteName,
        failures: u32,
        elapsed: Duration,
    ) -> Decision {
        match classify(error, route) {
            Failure::Permanent { reason } => Decision::GiveUp(reason),
            Failure::Transient { retry_after } => {
                let delay = self.delay(failures, retry_after);
                if elapsed.saturating_add(delay) > self.retry_for {
                    Decision::GiveUp(format!(
                        "gave up after {} tries over {} (PUSHJET_BRIDGE_RETRY_FOR is {}); \
                         the last error: {error}",
                        failures,
                        humantime::format_duration(whole_seconds(elapsed)),
                        humantime::format_duration(self.retry_for)
                    ))
                } else {
                    Decision::RetryIn(delay)
                }
            }
        }
    }
}

/// A duration cut to whole seconds (milliseconds when under a second), for messages.
pub(crate) fn whole_seconds(duration: Duration) -> Duration {
    if duration < Duration::from_secs(1) {
        Duration::from_millis(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
    } else {
        Duration::from_secs(duration.as_secs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pushjet::RequestError;

    fn policy(min_ms: u64, max_ms: u64, retry_for: Duration) -> RetryPolicy {
        RetryPolicy::new(&DeliverySettings {
            retry_min_delay: Duration::from_millis(min_ms),
            retry_max_delay: Duration::from_millis(max_ms),
            retry_for,
            ..DeliverySettings::default()
        })
    }

    fn route() -> RouteName {
        RouteName::parse("gh-prod").unwrap()
    }

    fn server(status: u16) -> Error {
        Error::Server {
            status,
            detail: "x".to_owned(),
        }
    }

    #[test]
    fn ceilings_double_from_the_minimum_up_to_the_cap() {
        let policy = policy(100, 1_000, Duration::from_secs(60));
        let ceilings: Vec<u128> = (1..=7)
            .map(|failures| policy.ceiling(failures).as_millis())
            .collect();
        assert_eq!(ceilings, [100, 200, 400, 800, 1_000, 1_000, 1_000]);
        assert_eq!(policy.ceiling(u32::MAX), Duration::from_secs(1));
    }

    #[test]
    fn full_jitter_stays_between_zero_and_the_ceiling() {
        let policy = policy(100, 1_000, Duration::from_secs(60));
        assert_eq!(policy.jittered(3, None, 0.0), Duration::ZERO);
        assert!(policy.jittered(3, None, 0.999_999) <= Duration::from_millis(400));
        let draws: Vec<Duration> = (0..2_000).map(|_| policy.delay(4, None)).collect();
        assert!(draws.iter().all(|d| *d <= Duration::from_millis(800)));
        assert!(draws.iter().any(|d| *d < Duration::from_millis(100)));
        assert!(draws.iter().any(|d| *d > Duration::from_millis(700)));
    }

    #[test]
    fn retry_after_is_a_floor() {
        let policy = policy(10, 50, Duration::from_secs(60));
        let asked = Some(Duration::from_secs(7));
        assert_eq!(policy.jittered(1, asked, 0.5), Duration::from_secs(7));
        let decision = policy.decide(
            &Error::RateLimited { retry_after: asked },
            &route(),
            1,
            Duration::ZERO,
        );
        assert_eq!(decision, Decision::RetryIn(Duration::from_secs(7)));
    }

    #[test]
    fn transient_failures_give_up_once_the_next_try_would_be_too_late() {
        let policy = policy(10, 50, Duration::from_secs(2));
        let error = Error::Request(RequestError::Connect("refused".to_owned()));
        assert!(matches!(
            policy.decide(&error, &route(), 5, Duration::from_secs(1)),
            Decision::RetryIn(delay) if delay <= Duration::from_millis(50)
        ));
        let Decision::GiveUp(reason) = policy.decide(&error, &route(), 9, Duration::from_secs(2))
        else {
            panic!("should give up");
        };
        assert!(reason.contains("gave up after 9 tries"), "{reason}");
        assert!(reason.contains("refused"), "{reason}");
        let too_far = Error::RateLimited {
            retry_after: Some(Duration::from_secs(5)),
        };
        assert!(matches!(
            policy.decide(&too_far, &route(), 1, Duration::ZERO),
            Decision::GiveUp(_)
        ));
    }

    #[test]
    fn connection_errors_timeouts_5xx_408_and_429_are_transient() {
        let transient = [
            Error::Request(RequestError::Timeout(Duration::from_secs(1))),
            Error::Request(RequestError::Connect("refused".to_owned())),
            Error::Request(RequestError::Transport("reset".to_owned())),
            server(500),
            server(503),
            server(408),
            server(200),
            Error::RateLimited { retry_after: None },
        ];
        for error in transient {
            assert!(
                matches!(classify(&error, &route()), Failure::Transient { .. }),
                "{error}"
            );
        }
        let rate_limited = Error::RateLimited {
            retry_after: Some(Duration::from_secs(3)),
        };
        assert_eq!(
            classify(&rate_limited, &route()),
            Failure::Transient {
                retry_after: Some(Duration::from_secs(3))
            }
        );
    }

    #[test]
    fn permanent_failures_say_what_to_fix() {
        let reason = |error: Error| match classify(&error, &route()) {
            Failure::Permanent { reason } => reason,
            Failure::Transient { .. } => panic!("{error} should be permanent"),
        };
        let deleted = reason(Error::Nonexistent {
            id: 6,
            message: "Service not found".to_owned(),
        });
        assert!(
            deleted.contains("PUSHJET_BRIDGE_ROUTE_GH_PROD_SECRET"),
            "{deleted}"
        );
        assert!(deleted.contains("Service not found"), "{deleted}");
        let secret = reason(Error::Invalid {
            status: 400,
            id: 3,
            message: "Invalid secret".to_owned(),
        });
        assert!(
            secret.contains("PUSHJET_BRIDGE_ROUTE_GH_PROD_SECRET"),
            "{secret}"
        );
        let invalid = reason(Error::Invalid {
            status: 400,
            id: 7,
            message: "Missing argument message".to_owned(),
        });
        assert!(invalid.contains("Missing argument message"), "{invalid}");
        assert!(reason(server(404)).contains("PUSHJET_API_URL"));
        assert!(reason(server(401)).contains("HTTP 401"));
        assert!(
            reason(Error::Subscription {
                id: 4,
                message: "x".to_owned()
            })
            .contains("PUSHJET_API_URL")
        );
        assert!(reason(Error::Access("send")).contains("PUSHJET_API_URL"));
    }
}
