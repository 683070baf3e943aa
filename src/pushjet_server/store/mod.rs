//! Persistence of the embedded Pushjet server: [`Store`] is the one handle the endpoints, the
//! live streams and the demo route use; what keeps the data is a [`StoreBackend`] below it
//! (`backend.rs`: the contract, and why it is a trait object with boxed futures):
//!
//! - `redb.rs`: one redb file, `<data_dir>/pushjet.redb`, for a single process (the default),
//!   which also keeps the live streams' cache (`stream_cache.rs`) across restarts;
//! - `postgres/`: the PostgreSQL database of `PUSHJET_BRIDGE_DATABASE_URL`, shared by any number
//!   of replicas, which also carries the live streams' announcements to every replica.
//!
//! Every change is one transaction, committed before its method answers; keys are compared
//! exactly (case-sensitive), like the real server on SQLite, except device UUIDs, which
//! [`DeviceUuid`] keeps in lower case (an older redb file is re-keyed when it opens, an older
//! database by migration 0005). Both backends behave the same (the
//! tests in `tests.rs` run on both), except for [`StoreLimits::max_disk_bytes`], which only the
//! redb file has: on PostgreSQL the database's own quotas apply.

mod backend;
mod demo_file;
#[cfg(test)]
mod lower_case_tests;
mod postgres;
mod redb;
mod stream_cache;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub(crate) use backend::StoreBackend;
pub use redb::DATABASE_FILE_NAME;

use super::events::StoreEvents;
use super::fields::{Icon, Link, ServiceName};
use crate::config::DatabaseUrl;
use crate::pushjet::wire::{MessageView, ServiceView, SubscriptionView};
use crate::pushjet::{DeviceUuid, Importance, MessageText, PublicKey, SecretKey, Title};

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The data directory could not be created.
    #[error("cannot create the Pushjet data directory {}: {source}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The database file could not be opened (in use by another process, unreadable, …).
    #[error("cannot open the Pushjet database {}: {source}", path.display())]
    Open {
        /// The database file.
        path: PathBuf,
        /// What redb said.
        source: ::redb::DatabaseError,
    },
    /// A read or write of the database file failed.
    #[error("the Pushjet database failed: {0}")]
    Database(#[from] ::redb::Error),
    /// The shared database cannot be reached, or refused (HTTP 503 with `Retry-After`).
    #[error("the Pushjet database is unavailable: {0}")]
    Unavailable(String),
    /// A stored record could not be encoded or decoded.
    #[error("a Pushjet database record is unreadable: {0}")]
    Record(#[from] serde_json::Error),
    /// A stored value is not what it should be (a key that does not parse).
    #[error("the Pushjet database holds a malformed {0}")]
    Malformed(&'static str),
    /// The operating system's random number generator failed, so no secret could be made.
    #[error("cannot generate a service secret: {0}")]
    Randomness(getrandom::Error),
    /// The blocking work of a request could not run.
    #[error("the Pushjet store's work stopped: {0}")]
    Stopped(String),
    /// No service has that key.
    #[error("no service has that key")]
    ServiceNotFound,
    /// The device is already subscribed to that service.
    #[error("the device is already subscribed to that service")]
    AlreadySubscribed,
    /// The device is not subscribed to that service.
    #[error("the device is not subscribed to that service")]
    NotSubscribed,
    /// The database reached its size ceiling; nothing more is stored until space is freed.
    #[error("the Pushjet database reached its size ceiling")]
    Full,
    /// The demo route's file could not be read or written.
    #[error("cannot use {}: {source}", path.display())]
    DemoFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The demo route's file holds something else than the demo's keys.
    #[error("{} is not a demo file this version understands; delete it to start over", path.display())]
    DemoUnreadable {
        /// The file.
        path: PathBuf,
    },
}

impl From<crate::database::DatabaseError> for StoreError {
    fn from(error: crate::database::DatabaseError) -> Self {
        Self::Unavailable(error.0)
    }
}

/// A message ready to be stored: every field already parsed and within its limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    /// The text (non-empty, at most 65,535 bytes).
    pub text: MessageText,
    /// The title (stripped, at most 255 characters, may be empty).
    pub title: Title,
    /// The link (stripped, may be empty).
    pub link: Link,
    /// The level, 1 to 5.
    pub level: Importance,
}

/// What became of a sent message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendOutcome {
    /// Stored for the service's current subscribers.
    Stored,
    /// The service has no subscribers, so nothing was stored (the real server does the same).
    NoSubscribers,
}

/// What the store keeps, at most (see [`crate::config::ApiLimits`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreLimits {
    /// Messages kept per service, and returned per device; the oldest go first.
    pub max_unread: usize,
    /// How long a message is kept.
    pub message_max_age: Duration,
    /// Message bytes (text, title, link) in one fetch; at least one message is returned.
    pub max_fetch_bytes: usize,
    /// The database file's size in bytes beyond which nothing new is stored (redb only: on
    /// PostgreSQL the database's own quotas apply).
    pub max_disk_bytes: u64,
}

/// A device's unread messages with their ids, read by a live stream (see
/// [`Store::fetch_unread`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Unread {
    /// The messages with their ids, in `GET /message` order.
    pub messages: Vec<(u64, MessageView)>,
    /// The newest message id of the whole store when they were read: every message with a
    /// higher id was stored afterwards.
    pub watermark: u64,
}

/// The demo route's Pushjet service and device (see `crate::demo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DemoKeys {
    /// The service's secret.
    pub(crate) secret: SecretKey,
    /// The device subscribed to it.
    pub(crate) device: DeviceUuid,
}

/// How a store is opened, besides where.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// What it keeps, at most.
    pub limits: StoreLimits,
    /// Who hears of every committed message and subscription change (the live streams' hub).
    /// On PostgreSQL it hears those of every replica, through the database.
    pub events: Option<Arc<dyn StoreEvents>>,
    /// How long the live streams cache messages (`PUSHJET_BRIDGE_STREAM_CACHE`): on PostgreSQL,
    /// how long the announcements are kept for a replica that starts to fill its cache from.
    pub stream_cache: Duration,
    /// The live streams' cache budget in bytes (`PUSHJET_BRIDGE_STREAM_CACHE_MAX_BYTES`): at
    /// start the newest kept announcements up to about this many bytes fill it, not all of them.
    pub stream_cache_bytes: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            limits: crate::config::ApiLimits::default().store_limits(),
            events: None,
            stream_cache: crate::config::StreamSettings::default().cache_for,
            stream_cache_bytes: crate::config::StreamSettings::default().cache_max_bytes,
        }
    }
}

/// The embedded server's storage: a cheap handle (every clone is the same store) over its
/// backend. Every method returns a future that owns what it needs, so it can be awaited anywhere.
#[derive(Debug, Clone)]
pub struct Store {
    backend: Arc<dyn StoreBackend>,
}

use backend::Answer;

impl Store {
    /// Opens `<data_dir>/pushjet.redb` with the default limits and no listener, creating the
    /// directory (mode 0700 on Unix) and the file if needed. Blocking: call it at start-up or
    /// off the async workers.
    pub fn open(data_dir: &Path) -> Result<Store, StoreError> {
        Self::open_with(data_dir, StoreOptions::default())
    }

    /// [`Store::open`] with `options`.
    pub fn open_with(data_dir: &Path, options: StoreOptions) -> Result<Store, StoreError> {
        Ok(Self::new(redb::RedbStore::open(data_dir, options)?))
    }

    /// Opens the store the settings ask for: in the PostgreSQL database `database` when it is
    /// given (connecting, migrating its schema, filling the listener's cache from the recent
    /// announcements and listening for new ones), else the redb file in `data_dir` as
    /// [`Store::open_with`] does, off the async workers.
    pub async fn connect(
        data_dir: &Path,
        database: Option<&DatabaseUrl>,
        options: StoreOptions,
    ) -> Result<Store, StoreError> {
        if let Some(url) = database {
            return Ok(Self::new(
                postgres::PostgresStore::connect(url, options).await?,
            ));
        }
        let data_dir = data_dir.to_path_buf();
        tokio::task::spawn_blocking(move || Self::open_with(&data_dir, options))
            .await
            .map_err(|error| StoreError::Stopped(error.to_string()))?
    }

    fn new(backend: impl StoreBackend + 'static) -> Self {
        Self {
            backend: Arc::new(backend),
        }
    }

    /// Creates a service with a fresh secret and returns its owner view (with `secret`).
    pub fn create_service(&self, name: &ServiceName, icon: &Icon) -> Answer<ServiceView> {
        self.backend.create_service(name.clone(), icon.clone())
    }

    /// The service with this secret (public view: no `secret` field), if any.
    pub fn service_by_secret(&self, secret: &SecretKey) -> Answer<Option<ServiceView>> {
        self.backend.service_by_secret(secret.clone())
    }

    /// The service with this public key (public view), if any.
    pub fn service_by_public(&self, public: &PublicKey) -> Answer<Option<ServiceView>> {
        self.backend.service_by_public(public.clone())
    }

    /// How many devices are subscribed to the service with this public key.
    pub fn subscriber_count(&self, public: &PublicKey) -> Answer<usize> {
        self.backend.subscriber_count(public.clone())
    }

    /// Changes the name and/or the icon (`None` leaves a field as it is).
    pub fn update_service(
        &self,
        secret: &SecretKey,
        name: Option<&ServiceName>,
        icon: Option<&Icon>,
    ) -> Answer<()> {
        self.backend
            .update_service(secret.clone(), name.cloned(), icon.cloned())
    }

    /// Deletes the service with all its subscriptions and stored messages.
    pub fn delete_service(&self, secret: &SecretKey) -> Answer<()> {
        self.backend.delete_service(secret.clone())
    }

    /// Stores a message for the service's current subscribers, then deletes the service's
    /// messages that every subscriber has read and those beyond the limits. Stores nothing when
    /// nobody is subscribed.
    pub fn send_message(&self, secret: &SecretKey, message: &NewMessage) -> Answer<SendOutcome> {
        self.backend.send_message(secret.clone(), message.clone())
    }

    /// Returns the device's unread messages, grouped by subscription in subscription order and
    /// oldest first within each, and marks them read (a second call returns none of them). Only
    /// the newest `max_unread` count (older ones are dropped, marked read unseen), none older
    /// than `message_max_age`, and no more than `max_fetch_bytes` of them (at least one): the
    /// newer rest stays unread for the next call.
    pub fn fetch_messages(&self, device: &DeviceUuid) -> Answer<Vec<MessageView>> {
        let unread = self.fetch_unread(device);
        Box::pin(async move {
            Ok(unread
                .await?
                .messages
                .into_iter()
                .map(|(_, view)| view)
                .collect())
        })
    }

    /// [`Store::fetch_messages`] with each message's id, and the store's newest message id at that
    /// moment (a live stream skips the messages it announces up to there).
    pub fn fetch_unread(&self, device: &DeviceUuid) -> Answer<Unread> {
        self.backend.fetch_unread(device.clone())
    }

    /// Marks each device's messages read up to and including its id (a live stream delivered
    /// them), in one transaction; ids below what a device has read already change nothing.
    pub fn mark_read_up_to(&self, marks: &[(DeviceUuid, u64)]) -> Answer<()> {
        self.backend.mark_read_up_to(marks.to_vec())
    }

    /// Marks every message read for all the device's subscriptions.
    pub fn mark_all_read(&self, device: &DeviceUuid) -> Answer<()> {
        self.backend.mark_all_read(device.clone())
    }

    /// Subscribes the device to the service; the subscription starts after the newest message, so
    /// older messages are never delivered to it. Returns the service (public view).
    pub fn subscribe(&self, device: &DeviceUuid, public: &PublicKey) -> Answer<ServiceView> {
        self.backend.subscribe(device.clone(), public.clone())
    }

    /// The device's subscriptions in the order they were made (empty for unknown devices).
    pub fn subscriptions(&self, device: &DeviceUuid) -> Answer<Vec<SubscriptionView>> {
        self.backend.subscriptions(device.clone())
    }

    /// Removes the device's subscription to the service.
    pub fn unsubscribe(&self, device: &DeviceUuid, public: &PublicKey) -> Answer<()> {
        self.backend.unsubscribe(device.clone(), public.clone())
    }

    /// Announces notifications routes delivered (`(route, message)`, oldest first) to the
    /// listeners of every replica (the routes' streams), each under a new message id, and keeps
    /// them for their cache as it keeps stored messages, in one transaction. Nothing is stored
    /// for any device.
    pub fn announce_routes(&self, delivered: Vec<(String, MessageView)>) -> Answer<()> {
        self.backend.announce_routes(delivered)
    }

    /// The secret of the device's own service (see [`crate::pushjet_server::direct`]), if it
    /// has one.
    pub(crate) fn direct_service(&self, device: &DeviceUuid) -> Answer<Option<SecretKey>> {
        self.backend.direct_service(device.clone())
    }

    /// Remembers `secret` as the device's own service, unless the remembered one is no longer
    /// `previous` (another replica remembered its own first); the secret remembered in the end.
    pub(crate) fn keep_direct_service(
        &self,
        device: &DeviceUuid,
        previous: Option<&SecretKey>,
        secret: &SecretKey,
    ) -> Answer<SecretKey> {
        self.backend
            .keep_direct_service(device.clone(), previous.cloned(), secret.clone())
    }

    /// The demo route's keys as remembered, if any.
    pub(crate) fn demo(&self) -> Answer<Option<DemoKeys>> {
        self.backend.demo()
    }

    /// Remembers `keys` as the demo route's, unless the remembered keys are no longer
    /// `previous` (another replica remembered its own first); the keys remembered in the end.
    pub(crate) fn keep_demo(
        &self,
        previous: Option<&SecretKey>,
        keys: DemoKeys,
    ) -> Answer<DemoKeys> {
        self.backend.keep_demo(previous.cloned(), keys)
    }

    /// The stored messages: (rows of the message table, rows of its per-service index).
    #[cfg(test)]
    fn stored_messages(&self) -> Answer<(u64, u64)> {
        self.backend.stored_messages()
    }
}

/// Seconds since the Unix epoch.
fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX)
        })
}

/// The oldest message time `limits` keeps, at `now`.
fn oldest_kept(limits: &StoreLimits) -> i64 {
    now().saturating_sub(i64::try_from(limits.message_max_age.as_secs()).unwrap_or(i64::MAX))
}
