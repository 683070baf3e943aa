//! The stream hub: publish/subscribe by device. The store announces each committed message with
//! the devices it is for ([`StoreEvents`]); the hub keeps a cache of each device's recent messages
//! (for ntfy's `since`) and hands every message to the streams open on its devices.
//!
//! A stream receives through a bounded buffer. The hub never waits for a stream: when a buffer is
//! full the stream is dropped from the hub (its receiver then ends, and the connection closes),
//! so a slow client never slows the store or anyone else.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;

use super::metrics::{StreamKind, StreamMetrics};
use crate::config::StreamSettings;
use crate::pushjet::DeviceUuid;
use crate::pushjet::wire::{MessageView, SubscriptionView};
use crate::pushjet_server::{StoreEvents, StoredMessage};

/// The most messages cached per device, whatever the cache window: a chatty service cannot grow
/// the cache without bound.
pub const CACHE_MAX_PER_DEVICE: usize = 1000;

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
    /// `PUSHJET_BRIDGE_MAX_STREAMS` streams are open.
    #[error("too many streams are open on this server ({0})")]
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
}

#[derive(Default)]
struct DeviceState {
    cache: VecDeque<Arc<StreamMessage>>,
    listeners: Vec<Listener>,
}

#[derive(Default)]
struct State {
    devices: HashMap<DeviceUuid, DeviceState>,
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
            .field("devices", &self.devices.len())
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
            state: Mutex::new(State::default()),
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
    /// returns it with the cached messages `since` selects, oldest first. Nothing published in
    /// between is missed or repeated: both happen under one lock.
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
        if state.open >= self.settings.max_streams {
            self.metrics.refused(kind);
            return Err(Refused::TooManyStreams(self.settings.max_streams));
        }
        let per_device = self.settings.max_streams_per_device;
        if devices.iter().any(|device| {
            state
                .devices
                .get(device)
                .is_some_and(|entry| entry.listeners.len() >= per_device)
        }) {
            self.metrics.refused(kind);
            return Err(Refused::TooManyForDevice(per_device));
        }
        let cutoff = now() - cache_seconds(self.settings.cache_for);
        let after = match since {
            Since::Id(id) => Some(
                devices
                    .iter()
                    .filter_map(|device| state.devices.get(device))
                    .flat_map(|entry| entry.cache.iter())
                    .find(|message| message.id == *id)
                    .map_or(0, |message| message.seq),
            ),
            _ => None,
        };
        let mut cached = Vec::new();
        for device in devices {
            let Some(entry) = state.devices.get_mut(device) else {
                continue;
            };
            prune(&mut entry.cache, cutoff);
            let selected: Vec<&Arc<StreamMessage>> = match since {
                Since::Nothing => Vec::new(),
                Since::All => entry.cache.iter().collect(),
                Since::Latest => entry.cache.back().into_iter().collect(),
                Since::Id(_) => {
                    let after = after.unwrap_or(0);
                    entry
                        .cache
                        .iter()
                        .filter(|message| message.seq > after)
                        .collect()
                }
                Since::Time(time) => entry
                    .cache
                    .iter()
                    .filter(|message| message.view.timestamp >= *time)
                    .collect(),
            };
            cached.extend(selected.into_iter().map(|message| Delivery::Message {
                device: device.clone(),
                message: message.clone(),
            }));
        }
        cached.sort_by_key(|delivery| match delivery {
            Delivery::Message { message, .. } => message.seq,
            Delivery::Subscription(_) => 0,
        });
        if matches!(since, Since::Latest) && cached.len() > 1 {
            cached.drain(..cached.len() - 1);
        }
        let (sender, receiver) = mpsc::channel(self.settings.buffer);
        let id = self.next_listener.fetch_add(1, Ordering::Relaxed);
        for device in devices {
            state
                .devices
                .entry(device.clone())
                .or_default()
                .listeners
                .push(Listener {
                    id,
                    kind,
                    sender: sender.clone(),
                });
        }
        state.open += 1;
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

    /// The cached messages `since` selects for `devices`, without opening a stream (ntfy's
    /// `poll=1`).
    pub fn cached(self: &Arc<Self>, devices: &[DeviceUuid], since: &Since) -> Vec<Delivery> {
        let cutoff = now() - cache_seconds(self.settings.cache_for);
        let mut state = self.lock();
        let after = match since {
            Since::Id(id) => devices
                .iter()
                .filter_map(|device| state.devices.get(device))
                .flat_map(|entry| entry.cache.iter())
                .find(|message| message.id == *id)
                .map_or(0, |message| message.seq),
            _ => 0,
        };
        let mut cached: Vec<Delivery> = Vec::new();
        for device in devices {
            let Some(entry) = state.devices.get_mut(device) else {
                continue;
            };
            prune(&mut entry.cache, cutoff);
            for message in &entry.cache {
                let wanted = match since {
                    Since::Nothing => false,
                    Since::All | Since::Latest => true,
                    Since::Id(_) => message.seq > after,
                    Since::Time(time) => message.view.timestamp >= *time,
                };
                if wanted {
                    cached.push(Delivery::Message {
                        device: device.clone(),
                        message: message.clone(),
                    });
                }
            }
        }
        cached.sort_by_key(|delivery| match delivery {
            Delivery::Message { message, .. } => message.seq,
            Delivery::Subscription(_) => 0,
        });
        if matches!(since, Since::Latest) && cached.len() > 1 {
            cached.drain(..cached.len() - 1);
        }
        cached
    }

    fn unregister(&self, id: u64, kind: StreamKind, devices: &[DeviceUuid]) {
        let mut state = self.lock();
        let mut found = false;
        for device in devices {
            if let Some(entry) = state.devices.get_mut(device) {
                let before = entry.listeners.len();
                entry.listeners.retain(|listener| listener.id != id);
                found |= entry.listeners.len() != before;
                if entry.listeners.is_empty() && entry.cache.is_empty() {
                    state.devices.remove(device);
                }
            }
        }
        if found {
            state.open = state.open.saturating_sub(1);
            self.metrics.closed(kind);
        }
    }

    /// Hands `delivery` to every stream of `device` that wants it; a stream whose buffer is full
    /// is dropped from the hub.
    fn deliver(&self, state: &mut State, device: &DeviceUuid, delivery: &Delivery) {
        let Some(entry) = state.devices.get_mut(device) else {
            return;
        };
        let mut dropped = Vec::new();
        for listener in &entry.listeners {
            if matches!(delivery, Delivery::Subscription(_))
                && listener.kind != StreamKind::Connector
            {
                continue;
            }
            match listener.sender.try_send(delivery.clone()) {
                Ok(()) => {
                    if matches!(delivery, Delivery::Message { .. }) {
                        self.metrics.streamed(listener.kind);
                    }
                }
                Err(mpsc::error::TrySendError::Full(_)) => {
                    self.metrics.dropped_slow(listener.kind);
                    dropped.push((listener.id, listener.kind));
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
        for (id, kind) in dropped {
            tracing::info!(
                device = %device,
                stream = kind.as_str(),
                "dropped a slow stream: its buffer was full"
            );
            let mut removed = false;
            for entry in state.devices.values_mut() {
                let before = entry.listeners.len();
                entry.listeners.retain(|listener| listener.id != id);
                removed |= entry.listeners.len() != before;
            }
            if removed {
                state.open = state.open.saturating_sub(1);
                self.metrics.closed(kind);
            }
        }
    }

    /// Publishes a stored message: cached for each of its devices and handed to their streams.
    /// Messages come in id order: one that is not newer than the last published is ignored
    /// (the hub already has it).
    pub fn publish_message(&self, stored: StoredMessage) {
        let cache_for = cache_seconds(self.settings.cache_for);
        let message = Arc::new(StreamMessage {
            seq: stored.id,
            id: stored.stream_id,
            expires: stored.message.timestamp.saturating_add(cache_for),
            view: stored.message,
            connector_frame: OnceLock::new(),
        });
        let cutoff = now() - cache_for;
        let mut state = self.lock();
        if message.seq <= state.newest {
            return;
        }
        state.newest = message.seq;
        for device in stored.devices {
            let delivery = Delivery::Message {
                device: device.clone(),
                message: message.clone(),
            };
            if cache_for > 0 {
                let entry = state.devices.entry(device.clone()).or_default();
                prune(&mut entry.cache, cutoff);
                entry.cache.push_back(message.clone());
                if entry.cache.len() > CACHE_MAX_PER_DEVICE {
                    entry.cache.pop_front();
                }
            }
            self.deliver(&mut state, &device, &delivery);
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
        );
    }

    /// Forgets cached messages older than the cache window, and devices left with nothing.
    pub fn prune(&self) {
        let cutoff = now() - cache_seconds(self.settings.cache_for);
        let mut state = self.lock();
        state.devices.retain(|_, entry| {
            prune(&mut entry.cache, cutoff);
            !entry.cache.is_empty() || !entry.listeners.is_empty()
        });
    }

    /// Lets go of every stream (their receivers end) and refuses new ones: the service stops.
    pub fn close_all(&self) {
        self.closing.store(true, Ordering::SeqCst);
        self.closed.send_replace(true);
        let mut state = self.lock();
        for entry in state.devices.values_mut() {
            for listener in entry.listeners.drain(..) {
                self.metrics.closed(listener.kind);
            }
        }
        state.open = 0;
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

    /// How many streams are open.
    #[cfg(test)]
    pub fn open_streams(&self) -> usize {
        self.lock().open
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

fn prune(cache: &mut VecDeque<Arc<StreamMessage>>, cutoff: i64) {
    while cache
        .front()
        .is_some_and(|message| message.view.timestamp < cutoff)
    {
        cache.pop_front();
    }
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

#[cfg(test)]
mod tests;
