//! `/console/history`: the delivery history's records, newest first, filtered by route, source,
//! event, state and time, searched over titles and messages, paged by cursor; new records and
//! state changes arrive without a reload through `GET /console/api/history/stream` (the
//! history's live changes under the console's session, since a browser's `EventSource` cannot
//! send the admin token).

use std::time::{Duration, UNIX_EPOCH};

use actix_web::{HttpRequest, HttpResponse, web};

use super::Console;
use super::error::ConsoleError;
use super::pages::{self, Layout};
use crate::history::record::Summary;
use crate::history::{self, History, Query};
use crate::http::history::{OpenStreams, change_stream};
use crate::reload::SharedBridge;

/// How many records one page lists.
const PAGE: usize = 50;
/// The longest search text.
const MAX_SEARCH: usize = 200;
/// The states a record can be in, as the state filter offers them.
const STATES: [&str; 10] = [
    "pending",
    "sent",
    "retrying",
    "dead",
    "purged",
    "queued",
    "duplicate",
    "filtered",
    "skipped",
    "refused",
];
/// The time filter's choices: its value, its label, how far back in milliseconds.
const WITHIN: [(&str, &str, u64); 4] = [
    ("1h", "the last hour", 60 * 60 * 1000),
    ("24h", "the last 24 hours", 24 * 60 * 60 * 1000),
    ("7d", "the last 7 days", 7 * 24 * 60 * 60 * 1000),
    ("30d", "the last 30 days", 30 * 24 * 60 * 60 * 1000),
];

#[derive(askama::Template)]
#[template(path = "history.html")]
struct HistoryPage {
    layout: Layout,
    off: bool,
    filters: Filters,
    routes: Vec<(String, bool)>,
    states: Vec<(&'static str, bool)>,
    within: Vec<(&'static str, &'static str, bool)>,
    records: Vec<RecordView>,
    /// The next (older) page's address.
    older: Option<String>,
    /// True when this is the newest page (live records are added to it).
    newest: bool,
    /// The live stream's address.
    stream: String,
}

/// A record's line in the list.
pub(super) struct RecordView {
    pub(super) id: u64,
    pub(super) at: String,
    pub(super) route: String,
    pub(super) source: String,
    pub(super) event: String,
    pub(super) state: String,
    pub(super) title: String,
    pub(super) notifications: usize,
}

impl From<Summary> for RecordView {
    fn from(summary: Summary) -> Self {
        Self {
            id: summary.id,
            at: pages::timestamp(UNIX_EPOCH + Duration::from_millis(summary.at)),
            event: match &summary.action {
                Some(action) => format!("{} ({action})", summary.event),
                None => summary.event.clone(),
            },
            route: summary.route,
            source: summary.source,
            state: summary.state,
            title: summary.title,
            notifications: summary.notifications,
        }
    }
}

/// The list's filters, as the form sends them (blank is no filter).
#[derive(Debug, Default, serde::Deserialize)]
pub(super) struct Filters {
    #[serde(default)]
    route: String,
    #[serde(default)]
    source: String,
    #[serde(default)]
    event: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    within: String,
    #[serde(default)]
    q: String,
    cursor: Option<u64>,
}

fn given(value: &str) -> Option<String> {
    let value = value.trim();
    (!value.is_empty()).then(|| value.to_owned())
}

impl Filters {
    /// The history's query for these filters.
    fn query(&self) -> Result<Query, ConsoleError> {
        if self.q.chars().count() > MAX_SEARCH {
            return Err(ConsoleError::BadRequest(format!(
                "the search text is at most {MAX_SEARCH} characters"
            )));
        }
        let since = match given(&self.within) {
            None => None,
            Some(within) => {
                let (_, _, back) = WITHIN
                    .iter()
                    .find(|(value, _, _)| *value == within)
                    .ok_or_else(|| {
                        ConsoleError::BadRequest(
                            "`within` is one of 1h, 24h, 7d, 30d, or empty".to_owned(),
                        )
                    })?;
                Some(history::now_millis().saturating_sub(*back))
            }
        };
        Ok(Query {
            route: given(&self.route),
            source: given(&self.source),
            event: given(&self.event),
            state: given(&self.state),
            since,
            until: None,
            q: given(&self.q),
            cursor: self.cursor,
            limit: PAGE,
        })
    }

    /// This list's address with `cursor` for its paging.
    fn address(&self, cursor: u64) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in [
            ("route", &self.route),
            ("source", &self.source),
            ("event", &self.event),
            ("state", &self.state),
            ("within", &self.within),
            ("q", &self.q),
        ] {
            if !value.trim().is_empty() {
                query.append_pair(name, value.trim());
            }
        }
        query.append_pair("cursor", &cursor.to_string());
        format!("/console/history?{}", query.finish())
    }
}

/// `GET /console/history?route=&source=&event=&state=&within=&q=&cursor=`.
pub(super) async fn page(
    request: HttpRequest,
    console: web::Data<Console>,
    bridge: web::Data<SharedBridge>,
    history: web::Data<History>,
    filters: web::Query<Filters>,
) -> Result<HttpResponse, ConsoleError> {
    console.sessions()?;
    let session = console.page_session(&request)?;
    let filters = filters.into_inner();
    let query = filters.query()?;
    let (records, older) = if history.is_on() {
        let page = history.list(query).await?;
        let older = page.next_cursor.map(|cursor| filters.address(cursor));
        (
            page.records.into_iter().map(RecordView::from).collect(),
            older,
        )
    } else {
        (Vec::new(), None)
    };
    let bridge = bridge.load_full();
    let routes = bridge
        .routes
        .iter()
        .map(|route| {
            let name = route.name.to_string();
            let selected = name == filters.route.trim();
            (name, selected)
        })
        .collect();
    let states = STATES
        .iter()
        .map(|state| (*state, *state == filters.state.trim()))
        .collect();
    let within = WITHIN
        .iter()
        .map(|(value, label, _)| (*value, *label, *value == filters.within.trim()))
        .collect();
    let stream = match given(&filters.route) {
        Some(route) => format!(
            "/console/api/history/stream?{}",
            url::form_urlencoded::Serializer::new(String::new())
                .append_pair("route", &route)
                .finish()
        ),
        None => "/console/api/history/stream".to_owned(),
    };
    pages::html(&HistoryPage {
        stream,
        layout: Layout::signed_in(&console, &session, "history"),
        off: !history.is_on(),
        newest: filters.cursor.is_none(),
        filters,
        routes,
        states,
        within,
        records,
        older,
    })
}

/// The live stream's query: only this route's changes.
#[derive(Debug, serde::Deserialize)]
pub(super) struct StreamQuery {
    route: Option<String>,
}

/// `GET /console/api/history/stream?route=`: the history's live changes as server-sent events
/// (`record`, `state`: a record's summary as JSON), under the console's session.
pub(super) async fn stream(
    request: HttpRequest,
    console: web::Data<Console>,
    history: web::Data<History>,
    open: web::Data<OpenStreams>,
    query: web::Query<StreamQuery>,
) -> Result<HttpResponse, ConsoleError> {
    console.sessions()?;
    console
        .session(&request)
        .ok_or(ConsoleError::Unauthorized)?;
    let receiver = history.subscribe()?;
    let route = query.into_inner().route.and_then(|route| given(&route));
    change_stream(receiver, open, route).ok_or(ConsoleError::TooManyStreams)
}
