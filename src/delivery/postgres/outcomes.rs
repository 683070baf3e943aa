//! Outcomes on PostgreSQL: a notification sent (its row deleted, committed without waiting for
//! the disk), to be retried (its attempts, next attempt and last error updated) or dead (moved
//! to `outbox_dead_letters`), each recorded only under the route's lease, which it renews.

use super::statements::{in_own_transaction, prepared_one};
use super::{Shared, to_i64, unavailable};
use crate::delivery::outbox::backend::Outcome;
use crate::delivery::outbox::records::OutboxError;
use crate::routes::RouteName;

impl Shared {
    /// Records an outcome under the lease, renewing it; false (and nothing changed) when the
    /// lease was lost.
    pub(super) async fn record(
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
}
