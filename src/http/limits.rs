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
use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
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
}

impl BodyGuard {
    /// A guard for these limits.
    pub fn new(limits: &HttpLimits) -> Self {
        Self {
            budget: Arc::new(Semaphore::new(
                limits.max_buffered_bytes.min(MAX_BUFFERED_BYTES),
            )),
            timeout: limits.request_timeout,
        }
    }
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

/// Middleware: wraps the request's body so that reading it fails with a timeout once the request
/// timeout has passed since the headers arrived, and with "busy" when its bytes would take the
/// bytes held by all requests over the budget. The bytes read stay counted until the answer is
/// ready. Without a [`BodyGuard`] in the app data the request passes unchanged.
pub async fn guard(
    mut request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let Some(guard) = request.app_data::<web::Data<BodyGuard>>().cloned() else {
        return next.call(request).await;
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
    drop(held);
    response
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
