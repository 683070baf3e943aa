//! `GET /healthz`: the process is alive and serving.

use actix_web::HttpResponse;

/// Answers 200 `ok` while the process serves requests.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body("ok\n")
}
