//! The stream feed: how every replica hears every replica's changes. A change that announces
//! something writes a row to `pushjet_stream_events` (its kind, the announcement as JSON, when)
//! and `NOTIFY`s [`CHANNEL`] with the row's id, in its own transaction and under the feed's
//! advisory lock, so rows commit in id order.
//!
//! Every replica with a listener (its streams' hub):
//!
//! 1. at start, hands its listener the messages (and the notifications routes delivered) of the
//!    rows still within the streams' cache window, oldest first: a replica that starts serves `since=all` as the others do;
//! 2. then reads the rows after the last one it handed over, oldest first, whenever a
//!    notification arrives, whenever its `LISTEN` connection is made again (notifications sent
//!    while it was away are lost, the rows are not) and every [`POLL_EVERY`] in case; each row
//!    once, its own replica's included (there is no other path).
//!
//! A background task deletes the rows older than the cache window (kept at least
//! [`MIN_KEEP`], for a listener that was away a while).

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Pool, Transaction};
use tokio::sync::Notify;
use tokio::task::AbortHandle;

use super::{now, unavailable};
use crate::database::{self, Database, Listener};
use crate::pushjet::wire::SubscriptionView;
use crate::pushjet_server::events::{RouteDelivered, StoreEvents, StoredMessage};
use crate::pushjet_server::store::StoreError;

/// The channel announcements are notified on.
const CHANNEL: &str = "pushjet_bridge_stream";
/// A row's kind: a stored message.
const MESSAGE: &str = "message";
/// A row's kind: a subscription made or removed.
const SUBSCRIPTION: &str = "subscription";
/// A row's kind: a notification a route delivered.
const ROUTE: &str = "route";
/// The longest the reader waits without a notification before it looks anyway.
const POLL_EVERY: Duration = Duration::from_secs(5);
/// How often old rows are deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(60);
/// How long rows are kept at least, whatever the cache window.
const MIN_KEEP: Duration = Duration::from_secs(10 * 60);
/// The most rows read at once.
const BATCH: i64 = 500;

/// Writes a stored message to the feed (in the send's transaction).
pub(super) async fn announce_message(
    txn: &Transaction<'_>,
    message: &StoredMessage,
) -> Result<(), StoreError> {
    announce(txn, MESSAGE, serde_json::to_string(message)?).await
}

/// Writes a subscription made or removed to the feed (in the change's transaction).
pub(super) async fn announce_subscription(
    txn: &Transaction<'_>,
    subscription: &SubscriptionView,
) -> Result<(), StoreError> {
    announce(txn, SUBSCRIPTION, serde_json::to_string(subscription)?).await
}

/// Writes a notification a route delivered to the feed (in its own transaction, under the lock).
pub(super) async fn announce_route(
    txn: &Transaction<'_>,
    delivered: &RouteDelivered,
) -> Result<(), StoreError> {
    announce(txn, ROUTE, serde_json::to_string(delivered)?).await
}

async fn announce(txn: &Transaction<'_>, kind: &str, payload: String) -> Result<(), StoreError> {
    txn.query_one(
        "WITH event AS (INSERT INTO pushjet_stream_events (kind, payload, at) \
             VALUES ($1, $2::text::jsonb, $3) RETURNING id) \
         SELECT pg_notify($4, id::text) FROM event",
        &[&kind, &payload, &now(), &CHANNEL],
    )
    .await
    .map_err(unavailable)?;
    Ok(())
}

/// Fills `events` with the messages still within `window`, then starts reading the feed into
/// it; the tasks to abort when the store is dropped.
pub(super) async fn start(
    database: Database,
    events: Arc<dyn StoreEvents>,
    window: Duration,
    budget: usize,
) -> Result<Vec<AbortHandle>, StoreError> {
    let reader = Arc::new(Reader {
        pool: database.pool.clone(),
        events,
        wake: Notify::new(),
    });
    let last = reader.fill(window, budget).await?;
    let listener: Arc<dyn Listener> = reader.clone();
    Ok(vec![
        tokio::spawn(reader.read_forever(last)).abort_handle(),
        tokio::spawn(database::listen(
            database,
            CHANNEL,
            "live stream announcements",
            listener,
        ))
        .abort_handle(),
    ])
}

/// Deletes the rows older than `window` (and [`MIN_KEEP`]) every [`PRUNE_EVERY`], until
/// aborted.
pub(super) async fn prune_forever(pool: Pool, window: Duration) {
    let keep = i64::try_from(window.max(MIN_KEEP).as_secs()).unwrap_or(i64::MAX);
    loop {
        tokio::time::sleep(PRUNE_EVERY).await;
        let pruned = async {
            let client = pool.get().await.map_err(unavailable)?;
            client
                .execute(
                    "DELETE FROM pushjet_stream_events WHERE at < $1",
                    &[&now().saturating_sub(keep)],
                )
                .await
                .map_err(unavailable)
        };
        if let Err(error) = pruned.await {
            tracing::warn!("cannot delete old live stream announcements: {error}");
        }
    }
}

/// Reads the feed into the listener.
struct Reader {
    pool: Pool,
    events: Arc<dyn StoreEvents>,
    /// Woken by `NOTIFY` and by each new `LISTEN` connection.
    wake: Notify,
}

impl Listener for Reader {
    fn wake(&self) {
        self.wake.notify_one();
    }
}

impl Reader {
    /// Hands one row's announcement to the listener.
    fn hand_over(&self, kind: &str, payload: &str) -> Result<(), serde_json::Error> {
        match kind {
            MESSAGE => {
                serde_json::from_str(payload).map(|message| self.events.message_stored(message))
            }
            SUBSCRIPTION => serde_json::from_str(payload)
                .map(|subscription| self.events.subscription_changed(subscription)),
            ROUTE => serde_json::from_str(payload)
                .map(|delivered| self.events.route_delivered(delivered)),
            _ => Ok(()),
        }
    }

    /// Hands over the messages of the newest rows within `window` whose payloads add up to at
    /// most `budget` bytes (what the in-memory cache holds), oldest first; the newest row's id
    /// (where reading goes on from).
    async fn fill(&self, window: Duration, budget: usize) -> Result<i64, StoreError> {
        let client = self.pool.get().await.map_err(unavailable)?;
        let last: i64 = client
            .query_one(
                "SELECT coalesce(max(id), 0) FROM pushjet_stream_events",
                &[],
            )
            .await
            .map_err(unavailable)?
            .get(0);
        let since = now().saturating_sub(i64::try_from(window.as_secs()).unwrap_or(i64::MAX));
        let budget = i64::try_from(budget).unwrap_or(i64::MAX);
        let rows = client
            .query(
                "SELECT kind, payload FROM (\
                     SELECT id, kind, payload::text AS payload, \
                            sum(octet_length(payload::text)) OVER (ORDER BY id DESC) AS running \
                     FROM pushjet_stream_events \
                     WHERE kind IN ($1, $2) AND id <= $3 AND at >= $4) AS newest \
                 WHERE running <= $5 ORDER BY id",
                &[&MESSAGE, &ROUTE, &last, &since, &budget],
            )
            .await
            .map_err(unavailable)?;
        for row in &rows {
            self.hand_over(row.get(0), row.get(1))?;
        }
        tracing::debug!(
            messages = rows.len(),
            "filled the live stream cache from the database"
        );
        Ok(last)
    }

    /// Reads the rows after `last` whenever woken, until aborted.
    async fn read_forever(self: Arc<Self>, mut last: i64) {
        loop {
            match self.read_after(last).await {
                Ok(newest) => last = newest,
                Err(error) => {
                    tracing::warn!("cannot read the live stream announcements: {error}");
                }
            }
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(POLL_EVERY) => {}
            }
        }
    }

    /// Hands over every row after `last`, oldest first; the last one handed over.
    async fn read_after(&self, mut last: i64) -> Result<i64, StoreError> {
        let client = self.pool.get().await.map_err(unavailable)?;
        loop {
            let rows = client
                .query(
                    "SELECT id, kind, payload::text FROM pushjet_stream_events \
                     WHERE id > $1 ORDER BY id LIMIT $2",
                    &[&last, &BATCH],
                )
                .await
                .map_err(unavailable)?;
            for row in &rows {
                let (kind, payload): (&str, &str) = (row.get(1), row.get(2));
                if let Err(error) = self.hand_over(kind, payload) {
                    tracing::warn!(
                        kind,
                        "skipped an unreadable live stream announcement: {error}"
                    );
                }
                last = row.get(0);
            }
            if i64::try_from(rows.len()).unwrap_or(0) < BATCH {
                return Ok(last);
            }
        }
    }
}
