//! Services (created, looked up, renamed, deleted) and the devices' subscriptions to them in the
//! redb file, with the lookups the messages share: a service by secret or public key, a service's
//! subscribers, a device's subscriptions.

use redb::{ReadableDatabase, ReadableTable};

use super::messages::{clean_up, delete_messages_up_to};
use super::{
    LAST_MESSAGE_ID, LAST_SUBSCRIPTION_NUMBER, META, RedbFile, SERVICE_SECRETS, SERVICES,
    SUBSCRIBERS, SUBSCRIPTIONS, ServiceRecord, SubscriptionRecord, decode, encode, read_counter,
};
use crate::pushjet::wire::{ServiceView, SubscriptionView};
use crate::pushjet::{DeviceUuid, PublicKey, SecretKey};
use crate::pushjet_server::fields::{Icon, ServiceName};
use crate::pushjet_server::store::{StoreError, now};

impl RedbFile {
    /// Creates a service with a fresh secret and returns its owner view (with `secret`).
    pub(super) fn create_service(
        &self,
        name: &ServiceName,
        icon: &Icon,
    ) -> Result<ServiceView, StoreError> {
        self.check_space()?;
        let secret = SecretKey::generate().map_err(StoreError::Randomness)?;
        let record = ServiceRecord {
            public: secret.public_key(),
            name: name.as_str().to_owned(),
            icon: icon.as_str().to_owned(),
            created: now(),
        };
        let txn = self.db.begin_write()?;
        {
            txn.open_table(SERVICES)?
                .insert(secret.expose(), encode(&record)?.as_slice())?;
            txn.open_table(SERVICE_SECRETS)?
                .insert(record.public.as_str(), secret.expose())?;
        }
        txn.commit()?;
        tracing::info!(service = %record.public, "created Pushjet service");
        Ok(ServiceView {
            secret: Some(secret),
            ..record.public_view()
        })
    }

    /// The service with this secret (public view: no `secret` field), if any.
    pub(super) fn service_by_secret(
        &self,
        secret: &SecretKey,
    ) -> Result<Option<ServiceView>, StoreError> {
        let txn = self.db.begin_read()?;
        let services = txn.open_table(SERVICES)?;
        Ok(load_service(&services, secret.expose())?.map(|record| record.public_view()))
    }

    /// The service with this public key (public view), if any.
    pub(super) fn service_by_public(
        &self,
        public: &PublicKey,
    ) -> Result<Option<ServiceView>, StoreError> {
        let txn = self.db.begin_read()?;
        let secrets = txn.open_table(SERVICE_SECRETS)?;
        let services = txn.open_table(SERVICES)?;
        Ok(
            load_service_by_public(&secrets, &services, public.as_str())?
                .map(|record| record.public_view()),
        )
    }

    /// How many devices are subscribed to the service with this public key.
    pub(super) fn subscriber_count(&self, public: &PublicKey) -> Result<usize, StoreError> {
        let txn = self.db.begin_read()?;
        let subscribers = txn.open_table(SUBSCRIBERS)?;
        Ok(subscribers_of(&subscribers, public.as_str())?.len())
    }

    /// Changes the name and/or the icon (`None` leaves a field as it is).
    pub(super) fn update_service(
        &self,
        secret: &SecretKey,
        name: Option<&ServiceName>,
        icon: Option<&Icon>,
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        {
            let mut services = txn.open_table(SERVICES)?;
            let mut record =
                load_service(&services, secret.expose())?.ok_or(StoreError::ServiceNotFound)?;
            if let Some(name) = name {
                record.name = name.as_str().to_owned();
            }
            if let Some(icon) = icon {
                record.icon = icon.as_str().to_owned();
            }
            services.insert(secret.expose(), encode(&record)?.as_slice())?;
            tracing::info!(service = %record.public, "updated Pushjet service");
        }
        txn.commit()?;
        Ok(())
    }

    /// Deletes the service with all its subscriptions and stored messages.
    pub(super) fn delete_service(&self, secret: &SecretKey) -> Result<(), StoreError> {
        let _in_order = self.announce_in_order();
        let txn = self.db.begin_write()?;
        let mut removed = Vec::new();
        {
            let mut services = txn.open_table(SERVICES)?;
            let record =
                load_service(&services, secret.expose())?.ok_or(StoreError::ServiceNotFound)?;
            let public = record.public.as_str();
            let mut subscribers = txn.open_table(SUBSCRIBERS)?;
            let mut subscriptions = txn.open_table(SUBSCRIPTIONS)?;
            let devices = subscribers_of(&subscribers, public)?;
            for device in &devices {
                if let Some(value) = subscriptions.remove((device.as_str(), public))? {
                    let subscription: SubscriptionRecord = decode(value.value())?;
                    if let Ok(uuid) = DeviceUuid::parse(device) {
                        removed.push(SubscriptionView {
                            service: record.public_view(),
                            timestamp: subscription.timestamp,
                            timestamp_checked: subscription.timestamp_checked,
                            uuid,
                        });
                    }
                }
                subscribers.remove((public, device.as_str()))?;
            }
            delete_messages_up_to(&txn, public, u64::MAX)?;
            txn.open_table(SERVICE_SECRETS)?.remove(public)?;
            services.remove(secret.expose())?;
            tracing::info!(
                service = %record.public,
                subscriptions = devices.len(),
                "deleted Pushjet service"
            );
        }
        txn.commit()?;
        if let Some(events) = &self.events {
            removed
                .into_iter()
                .for_each(|subscription| events.subscription_changed(subscription));
        }
        Ok(())
    }
    /// Subscribes the device to the service; the subscription starts after the newest message, so
    /// older messages are never delivered to it. Returns the service (public view).
    pub(super) fn subscribe(
        &self,
        device: &DeviceUuid,
        public: &PublicKey,
    ) -> Result<ServiceView, StoreError> {
        self.check_space()?;
        let _in_order = self.announce_in_order();
        let txn = self.db.begin_write()?;
        let service = {
            let secrets = txn.open_table(SERVICE_SECRETS)?;
            let services = txn.open_table(SERVICES)?;
            let service = load_service_by_public(&secrets, &services, public.as_str())?
                .ok_or(StoreError::ServiceNotFound)?;
            let key = (device.as_str(), public.as_str());
            let mut subscriptions = txn.open_table(SUBSCRIPTIONS)?;
            if subscriptions.get(key)?.is_some() {
                return Err(StoreError::AlreadySubscribed);
            }
            let mut meta = txn.open_table(META)?;
            let order = read_counter(&meta, LAST_SUBSCRIPTION_NUMBER)?.saturating_add(1);
            meta.insert(LAST_SUBSCRIPTION_NUMBER, order)?;
            let subscribed = now();
            let record = SubscriptionRecord {
                order,
                timestamp: subscribed,
                timestamp_checked: subscribed,
                last_read: read_counter(&meta, LAST_MESSAGE_ID)?,
            };
            subscriptions.insert(key, encode(&record)?.as_slice())?;
            txn.open_table(SUBSCRIBERS)?
                .insert((public.as_str(), device.as_str()), ())?;
            tracing::info!(service = %public, device = %device, "subscribed device");
            (service, record)
        };
        txn.commit()?;
        let (service, record) = service;
        if let Some(events) = &self.events {
            events.subscription_changed(SubscriptionView {
                service: service.public_view(),
                timestamp: record.timestamp,
                timestamp_checked: record.timestamp_checked,
                uuid: device.clone(),
            });
        }
        Ok(service.public_view())
    }

    /// The device's subscriptions in the order they were made (empty for unknown devices).
    pub(super) fn subscriptions(
        &self,
        device: &DeviceUuid,
    ) -> Result<Vec<SubscriptionView>, StoreError> {
        let txn = self.db.begin_read()?;
        let subscriptions = txn.open_table(SUBSCRIPTIONS)?;
        let secrets = txn.open_table(SERVICE_SECRETS)?;
        let services = txn.open_table(SERVICES)?;
        let mut views = Vec::new();
        for (public, subscription) in subscriptions_of(&subscriptions, device.as_str())? {
            if let Some(service) = load_service_by_public(&secrets, &services, &public)? {
                views.push(SubscriptionView {
                    service: service.public_view(),
                    timestamp: subscription.timestamp,
                    timestamp_checked: subscription.timestamp_checked,
                    uuid: device.clone(),
                });
            }
        }
        Ok(views)
    }

    /// Removes the device's subscription to the service.
    pub(super) fn unsubscribe(
        &self,
        device: &DeviceUuid,
        public: &PublicKey,
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        {
            let secrets = txn.open_table(SERVICE_SECRETS)?;
            let services = txn.open_table(SERVICES)?;
            if load_service_by_public(&secrets, &services, public.as_str())?.is_none() {
                return Err(StoreError::ServiceNotFound);
            }
            drop((secrets, services));
            let removed = txn
                .open_table(SUBSCRIPTIONS)?
                .remove((device.as_str(), public.as_str()))?
                .is_some();
            if !removed {
                return Err(StoreError::NotSubscribed);
            }
            txn.open_table(SUBSCRIBERS)?
                .remove((public.as_str(), device.as_str()))?;
            clean_up(&txn, public.as_str())?;
            tracing::info!(service = %public, device = %device, "unsubscribed device");
        }
        txn.commit()?;
        Ok(())
    }
}

pub(super) fn load_service(
    services: &impl ReadableTable<&'static str, &'static [u8]>,
    secret: &str,
) -> Result<Option<ServiceRecord>, StoreError> {
    services
        .get(secret)?
        .map(|value| decode(value.value()))
        .transpose()
}

pub(super) fn load_service_by_public(
    secrets: &impl ReadableTable<&'static str, &'static str>,
    services: &impl ReadableTable<&'static str, &'static [u8]>,
    public: &str,
) -> Result<Option<ServiceRecord>, StoreError> {
    match secrets.get(public)? {
        Some(secret) => load_service(services, secret.value()),
        None => Ok(None),
    }
}

/// The devices subscribed to a service.
pub(super) fn subscribers_of(
    subscribers: &impl ReadableTable<(&'static str, &'static str), ()>,
    public: &str,
) -> Result<Vec<String>, StoreError> {
    let mut devices = Vec::new();
    for entry in subscribers.range((public, "")..)? {
        let (key, _) = entry?;
        let (service, device) = key.value();
        if service != public {
            break;
        }
        devices.push(device.to_owned());
    }
    Ok(devices)
}

/// A device's subscriptions as (public key, record), in subscription order.
pub(super) fn subscriptions_of(
    subscriptions: &impl ReadableTable<(&'static str, &'static str), &'static [u8]>,
    device: &str,
) -> Result<Vec<(String, SubscriptionRecord)>, StoreError> {
    let mut found = Vec::new();
    for entry in subscriptions.range((device, "")..)? {
        let (key, value) = entry?;
        let (owner, public) = key.value();
        if owner != device {
            break;
        }
        found.push((
            public.to_owned(),
            decode::<SubscriptionRecord>(value.value())?,
        ));
    }
    found.sort_by_key(|(_, record)| record.order);
    Ok(found)
}
