//! The outbox in a PostgreSQL database that any number of replicas share
//! (`PUSHJET_BRIDGE_DATABASE_URL`). It implements [`OutboxBackend`] for the `Outbox` handle and
//! uses nothing above it: only the contract and the shared records (`delivery/outbox/`).
//!
//! Tables (`database/migrations/`, applied at start by `crate::database`; times are milliseconds since the
//! epoch):
//!
//! | table | key | holds |
//! |---|---|---|
//! | `outbox_pending` | id (sequence `outbox_ids`), index (route, id) | route, message (JSON), attempts, first queued, waiting since, next attempt, last error |
//! | `outbox_dead_letters` | id (kept from pending) | route, message, attempts, first queued, dead since, reason |
//! | `outbox_dedup` | `route/key` | when it expires (index by expiry, pruned in the background) |
//! | `route_leases` | route | the replica sending it, its lease number (sequence `route_lease_numbers`), until when (the database's clock) |
//! | `noise_routes` | route | its noise state (JSON) and when its next held notifications fall due (`noise.rs`) |
//!
//! - **Committed before answered.** An enqueue is one statement in its own transaction (dedup
//!   key, notifications), sent with its `BEGIN` and `COMMIT` in one round trip; its
//!   ids are returned after `COMMIT` answered, so a 202 always stands on committed rows. How
//!   durable a commit is, is the server's promise: `synchronous_commit = on` (the default), and
//!   a synchronous standby when failover must not lose anything. Enqueues take no lock, so
//!   concurrent ones commit together (the server's group commit): the rate is not bound by one
//!   commit's latency per route.
//! - **Order per route across replicas.** A notification accepted (202) before another was
//!   posted has the smaller id: its commit came first. Two posted at once may commit out of
//!   their ids' order; neither was accepted first, and a run that hands out the later one
//!   first leaves the earlier to the route's next claim. A replica sends a route only under a
//!   lease: a row in `route_leases` taken with a conditional upsert (free, or expired), numbered
//!   from a sequence (the fencing token of [`Claim::lease`]), renewed by every read and outcome
//!   under it, deleted when given back, lapsing
//!   `PUSHJET_BRIDGE_LEASE` after its last renewal when its replica died. An outcome is recorded
//!   only while its lease is still the route's: a replica that lost it cannot overwrite another's
//!   ([`OutboxError::LeaseLost`]; the dispatcher drops that outcome rather than hold it).
//! - **Outcomes.** A sent notification's row is deleted in a transaction committed with
//!   `synchronous_commit = off`: it does not wait for the disk, so a database crash may forget
//!   it and the notification is sent again (the crash window of duplicates, as with redb). Every
//!   other outcome, and every enqueue, waits for its commit to be durable. The statements the
//!   dispatcher runs all the time are prepared once per connection.
//! - **Dedup is global**: the key's row is inserted in the enqueue's transaction, so the same
//!   delivery posted to two replicas is queued once.
//! - **Waking.** Changes `NOTIFY` a channel that every replica `LISTEN`s on (`crate::database`):
//!   enqueues just after their commit, one notification for as many as commit meanwhile;
//!   [`OutboxBackend::changed`] also resolves every little while, so that a lapsed lease is taken
//!   over even when nothing is said.
//! - **Database trouble.** Every operation asks the pool for a connection (made again when one
//!   drops), and the whole of it, waiting for a connection included, is bounded by
//!   `PUSHJET_BRIDGE_DATABASE_TIMEOUT` (the server's `statement_timeout` too): when the server
//!   cannot be reached or does not answer in time (hung, not down), enqueues answer
//!   [`OutboxError::Unavailable`] (the webhook's 503), the dispatcher finds nothing to do for a
//!   few seconds and tries again, and [`OutboxBackend::problem`] names the failure for `/readyz`
//!   until a query succeeds again (the gauges' refresh, every second, finds it within the
//!   bound). An enqueue cut short by the bound may still commit when the server wakes: its
//!   webhook was answered 503, and the sender's retry is a duplicate by its delivery id.
//! - **Gauges** (pending count, oldest age) are synchronous: they answer from values a background
//!   task refreshes every second, adjusted at once by this replica's own changes. The queue
//!   limit is checked against them.

mod background;
mod claims;
mod dead_letters;
mod enqueue;
mod gauges;
mod noise;
mod outcomes;
mod statements;
#[cfg(test)]
mod tests;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use deadpool_postgres::Pool;
use futures_util::future::BoxFuture;
use tokio::sync::Notify;
use tokio::task::AbortHandle;

use self::background::{announce_forever, refresh_forever};
use self::gauges::Gauges;
use super::outbox::backend::{Claim, Due, OutboxBackend, Outcome, Recording};
use super::outbox::records::{
    Clock, DeadLetter, DedupKey, Enqueued, OutboxError, PendingRecord, RetriedDeadLetters,
    SystemClock, duration_millis, millis,
};
use crate::config::{DatabaseUrl, DeliverySettings};
use crate::delivery::noise::{Admission, Admitted, Released};
use crate::database::{self, Listener};
use crate::pushjet::NewMessage;
use crate::routes::RouteName;

/// The channel changes are announced on.
const CHANNEL: &str = "pushjet_bridge_outbox";
/// Connections kept open per replica.
const POOL_SIZE: usize = 16;
/// How long the dispatcher waits after the database failed it before it asks again.
const STORAGE_RETRY_DELAY: Duration = Duration::from_secs(5);
/// The longest [`OutboxBackend::changed`] waits without a notification.
const MAX_POLL: Duration = Duration::from_secs(5);

/// The outbox kept in PostgreSQL. Dropping it stops its background tasks and closes the pool.
#[derive(Debug)]
pub(in crate::delivery) struct PostgresOutbox {
    shared: Arc<Shared>,
    background: Vec<AbortHandle>,
}

impl Drop for PostgresOutbox {
    fn drop(&mut self) {
        for task in &self.background {
            task.abort();
        }
    }
}

/// What the handle, its recordings and its background tasks share.
struct Shared {
    pool: Pool,
    /// This replica's name in `route_leases`.
    holder: String,
    lease_ms: i64,
    max_queue: u64,
    dedup_window_ms: u64,
    alert_dedup_window_ms: u64,
    clock: Arc<dyn Clock>,
    /// Woken by `NOTIFY` (and by reconnecting), and by this replica's own enqueues: the
    /// dispatcher claims again.
    wake: Notify,
    /// Woken by this replica's enqueues: [`announce_forever`] tells the other replicas.
    announce: Notify,
    /// The longest [`OutboxBackend::changed`] waits.
    poll_every: Duration,
    gauges: Gauges,
    /// The last failure to reach the database, until a query succeeds again.
    problem: Mutex<Option<String>>,
    /// The longest any operation may wait on the database.
    timeout: Duration,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("holder", &self.holder)
            .field("lease_ms", &self.lease_ms)
            .finish_non_exhaustive()
    }
}

impl PostgresOutbox {
    /// Connects to the database, brings its schema up to date (refusing one newer than this
    /// binary) and starts listening for changes and refreshing the gauges.
    pub(in crate::delivery) async fn connect(
        url: &DatabaseUrl,
        settings: &DeliverySettings,
    ) -> Result<Self, OutboxError> {
        Self::connect_with_clock(url, settings, Arc::new(SystemClock)).await
    }

    /// [`Self::connect`] with the clock that dates the records.
    pub(in crate::delivery) async fn connect_with_clock(
        url: &DatabaseUrl,
        settings: &DeliverySettings,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, OutboxError> {
        let database = database::connect(url, POOL_SIZE)
            .await
            .map_err(|error| OutboxError::Unavailable(error.0))?;
        let lease = settings.lease;
        let shared = Arc::new(Shared {
            pool: database.pool.clone(),
            holder: format!("{}-{}", std::process::id(), uuid::Uuid::new_v4()),
            lease_ms: to_i64(duration_millis(lease)),
            max_queue: settings.max_queue,
            dedup_window_ms: duration_millis(settings.dedup_window),
            alert_dedup_window_ms: duration_millis(settings.alert_dedup_window),
            clock,
            wake: Notify::new(),
            announce: Notify::new(),
            poll_every: (lease / 4).clamp(Duration::from_millis(50), MAX_POLL),
            gauges: Gauges::default(),
            problem: Mutex::new(None),
            timeout: database.timeout,
        });
        shared.refresh().await;
        let listener: Arc<dyn Listener> = shared.clone();
        let background = vec![
            tokio::spawn(refresh_forever(shared.clone())).abort_handle(),
            tokio::spawn(announce_forever(shared.clone())).abort_handle(),
            tokio::spawn(database::listen(database, CHANNEL, "outbox changes", listener))
                .abort_handle(),
        ];
        tracing::info!(database = %url.redacted(), "the outbox is kept in PostgreSQL");
        Ok(Self { shared, background })
    }
}

/// Every dead letter retried and route given back with due work `NOTIFY`s the channel in its
/// transaction, and enqueues are announced by [`announce_forever`]: the dispatcher claims again.
impl Listener for Shared {
    fn wake(&self) {
        self.wake.notify_one();
    }
}

/// A database failure, as the caller sees it: the server's own message when it sent one.
fn unavailable(error: impl std::error::Error + 'static) -> OutboxError {
    OutboxError::Unavailable(database::reason(&error))
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

impl Shared {
    fn now(&self) -> u64 {
        millis(self.clock.now())
    }

    /// `work` for at most the database timeout (`PUSHJET_BRIDGE_DATABASE_TIMEOUT`), a server
    /// that does not answer by then being unavailable. An enqueue cut short may still commit
    /// once the server answers again: its webhook was answered 503, and the sender's retry is
    /// recognised by its delivery id.
    async fn bounded<T>(
        &self,
        work: impl Future<Output = Result<T, OutboxError>>,
    ) -> Result<T, OutboxError> {
        database::within(self.timeout, work)
            .await
            .unwrap_or_else(|error| Err(OutboxError::Unavailable(error.0)))
    }

    /// Notes how the last call to the database went, for `/readyz`.
    fn observe<T>(&self, result: Result<T, OutboxError>) -> Result<T, OutboxError> {
        let problem = match &result {
            Err(OutboxError::Unavailable(reason)) => Some(reason.clone()),
            _ => None,
        };
        *self.problem.lock().unwrap_or_else(PoisonError::into_inner) = problem;
        result
    }
}

impl OutboxBackend for PostgresOutbox {
    fn enqueue<'a>(
        &'a self,
        route: &'a RouteName,
        notifications: Vec<NewMessage>,
        dedup_key: Option<DedupKey>,
    ) -> BoxFuture<'a, Result<Enqueued, OutboxError>> {
        Box::pin(async move {
            let shared = &self.shared;
            shared.observe(shared.bounded(shared.enqueue(route, notifications, dedup_key)).await)
        })
    }

    fn admit<'a>(
        &'a self,
        route: &'a RouteName,
        admission: Admission<'a>,
    ) -> BoxFuture<'a, Result<Admitted, OutboxError>> {
        let shared = &self.shared;
        Box::pin(async move { shared.observe(shared.admit_noise(route, admission).await) })
    }

    fn release_held(
        &self,
        max_message_bytes: usize,
    ) -> BoxFuture<'_, Result<Released, OutboxError>> {
        let shared = &self.shared;
        Box::pin(async move { shared.observe(shared.release_noise(max_message_bytes).await) })
    }

    fn dead_letters(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<DeadLetter>, OutboxError>> {
        Box::pin(async move {
            let shared = &self.shared;
            shared.observe(shared.bounded(shared.dead_letters(after, limit)).await)
        })
    }

    fn dead_letter_count(&self) -> BoxFuture<'_, Result<u64, OutboxError>> {
        Box::pin(async move {
            let shared = &self.shared;
            shared.observe(shared.bounded(shared.dead_letter_count()).await)
        })
    }

    fn pending_by_route(
        &self,
    ) -> BoxFuture<'_, Result<std::collections::BTreeMap<RouteName, u64>, OutboxError>> {
        Box::pin(async move { self.shared.observe(self.shared.pending_by_route().await) })
    }

    fn retry_dead_letter(&self, id: u64) -> BoxFuture<'_, Result<(), OutboxError>> {
        Box::pin(async move {
            let shared = &self.shared;
            shared.observe(shared.bounded(shared.retry_dead_letter(id)).await)
        })
    }

    fn retry_all_dead_letters(&self) -> BoxFuture<'_, Result<RetriedDeadLetters, OutboxError>> {
        Box::pin(async move {
            let shared = &self.shared;
            shared.observe(shared.bounded(shared.retry_all_dead_letters()).await)
        })
    }

    fn purge_dead_letter(&self, id: u64) -> BoxFuture<'_, Result<(), OutboxError>> {
        Box::pin(async move {
            let shared = &self.shared;
            shared.observe(shared.bounded(shared.purge_dead_letter(id)).await)
        })
    }

    fn pending_count(&self) -> u64 {
        self.shared.gauges.pending.load(Ordering::SeqCst)
    }

    fn oldest_pending_age(&self) -> Option<Duration> {
        let since = self.shared.gauges.oldest_since.load(Ordering::SeqCst);
        (since > 0).then(|| Duration::from_millis(self.shared.now().saturating_sub(since)))
    }

    /// A database server repairs itself: writable unless the last call failed to reach it.
    /// A database server repairs itself: the pool reconnects, nothing needs a restart.
    fn needs_restart(&self) -> bool {
        false
    }

    fn problem(&self) -> Option<String> {
        self.shared
            .problem
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn data_dir(&self) -> Option<&Path> {
        None
    }

    fn now(&self) -> u64 {
        self.shared.now()
    }

    /// Leases the due routes nobody holds; when the database fails, nothing is due for a while.
    fn claim_due(&self, room: usize) -> BoxFuture<'_, Due> {
        Box::pin(async move {
            let shared = &self.shared;
            match shared.observe(shared.bounded(shared.claim_due(room)).await) {
                Ok(due) => due,
                Err(error) => {
                    tracing::error!(
                        "cannot claim due notifications, trying again in {}: {error}",
                        humantime::format_duration(STORAGE_RETRY_DELAY)
                    );
                    Due {
                        claims: Vec::new(),
                        next_due: Some(
                            shared
                                .now()
                                .saturating_add(duration_millis(STORAGE_RETRY_DELAY)),
                        ),
                    }
                }
            }
        })
    }

    fn next_batch<'a>(
        &'a self,
        claim: &'a mut Claim,
        max: usize,
    ) -> BoxFuture<'a, Vec<(u64, PendingRecord)>> {
        Box::pin(async move {
            let shared = &self.shared;
            let route = claim.route().clone();
            shared
                .observe(shared.bounded(shared.next_batch(claim, max)).await)
                .unwrap_or_else(|error| {
                    tracing::error!(
                        route = %route,
                        "cannot read route `{route}`'s notifications from the outbox: {error}"
                    );
                    Vec::new()
                })
        })
    }

    /// Runs at once on its own task: the dispatcher polls the answer only now and then.
    fn record(&self, claim: &Claim, id: u64, outcome: Outcome) -> Recording {
        let shared = self.shared.clone();
        let (route, lease) = (claim.route().clone(), claim.lease());
        let task = tokio::spawn(async move {
            let held =
                shared.observe(shared.bounded(shared.record(&route, lease, id, outcome)).await)?;
            if held {
                Ok(())
            } else {
                Err(OutboxError::LeaseLost {
                    route: route.to_string(),
                    id,
                })
            }
        });
        Box::pin(async move {
            task.await.unwrap_or_else(|error| {
                Err(OutboxError::Unavailable(format!(
                    "recording an outcome stopped: {error}"
                )))
            })
        })
    }

    /// A lease that cannot be given back lapses after `PUSHJET_BRIDGE_LEASE`.
    fn release(&self, claim: Claim) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let shared = &self.shared;
            if let Err(error) = shared.bounded(shared.release(&claim)).await {
                tracing::warn!(
                    route = %claim.route(),
                    "cannot give the lease on route `{}` back; it lapses by itself: {error}",
                    claim.route()
                );
            }
        })
    }

    fn changed(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            tokio::select! {
                () = self.shared.wake.notified() => {}
                () = tokio::time::sleep(self.shared.poll_every) => {}
            }
        })
    }
}
