//! Noise control per route, on the line between rendering and the outbox:
//!
//! ```text
//! render ─► noise policy ─► outbox
//!             rate (N per window, the rest held for one digest at the window's end)
//!             quiet hours (below an importance, held until they end)
//!             collapse (the same key and state sent within a window: not again; repeats counted)
//! ```
//!
//! This module is the policy itself, free of storage and I/O: the settings as domain types
//! (`settings.rs`), when quiet hours are on (`quiet.rs`), what a route remembers and the verdict
//! on each notification (`state.rs`), and the digest the held notifications become
//! (`digest.rs`). The outbox keeps each route's [`RouteNoise`] and decides under the route's
//! lock, in the same transaction as the notifications it queues (`delivery/noise/`).

mod digest;
mod quiet;
mod settings;
mod state;

use serde::{Deserialize, Serialize};

pub use digest::digest;
pub use settings::{
    NoisePolicy, QuietHours, QuietRange, RateLimit, parse_time_zone, parse_window,
};
pub use state::{Candidate, RouteNoise};

/// What became of one notification; the names are the webhook's answer, the metrics' `outcome`
/// label and the history's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    /// Queued for sending now.
    #[serde(rename = "send")]
    Send,
    /// Over the route's `RATE`: held for the digest at the window's end.
    #[serde(rename = "held: rate")]
    HeldRate,
    /// Below `QUIET_MIN_IMPORTANCE` during `QUIET_HOURS`: held for the digest when they end.
    #[serde(rename = "held: quiet hours")]
    HeldQuietHours,
    /// The same collapse key and state was sent within `COLLAPSE`: not sent, counted as a repeat.
    #[serde(rename = "collapsed")]
    Collapsed,
}

/// What makes two notifications repeats of each other: the same `identity` (an alert's
/// fingerprint, a forge's event and object, an `X-Collapse-Key`) in the same `state` (`firing`,
/// `resolved`, a workflow's conclusion). A new state is news and always goes through.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CollapseKey {
    /// Which thing it is about.
    pub identity: String,
    /// What state that thing is in.
    pub state: String,
}
