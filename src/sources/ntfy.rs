//! An ntfy message, as ntfy's JSON publishing takes it (`SOURCE=ntfy`): `topic`, `message`,
//! `title`, `priority`, `tags`, `click`, `icon`, `actions`, `markdown`. The ntfy publish endpoints
//! at the root (`PUT`/`POST /<route>`, `POST /`) turn every request, headers and query included,
//! into this body; see `src/http/ntfy.rs`.
//!
//! - **priority**: `1`..`5` or `min`, `low`, `default`, `high`, `max`/`urgent` is the importance;
//!   absent, empty or `0` leaves the route's default.
//! - **link**: `click`, else the URL of the first `view` action.
//! - **message**: as sent; an empty one reads `triggered`, as ntfy shows it.
//!
//! Templates also see the body as `payload`, so `payload.tags` lists the tags.

use actix_web::http::header::HeaderMap;
use serde_json::Value;

use super::body::Body;
use super::chat::{Notice, items, text};
use super::{DecodeError, Decoded, SourceKind, SourceOptions};
use crate::pushjet::Importance;

/// What ntfy shows for a message published without text.
const EMPTY_MESSAGE: &str = "triggered";

/// A priority that is neither `0`..`5` nor one of ntfy's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the priority must be 1 to 5, or min, low, default, high, max or urgent")]
pub struct InvalidPriority;

/// An ntfy priority, as a number or one of its words; `Ok(None)` for "not set" (empty or 0).
pub fn parse_priority(raw: &str) -> Result<Option<Importance>, InvalidPriority> {
    let level = match raw.trim().to_ascii_lowercase().as_str() {
        "" | "0" => return Ok(None),
        "1" | "min" => 1,
        "2" | "low" => 2,
        "3" | "default" => 3,
        "4" | "high" => 4,
        "5" | "max" | "urgent" => 5,
        _ => return Err(InvalidPriority),
    };
    Importance::new(level)
        .map(Some)
        .map_err(|_| InvalidPriority)
}

/// Decodes an ntfy message into its one notification.
pub(super) fn decode(
    headers: &HeaderMap,
    body: Body,
    options: &SourceOptions,
) -> Result<Decoded, DecodeError> {
    let Body::Json(payload @ Value::Object(_)) = body else {
        return Err(DecodeError::UnexpectedPayload {
            sender: SourceKind::Ntfy,
            expected: "ntfy's JSON message (topic, message, title, priority, ...)",
        });
    };
    let priority = match payload.get("priority") {
        Some(Value::Number(number)) => parse_priority(&number.to_string()),
        Some(Value::String(word)) => parse_priority(word),
        _ => Ok(None),
    };
    let mut notice = Notice {
        importance: priority.ok().flatten(),
        ..Notice::default()
    };
    notice.offer_title(text(&payload, "title"));
    notice.push(text(&payload, "message"));
    if notice.lines.is_empty() {
        notice.push(EMPTY_MESSAGE);
    }
    notice.offer_link(text(&payload, "click"));
    for action in items(&payload, "actions") {
        if text(action, "action") == "view" {
            notice.offer_link(text(action, "url"));
        }
    }
    Ok(notice.into_decoded(
        SourceKind::Ntfy,
        ("message", None),
        payload,
        headers,
        options,
    ))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::json_headers;
    use super::super::{SourceSetting, decode as decode_request};
    use super::*;
    use serde_json::json;

    fn deliver(body: &Value) -> Decoded {
        let mut options = SourceOptions::new("ops");
        options.setting = SourceSetting::Fixed(SourceKind::Ntfy);
        decode_request(&json_headers(), "", body.to_string().as_bytes(), &options)
            .unwrap_or_else(|error| panic!("{error}"))
    }

    #[test]
    fn priority_words_and_numbers_are_importance() {
        for (raw, expected) in [("min", 1), ("2", 2), ("High", 4), ("urgent", 5), ("max", 5)] {
            assert_eq!(
                parse_priority(raw).ok().flatten().map(Importance::get),
                Some(expected),
                "{raw}"
            );
        }
        assert_eq!(parse_priority(""), Ok(None));
        assert_eq!(parse_priority("0"), Ok(None));
        assert!(parse_priority("6").is_err());
        assert!(parse_priority("loud").is_err());
    }

    #[test]
    fn click_or_the_first_view_action_is_the_link() {
        let decoded = deliver(&json!({
            "topic": "ops", "message": "Disk full", "priority": 5,
            "actions": [{"action": "http", "url": "https://api.example/x"}, {"action": "view", "label": "Open", "url": "https://grafana.example/d/1"}]
        }));
        let context = &decoded.contexts[0];
        assert_eq!(context.tree["link"], json!("https://grafana.example/d/1"));
        assert_eq!(context.importance.get(), 5);
        let decoded = deliver(
            &json!({"message": "x", "click": "https://c.example", "actions": [{"action": "view", "url": "https://v.example"}]}),
        );
        assert_eq!(decoded.contexts[0].tree["link"], json!("https://c.example"));
    }

    #[test]
    fn an_empty_message_reads_triggered() {
        let decoded = deliver(&json!({"topic": "ops", "title": "Ping"}));
        assert_eq!(decoded.contexts[0].tree["message"], json!("triggered"));
        assert_eq!(decoded.contexts[0].importance.get(), 3);
    }
}
