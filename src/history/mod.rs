//! The delivery history: every request to a route, its verdict, the notifications it rendered,
//! every send attempt and each notification's state, kept for `PUSHJET_BRIDGE_HISTORY` within
//! `PUSHJET_BRIDGE_HISTORY_MAX_BYTES`, on the outbox's store (redb beside it, or the shared
//! PostgreSQL database).
//!
//! ```text
//! http (hooks, ntfy, Gotify: one record per request to a known route) ─┐
//! dispatcher (delivery's observer: each attempt and state) ─────────────┤ History::{record, sent, …}
//! dead letters (retried, purged) ───────────────────────────────────────┘   never waits: a queue
//!        │ bounded queue (full: dropped and counted)
//!        ▼
//! writer task: batches ─► HistoryStore::write (one transaction, not synced on its own)
//!        │ changes ─► broadcast ─► GET /admin/history/stream (redb: from the writes;
//!        ▼                          PostgreSQL: read back in change order after a NOTIFY)
//! pruner task: by age and bytes, every little while and when the writes pass the cap
//! ```
//!
//! A webhook's 202 never waits for the history: its record is queued once the outbox has
//! answered, and written behind it; a kept body is compressed there too (`kept.rs`). Losing the last moment of history in a crash is accepted;
//! the notifications themselves are the outbox's.
//!
//! The queries ([`History::list`], [`History::story`], [`History::counts`],
//! [`History::subscribe`]) and [`replay`]/[`rerender`] are the in-process API the admin
//! endpoints (`http/history.rs`) and the console use.

mod kept;
mod metrics;
mod observe;
mod postgres;
pub mod record;
pub mod redact;
mod redb;
mod rendered;
mod replay;
mod store;
mod writer;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{broadcast, mpsc};
use tokio::task::AbortHandle;

pub use self::metrics::HistoryMetrics;
use self::record::Write;
pub use self::record::{
    Change, ChangeKind, KeptRequest, Page, Query, Record, RouteCounts, Story, Verdict, Via,
};
pub use self::rendered::rendered;
pub use self::replay::{AgainError, replay, rerender};
pub use self::store::HistoryError;
use self::store::HistoryStore;
use crate::config::{DatabaseUrl, HistorySettings};

/// How far a record id's time is shifted: the low bits hold this replica's tag and a counter.
const ID_SHIFT: u32 = 20;
/// The most writes waiting for the writer; beyond it they are dropped and counted.
const QUEUE: usize = 65_536;
/// The most bytes the writes waiting for the writer may hold ([`Write::weight`]); beyond it they
/// are dropped and counted too: kept bodies (up to 64 KiB each) would otherwise let a writer that
/// falls behind hold gigabytes.
const QUEUE_BYTES: u64 = 16 * 1024 * 1024;
/// How many changes a slow live stream may fall behind before it is told it lagged.
const CHANGES_BUFFER: usize = 1_024;
/// The most refused requests recorded per route and minute; the rest are only counted.
const REFUSALS_PER_MINUTE: u32 = 60;

/// The lowest record id at time `at` (milliseconds since the epoch).
pub(crate) fn id_floor(at: u64) -> u64 {
    at.checked_shl(ID_SHIFT)
        .filter(|id| id >> ID_SHIFT == at)
        .unwrap_or(u64::MAX)
}

/// Now, in milliseconds since the epoch.
pub(crate) fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        })
}

/// The delivery history. Cheap to clone; every clone is the same history. When it is off
/// (`PUSHJET_BRIDGE_HISTORY=0`) recording does nothing and queries answer [`HistoryError::Off`].
#[derive(Debug, Clone)]
pub struct History {
    inner: Option<Arc<Inner>>,
}

#[derive(Debug)]
struct Inner {
    settings: HistorySettings,
    store: Arc<dyn HistoryStore>,
    queue: mpsc::Sender<Write>,
    changes: broadcast::Sender<Change>,
    metrics: HistoryMetrics,
    /// The last record id handed out.
    last_id: AtomicU64,
    /// This process's tag in record ids (10 random bits).
    tag: u64,
    /// Writes queued, and writes the writer is done with (for [`History::flush`]).
    progress: Arc<writer::Progress>,
    /// Refused requests recorded per route in the current minute.
    refusals: Mutex<HashMap<String, (u64, u32)>>,
    tasks: Vec<AbortHandle>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl History {
    /// No history: records nothing, answers [`HistoryError::Off`].
    pub fn off() -> Self {
        Self { inner: None }
    }

    /// Opens the history the settings ask for, on the outbox's store: the PostgreSQL database
    /// when `database` is set, else `history.redb` in `data_dir`; starts its writer and pruner
    /// (and its change feed, on PostgreSQL). Off when the settings say so.
    pub async fn open(
        settings: &HistorySettings,
        data_dir: &Path,
        database: Option<&DatabaseUrl>,
        metrics: HistoryMetrics,
    ) -> Result<Self, HistoryError> {
        if !settings.is_on() {
            return Ok(Self::off());
        }
        let (changes, _) = broadcast::channel(CHANGES_BUFFER);
        let mut tasks = Vec::new();
        let store: Arc<dyn HistoryStore> = match database {
            Some(url) => {
                let database = crate::database::connect(url, 4)
                    .await
                    .map_err(|error| HistoryError::Unavailable(error.0))?;
                let store = postgres::PostgresHistory::new(database.pool.clone());
                tasks.extend(writer::start_feed(&store, database, changes.clone()).await?);
                Arc::new(store)
            }
            None => {
                let dir = data_dir.to_path_buf();
                Arc::new(
                    tokio::task::spawn_blocking(move || redb::RedbHistory::open(&dir))
                        .await
                        .map_err(|error| HistoryError::Unavailable(error.to_string()))??,
                )
            }
        };
        let (queue, receiver) = mpsc::channel(QUEUE);
        let progress = Arc::new(writer::Progress::default());
        tasks.extend(writer::start(
            store.clone(),
            receiver,
            changes.clone(),
            metrics.clone(),
            settings,
            progress.clone(),
        ));
        let mut tag = [0u8; 2];
        let _ = getrandom::fill(&mut tag);
        Ok(Self {
            inner: Some(Arc::new(Inner {
                settings: *settings,
                store,
                queue,
                changes,
                metrics,
                last_id: AtomicU64::new(0),
                tag: u64::from(u16::from_le_bytes(tag) & 0x3ff),
                progress,
                refusals: Mutex::new(HashMap::new()),
                tasks,
            })),
        })
    }

    /// True when records are kept.
    pub fn is_on(&self) -> bool {
        self.inner.is_some()
    }

    /// True when request bodies are kept with the records.
    pub fn keeps_bodies(&self) -> bool {
        self.inner
            .as_ref()
            .is_some_and(|inner| inner.settings.bodies)
    }

    /// A fresh record id for a record made at `at`: increasing, and unlikely to meet another
    /// replica's (the low bits are this process's tag and a counter).
    pub fn next_id(&self, at: u64) -> u64 {
        let Some(inner) = &self.inner else {
            return 0;
        };
        let base = id_floor(at) | (inner.tag << 10);
        let mut last = inner.last_id.load(Ordering::Relaxed);
        loop {
            let id = base.max(last + 1);
            match inner
                .last_id
                .compare_exchange(last, id, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return id,
                Err(now) => last = now,
            }
        }
    }

    /// True when a refused request to `route` may be recorded: at most
    /// [`REFUSALS_PER_MINUTE`] per route and minute, so that a flood of refusals cannot push
    /// the real history out (the rest are counted in the metrics).
    pub fn admits_refusal(&self, route: &str) -> bool {
        let Some(inner) = &self.inner else {
            return false;
        };
        let minute = now_millis() / 60_000;
        let mut refusals = inner
            .refusals
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if refusals.len() > 10_000 {
            refusals.clear();
        }
        let entry = refusals.entry(route.to_owned()).or_insert((minute, 0));
        if entry.0 != minute {
            *entry = (minute, 0);
        }
        entry.1 += 1;
        let admitted = entry.1 <= REFUSALS_PER_MINUTE;
        if !admitted {
            inner.metrics.refusals_unrecorded.inc();
        }
        admitted
    }

    /// Queues a record for writing; returns at once.
    pub fn record(&self, record: Record) {
        self.queue(Write::Record(Box::new(record)));
    }

    /// Queues a write; dropped (and counted) when the writer is too far behind.
    fn queue(&self, write: Write) {
        let Some(inner) = &self.inner else {
            return;
        };
        inner.progress.queued.fetch_add(1, Ordering::Relaxed);
        let weight = write.weight();
        let admitted = inner.progress.admit(weight, QUEUE_BYTES);
        if !admitted || inner.queue.try_send(write).is_err() {
            if admitted {
                inner.progress.release(weight);
            }
            inner.progress.done.fetch_add(1, Ordering::Relaxed);
            inner.metrics.dropped.inc();
        }
    }

    /// Waits (at most `limit`) until every write queued so far is written.
    pub async fn flush(&self, limit: Duration) {
        if let Some(inner) = &self.inner {
            inner.progress.flush(limit).await;
        }
    }

    fn store(&self) -> Result<&dyn HistoryStore, HistoryError> {
        self.inner
            .as_ref()
            .map(|inner| inner.store.as_ref())
            .ok_or(HistoryError::Off)
    }

    /// One page of records, newest first.
    pub async fn list(&self, query: Query) -> Result<Page, HistoryError> {
        self.store()?.list(query).await
    }

    /// A record's whole story.
    pub async fn story(&self, id: u64) -> Result<Story, HistoryError> {
        self.store()?
            .story(id)
            .await?
            .ok_or(HistoryError::NotFound(id))
    }

    /// How many records each route has in each state since `since` (the console's overview:
    /// `since` 24 hours ago).
    pub async fn counts(&self, since: u64) -> Result<Vec<RouteCounts>, HistoryError> {
        self.store()?.counts(since).await
    }

    /// The live changes from now on: each new record and each state change.
    pub fn subscribe(&self) -> Result<broadcast::Receiver<Change>, HistoryError> {
        self.inner
            .as_ref()
            .map(|inner| inner.changes.subscribe())
            .ok_or(HistoryError::Off)
    }
}
