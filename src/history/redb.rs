//! The history in its own redb file in the data directory (`history.redb`), beside the outbox,
//! for one process. Tables: `records` (id → the record without its request, JSON), `requests`
//! (id → the kept request's head as JSON and where its body is; requests stored before whole as
//! JSON still read), `request_bodies` (a key per batch → the batch's kept bodies, compressed,
//! see `history/kept.rs`), `deliveries` (outbox id → the record's id and the delivery,
//! JSON). Writes commit without a sync of their own (a durable commit at most every second): a
//! crash may lose the last moment of history, never a notification (the outbox is another
//! file). The bytes in use are kept up to date in memory and written with every transaction, so an
//! open reads them rather than every record (a file from before that is counted once).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use redb::{Database, Durability, ReadableDatabase, ReadableTable, Table, TableDefinition};
use serde::{Deserialize, Serialize};

use super::id_floor;
use super::kept::{Chunk, Stored, body_of, chunk_records};
use super::record::{
    Change, ChangeKind, Delivery, Page, Query, Record, RouteCounts, State, Story, Write,
};
use super::store::{HistoryError, HistoryStore, Pruned, Written};

/// The history's file inside the data directory.
pub const HISTORY_FILE_NAME: &str = "history.redb";

const RECORDS: TableDefinition<u64, &[u8]> = TableDefinition::new("records");
const REQUESTS: TableDefinition<u64, &[u8]> = TableDefinition::new("requests");
const DELIVERIES: TableDefinition<u64, &[u8]> = TableDefinition::new("deliveries");
/// What the file says of itself: the bytes in use (under [`BYTES`]) as of each transaction, so
/// that an open need not read every record to count them.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const BYTES: &str = "bytes";
const BODIES: TableDefinition<u64, &[u8]> = TableDefinition::new("request_bodies");

/// The most records a list reads before it answers with what it found and a cursor.
const SCAN_LIMIT: usize = 20_000;
/// The most records one pruning transaction deletes.
const PRUNE_BATCH: usize = 2_000;
/// How often a write is made durable.
const SYNC_EVERY: Duration = Duration::from_secs(1);
/// Page cache for the history's file: it is mostly written (new records, pruning at its old
/// end); pages read for a page of the console come back from the operating system's cache.
const CACHE_BYTES: usize = 4 * 1024 * 1024;

/// A delivery as stored: whose record it belongs to (unknown when the attempt was written
/// before its record).
#[derive(Debug, Serialize, Deserialize)]
struct StoredDelivery {
    record: Option<u64>,
    delivery: Delivery,
}

macro_rules! unavailable_from {
    ($($source:ty),+) => {$(
        impl From<$source> for HistoryError {
            fn from(error: $source) -> Self {
                Self::Unavailable(error.to_string())
            }
        }
    )+};
}

unavailable_from!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);

/// The history kept in `history.redb`.
#[derive(Debug, Clone)]
pub(super) struct RedbHistory {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    db: Database,
    bytes: AtomicU64,
    /// The key of the next chunk of kept bodies.
    next_chunk: AtomicU64,
    last_sync: Mutex<Instant>,
    /// Held through a pruning, whose accounting follows its commit.
    pruning: Mutex<()>,
}

impl RedbHistory {
    /// Opens (or creates) `history.redb` in `data_dir` and counts the bytes it holds. Blocking.
    pub(super) fn open(data_dir: &Path) -> Result<Self, HistoryError> {
        std::fs::create_dir_all(data_dir).map_err(|error| {
            HistoryError::Unavailable(format!("cannot create {}: {error}", data_dir.display()))
        })?;
        let path = data_dir.join(HISTORY_FILE_NAME);
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(&path)
            .map_err(|error| {
                HistoryError::Unavailable(format!("cannot open {}: {error}", path.display()))
            })?;
        let txn = db.begin_write()?;
        let bytes;
        let next_chunk;
        {
            let mut meta = txn.open_table(META)?;
            let kept = meta.get(BYTES)?.map(|value| value.value());
            bytes = match kept {
                Some(bytes) => bytes,
                // A file from before the count was kept: counted once, then kept.
                None => {
                    let mut counted = 0;
                    for table in [RECORDS, REQUESTS, DELIVERIES, BODIES] {
                        let table = txn.open_table(table)?;
                        for entry in table.iter()? {
                            let (_, value) = entry?;
                            counted += 8 + value.value().len() as u64;
                        }
                    }
                    meta.insert(BYTES, counted)?;
                    counted
                }
            };
            let bodies = txn.open_table(BODIES)?;
            next_chunk = bodies.last()?.map_or(0, |(key, _)| key.value() + 1);
        }
        txn.commit()?;
        Ok(Self {
            inner: Arc::new(Inner {
                db,
                bytes: AtomicU64::new(bytes),
                next_chunk: AtomicU64::new(next_chunk),
                last_sync: Mutex::new(Instant::now()),
                pruning: Mutex::new(()),
            }),
        })
    }

    /// Runs `work` on the blocking pool.
    fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Inner) -> Result<T, HistoryError> + Send + 'static,
    ) -> BoxFuture<'static, Result<T, HistoryError>> {
        let inner = self.inner.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || work(&inner))
                .await
                .map_err(|error| HistoryError::Unavailable(error.to_string()))?
        })
    }
}

impl HistoryStore for RedbHistory {
    fn write(
        &self,
        batch: Vec<Write>,
        announce: bool,
    ) -> BoxFuture<'_, Result<Written, HistoryError>> {
        self.blocking(move |inner| inner.write(batch, announce))
    }

    fn list(&self, query: Query) -> BoxFuture<'_, Result<Page, HistoryError>> {
        self.blocking(move |inner| inner.list(&query))
    }

    fn story(&self, id: u64) -> BoxFuture<'_, Result<Option<Story>, HistoryError>> {
        self.blocking(move |inner| inner.story(id))
    }

    fn counts(&self, since: u64) -> BoxFuture<'_, Result<Vec<RouteCounts>, HistoryError>> {
        self.blocking(move |inner| inner.counts(since))
    }

    fn prune(&self, before: u64, max_bytes: u64) -> BoxFuture<'_, Result<Pruned, HistoryError>> {
        self.blocking(move |inner| inner.prune(before, max_bytes))
    }
}

fn read_record(bytes: &[u8]) -> Result<Record, HistoryError> {
    Ok(serde_json::from_slice(bytes)?)
}

fn get_delivery(
    table: &impl ReadableTable<u64, &'static [u8]>,
    id: u64,
) -> Result<Option<StoredDelivery>, HistoryError> {
    table
        .get(id)?
        .map(|value| serde_json::from_slice(value.value()).map_err(HistoryError::from))
        .transpose()
}

/// The states of a record's queued notifications.
fn states(
    deliveries: &impl ReadableTable<u64, &'static [u8]>,
    record: &Record,
) -> Result<Vec<State>, HistoryError> {
    let mut states = Vec::new();
    for id in record.queued_ids() {
        if let Some(stored) = get_delivery(deliveries, id)? {
            states.push(stored.delivery.state);
        }
    }
    states.extend(
        record
            .notifications
            .iter()
            .filter(|rendered| rendered.id.is_none())
            .filter_map(|rendered| rendered.delivery.as_ref().map(|d| d.state)),
    );
    Ok(states)
}

impl Inner {
    /// A chunk for kept bodies, under a key of its own.
    fn new_chunk(&self) -> Chunk {
        Chunk::new(self.next_chunk.fetch_add(1, Ordering::Relaxed))
    }

    /// Writes into `txn` the bytes in use once it is committed (the count in memory, `added`
    /// and `removed`), for the next open.
    fn keep_count(
        &self,
        txn: &redb::WriteTransaction,
        added: u64,
        removed: u64,
    ) -> Result<(), HistoryError> {
        let after = self
            .bytes
            .load(Ordering::Relaxed)
            .saturating_add(added)
            .saturating_sub(removed);
        txn.open_table(META)?.insert(BYTES, after)?;
        Ok(())
    }

    fn add_bytes(&self, added: u64, removed: u64) {
        if added >= removed {
            self.bytes.fetch_add(added - removed, Ordering::Relaxed);
        } else {
            let _ = self
                .bytes
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bytes| {
                    Some(bytes.saturating_sub(removed - added))
                });
        }
    }

    fn write(&self, batch: Vec<Write>, announce: bool) -> Result<Written, HistoryError> {
        let mut txn = self.db.begin_write()?;
        let durable = {
            let mut last = self
                .last_sync
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if last.elapsed() >= SYNC_EVERY {
                *last = Instant::now();
                true
            } else {
                false
            }
        };
        txn.set_durability(if durable {
            Durability::Immediate
        } else {
            Durability::None
        })?;
        let mut written = Written::default();
        let (mut added, mut removed) = (0u64, 0u64);
        {
            let mut records = txn.open_table(RECORDS)?;
            let mut requests = txn.open_table(REQUESTS)?;
            let mut deliveries = txn.open_table(DELIVERIES)?;
            let mut bodies = txn.open_table(BODIES)?;
            let mut chunk = self.new_chunk();
            for write in batch {
                match write {
                    Write::Record(mut record) => {
                        let request = record.request.take();
                        let bytes = serde_json::to_vec(&record)?;
                        added += 8 + bytes.len() as u64;
                        if let Some(old) = records.insert(record.id, bytes.as_slice())? {
                            removed += 8 + old.value().len() as u64;
                        }
                        if let Some(request) = request {
                            if !chunk.fits(&request) {
                                let full = std::mem::replace(&mut chunk, self.new_chunk());
                                added += store_chunk(&mut bodies, full)?;
                            }
                            let bytes = chunk.add(record.id, &request)?;
                            added += 8 + bytes.len() as u64;
                            requests.insert(record.id, bytes.as_slice())?;
                        }
                        for id in record.queued_ids() {
                            let stored = match get_delivery(&deliveries, id)? {
                                Some(mut stored) => {
                                    stored.record = Some(record.id);
                                    stored
                                }
                                None => StoredDelivery {
                                    record: Some(record.id),
                                    delivery: Delivery::pending(record.at),
                                },
                            };
                            let (new, old) = put_delivery(&mut deliveries, id, &stored)?;
                            added += new;
                            removed += old;
                        }
                        written.records += 1;
                        if announce {
                            let state = record.state(states(&deliveries, &record)?);
                            written.changes.push(Change {
                                kind: ChangeKind::Record,
                                record: record.summary(state),
                            });
                        }
                    }
                    write @ Write::Delivery { id, .. } => {
                        let stored = get_delivery(&deliveries, id)?;
                        let record_id = stored.as_ref().and_then(|stored| stored.record);
                        let Some(delivery) = write.apply_to(stored.map(|s| s.delivery)) else {
                            continue;
                        };
                        let stored = StoredDelivery {
                            record: record_id,
                            delivery,
                        };
                        let (new, old) = put_delivery(&mut deliveries, id, &stored)?;
                        added += new;
                        removed += old;
                        if announce
                            && let Some(record_id) = record_id
                            && let Some(value) = records.get(record_id)?
                        {
                            let record = read_record(value.value())?;
                            drop(value);
                            let state = record.state(states(&deliveries, &record)?);
                            written.changes.push(Change {
                                kind: ChangeKind::State,
                                record: record.summary(state),
                            });
                        }
                    }
                }
            }
            if !chunk.is_empty() {
                added += store_chunk(&mut bodies, chunk)?;
            }
        }
        self.keep_count(&txn, added, removed)?;
        txn.commit()?;
        self.add_bytes(added, removed);
        written.bytes = added;
        Ok(written)
    }

    fn list(&self, query: &Query) -> Result<Page, HistoryError> {
        let txn = self.db.begin_read()?;
        let records = txn.open_table(RECORDS)?;
        let deliveries = txn.open_table(DELIVERIES)?;
        let lowest = query.since.map_or(0, id_floor);
        let highest = match (query.cursor, query.until.map(id_floor)) {
            (Some(cursor), Some(until)) => cursor.min(until),
            (Some(bound), None) | (None, Some(bound)) => bound,
            (None, None) => u64::MAX,
        };
        let mut found = Vec::new();
        let mut last_scanned = None;
        let mut scanned = 0;
        for entry in records.range(lowest..highest)?.rev() {
            let (id, value) = entry?;
            last_scanned = Some(id.value());
            scanned += 1;
            let record = read_record(value.value())?;
            let state = record.state(states(&deliveries, &record)?);
            if query.matches(&record, &state) {
                found.push(record.summary(state));
                if found.len() == query.limit {
                    break;
                }
            }
            if scanned >= SCAN_LIMIT {
                break;
            }
        }
        let more = found.len() == query.limit || scanned >= SCAN_LIMIT;
        Ok(Page {
            next_cursor: if more { last_scanned } else { None },
            records: found,
        })
    }

    fn story(&self, id: u64) -> Result<Option<Story>, HistoryError> {
        let txn = self.db.begin_read()?;
        let records = txn.open_table(RECORDS)?;
        let Some(value) = records.get(id)? else {
            return Ok(None);
        };
        let mut record = read_record(value.value())?;
        let requests = txn.open_table(REQUESTS)?;
        if let Some(request) = requests.get(id)? {
            let stored = Stored::read(request.value())?;
            let chunk = match stored.body() {
                Some(body) => txn.open_table(BODIES)?.get(body.chunk)?,
                None => None,
            };
            record.request = Some(stored.into_request(chunk.as_ref().map(|c| c.value()))?);
        }
        let deliveries = txn.open_table(DELIVERIES)?;
        for rendered in &mut record.notifications {
            if let Some(queued) = rendered.id {
                rendered.delivery =
                    get_delivery(&deliveries, queued)?.map(|stored| stored.delivery);
            }
        }
        Ok(Some(record.into_story()))
    }

    fn counts(&self, since: u64) -> Result<Vec<RouteCounts>, HistoryError> {
        let txn = self.db.begin_read()?;
        let records = txn.open_table(RECORDS)?;
        let deliveries = txn.open_table(DELIVERIES)?;
        let mut counts: BTreeMap<(String, String), u64> = BTreeMap::new();
        for entry in records.range(id_floor(since)..)? {
            let (_, value) = entry?;
            let record = read_record(value.value())?;
            let state = record.state(states(&deliveries, &record)?);
            *counts.entry((record.route, state)).or_default() += 1;
        }
        Ok(counts
            .into_iter()
            .map(|((route, state), count)| RouteCounts {
                route,
                state,
                count,
            })
            .collect())
    }

    fn prune(&self, before: u64, max_bytes: u64) -> Result<Pruned, HistoryError> {
        let _one_at_a_time = self.pruning.lock().unwrap_or_else(PoisonError::into_inner);
        let mut pruned = 0;
        loop {
            let over = self.bytes.load(Ordering::Relaxed) > max_bytes;
            let mut txn = self.db.begin_write()?;
            txn.set_durability(Durability::None)?;
            let mut removed = 0u64;
            let mut deleted = 0;
            {
                let mut records = txn.open_table(RECORDS)?;
                let mut requests = txn.open_table(REQUESTS)?;
                let mut deliveries = txn.open_table(DELIVERIES)?;
                let mut bodies = txn.open_table(BODIES)?;
                let mut budget = self.bytes.load(Ordering::Relaxed);
                let mut doomed = Vec::new();
                let mut chunks = BTreeSet::new();
                for entry in records.iter()?.take(PRUNE_BATCH) {
                    let (id, value) = entry?;
                    let old = id.value() < id_floor(before);
                    if !old && budget <= max_bytes {
                        break;
                    }
                    let record = read_record(value.value())?;
                    let mut size = 8 + value.value().len() as u64;
                    if let Some(request) = requests.get(id.value())? {
                        size += 8 + request.value().len() as u64;
                        // Its share of its chunk.
                        size += body_of(request.value())?.map_or(0, |body| body.length());
                    }
                    for queued in record.queued_ids() {
                        if let Some(stored) = deliveries.get(queued)? {
                            size += 8 + stored.value().len() as u64;
                        }
                    }
                    budget = budget.saturating_sub(size);
                    doomed.push((id.value(), record));
                }
                for (id, record) in doomed {
                    if let Some(old) = records.remove(id)? {
                        removed += 8 + old.value().len() as u64;
                    }
                    if let Some(old) = requests.remove(id)? {
                        removed += 8 + old.value().len() as u64;
                        if let Some(body) = body_of(old.value())? {
                            chunks.insert(body.chunk);
                        }
                    }
                    for queued in record.queued_ids() {
                        if let Some(old) = deliveries.remove(queued)? {
                            removed += 8 + old.value().len() as u64;
                        }
                    }
                    deleted += 1;
                }
                // A chunk goes with the last of its records.
                for key in chunks {
                    let Some(chunk) = bodies.get(key)? else {
                        continue;
                    };
                    let mut kept = false;
                    for record in chunk_records(chunk.value())? {
                        if requests.get(record)?.is_some() {
                            kept = true;
                            break;
                        }
                    }
                    drop(chunk);
                    if !kept && let Some(old) = bodies.remove(key)? {
                        removed += 8 + old.value().len() as u64;
                    }
                }
            }
            self.keep_count(&txn, 0, removed)?;
            txn.commit()?;
            self.add_bytes(0, removed);
            pruned += deleted;
            if deleted < PRUNE_BATCH as u64 || (!over && deleted == 0) {
                break;
            }
        }
        Ok(Pruned {
            records: pruned,
            bytes: self.bytes.load(Ordering::Relaxed),
        })
    }
}

/// Stores a chunk of kept bodies; the bytes written.
fn store_chunk(
    table: &mut Table<'_, u64, &'static [u8]>,
    chunk: Chunk,
) -> Result<u64, HistoryError> {
    let key = chunk.key();
    let value = chunk.into_value()?;
    table.insert(key, value.as_slice())?;
    Ok(8 + value.len() as u64)
}

/// Stores a delivery; the bytes written and those it replaced.
fn put_delivery(
    table: &mut Table<'_, u64, &'static [u8]>,
    id: u64,
    stored: &StoredDelivery,
) -> Result<(u64, u64), HistoryError> {
    let bytes = serde_json::to_vec(stored)?;
    let old = table
        .insert(id, bytes.as_slice())?
        .map_or(0, |old| 8 + old.value().len() as u64);
    Ok((8 + bytes.len() as u64, old))
}

#[cfg(test)]
#[path = "redb_tests.rs"]
mod tests;
