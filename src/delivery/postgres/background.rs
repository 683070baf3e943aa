//! The outbox's background tasks on PostgreSQL: the gauges read again every second (expired
//! dedup keys deleted on the way), and this replica's enqueues announced to the other replicas
//! with one `NOTIFY` for as many as commit meanwhile.

use std::sync::Arc;
use std::time::Duration;

use super::{CHANNEL, Shared, to_i64, to_u64, unavailable};

/// How often the gauges are read again and expired dedup keys deleted.
const REFRESH_EVERY: Duration = Duration::from_secs(1);
/// The most expired dedup keys deleted per refresh.
const PRUNE_LIMIT: i64 = 1000;

/// Tells the other replicas, until aborted, that this one queued notifications: one `NOTIFY`
/// for all the enqueues committed while the last one was on its way. Not in the enqueue's own
/// transaction: PostgreSQL serialises the commits of transactions that notify (one lock for the
/// notification queue, held through the commit's flush to disk), which would undo the group
/// commit that concurrent enqueues share. Nothing depends on it arriving: it only wakes idle
/// replicas early, which otherwise look again within [`super::MAX_POLL`] (this replica's dispatcher
/// is woken at once, in process).
pub(super) async fn announce_forever(shared: Arc<Shared>) {
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
pub(super) async fn refresh_forever(shared: Arc<Shared>) {
    loop {
        tokio::time::sleep(REFRESH_EVERY).await;
        shared.refresh().await;
    }
}

impl Shared {
    /// Reads the gauges again and deletes some expired dedup keys.
    pub(super) async fn refresh(&self) {
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
}
