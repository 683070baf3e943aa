//! Limits every HTTP request meets, whatever its endpoint: how many connections are open at once,
//! how long a request's headers and body may take to arrive, and how many body bytes all requests
//! together may hold in memory. The last two are applied by [`guard`], a middleware that wraps
//! each request's body stream; the connection cap and the header deadline are the HTTP server's
//! own (see [`crate::app`]).

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::HttpMessage;
use actix_web::HttpResponse;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::header::RETRY_AFTER;
use actix_web::middleware::Next;
use actix_web::web::{self, Bytes};
use futures_util::Stream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::{HttpLimits, MAX_BUFFERED_BYTES};

/// What [`guard`] shares between requests: the body deadline and the buffered-bytes budget.
#[derive(Debug)]
pub struct BodyGuard {
    budget: Arc<Semaphore>,
    timeout: Duration,
    /// One permit per request being served, `max_connections` in all.
    requests: Arc<Semaphore>,
}

impl BodyGuard {
    /// A guard for these limits.
    pub fn new(limits: &HttpLimits) -> Self {
        Self {
            budget: Arc::new(Semaphore::new(
                limits.max_buffered_bytes.min(MAX_BUFFERED_BYTES),
            )),
            timeout: limits.request_timeout,
            requests: Arc::new(Semaphore::new(limits.max_connections)),
        }
    }
}

/// The longest a request's headers may take to arrive (shorter when the request timeout is).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// How many connections the server accepts beyond `max_connections`, per hundred: room to
/// answer 503 to the clients beyond the limit instead of leaving them in the listen backlog.
pub const CONNECTION_HEADROOM_PERCENT: usize = 25;

impl HttpLimits {
    /// How long the HTTP server waits for a request's headers.
    pub fn header_timeout(&self) -> Duration {
        self.request_timeout.min(HEADER_TIMEOUT)
    }

    /// The connections the HTTP server accepts at most, over all workers: `max_connections` and
    /// the headroom in which the ones beyond it are answered 503.
    pub fn accepted_connections(&self) -> usize {
        self.max_connections
            .saturating_add(self.max_connections * CONNECTION_HEADROOM_PERCENT / 100)
            .max(self.max_connections.saturating_add(1))
    }
}

/// Health checks are answered even when every request slot is taken.
fn is_health_check(request: &ServiceRequest) -> bool {
    matches!(request.path(), "/healthz" | "/readyz")
}

/// The error a body stream ends with when its deadline passed (`io::ErrorKind::TimedOut`).
pub fn is_timed_out(error: &PayloadError) -> bool {
    matches!(error, PayloadError::Io(error) if error.kind() == std::io::ErrorKind::TimedOut)
}

/// The error a body stream ends with when the buffered-bytes budget is spent
/// (`io::ErrorKind::ResourceBusy`).
pub fn is_over_budget(error: &PayloadError) -> bool {
    matches!(error, PayloadError::Io(error) if error.kind() == std::io::ErrorKind::ResourceBusy)
}

/// Middleware: answers 503 (with `Retry-After: 1`, closing the connection) when
/// `max_connections` requests are already being served, health checks aside; wraps the request's
/// body so that reading it fails with a timeout once the request timeout has passed since the
/// headers arrived, and with "busy" when its bytes would take the bytes held by all requests over
/// the budget. The bytes read stay counted until the answer is ready. Without a [`BodyGuard`] in
/// the app data the request passes unchanged.
pub async fn guard(
    mut request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let Some(guard) = request.app_data::<web::Data<BodyGuard>>().cloned() else {
        return Ok(next.call(request).await?.map_into_left_body());
    };
    let slot = match guard.requests.clone().try_acquire_owned() {
        Ok(slot) => Some(slot),
        Err(_) if is_health_check(&request) => None,
        Err(_) => {
            let busy = HttpResponse::ServiceUnavailable()
                .insert_header((RETRY_AFTER, 1))
                .force_close()
                .json(serde_json::json!({
                    "error": "too many requests at once (PUSHJET_BRIDGE_MAX_CONNECTIONS); try again shortly"
                }));
            return Ok(request.into_response(busy).map_into_right_body());
        }
    };
    let held = Arc::new(Mutex::new(None));
    let guarded = GuardedBody {
        inner: request.take_payload(),
        deadline: Box::pin(tokio::time::sleep(guard.timeout)),
        budget: guard.budget.clone(),
        held: held.clone(),
        finished: false,
    };
    request.set_payload(Payload::Stream {
        payload: Box::pin(guarded),
    });
    let response = next.call(request).await;
    drop((held, slot));
    Ok(response?.map_into_left_body())
}

/// A body stream under a deadline and the shared budget.
struct GuardedBody {
    inner: Payload,
    deadline: Pin<Box<tokio::time::Sleep>>,
    budget: Arc<Semaphore>,
    held: Arc<Mutex<Option<OwnedSemaphorePermit>>>,
    finished: bool,
}

impl GuardedBody {
    fn fail(
        &mut self,
        kind: std::io::ErrorKind,
        text: &'static str,
    ) -> Poll<Option<<Self as Stream>::Item>> {
        self.finished = true;
        Poll::Ready(Some(Err(PayloadError::Io(std::io::Error::new(kind, text)))))
    }

    /// Counts `bytes` against the budget; false when it is spent.
    fn charge(&self, bytes: usize) -> bool {
        let Ok(bytes) = u32::try_from(bytes) else {
            return false;
        };
        if bytes == 0 {
            return true;
        }
        let Ok(permit) = self.budget.clone().try_acquire_many_owned(bytes) else {
            return false;
        };
        let Ok(mut held) = self.held.lock() else {
            return false;
        };
        match held.as_mut() {
            Some(all) => all.merge(permit),
            None => *held = Some(permit),
        }
        true
    }
}

impl Stream for GuardedBody {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.finished {
            return Poll::Ready(None);
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            return self.fail(
                std::io::ErrorKind::TimedOut,
                "the request body did not arrive within PUSHJET_BRIDGE_REQUEST_TIMEOUT",
            );
        }
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                if self.charge(chunk.len()) {
                    Poll::Ready(Some(Ok(chunk)))
                } else {
                    self.fail(
                        std::io::ErrorKind::ResourceBusy,
                        "request bodies take all the memory set aside for them (PUSHJET_BRIDGE_MAX_BUFFERED_BYTES)",
                    )
                }
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_accepts_a_quarter_more_connections_to_answer_503() {
        let limits = |max_connections| HttpLimits {
            max_connections,
            ..HttpLimits::default()
        };
        assert_eq!(limits(4096).accepted_connections(), 5120);
        assert_eq!(limits(1).accepted_connections(), 2);
    }
}
