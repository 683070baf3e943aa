//! Builds the actix application and server from [`Settings`]; owns start-up and shutdown.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{App, HttpServer, web};

use crate::config::Settings;
use crate::http;
use crate::pushjet_server::{self, Store, StoreError};

/// How long in-flight requests may take to finish after SIGINT/SIGTERM.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Why the service could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The listen address could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: String,
        /// Why.
        source: std::io::Error,
    },
    /// The embedded Pushjet API's store could not be opened.
    #[error("cannot open the embedded Pushjet store: {0}")]
    Store(#[from] StoreError),
    /// The server stopped with an I/O error.
    #[error("the server failed: {0}")]
    Serve(#[from] std::io::Error),
}

/// A bound, ready-to-run service.
pub struct Application {
    port: u16,
    server: Server,
}

impl Application {
    /// Opens the stores and binds the listener (port 0 picks a free port).
    pub async fn build(settings: Settings) -> Result<Self, AppError> {
        let listener = TcpListener::bind(settings.listen).map_err(|source| AppError::Bind {
            address: settings.listen.to_string(),
            source,
        })?;
        let port = listener.local_addr()?.port();
        let store = if settings.embedded_pushjet {
            let data_dir = settings.data_dir.clone();
            let store = web::block(move || Store::open(&data_dir))
                .await
                .map_err(|error| AppError::Serve(std::io::Error::other(error.to_string())))??;
            Some(Arc::new(store))
        } else {
            None
        };
        let server = HttpServer::new(move || {
            let store = store.clone();
            App::new()
                .route("/healthz", web::get().to(http::health::healthz))
                .configure(move |config| {
                    if let Some(store) = store {
                        config.service(pushjet_server::scope(store));
                    }
                })
        })
        .shutdown_timeout(SHUTDOWN_GRACE.as_secs())
        .listen(listener)?
        .run();
        tracing::info!(port, "listening");
        Ok(Self { port, server })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A handle that can stop the server (as SIGTERM would).
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGINT/SIGTERM (or the server handle stops it), then drains gracefully.
    pub async fn run_until_stopped(self) -> Result<(), AppError> {
        self.server.await?;
        Ok(())
    }
}
