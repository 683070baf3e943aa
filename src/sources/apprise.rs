//! What Apprise's `json://` and `form://` notifications post (`SOURCE=apprise`): `version`,
//! `title`, `message` and `type`, as JSON or as form fields (`attachments` in JSON is ignored).
//!
//! The event is `message` and the action the `type`, so `EVENTS=message.failure` keeps only
//! failures. The `type` sets the importance: `info` the route's default, `success` 2, `warning` 4,
//! `failure` 5; any other type leaves the route's default.

use actix_web::http::header::HeaderMap;
use serde_json::{Map, Value};

use super::body::Body;
use super::chat::{Notice, text};
use super::{DecodeError, Decoded, SourceKind, SourceOptions};
use crate::pushjet::Importance;

/// Apprise's notification types.
const TYPES: [&str; 4] = ["info", "success", "warning", "failure"];

/// True for Apprise's body: `version`, `message` and one of its four `type`s.
pub(super) fn recognises(payload: &Map<String, Value>) -> bool {
    payload.get("version").is_some_and(Value::is_string)
        && payload.get("message").is_some_and(Value::is_string)
        && payload
            .get("type")
            .and_then(Value::as_str)
            .is_some_and(|kind| TYPES.contains(&kind))
}

/// The importance an Apprise type asks for; `None` for `info` and unknown types.
fn importance(kind: &str) -> Option<Importance> {
    match kind {
        "success" => Importance::new(2).ok(),
        "warning" => Importance::new(4).ok(),
        "failure" => Importance::new(5).ok(),
        _ => None,
    }
}

/// Decodes an Apprise notification into its one notification.
pub(super) fn decode(
    headers: &HeaderMap,
    body: Body,
    options: &SourceOptions,
) -> Result<Decoded, DecodeError> {
    let fields = match body {
        Body::Json(Value::Object(fields)) | Body::Form(fields) => fields,
        _ => {
            return Err(DecodeError::UnexpectedPayload {
                sender: SourceKind::Apprise,
                expected: "a JSON object or form with title, message and type",
            });
        }
    };
    let payload = Value::Object(fields);
    let kind = text(&payload, "type").trim().to_ascii_lowercase();
    let mut notice = Notice {
        importance: importance(&kind),
        ..Notice::default()
    };
    notice.offer_title(text(&payload, "title"));
    notice.push(text(&payload, "message"));
    let action = (!kind.is_empty()).then_some(kind.as_str());
    Ok(notice.into_decoded(
        SourceKind::Apprise,
        ("message", action),
        payload,
        headers,
        options,
    ))
}

#[cfg(test)]
mod tests {
    use super::super::decode as decode_request;
    use super::super::test_support::{fixture, fixture_names, headers, json_headers};
    use super::*;
    use serde_json::json;

    #[test]
    fn every_json_fixture_is_recognised_with_its_type() {
        for name in fixture_names("apprise") {
            let decoded = decode_request(
                &json_headers(),
                "",
                &fixture("apprise", &name),
                &SourceOptions::new("apprise"),
            )
            .unwrap_or_else(|error| panic!("{name}: {error}"));
            assert_eq!(decoded.source, SourceKind::Apprise, "{name}");
            let kind = name.split(['.', '-']).nth(1).unwrap_or_default();
            assert_eq!(decoded.action.as_deref(), Some(kind), "{name}");
        }
    }

    #[test]
    fn the_form_body_reads_like_the_json_one_and_failure_is_5() {
        let request = headers(&[("Content-Type", "application/x-www-form-urlencoded")]);
        let decoded = decode_request(
            &request,
            "",
            &fixture("apprise", "form.failure.form"),
            &SourceOptions::new("apprise"),
        )
        .expect("decodes");
        assert_eq!(decoded.source, SourceKind::Apprise);
        let context = &decoded.contexts[0];
        assert_eq!(context.tree["title"], json!("Backup failed"));
        assert_eq!(
            context.tree["message"],
            json!("db-1: pg_dump exited with 1")
        );
        assert_eq!(context.importance.get(), 5);
    }

    #[test]
    fn each_type_has_its_importance() {
        let cases = [("info", 3), ("success", 2), ("warning", 4), ("failure", 5)];
        for (kind, expected) in cases {
            let body = json!({"version": "1.0", "title": "", "message": "m", "type": kind});
            let decoded = decode_request(
                &json_headers(),
                "",
                body.to_string().as_bytes(),
                &SourceOptions::new("apprise"),
            )
            .expect("decodes");
            assert_eq!(decoded.contexts[0].importance.get(), expected, "{kind}");
        }
    }
}
