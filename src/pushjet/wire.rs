//! The JSON shapes of the protocol, shared by the client (which reads them) and the embedded
//! server (which writes them). Fields are declared in alphabetical order because the real server
//! answers with sorted keys.

use serde::{Deserialize, Serialize, Serializer};

use super::{DeviceUuid, Importance, PublicKey, SecretKey};

/// A service as the server shows it. `secret` is present only in the answer to `POST /service`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceView {
    /// Creation time, seconds since the Unix epoch.
    pub created: i64,
    /// Icon URL, `""` when none.
    #[serde(default)]
    pub icon: String,
    /// Display name.
    pub name: String,
    /// Public key.
    pub public: PublicKey,
    /// Secret key (owner view only).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "expose_secret"
    )]
    pub secret: Option<SecretKey>,
}

fn expose_secret<S: Serializer>(
    secret: &Option<SecretKey>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match secret {
        Some(secret) => serializer.serialize_str(secret.expose()),
        None => serializer.serialize_none(),
    }
}

/// A message as a device reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageView {
    /// Importance, 1..=5.
    pub level: Importance,
    /// Link, `""` when none.
    #[serde(default)]
    pub link: String,
    /// Message text.
    pub message: String,
    /// The service that sent it (public view).
    pub service: ServiceView,
    /// Time sent, seconds since the Unix epoch.
    pub timestamp: i64,
    /// Title, `""` when none.
    #[serde(default)]
    pub title: String,
}

/// A device's subscription to a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionView {
    /// The service subscribed to (public view).
    pub service: ServiceView,
    /// When the subscription was made, seconds since the Unix epoch.
    pub timestamp: i64,
    /// When the device last fetched or marked read, seconds since the Unix epoch.
    pub timestamp_checked: i64,
    /// The device.
    pub uuid: DeviceUuid,
}

/// `{"service": …}`
#[derive(Debug, Serialize, Deserialize)]
pub struct ServiceEnvelope {
    /// The service.
    pub service: ServiceView,
}

/// `{"messages": […]}`
#[derive(Debug, Serialize, Deserialize)]
pub struct MessagesEnvelope {
    /// The messages.
    pub messages: Vec<MessageView>,
}

/// `{"subscriptions": […]}`
#[derive(Debug, Serialize, Deserialize)]
pub struct SubscriptionsEnvelope {
    /// The subscriptions.
    pub subscriptions: Vec<SubscriptionView>,
}

/// `{"error": {"id": …, "message": …}}`
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorEnvelope {
    /// The error.
    pub error: ErrorBody,
}

/// The protocol's error object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Error id (see the protocol's error table).
    pub id: i64,
    /// Error text.
    pub message: String,
}

/// The protocol's acknowledgement body, `{"status": "ok"}`.
pub const STATUS_OK: &str = r#"{"status": "ok"}"#;
