//! What the store announces once a change is committed: a stored message with the devices it is
//! for, and a subscription made or removed. Live streams (`crate::streams`) listen here; a store
//! shared by several replicas would announce the same events from its change feed instead.

use std::fmt::Debug;

use crate::pushjet::DeviceUuid;
use crate::pushjet::wire::{MessageView, SubscriptionView};

/// A message the store has just committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// The store's message id: global and increasing, so it orders every message.
    pub id: u64,
    /// The devices subscribed to the service when it was stored.
    pub devices: Vec<DeviceUuid>,
    /// The message as `GET /message` shows it.
    pub message: MessageView,
}

/// Receives the store's committed changes. Called on the thread that committed (a blocking one):
/// an implementation must return quickly and never block on a client.
pub trait StoreEvents: Send + Sync + Debug {
    /// A message was stored for `message.devices`.
    fn message_stored(&self, message: StoredMessage);
    /// A device subscribed to a service, or its subscription was removed with the service
    /// (the events the real server pushed to its relay, §1.4 and §1.8 of the protocol).
    fn subscription_changed(&self, subscription: SubscriptionView);
}
