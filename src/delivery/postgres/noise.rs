//! The PostgreSQL backend's noise control: each route's [`RouteNoise`] as JSON in `noise_routes`
//! (migration 0004), read and written under the row's lock (`SELECT … FOR UPDATE`) in the
//! transaction that also takes the dedup key and queues the notifications sent: replicas decide
//! a route's webhooks one after another, and a digest is queued in the transaction that takes
//! its held notifications, so exactly one replica queues it, once.

use deadpool_postgres::Transaction;

use super::enqueue::ENQUEUE;
use super::{Shared, to_i64, to_u64, unavailable};
use crate::delivery::noise::{Admission, Admitted, Digested, Released};
use crate::delivery::outbox::records::OutboxError;
use crate::noise::{RouteNoise, digest};
use crate::pushjet::NewMessage;
use crate::routes::RouteName;

/// Creates the route's row if it has none.
const CREATE_STATE: &str =
    "INSERT INTO noise_routes (route, state) VALUES ($1, '{}') ON CONFLICT (route) DO NOTHING";
/// Locks and reads the route's row.
const LOCK_STATE: &str = "SELECT state FROM noise_routes WHERE route = $1 FOR UPDATE";
/// Takes a dedup key that is new or expired; no row back for a duplicate.
const TAKE_DEDUP_KEY: &str = "INSERT INTO outbox_dedup (key, expires_at) VALUES ($1, $2) \
     ON CONFLICT (key) DO UPDATE SET expires_at = EXCLUDED.expires_at \
     WHERE outbox_dedup.expires_at <= $3 RETURNING key";
/// Stores a route's state and when its next held notifications fall due.
const STORE_STATE: &str =
    "UPDATE noise_routes SET state = $2, next_release = $3 WHERE route = $1";
/// The most routes one release pass takes digests of.
const RELEASE_BATCH: i64 = 100;

impl Shared {
    pub(super) async fn admit_noise(
        &self,
        route: &RouteName,
        admission: Admission<'_>,
    ) -> Result<Admitted, OutboxError> {
        let now = self.now();
        let mut client = self.pool.get().await.map_err(unavailable)?;
        let txn = client.transaction().await.map_err(unavailable)?;
        let mut state = lock_state(&txn, route).await?;
        if let Some(dedup) = &admission.dedup {
            let key = format!("{route}/{}", dedup.key);
            let window = dedup.window_ms(self.dedup_window_ms, self.alert_dedup_window_ms);
            let expires = to_i64(now.saturating_add(window));
            let fresh = txn
                .query_opt(TAKE_DEDUP_KEY, &[&key, &expires, &to_i64(now)])
                .await
                .map_err(unavailable)?;
            if fresh.is_none() {
                return Ok(Admitted::Duplicate);
            }
        }
        let decision = state.decide(admission.policy, admission.candidates, now);
        let count = u64::try_from(decision.send.len()).unwrap_or(u64::MAX);
        if count > 0 && self.gauges.pending().saturating_add(count) > self.max_queue {
            return Err(OutboxError::Full {
                limit: self.max_queue,
            });
        }
        let ids = queue(&txn, route, &decision.send, now).await?;
        store_state(&txn, route, &state).await?;
        txn.commit().await.map_err(unavailable)?;
        self.queued(count, now);
        Ok(Admitted::Decided {
            verdicts: decision.verdicts,
            ids,
        })
    }

    pub(super) async fn release_noise(
        &self,
        max_message_bytes: usize,
    ) -> Result<Released, OutboxError> {
        let now = self.now();
        let mut client = self.pool.get().await.map_err(unavailable)?;
        let due: Vec<String> = client
            .query(
                "SELECT route FROM noise_routes WHERE next_release <= $1 \
                 ORDER BY next_release LIMIT $2",
                &[&to_i64(now), &RELEASE_BATCH],
            )
            .await
            .map_err(unavailable)?
            .iter()
            .map(|row| row.get(0))
            .collect();
        let mut released = Released::default();
        for route in due {
            let Ok(route) = RouteName::parse(&route) else {
                tracing::error!(route = %route, "noise state of an invalid route name ignored");
                continue;
            };
            let txn = client.transaction().await.map_err(unavailable)?;
            let mut state = lock_state(&txn, &route).await?;
            let Some(batch) = state.take_due(now) else {
                // Another replica took it first.
                continue;
            };
            let message = digest(&route, &batch, max_message_bytes);
            let ids = queue(&txn, &route, &[message], now).await?;
            store_state(&txn, &route, &state).await?;
            txn.commit().await.map_err(unavailable)?;
            self.queued(1, now);
            released.digests.extend(ids.first().map(|id| Digested {
                route: route.clone(),
                count: batch.count,
                id: *id,
            }));
        }
        let next: Option<i64> = client
            .query_one("SELECT min(next_release) FROM noise_routes", &[])
            .await
            .map_err(unavailable)?
            .get(0);
        released.next_release = next.map(to_u64);
        Ok(released)
    }

    /// Counts notifications committed to the queue and wakes the dispatchers.
    fn queued(&self, count: u64, now: u64) {
        if count > 0 {
            self.gauges.added(count, now);
            self.wake.notify_one();
            self.announce.notify_one();
        }
    }
}

async fn lock_state(txn: &Transaction<'_>, route: &RouteName) -> Result<RouteNoise, OutboxError> {
    txn.execute(CREATE_STATE, &[&route.as_str()])
        .await
        .map_err(unavailable)?;
    let row = txn
        .query_one(LOCK_STATE, &[&route.as_str()])
        .await
        .map_err(unavailable)?;
    Ok(serde_json::from_str(row.get::<_, &str>(0))?)
}

async fn store_state(
    txn: &Transaction<'_>,
    route: &RouteName,
    state: &RouteNoise,
) -> Result<(), OutboxError> {
    let json = serde_json::to_string(state)?;
    let next = state.next_release().map(to_i64);
    txn.execute(STORE_STATE, &[&route.as_str(), &json, &next])
        .await
        .map_err(unavailable)?;
    Ok(())
}

/// Queues `messages` for `route` in the transaction; their ids, in order.
async fn queue(
    txn: &Transaction<'_>,
    route: &RouteName,
    messages: &[NewMessage],
    now: u64,
) -> Result<Vec<u64>, OutboxError> {
    if messages.is_empty() {
        return Ok(Vec::new());
    }
    let bodies = messages
        .iter()
        .map(serde_json::to_string)
        .collect::<Result<Vec<_>, _>>()?;
    let no_key: Option<String> = None;
    let rows = txn
        .query(
            ENQUEUE,
            &[&no_key, &0_i64, &to_i64(now), &route.as_str(), &bodies],
        )
        .await
        .map_err(unavailable)?;
    Ok(rows.iter().map(|row| to_u64(row.get(0))).collect())
}
