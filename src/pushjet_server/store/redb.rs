//! The store in one redb file, `<data_dir>/pushjet.redb`, for a single process (the default
//! backend). [`RedbFile`]'s methods are blocking disk I/O; [`RedbStore`], the backend, runs each on
//! the blocking thread pool. Every change is one write transaction, committed before the method
//! returns, and announced right after it, in commit order. The demo route's keys are kept next to
//! the file (`demo_file.rs`). The notifications routes deliver are announced from here too
//! (`redb/routes.rs`), with ids of the same sequence as the messages. Opening the file and its
//! size check are in `redb/opening.rs`, services and subscriptions in `redb/services.rs`,
//! messages (stored, read, deleted) in `redb/messages.rs`.
//!
//! Tables (values are serde_json records):
//!
//! | table | key | value |
//! |---|---|---|
//! | `services` | secret | name, icon, public key, creation time |
//! | `service_secrets` | public key | secret |
//! | `subscriptions` | (device uuid, public key) | order, subscribed at, checked at, last read message id |
//! | `subscribers` | (public key, device uuid) | — (index of the above by service) |
//! | `messages` | message id (global, increasing) | service public key, text, title, link, level, time |
//! | `service_messages` | (public key, message id) | — (index of the above by service) |
//! | `meta` | name | the last message id and the last subscription number handed out |
//! | `direct_services` | device uuid | the secret of the device's own service (`redb/direct.rs`) |
//! | `stream_cache` | message id | the live streams' announcement of it, within the cache window (`stream_cache.rs`) |

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use redb::{Database, ReadableTable, TableDefinition};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::backend::{Answer, StoreBackend};
use super::{
    DemoKeys, NewMessage, SendOutcome, StoreError, StoreLimits, StoreOptions, Unread, demo_file,
    stream_cache,
};
use crate::pushjet::wire::{MessageView, ServiceView, SubscriptionView};
use crate::pushjet::{DeviceUuid, Importance, PublicKey, SecretKey};
use crate::pushjet_server::events::StoreEvents;
use crate::pushjet_server::fields::{Icon, ServiceName};

mod direct;
mod messages;
mod opening;
mod routes;
mod services;

/// The database file inside the data directory.
pub const DATABASE_FILE_NAME: &str = "pushjet.redb";

mod lower_case;

const SERVICES: TableDefinition<&str, &[u8]> = TableDefinition::new("services");
const SERVICE_SECRETS: TableDefinition<&str, &str> = TableDefinition::new("service_secrets");
const SUBSCRIPTIONS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("subscriptions");
const SUBSCRIBERS: TableDefinition<(&str, &str), ()> = TableDefinition::new("subscribers");
const MESSAGES: TableDefinition<u64, &[u8]> = TableDefinition::new("messages");
const SERVICE_MESSAGES: TableDefinition<(&str, u64), ()> = TableDefinition::new("service_messages");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

const LAST_MESSAGE_ID: &str = "last_message_id";
const LAST_SUBSCRIPTION_NUMBER: &str = "last_subscription_number";

impl From<redb::TransactionError> for StoreError {
    fn from(error: redb::TransactionError) -> Self {
        Self::Database(error.into())
    }
}

impl From<redb::TableError> for StoreError {
    fn from(error: redb::TableError) -> Self {
        Self::Database(error.into())
    }
}

impl From<redb::StorageError> for StoreError {
    fn from(error: redb::StorageError) -> Self {
        Self::Database(error.into())
    }
}

impl From<redb::CommitError> for StoreError {
    fn from(error: redb::CommitError) -> Self {
        Self::Database(error.into())
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct ServiceRecord {
    public: PublicKey,
    name: String,
    icon: String,
    created: i64,
}

impl ServiceRecord {
    fn public_view(&self) -> ServiceView {
        ServiceView {
            created: self.created,
            icon: self.icon.clone(),
            name: self.name.clone(),
            public: self.public.clone(),
            secret: None,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct SubscriptionRecord {
    /// Position among all subscriptions ever made, so lists come out in subscription order.
    order: u64,
    timestamp: i64,
    timestamp_checked: i64,
    last_read: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct MessageRecord {
    service: PublicKey,
    message: String,
    title: String,
    link: String,
    level: Importance,
    timestamp: i64,
}

/// How long a database found over its ceiling is trusted to stay there.
const SIZE_CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// The redb file and its blocking operations. Safe to share between threads (behind an `Arc`);
/// redb runs one write transaction at a time and lets reads proceed alongside it.
#[derive(Debug)]
pub(super) struct RedbFile {
    db: Database,
    path: PathBuf,
    limits: StoreLimits,
    /// When the size was last measured, and whether it was over the ceiling (trusted for
    /// [`SIZE_CHECK_INTERVAL`] when it was).
    size_check: Mutex<Option<(Instant, bool)>>,
    /// Where the demo route's file is kept.
    data_dir: PathBuf,
    events: Option<Arc<dyn StoreEvents>>,
    /// How long the live streams cache messages: what `stream_cache` keeps for them.
    stream_cache: Duration,
    /// Held from the start of a write that announces an event until the announcement, so events
    /// are announced in commit order.
    announcing: Mutex<()>,
}

impl RedbFile {
    /// Keeps announcing writes in commit order (only when someone listens).
    fn announce_in_order(&self) -> Option<std::sync::MutexGuard<'_, ()>> {
        self.events.as_ref().map(|_| {
            self.announcing
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
        })
    }
}

/// The redb backend: the file's blocking operations, each run on the blocking thread pool.
#[derive(Debug, Clone)]
pub(super) struct RedbStore {
    file: Arc<RedbFile>,
}

impl RedbStore {
    /// Opens `<data_dir>/pushjet.redb` (blocking), creating the directory (mode 0700 on Unix)
    /// and the file if needed.
    pub(super) fn open(data_dir: &Path, options: StoreOptions) -> Result<Self, StoreError> {
        Ok(Self {
            file: Arc::new(RedbFile::open(data_dir, options)?),
        })
    }

    /// Runs `work` on the file, on the blocking thread pool.
    fn run<T, F>(&self, work: F) -> Answer<T>
    where
        F: FnOnce(&RedbFile) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        let file = self.file.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || work(&file))
                .await
                .map_err(|error| StoreError::Stopped(error.to_string()))?
        })
    }
}

impl StoreBackend for RedbStore {
    fn create_service(&self, name: ServiceName, icon: Icon) -> Answer<ServiceView> {
        self.run(move |file| file.create_service(&name, &icon))
    }

    fn service_by_secret(&self, secret: SecretKey) -> Answer<Option<ServiceView>> {
        self.run(move |file| file.service_by_secret(&secret))
    }

    fn service_by_public(&self, public: PublicKey) -> Answer<Option<ServiceView>> {
        self.run(move |file| file.service_by_public(&public))
    }

    fn subscriber_count(&self, public: PublicKey) -> Answer<usize> {
        self.run(move |file| file.subscriber_count(&public))
    }

    fn update_service(
        &self,
        secret: SecretKey,
        name: Option<ServiceName>,
        icon: Option<Icon>,
    ) -> Answer<()> {
        self.run(move |file| file.update_service(&secret, name.as_ref(), icon.as_ref()))
    }

    fn delete_service(&self, secret: SecretKey) -> Answer<()> {
        self.run(move |file| file.delete_service(&secret))
    }

    fn send_message(&self, secret: SecretKey, message: NewMessage) -> Answer<SendOutcome> {
        self.run(move |file| file.send_message(&secret, &message))
    }

    fn fetch_unread(&self, device: DeviceUuid) -> Answer<Unread> {
        self.run(move |file| file.fetch_unread(&device))
    }

    fn mark_read_up_to(&self, marks: Vec<(DeviceUuid, u64)>) -> Answer<()> {
        self.run(move |file| file.mark_read_up_to(&marks))
    }

    fn mark_all_read(&self, device: DeviceUuid) -> Answer<()> {
        self.run(move |file| file.mark_all_read(&device))
    }

    fn subscribe(&self, device: DeviceUuid, public: PublicKey) -> Answer<ServiceView> {
        self.run(move |file| file.subscribe(&device, &public))
    }

    fn subscriptions(&self, device: DeviceUuid) -> Answer<Vec<SubscriptionView>> {
        self.run(move |file| file.subscriptions(&device))
    }

    fn unsubscribe(&self, device: DeviceUuid, public: PublicKey) -> Answer<()> {
        self.run(move |file| file.unsubscribe(&device, &public))
    }

    fn demo(&self) -> Answer<Option<DemoKeys>> {
        self.run(|file| demo_file::read(&file.data_dir))
    }

    /// One process owns the file: `previous` needs no checking.
    fn announce_routes(&self, delivered: Vec<(String, MessageView)>) -> Answer<()> {
        self.run(move |file| file.announce_routes(delivered))
    }

    fn direct_service(&self, device: DeviceUuid) -> Answer<Option<SecretKey>> {
        self.run(move |file| file.direct_service(&device))
    }

    fn keep_direct_service(
        &self,
        device: DeviceUuid,
        previous: Option<SecretKey>,
        secret: SecretKey,
    ) -> Answer<SecretKey> {
        self.run(move |file| file.keep_direct_service(&device, previous.as_ref(), &secret))
    }

    fn keep_demo(&self, _previous: Option<SecretKey>, keys: DemoKeys) -> Answer<DemoKeys> {
        self.run(move |file| {
            demo_file::write(&file.data_dir, &keys)?;
            Ok(keys)
        })
    }

    #[cfg(test)]
    fn stored_messages(&self) -> Answer<(u64, u64)> {
        self.run(|file| {
            use redb::{ReadableDatabase, ReadableTableMetadata};
            let txn = file.db.begin_read()?;
            Ok((
                txn.open_table(MESSAGES)?.len()?,
                txn.open_table(SERVICE_MESSAGES)?.len()?,
            ))
        })
    }
}

fn encode<T: Serialize>(record: &T) -> Result<Vec<u8>, StoreError> {
    Ok(serde_json::to_vec(record)?)
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    Ok(serde_json::from_slice(bytes)?)
}

fn read_counter(
    meta: &impl ReadableTable<&'static str, u64>,
    name: &str,
) -> Result<u64, StoreError> {
    Ok(meta.get(name)?.map_or(0, |value| value.value()))
}
