//! A device: subscribe to services, list subscriptions, read and mark messages.

use awc::http::Method;
use serde::Serialize;

use super::api::{Api, from_value};
use super::error::Error;
use super::message::Message;
use super::service::ServiceInfo;
use super::wire::{MessagesEnvelope, ServiceEnvelope, SubscriptionView, SubscriptionsEnvelope};
use super::{DeviceUuid, PublicKey};

/// A device's subscription to a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Subscription {
    /// The service.
    pub service: ServiceInfo,
    /// When the device subscribed, seconds since the Unix epoch.
    pub time_subscribed: i64,
    /// When the device last read or marked read, seconds since the Unix epoch.
    pub last_checked: i64,
    /// The device.
    pub device_uuid: DeviceUuid,
}

impl From<SubscriptionView> for Subscription {
    fn from(view: SubscriptionView) -> Self {
        Self {
            service: view.service.into(),
            time_subscribed: view.timestamp,
            last_checked: view.timestamp_checked,
            device_uuid: view.uuid,
        }
    }
}

/// A device, named by the UUID it chose.
#[derive(Debug, Clone)]
pub struct Device {
    api: Api,
    uuid: DeviceUuid,
}

impl Device {
    pub(crate) fn new(api: Api, uuid: DeviceUuid) -> Self {
        Self { api, uuid }
    }

    /// The device's UUID.
    pub fn uuid(&self) -> &DeviceUuid {
        &self.uuid
    }

    fn identity(&self, service: Option<&PublicKey>) -> Vec<(&'static str, String)> {
        let mut form = vec![("uuid", self.uuid.as_str().to_owned())];
        if let Some(service) = service {
            form.push(("service", service.as_str().to_owned()));
        }
        form
    }

    /// Subscribes to a service (a [`super::Service`] or a [`PublicKey`]); returns the service.
    /// Already subscribed is [`Error::Subscription`].
    pub async fn subscribe(&self, service: impl AsRef<PublicKey>) -> Result<ServiceInfo, Error> {
        let form = self.identity(Some(service.as_ref()));
        let value = self.api.call(Method::POST, "subscription", &form).await?;
        Ok(from_value::<ServiceEnvelope>(value)?.service.into())
    }

    /// Unsubscribes; not subscribed is [`Error::Subscription`].
    pub async fn unsubscribe(&self, service: impl AsRef<PublicKey>) -> Result<(), Error> {
        let form = self.identity(Some(service.as_ref()));
        self.api
            .call_ok(Method::DELETE, "subscription", &form)
            .await
    }

    /// The device's subscriptions.
    pub async fn subscriptions(&self) -> Result<Vec<Subscription>, Error> {
        let value = self
            .api
            .call(Method::GET, "subscription", &self.identity(None))
            .await?;
        let envelope: SubscriptionsEnvelope = from_value(value)?;
        Ok(envelope
            .subscriptions
            .into_iter()
            .map(Subscription::from)
            .collect())
    }

    /// The unread messages of every subscription. Destructive, as on the server: they are
    /// marked read, and the next call returns only newer ones.
    pub async fn messages(&self) -> Result<Vec<Message>, Error> {
        let value = self
            .api
            .call(Method::GET, "message", &self.identity(None))
            .await?;
        let envelope: MessagesEnvelope = from_value(value)?;
        Ok(envelope.messages.into_iter().map(Message::from).collect())
    }

    /// Marks every message read without fetching it (`DELETE /message`).
    pub async fn mark_read(&self) -> Result<(), Error> {
        self.api
            .call_ok(Method::DELETE, "message", &self.identity(None))
            .await
    }
}
