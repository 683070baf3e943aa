//! The Pushjet client library: the protocol's domain types, its JSON shapes, and a client for
//! every call of the Pushjet client API (services, devices, subscriptions, messages).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use pushjet_bridge::pushjet::{Api, MessageText, NewMessage};
//! let api = Api::new("http://127.0.0.1:8080/pushjet/")?;
//! let service = api.create_service("Deploys", None).await?;
//! service.send(&NewMessage::text(MessageText::new("Deployed v1.2")?)).await?;
//! # Ok(()) }
//! ```

mod api;
mod device;
mod error;
mod fields;
mod keys;
mod message;
mod reuse;
mod service;
pub mod wire;

pub use api::{Api, ApiUrl, ApiUrlError, DEFAULT_API_URL, DEFAULT_TIMEOUT};
pub use device::{Device, Subscription};
pub use error::{Error, RequestError};
pub use fields::{
    FieldError, Importance, Link, MESSAGE_MAX_BYTES, MessageText, TITLE_MAX_CHARS, Title,
};
pub use keys::{DeviceUuid, KeyError, PublicKey, SecretKey};
pub use message::{Message, NewMessage};
pub use service::{Service, ServiceInfo};
