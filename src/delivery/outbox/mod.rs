//! The outbox: every accepted notification, kept until Pushjet has it or it becomes a dead letter.
//!
//! [`Outbox`] is the one interface to it, for the hook handler, the admin endpoints, the
//! command line and the dispatcher; what keeps the notifications is an [`OutboxBackend`] below
//! it (see `backend.rs` for the contract and why it is a trait object), built on the records and
//! errors all backends share (`records.rs`). The backend is the embedded redb store in the data
//! directory (`delivery/redb/`), or a PostgreSQL database shared by replicas
//! (`delivery/postgres/`) when `PUSHJET_BRIDGE_DATABASE_URL` is set.
//!
//! ```text
//! Outbox (handle: HTTP, CLI, dispatcher)      outbox/mod.rs
//!    │ Arc<dyn OutboxBackend>
//!    ▼
//! RedbOutbox: committer, journal, tables,     redb/
//!             schedule (the claims)
//!    │ implements
//!    ▼
//! OutboxBackend, Claim, Outcome, Due          outbox/backend.rs
//! PendingRecord, DeadLetter, OutboxError, …   outbox/records.rs
//! ```

pub(super) mod backend;
pub(super) mod records;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub(super) use backend::{Claim, Due, OutboxBackend, Outcome, Recording};
pub use records::{DeadLetter, DedupKey, DedupKind, Enqueued, OutboxError, RetriedDeadLetters};

use self::records::PendingRecord;
use super::observer::DeliveryObserver;
use super::postgres::PostgresOutbox;
use super::redb::RedbOutbox;
use crate::config::DeliverySettings;
use crate::delivery::noise::{Admission, Admitted, Released};
use crate::pushjet::NewMessage;
use crate::routes::RouteName;

/// The durable outbox. Cheap to clone; every clone is the same store. Dropping the last clone
/// closes the store once its pending writes are done.
#[derive(Debug, Clone)]
pub struct Outbox {
    backend: Arc<dyn OutboxBackend>,
    /// Who hears of each notification's fate (the delivery history), if anybody.
    observer: Option<Arc<dyn DeliveryObserver>>,
}

impl Outbox {
    /// Opens the embedded outbox in `<data_dir>` (`outbox.redb` and its journal, the redb
    /// backend), creating the directory (mode 0700 on Unix) and the files if needed, and loads
    /// the pending notifications, a crash's leftovers included, for delivery.
    ///
    /// Blocking disk I/O: call it at start-up or inside `web::block`, not on an async worker.
    pub fn open(data_dir: &Path, settings: &DeliverySettings) -> Result<Self, OutboxError> {
        Ok(Self::new(RedbOutbox::open(data_dir, settings)?))
    }

    /// Opens the outbox the settings ask for: in the PostgreSQL database of
    /// `PUSHJET_BRIDGE_DATABASE_URL` when it is set (connecting, and migrating its schema), else
    /// the embedded one in `<data_dir>` as [`Self::open`] does, off the async workers.
    pub async fn connect(data_dir: &Path, settings: &DeliverySettings) -> Result<Self, OutboxError> {
        if let Some(url) = &settings.database {
            return Ok(Self::new(PostgresOutbox::connect(url, settings).await?));
        }
        let (data_dir, settings) = (data_dir.to_path_buf(), settings.clone());
        tokio::task::spawn_blocking(move || Self::open(&data_dir, &settings))
            .await
            .map_err(|error| OutboxError::Unavailable(format!("opening the outbox failed: {error}")))?
    }

    /// The handle over a backend.
    pub(super) fn new(backend: impl OutboxBackend + 'static) -> Self {
        Self {
            backend: Arc::new(backend),
            observer: None,
        }
    }

    /// This outbox, telling `observer` of every send, retry and purge from now on (every clone
    /// made afterwards too).
    #[must_use]
    pub fn with_observer(self, observer: Arc<dyn DeliveryObserver>) -> Self {
        Self {
            observer: Some(observer),
            ..self
        }
    }

    /// The observer, if any.
    pub(super) fn observer(&self) -> Option<&dyn DeliveryObserver> {
        self.observer.as_deref()
    }

    /// Stores a webhook's notifications for delivery, oldest first, and returns once they are on
    /// disk. With a dedup key seen within the dedup window nothing is stored and the answer is
    /// [`Enqueued::Duplicate`]; otherwise the key is stored in the same transaction as the
    /// notifications. All or nothing: [`OutboxError::Full`] when they would not all fit,
    /// [`OutboxError::Unavailable`] when the disk refuses.
    #[allow(
        dead_code,
        reason = "the webhook handler dedups with enqueue_deduped; the tests and benchmarks use this"
    )]
    pub async fn enqueue(
        &self,
        route: &RouteName,
        notifications: Vec<NewMessage>,
        dedup_key: Option<String>,
    ) -> Result<Enqueued, OutboxError> {
        self.backend
            .enqueue(route, notifications, dedup_key.map(DedupKey::delivery))
            .await
    }

    /// [`Self::enqueue`] with a key remembered for its kind's window (an alert group's state
    /// for `PUSHJET_BRIDGE_ALERT_DEDUP_WINDOW`).
    pub async fn enqueue_deduped(
        &self,
        route: &RouteName,
        notifications: Vec<NewMessage>,
        dedup_key: Option<DedupKey>,
    ) -> Result<Enqueued, OutboxError> {
        self.backend.enqueue(route, notifications, dedup_key).await
    }

    /// True once the outbox can store nothing more before a restart: a commit failed with
    /// accepted changes in it, which the journal holds and the next start replays. The
    /// application then stops so that its supervisor starts it again.
    pub fn needs_restart(&self) -> bool {
        self.backend.needs_restart()
    }

    /// Why a webhook would not be accepted now (an outbox that refused a write, a database that
    /// cannot be reached), for the readiness probe; `None` when it would.
    pub fn problem(&self) -> Option<String> {
        self.backend.problem()
    }

    /// The data directory the outbox keeps its files in; `None` for a store without one.
    pub fn data_dir(&self) -> Option<&Path> {
        self.backend.data_dir()
    }

    /// How many notifications wait for delivery (in flight included).
    pub fn pending_count(&self) -> u64 {
        self.backend.pending_count()
    }

    /// How long the longest-waiting pending notification has been waiting (since it was queued,
    /// or since it was retried from the dead letters); `None` when nothing is pending.
    pub fn oldest_pending_age(&self) -> Option<Duration> {
        self.backend.oldest_pending_age()
    }

    /// Up to `limit` dead letters with ids above `after`, oldest first.
    pub async fn dead_letters(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, OutboxError> {
        self.backend.dead_letters(after, limit).await
    }

    /// How many notifications wait for delivery, per route that has any.
    pub async fn pending_by_route(
        &self,
    ) -> Result<std::collections::BTreeMap<RouteName, u64>, OutboxError> {
        self.backend.pending_by_route().await
    }

    /// How many dead letters there are.
    pub async fn dead_letter_count(&self) -> Result<u64, OutboxError> {
        self.backend.dead_letter_count().await
    }

    /// Queues a dead letter again with a fresh retry period. It keeps its id, so it goes out
    /// before its route's newer notifications.
    pub async fn retry_dead_letter(&self, id: u64) -> Result<(), OutboxError> {
        self.backend.retry_dead_letter(id).await?;
        if let Some(observer) = self.observer() {
            observer.requeued(&[id]);
        }
        Ok(())
    }

    /// Queues every dead letter again, oldest first, as far as the outbox has room.
    pub async fn retry_all_dead_letters(&self) -> Result<RetriedDeadLetters, OutboxError> {
        let retried = self.backend.retry_all_dead_letters().await?;
        if let Some(observer) = self.observer() {
            observer.requeued(&retried.ids);
        }
        Ok(retried)
    }

    /// Deletes a dead letter for good.
    pub async fn purge_dead_letter(&self, id: u64) -> Result<(), OutboxError> {
        self.backend.purge_dead_letter(id).await?;
        if let Some(observer) = self.observer() {
            observer.purged(id);
        }
        Ok(())
    }

    /// Now, in milliseconds since the epoch, on the clock that dates the outbox's records.
    pub(super) fn now(&self) -> u64 {
        self.backend.now()
    }

    /// Claims up to `room` routes whose oldest notification is due, oldest first, and says when
    /// the next unclaimed one falls due.
    pub(super) async fn claim_due(&self, room: usize) -> Due {
        self.backend.claim_due(room).await
    }

    /// The claimed route's next due notifications, up to `max`; empty when none is due.
    pub(super) async fn next_batch(
        &self,
        claim: &mut Claim,
        max: usize,
    ) -> Vec<(u64, PendingRecord)> {
        self.backend.next_batch(claim, max).await
    }

    /// Hands the outcome of a send over now; the returned future resolves once it is durable.
    pub(super) fn record(&self, claim: &Claim, id: u64, outcome: Outcome) -> Recording {
        self.backend.record(claim, id, outcome)
    }

    /// Gives a claim back once every outcome recorded under it is durable.
    pub(super) async fn release(&self, claim: Claim) {
        self.backend.release(claim).await;
    }

    /// Decides a webhook's notifications under the route's noise policy and queues those sent
    /// (see `delivery/noise/`).
    pub async fn admit(
        &self,
        route: &RouteName,
        admission: Admission<'_>,
    ) -> Result<Admitted, OutboxError> {
        self.backend.admit(route, admission).await
    }

    /// Queues the digests of the held notifications that are due.
    pub(in crate::delivery) async fn release_held(
        &self,
        max_message_bytes: usize,
    ) -> Result<Released, OutboxError> {
        self.backend.release_held(max_message_bytes).await
    }

    /// Resolves when something new may have become pending.
    pub(super) async fn changed(&self) {
        self.backend.changed().await;
    }

    /// Makes a pending notification a dead letter, as the dispatcher does after a permanent
    /// failure; for tests elsewhere in the crate. The claim is made up: the redb backend checks
    /// a claim's number only when it is given back.
    #[cfg(test)]
    pub(crate) async fn dead_letter_for_test(
        &self,
        id: u64,
        route: &RouteName,
        reason: &str,
    ) -> Result<(), OutboxError> {
        let claim = Claim::new(route.clone(), 0);
        let reason = reason.to_owned();
        self.record(&claim, id, Outcome::Dead { reason }).await
    }
}

#[cfg(test)]
mod tests;
