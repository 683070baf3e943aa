//! Where the delivery history plugs into the console. Until it exists, [`NoHistory`] answers
//! that nothing is recorded, and the pages say so instead of showing numbers.
//!
//! What the history (issue 20) adds, and where:
//! - **The overview's numbers**: implement [`HistorySummary`] over the history's store and hand it
//!   to [`super::Console::new`] in `app.rs` (today `Arc::new(NoHistory)`); each route's card then
//!   shows its last webhook and its 24-hour counts (`templates/overview.html`, `route.activity`).
//! - **The history pages**: one file per page beside the others (the list with its filters and
//!   paging, one webhook's story), mounted in [`super::configure`] under `/console/history` and
//!   `/console/history/{id}`; Replay and Re-render are forms posting to
//!   `/console/history/{id}/replay` and `/rerender` with the session's CSRF token
//!   ([`super::pages::CsrfForm`], checked by `Console::acting_session`), calling the history's
//!   functions directly, as the dead-letters page calls the outbox's. A `History` entry goes in
//!   the navigation of `templates/base.html` (`layout.current == "history"`).
//! - **New webhooks without a reload**: the browser's `EventSource` cannot send the admin token,
//!   so the console serves the history's stream itself under its session (e.g.
//!   `GET /console/api/history/stream`, fed by the same source as `/admin/history/stream`), and
//!   `assets/console.js` gains a `setupHistory` beside `setupPlayground` and `setupInbox`.
//! - **The playground's payloads**: kept bodies join the bundled examples in its payload list
//!   (`templates/playground.html`, `#pg-example`), fetched from a session-checked
//!   `GET /console/api/history/{id}/body` as examples are from `/console/api/example/{name}`.

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
