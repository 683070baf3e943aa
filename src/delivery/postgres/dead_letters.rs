//! Dead letters on PostgreSQL: listed, counted, retried (moved back to pending, due now, within
//! the queue limit, with a `NOTIFY`) and purged; and, for the console besides them, the pending
//! notifications counted per route.

use deadpool_postgres::GenericClient;

use super::statements::prepared;
use super::{CHANNEL, Shared, to_i64, to_u64, unavailable};
use crate::delivery::outbox::records::{DeadLetter, DeadRecord, OutboxError, RetriedDeadLetters};
use crate::routes::RouteName;

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

impl Shared {
    pub(super) async fn dead_letters(
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

    pub(super) async fn pending_by_route(
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

    pub(super) async fn dead_letter_count(&self) -> Result<u64, OutboxError> {
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

    pub(super) async fn retry_dead_letter(&self, id: u64) -> Result<(), OutboxError> {
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

    pub(super) async fn retry_all_dead_letters(&self) -> Result<RetriedDeadLetters, OutboxError> {
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

    pub(super) async fn purge_dead_letter(&self, id: u64) -> Result<(), OutboxError> {
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
