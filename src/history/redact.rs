//! What of a request the history may keep: headers that can carry a secret are left out, the
//! query's `token`/`auth`/`secret` values replaced, the body cut at [`MAX_KEPT_BODY`].

use actix_web::http::header::HeaderMap;

use super::record::KeptRequest;

/// The most body bytes a record keeps.
pub const MAX_KEPT_BODY: usize = 64 * 1024;
/// What replaces a secret query value.
pub const REDACTED: &str = "<redacted>";

/// True for a header whose value can carry a secret: never kept.
pub fn is_secret_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    matches!(
        name.as_str(),
        "authorization"
            | "proxy-authorization"
            | "cookie"
            | "set-cookie"
            | "x-gitea-signature"
            | "x-forgejo-signature"
            | "x-gogs-signature"
            | "x-gitlab-token"
            | "x-gotify-key"
            | "x-api-key"
            | "x-auth-token"
    ) || name.starts_with("x-hub-signature")
        || name.contains("token")
        || name.contains("secret")
        || name.contains("signature")
        || name.contains("password")
}

/// True for a query parameter whose value can carry a secret.
fn is_secret_parameter(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["token", "auth", "secret", "password", "key"]
        .iter()
        .any(|secret| name.contains(secret))
}

/// The headers without those that can carry a secret, in order.
pub fn headers(headers: &HeaderMap) -> Vec<(String, String)> {
    let mut kept: Vec<(String, String)> = headers
        .iter()
        .filter(|(name, _)| !is_secret_header(name.as_str()))
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    kept.sort();
    kept
}

/// The query string with every secret parameter's value replaced by [`REDACTED`]; the other
/// parameters as they came.
pub fn query(query: &str) -> String {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let name = pair.split_once('=').map_or(pair, |(name, _)| name);
            let decoded: String = url::form_urlencoded::parse(name.as_bytes())
                .map(|(name, _)| name.into_owned())
                .collect();
            if is_secret_parameter(&decoded) {
                format!("{name}={REDACTED}")
            } else {
                pair.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// The request as a record keeps it. `read_as` names the sender a protocol adapter read it as.
pub fn kept_request(
    headers_in: &HeaderMap,
    query_in: &str,
    body: &[u8],
    read_as: Option<&str>,
) -> KeptRequest {
    let mut end = body.len().min(MAX_KEPT_BODY);
    let text = loop {
        match std::str::from_utf8(&body[..end]) {
            Ok(text) => break text.to_owned(),
            // A cut in the middle of a character: cut before it.
            Err(error) if error.error_len().is_none() && end < body.len() => {
                end = error.valid_up_to();
            }
            Err(_) => break String::from_utf8_lossy(&body[..end]).into_owned(),
        }
    };
    KeptRequest {
        headers: headers(headers_in),
        query: query(query_in),
        body: text,
        body_bytes: body.len(),
        truncated: end < body.len(),
        read_as: read_as.map(str::to_owned),
    }
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{HeaderName, HeaderValue};

    use super::*;

    #[test]
    fn headers_that_can_carry_a_secret_are_left_out() {
        let mut map = HeaderMap::new();
        for (name, value) in [
            ("authorization", "Bearer s3cret"),
            ("x-hub-signature-256", "sha256=abc"),
            ("x-hub-signature", "sha1=abc"),
            ("x-gitea-signature", "abc"),
            ("x-forgejo-signature", "abc"),
            ("x-gitlab-token", "s3cret"),
            ("x-gotify-key", "s3cret"),
            ("cookie", "session=s3cret"),
            ("content-type", "application/json"),
            ("x-github-event", "push"),
        ] {
            map.insert(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        let kept = headers(&map);
        assert_eq!(
            kept,
            [
                ("content-type".to_owned(), "application/json".to_owned()),
                ("x-github-event".to_owned(), "push".to_owned()),
            ]
        );
    }

    #[test]
    fn secret_query_values_are_replaced() {
        assert_eq!(
            query("title=Hi+there&token=s3cret&auth=abc&x_secret=1&priority=4"),
            "title=Hi+there&token=<redacted>&auth=<redacted>&x_secret=<redacted>&priority=4"
        );
        assert_eq!(query(""), "");
        assert_eq!(
            query("%74oken=s3cret"),
            "%74oken=<redacted>",
            "an encoded name too"
        );
    }

    #[test]
    fn a_long_body_is_cut_at_the_limit_on_a_character_boundary() {
        let body = "é".repeat(MAX_KEPT_BODY);
        let kept = kept_request(&HeaderMap::new(), "", body.as_bytes(), None);
        assert!(kept.truncated);
        assert_eq!(kept.body_bytes, body.len());
        assert_eq!(kept.body.len(), MAX_KEPT_BODY);
        let short = kept_request(&HeaderMap::new(), "", b"{}", Some("ntfy"));
        assert!(!short.truncated);
        assert_eq!(short.body, "{}");
        assert_eq!(short.read_as.as_deref(), Some("ntfy"));
    }
}
