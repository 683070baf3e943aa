//! `LISTEN` on a connection of its own, outside the pool: every enqueue, dead letter retried and
//! route given back with due work `NOTIFY`s the channel in its transaction, so an idle replica
//! hears of new work as soon as it is committed instead of polling. The connection is made again
//! whenever it drops, with a growing pause; each new connection wakes the dispatcher once, since
//! notifications sent while it was away are lost.

use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::AsyncMessage;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::{CHANNEL, Shared};

/// The first pause before connecting again; it doubles up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(250);
const MAX_PAUSE: Duration = Duration::from_secs(10);

/// Listens until the task is aborted (when the outbox is dropped).
pub(super) async fn run(config: tokio_postgres::Config, tls: MakeRustlsConnect, shared: Arc<Shared>) {
    let mut pause = FIRST_PAUSE;
    loop {
        match listen_once(&config, tls.clone(), &shared).await {
            Ok(()) => {
                tracing::warn!("the database connection for LISTEN closed; connecting again");
                pause = FIRST_PAUSE;
            }
            Err(error) => {
                tracing::warn!(
                    "cannot LISTEN for outbox changes, trying again in {}: {error}",
                    humantime::format_duration(pause)
                );
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

/// One connection: `LISTEN`, then wake the dispatcher for every notification until it drops.
async fn listen_once(
    config: &tokio_postgres::Config,
    tls: MakeRustlsConnect,
    shared: &Shared,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(tls).await?;
    let driver = async move {
        while let Some(message) =
            std::future::poll_fn(|context| connection.poll_message(context)).await
        {
            if let AsyncMessage::Notification(_) = message? {
                shared.wake.notify_one();
            }
        }
        Ok(())
    };
    let listen = async {
        client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
        shared.wake.notify_one();
        std::future::pending::<Result<(), tokio_postgres::Error>>().await
    };
    tokio::select! {
        driven = driver => driven,
        listened = listen => listened,
    }
}
