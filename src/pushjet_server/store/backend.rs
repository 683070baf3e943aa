//! The contract every store backend fulfils: the redb file (`redb.rs`) for one process, a
//! PostgreSQL database (`postgres/`) for replicas. [`super::Store`] is the handle over one; its
//! methods document what each operation does.
//!
//! # Why a trait object with boxed futures
//!
//! As for the outbox (`delivery/outbox/backend.rs`): the backend is chosen at run time from the
//! settings and shared by every HTTP worker and stream task, so an `Arc<dyn StoreBackend>` is one
//! cheap handle whatever is behind it. Trait objects cannot have `async fn`s, so the methods
//! return boxed futures; they take their arguments by value and the futures are `'static`, so a
//! caller can hand one to another task. The redb backend runs its blocking work on the blocking
//! thread pool inside the future; the PostgreSQL backend talks to the server over its pool.
//!
//! # Announcements
//!
//! A backend announces each committed message and subscription change to the
//! [`super::StoreEvents`] it was opened with, in commit order: redb right after its commit, on
//! the committing thread; PostgreSQL through the database (a feed table and `NOTIFY`), so that
//! every replica's listener hears every replica's changes, its own included, once each.

use std::fmt;

use futures_util::future::BoxFuture;

use super::{DemoKeys, NewMessage, SendOutcome, StoreError, Unread};
use crate::pushjet::wire::{MessageView, ServiceView, SubscriptionView};
use crate::pushjet::{DeviceUuid, PublicKey, SecretKey};
use crate::pushjet_server::fields::{Icon, ServiceName};

/// What a backend's operation answers.
pub(crate) type Answer<T> = BoxFuture<'static, Result<T, StoreError>>;

/// A store of services, subscriptions and messages (see [`super::Store`] for each operation).
pub(crate) trait StoreBackend: Send + Sync + fmt::Debug {
    /// Creates a service with a fresh secret; its owner view.
    fn create_service(&self, name: ServiceName, icon: Icon) -> Answer<ServiceView>;

    /// The service with this secret (public view), if any.
    fn service_by_secret(&self, secret: SecretKey) -> Answer<Option<ServiceView>>;

    /// The service with this public key (public view), if any.
    fn service_by_public(&self, public: PublicKey) -> Answer<Option<ServiceView>>;

    /// How many devices are subscribed to the service.
    fn subscriber_count(&self, public: PublicKey) -> Answer<usize>;

    /// Changes the name and/or the icon.
    fn update_service(
        &self,
        secret: SecretKey,
        name: Option<ServiceName>,
        icon: Option<Icon>,
    ) -> Answer<()>;

    /// Deletes the service, its subscriptions (announced) and its messages.
    fn delete_service(&self, secret: SecretKey) -> Answer<()>;

    /// Stores a message for the service's subscribers (announced).
    fn send_message(&self, secret: SecretKey, message: NewMessage) -> Answer<SendOutcome>;

    /// The device's unread messages, marked read, with the store's newest message id.
    fn fetch_unread(&self, device: DeviceUuid) -> Answer<Unread>;

    /// Marks each device's messages read up to its id.
    fn mark_read_up_to(&self, marks: Vec<(DeviceUuid, u64)>) -> Answer<()>;

    /// Marks everything read for the device.
    fn mark_all_read(&self, device: DeviceUuid) -> Answer<()>;

    /// Subscribes the device to the service (announced), after the newest message.
    fn subscribe(&self, device: DeviceUuid, public: PublicKey) -> Answer<ServiceView>;

    /// The device's subscriptions in the order they were made.
    fn subscriptions(&self, device: DeviceUuid) -> Answer<Vec<SubscriptionView>>;

    /// Removes the device's subscription to the service.
    fn unsubscribe(&self, device: DeviceUuid, public: PublicKey) -> Answer<()>;

    /// Announces notifications routes delivered (`(route, message)`, oldest first, each with a
    /// new message id), keeping them for the streams' cache; one transaction for all.
    fn announce_routes(&self, delivered: Vec<(String, MessageView)>) -> Answer<()>;

    /// The secret of the device's own service, if it has one.
    fn direct_service(&self, device: DeviceUuid) -> Answer<Option<SecretKey>>;

    /// Remembers `secret` as the device's own service unless the remembered one is no longer
    /// `previous`; the secret remembered in the end.
    fn keep_direct_service(
        &self,
        device: DeviceUuid,
        previous: Option<SecretKey>,
        secret: SecretKey,
    ) -> Answer<SecretKey>;

    /// The demo route's keys as remembered, if any.
    fn demo(&self) -> Answer<Option<DemoKeys>>;

    /// Remembers `keys` unless the remembered keys are no longer `previous`; the keys
    /// remembered in the end.
    fn keep_demo(&self, previous: Option<SecretKey>, keys: DemoKeys) -> Answer<DemoKeys>;

    /// Rows of the message table and of its per-service index (one table on PostgreSQL: the
    /// same count twice).
    #[cfg(test)]
    fn stored_messages(&self) -> Answer<(u64, u64)>;
}
