//! Durable delivery: the outbox every accepted notification is written to before the webhook is
//! answered, and the dispatcher that sends from it to Pushjet with retries and dead letters.

mod retry;
mod settings;

pub use retry::{Decision, Failure, RetryPolicy, classify};
pub use settings::{DeliverySettings, DeliverySettingsError};
