//! Limits of the embedded Pushjet API, which the real server does not have: a rate limit on each
//! client address's writes, an optional token to create services, caps on what the store keeps
//! (unread messages per service and device, their age, the database's size) and on the size of
//! one `GET /message` answer.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{ResponseError, web};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::error::ProtocolError;
use super::store::StoreLimits;
use crate::config::ApiLimits;

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

impl ApiGuard {
    /// `Err(wait)` when `address` has used up its writes for now (and counts this one
    /// otherwise): for writes that reach the store another way than the API.
    pub(crate) fn check_write(&self, address: IpAddr) -> Result<(), Duration> {
        self.limiter.check(address)
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
    if let (true, Some(token)) = (creating, token)
        && !token.is_bearer_of(request.headers())
    {
        return Err(ProtocolError::CreateTokenRequired);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use super::*;

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
