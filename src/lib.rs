//! pushjet-bridge: webhooks in, Pushjet push notifications out.

pub mod app;
pub mod cli;
pub mod config;
pub mod delivery;
pub mod demo;
pub mod http;
pub mod metrics;
pub mod notification;
pub mod pipeline;
pub mod pushjet;
pub mod pushjet_server;
pub mod reload;
pub mod render;
pub mod routes;
pub mod secret;
pub mod sources;
pub mod streams;
pub mod telemetry;
pub mod verify;
