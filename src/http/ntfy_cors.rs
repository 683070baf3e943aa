//! What ntfy's apps (its web app above all, which runs on another origin) need from a server
//! besides publishing and subscribing: CORS preflights (`OPTIONS`) answered as ntfy answers
//! them, `GET /v1/health`, and an ntfy-shaped error (`{"code", "http", "error"}`, open to every
//! origin) for the rest of ntfy's `/v1/` API, which the bridge does not serve (accounts, tiers,
//! web push, …), so that the app shows a reason instead of "Failed to fetch".
//!
//! The publish paths (`/`, `/<topic>`) get their preflight in [`super::ntfy::configure`], the
//! subscribe paths in [`crate::streams::ntfy`]; both use [`crate::streams::ntfy::preflight`].

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};

use crate::streams::ntfy::{error, preflight, with_cors};

/// ntfy's code for a path it does not serve.
const NOT_FOUND_CODE: u32 = 40401;

/// Mounts `GET /v1/health` and the answer to every other `/v1/…` path (and its preflight).
/// Register it before the publish paths.
pub fn configure(config: &mut web::ServiceConfig) {
    config
        .service(
            web::resource("/v1/health")
                .route(web::get().to(health))
                .route(web::method(actix_web::http::Method::OPTIONS).to(preflight)),
        )
        .service(
            web::resource("/v1/{rest:.*}")
                .route(web::method(actix_web::http::Method::OPTIONS).to(preflight))
                .default_service(web::to(not_served)),
        );
}

/// `GET /v1/health`: ntfy's health answer.
async fn health() -> HttpResponse {
    with_cors(HttpResponse::Ok().json(serde_json::json!({ "healthy": true })))
}

/// Any other `/v1/…` request: ntfy's "page not found" with what the bridge serves instead.
async fn not_served() -> HttpResponse {
    error(
        StatusCode::NOT_FOUND,
        NOT_FOUND_CODE,
        "page not found: this server is pushjet-bridge, which serves ntfy's publish and \
         subscribe API only (no accounts, tiers, reservations or web push); use the app \
         without an account",
    )
}

#[cfg(test)]
mod tests {
    use actix_web::http::header;
    use actix_web::{App, test};

    use super::*;

    #[actix_web::test]
    async fn health_preflight_and_unserved_paths_answer_as_ntfy_does() {
        let app = test::init_service(App::new().configure(configure)).await;

        let health = test::call_service(
            &app,
            test::TestRequest::get().uri("/v1/health").to_request(),
        )
        .await;
        assert_eq!(health.status(), 200);
        assert_eq!(
            health
                .headers()
                .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
                .map(|v| v.as_bytes()),
            Some(&b"*"[..])
        );
        let body: serde_json::Value = test::read_body_json(health).await;
        assert_eq!(body, serde_json::json!({"healthy": true}));

        let preflight = test::call_service(
            &app,
            test::TestRequest::default()
                .method(actix_web::http::Method::OPTIONS)
                .uri("/v1/account")
                .to_request(),
        )
        .await;
        assert_eq!(preflight.status(), 200);
        assert!(
            preflight
                .headers()
                .contains_key(header::ACCESS_CONTROL_ALLOW_METHODS)
        );

        let account = test::call_service(
            &app,
            test::TestRequest::get().uri("/v1/account").to_request(),
        )
        .await;
        assert_eq!(account.status(), 404);
        assert!(
            account
                .headers()
                .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
        );
        let body: serde_json::Value = test::read_body_json(account).await;
        assert_eq!(body["code"], 40401);
        assert_eq!(body["http"], 404);
        assert!(
            body["error"]
                .as_str()
                .is_some_and(|text| text.contains("pushjet-bridge"))
        );
    }
}
