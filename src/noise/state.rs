//! What a route's noise policy remembers between webhooks, and the decision it makes for each
//! notification: the rate window's count, the collapse keys recently sent, and the notifications
//! held for the next digest. The state is one small record per route that the outbox keeps
//! (`delivery/noise/`), read and written under the route's lock; times are milliseconds since
//! the epoch, passed in.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::settings::NoisePolicy;
use super::{CollapseKey, Verdict};
use crate::pushjet::{Link, NewMessage, Title};

/// The most titles a digest keeps per batch; the rest are counted (a digest is cut to the
/// message limit long before).
pub const MAX_HELD_TITLES: usize = 200;

/// The most collapse keys a route remembers; beyond it the least recently sent are forgotten
/// (the state is rewritten with every webhook, so it stays small).
pub const MAX_COLLAPSE_KEYS: usize = 1000;

/// How long a collapse key with uncounted repeats is remembered beyond its window.
const REPEATS_KEPT_MS: u64 = 24 * 60 * 60 * 1000;

/// One route's noise state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteNoise {
    /// The rate window in progress, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    window: Option<RateWindow>,
    /// The collapse keys sent lately, by identity.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    collapse: BTreeMap<String, Recent>,
    /// The notifications held, one batch per release time, earliest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    held: Vec<HeldBatch>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct RateWindow {
    start: u64,
    sent: u32,
}

/// The last notification sent for a collapse identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Recent {
    state: String,
    sent_at: u64,
    repeats: u64,
}

/// Notifications held until `release_at`: their titles (oldest first, the first
/// [`MAX_HELD_TITLES`]), how many, and the most important one's importance and link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldBatch {
    /// When they are released as a digest.
    pub release_at: u64,
    /// How many are held.
    pub count: u64,
    /// Their titles (a message's first line when it has no title), oldest first.
    pub titles: Vec<String>,
    /// The highest importance among them.
    pub importance: u8,
    /// The link of the (newest) one with the highest importance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

impl HeldBatch {
    fn add(&mut self, message: &NewMessage) {
        self.count = self.count.saturating_add(1);
        if self.titles.len() < MAX_HELD_TITLES {
            self.titles.push(headline(message));
        }
        let importance = message.importance.get();
        if importance >= self.importance {
            self.importance = importance;
            self.link = message.link.as_ref().map(|link| link.as_str().to_owned());
        }
    }

    /// Folds a later batch into this one.
    fn merge(&mut self, later: HeldBatch) {
        self.count = self.count.saturating_add(later.count);
        let room = MAX_HELD_TITLES.saturating_sub(self.titles.len());
        self.titles.extend(later.titles.into_iter().take(room));
        if later.importance >= self.importance {
            self.importance = later.importance;
            self.link = later.link;
        }
        self.release_at = self.release_at.max(later.release_at);
    }

    /// The link, parsed again (it was one when stored).
    pub fn link(&self) -> Option<Link> {
        self.link.as_deref().and_then(|raw| Link::parse(raw).ok())
    }
}

/// A notification's line in a digest: its title, or its message's first line.
fn headline(message: &NewMessage) -> String {
    if message.title.is_empty() {
        let first = message.message.as_str().lines().next().unwrap_or_default();
        Title::new(first).as_str().to_owned()
    } else {
        message.title.as_str().to_owned()
    }
}

/// One notification offered to the policy.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The rendered notification.
    pub message: NewMessage,
    /// Its collapse key, when it has one.
    pub collapse: Option<CollapseKey>,
}

/// What the policy made of a webhook's notifications.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// One verdict per candidate, in order.
    pub verdicts: Vec<Verdict>,
    /// The notifications to queue now, in order (a repeat count added where one is due).
    pub send: Vec<NewMessage>,
}

impl RouteNoise {
    /// Decides each candidate in order at `now` and remembers what it must: the rate window's
    /// count, the collapse keys sent and repeated, the notifications held.
    pub fn decide(&mut self, policy: &NoisePolicy, candidates: Vec<Candidate>, now: u64) -> Decision {
        self.forget_stale(policy, now);
        let mut decision = Decision {
            verdicts: Vec::with_capacity(candidates.len()),
            send: Vec::new(),
        };
        for candidate in candidates {
            let verdict = self.decide_one(policy, candidate, now, &mut decision.send);
            decision.verdicts.push(verdict);
        }
        decision
    }

    fn decide_one(
        &mut self,
        policy: &NoisePolicy,
        candidate: Candidate,
        now: u64,
        send: &mut Vec<NewMessage>,
    ) -> Verdict {
        let Candidate {
            mut message,
            collapse,
        } = candidate;
        if let (Some(window), Some(key)) = (policy.collapse, &collapse)
            && let Some(recent) = self.collapse.get_mut(&key.identity)
            && recent.state == key.state
            && now < recent.sent_at.saturating_add(millis(window))
        {
            recent.repeats = recent.repeats.saturating_add(1);
            return Verdict::Collapsed;
        }
        if let Some(quiet) = &policy.quiet
            && message.importance < quiet.min_importance()
            && let Some(until) = quiet.quiet_until(now)
        {
            self.hold(&message, until);
            return Verdict::HeldQuietHours;
        }
        if let Some(rate) = policy.rate {
            let window = match self.window {
                Some(window) if now < window.start.saturating_add(millis(rate.window)) => window,
                _ => RateWindow { start: now, sent: 0 },
            };
            if window.sent >= rate.count {
                self.window = Some(window);
                self.hold(&message, window.start.saturating_add(millis(rate.window)));
                return Verdict::HeldRate;
            }
            self.window = Some(RateWindow {
                sent: window.sent.saturating_add(1),
                ..window
            });
        }
        if policy.collapse.is_some()
            && let Some(key) = collapse
        {
            let repeats = self
                .collapse
                .get(&key.identity)
                .map_or(0, |recent| recent.repeats);
            if repeats > 0 {
                let plural = if repeats == 1 { "repeat" } else { "repeats" };
                message.title = Title::new(&format!("{} ({repeats} {plural})", message.title.as_str()));
            }
            self.collapse.insert(
                key.identity,
                Recent {
                    state: key.state,
                    sent_at: now,
                    repeats: 0,
                },
            );
        }
        send.push(message);
        Verdict::Send
    }

    /// Holds `message` for the digest released at `release_at`.
    fn hold(&mut self, message: &NewMessage, release_at: u64) {
        let index = match self
            .held
            .iter()
            .position(|batch| batch.release_at >= release_at)
        {
            Some(index) if self.held[index].release_at == release_at => index,
            Some(index) => {
                self.held.insert(index, empty_batch(release_at));
                index
            }
            None => {
                self.held.push(empty_batch(release_at));
                self.held.len() - 1
            }
        };
        self.held[index].add(message);
    }

    /// Drops what no decision can use any more: an ended rate window, collapse keys past their
    /// window (with repeats, a day later).
    fn forget_stale(&mut self, policy: &NoisePolicy, now: u64) {
        if let (Some(window), Some(rate)) = (self.window, policy.rate)
            && now >= window.start.saturating_add(millis(rate.window))
        {
            self.window = None;
        }
        let window = policy.collapse.map_or(0, millis);
        self.collapse.retain(|_, recent| {
            let kept = if recent.repeats > 0 {
                window.saturating_add(REPEATS_KEPT_MS)
            } else {
                window
            };
            now < recent.sent_at.saturating_add(kept)
        });
        if self.collapse.len() > MAX_COLLAPSE_KEYS {
            let mut ages: Vec<u64> = self.collapse.values().map(|recent| recent.sent_at).collect();
            ages.sort_unstable();
            let cutoff = ages[self.collapse.len() - MAX_COLLAPSE_KEYS];
            self.collapse.retain(|_, recent| recent.sent_at >= cutoff);
        }
    }

    /// Takes the held notifications due by `now`, all batches folded into one; `None` when none
    /// is due.
    pub fn take_due(&mut self, now: u64) -> Option<HeldBatch> {
        let due = self.held.partition_point(|batch| batch.release_at <= now);
        let mut batches = self.held.drain(..due);
        let mut first = batches.next()?;
        for later in batches {
            first.merge(later);
        }
        Some(first)
    }

    /// When the next held notifications are due, if any are held.
    pub fn next_release(&self) -> Option<u64> {
        self.held.first().map(|batch| batch.release_at)
    }

    /// How many notifications are held.
    #[cfg(test)]
    pub fn held_count(&self) -> u64 {
        self.held.iter().map(|batch| batch.count).sum()
    }

    /// True when there is nothing to remember.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

fn empty_batch(release_at: u64) -> HeldBatch {
    HeldBatch {
        release_at,
        count: 0,
        titles: Vec::new(),
        importance: 0,
        link: None,
    }
}

fn millis(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
