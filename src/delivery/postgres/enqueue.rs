//! Enqueues on PostgreSQL: the one statement that takes the dedup key (when there is one) and
//! queues the notifications, sent with its `BEGIN` and `COMMIT` in one round trip, and the queue
//! limit checked before it (a duplicate is answered as one even when the queue is full).

use super::statements::in_own_transaction;
use super::{Shared, to_i64, to_u64, unavailable};
use crate::delivery::outbox::records::{DedupKey, Enqueued, OutboxError};
use crate::pushjet::NewMessage;
use crate::routes::RouteName;

/// An enqueue in one statement: the dedup key, if any, is inserted (or an expired one renewed);
/// when that went through (or there is no key), the notifications get ids in their order and are
/// queued. No row back for a duplicate. (The channel is told afterwards, by [`super::background::announce_forever`].)
pub(super) const ENQUEUE: &str = "WITH fresh AS ( \
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

impl Shared {
    pub(super) async fn enqueue(
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
}
