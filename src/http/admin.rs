//! `/admin/dead-letters`: list, retry and purge the outbox's dead letters over HTTP.
//!
//! | method and path | does | answers |
//! |---|---|---|
//! | `GET /admin/dead-letters?after=ID&limit=N` | lists dead letters oldest first (default 100, at most 1000) | `{"dead_letters": [...], "total": n, "next_after": id \| null}` |
//! | `POST /admin/dead-letters/{id}/retry` | queues one again | `{"retried": id}` |
//! | `POST /admin/dead-letters/retry` | queues all again, as far as the outbox has room | `{"retried": [ids], "left": n}` |
//! | `DELETE /admin/dead-letters/{id}` | deletes one for good | `{"purged": id}` |
//!
//! The endpoints exist only when `PUSHJET_BRIDGE_ADMIN_TOKEN` (or `PUSHJET_BRIDGE_ADMIN_TOKEN_FILE`)
//! is set; otherwise they answer 404. Every request needs `Authorization: Bearer <token>` (401
//! without it). Errors are `{"error": "<what to do>"}`: 400 for a malformed id or query, 404 for
//! an unknown dead letter, 503 with `Retry-After` when the outbox is full or cannot be written.
//!
//! `app.rs` mounts them with [`configure`], with `web::Data<Admin>` (the outbox and the admin
//! token of the settings) and `web::Data<Reloader>` as app data.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use serde::Deserialize;
use serde_json::json;

use crate::delivery::{Outbox, OutboxError};
use crate::reload::{ReloadError, Reloader};
use crate::secret::Secret;

/// How many dead letters a page lists by default.
const DEFAULT_PAGE: usize = 100;
/// The most dead letters one page lists.
const MAX_PAGE: usize = 1000;

/// What the admin handlers need, registered as `web::Data<Admin>`.
#[derive(Debug, Clone)]
pub struct Admin {
    outbox: Outbox,
    token: Option<Secret>,
}

impl Admin {
    /// The admin endpoints over this outbox; `token: None` turns them off (404).
    pub fn new(outbox: Outbox, token: Option<Secret>) -> Self {
        Self { outbox, token }
    }

    /// The outbox the endpoints work on.
    pub(crate) fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// The admin token; `None` when the admin endpoints are off.
    pub(crate) fn token(&self) -> Option<&Secret> {
        self.token.as_ref()
    }
}

/// Mounts the dead-letter endpoints under `/admin/dead-letters` and `POST /admin/reload`; needs
/// `web::Data<Admin>` and `web::Data<Reloader>`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/reload", web::post().to(reload));
    cfg.service(
        web::scope("/admin/dead-letters")
            .app_data(web::QueryConfig::default().error_handler(|error, _| {
                AdminError::BadRequest(format!("bad query: {error}; use ?after=ID&limit=N")).into()
            }))
            .route("", web::get().to(list))
            .route("/retry", web::post().to(retry_all))
            .route("/{id}/retry", web::post().to(retry_one))
            .route("/{id}", web::delete().to(purge)),
    );
}

/// Why an admin request failed; [`ResponseError`] maps each to its status in one place.
#[derive(Debug, thiserror::Error)]
enum AdminError {
    #[error("the admin endpoints are off: set PUSHJET_BRIDGE_ADMIN_TOKEN to turn them on")]
    Disabled,
    #[error("this endpoint needs the header `Authorization: Bearer <PUSHJET_BRIDGE_ADMIN_TOKEN>`")]
    Unauthorized,
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    #[error("the new configuration was refused and the previous one stays in force: {0}")]
    Reload(#[from] ReloadError),
    #[error("the reload did not run: {0}")]
    Blocking(String),
}

impl ResponseError for AdminError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Disabled | Self::Outbox(OutboxError::NoSuchDeadLetter(_)) => {
                StatusCode::NOT_FOUND
            }
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Reload(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Blocking(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Outbox(OutboxError::Full { .. } | OutboxError::Unavailable(_)) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Outbox(
                OutboxError::Locked { .. } | OutboxError::Record(_) | OutboxError::LeaseLost { .. },
            ) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        if let Self::Unauthorized = self {
            response.insert_header((
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"pushjet-bridge admin\""),
            ));
        }
        if let Self::Outbox(error) = self
            && let Some(wait) = error.retry_after()
        {
            response.insert_header((header::RETRY_AFTER, wait.as_secs().to_string()));
        }
        response.json(json!({ "error": self.to_string() }))
    }
}

/// `POST /admin/reload`: reads the templates and `PUSHJET_BRIDGE_ENV_FILE` again and swaps them
/// in, as SIGHUP does; 422 with every problem when the new configuration is invalid.
async fn reload(
    request: HttpRequest,
    admin: web::Data<Admin>,
    reloader: web::Data<Reloader>,
) -> Result<HttpResponse, AdminError> {
    authorize(&request, &admin)?;
    let reloader = reloader.into_inner();
    let generation = web::block(move || reloader.reload())
        .await
        .map_err(|error| AdminError::Blocking(error.to_string()))??;
    Ok(HttpResponse::Ok().json(json!({ "reloaded": true, "generation": generation })))
}

/// Checks that the endpoints are on and the request carries the token.
fn authorize(request: &HttpRequest, admin: &Admin) -> Result<(), AdminError> {
    let token = admin.token.as_ref().ok_or(AdminError::Disabled)?;
    if token.is_bearer_of(request.headers()) {
        Ok(())
    } else {
        Err(AdminError::Unauthorized)
    }
}

fn dead_letter_id(raw: &str) -> Result<u64, AdminError> {
    raw.parse().map_err(|_| {
        AdminError::BadRequest(format!(
            "`{}` is not a dead letter id: ids are whole numbers, as listed by GET /admin/dead-letters",
            raw.chars().take(40).collect::<String>()
        ))
    })
}

/// Paging of `GET /admin/dead-letters`.
#[derive(Debug, Deserialize)]
struct ListQuery {
    after: Option<u64>,
    limit: Option<usize>,
}

async fn list(
    request: HttpRequest,
    admin: web::Data<Admin>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, AdminError> {
    authorize(&request, &admin)?;
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(AdminError::BadRequest(format!(
            "limit must be from 1 to {MAX_PAGE}"
        )));
    }
    let letters = admin.outbox.dead_letters(query.after, limit).await?;
    let total = admin.outbox.dead_letter_count().await?;
    let next_after = (letters.len() == limit)
        .then(|| letters.last().map(|letter| letter.id))
        .flatten();
    Ok(HttpResponse::Ok().json(json!({
        "dead_letters": letters,
        "total": total,
        "next_after": next_after,
    })))
}

async fn retry_one(
    request: HttpRequest,
    admin: web::Data<Admin>,
    id: web::Path<String>,
) -> Result<HttpResponse, AdminError> {
    authorize(&request, &admin)?;
    let id = dead_letter_id(&id)?;
    admin.outbox.retry_dead_letter(id).await?;
    tracing::info!(id, "dead letter {id} queued again by an admin request");
    Ok(HttpResponse::Ok().json(json!({ "retried": id })))
}

async fn retry_all(
    request: HttpRequest,
    admin: web::Data<Admin>,
) -> Result<HttpResponse, AdminError> {
    authorize(&request, &admin)?;
    let retried = admin.outbox.retry_all_dead_letters().await?;
    tracing::info!(
        retried = retried.ids.len(),
        left = retried.left,
        "dead letters queued again by an admin request"
    );
    Ok(HttpResponse::Ok().json(json!({ "retried": retried.ids, "left": retried.left })))
}

async fn purge(
    request: HttpRequest,
    admin: web::Data<Admin>,
    id: web::Path<String>,
) -> Result<HttpResponse, AdminError> {
    authorize(&request, &admin)?;
    let id = dead_letter_id(&id)?;
    admin.outbox.purge_dead_letter(id).await?;
    tracing::info!(id, "dead letter {id} purged by an admin request");
    Ok(HttpResponse::Ok().json(json!({ "purged": id })))
}

#[cfg(test)]
mod tests {
    use actix_web::dev::ServiceResponse;
    use actix_web::test::{self, TestRequest};
    use actix_web::{App, body::MessageBody};
    use serde_json::Value;
    use tempfile::TempDir;

    use super::*;
    use crate::delivery::{DeliverySettings, Enqueued};
    use crate::pushjet::{MessageText, NewMessage};
    use crate::routes::RouteName;

    const TOKEN: &str = "s3cr3t-admin-token-0123456789";

    fn settings(max_queue: u64) -> DeliverySettings {
        DeliverySettings {
            max_queue,
            ..DeliverySettings::default()
        }
    }

    /// An outbox with `dead` dead letters (ids 1..=dead) and nothing pending.
    async fn outbox_with_dead_letters(dir: &TempDir, dead: u64, max_queue: u64) -> Outbox {
        let outbox = Outbox::open(dir.path(), &settings(max_queue)).unwrap();
        let route = RouteName::parse("gh").unwrap();
        let messages = (1..=dead)
            .map(|n| NewMessage::text(MessageText::new(format!("m{n}")).unwrap()))
            .collect();
        let Ok(Enqueued::Queued(ids)) = outbox.enqueue(&route, messages, None).await else {
            panic!("enqueue failed");
        };
        for id in ids {
            outbox
                .dead_letter_for_test(id, &route, "the service was deleted")
                .await
                .unwrap();
        }
        outbox
    }

    /// The endpoints mounted on an app over `outbox`, with `token` if given.
    macro_rules! app {
        ($outbox:expr, $token:expr) => {{
            let token: Option<&str> = $token;
            let admin = Admin::new($outbox.clone(), token.map(Secret::new));
            test::init_service(
                App::new()
                    .app_data(web::Data::new(admin))
                    .configure(configure),
            )
            .await
        }};
    }

    fn authorized(request: TestRequest) -> TestRequest {
        request.insert_header((header::AUTHORIZATION, format!("Bearer {TOKEN}")))
    }

    async fn json(response: ServiceResponse<impl MessageBody>) -> Value {
        serde_json::from_slice(&test::read_body(response).await).unwrap()
    }

    #[actix_web::test]
    async fn without_a_token_every_endpoint_is_not_found() {
        let dir = TempDir::new().unwrap();
        let outbox = outbox_with_dead_letters(&dir, 1, 10).await;
        let app = app!(outbox, None);
        for request in [
            TestRequest::get().uri("/admin/dead-letters"),
            TestRequest::post().uri("/admin/dead-letters/1/retry"),
            TestRequest::post().uri("/admin/dead-letters/retry"),
            TestRequest::delete().uri("/admin/dead-letters/1"),
        ] {
            let response = test::call_service(&app, authorized(request).to_request()).await;
            assert_eq!(response.status(), StatusCode::NOT_FOUND);
            let body = json(response).await;
            assert!(
                body["error"]
                    .as_str()
                    .unwrap()
                    .contains("PUSHJET_BRIDGE_ADMIN_TOKEN")
            );
        }
        assert_eq!(outbox.dead_letter_count().await.unwrap(), 1);
    }

    #[actix_web::test]
    async fn a_missing_or_wrong_token_is_unauthorized() {
        let dir = TempDir::new().unwrap();
        let outbox = outbox_with_dead_letters(&dir, 1, 10).await;
        let app = app!(outbox, Some(TOKEN));
        let bare = TestRequest::delete()
            .uri("/admin/dead-letters/1")
            .to_request();
        let response = test::call_service(&app, bare).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert!(response.headers().contains_key(header::WWW_AUTHENTICATE));
        for credentials in [format!("Bearer {TOKEN}x"), format!("Basic {TOKEN}")] {
            let request = TestRequest::delete()
                .uri("/admin/dead-letters/1")
                .insert_header((header::AUTHORIZATION, credentials))
                .to_request();
            let response = test::call_service(&app, request).await;
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        }
        assert_eq!(outbox.dead_letter_count().await.unwrap(), 1);
    }

    #[actix_web::test]
    async fn dead_letters_are_listed_a_page_at_a_time() {
        let dir = TempDir::new().unwrap();
        let outbox = outbox_with_dead_letters(&dir, 3, 10).await;
        let app = app!(outbox, Some(TOKEN));
        let request = authorized(TestRequest::get().uri("/admin/dead-letters?limit=2"));
        let response = test::call_service(&app, request.to_request()).await;
        assert_eq!(response.status(), StatusCode::OK);
        let body = json(response).await;
        assert_eq!(body["total"], 3);
        assert_eq!(body["next_after"], 2);
        let first = &body["dead_letters"][0];
        assert_eq!(first["id"], 1);
        assert_eq!(first["route"], "gh");
        assert_eq!(first["message"]["message"], "m1");
        assert_eq!(first["reason"], "the service was deleted");

        let request = authorized(TestRequest::get().uri("/admin/dead-letters?after=2"));
        let body = json(test::call_service(&app, request.to_request()).await).await;
        assert_eq!(body["dead_letters"].as_array().unwrap().len(), 1);
        assert_eq!(body["next_after"], Value::Null);

        let request = authorized(TestRequest::get().uri("/admin/dead-letters?limit=lots"));
        let response = test::call_service(&app, request.to_request()).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert!(json(response).await["error"].is_string());
    }

    #[actix_web::test]
    async fn one_dead_letter_can_be_retried_and_another_purged() {
        let dir = TempDir::new().unwrap();
        let outbox = outbox_with_dead_letters(&dir, 2, 10).await;
        let app = app!(outbox, Some(TOKEN));
        let retry = authorized(TestRequest::post().uri("/admin/dead-letters/1/retry"));
        let response = test::call_service(&app, retry.to_request()).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(json(response).await["retried"], 1);
        assert_eq!(outbox.pending_count(), 1);

        let purge = authorized(TestRequest::delete().uri("/admin/dead-letters/2"));
        let response = test::call_service(&app, purge.to_request()).await;
        assert_eq!(json(response).await["purged"], 2);
        assert_eq!(outbox.dead_letter_count().await.unwrap(), 0);

        let again = authorized(TestRequest::delete().uri("/admin/dead-letters/2"));
        let response = test::call_service(&app, again.to_request()).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(json(response).await["error"], "no dead letter has id 2");

        let malformed = authorized(TestRequest::post().uri("/admin/dead-letters/abc/retry"));
        let response = test::call_service(&app, malformed.to_request()).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    }

    #[actix_web::test]
    async fn retrying_all_reports_what_was_queued_and_a_full_outbox_is_503() {
        let dir = TempDir::new().unwrap();
        let outbox = outbox_with_dead_letters(&dir, 3, 3).await;
        let app = app!(outbox, Some(TOKEN));
        let route = RouteName::parse("gh").unwrap();
        let message = NewMessage::text(MessageText::new("new").unwrap());
        outbox.enqueue(&route, vec![message], None).await.unwrap();

        let retry_all = || authorized(TestRequest::post().uri("/admin/dead-letters/retry"));
        let body = json(test::call_service(&app, retry_all().to_request()).await).await;
        assert_eq!(body["retried"], json!([1, 2]));
        assert_eq!(body["left"], 1);

        let response = test::call_service(&app, retry_all().to_request()).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers().get(header::RETRY_AFTER).unwrap(), "30");
        assert!(
            json(response).await["error"]
                .as_str()
                .unwrap()
                .contains("PUSHJET_BRIDGE_MAX_QUEUE")
        );
    }
}
