//! How a kept request is stored: its head (headers, query, the body's length and cut, the sender
//! it was read as) as JSON, readable in the raw store, and its body apart, compressed (an LZ4
//! block, its length before it): a JSON payload shrinks three- to sixfold and is not escaped into
//! a JSON string. The writer compresses behind the answer; a read decompresses. Requests stored
//! before (the whole [`KeptRequest`] as JSON, body included) still read.
//!
//! In `history.redb` a batch's bodies lie end to end in one value (a [`Chunk`], at most about
//! [`CHUNK_BYTES`]), and each record's request value is its head and where its body is: a B-tree
//! leaf per body and its branch's rebuild were most of what keeping bodies cost. PostgreSQL keeps
//! head and body in two columns of the record's row ([`split`], [`join`]).

use serde::{Deserialize, Serialize};

use super::record::KeptRequest;
use super::redact::MAX_KEPT_BODY;
use super::store::HistoryError;

/// The first byte of a request value that points into a chunk: the head's length (4 bytes,
/// little-endian), the head, the chunk's key (8 bytes), the body's offset and length in the
/// chunk's bodies (4 bytes each). A request stored whole as JSON starts with `{`.
const IN_CHUNK: u8 = 1;
/// The most a chunk's value takes (but for a single body larger than that): pruning frees a
/// chunk only with the last of its records, so chunks stay small beside the byte cap; and just
/// under 128 KiB, so that its page (redb allocates powers of two) is not twice its size.
pub(super) const CHUNK_BYTES: usize = 128 * 1024 - 256;
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
#[derive(Debug, Deserialize)]
pub(super) struct Head {
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

/// Where a kept body is: its chunk (the key in the bodies table) and its place in the chunk's
/// bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct BodyRef {
    pub(super) chunk: u64,
    offset: u32,
    length: u32,
}

impl BodyRef {
    /// The compressed body's length in bytes.
    pub(super) fn length(&self) -> u64 {
        u64::from(self.length)
    }
}

/// The kept bodies of one batch, compressed one by one and laid end to end, with the records
/// they belong to: one value of `history.redb`'s bodies table, under [`Chunk::key`]. The value:
/// how many records (4 bytes, little-endian), their ids (8 bytes each), the bodies.
#[derive(Debug)]
pub(super) struct Chunk {
    key: u64,
    records: Vec<u64>,
    bodies: Vec<u8>,
}

impl Chunk {
    /// An empty chunk to be stored under `key`.
    pub(super) fn new(key: u64) -> Self {
        Self {
            key,
            records: Vec::new(),
            bodies: Vec::new(),
        }
    }

    /// Its key in the bodies table.
    pub(super) fn key(&self) -> u64 {
        self.key
    }

    /// True when it holds no body.
    pub(super) fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// True when `request`'s body, however little it compresses, keeps the chunk within
    /// [`CHUNK_BYTES`] (an empty chunk takes any body).
    pub(super) fn fits(&self, request: &KeptRequest) -> bool {
        let now = 4 + 8 * self.records.len() + self.bodies.len();
        let more = 8 + 4 + lz4_flex::block::get_maximum_output_size(request.body.len());
        self.is_empty() || now + more <= CHUNK_BYTES
    }

    /// Adds `record`'s request: its body compressed to the chunk; the value the requests table
    /// keeps for it.
    pub(super) fn add(
        &mut self,
        record: u64,
        request: &KeptRequest,
    ) -> Result<Vec<u8>, HistoryError> {
        let offset = u32::try_from(self.bodies.len()).map_err(unreadable)?;
        compress_into(request.body.as_bytes(), &mut self.bodies)?;
        let length = u32::try_from(self.bodies.len()).map_err(unreadable)? - offset;
        self.records.push(record);
        let head = serde_json::to_vec(&HeadRef::of(request))?;
        let head_length = u32::try_from(head.len()).map_err(unreadable)?;
        let mut value = Vec::with_capacity(21 + head.len());
        value.push(IN_CHUNK);
        value.extend_from_slice(&head_length.to_le_bytes());
        value.extend_from_slice(&head);
        value.extend_from_slice(&self.key.to_le_bytes());
        value.extend_from_slice(&offset.to_le_bytes());
        value.extend_from_slice(&length.to_le_bytes());
        Ok(value)
    }

    /// The value to store.
    pub(super) fn into_value(self) -> Result<Vec<u8>, HistoryError> {
        let count = u32::try_from(self.records.len()).map_err(unreadable)?;
        let mut value = Vec::with_capacity(4 + 8 * self.records.len() + self.bodies.len());
        value.extend_from_slice(&count.to_le_bytes());
        for record in &self.records {
            value.extend_from_slice(&record.to_le_bytes());
        }
        value.extend_from_slice(&self.bodies);
        Ok(value)
    }
}

/// Splits `count` little-endian bytes off the front of `bytes`.
fn take<const N: usize>(bytes: &mut &[u8]) -> Result<[u8; N], HistoryError> {
    let (taken, rest) = bytes
        .split_first_chunk::<N>()
        .ok_or_else(|| unreadable("cut short"))?;
    *bytes = rest;
    Ok(*taken)
}

/// The records whose bodies a chunk value holds, and where its bodies start.
fn chunk_parts(value: &[u8]) -> Result<(Vec<u64>, &[u8]), HistoryError> {
    let mut rest = value;
    let count = u32::from_le_bytes(take(&mut rest)?);
    let mut records = Vec::new();
    for _ in 0..count {
        records.push(u64::from_le_bytes(take(&mut rest)?));
    }
    Ok((records, rest))
}

/// The records whose bodies a chunk value holds.
pub(super) fn chunk_records(value: &[u8]) -> Result<Vec<u64>, HistoryError> {
    Ok(chunk_parts(value)?.0)
}

/// A request value that points into a chunk: its head (JSON) and where its body is.
fn in_chunk(value: &[u8]) -> Result<(&[u8], BodyRef), HistoryError> {
    let mut rest = value.get(1..).unwrap_or_default();
    let length = usize::try_from(u32::from_le_bytes(take(&mut rest)?)).map_err(unreadable)?;
    if rest.len() < length {
        return Err(unreadable("cut short"));
    }
    let (head, mut rest) = rest.split_at(length);
    let body = BodyRef {
        chunk: u64::from_le_bytes(take(&mut rest)?),
        offset: u32::from_le_bytes(take(&mut rest)?),
        length: u32::from_le_bytes(take(&mut rest)?),
    };
    Ok((head, body))
}

/// Where a request value's body is: in a chunk, or (`None`) in the value (as first stored).
pub(super) fn body_of(value: &[u8]) -> Result<Option<BodyRef>, HistoryError> {
    match value.first() {
        Some(&IN_CHUNK) => Ok(Some(in_chunk(value)?.1)),
        _ => Ok(None),
    }
}

/// A request as the requests table keeps it.
#[derive(Debug)]
pub(super) enum Stored {
    /// The whole request, as first stored (JSON).
    Whole(KeptRequest),
    /// Its head; its body is in a chunk.
    InChunk(Head, BodyRef),
}

impl Stored {
    /// Reads a request value.
    pub(super) fn read(value: &[u8]) -> Result<Self, HistoryError> {
        match value.first() {
            Some(&IN_CHUNK) => {
                let (head, body) = in_chunk(value)?;
                Ok(Self::InChunk(serde_json::from_slice(head)?, body))
            }
            Some(b'{') => Ok(Self::Whole(serde_json::from_slice(value)?)),
            Some(other) => Err(unreadable(format!("unknown form {other}"))),
            None => Err(unreadable("empty")),
        }
    }

    /// Where its body is, when it is in a chunk.
    pub(super) fn body(&self) -> Option<BodyRef> {
        match self {
            Self::Whole(_) => None,
            Self::InChunk(_, body) => Some(*body),
        }
    }

    /// The request, given the value of its body's chunk (`None` when it has none).
    pub(super) fn into_request(self, chunk: Option<&[u8]>) -> Result<KeptRequest, HistoryError> {
        match self {
            Self::Whole(request) => Ok(request),
            Self::InChunk(head, body) => {
                let chunk = chunk.ok_or_else(|| unreadable("its body's chunk is gone"))?;
                let (_, bodies) = chunk_parts(chunk)?;
                let start = usize::try_from(body.offset).map_err(unreadable)?;
                let end = start + usize::try_from(body.length).map_err(unreadable)?;
                let compressed = bodies
                    .get(start..end)
                    .ok_or_else(|| unreadable("its body is beyond its chunk"))?;
                Ok(head.with_body(decompress(compressed)?))
            }
        }
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

    /// Stores `requests` in one chunk (record ids 1, 2, …); the request values and the chunk's.
    fn stored(requests: &[KeptRequest]) -> (Vec<Vec<u8>>, Vec<u8>) {
        let mut chunk = Chunk::new(7);
        let values = (1..)
            .zip(requests)
            .map(|(id, request)| chunk.add(id, request).unwrap())
            .collect();
        (values, chunk.into_value().unwrap())
    }

    fn read(value: &[u8], chunk: &[u8]) -> Result<KeptRequest, HistoryError> {
        Stored::read(value)?.into_request(Some(chunk))
    }

    #[test]
    fn requests_in_a_chunk_read_back_the_same_and_smaller() {
        let push = github_push();
        let other = kept_request(&HeaderMap::new(), "", b"{\"a\":1}", None);
        let (values, chunk) = stored(&[push.clone(), other.clone()]);
        assert_eq!(read(&values[0], &chunk).unwrap(), push);
        assert_eq!(read(&values[1], &chunk).unwrap(), other);
        assert_eq!(chunk_records(&chunk).unwrap(), [1, 2]);
        let body = Stored::read(&values[0]).unwrap().body().unwrap();
        assert_eq!(body.chunk, 7);
        let whole = serde_json::to_vec(&push).unwrap();
        assert!(
            (values[0].len() as u64 + body.length()) * 2 < whole.len() as u64,
            "{} + {} bytes stored, {} as JSON",
            values[0].len(),
            body.length(),
            whole.len()
        );
        let raw = String::from_utf8_lossy(&values[0]);
        assert!(raw.contains("x-github-event"), "the head is readable");
        assert!(raw.contains("<redacted>"), "the head is readable");
    }

    #[test]
    fn a_chunk_stays_within_its_page() {
        let push = github_push();
        let mut chunk = Chunk::new(1);
        let mut id = 0;
        while chunk.fits(&push) {
            id += 1;
            chunk.add(id, &push).unwrap();
        }
        assert!(id > 20, "{id} pushes in a chunk");
        assert!(chunk.into_value().unwrap().len() <= CHUNK_BYTES);
        let mut huge = github_push();
        huge.body = "x".repeat(3 * MAX_KEPT_BODY);
        assert!(Chunk::new(2).fits(&huge), "an empty chunk takes any body");
    }

    #[test]
    fn a_cut_body_reads_back_byte_for_byte_with_its_cut() {
        // Invalid UTF-8 and a cut in the middle of a character.
        let mut body = b"\xff\xfe{\"a\":1}".to_vec();
        body.extend("é".repeat(MAX_KEPT_BODY).as_bytes());
        let request = kept_request(&HeaderMap::new(), "", &body, None);
        assert!(request.truncated);
        let empty = kept_request(&HeaderMap::new(), "", b"", None);
        let (values, chunk) = stored(&[empty.clone(), request.clone()]);
        let read_back = read(&values[1], &chunk).unwrap();
        assert_eq!(read_back.body.as_bytes(), request.body.as_bytes());
        assert!(read_back.truncated);
        assert_eq!(read_back.body_bytes, body.len());
        assert_eq!(read(&values[0], &chunk).unwrap(), empty);
        let (head, compressed) = split(&request).unwrap();
        assert_eq!(join(&head, Some(&compressed)).unwrap(), request);
    }

    #[test]
    fn a_request_stored_whole_as_json_still_reads() {
        let request = github_push();
        let whole = serde_json::to_string(&request).unwrap();
        let stored = Stored::read(whole.as_bytes()).unwrap();
        assert_eq!(stored.body(), None);
        assert_eq!(stored.into_request(None).unwrap(), request);
        assert_eq!(join(&whole, None).unwrap(), request);
    }

    #[test]
    fn a_damaged_value_is_an_error_not_a_panic() {
        let (values, chunk) = stored(&[github_push()]);
        let value = &values[0];
        for cut in [0, 1, 3, 5, 40, value.len() - 1] {
            assert!(read(&value[..cut], &chunk).is_err(), "value cut at {cut}");
        }
        for cut in [0, 3, 11, 20, chunk.len() - 10] {
            assert!(read(value, &chunk[..cut]).is_err(), "chunk cut at {cut}");
        }
        assert!(Stored::read(b"\x07whatever").is_err());
        let gone = Stored::read(value).unwrap().into_request(None);
        assert!(gone.is_err(), "a chunk that is gone");
        // A body that claims to be larger than any kept one.
        let mut huge = vec![1, 0, 0, 0];
        huge.extend_from_slice(&1u64.to_le_bytes());
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        huge.extend_from_slice(&[0; 16]);
        let mut pointer = value[..value.len() - 8].to_vec();
        pointer.extend_from_slice(&0u32.to_le_bytes());
        pointer.extend_from_slice(&20u32.to_le_bytes());
        let error = read(&pointer, &huge).unwrap_err().to_string();
        assert!(error.contains("a body of"), "{error}");
    }
}
