//! The Pushjet protocol from both ends: the Rust client against the embedded server, the raw
//! protocol answers, what the client puts on the wire, restarts, and the real Python client.

#[path = "../common/mod.rs"]
mod common;

mod client;
mod closing;
mod limits;
mod listen;
mod protocol;
mod python;
mod replicas;
mod restart;
mod streams;
mod wire;
