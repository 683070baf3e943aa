//! Who hears of each notification's fate: the delivery history (`crate::history`) implements
//! [`DeliveryObserver`] and the [`super::Outbox`] handle carries one, so that the dispatcher and
//! the dead-letter operations tell it what happened without knowing what it keeps. Every call is
//! made after the fact and must return at once (the observer queues; it never writes in the
//! caller's time).

use std::fmt;
use std::time::Duration;

use crate::pushjet::Error;

/// What became of a notification after a send (or after deciding not to send it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// Pushjet has it.
    Sent,
    /// Failed for now; tried again at this time (milliseconds since the epoch).
    Retrying {
        /// When it is tried again.
        until: u64,
    },
    /// A dead letter, and why.
    Dead {
        /// What to fix.
        reason: String,
    },
}

/// One send of a queued notification, as the dispatcher saw it.
#[derive(Debug)]
pub struct SendReport<'a> {
    /// The notification's outbox id.
    pub id: u64,
    /// When the send started (milliseconds since the epoch).
    pub at: u64,
    /// How long it took; `None` when nothing was sent (the route is gone).
    pub latency: Option<Duration>,
    /// Why it failed, when it did.
    pub error: Option<&'a Error>,
    /// What follows.
    pub fate: Fate,
}

/// Hears of every send and every change an operator makes to a dead letter.
pub trait DeliveryObserver: Send + Sync + fmt::Debug {
    /// A notification was sent, or found unsendable.
    fn sent(&self, report: SendReport<'_>);
    /// Dead letters were queued again (retry).
    fn requeued(&self, ids: &[u64]);
    /// A dead letter was deleted for good.
    fn purged(&self, id: u64);
}
