//! The delivery history's summary for the console's overview: each route's last webhook and its
//! 24-hour counts ([`HistorySummary`], implemented over [`History`]; when the history is off,
//! the overview says so instead of showing numbers). The history's own pages are
//! [`super::history_list`] (the list, live) and [`super::webhook`] (one webhook's story).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::future::BoxFuture;

use crate::history::{self, History, Query};
use crate::routes::RouteName;

/// What the overview's counts look back over.
const DAY_MS: u64 = 24 * 60 * 60 * 1000;

/// What the history knows of one route's recent webhooks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteActivity {
    /// When its last webhook arrived, and its event (`push`, `firing`, ...).
    pub last_webhook: Option<(SystemTime, String)>,
    /// In the last 24 hours: webhooks accepted (every record but the refused ones).
    pub accepted: u64,
    /// Webhooks whose notifications were all sent.
    pub sent: u64,
    /// Webhooks with a notification still waiting (queued, or for another attempt).
    pub retrying: u64,
    /// Webhooks with a notification that became a dead letter.
    pub dead: u64,
    /// Webhooks refused (4xx).
    pub refused: u64,
}

/// The history's summary of every route, as the overview shows it.
pub trait HistorySummary: Send + Sync {
    /// True when a history is recorded.
    fn is_on(&self) -> bool;

    /// The recent activity of each of `routes`; `None` when no history is recorded or it could
    /// not be read.
    fn activity(
        &self,
        routes: Vec<RouteName>,
    ) -> BoxFuture<'_, Option<BTreeMap<RouteName, RouteActivity>>>;
}

/// The delivery history's summary: its 24-hour counts per route and state, and each route's
/// newest record.
impl HistorySummary for History {
    fn is_on(&self) -> bool {
        History::is_on(self)
    }

    fn activity(
        &self,
        routes: Vec<RouteName>,
    ) -> BoxFuture<'_, Option<BTreeMap<RouteName, RouteActivity>>> {
        Box::pin(async move {
            let since = history::now_millis().saturating_sub(DAY_MS);
            let counts = match self.counts(since).await {
                Ok(counts) => counts,
                Err(error) => {
                    tracing::warn!(%error, "the overview could not read the history's counts");
                    return None;
                }
            };
            let mut activity = BTreeMap::new();
            for route in routes {
                let mut seen = RouteActivity::default();
                for count in counts.iter().filter(|count| count.route == route.as_str()) {
                    add_count(&mut seen, &count.state, count.count);
                }
                let newest = self
                    .list(Query {
                        route: Some(route.to_string()),
                        limit: 1,
                        ..Query::default()
                    })
                    .await;
                match newest {
                    Ok(page) => {
                        seen.last_webhook = page.records.first().map(|record| {
                            (
                                UNIX_EPOCH + Duration::from_millis(record.at),
                                record.event.clone(),
                            )
                        });
                    }
                    Err(error) => {
                        tracing::warn!(%error, "the overview could not read the history");
                        return None;
                    }
                }
                activity.insert(route, seen);
            }
            Some(activity)
        })
    }
}

/// Adds `count` records in `state` (see [`history::record::Summary::state`]) to `activity`.
fn add_count(activity: &mut RouteActivity, state: &str, count: u64) {
    if state == "refused" {
        activity.refused += count;
        return;
    }
    activity.accepted += count;
    match state {
        "sent" => activity.sent += count,
        "retrying" | "pending" => activity.retrying += count,
        "dead" => activity.dead += count,
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_state_become_the_overviews_numbers() {
        let mut activity = RouteActivity::default();
        for (state, count) in [
            ("sent", 5),
            ("retrying", 1),
            ("pending", 1),
            ("dead", 2),
            ("filtered", 3),
            ("refused", 4),
        ] {
            add_count(&mut activity, state, count);
        }
        assert_eq!(
            activity,
            RouteActivity {
                last_webhook: None,
                accepted: 12,
                sent: 5,
                retrying: 2,
                dead: 2,
                refused: 4,
            }
        );
    }
}
