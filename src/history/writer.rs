//! The history's background tasks: the writer (batches of queued writes, one transaction each),
//! the pruner (age and bytes), and on PostgreSQL the change feed that reads every replica's
//! changes back for the live streams.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, broadcast, mpsc};
use tokio::task::AbortHandle;

use super::metrics::HistoryMetrics;
use super::now_millis;
use super::postgres::{CHANNEL, PostgresHistory};
use super::record::{Change, Write};
use super::store::{HistoryError, HistoryStore};
use crate::config::HistorySettings;
use crate::database::{Database, Listener};

/// The most writes in one batch.
const BATCH: usize = 4_096;
/// How long the writer collects writes after the first of a batch: fewer, larger transactions
/// (each commit has a cost of its own) for a history that is at most this much later.
const COLLECT_FOR: Duration = Duration::from_millis(25);
/// The longest pause between two prunings.
const MAX_PRUNE_EVERY: Duration = Duration::from_secs(60);
/// The shortest.
const MIN_PRUNE_EVERY: Duration = Duration::from_millis(500);
/// How often the change feed looks without being woken.
const FEED_POLL: Duration = Duration::from_secs(1);

/// Writes queued and written, for [`super::History::flush`].
#[derive(Debug, Default)]
pub(super) struct Progress {
    pub(super) queued: AtomicU64,
    pub(super) done: AtomicU64,
    /// What the writes waiting for the writer weigh ([`Write::weight`]).
    pub(super) waiting_bytes: AtomicU64,
}

impl Progress {
    /// Counts a write of `weight` bytes as waiting, unless the waiting ones would then weigh more
    /// than `limit`; whether it was counted.
    pub(super) fn admit(&self, weight: u64, limit: u64) -> bool {
        self.waiting_bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |waiting| {
                let after = waiting.saturating_add(weight);
                (after <= limit).then_some(after)
            })
            .is_ok()
    }

    /// The writer took writes weighing `weight` bytes off the queue and wrote them.
    pub(super) fn release(&self, weight: u64) {
        let _previous =
            self.waiting_bytes
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |waiting| {
                    Some(waiting.saturating_sub(weight))
                });
    }

    /// Waits (at most `limit`) until the writes queued so far are done.
    pub(super) async fn flush(&self, limit: Duration) {
        let target = self.queued.load(Ordering::Relaxed);
        let deadline = Instant::now() + limit;
        while self.done.load(Ordering::Relaxed) < target && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// Starts the writer and the pruner.
pub(super) fn start(
    store: Arc<dyn HistoryStore>,
    receiver: mpsc::Receiver<Write>,
    changes: broadcast::Sender<Change>,
    metrics: HistoryMetrics,
    settings: &HistorySettings,
    progress: Arc<Progress>,
) -> Vec<AbortHandle> {
    let prune_now = Arc::new(Notify::new());
    let written_bytes = Arc::new(AtomicU64::new(0));
    let keep_for = settings.keep_for.unwrap_or(Duration::MAX);
    let writer = Writer {
        store: store.clone(),
        changes,
        metrics: metrics.clone(),
        progress,
        prune_now: prune_now.clone(),
        written_bytes: written_bytes.clone(),
        max_bytes: settings.max_bytes,
    };
    let pruner = Pruner {
        store,
        metrics,
        prune_now,
        written_bytes,
        keep_for,
        max_bytes: settings.max_bytes,
    };
    vec![
        tokio::spawn(writer.run(receiver)).abort_handle(),
        tokio::spawn(pruner.run()).abort_handle(),
    ]
}

struct Writer {
    store: Arc<dyn HistoryStore>,
    changes: broadcast::Sender<Change>,
    metrics: HistoryMetrics,
    progress: Arc<Progress>,
    prune_now: Arc<Notify>,
    /// Bytes in use as last measured, plus those written since.
    written_bytes: Arc<AtomicU64>,
    max_bytes: u64,
}

impl Writer {
    async fn run(self, mut receiver: mpsc::Receiver<Write>) {
        let mut batch = Vec::with_capacity(BATCH);
        while receiver.recv_many(&mut batch, BATCH).await > 0 {
            if batch.len() < BATCH {
                tokio::time::sleep(COLLECT_FOR).await;
                while batch.len() < BATCH {
                    match receiver.try_recv() {
                        Ok(write) => batch.push(write),
                        Err(_) => break,
                    }
                }
            }
            let count = batch.len() as u64;
            let weight: u64 = batch.iter().map(Write::weight).sum();
            let announce = self.changes.receiver_count() > 0;
            match self.store.write(std::mem::take(&mut batch), announce).await {
                Ok(written) => {
                    self.metrics.written.inc_by(written.records);
                    for change in written.changes {
                        let _nobody_listens = self.changes.send(change);
                    }
                    let bytes = self
                        .written_bytes
                        .fetch_add(written.bytes, Ordering::Relaxed);
                    if bytes + written.bytes > self.max_bytes {
                        self.prune_now.notify_one();
                    }
                }
                Err(error) => {
                    self.metrics.dropped.inc_by(count);
                    tracing::warn!("{count} delivery history write(s) lost: {error}");
                }
            }
            self.progress.done.fetch_add(count, Ordering::Relaxed);
            self.progress.release(weight);
        }
    }
}

struct Pruner {
    store: Arc<dyn HistoryStore>,
    metrics: HistoryMetrics,
    prune_now: Arc<Notify>,
    written_bytes: Arc<AtomicU64>,
    keep_for: Duration,
    max_bytes: u64,
}

impl Pruner {
    async fn run(self) {
        let every = (self.keep_for / 10).clamp(MIN_PRUNE_EVERY, MAX_PRUNE_EVERY);
        loop {
            let keep_ms = u64::try_from(self.keep_for.as_millis()).unwrap_or(u64::MAX);
            let before = now_millis().saturating_sub(keep_ms);
            match self.store.prune(before, self.max_bytes).await {
                Ok(pruned) => {
                    self.metrics.pruned.inc_by(pruned.records);
                    self.metrics
                        .bytes
                        .set(i64::try_from(pruned.bytes).unwrap_or(i64::MAX));
                    self.written_bytes.store(pruned.bytes, Ordering::Relaxed);
                    if pruned.records > 0 {
                        tracing::debug!(records = pruned.records, "delivery history pruned");
                    }
                }
                Err(error) => tracing::warn!("the delivery history could not be pruned: {error}"),
            }
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                () = self.prune_now.notified() => {}
            }
        }
    }
}

/// Wakes the change feed when a replica announces a commit.
struct FeedWake(Notify);

impl Listener for FeedWake {
    fn wake(&self) {
        self.0.notify_one();
    }
}

/// Starts the change feed of a shared store: `LISTEN`s for commits, reads the changes back in
/// order and hands them to the live streams.
pub(super) async fn start_feed(
    store: &PostgresHistory,
    database: Database,
    changes: broadcast::Sender<Change>,
) -> Result<Vec<AbortHandle>, HistoryError> {
    let mut cursor = store.start_changes().await?;
    let wake = Arc::new(FeedWake(Notify::new()));
    let listener: Arc<dyn Listener> = wake.clone();
    let listen = tokio::spawn(crate::database::listen(
        database,
        CHANNEL,
        "delivery history changes",
        listener,
    ));
    let store = store.clone();
    let feed = tokio::spawn(async move {
        loop {
            tokio::select! {
                () = wake.0.notified() => {}
                () = tokio::time::sleep(FEED_POLL) => {}
            }
            match store.changes_since(cursor).await {
                Ok((found, next)) => {
                    cursor = next;
                    for change in found {
                        let _nobody_listens = changes.send(change);
                    }
                }
                Err(error) => tracing::warn!("cannot read the delivery history's changes: {error}"),
            }
        }
    });
    Ok(vec![listen.abort_handle(), feed.abort_handle()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiting_writes_are_admitted_up_to_the_byte_limit_and_released_by_the_writer() {
        let progress = Progress::default();
        assert!(progress.admit(600, 1_000));
        assert!(
            !progress.admit(600, 1_000),
            "1,200 waiting bytes would pass the limit"
        );
        assert!(progress.admit(400, 1_000), "exactly the limit");
        progress.release(1_000);
        assert!(progress.admit(1_000, 1_000), "the writer took them");
    }
}
