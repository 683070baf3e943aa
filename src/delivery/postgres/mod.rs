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

mod gauges;
mod noise;
mod statements;
#[cfg(test)]
mod tests;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use deadpool_postgres::{GenericClient, Pool};
use futures_util::future::BoxFuture;
use tokio::sync::Notify;
use tokio::task::AbortHandle;
use tokio_postgres::Row;

use self::gauges::Gauges;
use self::statements::{in_own_transaction, prepared, prepared_one};
use super::outbox::backend::{Claim, Due, OutboxBackend, Outcome, Recording};
use super::outbox::records::{
    Clock, DeadLetter, DeadRecord, DedupKey, Enqueued, OutboxError, PendingRecord, RetriedDeadLetters,
    SystemClock, duration_millis, millis,
};
use crate::config::{DatabaseUrl, DeliverySettings};
use crate::delivery::noise::{Admission, Admitted, Released};
use crate::database::{self, Listener};
use crate::pushjet::NewMessage;
use crate::routes::RouteName;

/// The channel changes are announced on.
const CHANNEL: &str = "pushjet_bridge_outbox";
/// An enqueue in one statement: the dedup key, if any, is inserted (or an expired one renewed);
/// when that went through (or there is no key), the notifications get ids in their order and are
/// queued. No row back for a duplicate. (The channel is told afterwards, by [`announce_forever`].)
const ENQUEUE: &str = "WITH fresh AS ( \
         INSERT INTO outbox_dedup (key, expires_at) SELECT $1::TEXT, $2 WHERE $1::TEXT IS NOT NULL \
         ON CONFLICT (key) DO UPDATE SET expires_at = EXCLUDED.expires_at \
         WHERE outbox_dedup.expires_at <= $3 RETURNING key), \
     admitted AS (SELECT 1 WHERE $1::TEXT IS NULL OR EXISTS (SELECT 1 FROM fresh)), \
     ids AS (SELECT nextval('outbox_ids') AS id FROM unnest($5::TEXT[]) CROSS JOIN admitted), \
     numbered AS (SELECT id, row_number() OVER (ORDER BY id) AS n FROM ids), \
     queued AS ( \
         INSERT INTO outbox_pending \
             (id, route, message, attempts, queued_at, retrying_since, next_attempt_at) \
         SELECT numbered.id, $4, m.message, 0, $3, $3, $3 \
         FROM numbered JOIN unnest($5::TEXT[]) WITH ORDINALITY AS m(message, n) USING (n) \
         RETURNING id) \
     SELECT id FROM queued ORDER BY id";
/// Connections kept open per replica.
const POOL_SIZE: usize = 16;
/// How often the gauges are read again and expired dedup keys deleted.
const REFRESH_EVERY: Duration = Duration::from_secs(1);
/// The most expired dedup keys deleted per refresh.
const PRUNE_LIMIT: i64 = 1000;
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

/// The pending notifications counted up to `limit + 1` (enough to compare with the limit).
async fn count_pending(client: &impl GenericClient, limit: u64) -> Result<u64, OutboxError> {
    let row = client
        .query_one(
            "SELECT count(*) FROM (SELECT 1 FROM outbox_pending LIMIT $1) AS capped",
            &[&to_i64(limit.saturating_add(1))],
        )
        .await
        .map_err(unavailable)?;
    Ok(to_u64(row.get(0)))
}

/// Tells the other replicas, until aborted, that this one queued notifications: one `NOTIFY`
/// for all the enqueues committed while the last one was on its way. Not in the enqueue's own
/// transaction: PostgreSQL serialises the commits of transactions that notify (one lock for the
/// notification queue, held through the commit's flush to disk), which would undo the group
/// commit that concurrent enqueues share. Nothing depends on it arriving: it only wakes idle
/// replicas early, which otherwise look again within [`MAX_POLL`] (this replica's dispatcher
/// is woken at once, in process).
async fn announce_forever(shared: Arc<Shared>) {
    loop {
        shared.announce.notified().await;
        let told = async {
            let client = shared.pool.get().await.map_err(unavailable)?;
            client
                .batch_execute(&format!(
                    "BEGIN; SET LOCAL synchronous_commit = off; NOTIFY {CHANNEL}; COMMIT"
                ))
                .await
                .map_err(unavailable)
        };
        if let Err(error) = shared.bounded(told).await {
            tracing::debug!("cannot wake the other replicas: {error}");
        }
    }
}

/// Refreshes the gauges every [`REFRESH_EVERY`] until aborted.
async fn refresh_forever(shared: Arc<Shared>) {
    loop {
        tokio::time::sleep(REFRESH_EVERY).await;
        shared.refresh().await;
    }
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

    /// Reads the gauges again and deletes some expired dedup keys.
    async fn refresh(&self) {
        let mark = self.gauges.mark();
        let read = async {
            let client = self.pool.get().await.map_err(unavailable)?;
            let row = client
                .query_one(
                    "SELECT count(*), coalesce(min(retrying_since), 0) FROM outbox_pending",
                    &[],
                )
                .await
                .map_err(unavailable)?;
            self.gauges
                .refreshed(mark, to_u64(row.get(0)), to_u64(row.get(1)));
            client
                .execute(
                    "DELETE FROM outbox_dedup WHERE key IN \
                     (SELECT key FROM outbox_dedup WHERE expires_at <= $1 LIMIT $2)",
                    &[&to_i64(self.now()), &PRUNE_LIMIT],
                )
                .await
                .map_err(unavailable)?;
            Ok(())
        };
        if let Err(error) = self.observe(self.bounded(read).await) {
            tracing::warn!("cannot read the outbox's gauges: {error}");
        }
    }

    async fn enqueue(
        &self,
        route: &RouteName,
        messages: Vec<NewMessage>,
        dedup_key: Option<DedupKey>,
    ) -> Result<Enqueued, OutboxError> {
        let now = self.now();
        let window_ms = dedup_key.as_ref().map_or(self.dedup_window_ms, |key| {
            key.window_ms(self.dedup_window_ms, self.alert_dedup_window_ms)
        });
        let bodies = messages
            .iter()
            .map(serde_json::to_string)
            .collect::<Result<Vec<_>, _>>()?;
        let count = u64::try_from(bodies.len()).unwrap_or(u64::MAX);
        let key = dedup_key.map(|key| format!("{route}/{}", key.key));
        let client = self.pool.get().await.map_err(unavailable)?;
        if self.gauges.pending().saturating_add(count) > self.max_queue {
            // A duplicate is answered as one even when the queue is full.
            let duplicate = match &key {
                Some(key) => client
                    .query_opt(
                        "SELECT 1 FROM outbox_dedup WHERE key = $1 AND expires_at > $2",
                        &[key, &to_i64(now)],
                    )
                    .await
                    .map_err(unavailable)?
                    .is_some(),
                None => false,
            };
            if duplicate {
                return Ok(Enqueued::Duplicate);
            }
            return Err(OutboxError::Full {
                limit: self.max_queue,
            });
        }
        let expires = to_i64(now.saturating_add(window_ms));
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 5] =
            [&key, &expires, &to_i64(now), &route.as_str(), &bodies];
        let rows = in_own_transaction(&client, "BEGIN", ENQUEUE, &params).await?;
        if key.is_some() && rows.is_empty() && !bodies.is_empty() {
            return Ok(Enqueued::Duplicate);
        }
        self.gauges.added(count, now);
        self.wake.notify_one();
        self.announce.notify_one();
        Ok(Enqueued::Queued(
            rows.iter().map(|row| to_u64(row.get(0))).collect(),
        ))
    }

    /// Claims up to `room` routes whose head is due and not leased, oldest head first.
    async fn claim_due(&self, room: usize) -> Result<Due, OutboxError> {
        let now = self.now();
        let client = self.pool.get().await.map_err(unavailable)?;
        let heads = prepared(&client, "WITH RECURSIVE routes(route) AS ( \
                     (SELECT route FROM outbox_pending ORDER BY route LIMIT 1) \
                     UNION ALL \
                     SELECT (SELECT p.route FROM outbox_pending p WHERE p.route > r.route \
                             ORDER BY p.route LIMIT 1) \
                     FROM routes r WHERE r.route IS NOT NULL) \
                 SELECT r.route, head.id, head.next_attempt_at \
                 FROM routes r \
                 CROSS JOIN LATERAL (SELECT id, next_attempt_at FROM outbox_pending p \
                                     WHERE p.route = r.route ORDER BY id LIMIT 1) head \
                 WHERE r.route IS NOT NULL AND NOT EXISTS ( \
                     SELECT 1 FROM route_leases l \
                     WHERE l.route = r.route AND l.expires_at > pushjet_bridge_now_ms()) \
                 ORDER BY head.id", &[]).await?;
        let mut wanted: Vec<(String, i64)> = Vec::new();
        let mut next_due: Option<u64> = None;
        for head in &heads {
            let (route, id, due): (String, i64, i64) = (head.get(0), head.get(1), head.get(2));
            let due = to_u64(due);
            if due <= now && wanted.len() < room {
                wanted.push((route, id));
            } else {
                next_due = Some(next_due.map_or(due, |next| next.min(due)));
            }
        }
        if wanted.is_empty() {
            return Ok(Due {
                claims: Vec::new(),
                next_due,
            });
        }
        // Locked in name order, as every replica does, so that two claims never deadlock.
        let mut routes: Vec<&str> = wanted.iter().map(|(route, _)| route.as_str()).collect();
        routes.sort_unstable();
        let leased = prepared(&client, "INSERT INTO route_leases (route, holder, lease, expires_at) \
                 SELECT route, $2, nextval('route_lease_numbers'), pushjet_bridge_now_ms() + $3 \
                 FROM unnest($1::TEXT[]) WITH ORDINALITY AS wanted(route, position) \
                 ORDER BY position \
                 ON CONFLICT (route) DO UPDATE SET holder = EXCLUDED.holder, \
                     lease = EXCLUDED.lease, expires_at = EXCLUDED.expires_at \
                 WHERE route_leases.expires_at <= pushjet_bridge_now_ms() \
                 RETURNING route, lease", &[&routes, &self.holder, &self.lease_ms]).await?;
        let mut claims: Vec<(i64, Claim)> = Vec::new();
        for row in &leased {
            let (route, lease): (String, i64) = (row.get(0), row.get(1));
            let Some((_, head)) = wanted.iter().find(|(wanted, _)| *wanted == route) else {
                continue;
            };
            match RouteName::parse(&route) {
                Ok(name) => claims.push((*head, Claim::new(name, to_u64(lease)))),
                Err(error) => tracing::error!("pending notifications of route {route:?}: {error}"),
            }
        }
        claims.sort_unstable_by_key(|(head, _)| *head);
        Ok(Due {
            claims: claims.into_iter().map(|(_, claim)| claim).collect(),
            next_due,
        })
    }

    /// The claimed route's next notifications after those handed out, renewing the lease; empty
    /// when the lease was lost.
    async fn next_batch(
        &self,
        claim: &mut Claim,
        max: usize,
    ) -> Result<Vec<(u64, PendingRecord)>, OutboxError> {
        let now = self.now();
        let client = self.pool.get().await.map_err(unavailable)?;
        let rows = prepared(&client, "WITH renewed AS ( \
                     UPDATE route_leases SET expires_at = pushjet_bridge_now_ms() + $3 \
                     WHERE route = $1 AND lease = $2 RETURNING route) \
                 SELECT p.id, p.message, p.attempts, p.queued_at, p.retrying_since, \
                        p.next_attempt_at, p.last_error \
                 FROM outbox_pending p JOIN renewed r ON p.route = r.route \
                 WHERE p.id > $4 ORDER BY p.id LIMIT $5", &[
                    &claim.route().as_str(),
                    &to_i64(claim.lease()),
                    &self.lease_ms,
                    &to_i64(claim.after().unwrap_or(0)),
                    &i64::try_from(max).unwrap_or(i64::MAX),
                ]).await?;
        let mut due = Vec::with_capacity(rows.len());
        for row in &rows {
            let id = to_u64(row.get(0));
            let next_attempt_at = to_u64(row.get(5));
            if next_attempt_at > now {
                break;
            }
            claim.handed_out(id);
            match pending_record(claim.route(), row, next_attempt_at) {
                Ok(record) => due.push((id, record)),
                Err(error) => {
                    tracing::error!(id, "pending notification {id} cannot be delivered: {error}");
                }
            }
        }
        Ok(due)
    }

    /// Records an outcome under the lease, renewing it; false (and nothing changed) when the
    /// lease was lost.
    async fn record(
        &self,
        route: &RouteName,
        lease: u64,
        id: u64,
        outcome: Outcome,
    ) -> Result<bool, OutboxError> {
        const LEASE: &str = "WITH lease AS ( \
                UPDATE route_leases SET expires_at = pushjet_bridge_now_ms() + $4 \
                WHERE route = $2 AND lease = $3 RETURNING route)";
        let client = self.pool.get().await.map_err(unavailable)?;
        let (id, route_name, lease) = (to_i64(id), route.as_str(), to_i64(lease));
        let row = match outcome {
            Outcome::Sent => {
                let sql = format!(
                    "{LEASE}, gone AS (DELETE FROM outbox_pending \
                         WHERE id = $1 AND route IN (SELECT route FROM lease) RETURNING id) \
                     SELECT EXISTS (SELECT 1 FROM lease), EXISTS (SELECT 1 FROM gone)"
                );
                // Committed without waiting for the disk: a database crash may forget it,
                // and the notification is sent again (the documented duplicate window).
                let params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
                    [&id, &route_name, &lease, &self.lease_ms];
                let begin = "BEGIN; SET LOCAL synchronous_commit = off";
                in_own_transaction(&client, begin, &sql, &params)
                    .await?
                    .into_iter()
                    .next()
                    .ok_or_else(|| OutboxError::Unavailable("the database: no row".into()))?
            }
            Outcome::Retry { at, error } => {
                let sql = format!(
                    "{LEASE}, changed AS (UPDATE outbox_pending SET attempts = attempts + 1, \
                         next_attempt_at = $5, last_error = $6 \
                         WHERE id = $1 AND route IN (SELECT route FROM lease) RETURNING id) \
                     SELECT EXISTS (SELECT 1 FROM lease), false"
                );
                let params: [&(dyn tokio_postgres::types::ToSql + Sync); 6] =
                    [&id, &route_name, &lease, &self.lease_ms, &to_i64(at), &error];
                prepared_one(&client, &sql, &params).await?
            }
            Outcome::Dead { reason } => {
                let sql = format!(
                    "{LEASE}, moved AS (DELETE FROM outbox_pending \
                         WHERE id = $1 AND route IN (SELECT route FROM lease) RETURNING *), \
                     buried AS (INSERT INTO outbox_dead_letters \
                         (id, route, message, attempts, queued_at, dead_at, reason) \
                         SELECT id, route, message, attempts + 1, queued_at, $5, $6 FROM moved \
                         RETURNING id) \
                     SELECT EXISTS (SELECT 1 FROM lease), EXISTS (SELECT 1 FROM buried)"
                );
                let params: [&(dyn tokio_postgres::types::ToSql + Sync); 6] = [
                    &id,
                    &route_name,
                    &lease,
                    &self.lease_ms,
                    &to_i64(self.now()),
                    &reason,
                ];
                prepared_one(&client, &sql, &params).await?
            }
        };
        let (held, removed): (bool, bool) = (row.get(0), row.get(1));
        if removed {
            self.gauges.removed();
        }
        Ok(held)
    }

    /// Gives a lease back; says so on the channel when the route has due work left.
    async fn release(&self, claim: &Claim) -> Result<(), OutboxError> {
        let client = self.pool.get().await.map_err(unavailable)?;
        prepared(&client, "WITH released AS (DELETE FROM route_leases \
                     WHERE route = $1 AND lease = $2 RETURNING route) \
                 SELECT pg_notify($3, route) FROM released \
                 WHERE (SELECT next_attempt_at FROM outbox_pending p \
                        WHERE p.route = released.route ORDER BY id LIMIT 1) <= $4", &[
                    &claim.route().as_str(),
                    &to_i64(claim.lease()),
                    &CHANNEL,
                    &to_i64(self.now()),
                ]).await?;
        Ok(())
    }

    async fn dead_letters(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, OutboxError> {
        let client = self.pool.get().await.map_err(unavailable)?;
        let rows = prepared(&client, "SELECT id, route, message, attempts, queued_at, dead_at, reason \
                 FROM outbox_dead_letters WHERE id > $1 ORDER BY id LIMIT $2", &[
                    &to_i64(after.unwrap_or(0)),
                    &i64::try_from(limit).unwrap_or(i64::MAX),
                ]).await?;
        rows.iter()
            .map(|row| {
                let record = DeadRecord {
                    route: row.get(1),
                    message: serde_json::from_str(row.get(2))?,
                    attempts: u32::try_from(row.get::<_, i32>(3)).unwrap_or(0),
                    queued_at: to_u64(row.get(4)),
                    dead_at: to_u64(row.get(5)),
                    reason: row.get(6),
                };
                record.into_dead_letter(to_u64(row.get(0)))
            })
            .collect()
    }

    async fn pending_by_route(
        &self,
    ) -> Result<std::collections::BTreeMap<RouteName, u64>, OutboxError> {
        let client = self.pool.get().await.map_err(unavailable)?;
        let rows = client
            .query(
                "SELECT route, count(*) FROM outbox_pending GROUP BY route",
                &[],
            )
            .await
            .map_err(unavailable)?;
        Ok(rows
            .iter()
            .filter_map(|row| {
                let route = RouteName::parse(row.get(0)).ok()?;
                Some((route, to_u64(row.get(1))))
            })
            .collect())
    }

    async fn dead_letter_count(&self) -> Result<u64, OutboxError> {
        let client = self.pool.get().await.map_err(unavailable)?;
        let row = client
            .query_one("SELECT count(*) FROM outbox_dead_letters", &[])
            .await
            .map_err(unavailable)?;
        Ok(to_u64(row.get(0)))
    }

    /// Moves dead letters (the `chosen` ids, locked) back to pending, due now; their ids.
    async fn requeue(
        &self,
        txn: &deadpool_postgres::Transaction<'_>,
        ids: &[i64],
    ) -> Result<Vec<u64>, OutboxError> {
        let now = to_i64(self.now());
        let rows = txn
            .query(
                "WITH moved AS (DELETE FROM outbox_dead_letters WHERE id = ANY($1) RETURNING *) \
                 INSERT INTO outbox_pending \
                     (id, route, message, attempts, queued_at, retrying_since, next_attempt_at) \
                 SELECT id, route, message, 0, queued_at, $2, $2 FROM moved RETURNING id",
                &[&ids, &now],
            )
            .await
            .map_err(unavailable)?;
        txn.execute("SELECT pg_notify($1, '')", &[&CHANNEL])
            .await
            .map_err(unavailable)?;
        let mut requeued: Vec<u64> = rows.iter().map(|row| to_u64(row.get(0))).collect();
        requeued.sort_unstable();
        Ok(requeued)
    }

    async fn retry_dead_letter(&self, id: u64) -> Result<(), OutboxError> {
        let mut client = self.pool.get().await.map_err(unavailable)?;
        let txn = client.transaction().await.map_err(unavailable)?;
        let found = txn
            .query_opt(
                "SELECT id FROM outbox_dead_letters WHERE id = $1 FOR UPDATE",
                &[&to_i64(id)],
            )
            .await
            .map_err(unavailable)?;
        if found.is_none() {
            return Err(OutboxError::NoSuchDeadLetter(id));
        }
        if count_pending(&txn, self.max_queue).await? >= self.max_queue {
            return Err(OutboxError::Full {
                limit: self.max_queue,
            });
        }
        let requeued = self.requeue(&txn, &[to_i64(id)]).await?;
        txn.commit().await.map_err(unavailable)?;
        self.gauges.added(
            u64::try_from(requeued.len()).unwrap_or(0),
            self.now(),
        );
        Ok(())
    }

    async fn retry_all_dead_letters(&self) -> Result<RetriedDeadLetters, OutboxError> {
        let mut client = self.pool.get().await.map_err(unavailable)?;
        let txn = client.transaction().await.map_err(unavailable)?;
        let room = self
            .max_queue
            .saturating_sub(count_pending(&txn, self.max_queue).await?);
        let chosen: Vec<i64> = txn
            .query(
                "SELECT id FROM outbox_dead_letters ORDER BY id LIMIT $1 FOR UPDATE",
                &[&to_i64(room.max(1))],
            )
            .await
            .map_err(unavailable)?
            .iter()
            .map(|row| row.get(0))
            .collect();
        if room == 0 && !chosen.is_empty() {
            return Err(OutboxError::Full {
                limit: self.max_queue,
            });
        }
        let ids = self.requeue(&txn, &chosen).await?;
        let left = txn
            .query_one("SELECT count(*) FROM outbox_dead_letters", &[])
            .await
            .map_err(unavailable)?;
        txn.commit().await.map_err(unavailable)?;
        self.gauges
            .added(u64::try_from(ids.len()).unwrap_or(0), self.now());
        Ok(RetriedDeadLetters {
            ids,
            left: to_u64(left.get(0)),
        })
    }

    async fn purge_dead_letter(&self, id: u64) -> Result<(), OutboxError> {
        let client = self.pool.get().await.map_err(unavailable)?;
        let deleted = client
            .execute(
                "DELETE FROM outbox_dead_letters WHERE id = $1",
                &[&to_i64(id)],
            )
            .await
            .map_err(unavailable)?;
        if deleted == 0 {
            return Err(OutboxError::NoSuchDeadLetter(id));
        }
        Ok(())
    }
}

/// A pending row as the dispatcher reads it.
fn pending_record(
    route: &RouteName,
    row: &Row,
    next_attempt_at: u64,
) -> Result<PendingRecord, OutboxError> {
    Ok(PendingRecord {
        route: route.as_str().to_owned(),
        message: serde_json::from_str(row.get(1))?,
        attempts: u32::try_from(row.get::<_, i32>(2)).unwrap_or(0),
        queued_at: to_u64(row.get(3)),
        retrying_since: to_u64(row.get(4)),
        next_attempt_at,
        last_error: row.get(6),
    })
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
