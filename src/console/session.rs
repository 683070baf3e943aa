//! Console sessions: a signed cookie, and the CSRF token that goes with it.
//!
//! The cookie holds `<expiry>.<nonce>.<mac>`: when the session ends (Unix seconds), 16 random
//! bytes, and an HMAC-SHA256 of both under a key derived from the admin token. Nothing is stored
//! on the server to accept it, so every replica in front of one PostgreSQL database accepts a
//! session another replica signed, with no shared state; changing the admin token ends every
//! session. Signing out removes the cookie from the browser and remembers its nonce, until it
//! would have expired, on the replica that was asked, which refuses it from then on.
//!
//! The CSRF token of a session is an HMAC of its nonce under the same key: a page carries it in
//! its forms (and the scripts send it as `X-CSRF-Token`); a cross-site page can neither read the
//! cookie nor compute the token.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::secret::Secret;

/// The session cookie's name.
pub const COOKIE: &str = "pushjet_console";

/// What the session key is derived with, from the admin token.
const KEY_LABEL: &[u8] = b"pushjet-bridge console session key v1";

/// Past this many signed-out sessions remembered, the expired ones are forgotten.
const REMEMBERED_SIGN_OUTS: usize = 10_000;

/// A signed-in session, read from a valid cookie. Its `Debug` shows only when it ends.
#[derive(Clone, PartialEq, Eq)]
pub struct Session {
    nonce: String,
    /// When it ends.
    pub expires: SystemTime,
    csrf: String,
}

impl Session {
    /// The CSRF token every state-changing request of this session must carry.
    pub fn csrf(&self) -> &str {
        &self.csrf
    }

    /// Whether `candidate` is this session's CSRF token (compared in constant time).
    pub fn accepts_csrf(&self, candidate: &str) -> bool {
        self.csrf.as_bytes().ct_eq(candidate.as_bytes()).into()
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

/// Signs and checks session cookies.
pub struct Sessions {
    key: [u8; 32],
    lifetime: Duration,
    /// Nonces of sessions signed out here, with when they would have expired.
    signed_out: Mutex<HashMap<String, SystemTime>>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

/// Why a session could not be made.
#[derive(Debug, thiserror::Error)]
#[error("no randomness for a session id: {0}")]
pub struct NoRandomness(String);

impl Sessions {
    /// Sessions lasting `lifetime`, signed with a key derived from the admin token.
    pub fn new(admin_token: &Secret, lifetime: Duration) -> Self {
        Self {
            key: mac(admin_token.expose(), KEY_LABEL),
            lifetime,
            signed_out: Mutex::default(),
        }
    }

    /// How long a session lasts.
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// A new session starting `now`: the cookie value to set.
    pub fn start(&self, now: SystemTime) -> Result<String, NoRandomness> {
        let mut nonce = [0_u8; 16];
        getrandom::fill(&mut nonce).map_err(|error| NoRandomness(error.to_string()))?;
        let expires = unix_seconds(now + self.lifetime);
        let nonce = hex::encode(nonce);
        let signature = hex::encode(mac(&self.key, signed_text(expires, &nonce).as_bytes()));
        Ok(format!("{expires}.{nonce}.{signature}"))
    }

    /// The session a cookie value stands for, if it is well-formed, signed with this key, not
    /// expired at `now` and not signed out.
    pub fn check(&self, cookie: &str, now: SystemTime) -> Option<Session> {
        let mut parts = cookie.split('.');
        let (Some(expires), Some(nonce), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let expires: u64 = expires.parse().ok()?;
        let signature = hex::decode(signature).ok()?;
        let expected = mac(&self.key, signed_text(expires, nonce).as_bytes());
        if !bool::from(expected.as_slice().ct_eq(&signature)) {
            return None;
        }
        let expires = UNIX_EPOCH + Duration::from_secs(expires);
        if expires <= now || self.is_signed_out(nonce) {
            return None;
        }
        Some(Session {
            csrf: hex::encode(mac(&self.key, format!("csrf.{nonce}").as_bytes())),
            nonce: nonce.to_owned(),
            expires,
        })
    }

    /// Ends `session` here: its cookie is refused from now on.
    pub fn sign_out(&self, session: &Session, now: SystemTime) {
        let Ok(mut signed_out) = self.signed_out.lock() else {
            return;
        };
        if signed_out.len() >= REMEMBERED_SIGN_OUTS {
            signed_out.retain(|_, expires| *expires > now);
        }
        signed_out.insert(session.nonce.clone(), session.expires);
    }

    fn is_signed_out(&self, nonce: &str) -> bool {
        // A poisoned lock means a panic elsewhere; refusing every session is the safe answer.
        self.signed_out
            .lock()
            .map_or(true, |signed_out| signed_out.contains_key(nonce))
    }
}

fn signed_text(expires: u64, nonce: &str) -> String {
    format!("session.{expires}.{nonce}")
}

fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// HMAC-SHA256 of `text` under `key`.
fn mac(key: &[u8], text: &[u8]) -> [u8; 32] {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        unreachable!("HMAC takes a key of any length");
    };
    mac.update(text);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn sessions(token: &str) -> Sessions {
        Sessions::new(&Secret::new(token), HOUR)
    }

    #[test]
    fn a_started_session_is_accepted_until_it_expires() {
        let sessions = sessions("admin-token-0123456789");
        let now = SystemTime::now();
        let cookie = sessions.start(now).unwrap();
        let session = sessions.check(&cookie, now).expect("valid");
        assert!(session.accepts_csrf(session.csrf()));
        assert!(!session.accepts_csrf("0000"));
        assert!(
            sessions
                .check(&cookie, now + HOUR + Duration::from_secs(1))
                .is_none()
        );
    }

    #[test]
    fn a_tampered_or_foreign_cookie_is_refused() {
        let sessions = sessions("admin-token-0123456789");
        let now = SystemTime::now();
        let cookie = sessions.start(now).unwrap();
        let (expires, rest) = cookie.split_once('.').unwrap();
        let later: u64 = expires.parse::<u64>().unwrap() + 86_400;
        assert!(sessions.check(&format!("{later}.{rest}"), now).is_none());
        assert!(sessions.check("garbage", now).is_none());
        assert!(sessions.check(&format!("{cookie}.x"), now).is_none());
        let other = self::sessions("another-admin-token-987654");
        assert!(other.check(&cookie, now).is_none());
    }

    #[test]
    fn a_session_signed_out_is_refused_and_another_is_not() {
        let sessions = sessions("admin-token-0123456789");
        let now = SystemTime::now();
        let first = sessions.start(now).unwrap();
        let second = sessions.start(now).unwrap();
        let session = sessions.check(&first, now).unwrap();
        sessions.sign_out(&session, now);
        assert!(sessions.check(&first, now).is_none());
        let other = sessions.check(&second, now).expect("still valid");
        assert_ne!(other.csrf(), session.csrf());
    }

    #[test]
    fn the_cookie_and_the_csrf_token_never_contain_the_admin_token() {
        let token = "admin-token-0123456789";
        let sessions = sessions(token);
        let cookie = sessions.start(SystemTime::now()).unwrap();
        let session = sessions.check(&cookie, SystemTime::now()).unwrap();
        assert!(!cookie.contains(token) && !session.csrf().contains(token));
        assert!(!format!("{sessions:?}{session:?}").contains(token));
    }
}
