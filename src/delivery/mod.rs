//! Durable delivery: the outbox every accepted notification is written to before the webhook is
//! answered, and the dispatcher that sends from it to Pushjet with retries and dead letters.
//!
//! ```text
//! hook handler, /admin, CLI                  dispatcher (actix task, worker.rs) ──► Pushjet API
//!   enqueue → Queued(ids) / Duplicate /        claim_due → a Claim per due route, oldest first;
//!             Full / Unavailable               ≤ CONCURRENCY runs, each: next_batch, send one at
//!   dead letters: list, count, retry, purge    a time, record(sent / retry at / dead letter)
//!   gauges: pending, oldest age, writable      committed while the next is sent, release;
//!          │                                   changed() wakes it
//!          ▼                                          │
//!   Outbox (outbox/mod.rs), the one interface ◄───────┘
//!          │ Arc<dyn OutboxBackend>
//!          ▼
//!   redb backend (redb/), the default, for one process:
//!     committer thread ──one frame per batch, synced──► outbox.journal  (group commit; answers
//!        │                                                              after the sync)
//!        └─ the batches of 10 ms, one durable commit ──► outbox.redb (tables.rs)
//!     schedule.rs: pending ids by route; a claim is a lane taken in memory; wakes the dispatcher
//!          │ implements, and builds on
//!          ▼
//!   OutboxBackend, Claim, Outcome (outbox/backend.rs); PendingRecord, DeadLetter, OutboxError,
//!   Enqueued (outbox/records.rs): shared by every backend, depending on none
//! ```
//!
//! Routes with noise control (`RATE`, `QUIET_HOURS`, `COLLAPSE`) go through [`Outbox::admit`]
//! instead of `enqueue`: the backend decides each notification under the route's lock and keeps
//! what it holds beside the queue; a releaser task queues the digests (see `noise/`).
//!
//! With `PUSHJET_BRIDGE_DATABASE_URL` the backend is PostgreSQL (postgres/), shared by any
//! number of replicas: a claim is a lease row per route (fenced by its number, lapsing after
//! `PUSHJET_BRIDGE_LEASE`), `changed` a `LISTEN`, the records rows, dedup global; its
//! guarantees are in `postgres/mod.rs`. The guarantees below are the redb backend's.
//!
//! # Wiring
//!
//! `app.rs` opens the [`Outbox`] ([`Outbox::connect`] picks the backend), starts the dispatcher
//! with [`spawn`] (over the bridge in force, which answers [`RouteSecrets`]), hands the outbox to
//! the webhook and admin handlers as app data, and after the HTTP server has stopped calls
//! [`DispatcherHandle::shutdown`] with the shutdown grace period.
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
//!   500 after storing it, see `docs/pushjet-protocol.md` §1.5) also leads to a second send.
//! - **Shutdown.** [`DispatcherHandle::shutdown`] stops taking work, lets sends in flight finish
//!   for a grace period and leaves the rest pending; [`Outbox::open`] resumes everything pending.

pub mod noise;
mod observer;
mod outbox;
mod postgres;
mod redb;
mod retry;
mod worker;

#[cfg(test)]
mod test_support;

pub use crate::config::DeliverySettings;
pub use observer::{DeliveryObserver, Fate, SendReport};
pub use outbox::{DedupKey, DedupKind, Enqueued, Outbox, OutboxError};
pub use redb::OUTBOX_FILE_NAME;
pub use retry::{Failure, classify};
pub use worker::{DispatcherHandle, RouteSecrets, Upstream, spawn_with};
