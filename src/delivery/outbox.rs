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
    /// True once a commit failed with accepted changes in it: they are in the journal only, and
    /// only a restart (which replays it) can store anything again.
    pub(super) restart_needed: AtomicBool,
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
            restart_needed: AtomicBool::new(false),
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

    /// False after a write to the outbox failed (disk full, read-only, I/O error), until one
    /// succeeds again. A failed commit is worse: see [`Self::needs_restart`].
    pub fn is_writable(&self) -> bool {
        self.core().writable.load(Ordering::Relaxed)
    }

    /// True once the outbox can store nothing more before a restart: a commit failed with
    /// accepted changes in it, which the journal holds and the next start replays.
    pub fn needs_restart(&self) -> bool {
        self.core().restart_needed.load(Ordering::Relaxed)
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
mod tests;
