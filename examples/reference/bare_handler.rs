//! Reference server for `bench/run.sh`: the cheapest actix-web answer there is. Every request is
//! answered 202 at once; its body is neither parsed nor kept. The harness reports the bridge's
//! accepted webhooks per second as a ratio to this server's requests per second, measured in the
//! same run.
//!
//! The body is taken off the connection (`web::Bytes`) even though nothing looks at it: since
//! actix-http 3.x a handler that leaves a `Content-Length` body unread gets its connection closed
//! after the answer (`should_close_for_unread_payload` in its HTTP/1 dispatcher), so every request
//! would pay a new TCP connection and the reference would measure connection set-up instead of
//! request handling (about 11,600 req/s instead of about 100,000 on the benchmark machine; see
//! BENCHMARKS.md).
//!
//! ```sh
//! cargo run --release --example reference -- bare_handler 127.0.0.1:18081
//! ```

use actix_web::{App, HttpResponse, HttpServer, web};

/// Where it listens when no address is given.
const DEFAULT_LISTEN: &str = "127.0.0.1:18081";

/// Takes the body (so the connection stays open, see the module documentation) and answers 202.
async fn accept(_body: web::Bytes) -> HttpResponse {
    HttpResponse::Accepted().finish()
}

/// Serves until stopped; `args` are what follows the server's name on the command line.
pub async fn serve(args: Vec<String>) -> std::io::Result<()> {
    let listen = args
        .into_iter()
        .next()
        .unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
    HttpServer::new(|| App::new().default_service(web::to(accept)))
        .bind(&listen)?
        .run()
        .await
}
