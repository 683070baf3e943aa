//! Webhook signatures through the real service: every vector of
//! `tests/fixtures/signature/vectors.json` on a route with that vector's secret, rotation,
//! and what a refused request is told.

use serde_json::Value;

use crate::common::{
    Answer, assert_no_more_messages, post, spawn_app_with_routes, wait_for_messages,
};
use crate::support::{FIXTURES, github_signature, hmac_sha256_hex};

fn vectors(kind: &str) -> Vec<Value> {
    let path = format!("{FIXTURES}/signature/vectors.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{path}: {error}"));
    let all: Value = serde_json::from_str(&text).expect("vectors.json is JSON");
    all[kind].as_array().expect("a list of vectors").clone()
}

fn text<'a>(vector: &'a Value, field: &str) -> &'a str {
    vector[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} in {vector}"))
}

/// The route of a vector: its id, which is already a valid route name.
fn route_of(vector: &Value) -> String {
    text(vector, "id").to_owned()
}

/// One route per vector, each with the vector's secret as its WEBHOOK_SECRET; no Content-Type
/// is sent, so the payload is read as JSON when it parses and as text otherwise.
async fn post_vectors(vectors: &[Value]) -> Vec<(String, Answer, bool)> {
    let names: Vec<String> = vectors.iter().map(route_of).collect();
    let mut vars: Vec<(String, String)> = vec![("PUSHJET_BRIDGE_ROUTES".into(), names.join(","))];
    for (vector, name) in vectors.iter().zip(&names) {
        let prefix = format!(
            "PUSHJET_BRIDGE_ROUTE_{}_",
            name.to_ascii_uppercase().replace('-', "_")
        );
        vars.push((
            format!("{prefix}WEBHOOK_SECRET"),
            text(vector, "secret").into(),
        ));
    }
    let borrowed: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let app = spawn_app_with_routes(&borrowed).await;
    let mut answers = Vec::new();
    for (vector, name) in vectors.iter().zip(&names) {
        let payload = text(vector, "payload");
        if let Some(hex_bytes) = vector["payload_utf8_hex"].as_str() {
            assert_eq!(hex::encode(payload), hex_bytes, "{name}");
        }
        let mut headers = Vec::new();
        if let Some(value) = vector["x_hub_signature_256"].as_str() {
            headers.push(("X-Hub-Signature-256", value));
        }
        if let Some(value) = vector["x_hub_signature"].as_str() {
            headers.push(("X-Hub-Signature", value));
        }
        let answer = post(
            &app.url(&format!("/hooks/{name}")),
            &headers,
            payload.to_owned(),
        )
        .await;
        let has_sha256 = vector.get("x_hub_signature_256").is_some();
        answers.push((name.clone(), answer, has_sha256));
    }
    // Every accepted vector is a notification: prove they went all the way.
    let accepted = answers
        .iter()
        .filter(|(_, a, _)| a.status.is_success())
        .count();
    if accepted > 0 {
        wait_for_messages(&app.device, accepted).await;
    }
    assert_no_more_messages(&app.device).await;
    answers
}

/// Valid vectors with an `X-Hub-Signature-256` are accepted. The one vector that carries only
/// the legacy SHA-1 `X-Hub-Signature` (`github-docs-sha1-computed`) is refused with 401 on
/// purpose: the bridge accepts no SHA-1 signature, since GitHub always sends the SHA-256 header
/// beside it.
#[actix_web::test]
async fn every_valid_sha256_vector_is_accepted_and_sha1_only_is_refused() {
    let valid = vectors("valid");
    assert_eq!(valid.len(), 6, "vectors.json changed; review this test");
    let answers = post_vectors(&valid).await;
    let mut sha256 = 0;
    for (name, answer, has_sha256) in &answers {
        if *has_sha256 {
            assert!(
                answer.status.is_success(),
                "{name}: {} {}",
                answer.status,
                answer.text
            );
            sha256 += 1;
        } else {
            assert_eq!(answer.status, 401, "{name} (SHA-1 only): {}", answer.text);
        }
    }
    assert_eq!(sha256, 5);
}

#[actix_web::test]
async fn every_invalid_vector_is_refused_with_401() {
    let invalid = vectors("invalid");
    assert_eq!(invalid.len(), 3, "vectors.json changed; review this test");
    for (name, answer, _) in post_vectors(&invalid).await {
        assert_eq!(answer.status, 401, "{name}: {}", answer.text);
    }
}

const BODY: &str = r#"{"message":"signed"}"#;

#[actix_web::test]
async fn during_rotation_both_the_old_and_the_new_secret_are_accepted() {
    let app = spawn_app_with_routes(&[
        ("PUSHJET_BRIDGE_ROUTES", "rot"),
        (
            "PUSHJET_BRIDGE_ROUTE_ROT_WEBHOOK_SECRET",
            "old-secret-1,new-secret-2",
        ),
    ])
    .await;
    for secret in ["new-secret-2", "old-secret-1"] {
        let signature = github_signature(secret, BODY.as_bytes());
        let answer = post(
            &app.url("/hooks/rot"),
            &[
                ("Content-Type", "application/json"),
                ("X-Hub-Signature-256", &signature),
            ],
            BODY,
        )
        .await;
        assert!(
            answer.status.is_success(),
            "{secret}: {} {}",
            answer.status,
            answer.text
        );
    }
    let wrong = github_signature("retired-secret-0", BODY.as_bytes());
    let answer = post(
        &app.url("/hooks/rot"),
        &[
            ("Content-Type", "application/json"),
            ("X-Hub-Signature-256", &wrong),
        ],
        BODY,
    )
    .await;
    assert_eq!(answer.status, 401, "{}", answer.text);
    assert_eq!(wait_for_messages(&app.device, 2).await.len(), 2);
    assert_no_more_messages(&app.device).await;
}

#[actix_web::test]
async fn an_unsigned_request_to_a_route_with_a_webhook_secret_is_refused_with_401() {
    let app = spawn_app_with_routes(&[
        ("PUSHJET_BRIDGE_ROUTES", "signed"),
        (
            "PUSHJET_BRIDGE_ROUTE_SIGNED_WEBHOOK_SECRET",
            "s3cret-unsigned",
        ),
    ])
    .await;
    let answer = post(
        &app.url("/hooks/signed"),
        &[
            ("Content-Type", "application/json"),
            ("X-GitHub-Event", "push"),
        ],
        BODY,
    )
    .await;
    assert_eq!(answer.status, 401, "{}", answer.text);
    assert_no_more_messages(&app.device).await;
}

/// Missing, malformed, wrong and SHA-1-only signatures, a wrong GitLab token, a wrong Gitea
/// signature: all get the same 401 body, which names no check and no secret.
#[actix_web::test]
async fn every_401_has_the_same_body_naming_no_check_and_no_secret() {
    const SECRET: &str = "hunter2-webhook-secret";
    let app = spawn_app_with_routes(&[
        ("PUSHJET_BRIDGE_ROUTES", "guarded"),
        ("PUSHJET_BRIDGE_ROUTE_GUARDED_WEBHOOK_SECRET", SECRET),
    ])
    .await;
    let wrong = github_signature("not-the-secret", BODY.as_bytes());
    let sha1_only = "sha1=d03207e4b030cf234e3447bac4d93add4c6643d8";
    let wrong_gitea = hmac_sha256_hex("not-the-secret", BODY.as_bytes());
    let attempts: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("no signature", vec![]),
        ("malformed", vec![("X-Hub-Signature-256", "sha256=zz")]),
        ("wrong secret", vec![("X-Hub-Signature-256", &wrong)]),
        ("SHA-1 only", vec![("X-Hub-Signature", sha1_only)]),
        (
            "wrong GitLab token",
            vec![("X-Gitlab-Token", "hunter2-webhook-secreT")],
        ),
        (
            "wrong Gitea signature",
            vec![("X-Gitea-Signature", &wrong_gitea)],
        ),
    ];
    let mut bodies = Vec::new();
    for (label, mut headers) in attempts {
        headers.push(("Content-Type", "application/json"));
        let answer = post(&app.url("/hooks/guarded"), &headers, BODY).await;
        assert_eq!(answer.status, 401, "{label}: {}", answer.text);
        assert!(!answer.text.contains(SECRET), "{label}: {}", answer.text);
        assert!(!answer.text.contains("hunter2"), "{label}: {}", answer.text);
        bodies.push((label, answer.text));
    }
    let first = bodies[0].1.clone();
    assert_eq!(first, r#"{"error":"authentication failed"}"#);
    for (label, body) in &bodies {
        assert_eq!(body, &first, "{label} is told something the others are not");
    }
    assert_no_more_messages(&app.device).await;
}
