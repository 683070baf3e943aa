//! Messages for one device alone, as ntfy's apps publish them to a device UUID used as a topic
//! (`crate::http::ntfy`). The UUID is the credential, as for reading its streams.
//!
//! Pushjet stores a message for a service's subscribers, so each device gets a service of its
//! own for these, named [`DIRECT_SERVICE_NAME`]: created the first time something is published
//! to the device, remembered by the store (a table of the redb file, or of the shared database,
//! where replicas creating one at once end with the same, as for the demo route), and subscribed
//! by the device. A message then reaches the device's mailbox (`GET /message`) and its live
//! streams like any other. Writes are limited per client address like the embedded API's.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use super::fields::{Icon, ServiceName};
use super::limits::ApiGuard;
use super::store::{NewMessage, Store, StoreError};
use crate::pushjet::{DeviceUuid, SecretKey};

/// The name of a device's own service: what its messages show as their sender.
pub const DIRECT_SERVICE_NAME: &str = "ntfy";

/// Why a message for a device was not stored.
#[derive(Debug, thiserror::Error)]
pub enum DirectError {
    /// The client address used up its writes for now.
    #[error("too many writes from this address; retry in {} s", retry_after.as_secs().max(1))]
    RateLimited {
        /// When it may write again.
        retry_after: Duration,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Sends messages to single devices; cheap to clone, shared by every worker.
#[derive(Clone)]
pub struct DeviceMailbox {
    store: Arc<Store>,
    guard: ApiGuard,
}

impl std::fmt::Debug for DeviceMailbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceMailbox").finish_non_exhaustive()
    }
}

impl DeviceMailbox {
    /// Over `store`, with the embedded API's write limit (`guard`: the same one as its scope's,
    /// so an address's writes count once whichever way they come).
    pub fn new(store: Arc<Store>, guard: ApiGuard) -> Self {
        Self { store, guard }
    }

    /// Stores `message` for `device` alone, from a client at `peer` (its writes are counted).
    pub async fn send(
        &self,
        peer: Option<IpAddr>,
        device: &DeviceUuid,
        message: &NewMessage,
    ) -> Result<(), DirectError> {
        if let Some(peer) = peer {
            self.guard
                .check_write(peer)
                .map_err(|retry_after| DirectError::RateLimited { retry_after })?;
        }
        let secret = self.own_service(device).await?;
        let public = secret.public_key();
        match self.store.subscribe(device, &public).await {
            Ok(_) | Err(StoreError::AlreadySubscribed) => {}
            Err(error) => return Err(error.into()),
        }
        self.store.send_message(&secret, message).await?;
        Ok(())
    }

    /// The secret of the device's own service, made the first time (or again when it was
    /// deleted).
    async fn own_service(&self, device: &DeviceUuid) -> Result<SecretKey, StoreError> {
        let remembered = self.store.direct_service(device).await?;
        if let Some(secret) = &remembered
            && self.store.service_by_secret(secret).await?.is_some()
        {
            return Ok(secret.clone());
        }
        let name = ServiceName::new(DIRECT_SERVICE_NAME)
            .map_err(|_| StoreError::Malformed("direct service name"))?;
        let icon = Icon::new("").map_err(|_| StoreError::Malformed("direct service icon"))?;
        let made = self
            .store
            .create_service(&name, &icon)
            .await?
            .secret
            .ok_or(StoreError::Malformed("new service without its secret"))?;
        let kept = self
            .store
            .keep_direct_service(device, remembered.as_ref(), &made)
            .await?;
        if kept != made {
            self.store.delete_service(&made).await?;
        }
        Ok(kept)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pushjet::{Importance, MessageText, Title};
    use crate::pushjet_server::Link;

    fn message(text: &str) -> NewMessage {
        NewMessage {
            text: MessageText::new(text).unwrap(),
            title: Title::new("From the app"),
            link: Link::new("").unwrap(),
            level: Importance::DEFAULT,
        }
    }

    fn device() -> DeviceUuid {
        DeviceUuid::parse(&uuid::Uuid::new_v4().to_string()).unwrap()
    }

    #[derive(Debug, Clone, Copy)]
    enum Backend {
        Redb,
        Postgres,
    }

    async fn a_device_gets_its_own_messages_and_no_one_elses(backend: Backend) {
        let dir = tempfile::tempdir().unwrap();
        let database = match backend {
            Backend::Redb => None,
            Backend::Postgres => Some(
                crate::config::DatabaseUrl::parse(
                    &crate::database::test_server::TestPostgres::shared()
                        .create_database()
                        .await,
                )
                .unwrap(),
            ),
        };
        let options = crate::pushjet_server::StoreOptions::default();
        let store = Store::connect(dir.path(), database.as_ref(), options)
            .await
            .unwrap();
        let mailbox = DeviceMailbox::new(Arc::new(store.clone()), ApiGuard::default());
        let (first, second) = (device(), device());
        mailbox.send(None, &first, &message("one")).await.unwrap();
        mailbox.send(None, &first, &message("two")).await.unwrap();
        mailbox
            .send(None, &second, &message("other"))
            .await
            .unwrap();

        let got: Vec<String> = store
            .fetch_messages(&first)
            .await
            .unwrap()
            .into_iter()
            .map(|view| {
                assert_eq!(view.service.name, DIRECT_SERVICE_NAME);
                view.message
            })
            .collect();
        assert_eq!(got, ["one", "two"]);
        let subscriptions = store.subscriptions(&first).await.unwrap();
        assert_eq!(subscriptions.len(), 1, "one service, kept");
        let other = store.fetch_messages(&second).await.unwrap();
        assert_eq!(other.len(), 1);
        assert_eq!(other[0].message, "other");
    }

    crate::database::on_both_backends!(a_device_gets_its_own_messages_and_no_one_elses);

    #[actix_web::test]
    async fn writes_beyond_the_rate_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let limits = crate::config::ApiLimits {
            writes_per_minute: std::num::NonZeroU32::new(1).unwrap(),
            ..crate::config::ApiLimits::default()
        };
        let mailbox = DeviceMailbox::new(store, ApiGuard::new(&limits));
        let address: IpAddr = "192.0.2.7".parse().unwrap();
        let uuid = device();
        mailbox
            .send(Some(address), &uuid, &message("first"))
            .await
            .unwrap();
        let refused = mailbox.send(Some(address), &uuid, &message("second")).await;
        assert!(
            matches!(refused, Err(DirectError::RateLimited { .. })),
            "{refused:?}"
        );
    }
}
