//! Reference server for `bench/run.sh`: the least a webhook-to-push forwarder can do. Each request
//! body is read and POSTed to a sink (`examples/sink.rs`) with awc, one pooled client per worker,
//! and answered 202 only after the sink's 200. Nothing is parsed, rendered or stored. The harness
//! reports the bridge's delivered notifications per second end to end as a ratio to this server's
//! requests per second, measured in the same run.
//!
//! ```sh
//! cargo run --release --example reference -- sink 127.0.0.1:18090 &
//! cargo run --release --example reference -- minimal_forwarder 127.0.0.1:18082 http://127.0.0.1:18090/message
//! ```

use actix_web::{App, HttpResponse, HttpServer, web};

/// Where it listens when no address is given.
const DEFAULT_LISTEN: &str = "127.0.0.1:18082";
/// Where it forwards when no URL is given.
const DEFAULT_SINK: &str = "http://127.0.0.1:18090/message";

struct Forward {
    client: awc::Client,
    sink: String,
}

async fn forward(body: web::Bytes, forward: web::Data<Forward>) -> HttpResponse {
    let sent = forward
        .client
        .post(forward.sink.as_str())
        .insert_header(("Content-Type", "application/x-www-form-urlencoded"))
        .send_body(body)
        .await;
    match sent {
        Ok(mut response) if response.status().is_success() => match response.body().await {
            Ok(_) => HttpResponse::Accepted().finish(),
            Err(_) => HttpResponse::BadGateway().finish(),
        },
        _ => HttpResponse::BadGateway().finish(),
    }
}

/// Serves until stopped; `args` are what follows the server's name on the command line.
pub async fn serve(args: Vec<String>) -> std::io::Result<()> {
    let mut args = args.into_iter();
    let listen = args.next().unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
    let sink = args.next().unwrap_or_else(|| DEFAULT_SINK.to_owned());
    HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(Forward {
                client: awc::Client::default(),
                sink: sink.clone(),
            }))
            .default_service(web::to(forward))
    })
    .bind(&listen)?
    .run()
    .await
}
