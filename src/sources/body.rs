//! Decoding an HTTP body by its `Content-Type`.
//!
//! - `application/json` and any `application/*+json`: JSON; a UTF-8 byte order mark is skipped.
//! - `application/x-www-form-urlencoded`: a `payload` field holds JSON (GitHub's and Gitea's form
//!   deliveries, Slack-style senders); without one, the fields are a flat object of strings (the
//!   last value of a repeated field wins, as in JSON). A form body without any `=` is text:
//!   that is what `curl -d 'Disk full'` sends.
//! - `multipart/form-data` (`curl -F`): its text fields, read as a urlencoded form's are (a
//!   `payload` field holds JSON); file parts are left out.
//! - `text/plain`: the whole body is text.
//! - no `Content-Type`: JSON if the body parses as JSON, text otherwise.
//!
//! Parameters such as `; charset=utf-8` are ignored: every body must be UTF-8.

use actix_web::http::header::{CONTENT_TYPE, HeaderMap};
use serde_json::{Map, Value};

use super::DecodeError;

/// The UTF-8 byte order mark.
const BOM: &str = "\u{feff}";

/// A decoded body.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Body {
    /// A JSON document (from a JSON body or a form's `payload` field).
    Json(Value),
    /// Form fields without a `payload` field, as an object of strings.
    Form(Map<String, Value>),
    /// A plain-text body.
    Text(String),
}

/// How the content type says to read the body.
enum Format {
    Json,
    Form,
    Multipart,
    Text,
    Sniff,
}

/// Refuses a content type the bridge does not read, from the headers alone.
pub fn check_content_type(headers: &HeaderMap) -> Result<(), DecodeError> {
    format(headers).map(|_| ())
}

fn format(headers: &HeaderMap) -> Result<Format, DecodeError> {
    let Some(value) = headers.get(CONTENT_TYPE) else {
        return Ok(Format::Sniff);
    };
    let raw = value.to_str().map_err(|_| {
        DecodeError::UnsupportedContentType(String::from_utf8_lossy(value.as_bytes()).into_owned())
    })?;
    let essence = raw
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "" => Ok(Format::Sniff),
        "application/json" => Ok(Format::Json),
        "application/x-www-form-urlencoded" => Ok(Format::Form),
        "multipart/form-data" => Ok(Format::Multipart),
        "text/plain" => Ok(Format::Text),
        other if other.starts_with("application/") && other.ends_with("+json") => Ok(Format::Json),
        other => Err(DecodeError::UnsupportedContentType(other.to_owned())),
    }
}

/// Parses JSON text, skipping a leading byte order mark. serde_json stops at a nesting depth of
/// 128 with an error, so deep documents cannot overflow the stack.
pub(crate) fn parse_json(text: &str) -> Result<Value, DecodeError> {
    serde_json::from_str(text.strip_prefix(BOM).unwrap_or(text)).map_err(DecodeError::from)
}

/// Decodes a body according to the request's `Content-Type`.
pub(crate) fn decode_body(headers: &HeaderMap, bytes: &[u8]) -> Result<Body, DecodeError> {
    let text = || {
        std::str::from_utf8(bytes).map_err(|error| DecodeError::InvalidUtf8 {
            offset: error.valid_up_to(),
        })
    };
    match format(headers)? {
        Format::Json => parse_json(text()?).map(Body::Json),
        Format::Form => decode_form(text()?),
        Format::Multipart => form_body(super::multipart::form_fields(headers, bytes)?),
        Format::Text => Ok(Body::Text(text()?.to_owned())),
        Format::Sniff => {
            let text = text()?;
            Ok(parse_json(text).map_or_else(|_| Body::Text(text.to_owned()), Body::Json))
        }
    }
}

fn decode_form(text: &str) -> Result<Body, DecodeError> {
    if !text.contains('=') {
        return Ok(Body::Text(text.to_owned()));
    }
    form_body(url::form_urlencoded::parse(text.as_bytes()).into_owned())
}

/// A form's fields: the JSON of its `payload` field, else the fields as an object of strings.
fn form_body(pairs: impl IntoIterator<Item = (String, String)>) -> Result<Body, DecodeError> {
    let mut fields = Map::new();
    for (key, value) in pairs {
        if key == "payload" {
            return parse_json(&value).map(Body::Json);
        }
        fields.insert(key, Value::String(value));
    }
    Ok(Body::Form(fields))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderValue;
    use serde_json::json;

    fn typed(content_type: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_str(content_type).expect("test header"),
        );
        headers
    }

    #[test]
    fn json_with_charset_parameter_is_json() {
        let body = decode_body(&typed("Application/JSON; charset=utf-8"), br#"{"a":1}"#);
        assert_eq!(body, Ok(Body::Json(json!({"a": 1}))));
    }

    #[test]
    fn vendor_json_type_is_json() {
        let body = decode_body(&typed("application/vnd.example+json"), b"[1]");
        assert_eq!(body, Ok(Body::Json(json!([1]))));
    }

    #[test]
    fn byte_order_mark_is_skipped() {
        let body = decode_body(&typed("application/json"), b"\xef\xbb\xbf{\"a\":true}");
        assert_eq!(body, Ok(Body::Json(json!({"a": true}))));
    }

    #[test]
    fn malformed_json_reports_line_and_column() {
        let body = decode_body(&typed("application/json"), b"{\n  \"a\": 1,\n}");
        match body {
            Err(DecodeError::MalformedJson { line, column, .. }) => {
                assert_eq!((line, column), (3, 1));
            }
            other => panic!("expected MalformedJson, got {other:?}"),
        }
    }

    #[test]
    fn form_payload_field_holds_json() {
        let raw = b"payload=%7B%22zen%22%3A%22Design+for+failure.%22%7D";
        let body = decode_body(&typed("application/x-www-form-urlencoded"), raw);
        assert_eq!(body, Ok(Body::Json(json!({"zen": "Design for failure."}))));
    }

    #[test]
    fn a_form_body_without_fields_is_text_as_curl_d_sends_it() {
        let body = decode_body(
            &typed("application/x-www-form-urlencoded"),
            b"Disk 91% full on db-1",
        );
        assert_eq!(body, Ok(Body::Text("Disk 91% full on db-1".to_owned())));
    }

    #[test]
    fn form_payload_that_is_not_json_is_malformed_json() {
        let body = decode_body(&typed("application/x-www-form-urlencoded"), b"payload=%7B");
        assert!(matches!(body, Err(DecodeError::MalformedJson { .. })));
    }

    #[test]
    fn form_fields_become_a_flat_object() {
        let raw = b"title=Deploy&message=v2+is+live%21&message=last+wins";
        let body = decode_body(&typed("application/x-www-form-urlencoded"), raw);
        let expected = json!({"title": "Deploy", "message": "last wins"});
        assert_eq!(
            body,
            Ok(Body::Form(
                expected.as_object().cloned().unwrap_or_default()
            ))
        );
    }

    #[test]
    fn text_plain_is_text_even_when_it_looks_like_json() {
        let body = decode_body(&typed("text/plain; charset=utf-8"), b"{\"a\":1}");
        assert_eq!(body, Ok(Body::Text("{\"a\":1}".to_owned())));
    }

    #[test]
    fn missing_type_sniffs_json_then_text() {
        let none = HeaderMap::new();
        assert_eq!(
            decode_body(&none, b"{\"a\":1}"),
            Ok(Body::Json(json!({"a": 1})))
        );
        assert_eq!(
            decode_body(&none, b"disk full"),
            Ok(Body::Text("disk full".to_owned()))
        );
    }

    #[test]
    fn other_types_are_unsupported() {
        for content_type in [
            "application/xml",
            "multipart/mixed; boundary=x",
            "text/html",
        ] {
            let body = decode_body(&typed(content_type), b"<x/>");
            assert!(
                matches!(body, Err(DecodeError::UnsupportedContentType(_))),
                "{content_type}"
            );
        }
    }

    #[test]
    fn invalid_utf8_is_a_clear_error() {
        for content_type in [
            "application/json",
            "text/plain",
            "application/x-www-form-urlencoded",
        ] {
            let body = decode_body(&typed(content_type), b"ok \xff\xfe");
            assert_eq!(
                body,
                Err(DecodeError::InvalidUtf8 { offset: 3 }),
                "{content_type}"
            );
        }
    }
}
