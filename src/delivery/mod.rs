//! Durable delivery: the outbox every accepted notification is written to before the webhook is
//! answered, and the dispatcher that sends from it to Pushjet with retries and dead letters.
//!
//! ```text
//! hook handler ──enqueue──► committer thread ──one frame per batch, synced──► outbox.journal
//!      ▲                        │  (group commit; answers after the sync)
//!      └── Queued(ids) / Duplicate / Full / Unavailable
//!                               │  the batches of 10 ms, one durable commit ───► outbox.redb
//!                               └─ wakes ─► dispatcher (actix task) ◄── due work ────┘
//!                                             │ ≤ CONCURRENCY routes at once, each a run:
//!                                             │ one send at a time, its outcome committed
//!                                             ▼ while the next one is sent
//!                                     Pushjet API  ──► sent / retry later / dead letter
//! ```
//!
//! # Wiring
//!
//! ```no_run
//! # async fn wire(settings: pushjet_bridge::config::Settings) -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use arc_swap::ArcSwap;
//! use pushjet_bridge::delivery::{self, DeliverySettings, Enqueued, Outbox};
//! # let api_url = pushjet_bridge::pushjet::ApiUrl::parse("http://127.0.0.1:8080/pushjet/")?;
//! let delivery_settings = DeliverySettings::from_env()?;
//! let data_dir = settings.data_dir.clone();
//! let opened = delivery_settings.clone();
//! let outbox = actix_web::web::block(move || Outbox::open(&data_dir, &opened)).await??;
//! let routes = Arc::new(ArcSwap::from_pointee(settings.routes.clone()));
//! let metrics = Arc::new(pushjet_bridge::metrics::Metrics::new());
//! let dispatcher = delivery::spawn(outbox.clone(), routes, api_url, &delivery_settings, metrics);
//! // In the hook handler, for an accepted webhook:
//! # let route = pushjet_bridge::routes::RouteName::parse("gh")?;
//! # let notifications = Vec::new();
//! match outbox.enqueue(&route, notifications, Some("github:<delivery id>".into())).await {
//!     Ok(Enqueued::Queued(ids)) => { /* 202 with the ids */ }
//!     Ok(Enqueued::Duplicate) => { /* 200/202 saying it was a duplicate */ }
//!     Err(error) => { /* 503 with Retry-After: error.retry_after() */ }
//! }
//! // After the HTTP server has stopped:
//! dispatcher.shutdown(delivery_settings.shutdown_grace).await;
//! # Ok(()) }
//! ```
//!
//! # Guarantees
//!
//! - **Durable before answered.** `enqueue` returns only after the notifications (and the dedup
//!   key, in the same frame) are appended to the outbox journal and synced (`fdatasync`); redb
//!   takes them in a durable commit within 10 ms, and [`Outbox::open`] replays the journal frames
//!   it had not taken before a crash. If the journal cannot be written the caller gets
//!   [`OutboxError::Unavailable`], never an id, and the next write that succeeds ends it. A
//!   failed commit cannot be undone in place: [`Outbox::needs_restart`] turns true and the
//!   application stops so that its supervisor restarts it (the start replays the journal).
//! - **Group commit.** Concurrent calls are batched by one committer thread into one journal
//!   frame, and the batches of 10 ms into one redb transaction; no disk I/O runs on an async
//!   worker (reads use Tokio's blocking pool).
//! - **Backpressure.** At most `PUSHJET_BRIDGE_MAX_QUEUE` notifications pending; beyond it
//!   `enqueue` refuses with [`OutboxError::Full`] and queues nothing.
//! - **Deduplication** on the caller's key for `PUSHJET_BRIDGE_DEDUP_WINDOW`, kept on disk, so it
//!   holds across restarts.
//! - **Order within a route.** A route's notifications are sent one at a time, oldest first: the
//!   next goes out only once Pushjet has accepted the one before it (its outcome is committed in
//!   the background meanwhile). A notification waiting to be retried holds back the route's later
//!   ones. Different routes are sent in parallel, up to `PUSHJET_BRIDGE_DELIVERY_CONCURRENCY`.
//! - **Retries** for transient failures (connection, timeout, 5xx, 429) with exponential backoff
//!   and full jitter, never sooner than a `Retry-After`, for up to `PUSHJET_BRIDGE_RETRY_FOR`;
//!   then, or at once for permanent failures, a dead letter whose reason says what to fix.
//! - **Secrets** never reach the outbox or the logs: the dispatcher looks the route's secret up in
//!   the current routes when it sends; a route that is gone makes a dead letter.
//! - **At-least-once to Pushjet.** A notification is removed only after Pushjet acknowledged it
//!   *and* that outcome is committed. On our side the one window for a duplicate is a crash (or a
//!   shutdown grace period running out) between Pushjet's 200 and our commit: the notification is
//!   still pending on the next start and is sent again. Since a route's next send does not wait
//!   for that commit, and the outcome "sent" is journaled without a sync of its own (it reaches
//!   the disk with the next synced frame, or the database's commit at most 10 ms later), a crash
//!   can leave the notifications sent in about the last 10 ms before it in this window, never one
//!   that was not sent before. Pushjet has no idempotency keys, so an
//!   answer lost on the way back (a timeout after the server stored the message, or Pushjet's own
//!   500 after storing it, see `shared/pushjet-api.md` §1.5) also leads to a second send.
//! - **Shutdown.** [`DispatcherHandle::shutdown`] stops taking work, lets sends in flight finish
//!   for a grace period and leaves the rest pending; [`Outbox::open`] resumes everything pending.

mod committer;
mod journal;
mod outbox;
mod retry;
mod schedule;
pub(crate) mod settings;
mod tables;
mod worker;

#[cfg(test)]
mod test_support;

pub use journal::JOURNAL_FILE_NAME;
pub use outbox::{DeadLetter, Enqueued, OUTBOX_FILE_NAME, Outbox, OutboxError, RetriedDeadLetters};
pub use retry::{Decision, Failure, RetryPolicy, classify};
pub use settings::{DeliverySettings, DeliverySettingsError};
pub use worker::{DispatcherHandle, SharedRoutes, ShutdownReport, Upstream, spawn, spawn_with};
