//! Group commit: one thread makes every change to the outbox. It takes the first waiting request,
//! drains whatever else is queued behind it (up to [`MAX_BATCH`]), applies them all in ONE redb
//! write transaction, commits it (one fsync), updates the in-memory schedule, and only then
//! answers each caller. Nobody hears back before their data is on disk, and a burst of webhooks
//! costs one fsync per batch instead of one each.
//!
//! Within a batch each request is checked before it writes anything, so a refused request (a
//! duplicate, a full outbox, an unknown dead letter) changes nothing and does not disturb the
//! others. A storage error aborts the whole transaction and every caller of the batch gets
//! [`OutboxError::Unavailable`].

use std::sync::atomic::Ordering;
use std::sync::mpsc::Receiver;

use redb::{ReadableTable, ReadableTableMetadata, Table, WriteTransaction};
use tokio::sync::oneshot;

use super::outbox::{
    Core, DEAD_LETTERS, DEDUP_EXPIRY, DEDUP_KEYS, DeadRecord, Enqueued, Limits, META, OutboxError,
    PENDING, PendingRecord, RetriedDeadLetters, decode, encode,
};
use super::schedule::Schedule;
use crate::pushjet::NewMessage;
use crate::routes::RouteName;

/// The most requests in one transaction.
const MAX_BATCH: usize = 1024;
/// The most expired dedup keys deleted per transaction.
const PRUNE_LIMIT: usize = 256;
/// Where the last id handed out is kept in `meta`.
const LAST_ID: &str = "last_id";

type Reply<T> = oneshot::Sender<Result<T, OutboxError>>;

/// A change asked of the committer, with where to send its answer.
pub(super) enum Request {
    /// Store a webhook's notifications (and its dedup key).
    Enqueue {
        route: RouteName,
        messages: Vec<NewMessage>,
        dedup_key: Option<String>,
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

/// The outcome of one send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Settlement {
    /// Pushjet has it: forget it.
    Sent,
    /// Failed for now: try again at `at` (milliseconds since the epoch).
    Retry { at: u64, error: String },
    /// Will not succeed: make it a dead letter.
    Dead { reason: String },
}

/// A change to the in-memory schedule, made once the transaction is committed.
enum Effect {
    Queue {
        id: u64,
        route: RouteName,
        due: u64,
        since: u64,
    },
    Reschedule {
        id: u64,
        route: RouteName,
        due: u64,
    },
    Remove {
        id: u64,
        route: RouteName,
    },
}

/// Serves requests until every sender is gone.
pub(super) fn run(core: &Core, requests: &Receiver<Request>) {
    while let Ok(first) = requests.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match requests.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        commit(core, batch);
    }
}

/// Applies a batch in one transaction, commits, updates the schedule, then answers.
fn commit(core: &Core, batch: Vec<Request>) {
    let now = core.now();
    let size = batch.len();
    let mut effects = Vec::new();
    let (answers, failure) = match core.db.begin_write() {
        Ok(txn) => {
            let (answers, failure) = apply_batch(core.limits, &txn, batch, now, &mut effects);
            let failure = match failure {
                None => txn.commit().err().map(OutboxError::from),
                Some(failure) => Some(failure),
            };
            (answers, failure)
        }
        Err(error) => (unanswered(batch), Some(error.into())),
    };
    #[cfg(test)]
    core.transactions.fetch_add(1, Ordering::Relaxed);
    core.writable.store(failure.is_none(), Ordering::Relaxed);
    match &failure {
        None => {
            let queued = apply_effects(&mut core.schedule(), effects);
            if queued {
                core.wake.notify_one();
            }
            tracing::trace!(requests = size, "outbox batch committed");
        }
        Some(error) => {
            tracing::error!(
                requests = size,
                "outbox write failed, nothing was changed: {error}"
            );
        }
    }
    for answer in answers {
        answer.send(failure.as_ref());
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
                    reply,
                } => Staged::Enqueued(staged(
                    reply,
                    tables.enqueue(&route, messages, dedup_key, now, limits, effects),
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

/// An operation's outcome: `Err` aborts the transaction, `Ok(Err)` refuses only this request.
type Outcome<T> = Result<Result<T, OutboxError>, OutboxError>;

/// The outbox's tables, open in one write transaction.
struct Tables<'txn> {
    pending: Table<'txn, u64, &'static [u8]>,
    dead: Table<'txn, u64, &'static [u8]>,
    dedup: Table<'txn, &'static str, u64>,
    dedup_expiry: Table<'txn, (u64, &'static str), ()>,
    meta: Table<'txn, &'static str, u64>,
}

impl<'txn> Tables<'txn> {
    fn open(txn: &'txn WriteTransaction) -> Result<Self, OutboxError> {
        Ok(Self {
            pending: txn.open_table(PENDING)?,
            dead: txn.open_table(DEAD_LETTERS)?,
            dedup: txn.open_table(DEDUP_KEYS)?,
            dedup_expiry: txn.open_table(DEDUP_EXPIRY)?,
            meta: txn.open_table(META)?,
        })
    }

    /// Deletes some dedup keys whose window has passed (expired ones already count as unseen;
    /// this only keeps the table small).
    fn prune_dedup(&mut self, now: u64) -> Result<(), OutboxError> {
        let mut expired = Vec::new();
        for entry in self
            .dedup_expiry
            .range(..(now.saturating_add(1), ""))?
            .take(PRUNE_LIMIT)
        {
            let (key, _) = entry?;
            let (expires, dedup_key) = key.value();
            expired.push((expires, dedup_key.to_owned()));
        }
        for (expires, key) in expired {
            self.dedup_expiry.remove((expires, key.as_str()))?;
            let current = self.dedup.get(key.as_str())?.map(|value| value.value());
            if current == Some(expires) {
                self.dedup.remove(key.as_str())?;
            }
        }
        Ok(())
    }

    fn enqueue(
        &mut self,
        route: &RouteName,
        messages: Vec<NewMessage>,
        dedup_key: Option<String>,
        now: u64,
        limits: Limits,
        effects: &mut Vec<Effect>,
    ) -> Outcome<Enqueued> {
        let seen = match &dedup_key {
            Some(key) => self.dedup.get(key.as_str())?.map(|value| value.value()),
            None => None,
        };
        if seen.is_some_and(|expires| expires > now) {
            return Ok(Ok(Enqueued::Duplicate));
        }
        let count = u64::try_from(messages.len()).unwrap_or(u64::MAX);
        if self.pending.len()?.saturating_add(count) > limits.max_queue {
            return Ok(Err(OutboxError::Full {
                limit: limits.max_queue,
            }));
        }
        let mut id = self.meta.get(LAST_ID)?.map_or(0, |value| value.value());
        let mut ids = Vec::with_capacity(messages.len());
        for message in messages {
            id = id.saturating_add(1);
            let record = PendingRecord {
                route: route.as_str().to_owned(),
                message,
                attempts: 0,
                queued_at: now,
                retrying_since: now,
                next_attempt_at: now,
                last_error: None,
            };
            self.pending.insert(id, encode(&record)?.as_slice())?;
            effects.push(Effect::Queue {
                id,
                route: route.clone(),
                due: now,
                since: now,
            });
            ids.push(id);
        }
        self.meta.insert(LAST_ID, id)?;
        if let Some(key) = dedup_key {
            if let Some(stale) = seen {
                self.dedup_expiry.remove((stale, key.as_str()))?;
            }
            let expires = now.saturating_add(limits.dedup_window_ms);
            self.dedup.insert(key.as_str(), expires)?;
            self.dedup_expiry.insert((expires, key.as_str()), ())?;
        }
        Ok(Ok(Enqueued::Queued(ids)))
    }

    fn settle(
        &mut self,
        id: u64,
        route: RouteName,
        settlement: Settlement,
        now: u64,
        effects: &mut Vec<Effect>,
    ) -> Outcome<()> {
        match settlement {
            Settlement::Sent => {
                // Forgetting it needs no record: nothing is read or decoded on the common path.
                self.pending.remove(id)?;
                effects.push(Effect::Remove { id, route });
                Ok(Ok(()))
            }
            Settlement::Retry { at, error } => {
                let mut record = match self.pending_record(id)? {
                    Ok(Some(record)) => record,
                    Ok(None) => {
                        effects.push(Effect::Remove { id, route });
                        return Ok(Ok(()));
                    }
                    Err(error) => return Ok(Err(error)),
                };
                record.attempts = record.attempts.saturating_add(1);
                record.next_attempt_at = at;
                record.last_error = Some(error);
                self.pending.insert(id, encode(&record)?.as_slice())?;
                effects.push(Effect::Reschedule { id, route, due: at });
                Ok(Ok(()))
            }
            Settlement::Dead { reason } => {
                let record = match self.pending_record(id)? {
                    Ok(Some(record)) => record,
                    Ok(None) => {
                        effects.push(Effect::Remove { id, route });
                        return Ok(Ok(()));
                    }
                    Err(error) => return Ok(Err(error)),
                };
                let dead = DeadRecord {
                    route: record.route,
                    message: record.message,
                    attempts: record.attempts.saturating_add(1),
                    queued_at: record.queued_at,
                    dead_at: now,
                    reason,
                };
                self.pending.remove(id)?;
                self.dead.insert(id, encode(&dead)?.as_slice())?;
                effects.push(Effect::Remove { id, route });
                Ok(Ok(()))
            }
        }
    }

    /// A pending notification's record; `None` when it is no longer pending.
    fn pending_record(&self, id: u64) -> Outcome<Option<PendingRecord>> {
        Ok(self
            .pending
            .get(id)?
            .map(|value| decode(value.value()))
            .transpose())
    }

    fn retry_dead_letter(
        &mut self,
        id: u64,
        now: u64,
        limits: Limits,
        effects: &mut Vec<Effect>,
    ) -> Outcome<()> {
        let stored = self.dead.get(id)?.map(|value| read_dead(value.value()));
        let (record, route) = match stored {
            None => return Ok(Err(OutboxError::NoSuchDeadLetter(id))),
            Some(Err(error)) => return Ok(Err(error)),
            Some(Ok(read)) => read,
        };
        if self.pending.len()? >= limits.max_queue {
            return Ok(Err(OutboxError::Full {
                limit: limits.max_queue,
            }));
        }
        self.dead.remove(id)?;
        self.requeue(id, route, record, now, effects)?;
        Ok(Ok(()))
    }

    fn retry_all_dead_letters(
        &mut self,
        now: u64,
        limits: Limits,
        effects: &mut Vec<Effect>,
    ) -> Outcome<RetriedDeadLetters> {
        let room = limits.max_queue.saturating_sub(self.pending.len()?);
        if room == 0 && self.dead.len()? > 0 {
            return Ok(Err(OutboxError::Full {
                limit: limits.max_queue,
            }));
        }
        let mut readable = Vec::new();
        for entry in self.dead.iter()? {
            if u64::try_from(readable.len()).unwrap_or(u64::MAX) >= room {
                break;
            }
            let (id, value) = entry?;
            let id = id.value();
            match read_dead(value.value()) {
                Ok((record, route)) => readable.push((id, record, route)),
                Err(error) => tracing::error!(id, "dead letter {id} stays: {error}"),
            }
        }
        let mut ids = Vec::with_capacity(readable.len());
        for (id, record, route) in readable {
            self.dead.remove(id)?;
            self.requeue(id, route, record, now, effects)?;
            ids.push(id);
        }
        Ok(Ok(RetriedDeadLetters {
            ids,
            left: self.dead.len()?,
        }))
    }

    fn purge_dead_letter(&mut self, id: u64) -> Outcome<()> {
        if self.dead.remove(id)?.is_some() {
            Ok(Ok(()))
        } else {
            Ok(Err(OutboxError::NoSuchDeadLetter(id)))
        }
    }

    /// Makes a dead letter pending again under its id, due now, with a fresh retry period.
    fn requeue(
        &mut self,
        id: u64,
        route: RouteName,
        dead: DeadRecord,
        now: u64,
        effects: &mut Vec<Effect>,
    ) -> Result<(), OutboxError> {
        let record = PendingRecord {
            route: dead.route,
            message: dead.message,
            attempts: 0,
            queued_at: dead.queued_at,
            retrying_since: now,
            next_attempt_at: now,
            last_error: None,
        };
        self.pending.insert(id, encode(&record)?.as_slice())?;
        effects.push(Effect::Queue {
            id,
            route,
            due: now,
            since: now,
        });
        Ok(())
    }
}

/// Reads a dead letter record and its route name.
fn read_dead(bytes: &[u8]) -> Result<(DeadRecord, RouteName), OutboxError> {
    let record: DeadRecord = decode(bytes)?;
    let route =
        RouteName::parse(&record.route).map_err(|error| OutboxError::Record(error.to_string()))?;
    Ok((record, route))
}
