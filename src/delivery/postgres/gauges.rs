//! The outbox's gauges on PostgreSQL: the pending count and the oldest pending age, read every
//! second by the outbox's background task and kept current in between by this replica's own
//! changes.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// The pending count and the oldest pending age, as last read from the database plus this
/// replica's own changes since. The queue limit is checked against it, so replicas enqueuing
/// at once can pass the limit by what they queue within a refresh.
#[derive(Debug, Default)]
pub(super) struct Gauges {
    pub(super) pending: AtomicU64,
    /// When the longest-waiting notification started waiting; 0 when nothing is pending.
    pub(super) oldest_since: AtomicU64,
    /// This replica's net change of the pending count, ever: a refresh adds the part made while
    /// it read.
    net: AtomicI64,
}

impl Gauges {
    pub(super) fn pending(&self) -> u64 {
        self.pending.load(Ordering::SeqCst)
    }

    pub(super) fn added(&self, count: u64, since: u64) {
        self.net
            .fetch_add(i64::try_from(count).unwrap_or(i64::MAX), Ordering::SeqCst);
        if self.pending.fetch_add(count, Ordering::SeqCst) == 0 && count > 0 {
            self.oldest_since.store(since, Ordering::SeqCst);
        }
    }

    pub(super) fn removed(&self) {
        self.net.fetch_sub(1, Ordering::SeqCst);
        let before = self
            .pending
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |count| {
                Some(count.saturating_sub(1))
            })
            .unwrap_or(0);
        if before <= 1 {
            self.oldest_since.store(0, Ordering::SeqCst);
        }
    }

    /// Where a refresh starts: this replica's net change before it reads.
    pub(super) fn mark(&self) -> i64 {
        self.net.load(Ordering::SeqCst)
    }

    /// Stores what a refresh that started at `mark` read, plus this replica's changes since.
    pub(super) fn refreshed(&self, mark: i64, pending: u64, oldest_since: u64) {
        let since = self.net.load(Ordering::SeqCst).saturating_sub(mark);
        let pending = pending.saturating_add_signed(since);
        self.pending.store(pending, Ordering::SeqCst);
        self.oldest_since
            .store(if pending == 0 { 0 } else { oldest_since }, Ordering::SeqCst);
    }
}
