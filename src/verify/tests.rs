use super::*;
use crate::sources::test_support::headers;
use actix_web::http::header::{HeaderName, HeaderValue};
use serde_json::Value;

const VECTORS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/signature/vectors.json"
);

fn secrets(list: &str) -> InboundAuth {
    InboundAuth::new(Some(list), None, None).expect("valid secret list")
}

fn vectors(kind: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(VECTORS).expect("vectors.json is readable");
    let all: Value = serde_json::from_str(&text).expect("vectors.json is JSON");
    all[kind].as_array().expect("a list of vectors").clone()
}

fn field<'a>(vector: &'a Value, name: &str) -> &'a str {
    vector[name].as_str().expect("a string field")
}

#[test]
fn every_valid_sha256_vector_is_accepted_as_github_gitea_and_forgejo() {
    let mut checked = 0;
    for vector in vectors("valid") {
        let Some(signature) = vector["x_hub_signature_256"].as_str() else {
            continue;
        };
        let payload = field(&vector, "payload").as_bytes();
        assert_eq!(hex::encode(payload), field(&vector, "payload_utf8_hex"));
        let auth = secrets(field(&vector, "secret"));
        let bare = signature.trim_start_matches("sha256=");
        for (name, value) in [
            ("X-Hub-Signature-256", signature),
            ("X-Gitea-Signature", bare),
            ("X-Forgejo-Signature", bare),
        ] {
            assert_eq!(
                auth.verify(&headers(&[(name, value)]), "", payload),
                Ok(()),
                "vector {} in {name}",
                vector["id"]
            );
        }
        checked += 1;
    }
    assert_eq!(checked, 5);
}

#[test]
fn valid_sha1_only_vectors_are_rejected_because_legacy_signatures_are_not_accepted() {
    let mut checked = 0;
    for vector in vectors("valid") {
        let Some(signature) = vector["x_hub_signature"].as_str() else {
            continue;
        };
        let auth = secrets(field(&vector, "secret"));
        let request = headers(&[("X-Hub-Signature", signature)]);
        let payload = field(&vector, "payload").as_bytes();
        assert_eq!(
            auth.verify(&request, "", payload),
            Err(AuthError::MissingSignature)
        );
        checked += 1;
    }
    assert_eq!(checked, 3);
}

#[test]
fn every_invalid_vector_is_rejected() {
    let invalid = vectors("invalid");
    assert_eq!(invalid.len(), 3);
    for vector in invalid {
        assert_eq!(field(&vector, "expect"), "reject");
        let auth = secrets(field(&vector, "secret"));
        let request = headers(&[("X-Hub-Signature-256", field(&vector, "x_hub_signature_256"))]);
        let result = auth.verify(&request, "", field(&vector, "payload").as_bytes());
        assert!(result.is_err(), "vector {} was accepted", vector["id"]);
    }
}

const DOCS_SIGNATURE: &str =
    "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

#[test]
fn second_secret_of_a_rotation_list_is_accepted() {
    let auth = secrets("old-secret , It's a Secret to Everybody");
    let request = headers(&[("X-Hub-Signature-256", DOCS_SIGNATURE)]);
    assert_eq!(auth.verify(&request, "", b"Hello, World!"), Ok(()));
}

#[test]
fn a_signature_over_other_bytes_is_a_mismatch() {
    let auth = secrets("It's a Secret to Everybody");
    let request = headers(&[("X-Hub-Signature-256", DOCS_SIGNATURE)]);
    assert_eq!(
        auth.verify(&request, "", b"Hello, World!\n"),
        Err(AuthError::SignatureMismatch)
    );
}

#[test]
fn missing_signature_is_rejected() {
    let auth = secrets("s");
    assert_eq!(
        auth.verify(&HeaderMap::new(), "", b"{}"),
        Err(AuthError::MissingSignature)
    );
}

#[test]
fn garbled_signature_headers_are_rejected_without_panic() {
    let auth = secrets("It's a Secret to Everybody");
    let bare = DOCS_SIGNATURE.trim_start_matches("sha256=");
    let cases = [
        ("X-Hub-Signature-256", format!("sha256={}", "zz".repeat(32))),
        ("X-Hub-Signature-256", format!("sha1={bare}")),
        ("X-Hub-Signature-256", bare.to_owned()),
        ("X-Hub-Signature-256", format!("sha256={}", &bare[..62])),
        ("X-Hub-Signature-256", format!("sha256={bare}00")),
        ("X-Hub-Signature-256", "sha256=".to_owned()),
        ("X-Gitea-Signature", DOCS_SIGNATURE.to_owned()),
        ("X-Gitea-Signature", format!("{}é", &bare[..63])),
        ("X-Forgejo-Signature", String::new()),
    ];
    for (name, value) in cases {
        let mut request = HeaderMap::new();
        request.insert(
            HeaderName::from_bytes(name.as_bytes()).expect("test header name"),
            HeaderValue::from_bytes(value.as_bytes()).expect("test header bytes"),
        );
        assert_eq!(
            auth.verify(&request, "", b"Hello, World!"),
            Err(AuthError::MalformedSignature(
                if name == "X-Hub-Signature-256" {
                    GITHUB_SIGNATURE
                } else if name == "X-Gitea-Signature" {
                    GITEA_SIGNATURE
                } else {
                    FORGEJO_SIGNATURE
                }
            )),
            "{name}: {value}"
        );
    }
}

#[test]
fn non_ascii_header_bytes_are_rejected_without_panic() {
    let auth = secrets("s");
    let mut request = HeaderMap::new();
    request.insert(
        HeaderName::from_static(GITHUB_SIGNATURE),
        HeaderValue::from_bytes(b"sha256=\xff\xfe").expect("opaque header bytes"),
    );
    assert_eq!(
        auth.verify(&request, "", b"{}"),
        Err(AuthError::MalformedSignature(GITHUB_SIGNATURE))
    );
}

#[test]
fn uppercase_hex_signature_is_accepted() {
    let auth = secrets("It's a Secret to Everybody");
    let upper = format!("sha256={}", DOCS_SIGNATURE[7..].to_uppercase());
    let request = headers(&[("X-Hub-Signature-256", &upper)]);
    assert_eq!(auth.verify(&request, "", b"Hello, World!"), Ok(()));
}

#[test]
fn one_valid_header_among_gitea_headers_is_enough() {
    let auth = secrets("It's a Secret to Everybody");
    let request = headers(&[
        ("X-Hub-Signature", "sha1="),
        ("X-Hub-Signature-256", "sha256="),
        ("X-Gitea-Signature", &DOCS_SIGNATURE[7..]),
    ]);
    assert_eq!(auth.verify(&request, "", b"Hello, World!"), Ok(()));
}

#[test]
fn github_form_delivery_is_verified_over_the_raw_body() {
    let raw = b"payload=%7B%22zen%22%3A%22Keep+it+logically+awesome.%22%7D";
    let secret = Secret::new("form-secret");
    let tag = hmac_sha256(&secret, raw).expect("an HMAC");
    let signature = format!("sha256={}", hex::encode(tag));
    let request = headers(&[
        ("Content-Type", "application/x-www-form-urlencoded"),
        ("X-Hub-Signature-256", &signature),
    ]);
    let auth = secrets("form-secret");
    assert_eq!(auth.verify(&request, "", raw), Ok(()));
    let decoded_json = br#"{"zen":"Keep it logically awesome."}"#;
    assert_eq!(
        auth.verify(&request, "", decoded_json),
        Err(AuthError::SignatureMismatch)
    );
}

#[test]
fn gitlab_token_equal_to_any_secret_is_accepted() {
    let auth = secrets("first,second");
    let request = headers(&[("X-Gitlab-Token", "second")]);
    assert_eq!(auth.verify(&request, "", b"{}"), Ok(()));
}

#[test]
fn wrong_gitlab_token_is_rejected() {
    let auth = secrets("first,second");
    for wrong in ["secon", "second2", "", "SECOND"] {
        let request = headers(&[("X-Gitlab-Token", wrong)]);
        assert_eq!(
            auth.verify(&request, "", b"{}"),
            Err(AuthError::SignatureMismatch),
            "{wrong:?}"
        );
    }
}

fn token(value: &str) -> InboundAuth {
    InboundAuth::new(None, Some(value), None).expect("valid token")
}

#[test]
fn bearer_token_is_accepted() {
    let request = headers(&[("Authorization", "Bearer s3cr3t-test-token")]);
    assert_eq!(token("s3cr3t-test-token").verify(&request, "", b""), Ok(()));
    let lower = headers(&[("Authorization", "bearer s3cr3t-test-token")]);
    assert_eq!(token("s3cr3t-test-token").verify(&lower, "", b""), Ok(()));
}

#[test]
fn wrong_or_missing_bearer_token_is_rejected() {
    let auth = token("s3cr3t-test-token");
    let wrong = headers(&[("Authorization", "Bearer s3cr3t-test-tokem")]);
    assert_eq!(auth.verify(&wrong, "", b""), Err(AuthError::TokenMismatch));
    let other_scheme = headers(&[("Authorization", "Token s3cr3t-test-token")]);
    assert_eq!(
        auth.verify(&other_scheme, "", b""),
        Err(AuthError::MissingToken)
    );
    assert_eq!(
        auth.verify(&HeaderMap::new(), "", b""),
        Err(AuthError::MissingToken)
    );
}

#[test]
fn query_token_is_url_decoded_and_accepted() {
    let auth = token("a b&c=d");
    assert_eq!(
        auth.verify(&HeaderMap::new(), "title=x&token=a+b%26c%3Dd", b""),
        Ok(())
    );
    assert_eq!(
        auth.verify(&HeaderMap::new(), "token=a+b", b""),
        Err(AuthError::TokenMismatch)
    );
}

fn basic(credentials: &str) -> String {
    format!("Basic {}", BASE64.encode(credentials))
}

#[test]
fn basic_auth_is_accepted() {
    let auth = InboundAuth::new(None, None, Some("alert:pass:word")).expect("valid basic");
    let request = headers(&[("Authorization", &basic("alert:pass:word"))]);
    assert_eq!(auth.verify(&request, "", b""), Ok(()));
}

#[test]
fn wrong_missing_or_garbled_basic_auth_is_rejected() {
    let auth = InboundAuth::new(None, None, Some("alert:password")).expect("valid basic");
    let wrong = headers(&[("Authorization", &basic("alert:passwort"))]);
    assert_eq!(
        auth.verify(&wrong, "", b""),
        Err(AuthError::BasicAuthMismatch)
    );
    let garbled = headers(&[("Authorization", "Basic %%%not-base64")]);
    assert_eq!(
        auth.verify(&garbled, "", b""),
        Err(AuthError::MalformedBasicAuth)
    );
    assert_eq!(
        auth.verify(&HeaderMap::new(), "", b""),
        Err(AuthError::MissingBasicAuth)
    );
}

#[test]
fn all_configured_methods_must_pass() {
    let auth = InboundAuth::new(Some("hook"), Some("tok"), None).expect("valid settings");
    let only_token = headers(&[("Authorization", "Bearer tok")]);
    assert_eq!(
        auth.verify(&only_token, "", b""),
        Err(AuthError::MissingSignature)
    );
    let both = headers(&[("Authorization", "Bearer tok"), ("X-Gitlab-Token", "hook")]);
    assert_eq!(auth.verify(&both, "", b""), Ok(()));
}

#[test]
fn no_configured_method_accepts_everything() {
    let auth = InboundAuth::new(None, None, None).expect("empty settings");
    assert!(auth.is_open());
    assert_eq!(auth.verify(&HeaderMap::new(), "", b"anything"), Ok(()));
}

#[test]
fn unusable_settings_are_refused() {
    assert_eq!(
        InboundAuth::new(Some(" , ,"), None, None).err(),
        Some(AuthConfigError::NoWebhookSecret)
    );
    assert_eq!(
        InboundAuth::new(None, Some(""), None).err(),
        Some(AuthConfigError::EmptyToken)
    );
    for bad in ["nocolon", ":password"] {
        assert_eq!(
            InboundAuth::new(None, None, Some(bad)).err(),
            Some(AuthConfigError::BasicAuthFormat)
        );
    }
}

#[test]
fn debug_output_shows_no_secret() {
    let auth = InboundAuth::new(
        Some("hunter2-one,hunter2-two"),
        Some("tok-hunter2"),
        Some("user-hunter2:pw-hunter2"),
    )
    .expect("valid settings");
    let shown = format!("{auth:?} {auth:#?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("redacted"));
}

#[test]
fn errors_show_no_credential() {
    let auth = token("tok-hunter2");
    let request = headers(&[("Authorization", "Bearer sent-hunter3")]);
    let error = auth.verify(&request, "", b"").expect_err("wrong token");
    let shown = format!("{error} {error:?}");
    assert!(!shown.contains("hunter"), "{shown}");
}

#[test]
fn header_checks_refuse_what_needs_no_body_and_leave_hmac_tags_for_later() {
    let auth = InboundAuth::new(
        Some("It's a Secret to Everybody"),
        Some("s3cr3t-test-token"),
        None,
    )
    .unwrap();
    let signed = headers(&[
        ("X-Hub-Signature-256", DOCS_SIGNATURE),
        ("Authorization", "Bearer s3cr3t-test-token"),
    ]);
    assert_eq!(auth.verify_headers(&signed, ""), Ok(()));
    let unsigned = headers(&[("Authorization", "Bearer s3cr3t-test-token")]);
    assert_eq!(
        auth.verify_headers(&unsigned, ""),
        Err(AuthError::MissingSignature)
    );
    let no_token = headers(&[("X-Hub-Signature-256", DOCS_SIGNATURE)]);
    assert_eq!(
        auth.verify_headers(&no_token, ""),
        Err(AuthError::MissingToken)
    );
    let gitlab = secrets("gitlab-secret");
    let wrong = headers(&[("X-Gitlab-Token", "not-it")]);
    assert_eq!(
        gitlab.verify_headers(&wrong, ""),
        Err(AuthError::SignatureMismatch)
    );
    let right = headers(&[("X-Gitlab-Token", "gitlab-secret")]);
    assert_eq!(gitlab.verify_headers(&right, ""), Ok(()));
}
