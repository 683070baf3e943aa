//! `LISTEN` on a connection of its own, outside the pool: writers `NOTIFY` a channel in their
//! transactions, so an idle replica hears of a change as soon as it is committed instead of
//! polling. The connection is made again whenever it drops, with a growing pause; each new
//! connection wakes the listener once too, since notifications sent while it was away are lost
//! (the listener then catches up from its tables).

use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::AsyncMessage;

use super::Database;

/// The first pause before connecting again; it doubles up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(250);
const MAX_PAUSE: Duration = Duration::from_secs(10);

/// Who is woken by a channel's notifications.
pub(crate) trait Listener: Send + Sync {
    /// A notification arrived, or a new connection started listening (and may have missed some).
    fn wake(&self);
}

/// Listens on `channel` (what it is about named by `about`, for the log) until the task is
/// aborted.
pub(crate) async fn listen(
    database: Database,
    channel: &'static str,
    about: &'static str,
    listener: Arc<dyn Listener>,
) {
    let mut pause = FIRST_PAUSE;
    loop {
        match listen_once(&database, channel, listener.as_ref()).await {
            Ok(()) => {
                tracing::warn!("the database connection for LISTEN closed; connecting again");
                pause = FIRST_PAUSE;
            }
            Err(error) => {
                tracing::warn!(
                    "cannot LISTEN for {about}, trying again in {}: {}",
                    humantime::format_duration(pause),
                    super::reason(&error)
                );
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

/// One connection: `LISTEN`, then wake the listener for every notification until it drops.
async fn listen_once(
    database: &Database,
    channel: &str,
    listener: &dyn Listener,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = database.config.connect(database.tls.clone()).await?;
    let driver = async move {
        while let Some(message) =
            std::future::poll_fn(|context| connection.poll_message(context)).await
        {
            if let AsyncMessage::Notification(_) = message? {
                listener.wake();
            }
        }
        Ok(())
    };
    let listen = async {
        client.batch_execute(&format!("LISTEN {channel}")).await?;
        listener.wake();
        std::future::pending::<Result<(), tokio_postgres::Error>>().await
    };
    tokio::select! {
        driven = driver => driven,
        listened = listen => listened,
    }
}
