//! Who sent this webhook and what does it say: recognising the sender, naming its event, finding
//! its delivery id, and splitting its payload into one template context per notification.
//!
//! [`decode`] reads the body by its content type (JSON, form or plain text), picks the sender (from the route's
//! [`SourceSetting`], or from headers and payload), and hands over to that sender's module.
//!
//! # The template context contract
//!
//! Every context has a `bridge` object: `route`, `source` (`github`, ...), `event`, `action` (a
//! string or null) and `importance` (a string `"1"`..`"5"`: the route's default unless the sender
//! sets one, see below). A payload field named `bridge` is replaced by it.
//!
//! - **github, gitea, gitlab**: the payload object's fields at top level. GitHub and Gitea name
//!   the event in a header and the action in the payload's `action`; GitLab's event is the
//!   payload's `object_kind` (`build` becomes `job`; the `X-Gitlab-Event` header, e.g.
//!   `Merge Request Hook` → `merge_request`, when there is none) and its action is
//!   `object_attributes.action`.
//! - **alertmanager, grafana**: see *Alerts* below.
//! - **slack (and Mattermost), discord, teams, apprise, ntfy, gotify**: `title`, `message` and
//!   `link` read from the format (strings, empty when not given) and `payload` (the body as
//!   sent); see each module and `chat.rs`. A red colour (Slack's `danger`) raises the importance to
//!   4; Apprise's type, ntfy's and Gotify's priority set it.
//! - **generic**: `title`, `message`, `link`, `importance` (strings, empty when not given),
//!   `summary` (readable `key: value` lines of the other fields) and `payload` (the body as sent);
//!   event `message`. `bridge.importance` is the sender's importance when it is `1`..`5` or one of
//!   ntfy's words (`min`, `low`, `default`, `high`, `max`/`urgent`), else the route's default.
//!
//! ## Alerts
//!
//! A group payload (Alertmanager, or Grafana's unified alerting) becomes notifications by the
//! route's [`AlertGrouping`]. Each context has the group's fields at top level, unchanged (so
//! `status`, and Grafana's `title` and `message`, describe the whole group), except `alerts`,
//! which holds only this notification's alerts. `bridge` adds `firing` and `resolved` (this
//! notification's alerts of each status) and `more` (the group's `truncatedAlerts`, or 0).
//! `bridge.event` is `firing` when any of its alerts fires, else `resolved`.
//!
//! `bridge.importance` is the highest importance among the notification's firing alerts, where an
//! alert's importance is its `pushjet_importance` label or annotation (1..5) if it has one, else
//! its `severity` label mapped by [`SeverityImportance`]; alerts with neither do not count, and
//! when no firing alert counts the route's default applies. A notification without firing alerts
//! follows the [`ResolvedPolicy`]: `send` gives importance 1, a number gives that importance, and
//! `suppress` drops the notification. Resolved alerts that share a notification with firing ones
//! (a mixed group in `group` mode) are kept: they are part of the group's state. A payload without
//! alerts produces no notification.
//!
//! Grafana's legacy alerting payload (`ruleName`, `evalMatches`, ...) becomes one context with
//! `bridge.event` set to its `state`; state `ok` counts as resolved.

mod alertmanager;
mod alerts;
mod apprise;
mod body;
mod chat;
mod collapse;
mod discord;
mod generic;
mod gitea;
mod github;
mod gitlab;
mod gitlab_changes;
mod gotify;
mod grafana;
mod markup;
mod multipart;
mod ntfy;
mod options;
mod slack;
mod teams;

use actix_web::http::header::HeaderMap;
use serde_json::{Map, Value};

use crate::pushjet::Importance;
use body::Body;

#[cfg(test)]
pub(crate) use alerts::group_alert_name;
#[cfg(test)]
pub(crate) use gitlab_changes::change_lines_of as gitlab_change_lines;
pub use body::check_content_type;
pub use collapse::collapse_key;
pub use multipart::form_fields as multipart_form_fields;
pub use ntfy::parse_priority as parse_ntfy_priority;
pub use options::{
    AlertGrouping, ResolvedPolicy, SeverityImportance, SourceKind, SourceOptions,
    SourceSetting,
};

/// Why a request's body cannot be decoded into notifications.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The `Content-Type` is not one this bridge reads (HTTP 415).
    #[error(
        "content type {0:?} is not supported; send application/json, application/x-www-form-urlencoded, multipart/form-data or text/plain"
    )]
    UnsupportedContentType(String),
    /// The body is not UTF-8.
    #[error("the body is not valid UTF-8 (first bad byte at offset {offset})")]
    InvalidUtf8 {
        /// Bytes before the first invalid sequence.
        offset: usize,
    },
    /// The body (or a form's `payload` field) is not valid JSON.
    #[error("the body is not valid JSON: {detail} at line {line}, column {column}")]
    MalformedJson {
        /// The line of the error, from 1.
        line: usize,
        /// The column of the error, from 1 (0 when the text ended early on an empty line).
        column: usize,
        /// What serde_json found wrong.
        detail: String,
    },
    /// A `multipart/form-data` body that cannot be read.
    #[error("the multipart form body cannot be read: {0}")]
    MalformedMultipart(&'static str),
    /// The sender's event header is missing.
    #[error("a {sender} webhook must carry the {header} header")]
    MissingEventHeader {
        /// The sender expected.
        sender: SourceKind,
        /// The header (or headers) looked for.
        header: &'static str,
    },
    /// A header this bridge reads holds characters other than visible ASCII.
    #[error("the {0} header must be visible ASCII text")]
    InvalidHeader(&'static str),
    /// The body is not of the shape the sender sends.
    #[error("a {sender} webhook body must be {expected}")]
    UnexpectedPayload {
        /// The sender expected.
        sender: SourceKind,
        /// What its body should have been.
        expected: &'static str,
    },
}

impl From<serde_json::Error> for DecodeError {
    fn from(error: serde_json::Error) -> Self {
        let (line, column) = (error.line(), error.column());
        let text = error.to_string();
        let suffix = format!(" at line {line} column {column}");
        let detail = text.strip_suffix(&suffix).unwrap_or(&text).to_owned();
        Self::MalformedJson {
            line,
            column,
            detail,
        }
    }
}

/// A decoded webhook: who sent it, what happened, and the notifications to produce.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// The sender.
    pub source: SourceKind,
    /// The event: GitHub's `X-GitHub-Event`, GitLab's `object_kind`, `firing`/`resolved` for an
    /// alert group (firing when any of its alerts fires), a Grafana legacy `state`, or `message`.
    pub event: String,
    /// The event's action (`opened`, `closed`, ...), when the sender names one.
    pub action: Option<String>,
    /// The sender's delivery id (`X-GitHub-Delivery`, `X-Gitea-Delivery`/`X-Forgejo-Delivery`,
    /// `X-Gitlab-Event-UUID`, `Idempotency-Key`). Alertmanager and Grafana send none, so for them
    /// it is a SHA-256 hex digest of the group key, the group status and each alert's
    /// fingerprint, status, `startsAt` and `endsAt`: the two members of an HA pair sending the
    /// same group state get the same id.
    pub delivery_id: Option<String>,
    /// One context per notification; empty when there is nothing to notify.
    pub contexts: Vec<Context>,
}

impl Decoded {
    /// The key that identifies this delivery for deduplication: the source's name, a colon, and
    /// the delivery id; `None` when the sender gave no id.
    pub fn dedup_key(&self) -> Option<String> {
        self.delivery_id
            .as_ref()
            .map(|id| format!("{}:{id}", self.source))
    }

    /// True when the delivery id stands for an alert group's state (Alertmanager and Grafana
    /// send none): the same state posted again later is a reminder, remembered only for
    /// `PUSHJET_BRIDGE_ALERT_DEDUP_WINDOW`.
    pub fn dedup_is_alert_state(&self) -> bool {
        matches!(self.source, SourceKind::Alertmanager | SourceKind::Grafana)
    }
}

/// Decodes a webhook: `headers` and `query` (the raw query string, without `?`) as received,
/// `body` the raw bytes.
pub fn decode(
    headers: &HeaderMap,
    query: &str,
    body: &[u8],
    options: &SourceOptions,
) -> Result<Decoded, DecodeError> {
    let body = body::decode_body(headers, body)?;
    let source = match options.setting {
        SourceSetting::Auto => detect(headers, &body),
        SourceSetting::Fixed(kind) => kind,
    };
    match source {
        SourceKind::Github => github::decode(headers, body, options),
        SourceKind::Gitea => gitea::decode(headers, body, options),
        SourceKind::Gitlab => gitlab::decode(headers, body, options),
        SourceKind::Alertmanager => alertmanager::decode(body, options),
        SourceKind::Grafana => grafana::decode(body, options),
        SourceKind::Slack => slack::decode(headers, body, options),
        SourceKind::Discord => discord::decode(headers, body, options),
        SourceKind::Teams => teams::decode(headers, body, options),
        SourceKind::Apprise => apprise::decode(headers, body, options),
        SourceKind::Ntfy => ntfy::decode(headers, body, options),
        SourceKind::Gotify => gotify::decode(headers, body, options),
        SourceKind::Generic => Ok(generic::decode(headers, query, body, options)),
    }
}

/// Recognises the sender. Gitea and Forgejo come first: they also send `X-GitHub-Event`. Apprise
/// and Teams come before Slack: their bodies also have an `attachments` array. ntfy and Gotify
/// bodies come from their own endpoints, never from recognition.
fn detect(headers: &HeaderMap, body: &Body) -> SourceKind {
    if gitea::recognises(headers) {
        SourceKind::Gitea
    } else if gitlab::recognises(headers) {
        SourceKind::Gitlab
    } else if github::recognises(headers) {
        SourceKind::Github
    } else {
        match body {
            Body::Json(payload) => detect_json(payload),
            Body::Form(fields) if apprise::recognises(fields) => SourceKind::Apprise,
            Body::Form(_) | Body::Text(_) => SourceKind::Generic,
        }
    }
}

/// Recognises a JSON sender by the shape of its payload.
fn detect_json(payload: &Value) -> SourceKind {
    let object = payload.as_object();
    if alertmanager::recognises(payload) {
        SourceKind::Alertmanager
    } else if grafana::recognises(payload) {
        SourceKind::Grafana
    } else if object.is_some_and(apprise::recognises) {
        SourceKind::Apprise
    } else if teams::recognises(payload) {
        SourceKind::Teams
    } else if slack::recognises(payload) {
        SourceKind::Slack
    } else if discord::recognises(payload) {
        SourceKind::Discord
    } else {
        SourceKind::Generic
    }
}

/// A header's value, trimmed; `None` when absent or empty; an error when it is not visible ASCII.
fn header_text<'a>(
    headers: &'a HeaderMap,
    name: &'static str,
) -> Result<Option<&'a str>, DecodeError> {
    match headers.get(name) {
        None => Ok(None),
        Some(value) => value
            .to_str()
            .map(|text| Some(text.trim()).filter(|text| !text.is_empty()))
            .map_err(|_| DecodeError::InvalidHeader(name)),
    }
}

/// The first of `names` present with a usable value; unusable values are skipped, since a
/// delivery id only helps and must not turn a webhook away.
fn delivery_header(headers: &HeaderMap, names: &[&'static str]) -> Option<String> {
    names
        .iter()
        .find_map(|name| header_text(headers, name).ok().flatten())
        .map(str::to_owned)
}

/// The body as a JSON object, or the error a forge sender gets for anything else.
fn json_object(body: Body, sender: SourceKind) -> Result<Map<String, Value>, DecodeError> {
    match body {
        Body::Json(Value::Object(payload)) => Ok(payload),
        _ => Err(DecodeError::UnexpectedPayload {
            sender,
            expected: "a JSON object (or a form with a JSON payload field)",
        }),
    }
}

/// One notification's worth of a webhook: what happened, as typed values, and the tree the
/// templates see. The tree is the payload with a `bridge` object made from the same values (and
/// any entries the source adds, such as an alert group's `firing` and `resolved`).
#[derive(Debug, Clone, PartialEq)]
pub struct Context {
    /// The event this notification is about (for an alert group, `firing` or `resolved`).
    pub event: String,
    /// The event's action, if any.
    pub action: Option<String>,
    /// The importance the source chose: the route's default unless the sender set one or the
    /// source derives one (alert severities); a template that gives none gets this one.
    pub importance: Importance,
    /// What the templates render: the payload's fields plus `bridge`.
    pub tree: Value,
}

impl Context {
    /// Adds `bridge` (`route`, `source`, `event`, `action`, `importance` and `extra`) to
    /// `payload`, replacing a payload field of that name.
    fn new(
        options: &SourceOptions,
        source: SourceKind,
        notice: (&str, Option<&str>, Importance),
        mut payload: Map<String, Value>,
        extra: Map<String, Value>,
    ) -> Self {
        let (event, action, importance) = notice;
        let mut bridge = Map::new();
        bridge.insert("route".into(), options.route.clone().into());
        bridge.insert("source".into(), source.as_str().into());
        bridge.insert("event".into(), event.into());
        bridge.insert("action".into(), action.map_or(Value::Null, Value::from));
        bridge.insert("importance".into(), importance.to_string().into());
        bridge.extend(extra);
        payload.insert("bridge".into(), Value::Object(bridge));
        Self {
            event: event.to_owned(),
            action: action.map(str::to_owned),
            importance,
            tree: Value::Object(payload),
        }
    }
}

/// A forge's (GitHub, Gitea, GitLab) single notification: the payload's fields plus `bridge`.
fn forge_decoded(
    source: SourceKind,
    event: String,
    action: Option<String>,
    delivery_id: Option<String>,
    payload: Map<String, Value>,
    options: &SourceOptions,
) -> Decoded {
    let context = Context::new(
        options,
        source,
        (&event, action.as_deref(), options.default_importance),
        payload,
        Map::new(),
    );
    Decoded {
        source,
        event,
        action,
        delivery_id,
        contexts: vec![context],
    }
}

#[cfg(test)]
pub(crate) mod test_support;

#[cfg(test)]
mod tests {
    use super::test_support::{fixture, fixture_names, headers, json_headers};
    use super::*;

    fn detect_fixture(dir: &str, file: &str, extra: &[(&str, &str)]) -> SourceKind {
        let mut pairs = vec![("Content-Type", "application/json")];
        pairs.extend_from_slice(extra);
        let decoded = decode(
            &headers(&pairs),
            "",
            &fixture(dir, file),
            &SourceOptions::new("test"),
        )
        .unwrap_or_else(|error| panic!("{dir}/{file}: {error}"));
        decoded.source
    }

    fn event_of(file: &str) -> &str {
        file.split('.').next().unwrap_or_default()
    }

    #[test]
    fn every_github_fixture_is_detected_as_github() {
        for file in fixture_names("github") {
            let event = event_of(&file);
            let source = detect_fixture("github", &file, &[("X-GitHub-Event", event)]);
            assert_eq!(source, SourceKind::Github, "{file}");
        }
    }

    #[test]
    fn every_gitea_fixture_is_detected_as_gitea_despite_its_github_headers() {
        for file in fixture_names("gitea") {
            let event = event_of(&file);
            let gitea = [
                ("X-GitHub-Event", event),
                ("X-Gogs-Event", event),
                ("X-Gitea-Event", event),
            ];
            assert_eq!(detect_fixture("gitea", &file, &gitea), SourceKind::Gitea);
            let forgejo = [("X-Forgejo-Event", event), ("X-GitHub-Event", event)];
            assert_eq!(detect_fixture("gitea", &file, &forgejo), SourceKind::Gitea);
        }
    }

    #[test]
    fn every_gitlab_fixture_is_detected_as_gitlab() {
        let hooks = [
            ("issue", "Issue Hook"),
            ("job", "Job Hook"),
            ("merge_request", "Merge Request Hook"),
            ("note", "Note Hook"),
            ("pipeline", "Pipeline Hook"),
            ("push", "Push Hook"),
            ("tag_push", "Tag Push Hook"),
            ("access_token", "Resource Access Token Hook"),
            ("deployment", "Deployment Hook"),
            ("emoji", "Emoji Hook"),
            ("feature_flag", "Feature Flag Hook"),
            ("member", "Member Hook"),
            ("release", "Release Hook"),
            ("subgroup", "Subgroup Hook"),
            ("vulnerability", "Vulnerability Hook"),
            ("wiki_page", "Wiki Page Hook"),
        ];
        for file in fixture_names("gitlab") {
            let hook = hooks
                .iter()
                .find(|(prefix, _)| *prefix == event_of(&file))
                .map(|(_, hook)| *hook)
                .unwrap_or_else(|| panic!("no header for {file}"));
            let source = detect_fixture("gitlab", &file, &[("X-Gitlab-Event", hook)]);
            assert_eq!(source, SourceKind::Gitlab, "{file}");
        }
    }

    #[test]
    fn every_alertmanager_fixture_is_detected_from_its_payload() {
        for file in fixture_names("alertmanager") {
            let source = detect_fixture("alertmanager", &file, &[]);
            assert_eq!(source, SourceKind::Alertmanager, "{file}");
        }
    }

    #[test]
    fn every_grafana_fixture_is_detected_from_its_payload() {
        for file in fixture_names("grafana") {
            let source = detect_fixture("grafana", &file, &[]);
            assert_eq!(source, SourceKind::Grafana, "{file}");
        }
    }

    #[test]
    fn generic_fixtures_are_detected_as_generic() {
        for file in fixture_names("generic") {
            if file == "deep-nesting-200.json" {
                continue;
            }
            assert_eq!(
                detect_fixture("generic", &file, &[]),
                SourceKind::Generic,
                "{file}"
            );
        }
    }

    #[test]
    fn fixed_setting_skips_detection() {
        let mut options = SourceOptions::new("curl");
        options.setting = SourceSetting::Fixed(SourceKind::Generic);
        let body = fixture("alertmanager", "captured-firing-single.json");
        let decoded = decode(&json_headers(), "", &body, &options).expect("decodes");
        assert_eq!(decoded.source, SourceKind::Generic);
    }

    #[test]
    fn fixed_forge_setting_needs_its_event_header() {
        let body = fixture("github", "push.json");
        for (kind, header) in [
            (SourceKind::Github, "X-GitHub-Event"),
            (SourceKind::Gitea, "X-Gitea-Event or X-Forgejo-Event"),
        ] {
            let mut options = SourceOptions::new("forge");
            options.setting = SourceSetting::Fixed(kind);
            let error = decode(&json_headers(), "", &body, &options).expect_err("no header");
            assert_eq!(
                error,
                DecodeError::MissingEventHeader {
                    sender: kind,
                    header
                }
            );
            assert!(error.to_string().contains(header));
        }
    }

    #[test]
    fn fixed_alert_setting_refuses_a_body_without_alerts() {
        for kind in [SourceKind::Alertmanager, SourceKind::Grafana] {
            let mut options = SourceOptions::new("alerts");
            options.setting = SourceSetting::Fixed(kind);
            let error = decode(&json_headers(), "", br#"{"message":"hi"}"#, &options);
            assert!(
                matches!(error, Err(DecodeError::UnexpectedPayload { sender, .. }) if sender == kind)
            );
        }
    }

    #[test]
    fn non_object_forge_payload_is_an_error() {
        let request = headers(&[
            ("Content-Type", "application/json"),
            ("X-GitHub-Event", "push"),
        ]);
        let error = decode(&request, "", b"[1,2]", &SourceOptions::new("gh"));
        assert!(matches!(
            error,
            Err(DecodeError::UnexpectedPayload {
                sender: SourceKind::Github,
                ..
            })
        ));
    }

    #[test]
    fn non_ascii_event_header_is_a_clear_error() {
        let mut request = json_headers();
        request.insert(
            actix_web::http::header::HeaderName::from_static("x-github-event"),
            actix_web::http::header::HeaderValue::from_bytes(b"pu\xffsh").expect("opaque bytes"),
        );
        let error = decode(&request, "", b"{}", &SourceOptions::new("gh"));
        assert_eq!(error, Err(DecodeError::InvalidHeader("x-github-event")));
    }

    #[test]
    fn unsupported_content_type_is_refused_before_anything_else() {
        let request = headers(&[("Content-Type", "application/xml")]);
        let error = decode(&request, "", b"<a/>", &SourceOptions::new("x"));
        assert_eq!(
            error,
            Err(DecodeError::UnsupportedContentType(
                "application/xml".into()
            ))
        );
    }

    #[test]
    fn malformed_json_says_where() {
        let error = decode(
            &json_headers(),
            "",
            b"{\"message\": \"unterminated}",
            &SourceOptions::new("x"),
        )
        .expect_err("malformed");
        let DecodeError::MalformedJson { line, column, .. } = &error else {
            panic!("expected MalformedJson, got {error:?}");
        };
        assert_eq!((*line, *column), (1, 26));
        assert!(error.to_string().contains("line 1, column 26"), "{error}");
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let body = fixture("generic", "deep-nesting-200.json");
        let error = decode(&json_headers(), "", &body, &SourceOptions::new("x"));
        assert!(
            matches!(&error, Err(DecodeError::MalformedJson { detail, .. }) if detail.contains("recursion")),
            "{error:?}"
        );
    }

    #[test]
    fn deep_nesting_without_content_type_falls_back_to_text() {
        let body = fixture("generic", "deep-nesting-200.json");
        let decoded = decode(&HeaderMap::new(), "", &body, &SourceOptions::new("x"))
            .expect("decodes as text");
        assert_eq!(decoded.source, SourceKind::Generic);
        assert_eq!(decoded.contexts.len(), 1);
    }

    #[test]
    fn dedup_key_is_prefixed_with_the_source() {
        let decoded = Decoded {
            source: SourceKind::Github,
            event: "push".into(),
            action: None,
            delivery_id: Some("72d3162e".into()),
            contexts: Vec::new(),
        };
        assert_eq!(decoded.dedup_key().as_deref(), Some("github:72d3162e"));
    }
}
