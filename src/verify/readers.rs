//! Who may read a route's stream (`GET /<route>/json|sse|raw|ws`, `/<route>/auth`): a person
//! holding **any one** of the route's credentials, as ntfy's apps send one: its `TOKEN` (as
//! `Authorization: Bearer`, or as basic auth's password with an empty user, which is how the apps
//! send an access token entered as a password), its `BASIC_AUTH`, or the read-only
//! `SUBSCRIBE_TOKEN` and `SUBSCRIBE_BASIC_AUTH` (a phone then holds no credential that can
//! publish). Webhook secrets sign bodies and are no credential for reading. A route with no
//! credential of any kind reads as openly as it is written to; a route with only webhook secrets
//! is read only with a `SUBSCRIBE_*` credential.
//!
//! Comparisons run in constant time ([`Secret::matches`]); no error or `Debug` output here
//! contains a secret.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::{AuthConfigError, InboundAuth};
use crate::secret::Secret;

/// What a reader presented, as far as a route's stream is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadAccess {
    /// The credential is one of the route's, or the route needs none.
    Granted,
    /// No credential was presented and the route needs one (ntfy's 403 for anonymous readers).
    Missing,
    /// A credential was presented and is none of the route's (ntfy's 401).
    Refused,
}

/// The credentials that let a reader open a route's stream.
#[derive(Debug, Clone)]
pub struct ReaderAuth {
    tokens: Vec<Secret>,
    /// `user:password`.
    basic: Vec<Secret>,
    open: bool,
}

impl ReaderAuth {
    /// The readers of a route with `auth` and no read-only credentials of its own.
    pub fn of(auth: &InboundAuth) -> Self {
        let (tokens, basic) = auth.reader_credentials();
        Self {
            tokens,
            basic,
            open: auth.is_open(),
        }
    }

    /// The readers of a route with `auth` and the read-only credentials given (`subscribe_basic`
    /// as `user:password`, with a non-empty user).
    pub fn new(
        auth: &InboundAuth,
        subscribe_token: Option<&str>,
        subscribe_basic: Option<&str>,
    ) -> Result<Self, AuthConfigError> {
        let (mut tokens, mut basic) = auth.reader_credentials();
        if let Some(token) = subscribe_token {
            if token.is_empty() {
                return Err(AuthConfigError::EmptyToken);
            }
            tokens.push(Secret::new(token));
        }
        if let Some(credentials) = subscribe_basic {
            match credentials.split_once(':') {
                Some((user, _)) if !user.is_empty() => basic.push(Secret::new(credentials)),
                _ => return Err(AuthConfigError::BasicAuthFormat),
            }
        }
        let open = auth.is_open() && tokens.is_empty() && basic.is_empty();
        Ok(Self {
            tokens,
            basic,
            open,
        })
    }

    /// Checks `authorization`, the value of the `Authorization` header the reader sent (or that
    /// ntfy's `?auth=` parameter encodes), if any.
    pub fn check(&self, authorization: Option<&str>) -> ReadAccess {
        if self.open {
            return ReadAccess::Granted;
        }
        let Some((scheme, credentials)) = authorization.and_then(|value| value.trim().split_once(' '))
        else {
            return ReadAccess::Missing;
        };
        let credentials = credentials.trim();
        let granted = if scheme.eq_ignore_ascii_case("bearer") {
            self.has_token(credentials)
        } else if scheme.eq_ignore_ascii_case("basic") {
            BASE64.decode(credentials).is_ok_and(|decoded| {
                match decoded.iter().position(|&byte| byte == b':') {
                    Some(0) => self.has_token(&String::from_utf8_lossy(&decoded[1..])),
                    Some(_) => self.basic.iter().any(|secret| secret.matches(&decoded)),
                    None => false,
                }
            })
        } else {
            false
        };
        if granted {
            ReadAccess::Granted
        } else {
            ReadAccess::Refused
        }
    }

    fn has_token(&self, candidate: &str) -> bool {
        self.tokens
            .iter()
            .any(|token| token.matches(candidate.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user: &str, password: &str) -> String {
        format!("Basic {}", BASE64.encode(format!("{user}:{password}")))
    }

    #[test]
    fn any_one_of_the_routes_credentials_reads() {
        let auth = InboundAuth::new(Some("hmac-secret"), Some("tk_write"), Some("ops:pw")).unwrap();
        let readers = ReaderAuth::new(&auth, Some("tk_read"), Some("phone:pin")).unwrap();
        for granted in [
            "Bearer tk_write".to_owned(),
            "bearer tk_read".to_owned(),
            basic("ops", "pw"),
            basic("phone", "pin"),
            basic("", "tk_write"),
            basic("", "tk_read"),
        ] {
            assert_eq!(readers.check(Some(&granted)), ReadAccess::Granted, "{granted}");
        }
        for refused in [
            "Bearer hmac-secret".to_owned(),
            "Bearer tk_wrong".to_owned(),
            basic("ops", "wrong"),
            basic("", "pw"),
            "Basic %%%".to_owned(),
            "Digest x".to_owned(),
        ] {
            assert_eq!(readers.check(Some(&refused)), ReadAccess::Refused, "{refused}");
        }
        assert_eq!(readers.check(None), ReadAccess::Missing);
    }

    #[test]
    fn a_route_without_credentials_reads_openly_and_one_with_only_webhook_secrets_does_not() {
        let open = ReaderAuth::new(&InboundAuth::default(), None, None).unwrap();
        assert_eq!(open.check(None), ReadAccess::Granted);
        let signed = InboundAuth::new(Some("hmac-secret"), None, None).unwrap();
        let closed = ReaderAuth::new(&signed, None, None).unwrap();
        assert_eq!(closed.check(None), ReadAccess::Missing);
        let read_only = ReaderAuth::new(&InboundAuth::default(), Some("tk_read"), None).unwrap();
        assert_eq!(read_only.check(None), ReadAccess::Missing);
        assert_eq!(read_only.check(Some("Bearer tk_read")), ReadAccess::Granted);
        assert!(ReaderAuth::new(&signed, Some(""), None).is_err());
        assert!(ReaderAuth::new(&signed, None, Some(":x")).is_err());
        assert!(!format!("{read_only:?}").contains("tk_read"));
    }
}
