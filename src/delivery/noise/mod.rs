//! Noise control in the outbox: each route's noise state ([`RouteNoise`]: the rate window, the
//! collapse keys, the notifications held for a digest) is kept by the outbox's backend next to
//! its notifications, so what is held is as durable as what is queued and survives restarts.
//!
//! ```text
//! hook handler ──admit(route, policy, candidates, dedup key)──► backend, under the route's lock:
//!                 read the state → decide each (noise/) → queue the sends (and the dedup key)
//!                 → store the state; answers a verdict per notification
//! releaser (release.rs, a task) ──release_held──► backend: for each route whose held
//!                 notifications are due, under the route's lock: take them → queue one digest
//!                 → store the state
//! ```
//!
//! The redb backend keeps the states in the outbox file's `noise` table and takes the route's
//! lock in process (one process owns the file); the PostgreSQL backend keeps them in
//! `noise_routes`, and the lock is the route's row (`SELECT … FOR UPDATE`), so replicas decide
//! one after another and only one of them takes a digest's notifications: a digest is queued in
//! the transaction that takes them, exactly once.

mod release;

use crate::noise::{Candidate, NoisePolicy, Verdict};
use crate::routes::RouteName;

pub use super::outbox::DedupKey;
pub use release::spawn_releaser;

/// A webhook's notifications offered to a route's noise policy.
#[derive(Debug)]
pub struct Admission<'a> {
    /// The route's policy.
    pub policy: &'a NoisePolicy,
    /// The notifications, in order.
    pub candidates: Vec<Candidate>,
    /// The webhook's dedup key: a duplicate changes nothing.
    pub dedup: Option<DedupKey>,
}

/// What the policy made of an admission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admitted {
    /// One verdict per notification; those sent were queued with these ids.
    Decided {
        /// The verdicts, in the order given.
        verdicts: Vec<Verdict>,
        /// The ids of the notifications queued now.
        ids: Vec<u64>,
    },
    /// The dedup key was seen within its window: nothing was decided or queued.
    Duplicate,
}

/// A digest queued by the releaser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digested {
    /// The route.
    pub route: RouteName,
    /// How many held notifications it names.
    pub count: u64,
    /// Its id in the outbox.
    pub id: u64,
}

/// What one pass of the releaser did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Released {
    /// The digests queued.
    pub digests: Vec<Digested>,
    /// When the next held notifications fall due (milliseconds since the epoch), if any.
    pub next_release: Option<u64>,
}

#[cfg(test)]
mod tests;
