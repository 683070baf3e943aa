//! `GET /console/`: every route (source, authentication kinds, event filter, delivery mode,
//! template, queue depth, dead letters) and the service (readiness, the upstream and whether it answers, the
//! store, the queue). A route's last webhook and 24-hour counts come from the history
//! ([`super::history`]); without one the page says so.

use std::collections::BTreeMap;
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};

use super::error::ConsoleError;
use super::history::RouteActivity;
use super::pages::{self, Layout};
use super::{Console, Upstream};
use crate::delivery::Outbox;
use crate::http::health::not_ready;
use crate::pushjet::ApiUrl;
use crate::reload::SharedBridge;
use crate::routes::{DeliveryMode, Route};

/// How long the upstream has to answer the overview's probe.
const UPSTREAM_PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// The most dead letters counted per route on the overview.
const DEAD_LETTERS_COUNTED: usize = 1000;

#[derive(askama::Template)]
#[template(path = "overview.html")]
struct OverviewPage {
    layout: Layout,
    service: ServiceView,
    history_note: Option<&'static str>,
    routes: Vec<RouteView>,
}

struct ServiceView {
    not_ready: Option<String>,
    upstream: String,
    upstream_answers: bool,
    upstream_detail: Option<String>,
    store: &'static str,
    pending: u64,
    oldest: Option<String>,
    dead: u64,
    templates: String,
}

struct RouteView {
    name: String,
    source: &'static str,
    auth: String,
    events: String,
    delivery: &'static str,
    template: String,
    pending: u64,
    dead: String,
    activity: Option<ActivityView>,
}

struct ActivityView {
    last: String,
    accepted: u64,
    sent: u64,
    retrying: u64,
    dead: u64,
    refused: u64,
}

impl From<&RouteActivity> for ActivityView {
    fn from(activity: &RouteActivity) -> Self {
        Self {
            last: activity.last_webhook.as_ref().map_or_else(
                || "none".to_owned(),
                |(time, event)| format!("{event}, {}", pages::timestamp(*time)),
            ),
            accepted: activity.accepted,
            sent: activity.sent,
            retrying: activity.retrying,
            dead: activity.dead,
            refused: activity.refused,
        }
    }
}

/// The route as the overview shows it: names and kinds, never a secret.
fn route_view(
    route: &Route,
    pending: u64,
    dead: Option<&usize>,
    dead_counted: bool,
    activity: Option<&RouteActivity>,
) -> RouteView {
    let kinds = route.auth.kinds();
    RouteView {
        name: route.name.to_string(),
        source: route.source.setting.as_str(),
        auth: if kinds.is_empty() {
            "none (open)".to_owned()
        } else {
            kinds
                .iter()
                .map(|kind| format!("{kind}: set"))
                .collect::<Vec<_>>()
                .join(", ")
        },
        events: route.events.as_ref().map_or_else(
            || "all (but GitHub's ping)".to_owned(),
            |filter| filter.entries().join(", "),
        ),
        delivery: match route.delivery {
            DeliveryMode::Queued => "queued",
            DeliveryMode::Sync => "sync",
        },
        template: route
            .template
            .clone()
            .unwrap_or_else(|| "chosen by source and event".to_owned()),
        pending,
        dead: match (dead, dead_counted) {
            (Some(count), _) => count.to_string(),
            (None, true) => "0".to_owned(),
            (None, false) => "not counted".to_owned(),
        },
        activity: activity.map(ActivityView::from),
    }
}

/// The upstream's address without credentials or query, and whether it answers HTTP at all.
async fn probe_upstream(url: &ApiUrl) -> (String, bool, Option<String>) {
    let url = url.as_url();
    let shown = format!("{}{}", url.origin().ascii_serialization(), url.path());
    let client = awc::Client::builder()
        .timeout(UPSTREAM_PROBE_TIMEOUT)
        .finish();
    match client.get(url.as_str()).send().await {
        Ok(response) => (
            shown,
            true,
            Some(format!("HTTP {}", response.status().as_u16())),
        ),
        Err(error) => (shown, false, Some(error.to_string())),
    }
}

/// `GET /console/`.
pub(super) async fn page(
    request: HttpRequest,
    console: web::Data<Console>,
    bridge: web::Data<SharedBridge>,
    outbox: web::Data<Outbox>,
) -> Result<HttpResponse, ConsoleError> {
    console.sessions()?;
    let session = console.page_session(&request)?;
    let bridge = bridge.load_full();
    let (kind, url) = match &console.upstream {
        Upstream::Embedded(url) => ("embedded", url),
        Upstream::Remote(url) => ("remote", url),
    };
    let (shown, upstream_answers, upstream_detail) = probe_upstream(url).await;
    let dead_total = outbox.dead_letter_count().await?;
    let letters = outbox.dead_letters(None, DEAD_LETTERS_COUNTED).await?;
    let dead_counted = dead_total <= DEAD_LETTERS_COUNTED as u64;
    let mut dead_by_route: BTreeMap<String, usize> = BTreeMap::new();
    for letter in &letters {
        *dead_by_route.entry(letter.route.to_string()).or_default() += 1;
    }
    let pending = outbox.pending_by_route().await?;
    let activity = console
        .history
        .activity(
            bridge
                .routes
                .iter()
                .map(|route| route.name.clone())
                .collect(),
        )
        .await;
    let history_note = match (console.history.is_on(), activity.is_some()) {
        (_, true) => None,
        (false, false) => Some(
            "The delivery history is off (PUSHJET_BRIDGE_HISTORY=0): no last webhook or 24-hour \
             counts are kept.",
        ),
        (true, false) => Some(
            "The delivery history could not be read just now: the last webhooks and 24-hour \
             counts are missing (see the bridge's log).",
        ),
    };
    let routes = bridge
        .routes
        .iter()
        .map(|route| {
            route_view(
                route,
                pending.get(&route.name).copied().unwrap_or_default(),
                dead_by_route.get(route.name.as_str()),
                dead_counted,
                activity.as_ref().and_then(|all| all.get(&route.name)),
            )
        })
        .collect();
    let service = ServiceView {
        not_ready: not_ready(&outbox).await,
        upstream: format!("{kind}: {shown}"),
        upstream_answers,
        upstream_detail,
        store: if console.database {
            "PostgreSQL (PUSHJET_BRIDGE_DATABASE_URL: set)"
        } else {
            "the data directory (redb)"
        },
        pending: outbox.pending_count(),
        oldest: outbox.oldest_pending_age().map(pages::human_duration),
        dead: dead_total,
        templates: if console.templates_dir.is_some() {
            "set (PUSHJET_BRIDGE_TEMPLATES_DIR): its files override the built-in templates"
                .to_owned()
        } else {
            "not set: the built-in templates".to_owned()
        },
    };
    pages::html(&OverviewPage {
        layout: Layout::signed_in(&console, &session, "overview"),
        service,
        history_note,
        routes,
    })
}
