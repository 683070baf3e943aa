//! The contract every outbox backend fulfils: the embedded redb store (`delivery/redb/`) today, a
//! database server shared by several replicas later. [`super::Outbox`] is the handle over one.
//!
//! # Why a trait object with boxed futures
//!
//! The backend is chosen at run time, from the settings, and every HTTP worker and the dispatcher
//! share it: an `Arc<dyn OutboxBackend>` is one cheap-to-clone handle whatever is behind it, and
//! adding a backend adds an implementation, not a variant matched in every method. Trait objects
//! cannot have `async fn`s, so the asynchronous methods return boxed futures: one allocation
//! per call, nothing next to a synced write or a network round trip. The futures are `Send`, as a
//! network client's are, so the handle works on any runtime thread.
//!
//! # Claims: one run per route, in order
//!
//! A route's notifications are sent one at a time, oldest first. The dispatcher asks for work with
//! [`OutboxBackend::claim_due`] and gets [`Claim`]s, one per route whose oldest notification is
//! due; while it holds a claim nobody else sends that route's notifications. It reads the route's
//! due notifications under the claim ([`OutboxBackend::next_batch`]), reports each send's
//! [`Outcome`] with the claim ([`OutboxBackend::record`]) and gives the claim back
//! ([`OutboxBackend::release`]) once every outcome is recorded. The redb backend keeps claims in
//! memory (one process owns the file); a backend shared by replicas makes a claim a lease in the
//! database (a row or an advisory lock per route, taken with `FOR UPDATE SKIP LOCKED`), longer
//! than a send may take, renews it as the claim is used, lets it lapse when its replica dies, and
//! checks [`Claim::lease`] when an outcome is recorded so that a replica that lost its lease
//! cannot overwrite another's.
//!
//! # Storage trouble on the dispatcher's side
//!
//! Claiming, reading and giving back never fail towards the dispatcher: a backend that cannot
//! reach its storage logs it, holds the route's next notification back for a while and answers
//! with nothing to do. Only a recorded outcome answers with an error, which ends the run (the
//! backend holds the notification back too: it stays pending and is sent again later).

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use futures_util::future::BoxFuture;

use super::records::{DeadLetter, DedupKey, Enqueued, OutboxError, PendingRecord, RetriedDeadLetters};
use crate::delivery::noise::{Admission, Admitted, Released};
use crate::pushjet::NewMessage;
use crate::routes::RouteName;

/// The commit of a send's outcome, handed to the backend already: resolves once it is durable.
pub(in crate::delivery) type Recording = BoxFuture<'static, Result<(), OutboxError>>;

/// A route claimed by the dispatcher: see the module documentation.
#[derive(Debug)]
pub(in crate::delivery) struct Claim {
    route: RouteName,
    /// The last notification handed out under this claim: the next batch starts after it.
    after: Option<u64>,
    /// Which claim of the route this is, as the backend numbers them.
    lease: u64,
}

impl Claim {
    /// A claim on `route`, numbered `lease` by the backend that grants it.
    pub(in crate::delivery) fn new(route: RouteName, lease: u64) -> Self {
        Self {
            route,
            after: None,
            lease,
        }
    }

    /// The claimed route.
    pub(in crate::delivery) fn route(&self) -> &RouteName {
        &self.route
    }

    /// The backend's number for this claim: redb's number of the lane's claim, a shared
    /// database's lease (its fencing token).
    pub(in crate::delivery) fn lease(&self) -> u64 {
        self.lease
    }

    /// The last notification handed out under this claim, if any.
    pub(in crate::delivery) fn after(&self) -> Option<u64> {
        self.after
    }

    /// Notes that `id` was handed out: the next batch starts after it.
    pub(in crate::delivery) fn handed_out(&mut self, id: u64) {
        self.after = Some(id);
    }
}

/// What [`OutboxBackend::claim_due`] found.
#[derive(Debug)]
pub(in crate::delivery) struct Due {
    /// The routes claimed, oldest due notification first.
    pub(in crate::delivery) claims: Vec<Claim>,
    /// When the earliest unclaimed route is due next (milliseconds since the epoch), if any: the
    /// dispatcher asks again then.
    pub(in crate::delivery) next_due: Option<u64>,
}

/// The outcome of one send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(in crate::delivery) enum Outcome {
    /// Pushjet has it: forget it.
    Sent,
    /// Failed for now: try again at `at` (milliseconds since the epoch).
    Retry { at: u64, error: String },
    /// Will not succeed: make it a dead letter.
    Dead { reason: String },
}

/// A store of pending notifications, dedup keys and dead letters. Times are milliseconds since
/// the Unix epoch on [`Self::now`]'s clock.
pub(in crate::delivery) trait OutboxBackend: Send + Sync + fmt::Debug {
    /// Stores a webhook's notifications for delivery, oldest first, and answers once they are
    /// durable; with a dedup key seen within the dedup window, stores nothing and answers
    /// [`Enqueued::Duplicate`]. All or nothing.
    fn enqueue<'a>(
        &'a self,
        route: &'a RouteName,
        notifications: Vec<NewMessage>,
        dedup_key: Option<DedupKey>,
    ) -> BoxFuture<'a, Result<Enqueued, OutboxError>>;

    /// Up to `limit` dead letters with ids above `after`, oldest first.
    fn dead_letters(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<DeadLetter>, OutboxError>>;

    /// How many dead letters there are.
    fn dead_letter_count(&self) -> BoxFuture<'_, Result<u64, OutboxError>>;

    /// How many notifications wait for delivery, per route that has any (for the console; a
    /// backend behind a network may ask it).
    fn pending_by_route(&self) -> BoxFuture<'_, Result<BTreeMap<RouteName, u64>, OutboxError>>;

    /// Queues a dead letter again, under its id, with a fresh retry period.
    fn retry_dead_letter(&self, id: u64) -> BoxFuture<'_, Result<(), OutboxError>>;

    /// Queues every dead letter again, oldest first, as far as there is room.
    fn retry_all_dead_letters(&self) -> BoxFuture<'_, Result<RetriedDeadLetters, OutboxError>>;

    /// Deletes a dead letter for good.
    fn purge_dead_letter(&self, id: u64) -> BoxFuture<'_, Result<(), OutboxError>>;

    /// How many notifications wait for delivery (in flight included). A gauge: a backend behind
    /// a network answers from what it last saw, never with a query per call.
    fn pending_count(&self) -> u64;

    /// How long the longest-waiting pending notification has been waiting; a gauge as above.
    fn oldest_pending_age(&self) -> Option<Duration>;

    /// True once the store can keep nothing more before the process restarts (the redb
    /// backend after a failed commit, whose accepted changes the journal holds for the restart).
    fn needs_restart(&self) -> bool;

    /// Why a webhook would not be accepted now, for a readiness probe; `None` when it would.
    fn problem(&self) -> Option<String>;

    /// The directory the backend keeps its files in (for a readiness probe); `None` for a
    /// database server.
    fn data_dir(&self) -> Option<&Path>;

    /// Now, on the clock that dates the records.
    fn now(&self) -> u64;

    /// Claims up to `room` routes whose oldest pending notification is due, oldest first.
    fn claim_due(&self, room: usize) -> BoxFuture<'_, Due>;

    /// The claimed route's next due notifications after those already handed out under the
    /// claim, oldest first, up to `max`, stopping at the first that is not due (a notification
    /// waiting for its retry holds back the ones behind it). Empty when none is due.
    fn next_batch<'a>(
        &'a self,
        claim: &'a mut Claim,
        max: usize,
    ) -> BoxFuture<'a, Vec<(u64, PendingRecord)>>;

    /// Takes the outcome of sending `id` under `claim` at once, without waiting for it to be
    /// durable: the returned future says when it is (or that it could not be). A removal
    /// becomes visible only then.
    fn record(&self, claim: &Claim, id: u64, outcome: Outcome) -> Recording;

    /// Gives a claim back once every outcome recorded under it is durable.
    fn release(&self, claim: Claim) -> BoxFuture<'_, ()>;

    /// Resolves when something new may have become pending (a change made since the last call
    /// counts): the dispatcher then claims again.
    fn changed(&self) -> BoxFuture<'_, ()>;

    /// Decides a webhook's notifications under the route's noise policy (`delivery/noise/`):
    /// under the route's lock, reads its noise state, decides each notification, queues those
    /// sent (with the dedup key, as [`Self::enqueue`] does) and stores the state. A duplicate
    /// changes nothing.
    fn admit<'a>(
        &'a self,
        route: &'a RouteName,
        admission: Admission<'a>,
    ) -> BoxFuture<'a, Result<Admitted, OutboxError>>;

    /// Queues one digest for every route whose held notifications are due, each under the
    /// route's lock and at most once, its message cut to `max_message_bytes`.
    fn release_held(&self, max_message_bytes: usize)
    -> BoxFuture<'_, Result<Released, OutboxError>>;
}
