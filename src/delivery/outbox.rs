//! The outbox: every accepted notification, kept in one redb file, `<data_dir>/outbox.redb`, until
//! Pushjet has it or it becomes a dead letter.
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
//!
//! No secret is ever stored: the delivery worker looks the route's secret up when it sends.
//!
//! Every change goes through the committer thread (see `committer.rs`), which batches concurrent
//! requests and answers each caller only once the batch is on disk in the journal,
//! `<data_dir>/outbox.journal` (see `journal.rs`); the tables above take the journaled changes in
//! a durable commit every few milliseconds, and opening the outbox replays what they had not taken
//! when the process stopped. Reads run on Tokio's blocking pool, never on an async worker.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize, Serializer};
use tokio::sync::{Notify, oneshot};

use super::committer::{self, Request, Settlement};
use super::schedule::Schedule;
use super::settings::DeliverySettings;
use crate::pushjet::NewMessage;
use crate::routes::RouteName;

/// The outbox's file inside the data directory.
pub const OUTBOX_FILE_NAME: &str = "outbox.redb";

pub(super) const PENDING: TableDefinition<u64, &[u8]> = TableDefinition::new("pending");
pub(super) const DEAD_LETTERS: TableDefinition<u64, &[u8]> = TableDefinition::new("dead_letters");
pub(super) const DEDUP_KEYS: TableDefinition<&str, u64> = TableDefinition::new("dedup_keys");
pub(super) const DEDUP_EXPIRY: TableDefinition<(u64, &str), ()> =
    TableDefinition::new("dedup_expiry");
pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// The most memory redb may use to cache the outbox's pages. Its default (1 GiB) lets the cache,
/// and so the process, grow with the file: the dedup keys of a day of webhooks, pending
/// notifications, dead letters. What the committer and the dispatcher touch (the newest pending
/// notifications, the paths to the keys it inserts) fits in a few MiB; anything else is read back
/// from the operating system's page cache when needed.
const CACHE_BYTES: usize = 8 * 1024 * 1024;

/// How long a caller refused for a full outbox should wait before trying again.
const FULL_RETRY_AFTER: Duration = Duration::from_secs(30);
/// How long a caller refused for an unwritable outbox should wait before trying again.
const UNAVAILABLE_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Why the outbox could not do what was asked.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OutboxError {
    /// Backpressure: too many notifications are waiting; nothing was queued.
    #[error(
        "the outbox is full: {limit} notifications are already waiting for delivery \
         (PUSHJET_BRIDGE_MAX_QUEUE); try again later"
    )]
    Full {
        /// The configured limit.
        limit: u64,
    },
    /// The outbox cannot be written (disk full, read-only file system, I/O error, …); nothing was
    /// queued.
    #[error("the outbox cannot be written: {0}")]
    Unavailable(String),
    /// Another process holds the database's lock: usually the running service.
    #[error(
        "the outbox database {} is locked by another process, usually the running service: \
         stop it first, or use the service's admin endpoints (/admin/dead-letters)",
        path.display()
    )]
    Locked {
        /// The database file.
        path: PathBuf,
    },
    /// A stored record could not be read back.
    #[error("an outbox record is unreadable: {0}")]
    Record(String),
    /// No dead letter has this id (it was retried or purged, or never existed).
    #[error("no dead letter has id {0}")]
    NoSuchDeadLetter(u64),
}

impl OutboxError {
    /// How long a caller should wait before offering the work again (an HTTP `Retry-After`), for
    /// the errors that pass with time.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Full { .. } => Some(FULL_RETRY_AFTER),
            Self::Unavailable(_) => Some(UNAVAILABLE_RETRY_AFTER),
            Self::Locked { .. } | Self::Record(_) | Self::NoSuchDeadLetter(_) => None,
        }
    }
}

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

impl From<serde_json::Error> for OutboxError {
    fn from(error: serde_json::Error) -> Self {
        Self::Record(error.to_string())
    }
}

/// What became of an enqueue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enqueued {
    /// Every notification is on disk, with these ids, in the order given.
    Queued(Vec<u64>),
    /// The dedup key was seen within the window: nothing was queued.
    Duplicate,
}

/// A notification that will not be delivered without an operator: permanently refused, or still
/// failing when its retry time ran out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeadLetter {
    /// Its id (the one it had while pending).
    pub id: u64,
    /// The route it was sent for.
    pub route: RouteName,
    /// The notification.
    pub message: NewMessage,
    /// How many sends were tried.
    pub attempts: u32,
    /// When it was first queued.
    #[serde(serialize_with = "rfc3339")]
    pub queued_at: SystemTime,
    /// When it became a dead letter.
    #[serde(serialize_with = "rfc3339")]
    pub dead_at: SystemTime,
    /// Why, and what to fix.
    pub reason: String,
}

/// The result of retrying every dead letter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RetriedDeadLetters {
    /// The dead letters queued again, oldest first.
    pub ids: Vec<u64>,
    /// Dead letters still left: those the outbox had no room for, or could not read.
    pub left: u64,
}

/// A pending notification as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct PendingRecord {
    pub(super) route: String,
    pub(super) message: NewMessage,
    pub(super) attempts: u32,
    pub(super) queued_at: u64,
    /// Start of the current retry period: when it was queued, or retried from the dead letters.
    pub(super) retrying_since: u64,
    pub(super) next_attempt_at: u64,
    pub(super) last_error: Option<String>,
}

/// A dead letter as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct DeadRecord {
    pub(super) route: String,
    pub(super) message: NewMessage,
    pub(super) attempts: u32,
    pub(super) queued_at: u64,
    pub(super) dead_at: u64,
    pub(super) reason: String,
}

/// Where the wall-clock time comes from (tests set their own).
pub(super) trait Clock: Send + Sync + std::fmt::Debug {
    /// The current time.
    fn now(&self) -> SystemTime;
}

#[derive(Debug)]
struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// Limits the committer enforces, in the units it stores.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    pub(super) max_queue: u64,
    pub(super) dedup_window_ms: u64,
}

/// What the committer thread, the readers and the handles share.
#[derive(Debug)]
pub(super) struct Core {
    pub(super) db: Database,
    pub(super) schedule: Mutex<Schedule>,
    pub(super) wake: Notify,
    pub(super) limits: Limits,
    /// False once a write transaction has failed.
    pub(super) writable: AtomicBool,
    /// Notifications stored (in the journal) that the schedule does not hold yet: they join it
    /// when the committer's open transaction is committed, a few milliseconds later.
    pub(super) staged: AtomicU64,
    clock: Arc<dyn Clock>,
    /// How many write transactions the committer has made.
    #[cfg(test)]
    pub(super) transactions: std::sync::atomic::AtomicU64,
}

impl Core {
    /// Milliseconds since the epoch, now.
    pub(super) fn now(&self) -> u64 {
        millis(self.clock.now())
    }

    pub(super) fn schedule(&self) -> MutexGuard<'_, Schedule> {
        self.schedule.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The durable outbox. Cheap to clone; every clone is the same store. Dropping the last clone
/// stops the committer thread after it has finished its work and closes the file.
#[derive(Debug, Clone)]
pub struct Outbox {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    core: Arc<Core>,
    path: PathBuf,
    requests: Option<mpsc::Sender<Request>>,
    committer: Option<JoinHandle<()>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        drop(self.requests.take());
        if let Some(committer) = self.committer.take()
            && committer.join().is_err()
        {
            tracing::error!("the outbox committer thread panicked");
        }
    }
}

impl Outbox {
    /// Opens `<data_dir>/outbox.redb`, creating the directory (mode 0700 on Unix) and the file if
    /// needed, and loads the pending notifications, a crash's leftovers included, for delivery.
    ///
    /// Blocking disk I/O: call it at start-up or inside `web::block`, not on an async worker.
    pub fn open(data_dir: &Path, settings: &DeliverySettings) -> Result<Self, OutboxError> {
        Self::open_with_clock(data_dir, settings, Arc::new(SystemClock))
    }

    /// [`Self::open`] with the clock that dates notifications and dedup keys.
    pub(super) fn open_with_clock(
        data_dir: &Path,
        settings: &DeliverySettings,
        clock: Arc<dyn Clock>,
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
        Self::start(db, path, Some(data_dir), settings, clock)
    }

    /// Opens an outbox kept in the given storage backend (tests use one that can fail on demand),
    /// with its journal in `journal_dir`, or none (every commit durable on its own).
    #[cfg(test)]
    pub(super) fn open_with_backend(
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
            Arc::new(SystemClock),
        )
    }

    /// Starts the committer on an open database; with `journal_dir`, after replaying the journal
    /// kept there (without one every commit is durable on its own).
    fn start(
        db: Database,
        path: PathBuf,
        journal_dir: Option<&Path>,
        settings: &DeliverySettings,
        clock: Arc<dyn Clock>,
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
            staged: AtomicU64::new(0),
            limits,
            clock,
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
            shared: Arc::new(Shared {
                core,
                path,
                requests: Some(requests),
                committer: Some(committer),
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// Stores a webhook's notifications for delivery, oldest first, and returns once they are on
    /// disk. With a dedup key seen within the dedup window nothing is stored and the answer is
    /// [`Enqueued::Duplicate`]; otherwise the key is stored in the same transaction as the
    /// notifications. All or nothing: [`OutboxError::Full`] when they would not all fit,
    /// [`OutboxError::Unavailable`] when the disk refuses.
    pub async fn enqueue(
        &self,
        route: &RouteName,
        notifications: Vec<NewMessage>,
        dedup_key: Option<String>,
    ) -> Result<Enqueued, OutboxError> {
        self.request(|reply| Request::Enqueue {
            route: route.clone(),
            messages: notifications,
            dedup_key,
            reply,
        })
        .await
    }

    /// False once a write to the outbox has failed (disk full, read-only, I/O error). redb then
    /// refuses every further write until the database is reopened, so every enqueue answers
    /// [`OutboxError::Unavailable`] until the process restarts: a health check should report it.
    pub fn is_writable(&self) -> bool {
        self.core().writable.load(Ordering::Relaxed)
    }

    /// How many notifications wait for delivery (in flight included).
    pub fn pending_count(&self) -> u64 {
        let scheduled = u64::try_from(self.core().schedule().len()).unwrap_or(u64::MAX);
        scheduled.saturating_add(self.core().staged.load(Ordering::Relaxed))
    }

    /// How long the longest-waiting pending notification has been waiting (since it was queued,
    /// or since it was retried from the dead letters); `None` when nothing is pending.
    pub fn oldest_pending_age(&self) -> Option<Duration> {
        let since = self.core().schedule().oldest_since()?;
        Some(Duration::from_millis(
            self.core().now().saturating_sub(since),
        ))
    }

    /// Up to `limit` dead letters with ids above `after`, oldest first.
    pub async fn dead_letters(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, OutboxError> {
        self.read(move |db| {
            let txn = db.begin_read()?;
            let table = txn.open_table(DEAD_LETTERS)?;
            let start = after.map_or(0, |after| after.saturating_add(1));
            let mut letters = Vec::new();
            for entry in table.range(start..)?.take(limit) {
                let (id, value) = entry?;
                let record: DeadRecord = decode(value.value())?;
                letters.push(dead_letter(id.value(), record)?);
            }
            Ok(letters)
        })
        .await
    }

    /// How many dead letters there are.
    pub async fn dead_letter_count(&self) -> Result<u64, OutboxError> {
        self.read(|db| Ok(db.begin_read()?.open_table(DEAD_LETTERS)?.len()?))
            .await
    }

    /// Queues a dead letter again with a fresh retry period. It keeps its id, so it goes out
    /// before its route's newer notifications.
    pub async fn retry_dead_letter(&self, id: u64) -> Result<(), OutboxError> {
        self.request(|reply| Request::RetryDeadLetter { id, reply })
            .await
    }

    /// Queues every dead letter again, oldest first, as far as the outbox has room.
    pub async fn retry_all_dead_letters(&self) -> Result<RetriedDeadLetters, OutboxError> {
        self.request(|reply| Request::RetryAllDeadLetters { reply })
            .await
    }

    /// Deletes a dead letter for good.
    pub async fn purge_dead_letter(&self, id: u64) -> Result<(), OutboxError> {
        self.request(|reply| Request::PurgeDeadLetter { id, reply })
            .await
    }

    /// A pending notification, read for sending; `None` when it is no longer pending.
    #[cfg(test)]
    pub(super) async fn load(&self, id: u64) -> Result<Option<PendingRecord>, OutboxError> {
        let mut loaded = self.load_many(vec![id]).await?;
        Ok(loaded.pop().and_then(|(_, record)| record))
    }

    /// Pending notifications, read for sending in one read transaction, in the order asked;
    /// `None` for an id that is no longer pending.
    pub(super) async fn load_many(
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
    pub(super) async fn settle(
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
    pub(super) fn settle_soon(
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
    /// failure; for tests elsewhere in the crate.
    #[cfg(test)]
    pub(crate) async fn dead_letter_for_test(
        &self,
        id: u64,
        route: &RouteName,
        reason: &str,
    ) -> Result<(), OutboxError> {
        let reason = reason.to_owned();
        self.settle(id, route, Settlement::Dead { reason }).await
    }

    pub(super) fn core(&self) -> &Core {
        &self.shared.core
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
        self.shared
            .requests
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
        let core = self.shared.core.clone();
        tokio::task::spawn_blocking(move || job(&core.db))
            .await
            .map_err(|error| OutboxError::Unavailable(format!("an outbox read failed: {error}")))?
    }
}

/// The committer's answer to a request handed to it: resolves once the request's transaction is
/// committed (or failed).
#[derive(Debug)]
pub(super) struct Committed<T>(oneshot::Receiver<Result<T, OutboxError>>);

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

fn dead_letter(id: u64, record: DeadRecord) -> Result<DeadLetter, OutboxError> {
    Ok(DeadLetter {
        id,
        route: RouteName::parse(&record.route)
            .map_err(|error| OutboxError::Record(error.to_string()))?,
        message: record.message,
        attempts: record.attempts,
        queued_at: time(record.queued_at),
        dead_at: time(record.dead_at),
        reason: record.reason,
    })
}

pub(super) fn encode<T: Serialize>(record: &T) -> Result<Vec<u8>, OutboxError> {
    Ok(serde_json::to_vec(record)?)
}

pub(super) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, OutboxError> {
    Ok(serde_json::from_slice(bytes)?)
}

/// Milliseconds since the epoch (0 before it).
pub(super) fn millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, duration_millis)
}

/// A duration in whole milliseconds, saturating.
pub(super) fn duration_millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn time(millis: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(millis)
}

fn rfc3339<S: Serializer>(time: &SystemTime, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&humantime::format_rfc3339_millis(*time))
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
mod tests {
    use std::sync::atomic::Ordering;

    use tempfile::TempDir;

    use super::*;
    use crate::delivery::test_support::{
        FailingBackend, ManualClock, fast_settings, message, route,
    };

    fn open(dir: &TempDir) -> Outbox {
        Outbox::open(dir.path(), &fast_settings()).unwrap()
    }

    fn queued(outcome: Result<Enqueued, OutboxError>) -> Vec<u64> {
        match outcome {
            Ok(Enqueued::Queued(ids)) => ids,
            other => panic!("expected Queued, got {other:?}"),
        }
    }

    /// Waits (up to 10 s) until `done` says so: for what the committer does a few milliseconds
    /// after it answers.
    async fn wait_until(done: impl Fn() -> bool) {
        let started = std::time::Instant::now();
        while !done() && started.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Makes pending notifications dead letters, as the worker does for permanent failures.
    async fn kill(outbox: &Outbox, ids: &[u64]) {
        for id in ids {
            let reason = format!("reason {id}");
            outbox
                .dead_letter_for_test(*id, &route("gh"), &reason)
                .await
                .unwrap();
        }
    }

    #[test]
    fn the_outbox_can_be_shared_between_http_workers() {
        fn shareable<T: Send + Sync + 'static>() {}
        shareable::<Outbox>();
    }

    #[actix_web::test]
    async fn enqueued_notifications_are_on_disk_when_enqueue_returns() {
        let dir = TempDir::new().unwrap();
        let outbox = open(&dir);
        let ids = queued(
            outbox
                .enqueue(&route("gh"), vec![message("one"), message("two")], None)
                .await,
        );
        assert_eq!(ids, [1, 2]);
        drop(outbox);

        let reopened = open(&dir);
        assert_eq!(reopened.pending_count(), 2);
        let stored = reopened.load(2).await.unwrap().unwrap();
        assert_eq!(stored.message, message("two"));
        assert_eq!(stored.route, "gh");
        assert_eq!(stored.attempts, 0);
    }

    /// The database file as it is now: taken right after opening, it is what a crash leaves
    /// when the crash comes before the first commit (the one that holds nothing of the journal).
    fn database_bytes(dir: &TempDir) -> Vec<u8> {
        std::fs::read(dir.path().join(OUTBOX_FILE_NAME)).unwrap()
    }

    /// A data directory holding `database` and the journal of `dir` as it is now: every frame
    /// written since must be replayed from the journal.
    fn crash_image(database: &[u8], dir: &TempDir) -> TempDir {
        let image = TempDir::new().unwrap();
        std::fs::write(image.path().join(OUTBOX_FILE_NAME), database).unwrap();
        let journal = super::super::journal::JOURNAL_FILE_NAME;
        std::fs::copy(dir.path().join(journal), image.path().join(journal)).unwrap();
        image
    }

    #[actix_web::test]
    async fn a_crash_loses_nothing_the_journal_holds_and_applies_it_once() {
        let dir = TempDir::new().unwrap();
        let outbox = open(&dir);
        let database = database_bytes(&dir);
        let key = || Some("github:crash".to_owned());
        let first = queued(
            outbox
                .enqueue(&route("gh"), vec![message("one"), message("two")], key())
                .await,
        );
        queued(
            outbox
                .enqueue(&route("am"), vec![message("three")], None)
                .await,
        );
        outbox
            .settle(first[0], &route("gh"), Settlement::Sent)
            .await
            .unwrap();
        let retry_at = outbox.core().now() + 60_000;
        outbox
            .settle(
                first[1],
                &route("gh"),
                Settlement::Retry {
                    at: retry_at,
                    error: "503".to_owned(),
                },
            )
            .await
            .unwrap();
        let image = crash_image(&database, &dir);
        let without_journal = TempDir::new().unwrap();
        std::fs::write(without_journal.path().join(OUTBOX_FILE_NAME), &database).unwrap();
        assert_eq!(
            open(&without_journal).pending_count(),
            0,
            "the database image alone holds none of it"
        );

        let recovered = open(&image);
        assert_eq!(recovered.pending_count(), 2, "two: the first one was sent");
        let retried = recovered.load(first[1]).await.unwrap().unwrap();
        assert_eq!((retried.attempts, retried.next_attempt_at), (1, retry_at));
        assert_eq!(retried.last_error.as_deref(), Some("503"));
        assert_eq!(
            recovered.load(3).await.unwrap().unwrap().message,
            message("three")
        );
        let again = recovered
            .enqueue(&route("gh"), vec![message("one")], key())
            .await
            .unwrap();
        assert_eq!(again, Enqueued::Duplicate, "the dedup key came back too");
        assert_eq!(
            queued(
                recovered
                    .enqueue(&route("gh"), vec![message("four")], None)
                    .await
            ),
            [4],
            "ids go on after the recovered ones"
        );
        drop(recovered);

        // Opening again finds the recovered changes in the database, and in the journal only
        // frames the database holds: none is applied twice.
        let reopened = open(&image);
        assert_eq!(reopened.pending_count(), 3, "nothing applied twice");
    }

    #[actix_web::test]
    async fn dead_letter_changes_are_recovered_from_the_journal() {
        use super::super::journal::{ChangeRef, JOURNAL_FILE_NAME, encode_frame};

        // Operators' changes are committed before they are answered, so they are replayed only
        // after a crash between the journal's sync and that commit: write such frames by hand.
        let dir = TempDir::new().unwrap();
        let outbox = open(&dir);
        let messages = (1..=4).map(|n| message(&format!("m{n}"))).collect();
        queued(outbox.enqueue(&route("gh"), messages, None).await);
        kill(&outbox, &[1, 2, 3, 4]).await;
        drop(outbox);
        let applied = Database::open(dir.path().join(OUTBOX_FILE_NAME))
            .unwrap()
            .begin_read()
            .unwrap()
            .open_table(META)
            .unwrap()
            .get("journal_seq")
            .unwrap()
            .map_or(0, |value| value.value());
        let dead = Settlement::Dead {
            reason: "again".to_owned(),
        };
        let changes = [
            ChangeRef::PurgeDeadLetter { id: 4 },
            ChangeRef::RetryDeadLetter { id: 3 },
            ChangeRef::RetryDeadLetter { id: 1 },
            ChangeRef::RetryDeadLetter { id: 2 },
            ChangeRef::Settle {
                id: 2,
                route: "gh",
                settlement: &dead,
            },
        ];
        let mut journal = Vec::new();
        for (seq, change) in (applied + 1..).zip(&changes) {
            journal.extend(encode_frame(seq, 1, &[change.to_json().unwrap()]));
        }
        std::fs::write(dir.path().join(JOURNAL_FILE_NAME), journal).unwrap();

        let recovered = open(&dir);
        assert_eq!(recovered.pending_count(), 2);
        assert!(recovered.load(1).await.unwrap().is_some());
        assert!(recovered.load(3).await.unwrap().is_some());
        let dead = recovered.dead_letters(None, 10).await.unwrap();
        assert_eq!(dead.iter().map(|d| d.id).collect::<Vec<_>>(), [2]);
        assert_eq!(dead[0].reason, "again");
    }

    #[actix_web::test]
    async fn ids_keep_increasing_across_restarts_and_deliveries() {
        let dir = TempDir::new().unwrap();
        let outbox = open(&dir);
        queued(outbox.enqueue(&route("a"), vec![message("1")], None).await);
        outbox
            .settle(1, &route("a"), Settlement::Sent)
            .await
            .unwrap();
        assert_eq!(outbox.pending_count(), 0);
        drop(outbox);

        let reopened = open(&dir);
        let ids = queued(
            reopened
                .enqueue(&route("b"), vec![message("2"), message("3")], None)
                .await,
        );
        assert_eq!(ids, [2, 3]);
    }

    #[actix_web::test]
    async fn a_dedup_key_seen_within_the_window_is_a_duplicate_and_queues_nothing() {
        let dir = TempDir::new().unwrap();
        let outbox = open(&dir);
        let key = || Some("github:72d3162e".to_owned());
        queued(
            outbox
                .enqueue(&route("gh"), vec![message("a")], key())
                .await,
        );
        let again = outbox
            .enqueue(&route("gh"), vec![message("a"), message("b")], key())
            .await
            .unwrap();
        assert_eq!(again, Enqueued::Duplicate);
        assert_eq!(outbox.pending_count(), 1);
        let other = outbox
            .enqueue(
                &route("gh"),
                vec![message("c")],
                Some("github:other".to_owned()),
            )
            .await;
        assert_eq!(queued(other), [2]);
    }

    #[actix_web::test]
    async fn a_dedup_key_is_forgotten_after_the_window_and_remembered_across_restarts() {
        let dir = TempDir::new().unwrap();
        let clock = ManualClock::new();
        let settings = DeliverySettings {
            dedup_window: Duration::from_secs(3600),
            ..fast_settings()
        };
        let key = || Some("gitlab:1".to_owned());
        let outbox = Outbox::open_with_clock(dir.path(), &settings, clock.clone()).unwrap();
        queued(
            outbox
                .enqueue(&route("gl"), vec![message("a")], key())
                .await,
        );
        drop(outbox);

        clock.advance(Duration::from_secs(3599));
        let outbox = Outbox::open_with_clock(dir.path(), &settings, clock.clone()).unwrap();
        let within = outbox
            .enqueue(&route("gl"), vec![message("a")], key())
            .await;
        assert_eq!(within.unwrap(), Enqueued::Duplicate);

        clock.advance(Duration::from_secs(1));
        let after = outbox
            .enqueue(&route("gl"), vec![message("a")], key())
            .await;
        assert_eq!(queued(after), [2]);
        let fresh_window = outbox
            .enqueue(&route("gl"), vec![message("a")], key())
            .await;
        assert_eq!(fresh_window.unwrap(), Enqueued::Duplicate);
    }

    #[actix_web::test]
    async fn enqueue_refuses_beyond_the_queue_limit_all_or_nothing() {
        let dir = TempDir::new().unwrap();
        let settings = DeliverySettings {
            max_queue: 3,
            ..fast_settings()
        };
        let outbox = Outbox::open(dir.path(), &settings).unwrap();
        queued(
            outbox
                .enqueue(&route("gh"), vec![message("1"), message("2")], None)
                .await,
        );
        let key = || Some("github:big".to_owned());
        let refused = outbox
            .enqueue(&route("gh"), vec![message("3"), message("4")], key())
            .await
            .unwrap_err();
        assert!(
            matches!(refused, OutboxError::Full { limit: 3 }),
            "{refused}"
        );
        assert_eq!(refused.retry_after(), Some(FULL_RETRY_AFTER));
        assert_eq!(outbox.pending_count(), 2);
        let fits = outbox
            .enqueue(&route("gh"), vec![message("3")], key())
            .await;
        assert_eq!(queued(fits), [3], "the refused call must not keep its key");
    }

    #[actix_web::test]
    async fn group_commit_batches_concurrent_enqueues_into_few_transactions() {
        let dir = TempDir::new().unwrap();
        let outbox = open(&dir);
        let before = outbox.core().transactions.load(Ordering::Relaxed);
        let calls = (0..200).map(|n| {
            let outbox = outbox.clone();
            async move {
                let key = Some(format!("generic:{n}"));
                outbox
                    .enqueue(&route("load"), vec![message(&n.to_string())], key)
                    .await
            }
        });
        let outcomes = futures_util::future::join_all(calls).await;
        let mut ids: Vec<u64> = outcomes.into_iter().flat_map(queued).collect();
        ids.sort_unstable();
        assert_eq!(ids, (1..=200).collect::<Vec<u64>>());
        assert_eq!(outbox.pending_count(), 200);
        let transactions = outbox.core().transactions.load(Ordering::Relaxed) - before;
        assert!(
            transactions < 20,
            "{transactions} transactions for 200 enqueues"
        );
        drop(outbox);
        assert_eq!(open(&dir).pending_count(), 200);
    }

    #[test]
    fn a_data_dir_under_a_regular_file_is_unavailable() {
        let dir = TempDir::new().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, b"not a directory").unwrap();
        let error = Outbox::open(&file.join("data"), &fast_settings()).unwrap_err();
        assert!(matches!(error, OutboxError::Unavailable(_)), "{error}");
        assert_eq!(error.retry_after(), Some(UNAVAILABLE_RETRY_AFTER));
    }

    #[test]
    fn a_database_path_that_is_a_directory_is_unavailable() {
        let dir = TempDir::new().unwrap();
        std::fs::create_dir(dir.path().join(OUTBOX_FILE_NAME)).unwrap();
        let error = Outbox::open(dir.path(), &fast_settings()).unwrap_err();
        assert!(matches!(error, OutboxError::Unavailable(_)), "{error}");
    }

    #[test]
    fn a_second_open_says_the_database_is_locked() {
        let dir = TempDir::new().unwrap();
        let _service = open(&dir);
        let error = Outbox::open(dir.path(), &fast_settings()).unwrap_err();
        assert!(matches!(error, OutboxError::Locked { .. }), "{error}");
        assert!(error.to_string().contains("running service"), "{error}");
    }

    #[actix_web::test]
    async fn a_failed_commit_of_answered_changes_refuses_everything_until_a_restart_restores_them()
    {
        let dir = TempDir::new().unwrap();
        let backend = FailingBackend::on_file(&dir.path().join(OUTBOX_FILE_NAME));
        let failing = backend.failing.clone();
        let outbox =
            Outbox::open_with_backend(backend, Some(dir.path()), &fast_settings()).unwrap();
        // The database's file now refuses writes, the journal's does not: the enqueue is answered
        // from the journal, and the database's commit, a few milliseconds later, fails.
        failing.store(true, Ordering::SeqCst);
        let kept = queued(
            outbox
                .enqueue(&route("gh"), vec![message("answered")], None)
                .await,
        );
        wait_until(|| !outbox.is_writable()).await;
        assert!(!outbox.is_writable());
        failing.store(false, Ordering::SeqCst);
        let refused = outbox
            .enqueue(&route("gh"), vec![message("refused")], None)
            .await;
        assert!(
            matches!(refused, Err(OutboxError::Unavailable(_))),
            "the journal must stay as it is until a restart: {refused:?}"
        );
        drop(outbox);

        let restarted = open(&dir);
        assert_eq!(restarted.pending_count(), 1);
        let stored = restarted.load(kept[0]).await.unwrap().unwrap();
        assert_eq!(stored.message, message("answered"));
    }

    #[actix_web::test]
    async fn a_disk_that_refuses_writes_makes_enqueue_unavailable_and_queues_nothing() {
        let backend = FailingBackend::new();
        let failing = backend.failing.clone();
        let outbox = Outbox::open_with_backend(backend, None, &fast_settings()).unwrap();
        queued(
            outbox
                .enqueue(&route("gh"), vec![message("ok")], None)
                .await,
        );
        failing.store(true, Ordering::SeqCst);
        let error = outbox
            .enqueue(&route("gh"), vec![message("lost")], Some("k".to_owned()))
            .await
            .unwrap_err();
        assert!(matches!(error, OutboxError::Unavailable(_)), "{error}");
        assert!(error.retry_after().is_some());
        assert_eq!(outbox.pending_count(), 1);
        assert!(!outbox.is_writable());
        failing.store(false, Ordering::SeqCst);
        let after = outbox
            .enqueue(&route("gh"), vec![message("again")], None)
            .await;
        assert!(
            matches!(after, Err(OutboxError::Unavailable(_))),
            "{after:?}"
        );
        assert!(
            !outbox.is_writable(),
            "redb wants a reopen after an I/O error"
        );
    }

    #[actix_web::test]
    async fn dead_letters_can_be_listed_retried_and_purged() {
        let dir = TempDir::new().unwrap();
        let outbox = open(&dir);
        let messages = (1..=4).map(|n| message(&format!("m{n}"))).collect();
        queued(outbox.enqueue(&route("gh"), messages, None).await);
        kill(&outbox, &[1, 2, 3]).await;
        assert_eq!(outbox.pending_count(), 1);

        let listed = outbox.dead_letters(None, 10).await.unwrap();
        assert_eq!(listed.iter().map(|d| d.id).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(listed[1].reason, "reason 2");
        assert_eq!(listed[1].message, message("m2"));
        assert_eq!(listed[1].route, route("gh"));
        assert_eq!(listed[1].attempts, 1);
        let page = outbox.dead_letters(Some(1), 1).await.unwrap();
        assert_eq!(page.iter().map(|d| d.id).collect::<Vec<_>>(), [2]);
        let json = serde_json::to_value(&listed[0]).unwrap();
        assert!(json["dead_at"].as_str().unwrap().ends_with('Z'), "{json}");

        outbox.retry_dead_letter(2).await.unwrap();
        assert_eq!(outbox.pending_count(), 2);
        assert_eq!(outbox.load(2).await.unwrap().unwrap().attempts, 0);
        assert!(matches!(
            outbox.retry_dead_letter(2).await,
            Err(OutboxError::NoSuchDeadLetter(2))
        ));

        outbox.purge_dead_letter(3).await.unwrap();
        assert!(matches!(
            outbox.purge_dead_letter(3).await,
            Err(OutboxError::NoSuchDeadLetter(3))
        ));
        assert_eq!(outbox.dead_letter_count().await.unwrap(), 1);
        drop(outbox);
        let reopened = open(&dir);
        assert_eq!(reopened.pending_count(), 2);
        assert_eq!(reopened.dead_letter_count().await.unwrap(), 1);
    }

    #[actix_web::test]
    async fn retrying_all_dead_letters_queues_what_fits_oldest_first() {
        let dir = TempDir::new().unwrap();
        let settings = DeliverySettings {
            max_queue: 3,
            ..fast_settings()
        };
        let outbox = Outbox::open(dir.path(), &settings).unwrap();
        let messages = (1..=3).map(|n| message(&n.to_string())).collect();
        queued(outbox.enqueue(&route("gh"), messages, None).await);
        kill(&outbox, &[1, 2, 3]).await;
        queued(outbox.enqueue(&route("gh"), vec![message("4")], None).await);

        let retried = outbox.retry_all_dead_letters().await.unwrap();
        assert_eq!(retried.ids, [1, 2]);
        assert_eq!(retried.left, 1);
        assert!(matches!(
            outbox.retry_all_dead_letters().await,
            Err(OutboxError::Full { .. })
        ));
        assert!(matches!(
            outbox.retry_dead_letter(3).await,
            Err(OutboxError::Full { .. })
        ));
    }

    #[actix_web::test]
    async fn the_oldest_pending_age_follows_the_clock() {
        let dir = TempDir::new().unwrap();
        let clock = ManualClock::new();
        let outbox = Outbox::open_with_clock(dir.path(), &fast_settings(), clock.clone()).unwrap();
        assert_eq!(outbox.oldest_pending_age(), None);
        queued(outbox.enqueue(&route("gh"), vec![message("a")], None).await);
        clock.advance(Duration::from_secs(5));
        queued(outbox.enqueue(&route("gh"), vec![message("b")], None).await);
        // New notifications join the schedule when the committer's transaction is committed,
        // milliseconds (of real time) after they were stored.
        wait_until(|| outbox.core().schedule().len() == 2).await;
        assert_eq!(outbox.oldest_pending_age(), Some(Duration::from_secs(5)));
    }
}
