//! The committer's commits of its open transaction: readable-only ones, durable ones at the
//! journal's checkpoints (and when idle, and at the end), and what a failed one leaves.

use std::sync::atomic::Ordering;

use redb::Durability;

use super::{Open, apply_effects};
use crate::delivery::outbox::records::OutboxError;
use crate::delivery::redb::Core;
use crate::delivery::redb::journal::Journal;

/// Commits the open transaction, if any (unless an earlier commit failed: the journal then keeps
/// everything for the next start).
pub(super) fn finish(core: &Core, open: Option<Open>, journal: Option<&mut Journal>) {
    if let (Some(open), Some(journal)) = (open, journal.filter(|journal| !journal.is_broken())) {
        commit_open(core, open, journal);
    }
}

/// [`finish`] with a durable commit whatever the journal holds (at the end: the next start then
/// has nothing to replay).
pub(super) fn checkpoint(core: &Core, open: Option<Open>, journal: Option<&mut Journal>) {
    if let (Some(open), Some(journal)) = (open, journal.filter(|journal| !journal.is_broken())) {
        commit(core, open, journal, true);
    }
}

/// Commits an open transaction and puts its new notifications in the schedule; false when the
/// commit failed. Whatever it held that was answered stays in the journal, for the next start.
/// The commit is durable when the journal wants a checkpoint; else it only makes the changes
/// readable, and the journal keeps its frames until a durable commit takes them.
pub(super) fn commit_open(core: &Core, open: Open, journal: &mut Journal) -> bool {
    let durable = journal.wants_checkpoint();
    commit(core, open, journal, durable)
}

/// Makes what readable-only commits hold durable with an empty durable commit, so the journal can
/// start over; a failure is handled as a failed commit of answered changes.
pub(super) fn checkpoint_idle(core: &Core, journal: &mut Journal) {
    let committed = core
        .db
        .begin_write()
        .map_err(OutboxError::from)
        .and_then(|txn| txn.commit().map_err(OutboxError::from));
    match committed {
        Ok(()) => journal.checkpointed(),
        Err(error) => commit_failed(core, journal, &error),
    }
}

pub(super) fn commit(core: &Core, mut open: Open, journal: &mut Journal, durable: bool) -> bool {
    #[cfg(test)]
    core.transactions.fetch_add(1, Ordering::Relaxed);
    if !durable && let Err(error) = open.txn.set_durability(Durability::None) {
        tracing::debug!("a commit stays durable: {error}");
    }
    match open.txn.commit() {
        Ok(()) => {
            if durable {
                journal.checkpointed();
            }
            let staged = u64::try_from(open.queued.len()).unwrap_or(0);
            if apply_effects(&mut core.schedule(), open.queued) {
                core.wake.notify_one();
            }
            core.staged.fetch_sub(staged, Ordering::Relaxed);
            true
        }
        Err(error) => {
            commit_failed(core, journal, &error);
            false
        }
    }
}

/// A commit holding answered changes failed: they stay in the journal for the next start, and
/// nothing more is stored until then.
pub(super) fn commit_failed(core: &Core, journal: &mut Journal, error: &dyn std::fmt::Display) {
    break_off(core, journal);
    core.writable.store(false, Ordering::Relaxed);
    tracing::error!(
        "outbox commit failed; what was accepted is kept in the journal and restored on the \
         next start: {error}"
    );
}

/// Keeps the journal for the next start and says that only a restart can store anything again.
pub(super) fn break_off(core: &Core, journal: &mut Journal) {
    journal.break_off();
    core.restart_needed.store(true, Ordering::Relaxed);
}
