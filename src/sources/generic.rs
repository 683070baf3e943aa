//! Anything else: curl, scripts, services without a module of their own.
//!
//! The body may be a JSON object (or form fields) with `title`, `message` (or `text`, `body`),
//! `link` (or `url`, `click`) and `importance` (or `priority`, `level`); the first alias with a
//! non-empty value wins. Query parameters `title`, `link` and `importance` (with the same
//! aliases) fill what the body did not give. A JSON string or a plain-text body is the message;
//! other JSON (numbers, arrays, null) is described in `summary`.
//!
//! The summary lists fields in key order (serde_json's map is sorted).
//!
//! Values that are not strings become readable text: numbers and booleans as written, arrays of
//! plain values joined with `, `, objects as `key: value` lines; `null` is treated as absent.
//!
//! `bridge.importance` is the sender's importance when it is `1`..`5` or one of the words
//! `min`, `low`, `default`, `high`, `max`, `urgent` (ntfy's priorities, 1 to 5 with `max` and
//! `urgent` both 5); otherwise the route's default.

use actix_web::http::header::HeaderMap;
use serde_json::{Map, Value};

use super::body::Body;
use super::{Context, Decoded, SourceKind, SourceOptions, delivery_header};
use crate::pushjet::Importance;

/// The generic event name.
const EVENT: &str = "message";
/// The header a client may set to make retries of one message idempotent.
const IDEMPOTENCY_HEADER: &str = "idempotency-key";

const TITLE: &[&str] = &["title"];
const MESSAGE: &[&str] = &["message", "text", "body"];
const LINK: &[&str] = &["link", "url", "click"];
const IMPORTANCE: &[&str] = &["importance", "priority", "level"];

/// Nesting below this depth is shown as `…` in a summary.
const SUMMARY_MAX_DEPTH: usize = 8;
/// A summary keeps at most this many lines, then says how many it left out.
const SUMMARY_MAX_LINES: usize = 40;
/// A value in a summary is cut to this many characters.
const SUMMARY_MAX_VALUE_CHARS: usize = 300;

/// The four fields a generic notification is made of, as text (empty when not given).
#[derive(Debug, Default)]
struct Fields {
    title: String,
    message: String,
    link: String,
    importance: String,
}

/// Decodes a generic webhook into its one context.
pub(super) fn decode(
    headers: &HeaderMap,
    query: &str,
    body: Body,
    options: &SourceOptions,
) -> Decoded {
    let mut fields = Fields::default();
    let (summary, payload) = match body {
        Body::Json(Value::Object(object)) | Body::Form(object) => {
            let used = [
                take(&object, TITLE, &mut fields.title),
                take(&object, MESSAGE, &mut fields.message),
                take(&object, LINK, &mut fields.link),
                take(&object, IMPORTANCE, &mut fields.importance),
            ];
            let mut summary = Summary::default();
            for (key, value) in &object {
                if !used.contains(&Some(key.as_str())) {
                    summary.walk(key, value, 1);
                }
            }
            (summary.finish(), Value::Object(object))
        }
        Body::Json(Value::String(text)) | Body::Text(text) => {
            fields.message.clone_from(&text);
            (String::new(), Value::String(text))
        }
        Body::Json(other) => {
            let mut summary = Summary::default();
            summary.walk("", &other, 0);
            (summary.finish(), other)
        }
    };
    fill_from_query(&mut fields, query);
    let importance = parse_importance(&fields.importance).unwrap_or(options.default_importance);
    let mut context = Map::new();
    context.insert("title".into(), fields.title.into());
    context.insert("message".into(), fields.message.into());
    context.insert("link".into(), fields.link.into());
    context.insert("importance".into(), fields.importance.into());
    context.insert("summary".into(), summary.into());
    context.insert("payload".into(), payload);
    let context = Context::new(
        options,
        SourceKind::Generic,
        (EVENT, None, importance),
        context,
        Map::new(),
    );
    Decoded {
        source: SourceKind::Generic,
        event: EVENT.to_owned(),
        action: None,
        delivery_id: delivery_header(headers, &[IDEMPOTENCY_HEADER]),
        contexts: vec![context],
    }
}

/// Writes the first alias with a non-empty readable value into `field`; returns its key.
fn take<'a>(
    object: &Map<String, Value>,
    aliases: &[&'a str],
    field: &mut String,
) -> Option<&'a str> {
    aliases.iter().find_map(|alias| {
        let text = readable(object.get(*alias)?);
        if text.is_empty() {
            None
        } else {
            *field = text;
            Some(*alias)
        }
    })
}

/// Fills empty title, link and importance from the query string.
fn fill_from_query(fields: &mut Fields, query: &str) {
    let params: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    for (aliases, field) in [
        (TITLE, &mut fields.title),
        (LINK, &mut fields.link),
        (IMPORTANCE, &mut fields.importance),
    ] {
        if field.is_empty() {
            let found = aliases.iter().find_map(|alias| {
                params
                    .iter()
                    .find(|(key, value)| key == alias && !value.is_empty())
                    .map(|(_, value)| value.clone())
            });
            if let Some(value) = found {
                *field = value;
            }
        }
    }
}

/// The sender's importance: `1`..`5`, or one of ntfy's priority words.
fn parse_importance(text: &str) -> Option<Importance> {
    Importance::parse(text).ok().or_else(|| {
        let level = match text.trim().to_ascii_lowercase().as_str() {
            "min" => 1,
            "low" => 2,
            "default" => 3,
            "high" => 4,
            "max" | "urgent" => 5,
            _ => return None,
        };
        Importance::new(level).ok()
    })
}

/// A value as readable text: strings as they are, numbers and booleans as written, arrays of
/// plain values joined with `, `, anything else as summary lines; `null` is empty.
fn readable(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(text) => text.clone(),
        other => {
            let mut summary = Summary::default();
            summary.walk("", other, 1);
            summary.finish()
        }
    }
}

/// A plain value (not an object or array) as text; `None` for null.
fn plain(value: &Value) -> Option<String> {
    match value {
        Value::Null | Value::Array(_) | Value::Object(_) => None,
        Value::String(text) => Some(text.clone()),
        Value::Bool(flag) => Some(flag.to_string()),
        Value::Number(number) => Some(number.to_string()),
    }
}

/// Compact `key: value` lines describing a JSON value.
#[derive(Debug, Default)]
struct Summary {
    lines: Vec<String>,
    omitted: usize,
}

impl Summary {
    /// Describes `value` under `key` (dotted for nested keys; empty at the top level).
    /// Recursion stops at [`SUMMARY_MAX_DEPTH`], so no input can exhaust the stack.
    fn walk(&mut self, key: &str, value: &Value, depth: usize) {
        match value {
            Value::Null => {}
            Value::Array(items)
                if items
                    .iter()
                    .all(|item| !item.is_array() && !item.is_object()) =>
            {
                let joined: Vec<String> = items.iter().filter_map(plain).collect();
                self.push(key, &joined.join(", "));
            }
            Value::Array(_) | Value::Object(_) if depth >= SUMMARY_MAX_DEPTH => self.push(key, "…"),
            Value::Array(items) => {
                for (index, item) in items.iter().enumerate() {
                    self.walk(&child(key, &index.to_string()), item, depth + 1);
                }
            }
            Value::Object(object) => {
                for (name, item) in object {
                    self.walk(&child(key, name), item, depth + 1);
                }
            }
            other => self.push(key, &plain(other).unwrap_or_default()),
        }
    }

    /// Adds one line, white space collapsed and the value cut; empty values are left out.
    fn push(&mut self, key: &str, value: &str) {
        let compact: Vec<&str> = value.split_whitespace().collect();
        if compact.is_empty() {
            return;
        }
        if self.lines.len() >= SUMMARY_MAX_LINES {
            self.omitted += 1;
            return;
        }
        let mut text = compact.join(" ");
        if let Some((cut, _)) = text.char_indices().nth(SUMMARY_MAX_VALUE_CHARS) {
            text.truncate(cut);
            text.push('…');
        }
        self.lines.push(if key.is_empty() {
            text
        } else {
            format!("{key}: {text}")
        });
    }

    fn finish(mut self) -> String {
        if self.omitted > 0 {
            self.lines.push(format!("… and {} more", self.omitted));
        }
        self.lines.join("\n")
    }
}

/// The dotted key of a child.
fn child(key: &str, name: &str) -> String {
    if key.is_empty() {
        name.to_owned()
    } else {
        format!("{key}.{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{fixture, fixture_names, headers, json_headers};
    use super::super::{DecodeError, decode as decode_request};
    use super::*;
    use serde_json::json;

    fn deliver_with(query: &str, body: &[u8], request: &HeaderMap) -> Value {
        let decoded = decode_request(request, query, body, &SourceOptions::new("curl"))
            .unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(decoded.source, SourceKind::Generic);
        assert_eq!(decoded.event, "message");
        assert_eq!(decoded.contexts.len(), 1);
        decoded
            .contexts
            .into_iter()
            .next()
            .map(|context| context.tree)
            .unwrap_or_default()
    }

    fn file(name: &str) -> Value {
        deliver_with("", &fixture("generic", name), &json_headers())
    }

    fn text<'a>(context: &'a Value, field: &str) -> &'a str {
        context[field]
            .as_str()
            .unwrap_or_else(|| panic!("{field} is not a string in {context}"))
    }

    #[test]
    fn every_fixture_decodes_into_a_context_of_strings() {
        for name in fixture_names("generic") {
            let body = fixture("generic", &name);
            let result = decode_request(&json_headers(), "", &body, &SourceOptions::new("curl"));
            if name == "deep-nesting-200.json" {
                assert!(matches!(result, Err(DecodeError::MalformedJson { .. })));
                continue;
            }
            let decoded = result.unwrap_or_else(|error| panic!("{name}: {error}"));
            let context = &decoded.contexts[0].tree;
            for field in ["title", "message", "link", "importance", "summary"] {
                let value = text(context, field);
                assert!(!value.contains("null"), "{name}: {field} = {value:?}");
                assert!(!value.contains("[object"), "{name}: {field} = {value:?}");
            }
            assert_eq!(context["bridge"]["source"], json!("generic"), "{name}");
        }
    }

    #[test]
    fn main_fixtures_give_their_title_and_message() {
        let cases = [
            ("message.json", "", "Backup of db-1 finished in 4m12s"),
            (
                "title-link-importance.json",
                "Deploy finished",
                "api v2.3.1 is live on prod",
            ),
            (
                "pushjet-fields.json",
                "Disk almost full",
                "/var on nas-1 is at 93%",
            ),
            ("title-only.json", "Ping", ""),
            (
                "pretty-crlf.json",
                "Pretty printed",
                "Body sent with CRLF line endings",
            ),
            (
                "utf8-bom.json",
                "",
                "body starts with a UTF-8 byte order mark",
            ),
            ("unknown-fields.json", "", "extra fields should be ignored"),
            ("duplicate-keys.json", "", "second value"),
            ("top-level-string.json", "", "just a string"),
            ("message-number.json", "", "42"),
            ("message-array.json", "", "a, b"),
            ("message-object.json", "", "text: hello"),
            ("message-null.json", "", ""),
            ("empty-message.json", "", ""),
        ];
        for (name, title, message) in cases {
            let context = file(name);
            assert_eq!(text(&context, "title"), title, "{name}");
            assert_eq!(text(&context, "message"), message, "{name}");
        }
    }

    #[test]
    fn link_and_importance_are_read_with_aliases() {
        let context = file("title-link-importance.json");
        assert_eq!(
            text(&context, "link"),
            "https://ci.example.com/pipelines/8812"
        );
        assert_eq!(text(&context, "importance"), "4");
        assert_eq!(context["bridge"]["importance"], json!("4"));
        let pushjet = file("pushjet-fields.json");
        assert_eq!(text(&pushjet, "importance"), "5");
        assert_eq!(text(&pushjet, "link"), "https://grafana.example.com/d/disk");
        assert_eq!(text(&pushjet, "summary"), "");
    }

    #[test]
    fn unusable_importance_keeps_the_text_and_the_route_default() {
        let out_of_range = file("importance-out-of-range.json");
        assert_eq!(text(&out_of_range, "importance"), "99");
        assert_eq!(out_of_range["bridge"]["importance"], json!("3"));
        let word = file("importance-string.json");
        assert_eq!(text(&word, "importance"), "high");
        assert_eq!(word["bridge"]["importance"], json!("4"));
    }

    #[test]
    fn other_fields_become_a_dotted_summary() {
        let unknown = file("unknown-fields.json");
        assert_eq!(
            text(&unknown, "summary"),
            "count: 3\nfoo: bar\nnested.x: true"
        );
        let nested = file("nested.json");
        assert_eq!(text(&nested, "message"), "");
        assert_eq!(
            text(&nested, "summary"),
            "alert.body.tags: prod, web\nalert.body.text: load 12.3 on web-2\n\
             alert.title: CPU high\nmeta.attempt: 2\nmeta.source: cron"
        );
    }

    #[test]
    fn non_object_json_is_summarised() {
        assert_eq!(text(&file("top-level-number.json"), "summary"), "42");
        assert_eq!(text(&file("top-level-null.json"), "summary"), "");
        assert_eq!(file("top-level-null.json")["payload"], Value::Null);
        assert_eq!(
            text(&file("array.json"), "summary"),
            "0.message: first\n1.message: second"
        );
    }

    #[test]
    fn payload_is_the_original_value() {
        let context = file("unknown-fields.json");
        assert_eq!(context["payload"]["nested"], json!({"x": true}));
    }

    #[test]
    fn unicode_and_long_messages_are_kept_whole() {
        let emoji = file("unicode-emoji.json");
        assert!(text(&emoji, "title").starts_with("🚀 Déploiement réussi"));
        assert_eq!(
            text(&file("long-message-10k.json"), "message").len(),
            10_240
        );
        let unicode = file("long-message-unicode.json");
        assert_eq!(text(&unicode, "message").chars().count(), 4_000);
    }

    #[test]
    fn escapes_and_markup_pass_through_unchanged() {
        let context = file("escapes-and-markup.json");
        assert!(text(&context, "message").contains("<script>alert(1)</script>"));
        assert!(text(&context, "message").contains('\u{0}'));
        assert_eq!(text(&context, "link"), "javascript:alert(1)");
    }

    #[test]
    fn query_fills_what_the_body_did_not_give() {
        let query = "title=From+query&url=https%3A%2F%2Fq.example&priority=5&token=x";
        let context = deliver_with(
            query,
            br#"{"message":"hi","title":"From body"}"#,
            &json_headers(),
        );
        assert_eq!(text(&context, "title"), "From body");
        assert_eq!(text(&context, "link"), "https://q.example");
        assert_eq!(text(&context, "importance"), "5");
        assert_eq!(context["bridge"]["importance"], json!("5"));
    }

    #[test]
    fn text_plain_body_is_the_message() {
        let request = headers(&[("Content-Type", "text/plain; charset=utf-8")]);
        let context = deliver_with("title=Cron&level=2", "Backup failed ✗".as_bytes(), &request);
        assert_eq!(text(&context, "message"), "Backup failed ✗");
        assert_eq!(text(&context, "title"), "Cron");
        assert_eq!(context["bridge"]["importance"], json!("2"));
        assert_eq!(context["payload"], json!("Backup failed ✗"));
    }

    #[test]
    fn form_fields_are_read_like_json_fields() {
        let request = headers(&[("Content-Type", "application/x-www-form-urlencoded")]);
        let body = b"title=Deploy&text=v2+is+live&click=https%3A%2F%2Fci.example&host=web-1";
        let context = deliver_with("", body, &request);
        assert_eq!(text(&context, "title"), "Deploy");
        assert_eq!(text(&context, "message"), "v2 is live");
        assert_eq!(text(&context, "link"), "https://ci.example");
        assert_eq!(text(&context, "summary"), "host: web-1");
    }

    #[test]
    fn idempotency_key_is_the_dedup_key() {
        let request = headers(&[
            ("Content-Type", "application/json"),
            ("Idempotency-Key", "backup-2026-11-28"),
        ]);
        let decoded = decode_request(
            &request,
            "",
            br#"{"message":"x"}"#,
            &SourceOptions::new("c"),
        )
        .expect("decodes");
        assert_eq!(
            decoded.dedup_key().as_deref(),
            Some("generic:backup-2026-11-28")
        );
    }

    #[test]
    fn summary_is_depth_and_line_limited() {
        let mut deep = json!("bottom");
        for _ in 0..100 {
            deep = json!({ "d": deep });
        }
        let context = deliver_with(
            "",
            json!({ "x": deep }).to_string().as_bytes(),
            &json_headers(),
        );
        let summary = text(&context, "summary");
        assert!(summary.ends_with(": …"), "{summary}");
        assert_eq!(summary.matches('.').count(), SUMMARY_MAX_DEPTH - 1);
        let wide: Map<String, Value> = (0..100).map(|i| (format!("k{i:03}"), json!(i))).collect();
        let context = deliver_with(
            "",
            Value::Object(wide).to_string().as_bytes(),
            &json_headers(),
        );
        let summary = text(&context, "summary");
        assert_eq!(summary.lines().count(), SUMMARY_MAX_LINES + 1);
        assert!(summary.ends_with("… and 60 more"), "{summary}");
    }
}
