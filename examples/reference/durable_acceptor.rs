//! Reference server for `bench/run.sh`: the least a webhook receiver can do that keeps every
//! accepted request on disk. Each request body is handed to one writer thread, which appends
//! whatever has arrived meanwhile to a log file in one `write`, makes it durable with one
//! `fdatasync` (group commit), and only then lets the requests be answered 202. Nothing is parsed,
//! rendered, deduplicated or sent. The harness runs it at the same paced rate as the bridge, so
//! that the bridge's latency under normal load can be compared with what the disk alone costs.
//!
//! ```sh
//! cargo run --release --example reference -- durable_acceptor 127.0.0.1:18083 /tmp/acceptor.log
//! ```

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::mpsc;

use actix_web::{App, HttpResponse, HttpServer, web};
use tokio::sync::oneshot;

/// Where it listens when no address is given.
const DEFAULT_LISTEN: &str = "127.0.0.1:18083";
/// The log file when none is given.
const DEFAULT_LOG: &str = "durable-acceptor.log";
/// The most requests written in one commit.
const MAX_BATCH: usize = 1024;

/// A body to store and who waits for it to be on disk.
type Job = (web::Bytes, oneshot::Sender<bool>);

/// Appends each batch of bodies (length-prefixed) and syncs it; answers `true` once it is durable.
fn write_batches(mut log: File, jobs: &mpsc::Receiver<Job>) {
    let mut buffer = Vec::new();
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        buffer.clear();
        for (body, _) in &batch {
            let length = u32::try_from(body.len()).unwrap_or(u32::MAX);
            buffer.extend_from_slice(&length.to_le_bytes());
            buffer.extend_from_slice(body);
        }
        let stored = log
            .write_all(&buffer)
            .and_then(|()| log.sync_data())
            .is_ok();
        for (_, reply) in batch {
            let _gone = reply.send(stored);
        }
    }
}

async fn accept(body: web::Bytes, writer: web::Data<mpsc::Sender<Job>>) -> HttpResponse {
    let (reply, stored) = oneshot::channel();
    if writer.send((body, reply)).is_err() {
        return HttpResponse::ServiceUnavailable().finish();
    }
    match stored.await {
        Ok(true) => HttpResponse::Accepted().finish(),
        _ => HttpResponse::ServiceUnavailable().finish(),
    }
}

/// Serves until stopped; `args` are what follows the server's name on the command line.
pub async fn serve(args: Vec<String>) -> std::io::Result<()> {
    let mut args = args.into_iter();
    let listen = args.next().unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
    let path = args.next().unwrap_or_else(|| DEFAULT_LOG.to_owned());
    let log = OpenOptions::new().create(true).append(true).open(&path)?;
    let (writer, jobs) = mpsc::channel::<Job>();
    std::thread::Builder::new()
        .name("log-writer".to_owned())
        .spawn(move || write_batches(log, &jobs))?;
    let writer = web::Data::new(writer);
    HttpServer::new(move || {
        App::new()
            .app_data(writer.clone())
            .default_service(web::to(accept))
    })
    .bind(&listen)?
    .run()
    .await
}
