//! Reading request parameters the way the real server does: the identity parameters (`secret`,
//! `service`, `uuid`) from the form body first and then from the query string, every content field
//! from the form body only. Form bodies are `application/x-www-form-urlencoded` or
//! `multipart/form-data` (where, as in the real server, parts with a file name are files, not
//! fields); any other body (JSON, plain text) is read, held to the size limit and then ignored, so
//! its fields are "missing".

use actix_multipart::Multipart;
use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use actix_web::http::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderMap};
use actix_web::{FromRequest, HttpRequest};
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::future::LocalBoxFuture;

use super::error::ProtocolError;
use crate::pushjet::{DeviceUuid, PublicKey, SecretKey};

/// The most bytes a request body may have; a larger one is refused with 413.
pub const BODY_LIMIT_BYTES: usize = 1024 * 1024;

/// The parameters of one request: the decoded form body and query string, in order, repeated
/// names kept (the first occurrence wins, as in the real server).
#[derive(Debug, Default)]
pub(crate) struct Params {
    form: Vec<(String, String)>,
    query: Vec<(String, String)>,
}

impl Params {
    /// A content field: from the form body only, `None` when absent.
    pub(crate) fn field(&self, name: &str) -> Option<&str> {
        first(&self.form, name)
    }

    /// An identity parameter: the form value if non-empty, else the query value if non-empty.
    pub(crate) fn identity(&self, name: &str) -> Option<&str> {
        first(&self.form, name)
            .filter(|value| !value.is_empty())
            .or_else(|| first(&self.query, name).filter(|value| !value.is_empty()))
    }

    /// The device UUID: missing → id 7, malformed → id 1.
    pub(crate) fn uuid(&self) -> Result<DeviceUuid, ProtocolError> {
        let raw = self
            .identity("uuid")
            .ok_or(ProtocolError::MissingArgument("uuid"))?;
        DeviceUuid::parse(raw).map_err(|_| ProtocolError::InvalidClient)
    }

    /// The service's public key: missing → id 7, malformed → id 2.
    pub(crate) fn service(&self) -> Result<PublicKey, ProtocolError> {
        let raw = self
            .identity("service")
            .ok_or(ProtocolError::MissingArgument("service"))?;
        PublicKey::parse(raw).map_err(|_| ProtocolError::InvalidService)
    }

    /// The service's secret key: missing → id 7, malformed → id 3.
    pub(crate) fn secret(&self) -> Result<SecretKey, ProtocolError> {
        let raw = self
            .identity("secret")
            .ok_or(ProtocolError::MissingArgument("secret"))?;
        SecretKey::parse(raw).map_err(|_| ProtocolError::InvalidSecret)
    }
}

fn first<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

/// How a body is read, decided by its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyKind {
    /// `application/x-www-form-urlencoded`.
    UrlEncoded,
    /// `multipart/form-data`.
    Multipart,
    /// Anything else: not a form, so no fields.
    Ignored,
}

impl BodyKind {
    fn of(request: &HttpRequest) -> Self {
        let essence = request
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(';').next())
            .map(|essence| essence.trim().to_ascii_lowercase());
        match essence.as_deref() {
            Some("application/x-www-form-urlencoded") => Self::UrlEncoded,
            Some("multipart/form-data") => Self::Multipart,
            _ => Self::Ignored,
        }
    }
}

impl FromRequest for Params {
    type Error = ProtocolError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let query = parse_urlencoded(request.query_string().as_bytes()).ok_or(
            ProtocolError::Malformed("the query string is not UTF-8 text"),
        );
        let kind = BodyKind::of(request);
        let headers = request.headers().clone();
        let declared_length = request
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<u64>().ok());
        let payload = payload.take();
        Box::pin(async move {
            let query = query?;
            if declared_length.is_some_and(|length| length > BODY_LIMIT_BYTES as u64) {
                return Err(ProtocolError::BodyTooLarge {
                    limit: BODY_LIMIT_BYTES,
                });
            }
            let body = read_body(payload, BODY_LIMIT_BYTES).await?;
            let form = match kind {
                BodyKind::UrlEncoded => match json_object_fields(&body) {
                    Some(fields) => fields,
                    None => parse_urlencoded(&body)
                        .ok_or(ProtocolError::Malformed("the form body is not UTF-8 text"))?,
                },
                BodyKind::Multipart => parse_multipart(&headers, Bytes::from(body)).await?,
                BodyKind::Ignored => Vec::new(),
            };
            Ok(Params { form, query })
        })
    }
}

/// Reads the whole body, refusing it as soon as it grows over `limit` bytes.
async fn read_body(mut payload: Payload, limit: usize) -> Result<Vec<u8>, ProtocolError> {
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|error| {
            if crate::http::limits::is_timed_out(&error) {
                ProtocolError::TimedOut
            } else if crate::http::limits::is_over_budget(&error) {
                ProtocolError::Busy
            } else {
                ProtocolError::Malformed("the request body could not be read")
            }
        })?;
        if body.len() + chunk.len() > limit {
            return Err(ProtocolError::BodyTooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Reads the fields of a `multipart/form-data` body, skipping file parts (those with a file name).
async fn parse_multipart(
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Vec<(String, String)>, ProtocolError> {
    const MALFORMED: ProtocolError =
        ProtocolError::Malformed("the multipart form body is malformed");
    let mut parts = Multipart::new(
        headers,
        futures_util::stream::once(async move { Ok::<_, PayloadError>(body) }),
    );
    let mut form = Vec::new();
    while let Some(part) = parts.next().await {
        let mut part = part.map_err(|_| MALFORMED)?;
        let mut value = Vec::new();
        while let Some(chunk) = part.next().await {
            value.extend_from_slice(&chunk.map_err(|_| MALFORMED)?);
        }
        let disposition = part.content_disposition();
        let is_file = disposition.is_some_and(|disposition| disposition.get_filename().is_some());
        if let (Some(name), false) = (disposition.and_then(|d| d.get_name()), is_file) {
            let value = String::from_utf8(value).map_err(|_| {
                ProtocolError::Malformed("the multipart form body is not UTF-8 text")
            })?;
            form.push((name.to_owned(), value));
        }
    }
    Ok(form)
}

/// A "form" body that is a JSON object, as Apprise's `pjet://` plugin sends under a form content
/// type: its text, number and boolean members as fields (null ones left out). `None` for any other
/// body. The real server would find no fields in it (a deliberate difference, so that Apprise
/// works).
fn json_object_fields(body: &[u8]) -> Option<Vec<(String, String)>> {
    if !body.trim_ascii_start().starts_with(b"{") {
        return None;
    }
    let serde_json::Value::Object(object) = serde_json::from_slice(body).ok()? else {
        return None;
    };
    Some(
        object
            .into_iter()
            .filter_map(|(name, value)| match value {
                serde_json::Value::String(text) => Some((name, text)),
                serde_json::Value::Number(number) => Some((name, number.to_string())),
                serde_json::Value::Bool(flag) => Some((name, flag.to_string())),
                _ => None,
            })
            .collect(),
    )
}

/// Decodes `application/x-www-form-urlencoded` data: pairs split on `&`, name and value on the
/// first `=` (a bare name has an empty value), `+` is a space, `%XX` a byte (a `%` not followed by
/// two hex digits stays as it is). `None` when a decoded name or value is not UTF-8.
fn parse_urlencoded(input: &[u8]) -> Option<Vec<(String, String)>> {
    input
        .split(|byte| *byte == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = match pair.iter().position(|byte| *byte == b'=') {
                Some(equals) => (&pair[..equals], &pair[equals + 1..]),
                None => (pair, &[][..]),
            };
            Some((percent_decode(name)?, percent_decode(value)?))
        })
        .collect()
}

fn percent_decode(input: &[u8]) -> Option<String> {
    let mut bytes = Vec::with_capacity(input.len());
    let mut index = 0;
    while let Some(&byte) = input.get(index) {
        let escaped = match (input.get(index + 1), input.get(index + 2)) {
            (Some(&high), Some(&low)) if byte == b'%' => hex_value(high).zip(hex_value(low)),
            _ => None,
        };
        match (byte, escaped) {
            (_, Some((high, low))) => {
                bytes.push((high << 4) | low);
                index += 3;
            }
            (b'+', None) => {
                bytes.push(b' ');
                index += 1;
            }
            (other, None) => {
                bytes.push(other);
                index += 1;
            }
        }
    }
    String::from_utf8(bytes).ok()
}

fn hex_value(digit: u8) -> Option<u8> {
    char::from(digit)
        .to_digit(16)
        .and_then(|value| u8::try_from(value).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect()
    }

    #[test]
    fn urlencoded_decodes_plus_percent_and_bare_names() {
        let decoded = parse_urlencoded(b"message=hi+there%21&title=%C3%A9&flag&&=x").unwrap();
        assert_eq!(
            decoded,
            pairs(&[
                ("message", "hi there!"),
                ("title", "é"),
                ("flag", ""),
                ("", "x")
            ])
        );
    }

    #[test]
    fn a_json_object_under_a_form_type_gives_its_plain_members() {
        let fields = json_object_fields(
            br#" {"message": "db-1 down", "title": "Backup", "link": null, "level": 4, "x": [1]}"#,
        );
        assert_eq!(
            fields,
            Some(pairs(&[
                ("level", "4"),
                ("message", "db-1 down"),
                ("title", "Backup")
            ]))
        );
        assert_eq!(json_object_fields(b"message=hi"), None);
        assert_eq!(json_object_fields(b"{not json"), None);
    }

    #[test]
    fn urlencoded_keeps_a_percent_without_two_hex_digits() {
        let decoded = parse_urlencoded(b"a=100%&b=%zz&c=%4").unwrap();
        assert_eq!(decoded, pairs(&[("a", "100%"), ("b", "%zz"), ("c", "%4")]));
    }

    #[test]
    fn urlencoded_refuses_bytes_that_are_not_utf8() {
        assert_eq!(parse_urlencoded(b"message=%FF"), None);
        assert_eq!(parse_urlencoded(b"message=\xff"), None);
    }

    #[test]
    fn identity_prefers_a_non_empty_form_value_then_the_query() {
        let params = Params {
            form: pairs(&[("secret", ""), ("uuid", "form")]),
            query: pairs(&[("secret", "query"), ("uuid", "query")]),
        };
        assert_eq!(params.identity("secret"), Some("query"));
        assert_eq!(params.identity("uuid"), Some("form"));
        assert_eq!(params.identity("service"), None);
    }

    #[test]
    fn content_fields_come_from_the_form_only_first_occurrence_winning() {
        let params = Params {
            form: pairs(&[("title", "one"), ("title", "two")]),
            query: pairs(&[("message", "hidden")]),
        };
        assert_eq!(params.field("title"), Some("one"));
        assert_eq!(params.field("message"), None);
    }
}
