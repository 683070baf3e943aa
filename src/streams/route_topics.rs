//! A route's name as an ntfy topic to read: `GET /<route>/json|sse|raw|ws` streams every
//! notification the route delivers (the dispatcher announces each through the store,
//! [`crate::pushjet_server::Store::announce_routes`], so every replica hears every replica's), to a
//! reader holding one of the route's credentials ([`crate::verify::ReaderAuth`]).
//!
//! The hub keeps streams and caches by device UUID; a route's notifications are kept there under
//! a UUID of its own that nobody can name: an HMAC of the route's name under a key this process
//! draws at start. A device path (`/<uuid>/json`) can therefore never reach a route's stream, and
//! the hub needs no second kind of topic. Events show the route's name as their `topic`.
//!
//! [`RouteAnnouncer`] is told of each notification a route delivered (by the dispatcher, and by
//! a `sync` route's request) and announces them through the store, a batch at a time. [`RouteTopics`] is what the
//! store announces to: stored messages and subscription changes go to the hub unchanged, a
//! route's notifications to the route's UUID.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use tokio::sync::mpsc;

use super::Hub;
use crate::pushjet::wire::{MessageView, ServiceView, SubscriptionView};
use crate::pushjet::{DeviceUuid, NewMessage, SecretKey};
use crate::pushjet_server::{RouteDelivered, Store, StoreEvents, StoredMessage};
use crate::routes::RouteName;

/// How many announcements wait for the store at most; a sender beyond it waits its turn.
const QUEUE: usize = 1024;
/// How many announcements the store takes in one transaction at most.
const BATCH: usize = 256;
/// The least time between two of the announcing task's writes: under load announcements gather
/// for this long (a transaction each instead of one per notification), adding at most this to
/// when a route's readers see a notification; one after a quiet spell is written at once.
const WRITE_GAP: std::time::Duration = std::time::Duration::from_millis(5);

/// Announces what routes deliver, for their streams; cheap to clone. Announcements queue (at
/// most [`QUEUE`]) for one task that hands the store whatever has gathered, in one transaction,
/// at most one every [`WRITE_GAP`]: at thousands of notifications a second that is a commit per
/// batch, not per notification. The
/// task ends once every clone is dropped and the queue is empty.
#[derive(Debug, Clone)]
pub struct RouteAnnouncer {
    queue: mpsc::Sender<(String, MessageView)>,
}

impl RouteAnnouncer {
    /// Announcing through `store` (to its listener, and on PostgreSQL every replica's); starts
    /// the announcing task on the current runtime.
    pub fn new(store: Arc<Store>) -> Self {
        let (queue, mut waiting) = mpsc::channel(QUEUE);
        actix_web::rt::spawn(async move {
            let mut batch = Vec::with_capacity(BATCH);
            let mut last_write: Option<tokio::time::Instant> = None;
            while waiting.recv_many(&mut batch, BATCH).await > 0 {
                // Right after a write, what comes next waits out the gap and goes with whatever
                // gathers meanwhile; after a quiet spell it goes at once.
                if let Some(due) = last_write.map(|at| at + WRITE_GAP)
                    && due > tokio::time::Instant::now()
                {
                    tokio::time::sleep_until(due).await;
                    while batch.len() < BATCH {
                        match waiting.try_recv() {
                            Ok(more) => batch.push(more),
                            Err(_) => break,
                        }
                    }
                }
                last_write = Some(tokio::time::Instant::now());
                let count = batch.len();
                if let Err(error) = store.announce_routes(std::mem::take(&mut batch)).await {
                    tracing::warn!(
                        count,
                        "cannot announce delivered notifications to their routes' streams: {error}"
                    );
                }
            }
        });
        Self { queue }
    }

    /// `route`, sending with `secret`, delivered `message`: queued for the store (waiting while
    /// [`QUEUE`] announcements are ahead); the sender never waits for the store itself.
    pub async fn delivered(&self, route: &RouteName, secret: &SecretKey, message: &NewMessage) {
        let view = MessageView {
            level: message.importance,
            link: message
                .link
                .as_ref()
                .map(|link| link.as_str().to_owned())
                .unwrap_or_default(),
            message: message.message.as_str().to_owned(),
            service: ServiceView {
                created: 0,
                icon: String::new(),
                name: route.as_str().to_owned(),
                public: secret.public_key(),
                secret: None,
            },
            timestamp: super::hub::now(),
            title: message.title.as_str().to_owned(),
        };
        if self
            .queue
            .send((route.as_str().to_owned(), view))
            .await
            .is_err()
        {
            tracing::warn!(route = %route, "the routes' streams have stopped; a delivered notification was not announced");
        }
    }
}

/// The routes' topics in the hub; shared as `Arc<RouteTopics>`.
pub struct RouteTopics {
    hub: Arc<Hub>,
    key: [u8; 32],
    /// Each route's UUID, made once.
    topics: Mutex<HashMap<String, DeviceUuid>>,
}

impl std::fmt::Debug for RouteTopics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteTopics").finish_non_exhaustive()
    }
}

impl RouteTopics {
    /// The routes' topics in `hub`, under a fresh key (the operating system's randomness; when
    /// it fails, a key of the process's own random numbers).
    pub fn new(hub: Arc<Hub>) -> Arc<Self> {
        let mut key = [0u8; 32];
        if getrandom::fill(&mut key).is_err() {
            key.iter_mut().for_each(|byte| *byte = fastrand::u8(..));
        }
        Arc::new(Self {
            hub,
            key,
            topics: Mutex::new(HashMap::new()),
        })
    }

    /// The hub's UUID for `route`'s stream.
    pub fn topic(&self, route: &str) -> DeviceUuid {
        let mut topics = self.topics.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(topic) = topics.get(route) {
            return topic.clone();
        }
        let topic = self.derive(route);
        topics.insert(route.to_owned(), topic.clone());
        topic
    }

    fn derive(&self, route: &str) -> DeviceUuid {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        mac.update(route.as_bytes());
        let hex = hex::encode(&mac.finalize().into_bytes()[..16]);
        let uuid = format!(
            "{}-{}-{}-{}-{}",
            &hex[..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..32]
        );
        DeviceUuid::parse(&uuid).unwrap_or_else(|_| unreachable!("32 hex digits in UUID groups"))
    }
}

impl StoreEvents for RouteTopics {
    fn message_stored(&self, message: StoredMessage) {
        self.hub.publish_message(message);
    }

    fn subscription_changed(&self, subscription: SubscriptionView) {
        self.hub.publish_subscription(subscription);
    }

    fn route_delivered(&self, delivered: RouteDelivered) {
        let RouteDelivered { route, message } = delivered;
        self.hub.publish_message(StoredMessage {
            devices: vec![self.topic(&route)],
            ..message
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StreamSettings;
    use crate::streams::StreamMetrics;

    #[test]
    fn a_routes_topic_is_stable_in_a_process_and_unguessable_across_them() {
        let hub = Hub::new(StreamSettings::default(), StreamMetrics::default());
        let (first, second) = (RouteTopics::new(hub.clone()), RouteTopics::new(hub));
        assert_eq!(first.topic("ops"), first.topic("ops"));
        assert_ne!(first.topic("ops"), first.topic("ci"));
        assert_ne!(first.topic("ops"), second.topic("ops"), "another key");
    }
}
