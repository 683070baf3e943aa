//! The committer's journal: each batch's effective changes written as one frame, and the frames a
//! crash left replayed at open.

use std::path::Path;

use redb::{Database, ReadableDatabase, WriteTransaction};

use super::{Answer, Request, Staged};
use crate::delivery::outbox::records::{Enqueued, OutboxError};
use crate::delivery::redb::journal::{ChangeRef, Journal};
use crate::delivery::redb::tables::{JOURNAL_SEQ, Tables};
use crate::delivery::redb::{Limits, META};

/// Writes the batch's effective changes to the journal (and their sequence number to the
/// transaction), synced when `sync`; returns the frame's length, `None` when nothing changed.
pub(super) fn journal_batch(
    txn: &mut WriteTransaction,
    journal: &mut Journal,
    now: u64,
    changes: Vec<Option<Vec<u8>>>,
    answers: &[Staged],
    sync: bool,
) -> Result<Option<u64>, OutboxError> {
    let effective = effective_changes(changes, answers)?;
    if effective.is_empty() {
        return Ok(None);
    }
    txn.open_table(META)?
        .insert(JOURNAL_SEQ, journal.next_seq())?;
    let frame_len = journal.append(now, &effective, sync).map_err(|error| {
        OutboxError::Unavailable(format!("cannot write the outbox journal: {error}"))
    })?;
    Ok(Some(frame_len))
}

/// A request's change as journal JSON; `None` for one whose change is only known once applied
/// (retrying every dead letter is journaled as the dead letters it retried).
pub(super) fn change_json(request: &Request) -> Result<Option<Vec<u8>>, OutboxError> {
    let change = match request {
        Request::Enqueue {
            route,
            messages,
            dedup_key,
            dedup_window_ms,
            ..
        } => ChangeRef::Enqueue {
            route: route.as_str(),
            messages,
            dedup_key: dedup_key.as_deref(),
            dedup_window_ms: *dedup_window_ms,
        },
        Request::Settle {
            id,
            route,
            settlement,
            ..
        } => ChangeRef::Settle {
            id: *id,
            route: route.as_str(),
            settlement,
        },
        Request::RetryDeadLetter { id, .. } => ChangeRef::RetryDeadLetter { id: *id },
        Request::PurgeDeadLetter { id, .. } => ChangeRef::PurgeDeadLetter { id: *id },
        Request::RetryAllDeadLetters { .. } => return Ok(None),
    };
    Ok(Some(change.to_json()?))
}

/// The journal JSON of the requests that changed something, in order.
pub(super) fn effective_changes(
    changes: Vec<Option<Vec<u8>>>,
    answers: &[Staged],
) -> Result<Vec<Vec<u8>>, OutboxError> {
    let mut effective = Vec::new();
    for (change, answer) in changes.into_iter().zip(answers) {
        match answer {
            Staged::Enqueued(Answer {
                result: Ok(Enqueued::Queued(_)),
                ..
            })
            | Staged::Done(Answer { result: Ok(()), .. }) => effective.extend(change),
            Staged::Retried(Answer {
                result: Ok(retried),
                ..
            }) => {
                for id in &retried.ids {
                    effective.push(ChangeRef::RetryDeadLetter { id: *id }.to_json()?);
                }
            }
            _ => {}
        }
    }
    Ok(effective)
}

/// Applies the journal frames the database does not hold yet (after a crash) in one durable
/// transaction, then empties the journal; returns it, open for the committer.
pub(in crate::delivery::redb) fn replay_journal(
    db: &Database,
    data_dir: &Path,
    limits: Limits,
) -> Result<Journal, OutboxError> {
    let applied = db
        .begin_read()?
        .open_table(META)?
        .get(JOURNAL_SEQ)?
        .map_or(0, |value| value.value());
    let (mut journal, frames) = Journal::open(data_dir, applied).map_err(|error| {
        OutboxError::Unavailable(format!("cannot read the outbox journal: {error}"))
    })?;
    let frames: Vec<_> = frames
        .into_iter()
        .filter(|frame| frame.seq > applied)
        .collect();
    if let Some(newest) = frames.last().map(|frame| frame.seq) {
        // Everything journaled was accepted: the queue limit does not apply again.
        let limits = Limits {
            max_queue: u64::MAX,
            ..limits
        };
        let txn = db.begin_write()?;
        {
            let mut tables = Tables::open(&txn)?;
            let mut effects = Vec::new();
            for frame in &frames {
                tables.prune_dedup(frame.now)?;
                for change in &frame.changes {
                    tables.redo(change.clone(), frame.now, limits, &mut effects)?;
                }
            }
            tables.record_journal_seq(newest)?;
        }
        txn.commit()?;
        tracing::info!(
            frames = frames.len(),
            "restored the outbox's last changes from its journal"
        );
    }
    journal.checkpointed();
    Ok(journal)
}
