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

mod direct;
mod feed;
mod routes;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;

use deadpool_postgres::{GenericClient, Pool, Transaction};
use tokio::task::AbortHandle;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::backend::{Answer, StoreBackend};
use super::{
    DemoKeys, NewMessage, SendOutcome, StoreError, StoreLimits, StoreOptions, Unread, now,
    oldest_kept,
};
use crate::config::DatabaseUrl;
use crate::database::{self, SecretParam};
use crate::pushjet::wire::{MessageView, ServiceView, SubscriptionView};
use crate::pushjet::{DeviceUuid, Importance, PublicKey, SecretKey};
use crate::pushjet_server::events::{StoredMessage, new_stream_id};
use crate::pushjet_server::fields::{Icon, ServiceName};

/// The advisory lock of the stream feed and the message ids (`pg_advisory_xact_lock`):
/// "pjstream" in ASCII.
const FEED_LOCK: i64 = 0x706a_7374_7265_616d;
/// Connections kept open per replica.
const POOL_SIZE: usize = 16;
/// The demo route's row in `pushjet_demo`.
const DEMO_ROW: &str = "demo";

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

/// Deletes the service's oldest messages beyond `max_unread` and those older than
/// `message_max_age`.
async fn prune(
    client: &impl GenericClient,
    public: &str,
    limits: &StoreLimits,
) -> Result<(), StoreError> {
    client
        .execute(
            "DELETE FROM pushjet_messages WHERE public = $1 AND (at < $2 OR id IN ( \
                 SELECT id FROM pushjet_messages WHERE public = $1 ORDER BY id DESC OFFSET $3))",
            &[
                &public,
                &oldest_kept(limits),
                &i64::try_from(limits.max_unread).unwrap_or(i64::MAX),
            ],
        )
        .await
        .map_err(unavailable)?;
    Ok(())
}

impl Shared {
    async fn create_service(
        &self,
        name: &ServiceName,
        icon: &Icon,
    ) -> Result<ServiceView, StoreError> {
        let secret = SecretKey::generate().map_err(StoreError::Randomness)?;
        let public = secret.public_key();
        let created = now();
        let client = self.pool.get().await.map_err(unavailable)?;
        client
            .execute(
                "INSERT INTO pushjet_services (secret, public, name, icon, created) \
                 VALUES ($1, $2, $3, $4, $5)",
                &[
                    &SecretParam(secret.expose()),
                    &public.as_str(),
                    &name.as_str(),
                    &icon.as_str(),
                    &created,
                ],
            )
            .await
            .map_err(unavailable)?;
        tracing::info!(service = %public, "created Pushjet service");
        Ok(ServiceView {
            created,
            icon: icon.as_str().to_owned(),
            name: name.as_str().to_owned(),
            public,
            secret: Some(secret),
        })
    }

    async fn service_where(
        &self,
        column: &str,
        key: &(dyn ToSql + Sync),
    ) -> Result<Option<ServiceView>, StoreError> {
        let client = self.pool.get().await.map_err(unavailable)?;
        find_service(&client, &format!("{column} = $1"), key).await
    }

    async fn subscriber_count(&self, public: &PublicKey) -> Result<usize, StoreError> {
        let client = self.pool.get().await.map_err(unavailable)?;
        let row = client
            .query_one(
                "SELECT count(*) FROM pushjet_subscriptions WHERE public = $1",
                &[&public.as_str()],
            )
            .await
            .map_err(unavailable)?;
        Ok(usize::try_from(row.get::<_, i64>(0)).unwrap_or(0))
    }

    async fn update_service(
        &self,
        secret: &SecretKey,
        name: Option<&ServiceName>,
        icon: Option<&Icon>,
    ) -> Result<(), StoreError> {
        let client = self.pool.get().await.map_err(unavailable)?;
        let row = client
            .query_opt(
                "UPDATE pushjet_services SET name = coalesce($2, name), icon = coalesce($3, icon) \
                 WHERE secret = $1 RETURNING public",
                &[
                    &SecretParam(secret.expose()),
                    &name.map(ServiceName::as_str),
                    &icon.map(Icon::as_str),
                ],
            )
            .await
            .map_err(unavailable)?
            .ok_or(StoreError::ServiceNotFound)?;
        tracing::info!(service = %row.get::<_, &str>(0), "updated Pushjet service");
        Ok(())
    }

    async fn delete_service(&self, secret: &SecretKey) -> Result<(), StoreError> {
        let mut client = self.pool.get().await.map_err(unavailable)?;
        let txn = client.transaction().await.map_err(unavailable)?;
        lock_feed(&txn, false).await?;
        let service = find_service(
            &txn,
            "secret = $1 FOR UPDATE",
            &SecretParam(secret.expose()),
        )
        .await?
        .ok_or(StoreError::ServiceNotFound)?;
        let public = service.public.as_str();
        let removed = txn
            .query(
                "WITH gone AS (DELETE FROM pushjet_subscriptions WHERE public = $1 \
                     RETURNING device, subscribed, checked) \
                 SELECT device, subscribed, checked FROM gone ORDER BY device",
                &[&public],
            )
            .await
            .map_err(unavailable)?;
        txn.execute("DELETE FROM pushjet_messages WHERE public = $1", &[&public])
            .await
            .map_err(unavailable)?;
        txn.execute(
            "DELETE FROM pushjet_services WHERE secret = $1",
            &[&SecretParam(secret.expose())],
        )
        .await
        .map_err(unavailable)?;
        for row in &removed {
            if let Ok(uuid) = DeviceUuid::parse(row.get(0)) {
                let subscription = SubscriptionView {
                    service: service.clone(),
                    timestamp: row.get(1),
                    timestamp_checked: row.get(2),
                    uuid,
                };
                feed::announce_subscription(&txn, &subscription).await?;
            }
        }
        txn.commit().await.map_err(unavailable)?;
        tracing::info!(
            service = %service.public,
            subscriptions = removed.len(),
            "deleted Pushjet service"
        );
        Ok(())
    }

    async fn send_message(
        &self,
        secret: &SecretKey,
        message: &NewMessage,
    ) -> Result<SendOutcome, StoreError> {
        let mut client = self.pool.get().await.map_err(unavailable)?;
        let txn = client.transaction().await.map_err(unavailable)?;
        lock_feed(&txn, false).await?;
        let service = find_service(&txn, "secret = $1", &SecretParam(secret.expose()))
            .await?
            .ok_or(StoreError::ServiceNotFound)?;
        let public = service.public.as_str();
        let devices: Vec<DeviceUuid> = txn
            .query(
                "SELECT device FROM pushjet_subscriptions WHERE public = $1 ORDER BY device",
                &[&public],
            )
            .await
            .map_err(unavailable)?
            .iter()
            .filter_map(|row| DeviceUuid::parse(row.get(0)).ok())
            .collect();
        if devices.is_empty() {
            return Ok(SendOutcome::NoSubscribers);
        }
        let timestamp = now();
        let level = i16::from(message.level.get());
        let id: i64 = txn
            .query_one(
                "INSERT INTO pushjet_messages (id, public, text, title, link, level, at) \
                 VALUES (nextval('pushjet_message_ids'), $1, $2, $3, $4, $5, $6) RETURNING id",
                &[
                    &public,
                    &message.text.as_str(),
                    &message.title.as_str(),
                    &message.link.as_str(),
                    &level,
                    &timestamp,
                ],
            )
            .await
            .map_err(unavailable)?
            .get(0);
        clean_up(&txn, &[public.to_owned()]).await?;
        prune(&txn, public, &self.limits).await?;
        let subscribers = devices.len();
        let stored = StoredMessage {
            id: to_u64(id),
            stream_id: new_stream_id(),
            devices,
            message: MessageView {
                level: message.level,
                link: message.link.as_str().to_owned(),
                message: message.text.as_str().to_owned(),
                service: service.clone(),
                timestamp,
                title: message.title.as_str().to_owned(),
            },
        };
        feed::announce_message(&txn, &stored).await?;
        txn.commit().await.map_err(unavailable)?;
        tracing::debug!(service = %service.public, id, subscribers, "stored Pushjet message");
        Ok(SendOutcome::Stored)
    }

    async fn fetch_unread(&self, device: &DeviceUuid) -> Result<Unread, StoreError> {
        let mut client = self.pool.get().await.map_err(unavailable)?;
        let txn = client.transaction().await.map_err(unavailable)?;
        lock_feed(&txn, true).await?;
        let watermark = to_u64(newest_message_id(&txn).await?);
        let mine = txn
            .query(
                "SELECT s.public, v.name, v.icon, v.created \
                 FROM pushjet_subscriptions s JOIN pushjet_services v USING (public) \
                 WHERE s.device = $1 ORDER BY s.ord FOR UPDATE OF s",
                &[&device.as_str()],
            )
            .await
            .map_err(unavailable)?;
        if mine.is_empty() {
            return Ok(Unread {
                messages: Vec::new(),
                watermark,
            });
        }
        let views = mine
            .iter()
            .map(|row| service_view(row, 0))
            .collect::<Result<Vec<_>, _>>()?;
        let publics: Vec<String> = mine.iter().map(|row| row.get(0)).collect();
        let position: HashMap<&str, usize> = publics
            .iter()
            .enumerate()
            .map(|(index, public)| (public.as_str(), index))
            .collect();
        // Every unread message, oldest first.
        let unread = txn
            .query(
                "SELECT m.id, m.public, m.text, m.title, m.link, m.level, m.at \
                 FROM pushjet_messages m JOIN pushjet_subscriptions s ON s.public = m.public \
                 WHERE s.device = $1 AND m.id > s.last_read ORDER BY m.id",
                &[&device.as_str()],
            )
            .await
            .map_err(unavailable)?;
        let dropped = unread.len().saturating_sub(self.limits.max_unread);
        let oldest_kept = oldest_kept(&self.limits);
        let mut consumed = vec![0i64; publics.len()];
        let mut chosen = Vec::new();
        let mut bytes = 0usize;
        for (rank, row) in unread.iter().enumerate() {
            let id: i64 = row.get(0);
            let Some(&at) = position.get(row.get::<_, &str>(1)) else {
                continue;
            };
            let (text, title, link): (String, String, String) =
                (row.get(2), row.get(3), row.get(4));
            let timestamp: i64 = row.get(6);
            if rank < dropped || timestamp < oldest_kept {
                consumed[at] = id;
                continue;
            }
            let size = text.len() + title.len() + link.len();
            if !chosen.is_empty() && bytes.saturating_add(size) > self.limits.max_fetch_bytes {
                break;
            }
            bytes = bytes.saturating_add(size);
            consumed[at] = id;
            let level = u8::try_from(row.get::<_, i16>(5))
                .ok()
                .and_then(|level| Importance::new(level).ok())
                .unwrap_or(Importance::DEFAULT);
            chosen.push((
                at,
                to_u64(id),
                MessageView {
                    level,
                    link,
                    message: text,
                    service: views[at].clone(),
                    timestamp,
                    title,
                },
            ));
        }
        txn.execute(
            "UPDATE pushjet_subscriptions s SET checked = $2, \
                 last_read = greatest(s.last_read, u.last) \
             FROM unnest($3::text[], $4::bigint[]) AS u(public, last) \
             WHERE s.device = $1 AND s.public = u.public",
            &[&device.as_str(), &now(), &publics, &consumed],
        )
        .await
        .map_err(unavailable)?;
        clean_up(&txn, &publics).await?;
        txn.commit().await.map_err(unavailable)?;
        chosen.sort_unstable_by_key(|(at, id, _)| (*at, *id));
        Ok(Unread {
            messages: chosen.into_iter().map(|(_, id, view)| (id, view)).collect(),
            watermark,
        })
    }

    async fn mark_read_up_to(&self, marks: &[(DeviceUuid, u64)]) -> Result<(), StoreError> {
        let mut sorted = marks.to_vec();
        sorted.sort_unstable();
        let devices: Vec<&str> = sorted.iter().map(|(device, _)| device.as_str()).collect();
        let lasts: Vec<i64> = sorted.iter().map(|(_, last)| to_i64(*last)).collect();
        let mut client = self.pool.get().await.map_err(unavailable)?;
        let txn = client.transaction().await.map_err(unavailable)?;
        let read = txn
            .query(
                "UPDATE pushjet_subscriptions s SET checked = $1, last_read = u.last \
                 FROM unnest($2::text[], $3::bigint[]) AS u(device, last) \
                 WHERE s.device = u.device AND s.last_read < u.last RETURNING s.public",
                &[&now(), &devices, &lasts],
            )
            .await
            .map_err(unavailable)?;
        let mut publics: Vec<String> = read.iter().map(|row| row.get(0)).collect();
        publics.sort_unstable();
        publics.dedup();
        clean_up(&txn, &publics).await?;
        txn.commit().await.map_err(unavailable)
    }

    async fn mark_all_read(&self, device: &DeviceUuid) -> Result<(), StoreError> {
        let mut client = self.pool.get().await.map_err(unavailable)?;
        let txn = client.transaction().await.map_err(unavailable)?;
        lock_feed(&txn, true).await?;
        let newest = newest_message_id(&txn).await?;
        let read = txn
            .query(
                "UPDATE pushjet_subscriptions SET checked = $2, last_read = $3 \
                 WHERE device = $1 RETURNING public",
                &[&device.as_str(), &now(), &newest],
            )
            .await
            .map_err(unavailable)?;
        let publics: Vec<String> = read.iter().map(|row| row.get(0)).collect();
        clean_up(&txn, &publics).await?;
        txn.commit().await.map_err(unavailable)
    }

    async fn subscribe(
        &self,
        device: &DeviceUuid,
        public: &PublicKey,
    ) -> Result<ServiceView, StoreError> {
        let mut client = self.pool.get().await.map_err(unavailable)?;
        let txn = client.transaction().await.map_err(unavailable)?;
        lock_feed(&txn, false).await?;
        let service = find_service(&txn, "public = $1", &public.as_str())
            .await?
            .ok_or(StoreError::ServiceNotFound)?;
        let newest = newest_message_id(&txn).await?;
        let subscribed = now();
        let inserted = txn
            .query_opt(
                "INSERT INTO pushjet_subscriptions (device, public, subscribed, checked, last_read) \
                 VALUES ($1, $2, $3, $3, $4) ON CONFLICT (device, public) DO NOTHING \
                 RETURNING ord",
                &[&device.as_str(), &public.as_str(), &subscribed, &newest],
            )
            .await
            .map_err(unavailable)?;
        if inserted.is_none() {
            return Err(StoreError::AlreadySubscribed);
        }
        let subscription = SubscriptionView {
            service: service.clone(),
            timestamp: subscribed,
            timestamp_checked: subscribed,
            uuid: device.clone(),
        };
        feed::announce_subscription(&txn, &subscription).await?;
        txn.commit().await.map_err(unavailable)?;
        tracing::info!(service = %public, device = %device, "subscribed device");
        Ok(service)
    }

    async fn subscriptions(
        &self,
        device: &DeviceUuid,
    ) -> Result<Vec<SubscriptionView>, StoreError> {
        let client = self.pool.get().await.map_err(unavailable)?;
        let rows = client
            .query(
                "SELECT v.public, v.name, v.icon, v.created, s.subscribed, s.checked \
                 FROM pushjet_subscriptions s JOIN pushjet_services v USING (public) \
                 WHERE s.device = $1 ORDER BY s.ord",
                &[&device.as_str()],
            )
            .await
            .map_err(unavailable)?;
        rows.iter()
            .map(|row| {
                Ok(SubscriptionView {
                    service: service_view(row, 0)?,
                    timestamp: row.get(4),
                    timestamp_checked: row.get(5),
                    uuid: device.clone(),
                })
            })
            .collect()
    }

    async fn unsubscribe(&self, device: &DeviceUuid, public: &PublicKey) -> Result<(), StoreError> {
        let mut client = self.pool.get().await.map_err(unavailable)?;
        let txn = client.transaction().await.map_err(unavailable)?;
        lock_feed(&txn, false).await?;
        let exists = txn
            .query_opt(
                "SELECT 1 FROM pushjet_services WHERE public = $1",
                &[&public.as_str()],
            )
            .await
            .map_err(unavailable)?;
        if exists.is_none() {
            return Err(StoreError::ServiceNotFound);
        }
        let removed = txn
            .execute(
                "DELETE FROM pushjet_subscriptions WHERE device = $1 AND public = $2",
                &[&device.as_str(), &public.as_str()],
            )
            .await
            .map_err(unavailable)?;
        if removed == 0 {
            return Err(StoreError::NotSubscribed);
        }
        clean_up(&txn, &[public.as_str().to_owned()]).await?;
        txn.commit().await.map_err(unavailable)?;
        tracing::info!(service = %public, device = %device, "unsubscribed device");
        Ok(())
    }

    async fn demo(&self) -> Result<Option<DemoKeys>, StoreError> {
        let client = self.pool.get().await.map_err(unavailable)?;
        let row = client
            .query_opt(
                "SELECT secret, device FROM pushjet_demo WHERE name = $1",
                &[&DEMO_ROW],
            )
            .await
            .map_err(unavailable)?;
        row.map(|row| {
            let secret = SecretKey::parse(row.get(0))
                .map_err(|_| StoreError::Malformed("demo route secret"))?;
            let device = DeviceUuid::parse(row.get(1))
                .map_err(|_| StoreError::Malformed("demo route device"))?;
            Ok(DemoKeys { secret, device })
        })
        .transpose()
    }

    /// Inserts the row if there is none, or replaces it if it still holds `previous`; then
    /// reads what is there (another replica's keys when it was first).
    async fn keep_demo(
        &self,
        previous: Option<&SecretKey>,
        keys: &DemoKeys,
    ) -> Result<DemoKeys, StoreError> {
        let client = self.pool.get().await.map_err(unavailable)?;
        let (secret, device) = (SecretParam(keys.secret.expose()), keys.device.as_str());
        match previous {
            None => {
                client
                    .execute(
                        "INSERT INTO pushjet_demo (name, secret, device) VALUES ($1, $2, $3) \
                         ON CONFLICT (name) DO NOTHING",
                        &[&DEMO_ROW, &secret, &device],
                    )
                    .await
            }
            Some(previous) => {
                client
                    .execute(
                        "UPDATE pushjet_demo SET secret = $2, device = $3 \
                         WHERE name = $1 AND secret = $4",
                        &[&DEMO_ROW, &secret, &device, &SecretParam(previous.expose())],
                    )
                    .await
            }
        }
        .map_err(unavailable)?;
        drop(client);
        self.demo()
            .await?
            .ok_or(StoreError::Malformed("demo route row (deleted meanwhile)"))
    }
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
