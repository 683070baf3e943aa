//! `GET /healthz` (the process is alive and serving) and `GET /readyz` (it can take webhooks: the
//! configuration is loaded, which it is once the server runs, the data directory accepts writes,
//! the outbox does not wait for a restart and its database, when it has one, can be reached). An
//! outbox whose last write failed is ready again as soon as the data directory accepts writes:
//! the next write will say.

use std::path::Path;

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::delivery::Outbox;

/// Answers 200 `ok` while the process serves requests.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body("ok\n")
}

/// Answers 200 when a webhook would be accepted now, 503 with the reason otherwise.
pub async fn readyz(outbox: web::Data<Outbox>) -> HttpResponse {
    match not_ready(&outbox).await {
        None => HttpResponse::Ok().json(json!({ "ready": true })),
        Some(reason) => {
            HttpResponse::ServiceUnavailable().json(json!({ "ready": false, "reason": reason }))
        }
    }
}

/// Why a webhook would not be accepted now; `None` when it would (what `/readyz` and the
/// console's overview say).
pub(crate) async fn not_ready(outbox: &Outbox) -> Option<String> {
    let data_dir = outbox.data_dir().map(Path::to_path_buf);
    let probe = web::block(move || data_dir.map_or(Ok(()), |dir| probe_writable(&dir))).await;
    match probe {
        Ok(Ok(())) => outbox.problem(),
        Ok(Err(error)) => Some(format!("the data directory is not writable: {error}")),
        Err(error) => Some(format!("the readiness probe did not run: {error}")),
    }
}

/// Writes, syncs and removes a small file in the data directory.
fn probe_writable(data_dir: &Path) -> std::io::Result<()> {
    use std::io::Write;
    let path = data_dir.join(".readyz-probe");
    let mut file = std::fs::File::create(&path)?;
    file.write_all(b"ok")?;
    file.sync_all()?;
    std::fs::remove_file(path)
}
