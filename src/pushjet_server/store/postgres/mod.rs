//! The store in the PostgreSQL database of `PUSHJET_BRIDGE_DATABASE_URL`, shared by any number of
//! replicas (`pushjet_*` tables, `database/migrations/0002_pushjet.sql`). It behaves as the redb
//! file does (the same tests run on both), with these means:
//!
//! - **One transaction per change**, with `FOR UPDATE` on a device's subscriptions while its
//!   messages are read and marked, so two replicas never hand the same unread message out twice.
//! - **Message ids commit in id order.** Every change that announces something (a send, a
//!   subscription made or removed, a service deleted) first takes the feed's advisory lock
//!   ([`FEED_LOCK`], until its commit), then its ids. Readers of "the newest message id" (a
//!   fetch's [`Unread::watermark`], marking everything read) take the lock shared, so every id
//!   up to the one they read is committed and visible to them.
//! - **Announcements through the database** (`feed.rs`): each change writes its announcement to
//!   `pushjet_stream_events` and `NOTIFY`s in its transaction; every replica's listener reads the
//!   feed in id order and hands each announcement to its [`StoreEvents`] once.
//! - **No size ceiling**: [`super::StoreLimits::max_disk_bytes`] is the redb file's; here the
//!   database's own quotas apply.
//! - **Secrets stay out of the logs**: the database client logs query parameters at DEBUG, so a
//!   service's secret is passed as a [`SecretParam`], which shows as `<secret>`.
//! - **Database trouble**: every operation asks the pool for a connection (made again when one
//!   drops), all of it bounded by `PUSHJET_BRIDGE_DATABASE_TIMEOUT`; when the server cannot be
//!   reached or does not answer in time (hung, not down) it answers [`StoreError::Unavailable`]
//!   (a 503), and works again by itself once the server does. The feed's reader is not bounded:
//!   it waits for a hung server and goes on where it was.

mod demo;
mod direct;
mod feed;
mod messages;
mod routes;
mod services;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use deadpool_postgres::{GenericClient, Pool, Transaction};
use tokio::task::AbortHandle;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::backend::{Answer, StoreBackend};
use super::{
    DemoKeys, NewMessage, SendOutcome, StoreError, StoreLimits, StoreOptions, Unread, now,
};
use crate::config::DatabaseUrl;
use crate::database::{self, SecretParam};
use crate::pushjet::wire::{MessageView, ServiceView, SubscriptionView};
use crate::pushjet::{DeviceUuid, PublicKey, SecretKey};
use crate::pushjet_server::fields::{Icon, ServiceName};

/// The advisory lock of the stream feed and the message ids (`pg_advisory_xact_lock`):
/// "pjstream" in ASCII.
const FEED_LOCK: i64 = 0x706a_7374_7265_616d;
/// Connections kept open per replica.
const POOL_SIZE: usize = 16;

/// The store kept in PostgreSQL. Dropping it stops its background tasks.
#[derive(Debug)]
pub(super) struct PostgresStore {
    shared: Arc<Shared>,
    background: Vec<AbortHandle>,
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        for task in &self.background {
            task.abort();
        }
    }
}

/// What the handle's futures share.
#[derive(Debug)]
struct Shared {
    pool: Pool,
    limits: StoreLimits,
    /// The longest any operation may wait on the database.
    timeout: std::time::Duration,
}

impl PostgresStore {
    /// Connects, brings the schema up to date and, when someone listens for announcements,
    /// fills the listener with the feed's recent messages and starts reading the feed.
    pub(super) async fn connect(
        url: &DatabaseUrl,
        options: StoreOptions,
    ) -> Result<Self, StoreError> {
        let database = database::connect(url, POOL_SIZE).await?;
        let shared = Arc::new(Shared {
            pool: database.pool.clone(),
            limits: options.limits,
            timeout: database.timeout,
        });
        let mut background = vec![
            tokio::spawn(feed::prune_forever(
                database.pool.clone(),
                options.stream_cache,
            ))
            .abort_handle(),
        ];
        if let Some(events) = options.events {
            background.extend(
                feed::start(
                    database,
                    events,
                    options.stream_cache,
                    options.stream_cache_bytes,
                )
                .await?,
            );
        }
        tracing::info!(
            database = %url.redacted(),
            "the embedded Pushjet API is kept in PostgreSQL"
        );
        Ok(Self { shared, background })
    }

    /// Runs `work` on the shared state in a future of its own, for at most the database
    /// timeout (`PUSHJET_BRIDGE_DATABASE_TIMEOUT`): a server that does not answer by then is
    /// unavailable.
    fn run<T, F>(&self, work: impl FnOnce(Arc<Shared>) -> F) -> Answer<T>
    where
        F: std::future::Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        let timeout = self.shared.timeout;
        let work = work(self.shared.clone());
        Box::pin(async move {
            database::within(timeout, work)
                .await
                .unwrap_or_else(|error| Err(StoreError::from(error)))
        })
    }
}

/// A database failure, as the caller sees it.
fn unavailable(error: impl std::error::Error + 'static) -> StoreError {
    StoreError::Unavailable(database::reason(&error))
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// A service's public view from a row's `public, name, icon, created` at `at`.
fn service_view(row: &Row, at: usize) -> Result<ServiceView, StoreError> {
    Ok(ServiceView {
        public: PublicKey::parse(row.get(at)).map_err(|_| StoreError::Malformed("public key"))?,
        name: row.get(at + 1),
        icon: row.get(at + 2),
        created: row.get(at + 3),
        secret: None,
    })
}

const SERVICE_COLUMNS: &str = "public, name, icon, created";

/// The service `WHERE {filter}` (with `$1` the key, and anything after, such as `FOR UPDATE`),
/// if any.
async fn find_service(
    client: &impl GenericClient,
    filter: &str,
    key: &(dyn ToSql + Sync),
) -> Result<Option<ServiceView>, StoreError> {
    let row = client
        .query_opt(
            &format!("SELECT {SERVICE_COLUMNS} FROM pushjet_services WHERE {filter}"),
            &[key],
        )
        .await
        .map_err(unavailable)?;
    row.map(|row| service_view(&row, 0)).transpose()
}

/// Takes the feed's lock: `shared` for readers of the newest message id.
async fn lock_feed(txn: &Transaction<'_>, shared: bool) -> Result<(), StoreError> {
    let sql = if shared {
        "SELECT pg_advisory_xact_lock_shared($1)"
    } else {
        "SELECT pg_advisory_xact_lock($1)"
    };
    txn.execute(sql, &[&FEED_LOCK]).await.map_err(unavailable)?;
    Ok(())
}

/// The newest message id handed out (all of them committed under the feed's lock).
async fn newest_message_id(client: &impl GenericClient) -> Result<i64, StoreError> {
    let row = client
        .query_one(
            "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM pushjet_message_ids",
            &[],
        )
        .await
        .map_err(unavailable)?;
    Ok(row.get(0))
}

/// Deletes the services' messages that every subscriber has read (all of them when nobody is
/// subscribed any more).
async fn clean_up(client: &impl GenericClient, publics: &[String]) -> Result<(), StoreError> {
    client
        .execute(
            "DELETE FROM pushjet_messages m USING ( \
                 SELECT p.public, (SELECT min(s.last_read) FROM pushjet_subscriptions s \
                                   WHERE s.public = p.public) AS everyone \
                 FROM unnest($1::text[]) AS p(public)) c \
             WHERE m.public = c.public AND (c.everyone IS NULL OR m.id <= c.everyone)",
            &[&publics],
        )
        .await
        .map_err(unavailable)?;
    Ok(())
}

impl StoreBackend for PostgresStore {
    fn create_service(&self, name: ServiceName, icon: Icon) -> Answer<ServiceView> {
        self.run(|shared| async move { shared.create_service(&name, &icon).await })
    }

    fn service_by_secret(&self, secret: SecretKey) -> Answer<Option<ServiceView>> {
        self.run(|shared| async move {
            shared
                .service_where("secret", &SecretParam(secret.expose()))
                .await
        })
    }

    fn service_by_public(&self, public: PublicKey) -> Answer<Option<ServiceView>> {
        self.run(|shared| async move { shared.service_where("public", &public.as_str()).await })
    }

    fn subscriber_count(&self, public: PublicKey) -> Answer<usize> {
        self.run(|shared| async move { shared.subscriber_count(&public).await })
    }

    fn update_service(
        &self,
        secret: SecretKey,
        name: Option<ServiceName>,
        icon: Option<Icon>,
    ) -> Answer<()> {
        self.run(|shared| async move {
            shared
                .update_service(&secret, name.as_ref(), icon.as_ref())
                .await
        })
    }

    fn delete_service(&self, secret: SecretKey) -> Answer<()> {
        self.run(|shared| async move { shared.delete_service(&secret).await })
    }

    fn send_message(&self, secret: SecretKey, message: NewMessage) -> Answer<SendOutcome> {
        self.run(|shared| async move { shared.send_message(&secret, &message).await })
    }

    fn fetch_unread(&self, device: DeviceUuid) -> Answer<Unread> {
        self.run(|shared| async move { shared.fetch_unread(&device).await })
    }

    fn mark_read_up_to(&self, marks: Vec<(DeviceUuid, u64)>) -> Answer<()> {
        self.run(|shared| async move { shared.mark_read_up_to(&marks).await })
    }

    fn mark_all_read(&self, device: DeviceUuid) -> Answer<()> {
        self.run(|shared| async move { shared.mark_all_read(&device).await })
    }

    fn subscribe(&self, device: DeviceUuid, public: PublicKey) -> Answer<ServiceView> {
        self.run(|shared| async move { shared.subscribe(&device, &public).await })
    }

    fn subscriptions(&self, device: DeviceUuid) -> Answer<Vec<SubscriptionView>> {
        self.run(|shared| async move { shared.subscriptions(&device).await })
    }

    fn unsubscribe(&self, device: DeviceUuid, public: PublicKey) -> Answer<()> {
        self.run(|shared| async move { shared.unsubscribe(&device, &public).await })
    }

    fn demo(&self) -> Answer<Option<DemoKeys>> {
        self.run(|shared| async move { shared.demo().await })
    }

    fn announce_routes(&self, delivered: Vec<(String, MessageView)>) -> Answer<()> {
        self.run(|shared| async move { shared.announce_routes(delivered).await })
    }

    fn direct_service(&self, device: DeviceUuid) -> Answer<Option<SecretKey>> {
        self.run(|shared| async move { shared.direct_service(&device).await })
    }

    fn keep_direct_service(
        &self,
        device: DeviceUuid,
        previous: Option<SecretKey>,
        secret: SecretKey,
    ) -> Answer<SecretKey> {
        self.run(|shared| async move {
            shared
                .keep_direct_service(&device, previous.as_ref(), &secret)
                .await
        })
    }

    fn keep_demo(&self, previous: Option<SecretKey>, keys: DemoKeys) -> Answer<DemoKeys> {
        self.run(|shared| async move { shared.keep_demo(previous.as_ref(), &keys).await })
    }

    #[cfg(test)]
    fn stored_messages(&self) -> Answer<(u64, u64)> {
        self.run(|shared| async move {
            let client = shared.pool.get().await.map_err(unavailable)?;
            let row = client
                .query_one("SELECT count(*) FROM pushjet_messages", &[])
                .await
                .map_err(unavailable)?;
            let count = to_u64(row.get(0));
            Ok((count, count))
        })
    }
}
