//! The embedded outbox backend, the default: every accepted notification, kept in one redb file,
//! `<data_dir>/outbox.redb`, until Pushjet has it or it becomes a dead letter. It implements
//! [`OutboxBackend`] for the `Outbox` handle, and uses nothing above it: only the contract and
//! the shared records (`delivery/outbox/backend.rs`, `records.rs`).
//!
//! Tables (values are serde_json records; times are milliseconds since the Unix epoch):
//!
//! | table | key | value |
//! |---|---|---|
//! | `pending` | id (global, increasing) | route name, message, attempts, first queued, waiting since, next attempt, last error |
//! | `dead_letters` | id (kept from `pending`) | route name, message, attempts, first queued, dead since, reason |
//! | `dedup_keys` | dedup key | when it expires |
//! | `dedup_expiry` | (expiry, dedup key) | — (index of the above by expiry, for pruning) |
//! | `meta` | name | the last id handed out |
//! | `noise` | route name | the route's noise state: rate window, collapse keys, held notifications (`noise.rs`, written in transactions of its own) |
//!
//! No secret is ever stored: the delivery worker looks the route's secret up when it sends.
//!
//! Every change goes through the committer thread (see `committer.rs`), which batches concurrent
//! requests and answers each caller only once the batch is on disk in the journal,
//! `<data_dir>/outbox.journal` (see `journal.rs`); the tables above take the journaled changes in
//! a durable commit every few milliseconds, and opening the outbox replays what they had not taken
//! when the process stopped. Reads run on Tokio's blocking pool, never on an async worker.
//!
//! One process owns the file (redb locks it), so the dispatcher's claims live in memory: the
//! schedule (`schedule.rs`) holds every pending notification by route, and a claim is a lane
//! marked with the claim's number until it is given back.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::Duration;

use futures_util::future::BoxFuture;
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{Notify, oneshot};

use self::committer::{Request, Settlement};
use self::schedule::Schedule;
use super::outbox::backend::{Claim, Due, OutboxBackend, Outcome, Recording};
use super::outbox::records::{
    Clock, DeadLetter, DeadRecord, DedupKey, Enqueued, OutboxError, PendingRecord, RetriedDeadLetters,
    SystemClock, duration_millis, millis,
};
use crate::config::DeliverySettings;
use crate::delivery::noise::{Admission, Admitted, Released};
use crate::pushjet::NewMessage;
use crate::routes::RouteName;

mod committer;
mod journal;
mod noise;
mod schedule;
mod tables;

/// The outbox's file inside the data directory.
pub const OUTBOX_FILE_NAME: &str = "outbox.redb";

const PENDING: TableDefinition<u64, &[u8]> = TableDefinition::new("pending");
const DEAD_LETTERS: TableDefinition<u64, &[u8]> = TableDefinition::new("dead_letters");
const DEDUP_KEYS: TableDefinition<&str, u64> = TableDefinition::new("dedup_keys");
const DEDUP_EXPIRY: TableDefinition<(u64, &str), ()> = TableDefinition::new("dedup_expiry");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// The most memory redb may use to cache the outbox's pages. Its default (1 GiB) lets the cache,
/// and so the process, grow with the file: the dedup keys of a day of webhooks, pending
/// notifications, dead letters. What the committer and the dispatcher touch (the newest pending
/// notifications, the paths to the keys it inserts) fits in a few MiB; anything else is read back
/// from the operating system's page cache when needed.
const CACHE_BYTES: usize = 8 * 1024 * 1024;

/// How long a notification is held back after the outbox failed to read it or to record the
/// outcome of its send.
const STORAGE_RETRY_DELAY: Duration = Duration::from_secs(5);

macro_rules! unavailable_from {
    ($($source:ty),+) => {$(
        impl From<$source> for OutboxError {
            fn from(error: $source) -> Self {
                Self::Unavailable(error.to_string())
            }
        }
    )+};
}

unavailable_from!(
    redb::Error,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);

/// Limits the committer enforces, in the units it stores.
#[derive(Debug, Clone, Copy)]
struct Limits {
    max_queue: u64,
    dedup_window_ms: u64,
    alert_dedup_window_ms: u64,
}

/// What the committer thread, the readers and the handles share.
#[derive(Debug)]
struct Core {
    db: Database,
    schedule: Mutex<Schedule>,
    wake: Notify,
    limits: Limits,
    /// False once a write transaction has failed, true again once one succeeds.
    writable: AtomicBool,
    /// True once a commit failed with accepted changes in it: they are in the journal only, and
    /// only a restart (which replays it) can store anything again.
    restart_needed: AtomicBool,
    /// Notifications stored (in the journal) that the schedule does not hold yet: they join it
    /// when the committer's open transaction is committed, a few milliseconds later.
    staged: AtomicU64,
    clock: Arc<dyn Clock>,
    /// How long the committer's write transaction collects batches ([`committer::APPLY_DELAY`];
    /// tests that take crash images hold commits back longer).
    apply_delay: Duration,
    /// How many write transactions the committer has made.
    #[cfg(test)]
    transactions: std::sync::atomic::AtomicU64,
}

impl Core {
    /// Milliseconds since the epoch, now.
    fn now(&self) -> u64 {
        millis(self.clock.now())
    }

    fn schedule(&self) -> MutexGuard<'_, Schedule> {
        self.schedule.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Leaves a notification pending but not due for [`STORAGE_RETRY_DELAY`] (its lane is freed
    /// when its run ends).
    fn postpone(&self, id: u64, route: &RouteName) {
        let due = self
            .now()
            .saturating_add(duration_millis(STORAGE_RETRY_DELAY));
        self.schedule().reschedule(id, route, due);
    }
}

/// The outbox kept in redb. Dropping it stops the committer thread after it has finished its
/// work and closes the file.
#[derive(Debug)]
pub(in crate::delivery) struct RedbOutbox {
    core: Arc<Core>,
    path: PathBuf,
    requests: Option<mpsc::Sender<Request>>,
    committer: Option<JoinHandle<()>>,
    /// Held while a route's noise state is read, decided and written (`noise.rs`).
    noise_lock: tokio::sync::Mutex<()>,
}

impl Drop for RedbOutbox {
    fn drop(&mut self) {
        drop(self.requests.take());
        if let Some(committer) = self.committer.take()
            && committer.join().is_err()
        {
            tracing::error!("the outbox committer thread panicked");
        }
    }
}

impl RedbOutbox {
    /// Opens `<data_dir>/outbox.redb`, creating the directory (mode 0700 on Unix) and the file if
    /// needed, and loads the pending notifications, a crash's leftovers included, for delivery.
    ///
    /// Blocking disk I/O: call it at start-up or inside `web::block`, not on an async worker.
    pub fn open(data_dir: &Path, settings: &DeliverySettings) -> Result<Self, OutboxError> {
        Self::open_with_clock(
            data_dir,
            settings,
            Arc::new(SystemClock),
            committer::APPLY_DELAY,
        )
    }

    /// [`Self::open`] with the clock that dates notifications, dedup keys and noise decisions.
    #[cfg(test)]
    pub(in crate::delivery) fn open_with_test_clock(
        data_dir: &Path,
        settings: &DeliverySettings,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, OutboxError> {
        Self::open_with_clock(data_dir, settings, clock, committer::APPLY_DELAY)
    }

    /// [`Self::open`] with the clock that dates notifications and dedup keys, and the time a
    /// write transaction collects batches before it is committed.
    fn open_with_clock(
        data_dir: &Path,
        settings: &DeliverySettings,
        clock: Arc<dyn Clock>,
        apply_delay: Duration,
    ) -> Result<Self, OutboxError> {
        create_private_dir(data_dir).map_err(|error| {
            OutboxError::Unavailable(format!(
                "cannot create the data directory {}: {error}",
                data_dir.display()
            ))
        })?;
        let path = data_dir.join(OUTBOX_FILE_NAME);
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(&path)
            .map_err(|error| match error {
                redb::DatabaseError::DatabaseAlreadyOpen => {
                    OutboxError::Locked { path: path.clone() }
                }
                other => {
                    OutboxError::Unavailable(format!("cannot open {}: {other}", path.display()))
                }
            })?;
        Self::start(db, path, Some(data_dir), settings, (clock, apply_delay))
    }

    /// Opens an outbox kept in the given storage backend (tests use one that can fail on demand),
    /// with its journal in `journal_dir`, or none (every commit durable on its own).
    #[cfg(test)]
    pub(in crate::delivery) fn open_with_backend(
        backend: impl redb::StorageBackend,
        journal_dir: Option<&Path>,
        settings: &DeliverySettings,
    ) -> Result<Self, OutboxError> {
        let db = Database::builder()
            .create_with_backend(backend)
            .map_err(|error| OutboxError::Unavailable(error.to_string()))?;
        Self::start(
            db,
            PathBuf::from("backend"),
            journal_dir,
            settings,
            (Arc::new(SystemClock), committer::APPLY_DELAY),
        )
    }

    /// Starts the committer on an open database; with `journal_dir`, after replaying the journal
    /// kept there (without one every commit is durable on its own).
    fn start(
        db: Database,
        path: PathBuf,
        journal_dir: Option<&Path>,
        settings: &DeliverySettings,
        (clock, apply_delay): (Arc<dyn Clock>, Duration),
    ) -> Result<Self, OutboxError> {
        let txn = db.begin_write()?;
        {
            txn.open_table(PENDING)?;
            txn.open_table(DEAD_LETTERS)?;
            txn.open_table(DEDUP_KEYS)?;
            txn.open_table(DEDUP_EXPIRY)?;
            txn.open_table(META)?;
        }
        txn.commit()?;
        let limits = Limits {
            max_queue: settings.max_queue,
            dedup_window_ms: duration_millis(settings.dedup_window),
            alert_dedup_window_ms: duration_millis(settings.alert_dedup_window),
        };
        let journal = journal_dir
            .map(|dir| committer::replay_journal(&db, dir, limits))
            .transpose()?;
        let schedule = load_schedule(&db)?;
        if schedule.len() > 0 {
            tracing::info!(
                pending = schedule.len(),
                "resuming delivery of pending notifications"
            );
        }
        let core = Arc::new(Core {
            db,
            schedule: Mutex::new(schedule),
            wake: Notify::new(),
            writable: AtomicBool::new(true),
            restart_needed: AtomicBool::new(false),
            staged: AtomicU64::new(0),
            limits,
            clock,
            apply_delay,
            #[cfg(test)]
            transactions: std::sync::atomic::AtomicU64::new(0),
        });
        let (requests, inbox) = mpsc::channel();
        let committer = std::thread::Builder::new()
            .name("outbox-committer".to_owned())
            .spawn({
                let core = core.clone();
                move || committer::run(&core, &inbox, journal)
            })
            .map_err(|error| {
                OutboxError::Unavailable(format!("cannot start the committer thread: {error}"))
            })?;
        Ok(Self {
            core,
            path,
            requests: Some(requests),
            committer: Some(committer),
            noise_lock: tokio::sync::Mutex::new(()),
        })
    }

    /// False after a write failed, until one succeeds again.
    #[cfg(test)]
    fn is_writable(&self) -> bool {
        self.core.writable.load(Ordering::Relaxed)
    }

    /// A pending notification, read for sending; `None` when it is no longer pending.
    #[cfg(test)]
    async fn load(&self, id: u64) -> Result<Option<PendingRecord>, OutboxError> {
        let mut loaded = self.load_many(vec![id]).await?;
        Ok(loaded.pop().and_then(|(_, record)| record))
    }

    /// Pending notifications, read for sending in one read transaction, in the order asked;
    /// `None` for an id that is no longer pending.
    async fn load_many(
        &self,
        ids: Vec<u64>,
    ) -> Result<Vec<(u64, Option<PendingRecord>)>, OutboxError> {
        self.read(move |db| {
            let txn = db.begin_read()?;
            let table = txn.open_table(PENDING)?;
            ids.into_iter()
                .map(|id| {
                    let record = table
                        .get(id)?
                        .map(|value| decode(value.value()))
                        .transpose()?;
                    Ok((id, record))
                })
                .collect()
        })
        .await
    }

    /// Records the outcome of a send, durably; returns once it is committed.
    #[cfg(test)]
    async fn settle(
        &self,
        id: u64,
        route: &RouteName,
        settlement: Settlement,
    ) -> Result<(), OutboxError> {
        self.settle_soon(id, route, settlement)?.await
    }

    /// Hands the outcome of a send to the committer now, without waiting for it: the returned
    /// future resolves once it is committed (or failed to be). A delivery run sends a route's
    /// next notification while the outcome of the one before it is being committed.
    fn settle_soon(
        &self,
        id: u64,
        route: &RouteName,
        settlement: Settlement,
    ) -> Result<Committed<()>, OutboxError> {
        self.submit(|reply| Request::Settle {
            id,
            route: route.clone(),
            settlement,
            reply,
        })
    }

    /// Makes a pending notification a dead letter, as the dispatcher does after a permanent
    /// failure.
    #[cfg(test)]
    async fn dead_letter_for_test(
        &self,
        id: u64,
        route: &RouteName,
        reason: &str,
    ) -> Result<(), OutboxError> {
        let reason = reason.to_owned();
        self.settle(id, route, Settlement::Dead { reason }).await
    }

    #[cfg(test)]
    fn core(&self) -> &Core {
        &self.core
    }

    /// Hands a request to the committer and waits for its answer, which comes after the commit.
    async fn request<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, OutboxError>>) -> Request,
    ) -> Result<T, OutboxError> {
        self.submit(make)?.await
    }

    /// Hands a request to the committer now; the returned future resolves to its answer, which
    /// comes after the commit.
    fn submit<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, OutboxError>>) -> Request,
    ) -> Result<Committed<T>, OutboxError> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .as_ref()
            .ok_or_else(committer_stopped)?
            .send(make(reply))
            .map_err(|_| committer_stopped())?;
        Ok(Committed(answer))
    }

    /// Runs a read on Tokio's blocking pool.
    async fn read<T: Send + 'static>(
        &self,
        job: impl FnOnce(&Database) -> Result<T, OutboxError> + Send + 'static,
    ) -> Result<T, OutboxError> {
        let core = self.core.clone();
        tokio::task::spawn_blocking(move || job(&core.db))
            .await
            .map_err(|error| OutboxError::Unavailable(format!("an outbox read failed: {error}")))?
    }
}

impl OutboxBackend for RedbOutbox {
    fn enqueue<'a>(
        &'a self,
        route: &'a RouteName,
        notifications: Vec<NewMessage>,
        dedup_key: Option<DedupKey>,
    ) -> BoxFuture<'a, Result<Enqueued, OutboxError>> {
        let limits = self.core.limits;
        let dedup_window_ms = dedup_key
            .as_ref()
            .map(|key| key.window_ms(limits.dedup_window_ms, limits.alert_dedup_window_ms));
        Box::pin(self.request(move |reply| Request::Enqueue {
            route: route.clone(),
            messages: notifications,
            dedup_key: dedup_key.map(|key| key.key),
            dedup_window_ms,
            reply,
        }))
    }

    fn admit<'a>(
        &'a self,
        route: &'a RouteName,
        admission: Admission<'a>,
    ) -> BoxFuture<'a, Result<Admitted, OutboxError>> {
        Box::pin(self.admit_noise(route, admission))
    }

    fn release_held(
        &self,
        max_message_bytes: usize,
    ) -> BoxFuture<'_, Result<Released, OutboxError>> {
        Box::pin(self.release_noise(max_message_bytes))
    }

    fn dead_letters(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<DeadLetter>, OutboxError>> {
        Box::pin(self.read(move |db| {
            let txn = db.begin_read()?;
            let table = txn.open_table(DEAD_LETTERS)?;
            let start = after.map_or(0, |after| after.saturating_add(1));
            let mut letters = Vec::new();
            for entry in table.range(start..)?.take(limit) {
                let (id, value) = entry?;
                let record: DeadRecord = decode(value.value())?;
                letters.push(record.into_dead_letter(id.value())?);
            }
            Ok(letters)
        }))
    }

    fn pending_by_route(
        &self,
    ) -> BoxFuture<'_, Result<std::collections::BTreeMap<RouteName, u64>, OutboxError>> {
        let pending = self.core.schedule().len_by_route();
        Box::pin(async move { Ok(pending) })
    }

    fn dead_letter_count(&self) -> BoxFuture<'_, Result<u64, OutboxError>> {
        Box::pin(self.read(|db| Ok(db.begin_read()?.open_table(DEAD_LETTERS)?.len()?)))
    }

    fn retry_dead_letter(&self, id: u64) -> BoxFuture<'_, Result<(), OutboxError>> {
        Box::pin(self.request(move |reply| Request::RetryDeadLetter { id, reply }))
    }

    fn retry_all_dead_letters(&self) -> BoxFuture<'_, Result<RetriedDeadLetters, OutboxError>> {
        Box::pin(self.request(|reply| Request::RetryAllDeadLetters { reply }))
    }

    fn purge_dead_letter(&self, id: u64) -> BoxFuture<'_, Result<(), OutboxError>> {
        Box::pin(self.request(move |reply| Request::PurgeDeadLetter { id, reply }))
    }

    /// Counts the schedule and what the committer holds for it.
    fn pending_count(&self) -> u64 {
        let scheduled = u64::try_from(self.core.schedule().len()).unwrap_or(u64::MAX);
        scheduled.saturating_add(self.core.staged.load(Ordering::Relaxed))
    }

    fn oldest_pending_age(&self) -> Option<Duration> {
        let since = self.core.schedule().oldest_since()?;
        Some(Duration::from_millis(self.core.now().saturating_sub(since)))
    }

    /// redb refuses every write after a failed commit until the database is reopened.
    fn needs_restart(&self) -> bool {
        self.core.restart_needed.load(Ordering::Relaxed)
    }

    fn problem(&self) -> Option<String> {
        self.needs_restart().then(|| {
            "the outbox could not commit accepted notifications; the service stops so that its \
             supervisor restarts it"
                .to_owned()
        })
    }

    fn data_dir(&self) -> Option<&Path> {
        self.path.parent()
    }

    fn now(&self) -> u64 {
        self.core.now()
    }

    /// Claims are the schedule's lanes, marked busy in memory: this process owns the file.
    fn claim_due(&self, room: usize) -> BoxFuture<'_, Due> {
        let now = self.core.now();
        let mut schedule = self.core.schedule();
        let claims = schedule
            .take_due(now, room)
            .into_iter()
            .map(|(route, lease)| Claim::new(route, lease))
            .collect();
        let next_due = schedule.next_due();
        Box::pin(std::future::ready(Due { claims, next_due }))
    }

    /// Reads the due ids from the schedule and their records in one read transaction; forgets
    /// the ids whose record is gone.
    fn next_batch<'a>(
        &'a self,
        claim: &'a mut Claim,
        max: usize,
    ) -> BoxFuture<'a, Vec<(u64, PendingRecord)>> {
        Box::pin(async move {
            let core = &self.core;
            let ids = core
                .schedule()
                .due_after(claim.route(), claim.after(), core.now(), max);
            let Some(&first) = ids.first() else {
                return Vec::new();
            };
            let loaded = match self.load_many(ids).await {
                Ok(loaded) => loaded,
                Err(error) => {
                    tracing::error!(
                        id = first,
                        route = %claim.route(),
                        "cannot read notification {first} from the outbox, trying again in {}: \
                         {error}",
                        humantime::format_duration(STORAGE_RETRY_DELAY)
                    );
                    core.postpone(first, claim.route());
                    return Vec::new();
                }
            };
            let mut due = Vec::with_capacity(loaded.len());
            for (id, record) in loaded {
                claim.handed_out(id);
                match record {
                    Some(record) => due.push((id, record)),
                    None => core.schedule().remove(id, claim.route()),
                }
            }
            due
        })
    }

    /// Journals the outcome with the next batch; a failure holds the notification back.
    fn record(&self, claim: &Claim, id: u64, outcome: Outcome) -> Recording {
        let route = claim.route().clone();
        match self.settle_soon(id, &route, Settlement::from(outcome)) {
            Ok(committed) => {
                let core = self.core.clone();
                Box::pin(async move {
                    let recorded = committed.await;
                    if recorded.is_err() {
                        core.postpone(id, &route);
                    }
                    recorded
                })
            }
            Err(error) => {
                self.core.postpone(id, &route);
                Box::pin(std::future::ready(Err(error)))
            }
        }
    }

    fn release(&self, claim: Claim) -> BoxFuture<'_, ()> {
        self.core.schedule().release(claim.route(), claim.lease());
        Box::pin(std::future::ready(()))
    }

    /// The committer wakes the dispatcher when new notifications are committed.
    fn changed(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.core.wake.notified())
    }
}

/// The committer's answer to a request handed to it: resolves once the request's transaction is
/// committed (or failed).
#[derive(Debug)]
struct Committed<T>(oneshot::Receiver<Result<T, OutboxError>>);

impl<T> Future for Committed<T> {
    type Output = Result<T, OutboxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|answer| answer.unwrap_or_else(|_| Err(committer_stopped())))
    }
}

fn committer_stopped() -> OutboxError {
    OutboxError::Unavailable("the outbox committer has stopped".to_owned())
}

/// Builds the delivery schedule from the pending table. A record that cannot be read is logged
/// and left where it is.
fn load_schedule(db: &Database) -> Result<Schedule, OutboxError> {
    let mut schedule = Schedule::default();
    let txn = db.begin_read()?;
    for entry in txn.open_table(PENDING)?.iter()? {
        let (id, value) = entry?;
        let id = id.value();
        let parsed = decode::<PendingRecord>(value.value()).and_then(|record| {
            let route = RouteName::parse(&record.route)
                .map_err(|error| OutboxError::Record(error.to_string()))?;
            Ok((route, record))
        });
        match parsed {
            Ok((route, record)) => {
                schedule.insert(id, route, record.next_attempt_at, record.retrying_since);
            }
            Err(error) => {
                tracing::error!(id, "pending notification {id} cannot be delivered: {error}");
            }
        }
    }
    Ok(schedule)
}

fn encode<T: Serialize>(record: &T) -> Result<Vec<u8>, OutboxError> {
    Ok(serde_json::to_vec(record)?)
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, OutboxError> {
    Ok(serde_json::from_slice(bytes)?)
}

/// Creates the directory and its parents; on Unix a newly created directory is private (0700).
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

#[cfg(test)]
mod tests;
