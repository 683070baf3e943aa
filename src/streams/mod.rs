//! Live streams from the embedded Pushjet API: messages reach a listening client the moment the
//! store commits them.
//!
//! - [`hub`]: publish/subscribe by device, fed by the store's [`crate::pushjet_server::StoreEvents`],
//!   with bounded per-stream buffers and a per-device cache of recent messages;
//! - [`connector`]: `GET /pushjet/ws`, the protocol of Pushjet's connectors (§1.13 of
//!   `docs/pushjet-protocol.md`): consumes the device's messages like `GET /message`;
//! - [`ntfy`]: `GET /<topic>/json|sse|raw|ws` (and `/auth`), ntfy's subscribe API with a device
//!   UUID as the topic (watches the device's messages without consuming them) or a route's name
//!   ([`ntfy_topics`]: with one of its credentials; [`route_topics`]: what it delivers);
//! - [`websocket`]: the server's end of both WebSockets: bytes waiting for the client bounded,
//!   and the connection dropped without a close frame where ntfy's clients need it;
//! - [`marks`]: the connector's read marks, written in batches;
//! - [`python_json`]: JSON the way the Pushjet server and connector wrote it.
//!
//! A device's UUID is its only credential, as in Pushjet: nothing here tells whether a device
//! exists.

pub mod connector;
pub mod hub;
pub mod marks;
pub mod metrics;
pub mod ntfy;
pub mod ntfy_topics;
pub mod python_json;
pub mod route_topics;
pub mod websocket;

use std::sync::Arc;

use actix_web::web;

pub use hub::Hub;
pub use metrics::StreamMetrics;
pub use ntfy_topics::RouteStreams;
pub use route_topics::{RouteAnnouncer, RouteTopics};

use crate::pushjet_server::Store;
use marks::ReadMarks;

/// What the stream endpoints share: the hub, the store (for the connector's unread messages) and
/// the connector's read marks.
#[derive(Debug, Clone)]
pub struct Streams {
    /// The hub.
    pub hub: Arc<Hub>,
    store: Arc<Store>,
    marks: Arc<ReadMarks>,
    routes: RouteStreams,
}

impl Streams {
    /// The endpoints' shared state over `store`, whose events must feed `hub`
    /// ([`crate::pushjet_server::StoreOptions::events`]). Starts the read-mark writer and the cache pruner on the
    /// current actix runtime; they stop, letting go of the store, when the hub closes
    /// ([`Hub::close_all`]).
    pub fn start(hub: Arc<Hub>, store: Arc<Store>, routes: RouteStreams) -> Self {
        let marks = Arc::new(ReadMarks::default());
        marks.spawn_writer(store.clone(), hub.clone());
        let pruned = hub.clone();
        actix_web::rt::spawn(async move {
            let mut every_minute =
                actix_web::rt::time::interval(std::time::Duration::from_secs(60));
            loop {
                tokio::select! {
                    _ = every_minute.tick() => pruned.prune(),
                    () = pruned.closed() => return,
                }
            }
        });
        Self {
            hub,
            store,
            marks,
            routes,
        }
    }

    /// Registers `GET /pushjet/ws`. Call it before the embedded API's scope is registered, so
    /// that it is matched first.
    pub fn configure_connector(&self, config: &mut web::ServiceConfig) {
        config
            .app_data(web::Data::new(self.clone()))
            .route("/pushjet/ws", web::get().to(connector::connect));
    }

    /// Registers the ntfy subscribe endpoints at the root (`/{uuid}/json`, …). Call it after
    /// every other route, so that their paths keep their own answers.
    pub fn configure_ntfy(&self, config: &mut web::ServiceConfig) {
        config.app_data(web::Data::new(self.clone()));
        ntfy::configure(config);
    }

    /// Closes every stream when SIGINT or SIGTERM arrives, so the HTTP server's graceful stop is
    /// not held up by them.
    pub fn close_on_stop_signals(&self) -> std::io::Result<()> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        let hub = self.hub.clone();
        actix_web::rt::spawn(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
            tracing::info!("stopping: closing the live streams");
            hub.close_all();
        });
        Ok(())
    }
}
