//! The history in the PostgreSQL database replicas share (`database/migrations/0003_history.sql`,
//! a kept request's compressed body in its own column since `0007_history_request_bodies.sql`):
//! every replica writes its records and its deliveries' attempts there, and lists, reads and
//! streams everybody's. A batch is one transaction committed without waiting for the disk
//! (`synchronous_commit = off`: a database crash may lose the last moment of history, never a
//! notification), which then `NOTIFY`s the replicas' live streams; each reads the changes back in
//! the order of `history_changes`.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use deadpool_postgres::Pool;
use futures_util::future::BoxFuture;
use tokio_postgres::Row;

use super::kept;
use super::record::{
    Attempt, Change, ChangeKind, Delivery, Page, Query, Record, RouteCounts, State, Story, Write,
};
use super::store::{HistoryError, HistoryStore, Pruned, Written};
use crate::database;

/// The channel a batch's commit is announced on.
pub(super) const CHANNEL: &str = "pushjet_bridge_history";
/// The most changes the live stream reads at once.
const CHANGES_BATCH: i64 = 1_000;
/// How far behind the newest change the live stream looks again, for transactions of other
/// replicas that took their change numbers earlier but committed later (less than
/// [`CHANGES_BATCH`], so that every read reaches new changes).
const CHANGES_LOOKBACK: u64 = 200;
/// How many change numbers the live stream remembers having announced.
const CHANGES_REMEMBERED: usize = 4_096;
/// Marks a creation's number among the change numbers remembered.
const CREATION: u64 = 1 << 63;
/// The most records one pruning statement deletes.
const PRUNE_BATCH: i64 = 5_000;

const INSERT_RECORDS: &str = "WITH rows AS ( \
        SELECT t.*, nextval('history_changes') AS seq FROM unnest( \
            $1::BIGINT[], $2::BIGINT[], $3::TEXT[], $4::TEXT[], $5::TEXT[], $6::TEXT[], \
            $7::TEXT[], $8::TEXT[], $9::TEXT[], $10::BYTEA[], $11::BIGINT[]) \
        AS t(id, at, route, source, event, verdict, search, record, request, request_body, bytes)) \
    INSERT INTO history_records \
        (id, at, route, source, event, verdict, search, record, request, request_body, bytes, \
         created_seq, change_seq) \
    SELECT id, at, route, source, event, verdict, search, record, request, request_body, bytes, \
        seq, seq FROM rows \
    ON CONFLICT (id) DO NOTHING";
const INSERT_QUEUED: &str = "INSERT INTO history_deliveries (id, record, state, changed_at) \
    SELECT id, record, 'pending', at FROM unnest($1::BIGINT[], $2::BIGINT[], $3::BIGINT[]) \
        AS t(id, record, at) \
    ON CONFLICT (id) DO UPDATE SET record = EXCLUDED.record";
const UPSERT_DELIVERY: &str = "WITH upsert AS ( \
        INSERT INTO history_deliveries (id, state, until, reason, changed_at, attempts) \
        VALUES ($1, $2, $3, $4, $5, $6::TEXT::JSONB) \
        ON CONFLICT (id) DO UPDATE SET state = EXCLUDED.state, until = EXCLUDED.until, \
            reason = EXCLUDED.reason, changed_at = EXCLUDED.changed_at, \
            attempts = history_deliveries.attempts || EXCLUDED.attempts \
        RETURNING record) \
    UPDATE history_records SET change_seq = nextval('history_changes') \
    WHERE id = (SELECT record FROM upsert)";
const LIST: &str = "SELECT record, state FROM history_summaries \
    WHERE ($1::TEXT IS NULL OR route = $1) AND ($2::TEXT IS NULL OR source = $2) \
      AND ($3::TEXT IS NULL OR event = $3) AND ($4::TEXT IS NULL OR state = $4) \
      AND ($5::BIGINT IS NULL OR at >= $5) AND ($6::BIGINT IS NULL OR at < $6) \
      AND ($7::TEXT IS NULL OR strpos(search, $7) > 0) AND ($8::BIGINT IS NULL OR id < $8) \
    ORDER BY id DESC LIMIT $9";

/// The history kept in PostgreSQL.
#[derive(Debug, Clone)]
pub(super) struct PostgresHistory {
    pool: Pool,
    /// The change numbers the live stream announced lately (see [`CHANGES_LOOKBACK`]).
    seen: Arc<Mutex<(HashSet<u64>, VecDeque<u64>)>>,
    /// The newest change when the live stream started: it announces only later ones.
    start: Arc<AtomicU64>,
}

fn failed(error: impl std::error::Error + 'static) -> HistoryError {
    HistoryError::Unavailable(database::reason(&error))
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

impl PostgresHistory {
    pub(super) fn new(pool: Pool) -> Self {
        Self {
            pool,
            seen: Arc::default(),
            start: Arc::default(),
        }
    }

    /// The newest change number: where the live stream starts.
    pub(super) async fn start_changes(&self) -> Result<u64, HistoryError> {
        let client = self.pool.get().await.map_err(failed)?;
        let row = client
            .query_one(
                "SELECT coalesce(max(change_seq), 0)::BIGINT FROM history_records",
                &[],
            )
            .await
            .map_err(failed)?;
        let newest = to_u64(row.get::<_, i64>(0));
        self.start.store(newest, Ordering::Relaxed);
        Ok(newest)
    }

    async fn write_batch(&self, batch: Vec<Write>) -> Result<Written, HistoryError> {
        let mut client = self.pool.get().await.map_err(failed)?;
        let txn = client.transaction().await.map_err(failed)?;
        txn.batch_execute("SET LOCAL synchronous_commit = off")
            .await
            .map_err(failed)?;
        let mut written = Written::default();
        // Consecutive records go in one statement; deliveries one by one, in order.
        let mut records: Vec<Record> = Vec::new();
        for write in batch {
            match write {
                Write::Record(record) => records.push(*record),
                write @ Write::Delivery { .. } => {
                    if !records.is_empty() {
                        written.bytes += insert_records(&txn, std::mem::take(&mut records)).await?;
                    }
                    upsert_delivery(&txn, &write).await?;
                }
            }
        }
        if !records.is_empty() {
            written.records += records.len() as u64;
            written.bytes += insert_records(&txn, records).await?;
        }
        txn.batch_execute(&format!("NOTIFY {CHANNEL}"))
            .await
            .map_err(failed)?;
        txn.commit().await.map_err(failed)?;
        Ok(written)
    }
}

/// Inserts records and their queued notifications' deliveries; the bytes written.
async fn insert_records(
    txn: &deadpool_postgres::Transaction<'_>,
    records: Vec<Record>,
) -> Result<u64, HistoryError> {
    let mut columns = RecordColumns::default();
    let (mut queued, mut owners, mut ats) = (Vec::new(), Vec::new(), Vec::new());
    for mut record in records {
        let (request, request_body) = match record.request.take() {
            Some(request) => {
                let (head, body) = kept::split(&request)?;
                (Some(head), Some(body))
            }
            None => (None, None),
        };
        let json = serde_json::to_string(&record)?;
        let bytes = (json.len()
            + request.as_ref().map_or(0, String::len)
            + request_body.as_ref().map_or(0, Vec::len)) as i64;
        for id in record.queued_ids() {
            queued.push(to_i64(id));
            owners.push(to_i64(record.id));
            ats.push(to_i64(record.at));
        }
        columns.ids.push(to_i64(record.id));
        columns.ats.push(to_i64(record.at));
        columns.search.push(record.search_text());
        columns.verdicts.push(record.verdict.as_str().to_owned());
        columns.routes.push(record.route);
        columns.sources.push(record.source);
        columns.events.push(record.event);
        columns.records.push(json);
        columns.requests.push(request);
        columns.request_bodies.push(request_body);
        columns.bytes.push(bytes);
    }
    let total: i64 = columns.bytes.iter().sum();
    txn.execute(
        INSERT_RECORDS,
        &[
            &columns.ids,
            &columns.ats,
            &columns.routes,
            &columns.sources,
            &columns.events,
            &columns.verdicts,
            &columns.search,
            &columns.records,
            &columns.requests,
            &columns.request_bodies,
            &columns.bytes,
        ],
    )
    .await
    .map_err(failed)?;
    if !queued.is_empty() {
        txn.execute(INSERT_QUEUED, &[&queued, &owners, &ats])
            .await
            .map_err(failed)?;
    }
    Ok(to_u64(total))
}

#[derive(Default)]
struct RecordColumns {
    ids: Vec<i64>,
    ats: Vec<i64>,
    routes: Vec<String>,
    sources: Vec<String>,
    events: Vec<String>,
    verdicts: Vec<String>,
    search: Vec<String>,
    records: Vec<String>,
    requests: Vec<Option<String>>,
    request_bodies: Vec<Option<Vec<u8>>>,
    bytes: Vec<i64>,
}

async fn upsert_delivery(
    txn: &deadpool_postgres::Transaction<'_>,
    write: &Write,
) -> Result<(), HistoryError> {
    let Write::Delivery {
        id,
        at,
        state,
        until,
        reason,
        attempt,
    } = write
    else {
        return Ok(());
    };
    let attempts = serde_json::to_string(&attempt.iter().collect::<Vec<_>>())?;
    txn.execute(
        UPSERT_DELIVERY,
        &[
            &to_i64(*id),
            &state.as_str(),
            &until.map(to_i64),
            reason,
            &to_i64(*at),
            &attempts,
        ],
    )
    .await
    .map_err(failed)?;
    Ok(())
}

fn parse_state(raw: &str) -> Result<State, HistoryError> {
    serde_json::from_value(serde_json::Value::String(raw.to_owned())).map_err(HistoryError::from)
}

fn delivery_from(row: &Row) -> Result<(u64, Delivery), HistoryError> {
    let attempts: String = row.get("attempts");
    let attempts: Vec<Attempt> = serde_json::from_str(&attempts)?;
    Ok((
        to_u64(row.get("id")),
        Delivery {
            state: parse_state(row.get("state"))?,
            until: row.get::<_, Option<i64>>("until").map(to_u64),
            reason: row.get("reason"),
            changed_at: to_u64(row.get("changed_at")),
            attempts,
        },
    ))
}

fn summary_from(row: &Row) -> Result<super::record::Summary, HistoryError> {
    let record: Record = serde_json::from_str(row.get("record"))?;
    Ok(record.summary(row.get("state")))
}

impl HistoryStore for PostgresHistory {
    fn write(
        &self,
        batch: Vec<Write>,
        _announce: bool,
    ) -> BoxFuture<'_, Result<Written, HistoryError>> {
        // The change feed reads the changes back, whoever wrote them.
        Box::pin(self.write_batch(batch))
    }

    fn list(&self, query: Query) -> BoxFuture<'_, Result<Page, HistoryError>> {
        Box::pin(async move {
            let client = self.pool.get().await.map_err(failed)?;
            let q = query.q.as_ref().map(|q| q.to_lowercase());
            let rows = client
                .query(
                    LIST,
                    &[
                        &query.route,
                        &query.source,
                        &query.event,
                        &query.state,
                        &query.since.map(to_i64),
                        &query.until.map(to_i64),
                        &q,
                        &query.cursor.map(to_i64),
                        &to_i64(query.limit as u64),
                    ],
                )
                .await
                .map_err(failed)?;
            let records = rows
                .iter()
                .map(summary_from)
                .collect::<Result<Vec<_>, _>>()?;
            let next_cursor = (records.len() == query.limit)
                .then(|| records.last().map(|summary| summary.id))
                .flatten();
            Ok(Page {
                records,
                next_cursor,
            })
        })
    }

    fn story(&self, id: u64) -> BoxFuture<'_, Result<Option<Story>, HistoryError>> {
        Box::pin(async move {
            let client = self.pool.get().await.map_err(failed)?;
            let Some(row) = client
                .query_opt(
                    "SELECT record, request, request_body FROM history_records WHERE id = $1",
                    &[&to_i64(id)],
                )
                .await
                .map_err(failed)?
            else {
                return Ok(None);
            };
            let mut record: Record = serde_json::from_str(row.get("record"))?;
            if let Some(request) = row.get::<_, Option<&str>>("request") {
                record.request = Some(kept::join(
                    request,
                    row.get::<_, Option<&[u8]>>("request_body"),
                )?);
            }
            let rows = client
                .query(
                    "SELECT id, state, until, reason, changed_at, attempts::TEXT AS attempts \
                     FROM history_deliveries WHERE record = $1",
                    &[&to_i64(id)],
                )
                .await
                .map_err(failed)?;
            let mut deliveries = rows
                .iter()
                .map(delivery_from)
                .collect::<Result<std::collections::HashMap<_, _>, _>>()?;
            for rendered in &mut record.notifications {
                if let Some(queued) = rendered.id {
                    rendered.delivery = deliveries.remove(&queued);
                }
            }
            Ok(Some(record.into_story()))
        })
    }

    fn counts(&self, since: u64) -> BoxFuture<'_, Result<Vec<RouteCounts>, HistoryError>> {
        Box::pin(async move {
            let client = self.pool.get().await.map_err(failed)?;
            let rows = client
                .query(
                    "SELECT route, state, count(*) AS count FROM history_summaries \
                     WHERE at >= $1 GROUP BY route, state ORDER BY route, state",
                    &[&to_i64(since)],
                )
                .await
                .map_err(failed)?;
            Ok(rows
                .iter()
                .map(|row| RouteCounts {
                    route: row.get("route"),
                    state: row.get("state"),
                    count: to_u64(row.get("count")),
                })
                .collect())
        })
    }

    fn prune(&self, before: u64, max_bytes: u64) -> BoxFuture<'_, Result<Pruned, HistoryError>> {
        Box::pin(async move {
            let client = self.pool.get().await.map_err(failed)?;
            let mut records = 0;
            loop {
                let deleted = client
                    .query_one(
                        "WITH doomed AS (DELETE FROM history_records WHERE id IN ( \
                             SELECT id FROM history_records WHERE at < $1 ORDER BY id LIMIT $2) \
                             RETURNING id), \
                         deliveries AS (DELETE FROM history_deliveries \
                             WHERE record IN (SELECT id FROM doomed)) \
                         SELECT count(*) FROM doomed",
                        &[&to_i64(before), &PRUNE_BATCH],
                    )
                    .await
                    .map_err(failed)?
                    .get::<_, i64>(0);
                records += to_u64(deleted);
                if deleted < PRUNE_BATCH {
                    break;
                }
            }
            // Deliveries whose record never came (a crash between the two writes).
            client
                .execute(
                    "DELETE FROM history_deliveries WHERE record IS NULL AND changed_at < $1",
                    &[&to_i64(before)],
                )
                .await
                .map_err(failed)?;
            let over = client
                .query(
                    "WITH running AS (SELECT id, (sum(bytes) OVER (ORDER BY id DESC))::BIGINT AS total \
                         FROM history_records), \
                     doomed AS (DELETE FROM history_records WHERE id IN \
                         (SELECT id FROM running WHERE total > $1) RETURNING id), \
                     deliveries AS (DELETE FROM history_deliveries \
                         WHERE record IN (SELECT id FROM doomed)) \
                     SELECT count(*) FROM doomed",
                    &[&to_i64(max_bytes)],
                )
                .await
                .map_err(failed)?;
            records += over.first().map_or(0, |row| to_u64(row.get::<_, i64>(0)));
            let bytes = client
                .query_one(
                    "SELECT coalesce(sum(bytes), 0)::BIGINT FROM history_records",
                    &[],
                )
                .await
                .map_err(failed)?
                .get::<_, i64>(0);
            Ok(Pruned {
                records,
                bytes: to_u64(bytes),
            })
        })
    }

    fn changes_since(
        &self,
        cursor: u64,
    ) -> BoxFuture<'_, Result<(Vec<Change>, u64), HistoryError>> {
        Box::pin(async move {
            let client = self.pool.get().await.map_err(failed)?;
            let rows = client
                .query(
                    "SELECT record, state, created_seq, change_seq FROM history_summaries \
                     WHERE change_seq > $1 ORDER BY change_seq LIMIT $2",
                    &[
                        &to_i64(cursor.saturating_sub(CHANGES_LOOKBACK)),
                        &CHANGES_BATCH,
                    ],
                )
                .await
                .map_err(failed)?;
            let mut changes = Vec::new();
            let mut newest = cursor;
            let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
            let (set, order) = &mut *seen;
            for row in &rows {
                let change_seq = to_u64(row.get("change_seq"));
                newest = newest.max(change_seq);
                if !set.insert(change_seq) {
                    continue;
                }
                order.push_back(change_seq);
                while order.len() > CHANGES_REMEMBERED
                    && let Some(oldest) = order.pop_front()
                {
                    set.remove(&oldest);
                }
                if change_seq <= self.start.load(Ordering::Relaxed) {
                    continue;
                }
                // A record is new to this stream the first time its creation is seen (its
                // creation and a state change may come as one change).
                let created = to_u64(row.get("created_seq")) | CREATION;
                let kind = if set.insert(created) {
                    order.push_back(created);
                    ChangeKind::Record
                } else {
                    ChangeKind::State
                };
                changes.push(Change {
                    kind,
                    record: summary_from(row)?,
                });
            }
            Ok((changes, newest))
        })
    }
}
