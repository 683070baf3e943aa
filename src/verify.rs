//! Inbound authentication: is this request from the sender a route trusts?
//!
//! A route may configure any of three methods, each a variant of a private `Verifier` enum:
//!
//! - **webhook secrets** (a comma-separated list, so a secret can be rotated without downtime):
//!   the request must carry a signature or token made with one of them, in any of the headers the
//!   forges use: GitHub's `X-Hub-Signature-256: sha256=<hex>`, Gitea's `X-Gitea-Signature: <hex>`
//!   and Forgejo's `X-Forgejo-Signature: <hex>` (each an HMAC-SHA256 of the raw body, exactly as
//!   received), or GitLab's `X-Gitlab-Token: <secret>` (the secret itself). GitHub's legacy
//!   HMAC-SHA1 `X-Hub-Signature` is not accepted: GitHub always sends the SHA-256 header next to it.
//! - **token**: `Authorization: Bearer <token>` or `?token=<token>` in the query string.
//! - **basic auth**: `Authorization: Basic base64(user:password)`.
//!
//! When several methods are configured, **every** configured method must pass: adding a method to
//! a route can only make it stricter, never open it. (One `Authorization` header cannot carry both
//! a bearer token and basic credentials, so a route with both sends its token as `?token=`.) A
//! route with no method configured accepts every request.
//!
//! Every comparison with a secret runs in constant time, and no error or `Debug` output of this
//! module contains a secret.

use actix_web::http::header::HeaderMap;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::secret::{Secret, authorization_credentials};

pub mod readers;

pub use readers::{ReadAccess, ReaderAuth};

/// GitHub's signature header: `sha256=` and the hex HMAC-SHA256 of the body.
const GITHUB_SIGNATURE: &str = "x-hub-signature-256";
/// Gitea's signature header: the bare hex HMAC-SHA256 of the body.
const GITEA_SIGNATURE: &str = "x-gitea-signature";
/// Forgejo's signature header, the same format as Gitea's.
const FORGEJO_SIGNATURE: &str = "x-forgejo-signature";
/// GitLab's header, which carries the secret itself.
const GITLAB_TOKEN: &str = "x-gitlab-token";
/// The prefix of GitHub's signature value.
const GITHUB_PREFIX: &str = "sha256=";
/// The length in bytes of an HMAC-SHA256 tag.
const TAG_LEN: usize = 32;

/// Why a route's authentication settings cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthConfigError {
    /// The webhook secret list holds no secret (only commas and white space).
    #[error(
        "the webhook secret list is set but holds no secret; give one or more, separated by commas"
    )]
    NoWebhookSecret,
    /// The token is set but empty.
    #[error("the token is set but empty")]
    EmptyToken,
    /// Basic auth is not of the form `user:password` with a non-empty user.
    #[error("basic auth must be given as user:password, with a non-empty user")]
    BasicAuthFormat,
}

/// Why a request was not authenticated. The variants tell the logs which check failed; none of
/// them carries a secret or a credential the request sent. The HTTP layer answers 401 for all of
/// them without saying which.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Webhook secrets are configured, but the request has no signature or GitLab token header.
    #[error(
        "the request carries no X-Hub-Signature-256, X-Gitea-Signature, X-Forgejo-Signature or X-Gitlab-Token header"
    )]
    MissingSignature,
    /// A signature header is present but not of the form its sender uses.
    #[error("the {0} header is not a well-formed signature")]
    MalformedSignature(&'static str),
    /// A well-formed signature or GitLab token is present but matches no configured secret.
    #[error("the webhook signature matches none of the configured secrets")]
    SignatureMismatch,
    /// A token is configured, but the request has neither a bearer token nor `?token=`.
    #[error("the request carries no bearer token and no token query parameter")]
    MissingToken,
    /// The bearer token or `?token=` does not match the configured token.
    #[error("the token does not match")]
    TokenMismatch,
    /// Basic auth is configured, but the request has no `Authorization: Basic` header.
    #[error("the request carries no basic auth credentials")]
    MissingBasicAuth,
    /// The `Authorization: Basic` value is not valid base64.
    #[error("the basic auth credentials are not valid base64")]
    MalformedBasicAuth,
    /// The basic auth credentials do not match.
    #[error("the basic auth credentials do not match")]
    BasicAuthMismatch,
}

/// One method of authentication.
#[derive(Debug, Clone)]
enum Verifier {
    /// Signed with (or, for GitLab, carrying) one of these secrets.
    WebhookSecrets(Vec<Secret>),
    /// A bearer token or `?token=`.
    Token(Secret),
    /// Basic auth; the secret is `user:password`.
    BasicAuth(Secret),
}

impl Verifier {
    fn verify(&self, headers: &HeaderMap, query: &str, body: &[u8]) -> Result<(), AuthError> {
        match self {
            Self::WebhookSecrets(secrets) => verify_signature(secrets, headers, body),
            Self::Token(token) => verify_token(token, headers, query),
            Self::BasicAuth(credentials) => verify_basic(credentials, headers),
        }
    }
}

/// The authentication a route requires; see the module documentation for the rules.
#[derive(Debug, Clone, Default)]
pub struct InboundAuth {
    verifiers: Vec<Verifier>,
}

impl InboundAuth {
    /// Builds a route's authentication from its settings, each optional:
    /// `webhook_secrets` is a comma-separated list (white space around each secret is dropped),
    /// `token` a bearer token (used as given), `basic_auth` is `user:password` (split at the
    /// first colon, so the password may contain colons).
    pub fn new(
        webhook_secrets: Option<&str>,
        token: Option<&str>,
        basic_auth: Option<&str>,
    ) -> Result<Self, AuthConfigError> {
        let mut verifiers = Vec::new();
        if let Some(list) = webhook_secrets {
            let secrets: Vec<Secret> = list
                .split(',')
                .map(str::trim)
                .filter(|secret| !secret.is_empty())
                .map(Secret::new)
                .collect();
            if secrets.is_empty() {
                return Err(AuthConfigError::NoWebhookSecret);
            }
            verifiers.push(Verifier::WebhookSecrets(secrets));
        }
        if let Some(token) = token {
            if token.is_empty() {
                return Err(AuthConfigError::EmptyToken);
            }
            verifiers.push(Verifier::Token(Secret::new(token)));
        }
        if let Some(credentials) = basic_auth {
            match credentials.split_once(':') {
                Some((user, _)) if !user.is_empty() => {
                    verifiers.push(Verifier::BasicAuth(Secret::new(credentials)));
                }
                _ => return Err(AuthConfigError::BasicAuthFormat),
            }
        }
        Ok(Self { verifiers })
    }

    /// Whether this route has a token and `candidate` is it (compared in constant time): how the
    /// Gotify endpoint finds the route an application token names.
    pub fn has_token(&self, candidate: &str) -> bool {
        self.verifiers
            .iter()
            .any(|verifier| matches!(verifier, Verifier::Token(token) if token.matches(candidate.as_bytes())))
    }

    /// The route's token and basic credentials (`user:password`), which also let a person read
    /// its stream (see [`readers`]).
    pub(crate) fn reader_credentials(&self) -> (Vec<Secret>, Vec<Secret>) {
        let mut tokens = Vec::new();
        let mut basic = Vec::new();
        for verifier in &self.verifiers {
            match verifier {
                Verifier::Token(token) => tokens.push(token.clone()),
                Verifier::BasicAuth(credentials) => basic.push(credentials.clone()),
                Verifier::WebhookSecrets(_) => {}
            }
        }
        (tokens, basic)
    }

    /// True when no method is configured, so every request is accepted.
    pub fn is_open(&self) -> bool {
        self.verifiers.is_empty()
    }

    /// The kinds of authentication required, in the order they are checked (`webhook secret`,
    /// `token`, `basic auth`): names only, never a secret.
    pub fn kinds(&self) -> Vec<&'static str> {
        self.verifiers
            .iter()
            .map(|verifier| match verifier {
                Verifier::WebhookSecrets(_) => "webhook secret",
                Verifier::Token(_) => "token",
                Verifier::BasicAuth(_) => "basic auth",
            })
            .collect()
    }

    /// Checks a request: `query` is the raw query string (without `?`), `body` the raw body bytes
    /// exactly as received. Every configured method must pass; the first that fails is returned.
    pub fn verify(&self, headers: &HeaderMap, query: &str, body: &[u8]) -> Result<(), AuthError> {
        self.verifiers
            .iter()
            .try_for_each(|verifier| verifier.verify(headers, query, body))
    }
}

impl InboundAuth {
    /// The checks that need no body, run before it is read: the token, basic auth, GitLab's
    /// token, and that a signature header is present and well formed (its HMAC needs the body
    /// and is checked by [`InboundAuth::verify`]). A request refused here is refused there too.
    pub fn verify_headers(&self, headers: &HeaderMap, query: &str) -> Result<(), AuthError> {
        self.verifiers
            .iter()
            .try_for_each(|verifier| match verifier {
                Verifier::WebhookSecrets(secrets) => {
                    let presented = presented_signatures(headers)?;
                    let tokens_only = presented.iter().all(|p| matches!(p, Presented::Token(_)));
                    if tokens_only {
                        verify_signature(secrets, headers, &[])
                    } else {
                        Ok(())
                    }
                }
                other => other.verify(headers, query, &[]),
            })
    }
}

/// The HMAC-SHA256 of `body` under `secret`.
fn hmac_sha256(secret: &Secret, body: &[u8]) -> Option<[u8; TAG_LEN]> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose()).ok()?;
    mac.update(body);
    mac.finalize().into_bytes().as_slice().try_into().ok()
}

/// Decodes a hex HMAC-SHA256 tag (64 hex digits, either case).
fn parse_tag(hex_text: &str) -> Option<[u8; TAG_LEN]> {
    if hex_text.len() != 2 * TAG_LEN {
        return None;
    }
    let mut tag = [0u8; TAG_LEN];
    hex::decode_to_slice(hex_text, &mut tag).ok()?;
    Some(tag)
}

/// What one signature header offers.
enum Presented {
    /// An HMAC-SHA256 tag of the body.
    Tag([u8; TAG_LEN]),
    /// GitLab's token, to compare with the secret itself.
    Token(Vec<u8>),
}

/// Reads one signature header's value the way its sender writes it.
fn read_signature(name: &str, value: &str) -> Option<Presented> {
    match name {
        GITHUB_SIGNATURE => value
            .strip_prefix(GITHUB_PREFIX)
            .and_then(parse_tag)
            .map(Presented::Tag),
        GITLAB_TOKEN => Some(Presented::Token(value.as_bytes().to_vec())),
        _ => parse_tag(value).map(Presented::Tag),
    }
}

/// Every signature or GitLab token the request offers; none, or only malformed ones, is an error.
fn presented_signatures(headers: &HeaderMap) -> Result<Vec<Presented>, AuthError> {
    let mut presented = Vec::new();
    let mut malformed = None;
    for name in [
        GITHUB_SIGNATURE,
        GITEA_SIGNATURE,
        FORGEJO_SIGNATURE,
        GITLAB_TOKEN,
    ] {
        for value in headers.get_all(name) {
            let offer = value
                .to_str()
                .ok()
                .and_then(|text| read_signature(name, text.trim()));
            match offer {
                Some(offer) => presented.push(offer),
                None => malformed = malformed.or(Some(name)),
            }
        }
    }
    if presented.is_empty() {
        return Err(malformed.map_or(AuthError::MissingSignature, AuthError::MalformedSignature));
    }
    Ok(presented)
}

fn verify_signature(secrets: &[Secret], headers: &HeaderMap, body: &[u8]) -> Result<(), AuthError> {
    let presented = presented_signatures(headers)?;
    let tags: Vec<[u8; TAG_LEN]> = if presented.iter().any(|p| matches!(p, Presented::Tag(_))) {
        secrets
            .iter()
            .filter_map(|secret| hmac_sha256(secret, body))
            .collect()
    } else {
        Vec::new()
    };
    let accepted = presented.iter().any(|offer| match offer {
        Presented::Tag(tag) => tags.iter().any(|expected| bool::from(expected.ct_eq(tag))),
        Presented::Token(token) => secrets.iter().any(|secret| secret.matches(token)),
    });
    if accepted {
        Ok(())
    } else {
        Err(AuthError::SignatureMismatch)
    }
}

fn verify_token(token: &Secret, headers: &HeaderMap, query: &str) -> Result<(), AuthError> {
    let from_query = url::form_urlencoded::parse(query.as_bytes())
        .filter(|(key, _)| key == "token")
        .map(|(_, value)| value.into_owned());
    let candidates: Vec<String> = authorization_credentials(headers, "bearer")
        .map(str::to_owned)
        .chain(from_query)
        .collect();
    if candidates.is_empty() {
        Err(AuthError::MissingToken)
    } else if candidates
        .iter()
        .any(|candidate| token.matches(candidate.as_bytes()))
    {
        Ok(())
    } else {
        Err(AuthError::TokenMismatch)
    }
}

fn verify_basic(credentials: &Secret, headers: &HeaderMap) -> Result<(), AuthError> {
    let mut found = false;
    let mut malformed = false;
    for encoded in authorization_credentials(headers, "basic") {
        found = true;
        match BASE64.decode(encoded) {
            Ok(decoded) if credentials.matches(&decoded) => return Ok(()),
            Ok(_) => {}
            Err(_) => malformed = true,
        }
    }
    Err(match (found, malformed) {
        (false, _) => AuthError::MissingBasicAuth,
        (true, true) => AuthError::MalformedBasicAuth,
        (true, false) => AuthError::BasicAuthMismatch,
    })
}

#[cfg(test)]
mod tests;
