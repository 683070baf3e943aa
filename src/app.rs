//! Builds the actix application and server from [`Settings`]; owns start-up and shutdown.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};

use arc_swap::ArcSwap;

use crate::config::Settings;
use crate::console::{self, Console};
use crate::delivery::{self, DispatcherHandle, Outbox, OutboxError};
use crate::demo::{self, DemoError};
use crate::history::{History, HistoryError};
use crate::http;
use crate::http::admin::Admin;
use crate::http::metrics::MetricsToken;
use crate::metrics::Metrics;
use crate::pushjet::{Api, ApiUrl, NewMessage, SecretKey};
use crate::pushjet_server::{self, Store, StoreError, StoreOptions};
use crate::reload::{ReloadError, Reloader, build_bridge};
use crate::routes::RouteName;
use crate::streams::{Hub, RouteAnnouncer, RouteStreams, RouteTopics, Streams};

/// How long in-flight HTTP requests may take to finish after SIGINT/SIGTERM.
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
    /// The configuration or the templates are invalid.
    #[error(transparent)]
    Config(#[from] ReloadError),
    /// The embedded Pushjet API's store could not be opened.
    #[error("cannot open the embedded Pushjet store: {0}")]
    Store(#[from] StoreError),
    /// The outbox could not be opened.
    #[error("cannot open the outbox: {0}")]
    Outbox(#[from] OutboxError),
    /// The delivery history could not be opened.
    #[error("cannot open the delivery history: {0}")]
    History(#[from] HistoryError),
    /// The demo route could not be set up.
    #[error("cannot set up the demo route: {0}")]
    Demo(#[from] DemoError),
    /// The server stopped with an I/O error.
    #[error("the server failed: {0}")]
    Serve(#[from] std::io::Error),
    /// The outbox can store nothing more before a restart (a commit failed, e.g. on a full
    /// disk); the service stopped so that its supervisor starts it again.
    #[error(
        "the outbox could not commit accepted notifications (disk full or failing?); they are safe \
         in its journal and the next start restores them: stopped so that the supervisor restarts \
         the service"
    )]
    OutboxNeedsRestart,
}

/// The dispatcher's upstream: the Pushjet API, telling the routes' streams of each notification
/// delivered.
struct Announcing {
    api_url: ApiUrl,
    timeout: Duration,
    announcer: RouteAnnouncer,
}

impl Announcing {
    /// Makes the API client (on the dispatcher's thread: awc clients stay where they are made).
    fn connect(self) -> AnnouncingApi {
        AnnouncingApi {
            api: Api::at(self.api_url, self.timeout),
            announcer: self.announcer,
        }
    }
}

/// [`Announcing`] connected.
struct AnnouncingApi {
    api: Api,
    announcer: RouteAnnouncer,
}

impl delivery::Upstream for AnnouncingApi {
    fn send(
        &self,
        secret: &SecretKey,
        message: &NewMessage,
    ) -> impl Future<Output = Result<(), crate::pushjet::Error>> {
        self.api.send(secret, message)
    }

    fn delivered(
        &self,
        route: &RouteName,
        secret: &SecretKey,
        message: &NewMessage,
    ) -> impl Future<Output = ()> {
        self.announcer.delivered(route, secret, message)
    }
}

/// How long the history's last writes may take at shutdown.
const HISTORY_FLUSH: Duration = Duration::from_secs(2);

/// How often the outbox is checked for a failure only a restart repairs.
const RESTART_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// A bound, ready-to-run service.
pub struct Application {
    port: u16,
    server: Server,
    outbox: Outbox,
    history: History,
    dispatcher: DispatcherHandle,
    /// Queues the digests of held notifications (`delivery/noise/`); aborted at shutdown.
    releaser: tokio::task::JoinHandle<()>,
    shutdown_grace: Duration,
    hub: Arc<Hub>,
}

impl Application {
    /// Loads templates, opens the stores and binds the listener (port 0 picks a free port).
    pub async fn build(settings: Settings) -> Result<Self, AppError> {
        let listener =
            TcpListener::bind(settings.server.listen).map_err(|source| AppError::Bind {
                address: settings.server.listen.to_string(),
                source,
            })?;
        let local = listener.local_addr()?;
        let base_url = local_base_url(local);
        let metrics = Arc::new(Metrics::new());
        let hub = Hub::new(settings.streams, metrics.streams.clone());
        let route_topics = RouteTopics::new(hub.clone());
        let options = StoreOptions {
            limits: settings.limits.api.store_limits(),
            events: Some(route_topics.clone()),
            stream_cache: settings.streams.cache_for,
            stream_cache_bytes: settings.streams.cache_max_bytes,
        };
        let database = settings.delivery.database.as_ref();
        // The embedded API's data, or with a remote upstream only the streams' cache of what the
        // routes deliver (and, on PostgreSQL, the feed every replica's streams read).
        let state = Arc::new(Store::connect(&settings.server.data_dir, database, options).await?);
        let store = settings.pushjet.embedded.then(|| state.clone());
        let announcer = RouteAnnouncer::new(state.clone());
        let demo = match &store {
            Some(store) if settings.routes.is_empty() => {
                let demo = demo::ensure(store).await?;
                announce_demo(&base_url, &demo);
                Some((demo.route, demo.device))
            }
            None if settings.routes.is_empty() => {
                tracing::warn!("no routes configured: set PUSHJET_BRIDGE_ROUTES (see the README)");
                None
            }
            _ => None,
        };
        let (demo, demo_device) = demo.unzip();
        let bridge = Arc::new(ArcSwap::from_pointee(build_bridge(
            &settings,
            demo.as_ref(),
        )?));
        let routes = RouteStreams {
            topics: route_topics.clone(),
            readers: bridge.clone(),
        };
        let streams = Streams::start(hub.clone(), state, routes);
        // From here a failed start must close the hub: the streams' tasks hold the store until it
        // closes, and a start tried again in this process would find its file still open.
        let mut started = CloseHubUnlessStarted(Some(hub.clone()));
        streams.close_on_stop_signals()?;
        let api_url = match &settings.pushjet.api_url {
            Some(url) => url.clone(),
            None => ApiUrl::parse(&format!("{base_url}/pushjet/"))
                .map_err(|error| AppError::Serve(std::io::Error::other(error.to_string())))?,
        };
        let history = History::open(
            &settings.history,
            &settings.server.data_dir,
            settings.delivery.database.as_ref(),
            metrics.history.clone(),
        )
        .await?;
        let outbox = Outbox::connect(&settings.server.data_dir, &settings.delivery)
            .await?
            .with_observer(Arc::new(history.clone()));
        let upstream = Announcing {
            api_url: api_url.clone(),
            timeout: settings.delivery.send_timeout,
            announcer: announcer.clone(),
        };
        let dispatcher = delivery::spawn_with(
            outbox.clone(),
            bridge.clone(),
            &settings.delivery,
            metrics.clone(),
            move || upstream.connect(),
        );
        let releaser = delivery::noise::spawn_releaser(
            outbox.clone(),
            metrics.clone(),
            settings.limits.max_message_bytes,
        );
        let reloader = Arc::new(Reloader::new(
            settings.clone(),
            demo,
            bridge.clone(),
            metrics.clone(),
        ));
        spawn_reload_on_hangup(reloader.clone())?;
        let reloader = web::Data::from(reloader);
        let metrics = web::Data::from(metrics);
        let metrics_token = web::Data::new(MetricsToken(settings.tokens.metrics.clone()));
        let admin = web::Data::new(Admin::new(outbox.clone(), settings.tokens.admin.clone()));
        let outbox_data = web::Data::new(outbox.clone());
        let console = web::Data::new(Console::new(
            &settings,
            api_url.clone(),
            demo_device,
            Arc::new(history.clone()),
        ));
        let history_data = web::Data::new(history.clone());
        let bridge = web::Data::from(bridge);
        let body_guard = web::Data::new(http::limits::BodyGuard::new(&settings.limits.http));
        let workers = std::thread::available_parallelism().map_or(1, usize::from);
        let api_guard = pushjet_server::ApiGuard::new(&settings.limits.api);
        let mailbox = store.as_ref().map(|store| {
            web::Data::new(pushjet_server::DeviceMailbox::new(
                store.clone(),
                api_guard.clone(),
            ))
        });

        let send_timeout = settings.delivery.send_timeout;
        let server = HttpServer::new(move || {
            let store = store.clone();
            let api_guard = api_guard.clone();
            let (connector, ntfy) = (store.is_some().then(|| streams.clone()), streams.clone());
            let mailbox = mailbox.clone();
            let announcer = announcer.clone();
            let api = Api::at(api_url.clone(), send_timeout);
            App::new()
                .wrap(from_fn(http::limits::guard))
                .wrap(from_fn(http::metrics::time_requests))
                .wrap(from_fn(http::request_id::assign))
                .app_data(body_guard.clone())
                .app_data(metrics.clone())
                .app_data(metrics_token.clone())
                .app_data(bridge.clone())
                .app_data(reloader.clone())
                .app_data(outbox_data.clone())
                .app_data(admin.clone())
                .app_data(console.clone())
                .app_data(history_data.clone())
                .app_data(web::Data::new(api))
                .route("/healthz", web::get().to(http::health::healthz))
                .route("/readyz", web::get().to(http::health::readyz))
                .route("/metrics", web::get().to(http::metrics::metrics))
                .configure(http::admin::configure)
                .configure(console::configure)
                .configure(http::history::configure)
                .route("/hooks/{route}", web::post().to(http::hooks::receive))
                .route("/preview/{route}", web::post().to(http::hooks::preview))
                .configure(move |config| {
                    if let Some(streams) = connector {
                        streams.configure_connector(config);
                    }
                })
                .configure(|config| {
                    if let Some(store) = store.clone() {
                        config.service(pushjet_server::scope(store, api_guard.clone()));
                    }
                })
                .service(http::gotify::message_resource(store))
                .configure(http::ntfy_cors::configure)
                .configure(move |config| {
                    if let Some(mailbox) = mailbox {
                        config.app_data(mailbox);
                    }
                    config.app_data(web::Data::new(announcer));
                })
                .configure(http::ntfy::configure)
                .configure(move |config| ntfy.configure_ntfy(config))
        })
        .shutdown_timeout(SHUTDOWN_GRACE.as_secs())
        // A client that closes its side of the connection is gone: its request (a live stream
        // above all) ends at once instead of holding its connection until a write fails.
        .h1_allow_half_closed(false)
        .on_connect(crate::streams::websocket::remember_socket)
        .workers(workers)
        .max_connections(
            settings
                .limits
                .http
                .accepted_connections()
                .div_ceil(workers),
        )
        .client_request_timeout(settings.limits.http.header_timeout())
        .listen(listener)?
        .run();
        tracing::info!(address = %local, "listening");
        started.disarm();
        Ok(Self {
            port: local.port(),
            server,
            outbox,
            history,
            dispatcher,
            releaser,
            shutdown_grace: settings.delivery.shutdown_grace,
            hub,
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A handle that can stop the server (as SIGTERM would).
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGINT/SIGTERM (or the server handle stops it), then drains gracefully: the
    /// HTTP server stops accepting and finishes its requests (SIGINT/SIGTERM close the live
    /// streams at once), then sends in flight get the shutdown grace period and everything else
    /// stays in the outbox for the next start.
    pub async fn run_until_stopped(self) -> Result<(), AppError> {
        let handle = self.server.handle();
        let mut server = std::pin::pin!(self.server);
        let served = tokio::select! {
            served = &mut server => served,
            () = stop_when_restart_needed(&self.outbox, &handle) => server.await,
        };
        self.hub.close_all();
        self.releaser.abort();
        let report = self.dispatcher.shutdown(self.shutdown_grace).await;
        tracing::info!(
            ?report,
            "delivery stopped; pending notifications stay in the outbox"
        );
        self.history.flush(HISTORY_FLUSH).await;
        served?;
        if self.outbox.needs_restart() {
            return Err(AppError::OutboxNeedsRestart);
        }
        Ok(())
    }
}

/// Asks the server to stop gracefully once the outbox can store nothing more before a restart,
/// so that the process exits with an error and its supervisor starts it again (which replays
/// the journal); waiting would only refuse every webhook.
async fn stop_when_restart_needed(outbox: &Outbox, server: &ServerHandle) {
    while !outbox.needs_restart() {
        actix_web::rt::time::sleep(RESTART_CHECK_INTERVAL).await;
    }
    tracing::error!(
        "the outbox could not commit accepted notifications; they are safe in its journal. \
         Stopping so that the supervisor restarts the service, which restores them"
    );
    // The stop is asked at once; the server's own future says when it is done.
    drop(server.stop(true));
}

/// Closes the hub when dropped while it still holds it: a start that fails after the streams'
/// tasks were started stops them, and they let go of the store.
struct CloseHubUnlessStarted(Option<Arc<Hub>>);

impl CloseHubUnlessStarted {
    /// The start completed: the hub stays open.
    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for CloseHubUnlessStarted {
    fn drop(&mut self) {
        if let Some(hub) = self.0.take() {
            hub.close_all();
        }
    }
}

/// Reloads the configuration on every SIGHUP.
fn spawn_reload_on_hangup(reloader: Arc<Reloader>) -> Result<(), AppError> {
    let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    actix_web::rt::spawn(async move {
        while hangups.recv().await.is_some() {
            let reloader = reloader.clone();
            tracing::info!("SIGHUP: reloading the configuration");
            let _outcome_is_logged = web::block(move || reloader.reload()).await;
        }
    });
    Ok(())
}

/// How this process reaches itself: the bound address, with a wildcard turned into loopback.
fn local_base_url(local: SocketAddr) -> String {
    let ip = match local.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, local.port()))
}

/// Tells a new user how to use the demo route: how to send, and how to watch it arrive with
/// curl or in the ntfy app (the demo device's UUID being its topic).
fn announce_demo(base_url: &str, demo: &demo::Demo) {
    tracing::info!("{}", demo_instructions(base_url, demo));
}

/// The demo's start-up instructions.
fn demo_instructions(base_url: &str, demo: &demo::Demo) -> String {
    format!(
        "no routes configured, so route `demo` is ready on the embedded Pushjet API.\n  \
         send:      curl -d 'Hello from pushjet-bridge' {base_url}/hooks/demo\n  \
         stream:    curl -s {base_url}/{device}/json\n  \
         ntfy app:  add the server {base_url} and subscribe to the topic {device}\n  \
         read:      cargo run --release -- client --api {base_url}/pushjet/ device messages --uuid {device}\n  \
         subscribe: another device with public key {public}\n  \
         configure: your own routes with PUSHJET_BRIDGE_ROUTES (see the README)",
        device = demo.device,
        public = demo.public_key,
    )
}
