//! The Pushjet client library: the protocol's domain types, its JSON shapes, and a client for
//! every call of the Pushjet client API (services, devices, subscriptions, messages).

mod fields;
mod keys;
pub mod wire;

pub use fields::{FieldError, Importance, MESSAGE_MAX_BYTES, MessageText, TITLE_MAX_CHARS, Title};
pub use keys::{DeviceUuid, KeyError, PublicKey, SecretKey};
