//! A Pushjet-compatible sink for `bench/run.sh`: `POST /message` reads the form body and answers
//! 200 `{"status": "ok"}`, as the Pushjet API acknowledges a message, and counts it.
//! `GET /count` answers the number of messages taken so far, so the harness can measure delivered
//! notifications per second where they arrive. It stores nothing.
//!
//! ```sh
//! cargo run --release --example reference -- sink 127.0.0.1:18090
//! curl http://127.0.0.1:18090/count
//! ```

use std::sync::atomic::{AtomicU64, Ordering};

use actix_web::{App, HttpResponse, HttpServer, web};

/// Where it listens when no address is given.
const DEFAULT_LISTEN: &str = "127.0.0.1:18090";

/// Messages taken since the start.
static MESSAGES: AtomicU64 = AtomicU64::new(0);

async fn message(body: web::Bytes) -> HttpResponse {
    if body.is_empty() {
        return HttpResponse::BadRequest()
            .content_type("application/json")
            .body(r#"{"error": {"id": 7, "message": "Empty message"}}"#);
    }
    MESSAGES.fetch_add(1, Ordering::Relaxed);
    HttpResponse::Ok()
        .content_type("application/json")
        .body(r#"{"status": "ok"}"#)
}

async fn count() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain")
        .body(MESSAGES.load(Ordering::Relaxed).to_string())
}

/// Serves until stopped; `args` are what follows the server's name on the command line.
pub async fn serve(args: Vec<String>) -> std::io::Result<()> {
    let listen = args
        .into_iter()
        .next()
        .unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
    HttpServer::new(|| {
        App::new()
            .route("/message", web::post().to(message))
            .route("/count", web::get().to(count))
    })
    .bind(&listen)?
    .run()
    .await
}
