//! The live streams' cache kept in the redb file, so that ntfy's `since=` finds after a restart
//! what it found before (on PostgreSQL the stream feed, `postgres/feed.rs`, keeps it).
//!
//! Each message stored for subscribers, and each notification a route delivered, is also written,
//! as the announcement the streams' hub receives ([`Cached`]), to the `stream_cache` table
//! (message id → JSON), in the transaction that made its id; the oldest rows go as new ones come
//! once they are older than the cache window (`PUSHJET_BRIDGE_STREAM_CACHE`) or beyond
//! [`MAX_ROWS`] or [`MAX_BYTES`]. When the file is opened with a listener, the rows
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
/// The bytes of the kept announcements (under [`BYTES`]).
const STREAM_CACHE_SIZE: TableDefinition<&str, u64> = TableDefinition::new("stream_cache_size");
const BYTES: &str = "bytes";

/// The most messages kept, whatever the window: a chatty service cannot fill the disk with them.
pub(super) const MAX_ROWS: u64 = 100_000;
/// The most bytes of announcements kept (at most 1,000 messages of the largest size), so the
/// cache never takes the room the stored messages need.
pub(super) const MAX_BYTES: u64 = 64 * 1024 * 1024;

/// Creates the table if it is missing (in the file's opening transaction).
pub(super) fn create(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(STREAM_CACHE)?;
    txn.open_table(STREAM_CACHE_SIZE)?;
    Ok(())
}

/// The oldest message time `window` keeps now.
fn cutoff(window: Duration) -> i64 {
    now().saturating_sub(i64::try_from(window.as_secs()).unwrap_or(i64::MAX))
}

/// Keeps `cached` (in the transaction that made its id) and lets go of the oldest rows the
/// window, [`MAX_ROWS`] or [`MAX_BYTES`] no longer keep. Keeps nothing when the window is zero.
pub(super) fn keep(
    txn: &WriteTransaction,
    cached: &Cached,
    window: Duration,
) -> Result<(), StoreError> {
    if window.is_zero() {
        return Ok(());
    }
    let encoded = serde_json::to_vec(cached)?;
    let mut size = txn.open_table(STREAM_CACHE_SIZE)?;
    let mut bytes = size.get(BYTES)?.map_or(0, |value| value.value());
    let mut table = txn.open_table(STREAM_CACHE)?;
    let replaced = table.insert(cached.message().id, encoded.as_slice())?;
    bytes = bytes
        .saturating_add(byte_count(&encoded))
        .saturating_sub(replaced.map_or(0, |old| byte_count(old.value())));
    let cutoff = cutoff(window);
    let mut rows = redb::ReadableTableMetadata::len(&table)?;
    while let Some((id, length, expired)) = {
        let first = table.first()?;
        first.map(|(id, value)| {
            let time = serde_json::from_slice::<Cached>(value.value())
                .map_or(i64::MIN, |old| old.message().message.timestamp);
            let over = rows > MAX_ROWS || bytes > MAX_BYTES;
            (id.value(), byte_count(value.value()), time < cutoff || over)
        })
    } {
        if !expired {
            break;
        }
        table.remove(id)?;
        rows = rows.saturating_sub(1);
        bytes = bytes.saturating_sub(length);
    }
    size.insert(BYTES, bytes)?;
    Ok(())
}

fn byte_count(bytes: &[u8]) -> u64 {
    u64::try_from(bytes.len()).unwrap_or(u64::MAX)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pushjet::Importance;
    use crate::pushjet::wire::{MessageView, ServiceView};

    fn cached(id: u64, text: String, timestamp: i64) -> Cached {
        Cached::Route(RouteDelivered {
            route: "ops".to_owned(),
            message: StoredMessage {
                id,
                stream_id: format!("{id:012}"),
                devices: Vec::new(),
                message: MessageView {
                    level: Importance::DEFAULT,
                    link: String::new(),
                    message: text,
                    service: ServiceView {
                        created: 0,
                        icon: String::new(),
                        name: "ops".to_owned(),
                        public: crate::pushjet::PublicKey::parse(
                            "2340-b88c20-098512d83349-4966c-7df2fdc48",
                        )
                        .unwrap(),
                        secret: None,
                    },
                    timestamp,
                    title: String::new(),
                },
            },
        })
    }

    fn kept_ids(db: &Database) -> Vec<u64> {
        let txn = db.begin_read().unwrap();
        let table = txn.open_table(STREAM_CACHE).unwrap();
        table
            .iter()
            .unwrap()
            .map(|row| row.unwrap().0.value())
            .collect()
    }

    #[test]
    fn the_oldest_rows_go_beyond_the_window_and_the_byte_budget() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::create(dir.path().join("cache.redb")).unwrap();
        let window = Duration::from_secs(3600);
        let big = "x".repeat(60_000);
        let rows = MAX_BYTES / 60_000 + 10;
        let txn = db.begin_write().unwrap();
        create(&txn).unwrap();
        keep(&txn, &cached(1, "stale".to_owned(), now() - 7200), window).unwrap();
        keep(&txn, &cached(2, "fresh".to_owned(), now()), window).unwrap();
        txn.commit().unwrap();
        assert_eq!(kept_ids(&db), [2], "older than the window");

        let txn = db.begin_write().unwrap();
        for id in 3..3 + rows {
            keep(&txn, &cached(id, big.clone(), now()), window).unwrap();
        }
        txn.commit().unwrap();
        let ids = kept_ids(&db);
        assert_eq!(ids.last(), Some(&(2 + rows)), "the newest is kept");
        assert!(
            !ids.contains(&2) && !ids.contains(&3),
            "the oldest went first"
        );
        let txn = db.begin_read().unwrap();
        let bytes = txn
            .open_table(STREAM_CACHE_SIZE)
            .unwrap()
            .get(BYTES)
            .unwrap()
            .unwrap()
            .value();
        assert!(bytes <= MAX_BYTES, "{bytes}");
    }
}
