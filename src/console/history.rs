//! Where the delivery history plugs into the console. Until it exists, [`NoHistory`] answers
//! that nothing is recorded, and the pages say so instead of showing numbers.
//!
//! The history (issue 20) implements [`HistorySummary`] over its store and is handed to
//! [`super::Console::new`] in `app.rs`; the overview then shows each route's last webhook and its
//! 24-hour counts. Its own pages (the list, one webhook, replay) mount beside the others in
//! [`super::configure`] and link from the navigation in `templates/base.html`.

use std::collections::BTreeMap;
use std::time::SystemTime;

use futures_util::future::BoxFuture;

use crate::routes::RouteName;

/// What the history knows of one route's recent webhooks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteActivity {
    /// When its last webhook arrived, and its event (`push`, `firing`, ...).
    pub last_webhook: Option<(SystemTime, String)>,
    /// In the last 24 hours: webhooks accepted.
    pub accepted: u64,
    /// Notifications sent.
    pub sent: u64,
    /// Notifications waiting for another attempt.
    pub retrying: u64,
    /// Notifications that became dead letters.
    pub dead: u64,
    /// Webhooks refused (4xx).
    pub refused: u64,
}

/// The history's summary of every route, as the overview shows it.
pub trait HistorySummary: Send + Sync {
    /// Each route's recent activity; `None` when no history is recorded.
    fn activity(&self) -> BoxFuture<'_, Option<BTreeMap<RouteName, RouteActivity>>>;
}

/// No history is recorded: the overview says so rather than showing numbers.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHistory;

impl HistorySummary for NoHistory {
    fn activity(&self) -> BoxFuture<'_, Option<BTreeMap<RouteName, RouteActivity>>> {
        Box::pin(async { None })
    }
}
