//! Group commit: one thread makes every change to the outbox. It takes the first waiting request,
//! drains whatever else is queued behind it (up to [`MAX_BATCH`]), applies them all to the open
//! redb write transaction, appends their changes to the journal as one frame and syncs it (one
//! `fdatasync` of one sequential write), and only then answers each caller. Nobody hears back
//! before their data is on disk, and a burst of webhooks costs one sync per batch instead of one
//! each. The write transaction is committed every [`APPLY_DELAY`] (see [`run`]), durably only
//! when the journal wants a checkpoint (a few times a second).
//!
//! Within a batch each request is checked before it writes anything (`tables.rs`), so a refused
//! request (a duplicate, a full outbox, an unknown dead letter) changes nothing and does not
//! disturb the others. A storage error aborts the whole transaction and every caller of the batch gets
//! [`OutboxError::Unavailable`]; if the transaction also held batches already answered, they are
//! safe in the journal only, so everything is refused until a restart replays it.

use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use redb::WriteTransaction;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::journal::Journal;
use super::schedule::Schedule;
use super::tables::{Effect, Tables};
use super::{Core, Limits};

mod commits;
mod journaling;

use commits::{break_off, checkpoint, checkpoint_idle, commit_open, finish};
use journaling::{change_json, journal_batch};
pub(super) use journaling::replay_journal;
use crate::delivery::outbox::backend::Outcome;
use crate::delivery::outbox::records::{Enqueued, OutboxError, RetriedDeadLetters};
use crate::pushjet::NewMessage;
use crate::routes::RouteName;

/// The most requests in one transaction.
const MAX_BATCH: usize = 1024;
/// How long a write transaction collects batches (already durable in the journal) before it is
/// committed: how late, at most, the dispatcher hears of a new notification.
pub(super) const APPLY_DELAY: Duration = Duration::from_millis(10);

type Reply<T> = oneshot::Sender<Result<T, OutboxError>>;

/// A change asked of the committer, with where to send its answer.
pub(super) enum Request {
    /// Store a webhook's notifications (and its dedup key).
    Enqueue {
        route: RouteName,
        messages: Vec<NewMessage>,
        dedup_key: Option<String>,
        /// How long the key is remembered; `None`: `PUSHJET_BRIDGE_DEDUP_WINDOW`.
        dedup_window_ms: Option<u64>,
        reply: Reply<Enqueued>,
    },
    /// Record the outcome of a send.
    Settle {
        id: u64,
        route: RouteName,
        settlement: Settlement,
        reply: Reply<()>,
    },
    /// Queue one dead letter again.
    RetryDeadLetter { id: u64, reply: Reply<()> },
    /// Queue every dead letter again, as far as there is room.
    RetryAllDeadLetters { reply: Reply<RetriedDeadLetters> },
    /// Delete one dead letter.
    PurgeDeadLetter { id: u64, reply: Reply<()> },
}

impl Request {
    /// True for the outcome "sent": the one change that may be answered before it is synced.
    /// Losing it in a crash only sends the notification again (at least once holds), and it is
    /// on disk with the next synced frame or commit, at most [`APPLY_DELAY`] later; syncing it
    /// on its own would double the syncs under load (one per webhook batch, one per outcome
    /// batch).
    fn is_sent_outcome(&self) -> bool {
        matches!(
            self,
            Self::Settle {
                settlement: Settlement::Sent,
                ..
            }
        )
    }

    /// False for the requests whose answer may come before others can read their change:
    /// queuing notifications (the dispatcher hears of them once they are readable) and
    /// forgetting sent ones (taken out of the schedule at once).
    fn must_be_visible_when_answered(&self) -> bool {
        !(matches!(self, Self::Enqueue { .. }) || self.is_sent_outcome())
    }
}

/// The outcome of one send as the journal stores it: the interface's [`Outcome`], kept apart so
/// that the journal's format does not change with the interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub(super) enum Settlement {
    /// Pushjet has it: forget it.
    Sent,
    /// Failed for now: try again at `at` (milliseconds since the epoch).
    Retry { at: u64, error: String },
    /// Will not succeed: make it a dead letter.
    Dead { reason: String },
}

impl From<Outcome> for Settlement {
    fn from(outcome: Outcome) -> Self {
        match outcome {
            Outcome::Sent => Self::Sent,
            Outcome::Retry { at, error } => Self::Retry { at, error },
            Outcome::Dead { reason } => Self::Dead { reason },
        }
    }
}

/// Serves requests until every sender is gone.
///
/// With a journal (see `journal.rs`) a batch is durable once its frame is synced, and it is
/// answered then. Its changes go into a write transaction that stays open for [`APPLY_DELAY`],
/// collecting the batches behind it, and is then committed: about a hundred commits a second
/// under load instead of one per batch. Only a commit the journal wants as a checkpoint (every
/// 50 ms, or when its frames fill half the file; and the last one) is durable, syncing the
/// database's pages; the others only make the changes readable, the journal keeping them durable.
/// New notifications reach the schedule when their transaction is committed; a request whose
/// effect others must see at once (a retry or dead letter, an operator's change) commits the
/// open transaction before it is answered.
///
/// Without a journal (tests on a storage backend) every batch is committed durably on its own.
pub(super) fn run(core: &Core, requests: &Receiver<Request>, mut journal: Option<Journal>) {
    let mut open: Option<Open> = None;
    loop {
        let wait = match &open {
            Some(open) => Some(core.apply_delay.saturating_sub(open.since.elapsed())),
            // Idle with frames only readable commits hold: a durable one is due.
            None => journal.as_ref().and_then(Journal::checkpoint_due_in),
        };
        let first = match wait {
            Some(wait) => match requests.recv_timeout(wait) {
                Ok(request) => Some(request),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            },
            None => match requests.recv() {
                Ok(request) => Some(request),
                Err(_) => break,
            },
        };
        let idle = first.is_none();
        if let Some(first) = first {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match requests.try_recv() {
                    Ok(request) => batch.push(request),
                    Err(_) => break,
                }
            }
            open = apply(core, batch, open, journal.as_mut());
        }
        let expired = open
            .as_ref()
            .is_some_and(|open| open.since.elapsed() >= core.apply_delay);
        if expired || idle {
            finish(core, open.take(), journal.as_mut());
        }
        if idle
            && open.is_none()
            && let Some(journal) = journal.as_mut()
            && journal.checkpoint_due_in() == Some(Duration::ZERO)
        {
            checkpoint_idle(core, journal);
        }
    }
    checkpoint(core, open, journal.as_mut());
}

/// A write transaction collecting batches that are already durable in the journal.
struct Open {
    txn: WriteTransaction,
    since: Instant,
    /// New notifications, put in the schedule once the transaction is committed (the
    /// dispatcher reads them from the database).
    queued: Vec<Effect>,
}

/// Applies a batch and answers it once it is durable; returns the transaction left open.
fn apply(
    core: &Core,
    batch: Vec<Request>,
    open: Option<Open>,
    journal: Option<&mut Journal>,
) -> Option<Open> {
    let now = core.now();
    let size = batch.len();
    if journal.as_ref().is_some_and(|journal| journal.is_broken()) {
        fail(core, size, unanswered(batch), &broken_journal());
        return None;
    }
    // An open transaction holds answered batches: losing it leaves them in the journal only.
    let holds_answered = open.is_some();
    let visible_at_once = batch.iter().any(Request::must_be_visible_when_answered);
    let only_sent = batch.iter().all(Request::is_sent_outcome);
    let changes: Result<Vec<_>, _> = match journal {
        Some(_) => batch.iter().map(change_json).collect(),
        None => Ok(Vec::new()),
    };
    let open = match (open, changes) {
        (Some(open), Ok(changes)) => Ok((open, changes)),
        (None, Ok(changes)) => core
            .db
            .begin_write()
            .map(|txn| {
                let open = Open {
                    txn,
                    since: Instant::now(),
                    queued: Vec::new(),
                };
                (open, changes)
            })
            .map_err(OutboxError::from),
        (_, Err(error)) => Err(error),
    };
    let (mut open, changes) = match open {
        Ok(open) => open,
        Err(error) => {
            fail(core, size, unanswered(batch), &error);
            return None;
        }
    };
    let mut effects = Vec::new();
    let (answers, failure) = apply_batch(core.limits, &open.txn, batch, now, &mut effects);
    if let Some(error) = failure {
        if holds_answered && let Some(journal) = journal {
            break_off(core, journal);
        }
        fail(core, size, answers, &error);
        return None;
    }
    let Some(journal) = journal else {
        #[cfg(test)]
        core.transactions.fetch_add(1, Ordering::Relaxed);
        match open.txn.commit() {
            Ok(()) => answer(core, size, answers, effects),
            Err(error) => {
                // redb refuses every write after a failed commit until it is reopened.
                core.restart_needed.store(true, Ordering::Relaxed);
                fail(core, size, answers, &error.into());
            }
        }
        return None;
    };
    let sync = !only_sent;
    let appended = match journal_batch(&mut open.txn, journal, now, changes, &answers, sync) {
        Ok(appended) => appended,
        Err(error) => {
            if holds_answered {
                break_off(core, journal);
            }
            fail(core, size, answers, &error);
            return None;
        }
    };
    let (queued, others): (Vec<_>, Vec<_>) = effects
        .into_iter()
        .partition(|effect| matches!(effect, Effect::Queue { .. }));
    core.staged
        .fetch_add(u64::try_from(queued.len()).unwrap_or(0), Ordering::Relaxed);
    open.queued.extend(queued);
    forget_unscheduled(core, &mut open.queued, &others);
    if visible_at_once {
        if commit_open(core, open, journal) {
            answer(core, size, answers, others);
        } else {
            if let Some(frame_len) = appended {
                journal.undo_last(frame_len);
            }
            let error = OutboxError::Unavailable("the outbox commit failed".to_owned());
            fail(core, size, answers, &error);
        }
        return None;
    }
    answer(core, size, answers, others);
    Some(open)
}

/// Drops from `queued` the notifications that `effects` remove before they reached the schedule
/// (only a caller that did not get the id from the schedule can settle one that early).
fn forget_unscheduled(core: &Core, queued: &mut Vec<Effect>, effects: &[Effect]) {
    let before = queued.len();
    queued.retain(|effect| match effect {
        Effect::Queue { id, .. } => !effects
            .iter()
            .any(|other| matches!(other, Effect::Remove { id: removed, .. } if removed == id)),
        _ => true,
    });
    let forgotten = u64::try_from(before - queued.len()).unwrap_or(0);
    core.staged.fetch_sub(forgotten, Ordering::Relaxed);
}

/// Answers a batch that is durable, after putting its effects in the schedule.
fn answer(core: &Core, size: usize, answers: Vec<Staged>, effects: Vec<Effect>) {
    core.writable.store(true, Ordering::Relaxed);
    if apply_effects(&mut core.schedule(), effects) {
        core.wake.notify_one();
    }
    tracing::trace!(requests = size, "outbox batch stored");
    for answer in answers {
        answer.send(None);
    }
}

/// Why nothing can be stored after a commit failed with answered changes in it.
fn broken_journal() -> OutboxError {
    OutboxError::Unavailable(
        "an earlier commit failed; what was accepted is safe in the outbox journal and is \
         restored when the service restarts"
            .to_owned(),
    )
}

/// Answers every request of a batch with the storage failure; nothing of it was stored.
fn fail(core: &Core, size: usize, answers: Vec<Staged>, error: &OutboxError) {
    core.writable.store(false, Ordering::Relaxed);
    tracing::error!(
        requests = size,
        "outbox write failed, nothing was changed: {error}"
    );
    for answer in answers {
        answer.send(Some(error));
    }
}

/// Applies each request in turn; stops writing at the first storage error.
fn apply_batch(
    limits: Limits,
    txn: &WriteTransaction,
    batch: Vec<Request>,
    now: u64,
    effects: &mut Vec<Effect>,
) -> (Vec<Staged>, Option<OutboxError>) {
    let mut tables = match Tables::open(txn) {
        Ok(tables) => tables,
        Err(error) => return (unanswered(batch), Some(error)),
    };
    let mut failure = tables.prune_dedup(now).err();
    let answers = batch
        .into_iter()
        .map(|request| {
            if failure.is_some() {
                return Staged::unanswered(request);
            }
            let failure = &mut failure;
            match request {
                Request::Enqueue {
                    route,
                    messages,
                    dedup_key,
                    dedup_window_ms,
                    reply,
                } => Staged::Enqueued(staged(
                    reply,
                    tables.enqueue(
                        &route,
                        messages,
                        (dedup_key, dedup_window_ms),
                        now,
                        limits,
                        effects,
                    ),
                    failure,
                )),
                Request::Settle {
                    id,
                    route,
                    settlement,
                    reply,
                } => Staged::Done(staged(
                    reply,
                    tables.settle(id, route, settlement, now, effects),
                    failure,
                )),
                Request::RetryDeadLetter { id, reply } => Staged::Done(staged(
                    reply,
                    tables.retry_dead_letter(id, now, limits, effects),
                    failure,
                )),
                Request::RetryAllDeadLetters { reply } => Staged::Retried(staged(
                    reply,
                    tables.retry_all_dead_letters(now, limits, effects),
                    failure,
                )),
                Request::PurgeDeadLetter { id, reply } => {
                    Staged::Done(staged(reply, tables.purge_dead_letter(id), failure))
                }
            }
        })
        .collect();
    (answers, failure)
}

/// Applies the committed changes to the schedule; true when something new became pending.
fn apply_effects(schedule: &mut Schedule, effects: Vec<Effect>) -> bool {
    let mut queued = false;
    for effect in effects {
        match effect {
            Effect::Queue {
                id,
                route,
                due,
                since,
            } => {
                schedule.insert(id, route, due, since);
                queued = true;
            }
            Effect::Reschedule { id, route, due } => schedule.reschedule(id, &route, due),
            Effect::Remove { id, route } => schedule.remove(id, &route),
        }
    }
    queued
}

/// A request's answer, held until the transaction's fate is known.
struct Answer<T> {
    reply: Reply<T>,
    result: Result<T, OutboxError>,
}

impl<T> Answer<T> {
    /// Sends the answer, or the transaction's failure instead. A caller that stopped waiting is
    /// not an error.
    fn send(self, failure: Option<&OutboxError>) {
        let result = match failure {
            Some(failure) => Err(failure.clone()),
            None => self.result,
        };
        let _gone = self.reply.send(result);
    }
}

/// Turns an operation's outcome into an answer: the inner result is the caller's; an outer error
/// is a storage failure that aborts the batch.
fn staged<T>(
    reply: Reply<T>,
    outcome: Result<Result<T, OutboxError>, OutboxError>,
    failure: &mut Option<OutboxError>,
) -> Answer<T> {
    let result = outcome.unwrap_or_else(|error| {
        *failure = Some(error.clone());
        Err(error)
    });
    Answer { reply, result }
}

enum Staged {
    Enqueued(Answer<Enqueued>),
    Done(Answer<()>),
    Retried(Answer<RetriedDeadLetters>),
}

impl Staged {
    /// A request that was never applied; it is only ever sent with the batch's failure.
    fn unanswered(request: Request) -> Self {
        fn not_applied<T>() -> Result<T, OutboxError> {
            Err(OutboxError::Unavailable("not applied".to_owned()))
        }
        match request {
            Request::Enqueue { reply, .. } => Self::Enqueued(Answer {
                reply,
                result: not_applied(),
            }),
            Request::Settle { reply, .. }
            | Request::RetryDeadLetter { reply, .. }
            | Request::PurgeDeadLetter { reply, .. } => Self::Done(Answer {
                reply,
                result: not_applied(),
            }),
            Request::RetryAllDeadLetters { reply } => Self::Retried(Answer {
                reply,
                result: not_applied(),
            }),
        }
    }

    fn send(self, failure: Option<&OutboxError>) {
        match self {
            Self::Enqueued(answer) => answer.send(failure),
            Self::Done(answer) => answer.send(failure),
            Self::Retried(answer) => answer.send(failure),
        }
    }
}

fn unanswered(batch: Vec<Request>) -> Vec<Staged> {
    batch.into_iter().map(Staged::unanswered).collect()
}
