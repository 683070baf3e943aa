//! A Pushjet service: open it read-write by its secret or read-only by its public key, send
//! messages, edit, delete and refresh it.

use awc::http::Method;
use serde::Serialize;

use super::api::Api;
use super::error::Error;
use super::message::non_empty;
use super::wire::ServiceView;
use super::{NewMessage, PublicKey, SecretKey};

/// What anybody may know about a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceInfo {
    /// The public key, which devices subscribe to.
    pub public_key: PublicKey,
    /// Display name.
    pub name: String,
    /// Icon URL, `None` when there is none.
    pub icon: Option<String>,
    /// Creation time, seconds since the Unix epoch.
    pub created: i64,
}

impl From<ServiceView> for ServiceInfo {
    fn from(view: ServiceView) -> Self {
        Self {
            public_key: view.public,
            name: view.name,
            icon: non_empty(view.icon),
            created: view.created,
        }
    }
}

/// A service on one API: read-write when opened with its secret key, read-only otherwise.
#[derive(Debug, Clone)]
pub struct Service {
    api: Api,
    info: ServiceInfo,
    secret: Option<SecretKey>,
}

impl Service {
    pub(crate) fn from_view(api: Api, view: ServiceView, secret: Option<SecretKey>) -> Self {
        Self {
            api,
            info: view.into(),
            secret,
        }
    }

    /// Name, icon, creation time and public key as last read from the server.
    pub fn info(&self) -> &ServiceInfo {
        &self.info
    }

    /// The public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.info.public_key
    }

    /// The secret key, `None` when opened read-only.
    pub fn secret_key(&self) -> Option<&SecretKey> {
        self.secret.as_ref()
    }

    fn secret_for(&self, call: &'static str) -> Result<&SecretKey, Error> {
        self.secret.as_ref().ok_or(Error::Access(call))
    }

    /// Sends a message to every device subscribed now. Unlike the Python client, a refusal
    /// (400, 404) is an error, not silence.
    pub async fn send(&self, message: &NewMessage) -> Result<(), Error> {
        let secret = self.secret_for("send")?;
        self.api.send(secret, message).await
    }

    /// Changes the name and/or icon (`PATCH /service`); `None` leaves a field as it is, an empty
    /// icon clears it. With neither given no request is made. The local fields follow.
    pub async fn edit(&mut self, name: Option<&str>, icon: Option<&str>) -> Result<(), Error> {
        let secret = self.secret_for("edit")?;
        if name.is_none() && icon.is_none() {
            return Ok(());
        }
        let mut form = vec![("secret", secret.expose().to_owned())];
        if let Some(name) = name {
            form.push(("name", name.to_owned()));
        }
        if let Some(icon) = icon {
            form.push(("icon", icon.to_owned()));
        }
        self.api.call_ok(Method::PATCH, "service", &form).await?;
        if let Some(name) = name {
            self.info.name = name.trim().to_owned();
        }
        if let Some(icon) = icon {
            self.info.icon = non_empty(icon.trim().to_owned());
        }
        Ok(())
    }

    /// Deletes the service with its subscriptions and unread messages (`DELETE /service`).
    pub async fn delete(&self) -> Result<(), Error> {
        let secret = self.secret_for("delete")?;
        self.api
            .call_ok(
                Method::DELETE,
                "service",
                &[("secret", secret.expose().to_owned())],
            )
            .await
    }

    /// Reads the service again from the server (by secret when held, else by public key).
    pub async fn refresh(&mut self) -> Result<(), Error> {
        let identity = match &self.secret {
            Some(secret) => ("secret", secret.expose().to_owned()),
            None => ("service", self.info.public_key.as_str().to_owned()),
        };
        self.info = self.api.get_service(&[identity]).await?.into();
        Ok(())
    }
}

impl AsRef<PublicKey> for Service {
    fn as_ref(&self) -> &PublicKey {
        self.public_key()
    }
}

impl AsRef<PublicKey> for PublicKey {
    fn as_ref(&self) -> &PublicKey {
        self
    }
}
