//! The releaser: a task that turns due held notifications into digests, as often as they fall
//! due (at least every second, since another replica may have held some).

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::delivery::Outbox;
use crate::metrics::{Metrics, route_label};

/// The longest the releaser sleeps between passes.
const MAX_SLEEP: Duration = Duration::from_secs(1);
/// How long it waits after the outbox failed it.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(5);

/// Starts the releaser on the current runtime; digests are cut to `max_message_bytes`. Abort
/// the handle to stop it (a pass cut short leaves the held notifications for the next start).
pub fn spawn_releaser(
    outbox: Outbox,
    metrics: Arc<Metrics>,
    max_message_bytes: usize,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let sleep = match outbox.release_held(max_message_bytes).await {
                Ok(released) => {
                    for digest in &released.digests {
                        tracing::info!(
                            route = %digest.route,
                            held = digest.count,
                            id = digest.id,
                            "digest of held notifications queued"
                        );
                        metrics
                            .notifications_digested
                            .get_or_create(&route_label(digest.route.as_str()))
                            .inc_by(digest.count);
                    }
                    let now = outbox.now();
                    released
                        .next_release
                        .map_or(MAX_SLEEP, |next| {
                            Duration::from_millis(next.saturating_sub(now))
                        })
                        .min(MAX_SLEEP)
                }
                Err(error) => {
                    tracing::warn!("held notifications could not be released yet: {error}");
                    RETRY_AFTER_FAILURE
                }
            };
            tokio::time::sleep(sleep).await;
        }
    })
}
