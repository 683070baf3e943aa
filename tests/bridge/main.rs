//! The bridge end to end: real webhook payloads posted to the real service on a random port,
//! delivered through the embedded Pushjet API and read back by a subscribed device.

#[path = "../common/mod.rs"]
mod common;

mod alertmanager;
mod alertmanager_chat;
mod apprise;
mod errors;
mod failover;
mod fixtures;
mod formats;
mod history;
mod history_again;
mod hostile;
mod operations;
mod outbox;
mod publish;
mod replicas;
mod secrets;
mod signatures;
mod snapshots;
mod sources;
mod streams;
mod support;
