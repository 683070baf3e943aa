//! The live streams' cache kept in the redb file, so that ntfy's `since=` finds after a restart
//! what it found before (on PostgreSQL the stream feed, `postgres/feed.rs`, keeps it).
//!
//! Each message stored for subscribers, and each notification a route delivered, is also written,
//! as the announcement the streams' hub receives ([`Cached`]), to the `stream_cache` table
//! (message id → JSON), in the transaction that made its id; rows older than the cache window (`PUSHJET_BRIDGE_STREAM_CACHE`) or beyond
//! [`MAX_ROWS`] are deleted as new ones come. When the file is opened with a listener, the rows
//! still within the window are handed to it, oldest first, before anything else is announced.

use std::time::Duration;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::{StoreError, now};
use crate::pushjet_server::events::{RouteDelivered, StoreEvents, StoredMessage};

/// One kept announcement.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", content = "event", rename_all = "snake_case")]
pub(super) enum Cached {
    /// A message stored for devices.
    Message(StoredMessage),
    /// A notification a route delivered.
    Route(RouteDelivered),
}

impl Cached {
    fn message(&self) -> &StoredMessage {
        match self {
            Self::Message(message) | Self::Route(RouteDelivered { message, .. }) => message,
        }
    }

    /// Hands it to `events`.
    fn announce(self, events: &dyn StoreEvents) {
        match self {
            Self::Message(message) => events.message_stored(message),
            Self::Route(delivered) => events.route_delivered(delivered),
        }
    }
}

/// Message id → the announcement, as JSON.
const STREAM_CACHE: TableDefinition<u64, &[u8]> = TableDefinition::new("stream_cache");

/// The most messages kept, whatever the window: a chatty service cannot fill the disk with them.
pub(super) const MAX_ROWS: u64 = 100_000;

/// Creates the table if it is missing (in the file's opening transaction).
pub(super) fn create(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(STREAM_CACHE)?;
    Ok(())
}

/// The oldest message time `window` keeps now.
fn cutoff(window: Duration) -> i64 {
    now().saturating_sub(i64::try_from(window.as_secs()).unwrap_or(i64::MAX))
}

/// Keeps `cached` (in the transaction that made its id) and lets go of the rows the window or
/// [`MAX_ROWS`] no longer keep. Keeps nothing when the window is zero.
pub(super) fn keep(
    txn: &WriteTransaction,
    cached: &Cached,
    window: Duration,
) -> Result<(), StoreError> {
    if window.is_zero() {
        return Ok(());
    }
    let mut table = txn.open_table(STREAM_CACHE)?;
    table.insert(cached.message().id, serde_json::to_vec(cached)?.as_slice())?;
    let cutoff = cutoff(window);
    let mut rows = redb::ReadableTableMetadata::len(&table)?;
    while let Some((id, expired)) = {
        let first = table.first()?;
        first.map(|(id, value)| {
            let time = serde_json::from_slice::<Cached>(value.value())
                .map_or(i64::MIN, |old| old.message().message.timestamp);
            (id.value(), time < cutoff || rows > MAX_ROWS)
        })
    } {
        if !expired {
            break;
        }
        table.remove(id)?;
        rows = rows.saturating_sub(1);
    }
    Ok(())
}

/// Hands `events` the kept messages still within `window`, oldest first; returns how many.
pub(super) fn fill(
    db: &Database,
    events: &dyn StoreEvents,
    window: Duration,
) -> Result<usize, StoreError> {
    let cutoff = cutoff(window);
    let txn = db.begin_read()?;
    let table = txn.open_table(STREAM_CACHE)?;
    let mut handed = 0;
    for row in table.iter()? {
        let (_, value) = row?;
        match serde_json::from_slice::<Cached>(value.value()) {
            Ok(cached) if cached.message().message.timestamp >= cutoff => {
                cached.announce(events);
                handed += 1;
            }
            Ok(_) => {}
            Err(error) => tracing::warn!("skipped an unreadable cached stream message: {error}"),
        }
    }
    Ok(handed)
}
