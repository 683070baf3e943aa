//! The store in one redb file, `<data_dir>/pushjet.redb`, for a single process (the default
//! backend). [`RedbFile`]'s methods are blocking disk I/O; [`RedbStore`], the backend, runs each on
//! the blocking thread pool. Every change is one write transaction, committed before the method
//! returns, and announced right after it, in commit order. The demo route's keys are kept next to
//! the file (`demo_file.rs`). The notifications routes deliver are announced from here too
//! (`redb/routes.rs`), with ids of the same sequence as the messages.
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

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::backend::{Answer, StoreBackend};
use super::{
    DemoKeys, NewMessage, SendOutcome, StoreError, StoreLimits, StoreOptions, Unread, demo_file,
    now, oldest_kept, stream_cache,
};
use crate::pushjet::wire::{MessageView, ServiceView, SubscriptionView};
use crate::pushjet::{DeviceUuid, Importance, PublicKey, SecretKey};
use crate::pushjet_server::events::{StoreEvents, StoredMessage, new_stream_id};
use crate::pushjet_server::fields::{Icon, ServiceName};

mod direct;
mod routes;

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

/// redb's own cache of the file's pages (its default is 1 GiB, which messages and the live
/// streams' cache written at a webhook's pace would fill): what is read often (services,
/// subscriptions, the newest messages) fits in it; the rest comes back from the operating
/// system's page cache when needed.
const CACHE_BYTES: usize = 4 * 1024 * 1024;

impl RedbFile {
    /// Opens `<data_dir>/pushjet.redb`, creating the directory (mode 0700 on Unix) and the file
    /// if needed.
    fn open(data_dir: &Path, options: StoreOptions) -> Result<Self, StoreError> {
        create_private_dir(data_dir).map_err(|source| StoreError::CreateDir {
            path: data_dir.to_path_buf(),
            source,
        })?;
        let path = data_dir.join(DATABASE_FILE_NAME);
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(&path)
            .map_err(|source| StoreError::Open { path, source })?;
        let txn = db.begin_write()?;
        {
            txn.open_table(SERVICES)?;
            txn.open_table(SERVICE_SECRETS)?;
            txn.open_table(SUBSCRIPTIONS)?;
            txn.open_table(SUBSCRIBERS)?;
            txn.open_table(MESSAGES)?;
            txn.open_table(SERVICE_MESSAGES)?;
            txn.open_table(META)?;
            txn.open_table(direct::DIRECT_SERVICES)?;
            stream_cache::create(&txn)?;
            lower_case::lower_case_devices(&txn)?;
        }
        txn.commit()?;
        if let Some(events) = &options.events {
            let filled = stream_cache::fill(
                &db,
                events.as_ref(),
                options.stream_cache,
                options.stream_cache_bytes,
            )?;
            tracing::debug!(
                messages = filled,
                "filled the live stream cache from the Pushjet database"
            );
        }
        Ok(Self {
            stream_cache: options.stream_cache,
            db,
            path: data_dir.join(DATABASE_FILE_NAME),
            data_dir: data_dir.to_path_buf(),
            limits: options.limits,
            size_check: Mutex::new(None),
            events: options.events,
            announcing: Mutex::new(()),
        })
    }

    /// Refuses to store more once the database holds `max_disk_bytes`: the file's size while it
    /// is smaller, else the bytes of the pages in use inside it (freed pages are reused before it
    /// grows). Once over, it is measured again only every [`SIZE_CHECK_INTERVAL`].
    fn check_space(&self) -> Result<(), StoreError> {
        let file_size = std::fs::metadata(&self.path).map_or(0, |meta| meta.len());
        if file_size < self.limits.max_disk_bytes {
            return Ok(());
        }
        let mut checked = self.size_check.lock().map_err(|_| StoreError::Full)?;
        let full = match *checked {
            Some((at, true)) if at.elapsed() < SIZE_CHECK_INTERVAL => true,
            _ => {
                let stats = self.db.begin_write()?.stats()?;
                let page_size = u64::try_from(stats.page_size()).unwrap_or(u64::MAX);
                let used = stats.allocated_pages().saturating_mul(page_size);
                let full = used >= self.limits.max_disk_bytes;
                *checked = Some((Instant::now(), full));
                full
            }
        };
        if full { Err(StoreError::Full) } else { Ok(()) }
    }

    /// Keeps announcing writes in commit order (only when someone listens).
    fn announce_in_order(&self) -> Option<std::sync::MutexGuard<'_, ()>> {
        self.events.as_ref().map(|_| {
            self.announcing
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
        })
    }

    /// Creates a service with a fresh secret and returns its owner view (with `secret`).
    fn create_service(&self, name: &ServiceName, icon: &Icon) -> Result<ServiceView, StoreError> {
        self.check_space()?;
        let secret = SecretKey::generate().map_err(StoreError::Randomness)?;
        let record = ServiceRecord {
            public: secret.public_key(),
            name: name.as_str().to_owned(),
            icon: icon.as_str().to_owned(),
            created: now(),
        };
        let txn = self.db.begin_write()?;
        {
            txn.open_table(SERVICES)?
                .insert(secret.expose(), encode(&record)?.as_slice())?;
            txn.open_table(SERVICE_SECRETS)?
                .insert(record.public.as_str(), secret.expose())?;
        }
        txn.commit()?;
        tracing::info!(service = %record.public, "created Pushjet service");
        Ok(ServiceView {
            secret: Some(secret),
            ..record.public_view()
        })
    }

    /// The service with this secret (public view: no `secret` field), if any.
    fn service_by_secret(&self, secret: &SecretKey) -> Result<Option<ServiceView>, StoreError> {
        let txn = self.db.begin_read()?;
        let services = txn.open_table(SERVICES)?;
        Ok(load_service(&services, secret.expose())?.map(|record| record.public_view()))
    }

    /// The service with this public key (public view), if any.
    fn service_by_public(&self, public: &PublicKey) -> Result<Option<ServiceView>, StoreError> {
        let txn = self.db.begin_read()?;
        let secrets = txn.open_table(SERVICE_SECRETS)?;
        let services = txn.open_table(SERVICES)?;
        Ok(
            load_service_by_public(&secrets, &services, public.as_str())?
                .map(|record| record.public_view()),
        )
    }

    /// How many devices are subscribed to the service with this public key.
    fn subscriber_count(&self, public: &PublicKey) -> Result<usize, StoreError> {
        let txn = self.db.begin_read()?;
        let subscribers = txn.open_table(SUBSCRIBERS)?;
        Ok(subscribers_of(&subscribers, public.as_str())?.len())
    }

    /// Changes the name and/or the icon (`None` leaves a field as it is).
    fn update_service(
        &self,
        secret: &SecretKey,
        name: Option<&ServiceName>,
        icon: Option<&Icon>,
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        {
            let mut services = txn.open_table(SERVICES)?;
            let mut record =
                load_service(&services, secret.expose())?.ok_or(StoreError::ServiceNotFound)?;
            if let Some(name) = name {
                record.name = name.as_str().to_owned();
            }
            if let Some(icon) = icon {
                record.icon = icon.as_str().to_owned();
            }
            services.insert(secret.expose(), encode(&record)?.as_slice())?;
            tracing::info!(service = %record.public, "updated Pushjet service");
        }
        txn.commit()?;
        Ok(())
    }

    /// Deletes the service with all its subscriptions and stored messages.
    fn delete_service(&self, secret: &SecretKey) -> Result<(), StoreError> {
        let _in_order = self.announce_in_order();
        let txn = self.db.begin_write()?;
        let mut removed = Vec::new();
        {
            let mut services = txn.open_table(SERVICES)?;
            let record =
                load_service(&services, secret.expose())?.ok_or(StoreError::ServiceNotFound)?;
            let public = record.public.as_str();
            let mut subscribers = txn.open_table(SUBSCRIBERS)?;
            let mut subscriptions = txn.open_table(SUBSCRIPTIONS)?;
            let devices = subscribers_of(&subscribers, public)?;
            for device in &devices {
                if let Some(value) = subscriptions.remove((device.as_str(), public))? {
                    let subscription: SubscriptionRecord = decode(value.value())?;
                    if let Ok(uuid) = DeviceUuid::parse(device) {
                        removed.push(SubscriptionView {
                            service: record.public_view(),
                            timestamp: subscription.timestamp,
                            timestamp_checked: subscription.timestamp_checked,
                            uuid,
                        });
                    }
                }
                subscribers.remove((public, device.as_str()))?;
            }
            delete_messages_up_to(&txn, public, u64::MAX)?;
            txn.open_table(SERVICE_SECRETS)?.remove(public)?;
            services.remove(secret.expose())?;
            tracing::info!(
                service = %record.public,
                subscriptions = devices.len(),
                "deleted Pushjet service"
            );
        }
        txn.commit()?;
        if let Some(events) = &self.events {
            removed
                .into_iter()
                .for_each(|subscription| events.subscription_changed(subscription));
        }
        Ok(())
    }

    /// Stores a message for the service's current subscribers, then deletes the service's
    /// messages that every subscriber has read. Stores nothing when nobody is subscribed.
    fn send_message(
        &self,
        secret: &SecretKey,
        message: &NewMessage,
    ) -> Result<SendOutcome, StoreError> {
        self.check_space()?;
        let _in_order = self.announce_in_order();
        let txn = self.db.begin_write()?;
        let stored = {
            let services = txn.open_table(SERVICES)?;
            let service =
                load_service(&services, secret.expose())?.ok_or(StoreError::ServiceNotFound)?;
            let public = service.public.as_str();
            let subscribers = subscribers_of(&txn.open_table(SUBSCRIBERS)?, public)?;
            if subscribers.is_empty() {
                return Ok(SendOutcome::NoSubscribers);
            }
            let mut meta = txn.open_table(META)?;
            let id = read_counter(&meta, LAST_MESSAGE_ID)?.saturating_add(1);
            meta.insert(LAST_MESSAGE_ID, id)?;
            let record = MessageRecord {
                service: service.public.clone(),
                message: message.text.as_str().to_owned(),
                title: message.title.as_str().to_owned(),
                link: message.link.as_str().to_owned(),
                level: message.level,
                timestamp: now(),
            };
            txn.open_table(MESSAGES)?
                .insert(id, encode(&record)?.as_slice())?;
            txn.open_table(SERVICE_MESSAGES)?.insert((public, id), ())?;
            clean_up(&txn, public)?;
            prune(&txn, public, &self.limits)?;
            tracing::debug!(
                service = %service.public,
                id,
                subscribers = subscribers.len(),
                "stored Pushjet message"
            );
            StoredMessage {
                id,
                stream_id: new_stream_id(),
                devices: subscribers
                    .iter()
                    .filter_map(|device| DeviceUuid::parse(device).ok())
                    .collect(),
                message: MessageView {
                    level: record.level,
                    link: record.link,
                    message: record.message,
                    service: service.public_view(),
                    timestamp: record.timestamp,
                    title: record.title,
                },
            }
        };
        if self.events.is_some() {
            stream_cache::keep(
                &txn,
                stream_cache::CachedRef::Message(&stored),
                self.stream_cache,
            )?;
        }
        txn.commit()?;
        if let Some(events) = &self.events {
            events.message_stored(stored);
        }
        Ok(SendOutcome::Stored)
    }

    /// [`super::Store::fetch_unread`].
    fn fetch_unread(&self, device: &DeviceUuid) -> Result<Unread, StoreError> {
        let txn = self.db.begin_write()?;
        let watermark = read_counter(&txn.open_table(META)?, LAST_MESSAGE_ID)?;
        let messages = {
            let mut subscriptions = txn.open_table(SUBSCRIPTIONS)?;
            let mine = subscriptions_of(&subscriptions, device.as_str())?;
            if mine.is_empty() {
                return Ok(Unread {
                    messages: Vec::new(),
                    watermark,
                });
            }
            let services_read: Vec<String> =
                mine.iter().map(|(public, _)| public.clone()).collect();
            let index = txn.open_table(SERVICE_MESSAGES)?;
            // Every unread message as (id, subscription position), oldest first.
            let mut unread = Vec::new();
            for (position, (public, subscription)) in mine.iter().enumerate() {
                let after = subscription.last_read.saturating_add(1);
                for entry in index.range((public.as_str(), after)..=(public.as_str(), u64::MAX))? {
                    unread.push((entry?.0.value().1, position));
                }
            }
            drop(index);
            unread.sort_unstable();
            let dropped = unread.len().saturating_sub(self.limits.max_unread);
            let oldest_kept = oldest_kept(&self.limits);
            let secrets = txn.open_table(SERVICE_SECRETS)?;
            let services = txn.open_table(SERVICES)?;
            let stored = txn.open_table(MESSAGES)?;
            let mut views = vec![None; mine.len()];
            let mut consumed = vec![0u64; mine.len()];
            let mut chosen = Vec::new();
            let mut bytes = 0usize;
            for (rank, (id, position)) in unread.into_iter().enumerate() {
                let Some(record) = stored.get(id)? else {
                    consumed[position] = id;
                    continue;
                };
                let record: MessageRecord = decode(record.value())?;
                if rank < dropped || record.timestamp < oldest_kept {
                    consumed[position] = id;
                    continue;
                }
                let size = record.message.len() + record.title.len() + record.link.len();
                if !chosen.is_empty() && bytes.saturating_add(size) > self.limits.max_fetch_bytes {
                    break;
                }
                if views[position].is_none() {
                    let public = &mine[position].0;
                    views[position] = load_service_by_public(&secrets, &services, public)?
                        .map(|service| service.public_view());
                }
                let Some(view) = views[position].clone() else {
                    consumed[position] = id;
                    continue;
                };
                bytes = bytes.saturating_add(size);
                consumed[position] = id;
                chosen.push((
                    position,
                    id,
                    MessageView {
                        level: record.level,
                        link: record.link,
                        message: record.message,
                        service: view,
                        timestamp: record.timestamp,
                        title: record.title,
                    },
                ));
            }
            drop((secrets, services, stored));
            let checked = now();
            for (position, (public, mut subscription)) in mine.into_iter().enumerate() {
                subscription.timestamp_checked = checked;
                subscription.last_read = subscription.last_read.max(consumed[position]);
                subscriptions.insert(
                    (device.as_str(), public.as_str()),
                    encode(&subscription)?.as_slice(),
                )?;
            }
            drop(subscriptions);
            for public in &services_read {
                clean_up(&txn, public)?;
            }
            chosen.sort_unstable_by_key(|(position, id, _)| (*position, *id));
            chosen.into_iter().map(|(_, id, view)| (id, view)).collect()
        };
        txn.commit()?;
        Ok(Unread {
            messages,
            watermark,
        })
    }

    /// Marks each device's messages read up to and including its id (a live stream delivered
    /// them), in one transaction; ids below what a device has read already change nothing.
    fn mark_read_up_to(&self, marks: &[(DeviceUuid, u64)]) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        {
            let mut services_read = std::collections::BTreeSet::new();
            let mut subscriptions = txn.open_table(SUBSCRIPTIONS)?;
            let checked = now();
            for (device, last) in marks {
                for (public, mut subscription) in subscriptions_of(&subscriptions, device.as_str())?
                {
                    if subscription.last_read >= *last {
                        continue;
                    }
                    subscription.timestamp_checked = checked;
                    subscription.last_read = *last;
                    subscriptions.insert(
                        (device.as_str(), public.as_str()),
                        encode(&subscription)?.as_slice(),
                    )?;
                    services_read.insert(public);
                }
            }
            drop(subscriptions);
            for public in &services_read {
                clean_up(&txn, public)?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// Marks every message read for all the device's subscriptions.
    fn mark_all_read(&self, device: &DeviceUuid) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        {
            let mut subscriptions = txn.open_table(SUBSCRIPTIONS)?;
            let mine = subscriptions_of(&subscriptions, device.as_str())?;
            if mine.is_empty() {
                return Ok(());
            }
            let services_read: Vec<String> =
                mine.iter().map(|(public, _)| public.clone()).collect();
            let newest = read_counter(&txn.open_table(META)?, LAST_MESSAGE_ID)?;
            let checked = now();
            for (public, mut subscription) in mine {
                subscription.timestamp_checked = checked;
                subscription.last_read = newest;
                subscriptions.insert(
                    (device.as_str(), public.as_str()),
                    encode(&subscription)?.as_slice(),
                )?;
            }
            drop(subscriptions);
            for public in &services_read {
                clean_up(&txn, public)?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// Subscribes the device to the service; the subscription starts after the newest message, so
    /// older messages are never delivered to it. Returns the service (public view).
    fn subscribe(
        &self,
        device: &DeviceUuid,
        public: &PublicKey,
    ) -> Result<ServiceView, StoreError> {
        self.check_space()?;
        let _in_order = self.announce_in_order();
        let txn = self.db.begin_write()?;
        let service = {
            let secrets = txn.open_table(SERVICE_SECRETS)?;
            let services = txn.open_table(SERVICES)?;
            let service = load_service_by_public(&secrets, &services, public.as_str())?
                .ok_or(StoreError::ServiceNotFound)?;
            let key = (device.as_str(), public.as_str());
            let mut subscriptions = txn.open_table(SUBSCRIPTIONS)?;
            if subscriptions.get(key)?.is_some() {
                return Err(StoreError::AlreadySubscribed);
            }
            let mut meta = txn.open_table(META)?;
            let order = read_counter(&meta, LAST_SUBSCRIPTION_NUMBER)?.saturating_add(1);
            meta.insert(LAST_SUBSCRIPTION_NUMBER, order)?;
            let subscribed = now();
            let record = SubscriptionRecord {
                order,
                timestamp: subscribed,
                timestamp_checked: subscribed,
                last_read: read_counter(&meta, LAST_MESSAGE_ID)?,
            };
            subscriptions.insert(key, encode(&record)?.as_slice())?;
            txn.open_table(SUBSCRIBERS)?
                .insert((public.as_str(), device.as_str()), ())?;
            tracing::info!(service = %public, device = %device, "subscribed device");
            (service, record)
        };
        txn.commit()?;
        let (service, record) = service;
        if let Some(events) = &self.events {
            events.subscription_changed(SubscriptionView {
                service: service.public_view(),
                timestamp: record.timestamp,
                timestamp_checked: record.timestamp_checked,
                uuid: device.clone(),
            });
        }
        Ok(service.public_view())
    }

    /// The device's subscriptions in the order they were made (empty for unknown devices).
    fn subscriptions(&self, device: &DeviceUuid) -> Result<Vec<SubscriptionView>, StoreError> {
        let txn = self.db.begin_read()?;
        let subscriptions = txn.open_table(SUBSCRIPTIONS)?;
        let secrets = txn.open_table(SERVICE_SECRETS)?;
        let services = txn.open_table(SERVICES)?;
        let mut views = Vec::new();
        for (public, subscription) in subscriptions_of(&subscriptions, device.as_str())? {
            if let Some(service) = load_service_by_public(&secrets, &services, &public)? {
                views.push(SubscriptionView {
                    service: service.public_view(),
                    timestamp: subscription.timestamp,
                    timestamp_checked: subscription.timestamp_checked,
                    uuid: device.clone(),
                });
            }
        }
        Ok(views)
    }

    /// Removes the device's subscription to the service.
    fn unsubscribe(&self, device: &DeviceUuid, public: &PublicKey) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        {
            let secrets = txn.open_table(SERVICE_SECRETS)?;
            let services = txn.open_table(SERVICES)?;
            if load_service_by_public(&secrets, &services, public.as_str())?.is_none() {
                return Err(StoreError::ServiceNotFound);
            }
            drop((secrets, services));
            let removed = txn
                .open_table(SUBSCRIPTIONS)?
                .remove((device.as_str(), public.as_str()))?
                .is_some();
            if !removed {
                return Err(StoreError::NotSubscribed);
            }
            txn.open_table(SUBSCRIBERS)?
                .remove((public.as_str(), device.as_str()))?;
            clean_up(&txn, public.as_str())?;
            tracing::info!(service = %public, device = %device, "unsubscribed device");
        }
        txn.commit()?;
        Ok(())
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
            use redb::ReadableTableMetadata;
            let txn = file.db.begin_read()?;
            Ok((
                txn.open_table(MESSAGES)?.len()?,
                txn.open_table(SERVICE_MESSAGES)?.len()?,
            ))
        })
    }
}

/// Creates the directory and its parents; on Unix a newly created directory is private (0700),
/// because the database holds the services' secrets.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
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

fn load_service(
    services: &impl ReadableTable<&'static str, &'static [u8]>,
    secret: &str,
) -> Result<Option<ServiceRecord>, StoreError> {
    services
        .get(secret)?
        .map(|value| decode(value.value()))
        .transpose()
}

fn load_service_by_public(
    secrets: &impl ReadableTable<&'static str, &'static str>,
    services: &impl ReadableTable<&'static str, &'static [u8]>,
    public: &str,
) -> Result<Option<ServiceRecord>, StoreError> {
    match secrets.get(public)? {
        Some(secret) => load_service(services, secret.value()),
        None => Ok(None),
    }
}

/// The devices subscribed to a service.
fn subscribers_of(
    subscribers: &impl ReadableTable<(&'static str, &'static str), ()>,
    public: &str,
) -> Result<Vec<String>, StoreError> {
    let mut devices = Vec::new();
    for entry in subscribers.range((public, "")..)? {
        let (key, _) = entry?;
        let (service, device) = key.value();
        if service != public {
            break;
        }
        devices.push(device.to_owned());
    }
    Ok(devices)
}

/// A device's subscriptions as (public key, record), in subscription order.
fn subscriptions_of(
    subscriptions: &impl ReadableTable<(&'static str, &'static str), &'static [u8]>,
    device: &str,
) -> Result<Vec<(String, SubscriptionRecord)>, StoreError> {
    let mut found = Vec::new();
    for entry in subscriptions.range((device, "")..)? {
        let (key, value) = entry?;
        let (owner, public) = key.value();
        if owner != device {
            break;
        }
        found.push((
            public.to_owned(),
            decode::<SubscriptionRecord>(value.value())?,
        ));
    }
    found.sort_by_key(|(_, record)| record.order);
    Ok(found)
}

/// Deletes the service's messages that every subscriber has read (all of them when nobody is
/// subscribed any more: a later subscriber starts after the newest message and never sees them).
fn clean_up(txn: &WriteTransaction, public: &str) -> Result<(), StoreError> {
    let devices = subscribers_of(&txn.open_table(SUBSCRIBERS)?, public)?;
    let subscriptions = txn.open_table(SUBSCRIPTIONS)?;
    let mut everyone_read = u64::MAX;
    for device in &devices {
        if let Some(value) = subscriptions.get((device.as_str(), public))? {
            let record: SubscriptionRecord = decode(value.value())?;
            everyone_read = everyone_read.min(record.last_read);
        }
    }
    drop(subscriptions);
    delete_messages_up_to(txn, public, everyone_read)
}

/// Deletes the service's oldest messages beyond `max_unread` and those older than
/// `message_max_age`.
fn prune(txn: &WriteTransaction, public: &str, limits: &StoreLimits) -> Result<(), StoreError> {
    let mut index = txn.open_table(SERVICE_MESSAGES)?;
    let mut ids = Vec::new();
    for entry in index.range((public, 0)..=(public, u64::MAX))? {
        ids.push(entry?.0.value().1);
    }
    let excess = ids.len().saturating_sub(limits.max_unread);
    let oldest_kept = oldest_kept(limits);
    let mut messages = txn.open_table(MESSAGES)?;
    for (position, id) in ids.into_iter().enumerate() {
        let expired = position < excess
            || match messages.get(id)? {
                Some(record) => decode::<MessageRecord>(record.value())?.timestamp < oldest_kept,
                None => true,
            };
        if !expired {
            // Ids grow with time: every later message is younger.
            break;
        }
        index.remove((public, id))?;
        messages.remove(id)?;
    }
    Ok(())
}

/// Deletes the service's messages with ids up to and including `last`.
fn delete_messages_up_to(
    txn: &WriteTransaction,
    public: &str,
    last: u64,
) -> Result<(), StoreError> {
    let mut index = txn.open_table(SERVICE_MESSAGES)?;
    let mut ids = Vec::new();
    for entry in index.range((public, 0)..=(public, last))? {
        let (key, _) = entry?;
        ids.push(key.value().1);
    }
    let mut messages = txn.open_table(MESSAGES)?;
    for id in ids {
        index.remove((public, id))?;
        messages.remove(id)?;
    }
    Ok(())
}
