//! The HTTP layer: thin handlers that turn requests into domain calls and results into answers;
//! errors become answers in one place ([`error`]).

pub mod admin;
pub mod early;
pub mod encoding;
pub mod error;
pub mod gotify;
pub mod health;
pub mod history;
pub mod hooks;
pub mod limits;
pub mod metrics;
pub mod ntfy;
pub mod ntfy_cors;
mod ntfy_device;
pub(crate) mod recording;
pub mod request_id;
