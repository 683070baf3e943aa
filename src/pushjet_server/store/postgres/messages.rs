//! Messages in `pushjet_messages`: stored for a service's subscribers (and announced through the
//! feed), fetched and marked read by a device, and deleted once every subscriber has read them,
//! past `max_unread` or past `message_max_age`.

use std::collections::HashMap;

use deadpool_postgres::GenericClient;

use super::{
    Shared, clean_up, feed, find_service, lock_feed, newest_message_id, service_view, to_i64,
    to_u64, unavailable,
};
use crate::database::SecretParam;
use crate::pushjet::wire::MessageView;
use crate::pushjet::{DeviceUuid, Importance, SecretKey};
use crate::pushjet_server::events::{StoredMessage, new_stream_id};
use crate::pushjet_server::store::{
    NewMessage, SendOutcome, StoreError, StoreLimits, Unread, now, oldest_kept,
};

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
    pub(super) async fn send_message(
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

    pub(super) async fn fetch_unread(&self, device: &DeviceUuid) -> Result<Unread, StoreError> {
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

    pub(super) async fn mark_read_up_to(
        &self,
        marks: &[(DeviceUuid, u64)],
    ) -> Result<(), StoreError> {
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

    pub(super) async fn mark_all_read(&self, device: &DeviceUuid) -> Result<(), StoreError> {
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
}
