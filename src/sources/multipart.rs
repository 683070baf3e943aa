//! `multipart/form-data` bodies, what `curl -F title=… -F message=…` sends (Gotify's README's first
//! example): their text fields, in order. Parts with a file name are files and are left out. The
//! body has already been read whole, within the route's body limit, so the parser (actix-multipart)
//! is driven over that one buffer without waiting: a body that would need more bytes is malformed.

use actix_multipart::Multipart;
use actix_web::error::PayloadError;
use actix_web::http::header::HeaderMap;
use futures_util::{FutureExt, StreamExt};

use super::DecodeError;

/// The most fields a form may have; a form with more is refused rather than read at length.
const MAX_FIELDS: usize = 256;

/// The text fields of a `multipart/form-data` body whose headers name its boundary.
pub fn form_fields(headers: &HeaderMap, body: &[u8]) -> Result<Vec<(String, String)>, DecodeError> {
    let malformed = |why: &'static str| DecodeError::MalformedMultipart(why);
    let body = bytes::Bytes::copy_from_slice(body);
    let mut parts = Multipart::new(
        headers,
        futures_util::stream::once(async move { Ok::<_, PayloadError>(body) }),
    );
    let mut fields = Vec::new();
    loop {
        let next = parts.next().now_or_never().ok_or(malformed("it ends early"))?;
        let Some(part) = next else {
            break;
        };
        let mut part = part.map_err(|_| malformed("a part or the boundary is not well formed"))?;
        let mut value = Vec::new();
        loop {
            let chunk = part.next().now_or_never().ok_or(malformed("it ends early"))?;
            match chunk {
                Some(chunk) => value.extend_from_slice(
                    &chunk.map_err(|_| malformed("a part is not well formed"))?,
                ),
                None => break,
            }
        }
        let disposition = part.content_disposition();
        let is_file = disposition.is_some_and(|disposition| disposition.get_filename().is_some());
        let Some(name) = disposition.and_then(|disposition| disposition.get_name()) else {
            continue;
        };
        if is_file {
            continue;
        }
        if fields.len() == MAX_FIELDS {
            return Err(malformed("it has more than 256 fields"));
        }
        let value = String::from_utf8(value).map_err(|_| malformed("a field is not UTF-8 text"))?;
        fields.push((name.to_owned(), value));
    }
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{CONTENT_TYPE, HeaderValue};

    fn headers(boundary: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let value = format!("multipart/form-data; boundary={boundary}");
        headers.insert(CONTENT_TYPE, HeaderValue::from_str(&value).expect("header"));
        headers
    }

    /// What `curl -F title=Backup -F message='Done in 4m' -F priority=5 -F file=@x.txt` sends.
    fn curl_body() -> Vec<u8> {
        let mut body = String::new();
        for (name, value) in [("title", "Backup"), ("message", "Done in 4m\nall good"), ("priority", "5")] {
            body.push_str(&format!(
                "--XyZ\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            ));
        }
        body.push_str(
            "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.txt\"\r\n\
             Content-Type: text/plain\r\n\r\nfile bytes\r\n--XyZ--\r\n",
        );
        body.into_bytes()
    }

    #[test]
    fn text_fields_are_read_and_files_left_out() {
        let fields = form_fields(&headers("XyZ"), &curl_body()).expect("reads");
        assert_eq!(
            fields,
            [
                ("title".to_owned(), "Backup".to_owned()),
                ("message".to_owned(), "Done in 4m\nall good".to_owned()),
                ("priority".to_owned(), "5".to_owned())
            ]
        );
    }

    #[test]
    fn a_cut_or_foreign_body_is_malformed() {
        let body = curl_body();
        let cut = form_fields(&headers("XyZ"), &body[..body.len() / 2]);
        assert!(matches!(cut, Err(DecodeError::MalformedMultipart(_))), "{cut:?}");
        let wrong_boundary = form_fields(&headers("Other"), &body);
        assert!(wrong_boundary.is_err() || wrong_boundary == Ok(Vec::new()));
    }
}
