//! What the store announces once a change is committed: a stored message with the devices it is
//! for, a subscription made or removed, and a notification a route delivered. Live streams (`crate::streams`) listen here. The redb
//! store announces right after its commits; the PostgreSQL store announces what its feed table
//! says, so that every replica hears every replica's changes.

use std::fmt::Debug;

use serde::{Deserialize, Serialize};

use crate::pushjet::DeviceUuid;
use crate::pushjet::wire::{MessageView, SubscriptionView};

/// Length of a stream id: ntfy's 12 letters and digits.
pub const STREAM_ID_LENGTH: usize = 12;

/// A message the store has just committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredMessage {
    /// The store's message id: global and increasing, so it orders every message.
    pub id: u64,
    /// The id live streams show for it (ntfy's `id`): [`STREAM_ID_LENGTH`] random letters and
    /// digits, made once when it is stored, so every replica shows the same.
    pub stream_id: String,
    /// The devices subscribed to the service when it was stored.
    pub devices: Vec<DeviceUuid>,
    /// The message as `GET /message` shows it.
    pub message: MessageView,
}

/// A notification a route delivered (to whichever Pushjet server it sends to), for the route's
/// stream: its message has an id from the store's message ids, so it is ordered with the stored
/// messages, and no devices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteDelivered {
    /// The route's name.
    pub route: String,
    /// The message as the route's stream shows it.
    pub message: StoredMessage,
}

/// A new stream id: [`STREAM_ID_LENGTH`] random letters and digits.
pub fn new_stream_id() -> String {
    (0..STREAM_ID_LENGTH)
        .map(|_| fastrand::alphanumeric())
        .collect()
}

/// Receives the store's committed changes, in commit order. Called on the thread that committed
/// (a blocking one) or on the task that read the shared database's feed: an implementation must
/// return quickly and never block on a client.
pub trait StoreEvents: Send + Sync + Debug {
    /// A message was stored for `message.devices`.
    fn message_stored(&self, message: StoredMessage);
    /// A device subscribed to a service, or its subscription was removed with the service
    /// (the events the real server pushed to its relay, §1.4 and §1.8 of the protocol).
    fn subscription_changed(&self, subscription: SubscriptionView);
    /// A route delivered a notification ([`super::Store::announce_routes`]); ignored unless the
    /// listener serves routes' streams.
    fn route_delivered(&self, delivered: RouteDelivered) {
        let _ignored = delivered;
    }
}
