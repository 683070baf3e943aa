//! The secrets clients must present: webhook secrets, route tokens and basic-auth credentials,
//! the admin and the metrics token. One type and one comparison for all of them, and one reader
//! of the `Authorization` header.

use std::fmt;

use actix_web::http::header::{AUTHORIZATION, HeaderMap};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A configured secret. `Debug` and `Display` never show it, and [`Secret::matches`] takes the
/// same time whatever the secret's content or length.
#[derive(Clone)]
pub struct Secret {
    bytes: Box<[u8]>,
    digest: [u8; 32],
}

impl Secret {
    /// Keeps `raw` exactly as given (callers trim where their setting says so).
    pub fn new(raw: &str) -> Self {
        Self {
            bytes: raw.as_bytes().into(),
            digest: Sha256::digest(raw.as_bytes()).into(),
        }
    }

    /// The secret itself, for the one use that needs it: keying an HMAC.
    pub fn expose(&self) -> &[u8] {
        &self.bytes
    }

    /// How many characters the secret has.
    pub fn char_count(&self) -> usize {
        String::from_utf8_lossy(&self.bytes).chars().count()
    }

    /// Whether `candidate` is this secret. The candidate is hashed and compared digest to digest
    /// in constant time, so neither the content nor the length of the secret shows in the time
    /// taken.
    pub fn matches(&self, candidate: &[u8]) -> bool {
        let candidate: [u8; 32] = Sha256::digest(candidate).into();
        candidate.ct_eq(&self.digest).into()
    }

    /// Whether one of the request's `Authorization: Bearer` headers carries this secret (the
    /// scheme in any case).
    pub fn is_bearer_of(&self, headers: &HeaderMap) -> bool {
        authorization_credentials(headers, "bearer").any(|token| self.matches(token.as_bytes()))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// The credentials of every `Authorization` header that uses `scheme` (compared without regard to
/// case, as RFC 9110 asks), trimmed.
pub fn authorization_credentials<'a>(
    headers: &'a HeaderMap,
    scheme: &'a str,
) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .get_all(AUTHORIZATION)
        .filter_map(|value| value.to_str().ok())
        .filter_map(move |value| {
            let (given, credentials) = value.trim().split_once(' ')?;
            given
                .eq_ignore_ascii_case(scheme)
                .then_some(credentials.trim())
        })
}

/// The `Authorization` value ntfy's `?auth=` (or `?authorization=`) parameter carries in `query`
/// (a raw query string): the header's whole value, base64url-encoded (padded or not, or in
/// standard base64), as ntfy's apps send it where they cannot set headers.
pub fn ntfy_auth_param(query: &str) -> Option<String> {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let encoded = ["auth", "authorization"]
        .iter()
        .find_map(|name| pairs.iter().find(|(key, _)| key == name))
        .map(|(_, value)| value.trim().to_owned())?;
    [URL_SAFE_NO_PAD, URL_SAFE, STANDARD]
        .iter()
        .find_map(|engine| engine.decode(&encoded).ok())
        .and_then(|bytes| String::from_utf8(bytes).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderValue;

    fn with_authorization(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(AUTHORIZATION, HeaderValue::from_str(value).expect("header"));
        }
        headers
    }

    #[test]
    fn matches_only_the_exact_secret() {
        let secret = Secret::new("s3cret-token");
        assert!(secret.matches(b"s3cret-token"));
        assert!(!secret.matches(b"s3cret-toke"));
        assert!(!secret.matches(b"s3cret-token "));
        assert!(!secret.matches(b""));
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let secret = Secret::new("s3cret-token");
        assert_eq!(format!("{secret:?}"), "Secret(<redacted>)");
        assert!(!format!("{:?}", Some(&secret)).contains("s3cret"));
    }

    #[test]
    fn bearer_scheme_is_read_in_any_case_from_any_authorization_header() {
        let secret = Secret::new("abc");
        assert!(secret.is_bearer_of(&with_authorization(&["bearer abc"])));
        assert!(secret.is_bearer_of(&with_authorization(&["BEARER   abc  "])));
        assert!(secret.is_bearer_of(&with_authorization(&["Basic eDp5", "Bearer abc"])));
        assert!(!secret.is_bearer_of(&with_authorization(&["Basic abc"])));
        assert!(!secret.is_bearer_of(&with_authorization(&["Bearerabc"])));
        assert!(!secret.is_bearer_of(&HeaderMap::new()));
    }
}
