//! Compressed webhook bodies (`Content-Encoding`): `gzip` (also `x-gzip`) and `deflate` are
//! decoded, with the decoded size bounded by the body limit so a zip bomb is refused (413) after
//! at most that many bytes; any other encoding (`br`, `zstd`, `compress`, …) is refused (415)
//! before the body is read.

use std::io::Read;

use actix_web::http::header::{CONTENT_ENCODING, HeaderMap};
use actix_web::web::Bytes;
use flate2::read::{MultiGzDecoder, ZlibDecoder};

/// Why a body's encoding could not be undone.
#[derive(Debug, thiserror::Error)]
pub enum EncodingError {
    /// An encoding this service does not decode.
    #[error(
        "the Content-Encoding `{0}` is not supported: send the body uncompressed, gzip or deflate"
    )]
    Unsupported(String),
    /// The body is not valid data of its encoding.
    #[error("the {encoding} body could not be decoded: {detail}")]
    Corrupt {
        /// The encoding.
        encoding: &'static str,
        /// The decoder's complaint.
        detail: String,
    },
    /// The decoded body is larger than the limit.
    #[error("the decoded body is larger than {limit} bytes (PUSHJET_BRIDGE_MAX_BODY_BYTES)")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
}

/// One encoding this service undoes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Coding {
    Gzip,
    Deflate,
}

/// The codings of `Content-Encoding` in the order they were applied (`identity` left out), or
/// the first one that is not supported.
fn codings(headers: &HeaderMap) -> Result<Vec<Coding>, EncodingError> {
    let mut codings = Vec::new();
    for value in headers.get_all(CONTENT_ENCODING) {
        let text = value.to_str().map_err(|_| {
            EncodingError::Unsupported(String::from_utf8_lossy(value.as_bytes()).into())
        })?;
        for name in text
            .split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
        {
            match name.to_ascii_lowercase().as_str() {
                "identity" => {}
                "gzip" | "x-gzip" => codings.push(Coding::Gzip),
                "deflate" => codings.push(Coding::Deflate),
                _ => return Err(EncodingError::Unsupported(name.to_owned())),
            }
        }
    }
    Ok(codings)
}

/// Refuses an unsupported `Content-Encoding` from the headers alone, before the body is read.
pub fn check(headers: &HeaderMap) -> Result<(), EncodingError> {
    codings(headers).map(|_| ())
}

/// The body with its `Content-Encoding` undone, at most `limit` bytes after each step.
pub fn decode(headers: &HeaderMap, body: Bytes, limit: usize) -> Result<Bytes, EncodingError> {
    let mut body = body;
    for coding in codings(headers)?.into_iter().rev() {
        body = match coding {
            Coding::Gzip => bounded(MultiGzDecoder::new(&body[..]), "gzip", limit)?,
            Coding::Deflate => bounded(ZlibDecoder::new(&body[..]), "deflate", limit)?,
        };
    }
    Ok(body)
}

/// Reads a decoder to its end, refusing once it yields more than `limit` bytes.
fn bounded(
    decoder: impl Read,
    encoding: &'static str,
    limit: usize,
) -> Result<Bytes, EncodingError> {
    let mut decoded = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    decoder
        .take(cap)
        .read_to_end(&mut decoded)
        .map_err(|error| EncodingError::Corrupt {
            encoding,
            detail: error.to_string(),
        })?;
    if decoded.len() > limit {
        return Err(EncodingError::TooLarge { limit });
    }
    Ok(Bytes::from(decoded))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use actix_web::http::header::HeaderValue;
    use flate2::Compression;
    use flate2::write::{GzEncoder, ZlibEncoder};

    use super::*;

    fn encoded(value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static(value));
        headers
    }

    fn gzip(data: &[u8]) -> Bytes {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(data).unwrap();
        Bytes::from(encoder.finish().unwrap())
    }

    #[test]
    fn gzip_and_deflate_bodies_are_decoded() {
        let json = br#"{"message": "compressed"}"#;
        let decoded = decode(&encoded("gzip"), gzip(json), 1024).unwrap();
        assert_eq!(&decoded[..], json);
        let mut encoder = ZlibEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(json).unwrap();
        let deflated = Bytes::from(encoder.finish().unwrap());
        assert_eq!(
            &decode(&encoded("deflate"), deflated, 1024).unwrap()[..],
            json
        );
        let plain = Bytes::from_static(b"plain");
        assert_eq!(
            decode(&HeaderMap::new(), plain.clone(), 1024).unwrap(),
            plain
        );
        assert_eq!(
            decode(&encoded("identity"), plain.clone(), 1024).unwrap(),
            plain
        );
    }

    #[test]
    fn a_zip_bomb_stops_at_the_limit() {
        let bomb = gzip(&vec![0u8; 4 * 1024 * 1024]);
        assert!(bomb.len() < 16 * 1024, "{}", bomb.len());
        assert!(matches!(
            decode(&encoded("gzip"), bomb, 64 * 1024),
            Err(EncodingError::TooLarge { limit: 65536 })
        ));
    }

    #[test]
    fn other_encodings_are_refused_and_garbage_is_corrupt() {
        assert!(
            matches!(check(&encoded("br")), Err(EncodingError::Unsupported(name)) if name == "br")
        );
        assert!(matches!(
            check(&encoded("gzip, zstd")),
            Err(EncodingError::Unsupported(_))
        ));
        assert!(check(&encoded("gzip")).is_ok());
        assert!(matches!(
            decode(&encoded("gzip"), Bytes::from_static(b"not gzip"), 1024),
            Err(EncodingError::Corrupt {
                encoding: "gzip",
                ..
            })
        ));
    }
}
