//! The stream hub: publish/subscribe by device. The store announces each committed message with
//! the devices it is for ([`StoreEvents`]); the hub keeps each device's recent messages in its
//! [`Cache`] (for ntfy's `since`, within one memory budget) and hands every message to the streams
//! open on its devices, once per stream however many of its devices the message is for.
//!
//! A stream counts once per device UUID it names against the stream limits. It receives through
//! a bounded buffer. The hub never waits for a stream: when a buffer is
//! full the stream is dropped from the hub (its receiver then ends, and the connection closes),
//! so a slow client never slows the store or anyone else.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;

use super::metrics::{StreamKind, StreamMetrics};
use crate::config::StreamSettings;
use crate::pushjet::DeviceUuid;
use crate::pushjet::wire::{MessageView, SubscriptionView};
use crate::pushjet_server::{StoreEvents, StoredMessage};

pub use cache::Cache;

/// Length of a message id: ntfy's 12 letters and digits (made by the store, see
/// [`StoredMessage::stream_id`]).
pub const MESSAGE_ID_LENGTH: usize = crate::pushjet_server::STREAM_ID_LENGTH;

/// One stored message as streams see it, shared by every device and stream it goes to.
#[derive(Debug)]
pub struct StreamMessage {
    /// The store's id: global and increasing.
    pub seq: u64,
    /// The id streams show (ntfy's `id`): 12 random letters and digits, the same on every
    /// replica.
    pub id: String,
    /// When the cache lets go of it, seconds since the Unix epoch (ntfy's `expires`).
    pub expires: i64,
    /// The message as `GET /message` shows it.
    pub view: MessageView,
    /// `{"message": M}` as the connector protocol writes it, made once.
    connector_frame: OnceLock<String>,
}

impl StreamMessage {
    /// What the message counts for in the cache's budget: its text twice (the message and the
    /// connector's frame made from it) and a fixed part for the rest.
    pub fn cost(&self) -> usize {
        let view = &self.view;
        let text = view.message.len()
            + view.title.len()
            + view.link.len()
            + view.service.name.len()
            + view.service.icon.len();
        text.saturating_mul(2).saturating_add(512)
    }

    /// `{"message": M}` in the connector's byte form (see [`super::python_json`]).
    pub fn connector_frame(&self) -> &str {
        self.connector_frame.get_or_init(|| {
            super::python_json::to_string(&serde_json::json!({ "message": &self.view }))
        })
    }
}

/// What a stream receives from the hub.
#[derive(Debug, Clone)]
pub enum Delivery {
    /// A message for `device`.
    Message {
        /// The device (topic) it is for.
        device: DeviceUuid,
        /// The message.
        message: Arc<StreamMessage>,
    },
    /// `{"subscription": S}` in the connector's byte form: a subscription of the device was made
    /// or removed. Only connector streams receive these.
    Subscription(Arc<str>),
}

/// Where a stream starts in a device's cache (ntfy's `since`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Since {
    /// Nothing cached: only what arrives from now on.
    Nothing,
    /// Everything cached.
    All,
    /// Only the newest cached message.
    Latest,
    /// The cached messages after the one with this id (all of them when the id is not cached).
    Id(String),
    /// The cached messages sent at or after this Unix time.
    Time(i64),
}

/// Why a stream was not opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// `PUSHJET_BRIDGE_MAX_STREAMS` stream subscriptions (one per device UUID of each stream)
    /// are open.
    #[error("too many streams are open on this server ({0}, one per device UUID of each stream)")]
    TooManyStreams(usize),
    /// `PUSHJET_BRIDGE_MAX_STREAMS_PER_DEVICE` streams are open for a device.
    #[error("too many streams are open for this device ({0})")]
    TooManyForDevice(usize),
    /// The service is shutting down.
    #[error("the server is shutting down")]
    ShuttingDown,
}

struct Listener {
    id: u64,
    kind: StreamKind,
    sender: mpsc::Sender<Delivery>,
    /// Every device the stream is on (shared by its entries under each of them).
    devices: Arc<[DeviceUuid]>,
}

struct State {
    cache: Cache,
    /// The streams open on each device.
    listeners: HashMap<DeviceUuid, Vec<Listener>>,
    /// Stream subscriptions open: each stream once per device it is on.
    open: usize,
    /// The newest message published: one with this id or an older one is not published again.
    newest: u64,
}

/// Publish/subscribe by device with a per-device cache. Shared as `Arc<Hub>`.
#[derive(Debug)]
pub struct Hub {
    state: Mutex<State>,
    settings: StreamSettings,
    metrics: StreamMetrics,
    next_listener: AtomicU64,
    closing: AtomicBool,
    closed: tokio::sync::watch::Sender<bool>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("cache_bytes", &self.cache.bytes())
            .field("listened", &self.listeners.len())
            .field("open", &self.open)
            .finish()
    }
}

/// An open stream: what the hub delivers, until the stream is dropped (which unregisters it).
#[derive(Debug)]
pub struct Stream {
    /// Deliveries in order. `None` once the hub let go of the stream: it was too slow, or the
    /// service is shutting down ([`Hub::is_closing`] tells which).
    pub receiver: mpsc::Receiver<Delivery>,
    /// Unregisters the stream from the hub when the stream is dropped.
    _registration: Registration,
}

#[derive(Debug)]
struct Registration {
    hub: Arc<Hub>,
    id: u64,
    kind: StreamKind,
    devices: Vec<DeviceUuid>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.hub.unregister(self.id, self.kind, &self.devices);
    }
}

impl Hub {
    /// An empty hub.
    pub fn new(settings: StreamSettings, metrics: StreamMetrics) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                cache: Cache::new(settings.cache_for, settings.cache_max_bytes),
                listeners: HashMap::new(),
                open: 0,
                newest: 0,
            }),
            settings,
            metrics,
            next_listener: AtomicU64::new(1),
            closing: AtomicBool::new(false),
            closed: tokio::sync::watch::channel(false).0,
        })
    }

    /// The settings the hub runs with.
    pub fn settings(&self) -> &StreamSettings {
        &self.settings
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Opens a stream on `devices` that receives what is published for any of them from now on;
    /// returns it with the cached messages `since` selects, oldest first, each once. Nothing
    /// published in between is missed or repeated: both happen under one lock.
    pub fn open(
        self: &Arc<Self>,
        devices: &[DeviceUuid],
        kind: StreamKind,
        since: &Since,
    ) -> Result<(Vec<Delivery>, Stream), Refused> {
        let mut state = self.lock();
        if self.is_closing() {
            return Err(Refused::ShuttingDown);
        }
        if state.open.saturating_add(devices.len()) > self.settings.max_streams {
            self.metrics.refused(kind);
            return Err(Refused::TooManyStreams(self.settings.max_streams));
        }
        let per_device = self.settings.max_streams_per_device;
        if devices.iter().any(|device| {
            state
                .listeners
                .get(device)
                .is_some_and(|listeners| listeners.len() >= per_device)
        }) {
            self.metrics.refused(kind);
            return Err(Refused::TooManyForDevice(per_device));
        }
        state.cache.prune(now());
        let cached = deliveries(state.cache.select(devices, since));
        let (sender, receiver) = mpsc::channel(self.settings.buffer);
        let id = self.next_listener.fetch_add(1, Ordering::Relaxed);
        let on: Arc<[DeviceUuid]> = devices.into();
        for device in devices {
            state
                .listeners
                .entry(device.clone())
                .or_default()
                .push(Listener {
                    id,
                    kind,
                    sender: sender.clone(),
                    devices: on.clone(),
                });
        }
        state.open += devices.len();
        self.metrics.opened(kind);
        let registration = Registration {
            hub: self.clone(),
            id,
            kind,
            devices: devices.to_vec(),
        };
        Ok((
            cached,
            Stream {
                receiver,
                _registration: registration,
            },
        ))
    }

    /// The cached messages `since` selects for `devices`, oldest first, each once, without
    /// opening a stream (ntfy's `poll=1`). The messages are the cache's own, shared: the list
    /// costs a pointer and a device per message.
    pub fn cached(self: &Arc<Self>, devices: &[DeviceUuid], since: &Since) -> Vec<Delivery> {
        let mut state = self.lock();
        state.cache.prune(now());
        deliveries(state.cache.select(devices, since))
    }

    fn unregister(&self, id: u64, kind: StreamKind, devices: &[DeviceUuid]) {
        let mut state = self.lock();
        let removed = remove_listener(&mut state, id, devices);
        if removed > 0 {
            state.open = state.open.saturating_sub(removed);
            self.metrics.closed(kind);
        }
    }

    /// Hands `delivery` to every stream of `device` that wants it and is not in `served`; a
    /// stream on several devices then joins `served` (one on a single device cannot be met
    /// again). A stream whose buffer is full is dropped from the hub.
    fn deliver(
        &self,
        state: &mut State,
        device: &DeviceUuid,
        delivery: &Delivery,
        served: &mut Vec<u64>,
    ) {
        let Some(listeners) = state.listeners.get(device) else {
            return;
        };
        let mut dropped = Vec::new();
        for listener in listeners {
            let several = listener.devices.len() > 1;
            if (several && served.contains(&listener.id))
                || (matches!(delivery, Delivery::Subscription(_))
                    && listener.kind != StreamKind::Connector)
            {
                continue;
            }
            if several {
                served.push(listener.id);
            }
            match listener.sender.try_send(delivery.clone()) {
                Ok(()) => {
                    if matches!(delivery, Delivery::Message { .. }) {
                        self.metrics.streamed(listener.kind);
                    }
                }
                Err(mpsc::error::TrySendError::Full(_)) => {
                    self.metrics.dropped_slow(listener.kind);
                    dropped.push((listener.id, listener.kind, listener.devices.clone()));
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
        for (id, kind, devices) in dropped {
            tracing::info!(
                device = %device,
                stream = kind.as_str(),
                "dropped a slow stream: its buffer was full"
            );
            let removed = remove_listener(state, id, &devices);
            if removed > 0 {
                state.open = state.open.saturating_sub(removed);
                self.metrics.closed(kind);
            }
        }
    }

    /// Publishes a stored message: cached for its devices and handed to their streams, once per
    /// stream. Messages come in id order: one that is not newer than the last published is
    /// ignored (the hub already has it).
    pub fn publish_message(&self, stored: StoredMessage) {
        let message = Arc::new(StreamMessage {
            seq: stored.id,
            id: stored.stream_id,
            expires: stored
                .message
                .timestamp
                .saturating_add(cache_seconds(self.settings.cache_for)),
            view: stored.message,
            connector_frame: OnceLock::new(),
        });
        let mut state = self.lock();
        if message.seq <= state.newest {
            return;
        }
        state.newest = message.seq;
        state.cache.insert(message.clone(), &stored.devices, now());
        let mut served = Vec::new();
        for device in stored.devices {
            let delivery = Delivery::Message {
                device: device.clone(),
                message: message.clone(),
            };
            self.deliver(&mut state, &device, &delivery, &mut served);
        }
    }

    /// Publishes a subscription change to the device's connector streams.
    pub fn publish_subscription(&self, subscription: SubscriptionView) {
        let frame: Arc<str> = super::python_json::to_string(&serde_json::json!({
            "subscription": &subscription
        }))
        .into();
        let mut state = self.lock();
        self.deliver(
            &mut state,
            &subscription.uuid,
            &Delivery::Subscription(frame),
            &mut Vec::new(),
        );
    }

    /// Forgets cached messages older than the cache window.
    pub fn prune(&self) {
        self.lock().cache.prune(now());
    }

    /// Lets go of every stream (their receivers end) and refuses new ones: the service stops.
    pub fn close_all(&self) {
        self.closing.store(true, Ordering::SeqCst);
        self.closed.send_replace(true);
        let mut state = self.lock();
        let mut closed = Vec::new();
        for listener in state.listeners.drain().flat_map(|(_, listeners)| listeners) {
            if !closed.contains(&listener.id) {
                closed.push(listener.id);
                self.metrics.closed(listener.kind);
            }
        }
        state.open = 0;
    }

    /// Counts a stream dropped by its endpoint because its client reads too slowly for what
    /// waits to be sent (the hub drops the ones whose buffer is full itself).
    pub fn dropped_slow(&self, kind: StreamKind) {
        tracing::info!(
            stream = kind.as_str(),
            "dropped a slow stream: too many bytes waited for its client"
        );
        self.metrics.dropped_slow(kind);
    }

    /// Whether the service is shutting down.
    pub fn is_closing(&self) -> bool {
        self.closing.load(Ordering::SeqCst)
    }

    /// Resolves once the service starts shutting down.
    pub async fn closed(&self) {
        let mut closed = self.closed.subscribe();
        let _closed_or_gone = closed.wait_for(|closed| *closed).await;
    }

    /// How many stream subscriptions are open (each stream once per device it is on).
    #[cfg(test)]
    pub fn open_streams(&self) -> usize {
        self.lock().open
    }

    /// The bytes the cache counts.
    #[cfg(test)]
    pub fn cache_bytes(&self) -> usize {
        self.lock().cache.bytes()
    }
}

impl StoreEvents for Hub {
    fn message_stored(&self, message: StoredMessage) {
        self.publish_message(message);
    }

    fn subscription_changed(&self, subscription: SubscriptionView) {
        self.publish_subscription(subscription);
    }
}

/// Takes stream `id` off `devices`; how many devices it was on.
fn remove_listener(state: &mut State, id: u64, devices: &[DeviceUuid]) -> usize {
    let mut removed = 0;
    for device in devices {
        if let Some(listeners) = state.listeners.get_mut(device) {
            let before = listeners.len();
            listeners.retain(|listener| listener.id != id);
            removed += before - listeners.len();
            if listeners.is_empty() {
                state.listeners.remove(device);
            }
        }
    }
    removed
}

fn deliveries(selected: Vec<cache::Selected>) -> Vec<Delivery> {
    selected
        .into_iter()
        .map(|(device, message)| Delivery::Message { device, message })
        .collect()
}

fn cache_seconds(window: Duration) -> i64 {
    i64::try_from(window.as_secs()).unwrap_or(i64::MAX / 2)
}

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX / 2)
        })
}

mod cache;

#[cfg(test)]
mod tests;
