//! The contract every history store fulfils: the redb file in the data directory
//! (`history/redb.rs`) or PostgreSQL tables shared by replicas (`history/postgres.rs`). The
//! [`super::History`] handle is the one user: its writer hands over batches, its pruner asks for
//! retention, its queries read. A trait object with boxed futures, as the outbox's backend is.

use std::fmt;

use futures_util::future::BoxFuture;

use super::record::{Change, Page, Query, RouteCounts, Story, Write};

/// Why the history could not do what was asked.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HistoryError {
    /// The history is off (`PUSHJET_BRIDGE_HISTORY=0`).
    #[error("the delivery history is off: set PUSHJET_BRIDGE_HISTORY (e.g. 7d) to keep one")]
    Off,
    /// No record has this id (pruned, or never written).
    #[error("no history record has id {0}")]
    NotFound(u64),
    /// The store cannot be read or written.
    #[error("the delivery history is unavailable: {0}")]
    Unavailable(String),
    /// A stored record could not be read back.
    #[error("a history record is unreadable: {0}")]
    Record(String),
}

impl From<serde_json::Error> for HistoryError {
    fn from(error: serde_json::Error) -> Self {
        Self::Record(error.to_string())
    }
}

/// What a write did.
#[derive(Debug, Default)]
pub(super) struct Written {
    /// Records written.
    pub(super) records: u64,
    /// Bytes written (roughly), for the cap between two measurements.
    pub(super) bytes: u64,
    /// What the live stream announces; empty for a store whose feed reads the changes back
    /// ([`HistoryStore::changes_since`]).
    pub(super) changes: Vec<Change>,
}

/// What retention did.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Pruned {
    /// Records deleted.
    pub(super) records: u64,
    /// Bytes the records take now.
    pub(super) bytes: u64,
}

/// A store of history records and deliveries. Times are milliseconds since the epoch.
pub(super) trait HistoryStore: Send + Sync + fmt::Debug {
    /// Writes a batch, in order, in one transaction that need not be durable at once; with
    /// `announce`, says what changed in [`Written::changes`] (when a live stream listens).
    fn write(
        &self,
        batch: Vec<Write>,
        announce: bool,
    ) -> BoxFuture<'_, Result<Written, HistoryError>>;

    /// One page of records, newest first.
    fn list(&self, query: Query) -> BoxFuture<'_, Result<Page, HistoryError>>;

    /// A record with its deliveries, if it is kept.
    fn story(&self, id: u64) -> BoxFuture<'_, Result<Option<Story>, HistoryError>>;

    /// How many records each route has in each state, of those at or after `since`.
    fn counts(&self, since: u64) -> BoxFuture<'_, Result<Vec<RouteCounts>, HistoryError>>;

    /// Deletes the records older than `before`, then the oldest until they take at most
    /// `max_bytes`.
    fn prune(&self, before: u64, max_bytes: u64) -> BoxFuture<'_, Result<Pruned, HistoryError>>;

    /// The changes after `cursor` (a store's own change counter), and the new cursor: how a
    /// store several processes write feeds the live streams (the others announce them from
    /// [`Written::changes`]).
    fn changes_since(
        &self,
        cursor: u64,
    ) -> BoxFuture<'_, Result<(Vec<Change>, u64), HistoryError>> {
        Box::pin(async move { Ok((Vec::new(), cursor)) })
    }
}
