//! What each change does to the outbox's tables, inside the committer's write transaction:
//! queuing a webhook's notifications (with its dedup key and the queue limit), recording a send's
//! outcome, retrying or purging dead letters, pruning expired dedup keys, and applying a journaled
//! change again after a crash. Each operation checks before it writes, so a refused one changes
//! nothing; the changes it makes to the in-memory schedule are returned as [`Effect`]s, applied by
//! the committer once they are durable.

use redb::{ReadableTable, ReadableTableMetadata, Table, WriteTransaction};

use super::committer::Settlement;
use super::journal::Change;
use super::{DEAD_LETTERS, DEDUP_EXPIRY, DEDUP_KEYS, Limits, META, PENDING, decode, encode};
use crate::delivery::outbox::records::{
    DeadRecord, Enqueued, OutboxError, PendingRecord, RetriedDeadLetters,
};
use crate::pushjet::NewMessage;
use crate::routes::RouteName;

/// The most expired dedup keys deleted per transaction.
const PRUNE_LIMIT: usize = 256;
/// Where the last id handed out is kept in `meta`.
const LAST_ID: &str = "last_id";
/// Where the sequence number of the newest journal frame the database holds is kept in `meta`.
pub(super) const JOURNAL_SEQ: &str = "journal_seq";

/// A change to the in-memory schedule, made once the transaction is committed.
pub(super) enum Effect {
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

/// An operation's outcome: `Err` aborts the transaction, `Ok(Err)` refuses only this request.
pub(super) type Outcome<T> = Result<Result<T, OutboxError>, OutboxError>;

/// The outbox's tables, open in one write transaction.
pub(super) struct Tables<'txn> {
    pending: Table<'txn, u64, &'static [u8]>,
    dead: Table<'txn, u64, &'static [u8]>,
    dedup: Table<'txn, &'static str, u64>,
    dedup_expiry: Table<'txn, (u64, &'static str), ()>,
    meta: Table<'txn, &'static str, u64>,
}

impl<'txn> Tables<'txn> {
    pub(super) fn open(txn: &'txn WriteTransaction) -> Result<Self, OutboxError> {
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
    pub(super) fn prune_dedup(&mut self, now: u64) -> Result<(), OutboxError> {
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

    /// Records the sequence number of the newest journal frame this transaction holds.
    pub(super) fn record_journal_seq(&mut self, seq: u64) -> Result<(), OutboxError> {
        self.meta.insert(JOURNAL_SEQ, seq)?;
        Ok(())
    }

    /// Applies a journaled change again. A change that is refused now (it was not when it was
    /// journaled, so only a damaged record can be) is logged and skipped.
    pub(super) fn redo(
        &mut self,
        change: Change,
        now: u64,
        limits: Limits,
        effects: &mut Vec<Effect>,
    ) -> Result<(), OutboxError> {
        let outcome = match change {
            Change::Enqueue {
                route,
                messages,
                dedup_key,
                dedup_window_ms,
            } => match RouteName::parse(&route) {
                Ok(route) => self
                    .enqueue(
                        &route,
                        messages,
                        (dedup_key, dedup_window_ms),
                        now,
                        limits,
                        effects,
                    )?
                    .map(drop),
                Err(error) => Err(OutboxError::Record(error.to_string())),
            },
            Change::Settle {
                id,
                route,
                settlement,
            } => match RouteName::parse(&route) {
                Ok(route) => self.settle(id, route, settlement, now, effects)?,
                Err(error) => Err(OutboxError::Record(error.to_string())),
            },
            Change::RetryDeadLetter { id } => self.retry_dead_letter(id, now, limits, effects)?,
            Change::PurgeDeadLetter { id } => self.purge_dead_letter(id)?,
        };
        if let Err(error) = outcome {
            tracing::error!("a journaled outbox change could not be applied again: {error}");
        }
        Ok(())
    }

    pub(super) fn enqueue(
        &mut self,
        route: &RouteName,
        messages: Vec<NewMessage>,
        (dedup_key, dedup_window_ms): (Option<String>, Option<u64>),
        now: u64,
        limits: Limits,
        effects: &mut Vec<Effect>,
    ) -> Outcome<Enqueued> {
        let dedup_key = dedup_key.map(|key| route_scoped(route, &key));
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
            self.queue(id, route.clone(), message, now, now, effects)?;
            ids.push(id);
        }
        self.meta.insert(LAST_ID, id)?;
        if let Some(key) = dedup_key {
            if let Some(stale) = seen {
                self.dedup_expiry.remove((stale, key.as_str()))?;
            }
            let window = dedup_window_ms.unwrap_or(limits.dedup_window_ms);
            let expires = now.saturating_add(window);
            self.dedup.insert(key.as_str(), expires)?;
            self.dedup_expiry.insert((expires, key.as_str()), ())?;
        }
        Ok(Ok(Enqueued::Queued(ids)))
    }

    pub(super) fn settle(
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

    pub(super) fn retry_dead_letter(
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

    pub(super) fn retry_all_dead_letters(
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

    pub(super) fn purge_dead_letter(&mut self, id: u64) -> Outcome<()> {
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
        self.queue(id, route, dead.message, dead.queued_at, now, effects)
    }

    /// Stores a notification as pending under `id`, never tried and due now, and says so in
    /// `effects`.
    fn queue(
        &mut self,
        id: u64,
        route: RouteName,
        message: NewMessage,
        queued_at: u64,
        now: u64,
        effects: &mut Vec<Effect>,
    ) -> Result<(), OutboxError> {
        let record = PendingRecord {
            route: route.as_str().to_owned(),
            message,
            attempts: 0,
            queued_at,
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

/// A dedup key as stored: prefixed with its route (route names hold no `/`), so that the same
/// delivery id or `Idempotency-Key` on another route is not a duplicate: a sender on one route
/// cannot silence another.
fn route_scoped(route: &RouteName, key: &str) -> String {
    format!("{route}/{key}")
}
