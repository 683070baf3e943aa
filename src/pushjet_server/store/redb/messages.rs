//! Messages in the redb file: stored for a service's subscribers, fetched and marked read by a
//! device, and deleted once every subscriber has read them, past `max_unread` or past
//! `message_max_age`.

use redb::{ReadableTable, WriteTransaction};

use super::services::{load_service, load_service_by_public, subscribers_of, subscriptions_of};
use super::{
    LAST_MESSAGE_ID, MESSAGES, META, MessageRecord, RedbFile, SERVICE_MESSAGES, SERVICE_SECRETS,
    SERVICES, SUBSCRIBERS, SUBSCRIPTIONS, SubscriptionRecord, decode, encode, read_counter,
    stream_cache,
};
use crate::pushjet::wire::MessageView;
use crate::pushjet::{DeviceUuid, SecretKey};
use crate::pushjet_server::events::{StoredMessage, new_stream_id};
use crate::pushjet_server::store::{
    NewMessage, SendOutcome, StoreError, StoreLimits, Unread, now, oldest_kept,
};

impl RedbFile {
    /// Stores a message for the service's current subscribers, then deletes the service's
    /// messages that every subscriber has read. Stores nothing when nobody is subscribed.
    pub(super) fn send_message(
        &self,
        secret: &SecretKey,
        message: &NewMessage,
    ) -> Result<SendOutcome, StoreError> {
        self.check_space()?;
        let _in_order = self.announce_in_order();
        let txn = self.db.begin_write()?;
        let stored = {
            let services = txn.open_table(SERVICES)?;
            let service =
                load_service(&services, secret.expose())?.ok_or(StoreError::ServiceNotFound)?;
            let public = service.public.as_str();
            let subscribers = subscribers_of(&txn.open_table(SUBSCRIBERS)?, public)?;
            if subscribers.is_empty() {
                return Ok(SendOutcome::NoSubscribers);
            }
            let mut meta = txn.open_table(META)?;
            let id = read_counter(&meta, LAST_MESSAGE_ID)?.saturating_add(1);
            meta.insert(LAST_MESSAGE_ID, id)?;
            let record = MessageRecord {
                service: service.public.clone(),
                message: message.text.as_str().to_owned(),
                title: message.title.as_str().to_owned(),
                link: message.link.as_str().to_owned(),
                level: message.level,
                timestamp: now(),
            };
            txn.open_table(MESSAGES)?
                .insert(id, encode(&record)?.as_slice())?;
            txn.open_table(SERVICE_MESSAGES)?.insert((public, id), ())?;
            clean_up(&txn, public)?;
            prune(&txn, public, &self.limits)?;
            tracing::debug!(
                service = %service.public,
                id,
                subscribers = subscribers.len(),
                "stored Pushjet message"
            );
            StoredMessage {
                id,
                stream_id: new_stream_id(),
                devices: subscribers
                    .iter()
                    .filter_map(|device| DeviceUuid::parse(device).ok())
                    .collect(),
                message: MessageView {
                    level: record.level,
                    link: record.link,
                    message: record.message,
                    service: service.public_view(),
                    timestamp: record.timestamp,
                    title: record.title,
                },
            }
        };
        if self.events.is_some() {
            stream_cache::keep(
                &txn,
                stream_cache::CachedRef::Message(&stored),
                self.stream_cache,
            )?;
        }
        txn.commit()?;
        if let Some(events) = &self.events {
            events.message_stored(stored);
        }
        Ok(SendOutcome::Stored)
    }

    /// [`crate::pushjet_server::Store::fetch_unread`].
    pub(super) fn fetch_unread(&self, device: &DeviceUuid) -> Result<Unread, StoreError> {
        let txn = self.db.begin_write()?;
        let watermark = read_counter(&txn.open_table(META)?, LAST_MESSAGE_ID)?;
        let messages = {
            let mut subscriptions = txn.open_table(SUBSCRIPTIONS)?;
            let mine = subscriptions_of(&subscriptions, device.as_str())?;
            if mine.is_empty() {
                return Ok(Unread {
                    messages: Vec::new(),
                    watermark,
                });
            }
            let services_read: Vec<String> =
                mine.iter().map(|(public, _)| public.clone()).collect();
            let index = txn.open_table(SERVICE_MESSAGES)?;
            // Every unread message as (id, subscription position), oldest first.
            let mut unread = Vec::new();
            for (position, (public, subscription)) in mine.iter().enumerate() {
                let after = subscription.last_read.saturating_add(1);
                for entry in index.range((public.as_str(), after)..=(public.as_str(), u64::MAX))? {
                    unread.push((entry?.0.value().1, position));
                }
            }
            drop(index);
            unread.sort_unstable();
            let dropped = unread.len().saturating_sub(self.limits.max_unread);
            let oldest_kept = oldest_kept(&self.limits);
            let secrets = txn.open_table(SERVICE_SECRETS)?;
            let services = txn.open_table(SERVICES)?;
            let stored = txn.open_table(MESSAGES)?;
            let mut views = vec![None; mine.len()];
            let mut consumed = vec![0u64; mine.len()];
            let mut chosen = Vec::new();
            let mut bytes = 0usize;
            for (rank, (id, position)) in unread.into_iter().enumerate() {
                let Some(record) = stored.get(id)? else {
                    consumed[position] = id;
                    continue;
                };
                let record: MessageRecord = decode(record.value())?;
                if rank < dropped || record.timestamp < oldest_kept {
                    consumed[position] = id;
                    continue;
                }
                let size = record.message.len() + record.title.len() + record.link.len();
                if !chosen.is_empty() && bytes.saturating_add(size) > self.limits.max_fetch_bytes {
                    break;
                }
                if views[position].is_none() {
                    let public = &mine[position].0;
                    views[position] = load_service_by_public(&secrets, &services, public)?
                        .map(|service| service.public_view());
                }
                let Some(view) = views[position].clone() else {
                    consumed[position] = id;
                    continue;
                };
                bytes = bytes.saturating_add(size);
                consumed[position] = id;
                chosen.push((
                    position,
                    id,
                    MessageView {
                        level: record.level,
                        link: record.link,
                        message: record.message,
                        service: view,
                        timestamp: record.timestamp,
                        title: record.title,
                    },
                ));
            }
            drop((secrets, services, stored));
            let checked = now();
            for (position, (public, mut subscription)) in mine.into_iter().enumerate() {
                subscription.timestamp_checked = checked;
                subscription.last_read = subscription.last_read.max(consumed[position]);
                subscriptions.insert(
                    (device.as_str(), public.as_str()),
                    encode(&subscription)?.as_slice(),
                )?;
            }
            drop(subscriptions);
            for public in &services_read {
                clean_up(&txn, public)?;
            }
            chosen.sort_unstable_by_key(|(position, id, _)| (*position, *id));
            chosen.into_iter().map(|(_, id, view)| (id, view)).collect()
        };
        txn.commit()?;
        Ok(Unread {
            messages,
            watermark,
        })
    }

    /// Marks each device's messages read up to and including its id (a live stream delivered
    /// them), in one transaction; ids below what a device has read already change nothing.
    pub(super) fn mark_read_up_to(&self, marks: &[(DeviceUuid, u64)]) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        {
            let mut services_read = std::collections::BTreeSet::new();
            let mut subscriptions = txn.open_table(SUBSCRIPTIONS)?;
            let checked = now();
            for (device, last) in marks {
                for (public, mut subscription) in subscriptions_of(&subscriptions, device.as_str())?
                {
                    if subscription.last_read >= *last {
                        continue;
                    }
                    subscription.timestamp_checked = checked;
                    subscription.last_read = *last;
                    subscriptions.insert(
                        (device.as_str(), public.as_str()),
                        encode(&subscription)?.as_slice(),
                    )?;
                    services_read.insert(public);
                }
            }
            drop(subscriptions);
            for public in &services_read {
                clean_up(&txn, public)?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// Marks every message read for all the device's subscriptions.
    pub(super) fn mark_all_read(&self, device: &DeviceUuid) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        {
            let mut subscriptions = txn.open_table(SUBSCRIPTIONS)?;
            let mine = subscriptions_of(&subscriptions, device.as_str())?;
            if mine.is_empty() {
                return Ok(());
            }
            let services_read: Vec<String> =
                mine.iter().map(|(public, _)| public.clone()).collect();
            let newest = read_counter(&txn.open_table(META)?, LAST_MESSAGE_ID)?;
            let checked = now();
            for (public, mut subscription) in mine {
                subscription.timestamp_checked = checked;
                subscription.last_read = newest;
                subscriptions.insert(
                    (device.as_str(), public.as_str()),
                    encode(&subscription)?.as_slice(),
                )?;
            }
            drop(subscriptions);
            for public in &services_read {
                clean_up(&txn, public)?;
            }
        }
        txn.commit()?;
        Ok(())
    }
}

/// Deletes the service's messages that every subscriber has read (all of them when nobody is
/// subscribed any more: a later subscriber starts after the newest message and never sees them).
pub(super) fn clean_up(txn: &WriteTransaction, public: &str) -> Result<(), StoreError> {
    let devices = subscribers_of(&txn.open_table(SUBSCRIBERS)?, public)?;
    let subscriptions = txn.open_table(SUBSCRIPTIONS)?;
    let mut everyone_read = u64::MAX;
    for device in &devices {
        if let Some(value) = subscriptions.get((device.as_str(), public))? {
            let record: SubscriptionRecord = decode(value.value())?;
            everyone_read = everyone_read.min(record.last_read);
        }
    }
    drop(subscriptions);
    delete_messages_up_to(txn, public, everyone_read)
}

/// Deletes the service's oldest messages beyond `max_unread` and those older than
/// `message_max_age`.
pub(super) fn prune(
    txn: &WriteTransaction,
    public: &str,
    limits: &StoreLimits,
) -> Result<(), StoreError> {
    let mut index = txn.open_table(SERVICE_MESSAGES)?;
    let mut ids = Vec::new();
    for entry in index.range((public, 0)..=(public, u64::MAX))? {
        ids.push(entry?.0.value().1);
    }
    let excess = ids.len().saturating_sub(limits.max_unread);
    let oldest_kept = oldest_kept(limits);
    let mut messages = txn.open_table(MESSAGES)?;
    for (position, id) in ids.into_iter().enumerate() {
        let expired = position < excess
            || match messages.get(id)? {
                Some(record) => decode::<MessageRecord>(record.value())?.timestamp < oldest_kept,
                None => true,
            };
        if !expired {
            // Ids grow with time: every later message is younger.
            break;
        }
        index.remove((public, id))?;
        messages.remove(id)?;
    }
    Ok(())
}

/// Deletes the service's messages with ids up to and including `last`.
pub(super) fn delete_messages_up_to(
    txn: &WriteTransaction,
    public: &str,
    last: u64,
) -> Result<(), StoreError> {
    let mut index = txn.open_table(SERVICE_MESSAGES)?;
    let mut ids = Vec::new();
    for entry in index.range((public, 0)..=(public, last))? {
        let (key, _) = entry?;
        ids.push(key.value().1);
    }
    let mut messages = txn.open_table(MESSAGES)?;
    for id in ids {
        index.remove((public, id))?;
        messages.remove(id)?;
    }
    Ok(())
}
