//! How a kept request is stored: its head (headers, query, the body's length and cut, the sender
//! it was read as) as JSON, readable in the raw store, and its body apart, compressed (an LZ4
//! block, its length before it): a JSON payload shrinks three- to sixfold and is not escaped into
//! a JSON string. The writer compresses behind the answer; a read decompresses. Requests stored
//! before (the whole [`KeptRequest`] as JSON, body included) still read.
//!
//! redb keeps both parts in one value ([`pack`], [`unpack`]); PostgreSQL in two columns
//! ([`split`], [`join`]).

use serde::{Deserialize, Serialize};

use super::record::KeptRequest;
use super::redact::MAX_KEPT_BODY;
use super::store::HistoryError;

/// The first byte of a packed request: the head's length (4 bytes, little-endian), the head, the
/// compressed body. A request stored whole as JSON starts with `{`.
const PACKED: u8 = 1;
/// The longest body text a stored request may decompress to: every kept byte may have become a
/// replacement character (3 bytes) when the body was read as UTF-8.
const MAX_BODY_TEXT: usize = 3 * MAX_KEPT_BODY;

/// A kept request's head, as written.
#[derive(Serialize)]
struct HeadRef<'a> {
    headers: &'a [(String, String)],
    query: &'a str,
    body_bytes: usize,
    truncated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    read_as: Option<&'a str>,
}

/// A kept request's head, as read.
#[derive(Deserialize)]
struct Head {
    headers: Vec<(String, String)>,
    query: String,
    body_bytes: usize,
    truncated: bool,
    #[serde(default)]
    read_as: Option<String>,
}

impl<'a> HeadRef<'a> {
    fn of(request: &'a KeptRequest) -> Self {
        Self {
            headers: &request.headers,
            query: &request.query,
            body_bytes: request.body_bytes,
            truncated: request.truncated,
            read_as: request.read_as.as_deref(),
        }
    }
}

impl Head {
    fn with_body(self, body: String) -> KeptRequest {
        KeptRequest {
            headers: self.headers,
            query: self.query,
            body,
            body_bytes: self.body_bytes,
            truncated: self.truncated,
            read_as: self.read_as,
        }
    }
}

fn unreadable(what: impl std::fmt::Display) -> HistoryError {
    HistoryError::Record(format!("a kept request: {what}"))
}

/// Appends `body` compressed: its length (4 bytes, little-endian), then the LZ4 block.
fn compress_into(body: &[u8], out: &mut Vec<u8>) -> Result<(), HistoryError> {
    let length = u32::try_from(body.len()).map_err(unreadable)?;
    out.extend_from_slice(&length.to_le_bytes());
    let start = out.len();
    out.resize(
        start + lz4_flex::block::get_maximum_output_size(body.len()),
        0,
    );
    let written = lz4_flex::block::compress_into(body, &mut out[start..]).map_err(unreadable)?;
    out.truncate(start + written);
    Ok(())
}

/// The body text a compressed body holds.
fn decompress(compressed: &[u8]) -> Result<String, HistoryError> {
    let (length, block) = lz4_flex::block::uncompressed_size(compressed).map_err(unreadable)?;
    if length > MAX_BODY_TEXT {
        return Err(unreadable(format!("a body of {length} bytes")));
    }
    let body = lz4_flex::block::decompress(block, length).map_err(unreadable)?;
    if body.len() != length {
        return Err(unreadable(format!(
            "{} bytes of a {length}-byte body",
            body.len()
        )));
    }
    String::from_utf8(body).map_err(unreadable)
}

/// The request as one value: [`PACKED`], the head's length, the head, the compressed body.
pub(super) fn pack(request: &KeptRequest) -> Result<Vec<u8>, HistoryError> {
    let head = serde_json::to_vec(&HeadRef::of(request))?;
    let head_length = u32::try_from(head.len()).map_err(unreadable)?;
    let mut value = Vec::with_capacity(
        9 + head.len() + lz4_flex::block::get_maximum_output_size(request.body.len()),
    );
    value.push(PACKED);
    value.extend_from_slice(&head_length.to_le_bytes());
    value.extend_from_slice(&head);
    compress_into(request.body.as_bytes(), &mut value)?;
    Ok(value)
}

/// The request a value holds: packed, or whole as JSON (as first stored).
pub(super) fn unpack(value: &[u8]) -> Result<KeptRequest, HistoryError> {
    match value.split_first() {
        Some((&PACKED, rest)) => {
            let (length, rest) = rest
                .split_first_chunk::<4>()
                .ok_or_else(|| unreadable("cut short"))?;
            let length = usize::try_from(u32::from_le_bytes(*length)).map_err(unreadable)?;
            if rest.len() < length {
                return Err(unreadable("cut short"));
            }
            let (head, body) = rest.split_at(length);
            let head: Head = serde_json::from_slice(head)?;
            Ok(head.with_body(decompress(body)?))
        }
        Some((b'{', _)) => Ok(serde_json::from_slice(value)?),
        Some((other, _)) => Err(unreadable(format!("unknown form {other}"))),
        None => Err(unreadable("empty")),
    }
}

/// The request as two columns: its head (JSON) and its compressed body.
pub(super) fn split(request: &KeptRequest) -> Result<(String, Vec<u8>), HistoryError> {
    let head = serde_json::to_string(&HeadRef::of(request))?;
    let mut body = Vec::new();
    compress_into(request.body.as_bytes(), &mut body)?;
    Ok((head, body))
}

/// The request two columns hold; without a compressed body, `head` is the whole request (as
/// first stored).
pub(super) fn join(head: &str, body: Option<&[u8]>) -> Result<KeptRequest, HistoryError> {
    match body {
        Some(body) => Ok(serde_json::from_str::<Head>(head)?.with_body(decompress(body)?)),
        None => Ok(serde_json::from_str(head)?),
    }
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};

    use super::*;
    use crate::history::redact::kept_request;

    fn github_push() -> KeptRequest {
        let body = std::fs::read("tests/fixtures/github/push.json").unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(
            HeaderName::from_static("x-github-event"),
            HeaderValue::from_static("push"),
        );
        kept_request(&headers, "title=Hi&token=s3cret", &body, Some("github"))
    }

    #[test]
    fn a_packed_request_reads_back_the_same_and_smaller() {
        let request = github_push();
        let packed = pack(&request).unwrap();
        assert_eq!(unpack(&packed).unwrap(), request);
        let whole = serde_json::to_vec(&request).unwrap();
        assert!(
            packed.len() * 2 < whole.len(),
            "{} bytes packed, {} as JSON",
            packed.len(),
            whole.len()
        );
        let raw = String::from_utf8_lossy(&packed);
        assert!(raw.contains("x-github-event"), "the head is readable");
        assert!(raw.contains("<redacted>"), "the head is readable");
    }

    #[test]
    fn a_cut_body_reads_back_byte_for_byte_with_its_cut() {
        // Invalid UTF-8 and a cut in the middle of a character.
        let mut body = b"\xff\xfe{\"a\":1}".to_vec();
        body.extend("é".repeat(MAX_KEPT_BODY).as_bytes());
        let request = kept_request(&HeaderMap::new(), "", &body, None);
        assert!(request.truncated);
        let read = unpack(&pack(&request).unwrap()).unwrap();
        assert_eq!(read.body.as_bytes(), request.body.as_bytes());
        assert!(read.truncated);
        assert_eq!(read.body_bytes, body.len());
        let (head, compressed) = split(&request).unwrap();
        assert_eq!(join(&head, Some(&compressed)).unwrap(), request);
        let empty = kept_request(&HeaderMap::new(), "", b"", None);
        assert_eq!(unpack(&pack(&empty).unwrap()).unwrap(), empty);
    }

    #[test]
    fn a_request_stored_whole_as_json_still_reads() {
        let request = github_push();
        let whole = serde_json::to_string(&request).unwrap();
        assert_eq!(unpack(whole.as_bytes()).unwrap(), request);
        assert_eq!(join(&whole, None).unwrap(), request);
    }

    #[test]
    fn a_damaged_value_is_an_error_not_a_panic() {
        let packed = pack(&github_push()).unwrap();
        for cut in [0, 1, 3, 5, 40, packed.len() - 10] {
            assert!(unpack(&packed[..cut]).is_err(), "cut at {cut}");
        }
        assert!(unpack(b"\x07whatever").is_err());
        // A body that claims to be larger than any kept one.
        let empty = kept_request(&HeaderMap::new(), "", b"", None);
        let head = serde_json::to_vec(&HeadRef::of(&empty)).unwrap();
        let mut huge = vec![PACKED];
        huge.extend_from_slice(&u32::try_from(head.len()).unwrap().to_le_bytes());
        huge.extend_from_slice(&head);
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        huge.extend_from_slice(&[0; 16]);
        let error = unpack(&huge).unwrap_err().to_string();
        assert!(error.contains("a body of"), "{error}");
    }
}
