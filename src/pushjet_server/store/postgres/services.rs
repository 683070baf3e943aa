//! Services (created, looked up, renamed, deleted) and the devices' subscriptions to them in the
//! `pushjet_services` and `pushjet_subscriptions` tables; a subscription made, and those a
//! service's deletion removes, are announced through the feed.

use tokio_postgres::types::ToSql;

use super::{
    Shared, clean_up, feed, find_service, lock_feed, newest_message_id, service_view, unavailable,
};
use crate::database::SecretParam;
use crate::pushjet::wire::{ServiceView, SubscriptionView};
use crate::pushjet::{DeviceUuid, PublicKey, SecretKey};
use crate::pushjet_server::fields::{Icon, ServiceName};
use crate::pushjet_server::store::{StoreError, now};

impl Shared {
    pub(super) async fn create_service(
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

    pub(super) async fn service_where(
        &self,
        column: &str,
        key: &(dyn ToSql + Sync),
    ) -> Result<Option<ServiceView>, StoreError> {
        let client = self.pool.get().await.map_err(unavailable)?;
        find_service(&client, &format!("{column} = $1"), key).await
    }

    pub(super) async fn subscriber_count(&self, public: &PublicKey) -> Result<usize, StoreError> {
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

    pub(super) async fn update_service(
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

    pub(super) async fn delete_service(&self, secret: &SecretKey) -> Result<(), StoreError> {
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

    pub(super) async fn subscribe(
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

    pub(super) async fn subscriptions(
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

    pub(super) async fn unsubscribe(
        &self,
        device: &DeviceUuid,
        public: &PublicKey,
    ) -> Result<(), StoreError> {
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
}
