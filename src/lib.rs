//! pushjet-bridge: webhooks in, Pushjet push notifications out.

pub mod pushjet;
pub mod render;
