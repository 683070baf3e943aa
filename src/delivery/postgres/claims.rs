//! Claims on PostgreSQL: the due routes nobody holds leased (a conditional upsert into
//! `route_leases`, in name order), a claimed route's next notifications read under its lease
//! (renewing it), and the lease given back.

use tokio_postgres::Row;

use super::statements::prepared;
use super::{CHANNEL, Shared, to_i64, to_u64, unavailable};
use crate::delivery::outbox::backend::{Claim, Due};
use crate::delivery::outbox::records::{OutboxError, PendingRecord};
use crate::routes::RouteName;

impl Shared {
    /// Claims up to `room` routes whose head is due and not leased, oldest head first.
    pub(super) async fn claim_due(&self, room: usize) -> Result<Due, OutboxError> {
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
    pub(super) async fn next_batch(
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

    /// Gives a lease back; says so on the channel when the route has due work left.
    pub(super) async fn release(&self, claim: &Claim) -> Result<(), OutboxError> {
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
