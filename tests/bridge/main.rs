//! The bridge end to end: real webhook payloads posted to the real service on a random port,
//! delivered through the embedded Pushjet API and read back by a subscribed device.

#[path = "../common/mod.rs"]
mod common;

mod alertmanager;
mod alertmanager_chat;
mod apprise;
mod console;
mod errors;
mod failover;
mod fixtures;
mod formats;
mod history;
mod history_again;
mod hostile;
mod hung_database;
mod metrics;
mod noise;
mod ntfy_apps;
mod operations;
mod outbox;
mod publish;
mod replicas;
mod route_topics;
mod secrets;
mod settings;
mod signatures;
mod snapshots;
mod sources;
mod stream_attacks;
mod stream_ends;
mod streams;
mod support;
