//! The stream cache: each device's recent messages, for ntfy's `since` and `poll`, under one
//! memory budget.
//!
//! A message is kept once, however many devices it is for: [`Cache::insert`] adds it to the
//! cache's own order (oldest first) and to each of its devices' lists. Three bounds apply:
//! - the window (`PUSHJET_BRIDGE_STREAM_CACHE`): a message older than it is forgotten;
//! - per device, the newest [`CACHE_MAX_PER_DEVICE`] messages are listed;
//! - in all, the messages' bytes ([`StreamMessage::cost`]) stay within
//!   `PUSHJET_BRIDGE_STREAM_CACHE_MAX_BYTES`: beyond it the oldest message goes first, from every
//!   device's list at once. Read messages stay (ntfy's semantics) but count like the others.
//!
//! The interface a backend of its own (e.g. a cache kept on disk) has to offer is the one used by
//! the hub: [`Cache::insert`], [`Cache::select`], [`Cache::prune`]; selecting hands out the
//! shared messages ([`Arc`]s), never copies, so what a stream or a poll holds from the cache
//! costs a pointer per message.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use super::{Since, StreamMessage};
use crate::pushjet::DeviceUuid;

/// The most messages listed per device, whatever the cache window and budget: a chatty service
/// cannot make one device's list long.
pub const CACHE_MAX_PER_DEVICE: usize = 1000;

/// What the cache counts for each device a message is listed for (its UUID and list slot).
const BYTES_PER_DEVICE: usize = 64;

/// One cached message and the devices it is listed for.
#[derive(Debug)]
struct Entry {
    message: Arc<StreamMessage>,
    devices: Box<[DeviceUuid]>,
    cost: usize,
}

/// A message selected for a stream: the message and the device (topic) it is shown for.
pub type Selected = (DeviceUuid, Arc<StreamMessage>);

/// Recent messages by device, within a window, a per-device count and a byte budget.
#[derive(Debug)]
pub struct Cache {
    window: i64,
    max_bytes: usize,
    /// Every cached message once, oldest first.
    order: VecDeque<Entry>,
    /// Each device's messages, oldest first: a subset of `order`.
    devices: HashMap<DeviceUuid, VecDeque<Arc<StreamMessage>>>,
    bytes: usize,
}

impl Cache {
    /// An empty cache keeping messages for `window` and `max_bytes` in all.
    pub fn new(window: Duration, max_bytes: usize) -> Self {
        Self {
            window: i64::try_from(window.as_secs()).unwrap_or(i64::MAX / 2),
            max_bytes,
            order: VecDeque::new(),
            devices: HashMap::new(),
            bytes: 0,
        }
    }

    /// The bytes the cached messages count for.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Caches `message` for `devices` (in id order: the newest message last), then lets go of
    /// the oldest messages until the cache is within its budget and window.
    pub fn insert(&mut self, message: Arc<StreamMessage>, devices: &[DeviceUuid], now: i64) {
        if self.window <= 0 || devices.is_empty() {
            return;
        }
        let cost = message
            .cost()
            .saturating_add(devices.len().saturating_mul(BYTES_PER_DEVICE));
        for device in devices {
            let list = self.devices.entry(device.clone()).or_default();
            list.push_back(message.clone());
            if list.len() > CACHE_MAX_PER_DEVICE {
                list.pop_front();
            }
        }
        self.order.push_back(Entry {
            message,
            devices: devices.into(),
            cost,
        });
        self.bytes = self.bytes.saturating_add(cost);
        self.prune(now);
    }

    /// Forgets the messages older than the window, then the oldest ones while the cache is over
    /// its budget.
    pub fn prune(&mut self, now: i64) {
        let cutoff = now.saturating_sub(self.window);
        while let Some(oldest) = self.order.front() {
            if oldest.message.view.timestamp >= cutoff && self.bytes <= self.max_bytes {
                break;
            }
            self.evict_oldest();
        }
    }

    fn evict_oldest(&mut self) {
        let Some(entry) = self.order.pop_front() else {
            return;
        };
        self.bytes = self.bytes.saturating_sub(entry.cost);
        for device in &entry.devices {
            let Some(list) = self.devices.get_mut(device) else {
                continue;
            };
            // A device's list is in id order, so the oldest message is at its front (unless the
            // per-device bound already let go of it).
            if list
                .front()
                .is_some_and(|front| Arc::ptr_eq(front, &entry.message))
            {
                list.pop_front();
            }
            if list.is_empty() {
                self.devices.remove(device);
            }
        }
    }

    /// The cached messages `since` selects for `devices`, oldest first, each message once
    /// (shown for the first of `devices` it is for), however many of them it is for.
    pub fn select(&self, devices: &[DeviceUuid], since: &Since) -> Vec<Selected> {
        if matches!(since, Since::Nothing) {
            return Vec::new();
        }
        let lists: Vec<(usize, &VecDeque<Arc<StreamMessage>>)> = devices
            .iter()
            .enumerate()
            .filter_map(|(index, device)| self.devices.get(device).map(|list| (index, list)))
            .collect();
        let after = match since {
            Since::Id(id) => lists
                .iter()
                .flat_map(|(_, list)| list.iter())
                .find(|message| message.id == *id)
                .map_or(0, |message| message.seq),
            _ => 0,
        };
        let mut selected: Vec<(u64, usize, &Arc<StreamMessage>)> = Vec::new();
        for (index, list) in lists {
            let mut wanted = list.iter().filter(|message| match since {
                Since::Nothing => false,
                Since::All | Since::Latest => true,
                Since::Id(_) => message.seq > after,
                Since::Time(time) => message.view.timestamp >= *time,
            });
            if matches!(since, Since::Latest) {
                selected.extend(
                    wanted
                        .next_back()
                        .map(|message| (message.seq, index, message)),
                );
            } else {
                selected.extend(wanted.map(|message| (message.seq, index, message)));
            }
        }
        selected.sort_unstable_by_key(|(seq, index, _)| (*seq, *index));
        selected.dedup_by_key(|(seq, _, _)| *seq);
        if matches!(since, Since::Latest) && selected.len() > 1 {
            selected.drain(..selected.len() - 1);
        }
        selected
            .into_iter()
            .filter_map(|(_, index, message)| {
                devices
                    .get(index)
                    .map(|device| (device.clone(), message.clone()))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use super::*;
    use crate::pushjet::wire::{MessageView, ServiceView};
    use crate::pushjet::{Importance, SecretKey};

    const A: &str = "01234567-89ab-cdef-0123-456789abcdef";
    const B: &str = "fedcba98-7654-3210-fedc-ba9876543210";

    fn device(raw: &str) -> DeviceUuid {
        DeviceUuid::parse(raw).unwrap()
    }

    fn message(seq: u64, text: &str, timestamp: i64) -> Arc<StreamMessage> {
        Arc::new(StreamMessage {
            seq,
            id: format!("id{seq:010}"),
            expires: 0,
            view: MessageView {
                level: Importance::DEFAULT,
                link: String::new(),
                message: text.to_owned(),
                service: ServiceView {
                    created: 0,
                    icon: String::new(),
                    name: "svc".to_owned(),
                    public: SecretKey::generate().unwrap().public_key(),
                    secret: None,
                },
                timestamp,
                title: String::new(),
            },
            connector_frame: OnceLock::new(),
        })
    }

    fn texts(selected: &[Selected]) -> Vec<String> {
        selected
            .iter()
            .map(|(_, message)| message.view.message.clone())
            .collect()
    }

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn the_budget_lets_go_of_the_oldest_messages_of_every_device_first() {
        let big = "x".repeat(10_000);
        let one = message(1, &big, 100).cost() + 2 * BYTES_PER_DEVICE;
        let mut cache = Cache::new(HOUR, one * 3);
        let both = [device(A), device(B)];
        for seq in 1..=5 {
            cache.insert(message(seq, &big, 100), &both, 100);
        }
        assert!(cache.bytes() <= one * 3, "{} bytes", cache.bytes());
        let kept: Vec<u64> = cache
            .select(&[device(A)], &Since::All)
            .iter()
            .map(|(_, message)| message.seq)
            .collect();
        assert_eq!(kept, [3, 4, 5]);
        assert_eq!(cache.select(&[device(B)], &Since::All).len(), 3);
    }

    #[test]
    fn a_large_message_counts_by_its_size() {
        let mut cache = Cache::new(HOUR, 1024 * 1024);
        cache.insert(message(1, "small", 100), &[device(A)], 100);
        let small = cache.bytes();
        cache.insert(message(2, &"y".repeat(300_000), 100), &[device(A)], 100);
        assert!(cache.bytes() - small >= 600_000, "{}", cache.bytes());
    }

    #[test]
    fn a_message_for_several_devices_named_is_selected_once() {
        let mut cache = Cache::new(HOUR, 1024 * 1024);
        let both = [device(A), device(B)];
        cache.insert(message(1, "both", 100), &both, 100);
        cache.insert(message(2, "b only", 100), &[device(B)], 100);
        let selected = cache.select(&both, &Since::All);
        assert_eq!(texts(&selected), ["both", "b only"]);
        assert_eq!(selected[0].0, device(A));
        assert_eq!(selected[1].0, device(B));
        assert_eq!(texts(&cache.select(&both, &Since::Latest)), ["b only"]);
    }

    #[test]
    fn the_window_forgets_old_messages_and_their_bytes() {
        let mut cache = Cache::new(Duration::from_secs(60), 1024 * 1024);
        cache.insert(message(1, "old", 100), &[device(A)], 100);
        cache.insert(message(2, "new", 150), &[device(A)], 150);
        cache.prune(170);
        assert_eq!(texts(&cache.select(&[device(A)], &Since::All)), ["new"]);
        cache.prune(1000);
        assert_eq!(cache.bytes(), 0);
        assert!(cache.select(&[device(A)], &Since::All).is_empty());
    }
}
