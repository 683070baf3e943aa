//! What the history keeps, and what it answers with: one [`Record`] per request to a route (its
//! verdict, its rendered notifications, the request when bodies are kept), each queued
//! notification's [`Delivery`] (its state and every send attempt), and the shapes the queries
//! return ([`Story`], [`Summary`], [`Page`], [`RouteCounts`], [`Change`]). Times are milliseconds
//! since the Unix epoch, as stored.

use serde::{Deserialize, Serialize};

use crate::noise::Verdict as NoiseVerdict;
use crate::pushjet::NewMessage;

/// How the request reached the bridge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    /// `POST /hooks/<route>` (every sender, the chat formats included).
    Hooks,
    /// ntfy's publish paths.
    Ntfy,
    /// Gotify's `POST /message`.
    Gotify,
    /// `POST /admin/history/<id>/replay`.
    Replay,
    /// `POST /admin/history/<id>/rerender`.
    Rerender,
}

/// What the bridge decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Queued for delivery (202).
    Queued,
    /// Sent at once (a `sync` route).
    Sent,
    /// The same delivery was accepted before; nothing queued.
    Duplicate,
    /// The route's event filter (or a ping) said nothing is sent.
    Filtered,
    /// Every template rendered an empty message: nothing to send.
    Skipped,
    /// Refused (4xx/5xx); the reason says why (for 401 only that authentication failed).
    Refused,
}

/// The request as kept when `PUSHJET_BRIDGE_HISTORY_BODIES` is on: secrets removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptRequest {
    /// The headers, those that can carry a secret removed.
    pub headers: Vec<(String, String)>,
    /// The query string, `token`/`auth`/`secret` values replaced by `<redacted>`.
    pub query: String,
    /// The body (lossy UTF-8), at most [`super::redact::MAX_KEPT_BODY`] bytes.
    pub body: String,
    /// The body's full length in bytes.
    pub body_bytes: usize,
    /// True when the body was cut at the limit.
    pub truncated: bool,
    /// The sender the body was read as when a protocol adapter (ntfy, Gotify) turned the
    /// request into that shape.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_as: Option<String>,
}

/// One notification a request produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rendered {
    /// Its outbox id, when it was queued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    /// The template used.
    pub template: String,
    /// The notification; `None` when the template skipped it (an empty message).
    pub notification: Option<NewMessage>,
    /// The template's error, when the fallback was sent instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_error: Option<String>,
    /// Its delivery: filled from the deliveries when read (or kept here for a `sync` route).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<Delivery>,
    /// What the route's noise control did with it (`send`, `held: rate`, `held: quiet hours`,
    /// `collapsed`), on a route that has noise control; only one sent has an outbox id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noise: Option<NoiseVerdict>,
}

/// One request to a route, as recorded when it was answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Its id: increasing with time (newest first is highest first).
    pub id: u64,
    /// When it was answered.
    pub at: u64,
    /// The route.
    pub route: String,
    /// How it arrived.
    pub via: Via,
    /// The sender (`github`, …; empty when refused before the body was read).
    pub source: String,
    /// The event ("" when unknown).
    pub event: String,
    /// The event's action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// The sender's delivery id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_id: Option<String>,
    /// The request id (`X-Request-Id`).
    pub request_id: String,
    /// The status answered.
    pub status: u16,
    /// The decision.
    pub verdict: Verdict,
    /// Why (filtered, skipped, refused), a sentence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The notifications rendered, in order.
    pub notifications: Vec<Rendered>,
    /// The request, when bodies are kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<KeptRequest>,
    /// The record this one replays or renders again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub again_of: Option<u64>,
}

/// A notification's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Waiting to be sent.
    Pending,
    /// Pushjet has it.
    Sent,
    /// Failed; tried again later.
    Retrying,
    /// A dead letter.
    Dead,
    /// A dead letter deleted by an operator.
    Purged,
}

impl State {
    /// Its name, as the API writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Sent => "sent",
            Self::Retrying => "retrying",
            Self::Dead => "dead",
            Self::Purged => "purged",
        }
    }

    /// How much a record's state is this notification's (the worst wins).
    fn weight(self) -> u8 {
        match self {
            Self::Sent => 0,
            Self::Purged => 1,
            Self::Pending => 2,
            Self::Retrying => 3,
            Self::Dead => 4,
        }
    }
}

/// One send of a notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// When it started.
    pub at: u64,
    /// How long it took, in milliseconds; `None` when nothing was sent (the route was gone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    /// The upstream's HTTP status, when it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Pushjet's error id, when it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_id: Option<i64>,
    /// What went wrong (a connection error, the upstream's answer); `None` when it was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A queued notification's delivery: its state and every attempt, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// Its state.
    pub state: State,
    /// When a retrying notification is tried again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<u64>,
    /// Why it is dead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When the state last changed.
    pub changed_at: u64,
    /// Every send, oldest first.
    pub attempts: Vec<Attempt>,
}

impl Delivery {
    /// A notification just queued.
    pub fn pending(at: u64) -> Self {
        Self {
            state: State::Pending,
            until: None,
            reason: None,
            changed_at: at,
            attempts: Vec::new(),
        }
    }
}

/// A record with its notifications' deliveries filled in: the whole story.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Story {
    /// The record, each queued notification with its delivery.
    #[serde(flatten)]
    pub record: Record,
    /// The record's state (see [`Summary::state`]).
    pub state: String,
}

/// A record's line in a list: what the console's history table shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// The record's id.
    pub id: u64,
    /// When it was answered.
    pub at: u64,
    /// The route.
    pub route: String,
    /// How it arrived.
    pub via: Via,
    /// The sender.
    pub source: String,
    /// The event.
    pub event: String,
    /// The action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// The status answered.
    pub status: u16,
    /// The decision.
    pub verdict: Verdict,
    /// The worst state of its notifications (`dead` > `retrying` > `pending` > `purged` >
    /// `sent`), or the verdict's name when it queued none (`filtered`, `duplicate`, `skipped`,
    /// `refused`, and `sent` for a `sync` route).
    pub state: String,
    /// The first notification's title, or the reason.
    pub title: String,
    /// How many notifications it rendered.
    pub notifications: usize,
}

impl Verdict {
    /// Its name, as the API writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Sent => "sent",
            Self::Duplicate => "duplicate",
            Self::Filtered => "filtered",
            Self::Skipped => "skipped",
            Self::Refused => "refused",
        }
    }
}

impl Record {
    /// Its state, given its queued notifications' states (see [`Summary::state`]).
    pub fn state(&self, states: impl IntoIterator<Item = State>) -> String {
        states
            .into_iter()
            .max_by_key(|state| state.weight())
            .map_or(self.verdict.as_str(), State::as_str)
            .to_owned()
    }

    /// The title a list shows: the first notification's, else the reason, else the event.
    pub fn headline(&self) -> String {
        self.notifications
            .iter()
            .filter_map(|rendered| rendered.notification.as_ref())
            .map(|notification| notification.title.as_str())
            .find(|title| !title.is_empty())
            .map(str::to_owned)
            .or_else(|| {
                self.notifications
                    .iter()
                    .filter_map(|rendered| rendered.notification.as_ref())
                    .map(|notification| notification.message.as_str().chars().take(80).collect())
                    .next()
            })
            .or_else(|| self.reason.clone())
            .unwrap_or_else(|| self.event.clone())
    }

    /// The text `q` searches: every title and message, lower-cased.
    pub fn search_text(&self) -> String {
        let mut text = String::new();
        for notification in self
            .notifications
            .iter()
            .filter_map(|r| r.notification.as_ref())
        {
            text.push_str(notification.title.as_str());
            text.push('\n');
            text.push_str(notification.message.as_str());
            text.push('\n');
        }
        text.to_lowercase()
    }

    /// The outbox ids of its queued notifications.
    pub fn queued_ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.notifications.iter().filter_map(|rendered| rendered.id)
    }

    /// Its line in a list, with its state.
    pub fn summary(&self, state: String) -> Summary {
        Summary {
            id: self.id,
            at: self.at,
            route: self.route.clone(),
            via: self.via,
            source: self.source.clone(),
            event: self.event.clone(),
            action: self.action.clone(),
            status: self.status,
            verdict: self.verdict,
            state,
            title: self.headline(),
            notifications: self.notifications.len(),
        }
    }

    /// The story, once each queued notification's delivery is filled in.
    pub fn into_story(self) -> Story {
        let state = self.state(
            self.notifications
                .iter()
                .filter_map(|rendered| rendered.delivery.as_ref().map(|d| d.state)),
        );
        Story {
            record: self,
            state,
        }
    }
}

/// Which records a list wants; every filter is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Query {
    /// Only this route's.
    pub route: Option<String>,
    /// Only this sender's.
    pub source: Option<String>,
    /// Only this event's.
    pub event: Option<String>,
    /// Only records in this state (see [`Summary::state`]).
    pub state: Option<String>,
    /// Only records at or after this time.
    pub since: Option<u64>,
    /// Only records before this time.
    pub until: Option<u64>,
    /// Only records whose titles or messages contain this text (case-insensitive).
    pub q: Option<String>,
    /// Only records older than this id (the previous page's `next_cursor`).
    pub cursor: Option<u64>,
    /// How many at most.
    pub limit: usize,
}

impl Query {
    /// True when `record` (in `state`) passes every filter but the cursor and the limit.
    pub fn matches(&self, record: &Record, state: &str) -> bool {
        let equal =
            |filter: &Option<String>, value: &str| filter.as_deref().is_none_or(|f| f == value);
        equal(&self.route, &record.route)
            && equal(&self.source, &record.source)
            && equal(&self.event, &record.event)
            && equal(&self.state, state)
            && self.since.is_none_or(|since| record.at >= since)
            && self.until.is_none_or(|until| record.at < until)
            && self
                .q
                .as_deref()
                .is_none_or(|q| record.search_text().contains(&q.to_lowercase()))
    }
}

/// One page of a list, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Page {
    /// The records.
    pub records: Vec<Summary>,
    /// The cursor of the next (older) page, when there may be one.
    pub next_cursor: Option<u64>,
}

/// How many records a route has in one state (the console's overview counts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteCounts {
    /// The route.
    pub route: String,
    /// The state (see [`Summary::state`]).
    pub state: String,
    /// How many records.
    pub count: u64,
}

/// What the live stream announces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// `record` for a new record, `state` when a notification's state changed.
    pub kind: ChangeKind,
    /// The record as it is now.
    pub record: Summary,
}

/// The kind of a [`Change`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    /// A new record.
    Record,
    /// A notification of a known record changed state.
    State,
}

/// Something to write, queued by the recorders and written behind by the writer.
#[derive(Debug, Clone)]
pub enum Write {
    /// A new record.
    Record(Box<Record>),
    /// A queued notification's new state, with the attempt that led to it, if any.
    Delivery {
        /// The outbox id.
        id: u64,
        /// When.
        at: u64,
        /// The new state.
        state: State,
        /// When a retrying one is tried again.
        until: Option<u64>,
        /// Why it is dead.
        reason: Option<String>,
        /// The send that led to it.
        attempt: Option<Attempt>,
    },
}

impl Write {
    /// About how many bytes of memory it holds while it waits for the writer: its texts (a kept
    /// body above all) and a fixed part.
    pub(super) fn weight(&self) -> u64 {
        let bytes = match self {
            Self::Record(record) => {
                let request = record.request.as_ref().map_or(0, |request| {
                    request.body.len()
                        + request.query.len()
                        + request
                            .headers
                            .iter()
                            .map(|(name, value)| name.len() + value.len() + 48)
                            .sum::<usize>()
                });
                let notifications = record
                    .notifications
                    .iter()
                    .map(|rendered| {
                        256 + rendered.notification.as_ref().map_or(0, |message| {
                            message.title.as_str().len()
                                + message.message.as_str().len()
                                + message.link.as_ref().map_or(0, |link| link.as_str().len())
                        })
                    })
                    .sum::<usize>();
                512 + request + notifications
            }
            Self::Delivery { reason, .. } => 256 + reason.as_ref().map_or(0, String::len),
        };
        u64::try_from(bytes).unwrap_or(u64::MAX)
    }

    /// Applies a delivery change to a stored delivery (or a fresh one).
    pub(super) fn apply_to(&self, delivery: Option<Delivery>) -> Option<Delivery> {
        let Self::Delivery {
            at,
            state,
            until,
            reason,
            attempt,
            ..
        } = self
        else {
            return delivery;
        };
        let mut delivery = delivery.unwrap_or_else(|| Delivery::pending(*at));
        delivery.state = *state;
        delivery.until = *until;
        delivery.reason.clone_from(reason);
        delivery.changed_at = *at;
        if let Some(attempt) = attempt {
            delivery.attempts.push(attempt.clone());
        }
        Some(delivery)
    }
}
