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

use redb::{Database, ReadableDatabase, ReadableTable, Table, TableDefinition, WriteTransaction};
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

/// [`Cached`] borrowed, written alike: what is kept is encoded without a copy of the message.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(tag = "kind", content = "event", rename_all = "snake_case")]
pub(super) enum CachedRef<'a> {
    /// A message stored for devices.
    Message(&'a StoredMessage),
    /// A notification a route delivered.
    Route(&'a RouteDelivered),
}

impl CachedRef<'_> {
    fn id(self) -> u64 {
        match self {
            Self::Message(message) | Self::Route(RouteDelivered { message, .. }) => message.id,
        }
    }
}

/// Keeps `cached` (in the transaction that made its id) and lets go of the oldest rows the
/// window, [`MAX_ROWS`] or [`MAX_BYTES`] no longer keep. Keeps nothing when the window is zero.
pub(super) fn keep(
    txn: &WriteTransaction,
    cached: CachedRef<'_>,
    window: Duration,
) -> Result<(), StoreError> {
    match Writer::open(txn, window)? {
        Some(mut writer) => {
            writer.insert(cached)?;
            writer.finish()
        }
        None => Ok(()),
    }
}

/// Keeps several announcements in one transaction: each [`Self::insert`]ed, the oldest rows let
/// go once at [`Self::finish`] (so a batch decodes one old row per row it drops, not per insert).
pub(super) struct Writer<'txn> {
    table: Table<'txn, u64, &'static [u8]>,
    size: Table<'txn, &'static str, u64>,
    bytes: u64,
    window: Duration,
}

impl<'txn> Writer<'txn> {
    /// The cache's tables in `txn`; `None` when the window is zero (nothing is kept).
    pub(super) fn open(
        txn: &'txn WriteTransaction,
        window: Duration,
    ) -> Result<Option<Self>, StoreError> {
        if window.is_zero() {
            return Ok(None);
        }
        let size = txn.open_table(STREAM_CACHE_SIZE)?;
        let bytes = size.get(BYTES)?.map_or(0, |value| value.value());
        Ok(Some(Self {
            table: txn.open_table(STREAM_CACHE)?,
            size,
            bytes,
            window,
        }))
    }

    /// Keeps `cached` under its message id.
    pub(super) fn insert(&mut self, cached: CachedRef<'_>) -> Result<(), StoreError> {
        let encoded = serde_json::to_vec(&cached)?;
        let replaced = self.table.insert(cached.id(), encoded.as_slice())?;
        self.bytes = self
            .bytes
            .saturating_add(byte_count(&encoded))
            .saturating_sub(replaced.map_or(0, |old| byte_count(old.value())));
        Ok(())
    }

    /// Lets go of the oldest rows the window and the bounds no longer keep, and notes the bytes.
    pub(super) fn finish(mut self) -> Result<(), StoreError> {
        let cutoff = cutoff(self.window);
        let mut rows = redb::ReadableTableMetadata::len(&self.table)?;
        while let Some((id, length, expired)) = {
            let first = self.table.first()?;
            first.map(|(id, value)| {
                let over = rows > MAX_ROWS || self.bytes > MAX_BYTES;
                let expired = over || timestamp(value.value()).is_none_or(|time| time < cutoff);
                (id.value(), byte_count(value.value()), expired)
            })
        } {
            if !expired {
                break;
            }
            self.table.remove(id)?;
            rows = rows.saturating_sub(1);
            self.bytes = self.bytes.saturating_sub(length);
        }
        self.size.insert(BYTES, self.bytes)?;
        Ok(())
    }
}

/// A kept announcement's message time, read without the rest of it; `None` when unreadable.
fn timestamp(encoded: &[u8]) -> Option<i64> {
    #[derive(Deserialize)]
    #[serde(tag = "kind", content = "event", rename_all = "snake_case")]
    enum Kept {
        Message(Stored),
        Route { message: Stored },
    }
    #[derive(Deserialize)]
    struct Stored {
        message: Time,
    }
    #[derive(Deserialize)]
    struct Time {
        timestamp: i64,
    }
    let kept: Kept = serde_json::from_slice(encoded).ok()?;
    Some(match kept {
        Kept::Message(stored) | Kept::Route { message: stored } => stored.message.timestamp,
    })
}

fn byte_count(bytes: &[u8]) -> u64 {
    u64::try_from(bytes.len()).unwrap_or(u64::MAX)
}

/// Hands `events` the newest kept messages still within `window` whose rows add up to at most
/// `budget` bytes (what the in-memory cache can hold; the rest would be dropped from it at once),
/// oldest first; returns how many.
pub(super) fn fill(
    db: &Database,
    events: &dyn StoreEvents,
    window: Duration,
    budget: usize,
) -> Result<usize, StoreError> {
    let cutoff = cutoff(window);
    let budget = u64::try_from(budget).unwrap_or(u64::MAX);
    let txn = db.begin_read()?;
    let table = txn.open_table(STREAM_CACHE)?;
    let mut newest_first = Vec::new();
    let mut bytes = 0u64;
    for row in table.iter()?.rev() {
        let (_, value) = row?;
        bytes = bytes.saturating_add(byte_count(value.value()));
        if bytes > budget {
            break;
        }
        match serde_json::from_slice::<Cached>(value.value()) {
            Ok(cached) if cached.message().message.timestamp >= cutoff => {
                newest_first.push(cached);
            }
            Ok(_) => break,
            Err(error) => tracing::warn!("skipped an unreadable cached stream message: {error}"),
        }
    }
    let handed = newest_first.len();
    for cached in newest_first.into_iter().rev() {
        cached.announce(events);
    }
    Ok(handed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pushjet::Importance;
    use crate::pushjet::wire::{MessageView, ServiceView};

    fn cached(id: u64, text: String, timestamp: i64) -> RouteDelivered {
        RouteDelivered {
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
        }
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
        let (stale, fresh) = (
            cached(1, "stale".to_owned(), now() - 7200),
            cached(2, "fresh".to_owned(), now()),
        );
        keep(&txn, CachedRef::Route(&stale), window).unwrap();
        keep(&txn, CachedRef::Route(&fresh), window).unwrap();
        txn.commit().unwrap();
        assert_eq!(kept_ids(&db), [2], "older than the window");

        let txn = db.begin_write().unwrap();
        let mut writer = Writer::open(&txn, window).unwrap().unwrap();
        for id in 3..3 + rows {
            writer
                .insert(CachedRef::Route(&cached(id, big.clone(), now())))
                .unwrap();
        }
        writer.finish().unwrap();
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

    #[test]
    fn a_kept_rows_time_is_read_for_both_kinds_and_none_when_unreadable() {
        let route = cached(7, "text".to_owned(), 1_700_000_000);
        let encoded = serde_json::to_vec(&CachedRef::Route(&route)).unwrap();
        assert_eq!(timestamp(&encoded), Some(1_700_000_000));
        let encoded = serde_json::to_vec(&CachedRef::Message(&route.message)).unwrap();
        assert_eq!(timestamp(&encoded), Some(1_700_000_000));
        let decoded: Cached = serde_json::from_slice(&encoded).unwrap();
        assert!(matches!(decoded, Cached::Message(message) if message.id == 7));
        assert_eq!(timestamp(b"{\"kind\": \"other\"}"), None);
    }

    /// Remembers the ids of the routes' announcements it hears.
    #[derive(Debug, Default)]
    struct Heard(std::sync::Mutex<Vec<u64>>);

    impl StoreEvents for Heard {
        fn message_stored(&self, _message: StoredMessage) {}
        fn subscription_changed(&self, _subscription: crate::pushjet::wire::SubscriptionView) {}
        fn route_delivered(&self, delivered: RouteDelivered) {
            self.0.lock().unwrap().push(delivered.message.id);
        }
    }

    #[test]
    fn a_start_fills_the_newest_rows_the_memory_budget_holds_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::create(dir.path().join("cache.redb")).unwrap();
        let window = Duration::from_secs(3600);
        let txn = db.begin_write().unwrap();
        create(&txn).unwrap();
        let mut writer = Writer::open(&txn, window).unwrap().unwrap();
        for id in 1..=10 {
            writer
                .insert(CachedRef::Route(&cached(id, "x".repeat(1000), now())))
                .unwrap();
        }
        writer.finish().unwrap();
        txn.commit().unwrap();

        let row = serde_json::to_vec(&CachedRef::Route(&cached(10, "x".repeat(1000), now())))
            .unwrap()
            .len();
        let heard = Heard::default();
        assert_eq!(fill(&db, &heard, window, row * 3 + row / 2).unwrap(), 3);
        assert_eq!(*heard.0.lock().unwrap(), [8, 9, 10]);
        let all = Heard::default();
        assert_eq!(fill(&db, &all, window, usize::MAX).unwrap(), 10);
        assert_eq!(*all.0.lock().unwrap(), (1..=10).collect::<Vec<_>>());
    }
}
