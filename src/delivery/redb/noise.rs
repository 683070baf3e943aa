//! The redb backend's noise control: each route's [`RouteNoise`] as JSON in the outbox file's
//! `noise` table, written in durable transactions of their own (beside the committer's, which
//! never touch it). One process owns the file, so the route's lock is a mutex in process.
//!
//! An admission stores the new state first, then queues the sends with the dedup key; when the
//! queue answers duplicate (or fails) the old state is written back. A crash between the two
//! leaves the webhook unanswered: its sender posts it again and its held notifications may be
//! named twice in the digest, never lost. A digest is queued before the state that held its
//! notifications is stored: a crash between them may queue it again (at least once, as sends).

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::{OutboxError, RedbOutbox};
use crate::delivery::noise::{Admission, Admitted, Digested, Released};
use crate::delivery::outbox::Enqueued;
use crate::delivery::outbox::backend::OutboxBackend;
use crate::noise::{RouteNoise, digest};
use crate::routes::RouteName;

/// Route name → its noise state (JSON).
const NOISE: TableDefinition<&str, &[u8]> = TableDefinition::new("noise");

impl RedbOutbox {
    pub(super) async fn admit_noise(
        &self,
        route: &RouteName,
        admission: Admission<'_>,
    ) -> Result<Admitted, OutboxError> {
        let _route_lock = self.noise_lock.lock().await;
        let old = self.read_noise(route).await?;
        let mut state = old.clone();
        let decision = state.decide(admission.policy, admission.candidates, self.core.now());
        let changed = state != old;
        if changed {
            self.write_noise(route, &state).await?;
        }
        if decision.send.is_empty() && admission.dedup.is_none() {
            return Ok(Admitted::Decided {
                verdicts: decision.verdicts,
                ids: Vec::new(),
            });
        }
        let enqueued = self.enqueue(route, decision.send, admission.dedup).await;
        if !matches!(enqueued, Ok(Enqueued::Queued(_)))
            && changed
            && let Err(error) = self.write_noise(route, &old).await
        {
            tracing::error!(%route, "the noise state of a refused webhook could not be put back: {error}");
        }
        match enqueued? {
            Enqueued::Queued(ids) => Ok(Admitted::Decided {
                verdicts: decision.verdicts,
                ids,
            }),
            Enqueued::Duplicate => Ok(Admitted::Duplicate),
        }
    }

    pub(super) async fn release_noise(
        &self,
        max_message_bytes: usize,
    ) -> Result<Released, OutboxError> {
        let _route_lock = self.noise_lock.lock().await;
        let now = self.core.now();
        let mut released = Released::default();
        for (route, mut state) in self.all_noise().await? {
            if let Some(batch) = state.take_due(now) {
                let message = digest(&route, &batch, max_message_bytes);
                let Enqueued::Queued(ids) = self.enqueue(&route, vec![message], None).await? else {
                    continue;
                };
                self.write_noise(&route, &state).await?;
                released.digests.extend(ids.first().map(|id| Digested {
                    route: route.clone(),
                    count: batch.count,
                    id: *id,
                }));
            }
            released.next_release = match (released.next_release, state.next_release()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        Ok(released)
    }

    async fn read_noise(&self, route: &RouteName) -> Result<RouteNoise, OutboxError> {
        let route = route.as_str().to_owned();
        self.read(move |db| {
            let txn = db.begin_read()?;
            let table = match txn.open_table(NOISE) {
                Ok(table) => table,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(RouteNoise::default()),
                Err(error) => return Err(error.into()),
            };
            match table.get(route.as_str())? {
                Some(value) => Ok(serde_json::from_slice(value.value())?),
                None => Ok(RouteNoise::default()),
            }
        })
        .await
    }

    async fn all_noise(&self) -> Result<Vec<(RouteName, RouteNoise)>, OutboxError> {
        self.read(move |db| {
            let txn = db.begin_read()?;
            let table = match txn.open_table(NOISE) {
                Ok(table) => table,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
                Err(error) => return Err(error.into()),
            };
            let mut states = Vec::new();
            for entry in table.iter()? {
                let (route, value) = entry?;
                match (
                    RouteName::parse(route.value()),
                    serde_json::from_slice::<RouteNoise>(value.value()),
                ) {
                    (Ok(route), Ok(state)) => states.push((route, state)),
                    (_, Err(error)) => {
                        tracing::error!(route = route.value(), "unreadable noise state: {error}");
                    }
                    (Err(error), _) => tracing::error!("unreadable noise state: {error}"),
                }
            }
            Ok(states)
        })
        .await
    }

    /// Stores a route's state durably (an empty one is deleted).
    async fn write_noise(&self, route: &RouteName, state: &RouteNoise) -> Result<(), OutboxError> {
        let route = route.as_str().to_owned();
        let json = (!state.is_empty())
            .then(|| serde_json::to_vec(state))
            .transpose()?;
        self.read(move |db| write(db, &route, json.as_deref())).await
    }
}

fn write(db: &Database, route: &str, json: Option<&[u8]>) -> Result<(), OutboxError> {
    let txn = db.begin_write()?;
    {
        let mut table = txn.open_table(NOISE)?;
        match json {
            Some(json) => {
                table.insert(route, json)?;
            }
            None => {
                table.remove(route)?;
            }
        }
    }
    txn.commit()?;
    Ok(())
}
