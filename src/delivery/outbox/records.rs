//! What every outbox backend stores and answers with, whatever keeps it: the records of pending
//! notifications and dead letters, the answers of the outbox's operations, its errors, and the
//! clock that dates them (times are milliseconds since the Unix epoch, as stored).
//!
//! This module depends on no backend: backends build on it, and so does the interface above them.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize, Serializer};

use crate::pushjet::NewMessage;
use crate::routes::RouteName;

/// How long a caller refused for a full outbox should wait before trying again.
pub(in crate::delivery) const FULL_RETRY_AFTER: Duration = Duration::from_secs(30);
/// How long a caller refused for an unwritable outbox should wait before trying again.
pub(in crate::delivery) const UNAVAILABLE_RETRY_AFTER: Duration = Duration::from_secs(60);

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
    /// An outcome came under a claim that is no longer this replica's: its lease lapsed and
    /// another replica may have taken the route. Nothing changed; the notification stays pending
    /// for the route's holder, so there is nothing to record later either.
    #[error(
        "this replica's lease on route `{route}` lapsed and another may have taken it (is \
         PUSHJET_BRIDGE_LEASE long enough?); notification {id} stays pending for the route's holder"
    )]
    LeaseLost {
        /// The route.
        route: String,
        /// The notification whose outcome was not recorded.
        id: u64,
    },
}

impl OutboxError {
    /// How long a caller should wait before offering the work again (an HTTP `Retry-After`), for
    /// the errors that pass with time.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Full { .. } => Some(FULL_RETRY_AFTER),
            Self::Unavailable(_) => Some(UNAVAILABLE_RETRY_AFTER),
            Self::Locked { .. }
            | Self::Record(_)
            | Self::NoSuchDeadLetter(_)
            | Self::LeaseLost { .. } => None,
        }
    }
}

impl From<serde_json::Error> for OutboxError {
    fn from(error: serde_json::Error) -> Self {
        Self::Record(error.to_string())
    }
}

/// A webhook's dedup key and which window remembers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DedupKey {
    /// The key (the source's name, a colon and the delivery id); scoped to its route when stored.
    pub key: String,
    /// Which window remembers it.
    pub kind: DedupKind,
}

/// Which dedup window remembers a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DedupKind {
    /// A sender's delivery id: `PUSHJET_BRIDGE_DEDUP_WINDOW` (24 h by default).
    Delivery,
    /// An alert group's state (Alertmanager, Grafana): `PUSHJET_BRIDGE_ALERT_DEDUP_WINDOW`
    /// (5 minutes by default), so that reminders of the same state go through.
    AlertState,
}

impl DedupKey {
    /// A delivery id's key.
    pub fn delivery(key: String) -> Self {
        Self {
            key,
            kind: DedupKind::Delivery,
        }
    }

    /// How long this key is remembered, in milliseconds, given the two windows.
    pub(in crate::delivery) fn window_ms(&self, delivery_ms: u64, alert_state_ms: u64) -> u64 {
        match self.kind {
            DedupKind::Delivery => delivery_ms,
            DedupKind::AlertState => alert_state_ms,
        }
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
pub(in crate::delivery) struct PendingRecord {
    pub(in crate::delivery) route: String,
    pub(in crate::delivery) message: NewMessage,
    pub(in crate::delivery) attempts: u32,
    pub(in crate::delivery) queued_at: u64,
    /// Start of the current retry period: when it was queued, or retried from the dead letters.
    pub(in crate::delivery) retrying_since: u64,
    pub(in crate::delivery) next_attempt_at: u64,
    pub(in crate::delivery) last_error: Option<String>,
}

/// A dead letter as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(in crate::delivery) struct DeadRecord {
    pub(in crate::delivery) route: String,
    pub(in crate::delivery) message: NewMessage,
    pub(in crate::delivery) attempts: u32,
    pub(in crate::delivery) queued_at: u64,
    pub(in crate::delivery) dead_at: u64,
    pub(in crate::delivery) reason: String,
}

impl DeadRecord {
    /// The dead letter this record stores under `id`.
    pub(in crate::delivery) fn into_dead_letter(self, id: u64) -> Result<DeadLetter, OutboxError> {
        Ok(DeadLetter {
            id,
            route: RouteName::parse(&self.route)
                .map_err(|error| OutboxError::Record(error.to_string()))?,
            message: self.message,
            attempts: self.attempts,
            queued_at: time(self.queued_at),
            dead_at: time(self.dead_at),
            reason: self.reason,
        })
    }
}

/// Where the wall-clock time comes from (tests set their own).
pub(in crate::delivery) trait Clock: Send + Sync + std::fmt::Debug {
    /// The current time.
    fn now(&self) -> SystemTime;
}

/// The system's clock.
#[derive(Debug)]
pub(in crate::delivery) struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// Milliseconds since the epoch (0 before it).
pub(in crate::delivery) fn millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, duration_millis)
}

/// A duration in whole milliseconds, saturating.
pub(in crate::delivery) fn duration_millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn time(millis: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(millis)
}

fn rfc3339<S: Serializer>(time: &SystemTime, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&humantime::format_rfc3339_millis(*time))
}
