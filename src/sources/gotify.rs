//! A Gotify message, as Gotify's `POST /message` takes it (`SOURCE=gotify`): `title`, `message`,
//! `priority` (0–10) and `extras`. The Gotify endpoint at the root turns a request (JSON, form or
//! query) into this body; see `src/http/gotify.rs`.
//!
//! The **priority** maps to importance by Gotify's own bands (its Android app shows 0 silently,
//! 1–3 as an icon, 4–7 with a sound, 8–10 as a pop-up), so that Apprise's five Gotify
//! priorities (low 0, moderate 3, normal 5, high 8, emergency 10) land on five importances:
//!
//! | priority | 0 | 1–3 | 4–7 | 8–9 | 10 |
//! |---|---|---|---|---|---|
//! | importance | 1 | 2 | 3 | 4 | 5 |
//!
//! Without a priority the route's default applies. The **link** is
//! `extras["client::notification"].click.url`.

use actix_web::http::header::HeaderMap;
use serde_json::Value;

use super::body::Body;
use super::chat::{Notice, text};
use super::{DecodeError, Decoded, SourceKind, SourceOptions};
use crate::pushjet::Importance;

/// The importance of a Gotify priority (0–10); `None` outside that range.
fn importance(priority: i64) -> Option<Importance> {
    let level = match priority {
        0 => 1,
        1..=3 => 2,
        4..=7 => 3,
        8..=9 => 4,
        10 => 5,
        _ => return None,
    };
    Importance::new(level).ok()
}

/// Decodes a Gotify message into its one notification.
pub(super) fn decode(
    headers: &HeaderMap,
    body: Body,
    options: &SourceOptions,
) -> Result<Decoded, DecodeError> {
    let Body::Json(payload @ Value::Object(_)) = body else {
        return Err(DecodeError::UnexpectedPayload {
            sender: SourceKind::Gotify,
            expected: "Gotify's JSON message (title, message, priority, extras)",
        });
    };
    let mut notice = Notice {
        importance: payload
            .get("priority")
            .and_then(Value::as_i64)
            .and_then(importance),
        ..Notice::default()
    };
    notice.offer_title(text(&payload, "title"));
    notice.push(text(&payload, "message"));
    let click = payload
        .pointer("/extras/client::notification/click/url")
        .and_then(Value::as_str)
        .unwrap_or_default();
    notice.offer_link(click);
    Ok(notice.into_decoded(
        SourceKind::Gotify,
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

    #[test]
    fn priorities_map_in_gotify_bands() {
        let mapped: Vec<Option<u8>> = [-1, 0, 1, 3, 4, 5, 7, 8, 9, 10, 11]
            .into_iter()
            .map(|priority| importance(priority).map(Importance::get))
            .collect();
        assert_eq!(
            mapped,
            [
                None,
                Some(1),
                Some(2),
                Some(2),
                Some(3),
                Some(3),
                Some(3),
                Some(4),
                Some(4),
                Some(5),
                None
            ]
        );
    }

    #[test]
    fn the_click_url_in_extras_is_the_link() {
        let mut options = SourceOptions::new("ops");
        options.setting = SourceSetting::Fixed(SourceKind::Gotify);
        let body = json!({
            "title": "Backup", "message": "done", "priority": 8,
            "extras": {"client::notification": {"click": {"url": "https://backups.example/42"}}}
        });
        let decoded = decode_request(&json_headers(), "", body.to_string().as_bytes(), &options)
            .expect("decodes");
        let context = &decoded.contexts[0];
        assert_eq!(context.tree["link"], json!("https://backups.example/42"));
        assert_eq!(context.importance.get(), 4);
        assert_eq!(context.tree["bridge"]["source"], json!("gotify"));
    }
}
