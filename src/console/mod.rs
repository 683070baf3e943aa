//! The console at `/console/`: server-rendered pages over what the admin API and the pipeline
//! already do, for the people who run the bridge. Off (404) unless `PUSHJET_BRIDGE_ADMIN_TOKEN`
//! is set; signing in with that token sets a session cookie ([`session`]).
//!
//! | path | what |
//! |---|---|
//! | `GET /console/sign-in`, `POST /console/sign-in`, `POST /console/sign-out` | [`signin`] |
//! | `GET /console/` | [`overview`]: the routes, the upstream, readiness and the database |
//! | `GET /console/dead-letters`, `POST /console/dead-letters/…` | [`dead_letters`]: list, retry one or all, purge |
//! | `GET /console/history`, `GET /console/api/history/stream` | [`history_list`]: the delivery history, filtered and paged, new webhooks arriving live |
//! | `GET /console/history/{id}`, `POST /console/history/{id}/replay`, `…/rerender`, `GET /console/api/history/{id}/body` | [`webhook`]: one webhook's story, sent again, copied as curl |
//! | `GET /console/playground`, `POST /console/api/preview`, `GET /console/api/example/{name}` | [`playground`]: a template edited against a payload, rendered by the real pipeline |
//! | `GET /console/inbox` | [`inbox`]: a device's messages live, through the ntfy-compatible SSE stream |
//! | `GET /console/assets/{name}` | [`assets`]: the stylesheet and the script, under names that change with their content |
//!
//! Pages are askama templates (`src/console/templates/`, checked at compile time, HTML escaped
//! by default). Every state-changing request carries the session's CSRF token. No page shows a
//! secret: a route's secrets appear as the kinds of authentication it requires. The overview's
//! numbers from the delivery history (a route's last webhook, its 24-hour counts) come through
//! [`history`].

pub mod address;
pub mod assets;
mod dead_letters;
pub mod error;
pub mod failures;
pub mod history;
mod history_list;
mod inbox;
mod overview;
mod pages;
mod playground;
pub mod session;
mod signin;
mod webhook;

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use actix_web::middleware::DefaultHeaders;
use actix_web::{HttpRequest, web};

use crate::config::Settings;
use crate::pushjet::{ApiUrl, DeviceUuid};
use crate::secret::Secret;
use address::Client;
use assets::Assets;
use error::ConsoleError;
use failures::SignInFailures;
use history::HistorySummary;
use session::{COOKIE, Session, Sessions};

/// The Content-Security-Policy of every console answer: the console's own script and stylesheet
/// only, no inline code, no framing.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
     base-uri 'none'";

/// Where notifications go, as the overview shows it.
#[derive(Debug, Clone)]
pub enum Upstream {
    /// The embedded Pushjet API of this process.
    Embedded(ApiUrl),
    /// A Pushjet server elsewhere (`PUSHJET_API_URL`).
    Remote(ApiUrl),
}

/// What the console needs, registered as `web::Data<Console>`.
pub struct Console {
    admin_token: Option<Secret>,
    sessions: Option<Sessions>,
    failures: SignInFailures,
    trusted_proxies: Vec<IpAddr>,
    assets: Assets,
    upstream: Upstream,
    database: bool,
    templates_dir: Option<PathBuf>,
    demo_device: Option<DeviceUuid>,
    history: Arc<dyn HistorySummary>,
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Console")
            .field("on", &self.sessions.is_some())
            .finish_non_exhaustive()
    }
}

impl Console {
    /// The console for these settings: on when they have an admin token. `api_url` is where
    /// notifications are sent; `demo_device` the demo route's device, when there is one.
    pub fn new(
        settings: &Settings,
        api_url: ApiUrl,
        demo_device: Option<DeviceUuid>,
        history: Arc<dyn HistorySummary>,
    ) -> Self {
        let upstream = if settings.pushjet.api_url.is_some() {
            Upstream::Remote(api_url)
        } else {
            Upstream::Embedded(api_url)
        };
        Self {
            admin_token: settings.tokens.admin.clone(),
            sessions: settings
                .tokens
                .admin
                .as_ref()
                .map(|token| Sessions::new(token, settings.console.session)),
            failures: SignInFailures::default(),
            trusted_proxies: settings.console.trusted_proxies.clone(),
            assets: Assets::new(),
            upstream,
            database: settings.delivery.database.is_some(),
            templates_dir: settings.templates_dir.clone(),
            demo_device,
            history,
        }
    }

    /// The sessions, or [`ConsoleError::Off`] when the console is off.
    fn sessions(&self) -> Result<&Sessions, ConsoleError> {
        self.sessions.as_ref().ok_or(ConsoleError::Off)
    }

    /// Who sent `request`.
    fn client(&self, request: &HttpRequest) -> Client {
        Client::of(request, &self.trusted_proxies)
    }

    /// The session of a page request; [`ConsoleError::SignInNeeded`] (a redirect) without one.
    fn page_session(&self, request: &HttpRequest) -> Result<Session, ConsoleError> {
        self.session(request).ok_or(ConsoleError::SignInNeeded)
    }

    /// The session of a request that changes something, with its CSRF token checked:
    /// [`ConsoleError::Unauthorized`] without a session, [`ConsoleError::Csrf`] without the
    /// session's token.
    fn acting_session(
        &self,
        request: &HttpRequest,
        csrf: Option<&str>,
    ) -> Result<Session, ConsoleError> {
        let session = self.session(request).ok_or(ConsoleError::Unauthorized)?;
        match csrf {
            Some(token) if session.accepts_csrf(token) => Ok(session),
            _ => Err(ConsoleError::Csrf),
        }
    }

    fn session(&self, request: &HttpRequest) -> Option<Session> {
        let sessions = self.sessions.as_ref()?;
        let cookie = request.cookie(COOKIE)?;
        sessions.check(cookie.value(), SystemTime::now())
    }
}

/// Mounts the console under `/console`; needs `web::Data<Console>`, `web::Data<SharedBridge>`,
/// `web::Data<Outbox>` and `web::Data<History>`.
pub fn configure(config: &mut web::ServiceConfig) {
    config.route(
        "/console",
        web::get().to(|| async { pages::see_other("/console/") }),
    );
    config.service(
        web::scope("/console")
            .wrap(
                DefaultHeaders::new()
                    .add(("Content-Security-Policy", CONTENT_SECURITY_POLICY))
                    .add(("X-Content-Type-Options", "nosniff"))
                    .add(("Referrer-Policy", "no-referrer"))
                    .add(("X-Frame-Options", "DENY")),
            )
            .app_data(web::FormConfig::default().limit(pages::FORM_LIMIT))
            .app_data(web::JsonConfig::default().limit(playground::PREVIEW_LIMIT))
            .app_data(web::Data::new(crate::http::history::OpenStreams::default()))
            .route("/", web::get().to(overview::page))
            .route("/sign-in", web::get().to(signin::form))
            .route("/sign-in", web::post().to(signin::sign_in))
            .route("/sign-out", web::post().to(signin::sign_out))
            .route("/dead-letters", web::get().to(dead_letters::page))
            .route(
                "/dead-letters/retry",
                web::post().to(dead_letters::retry_all),
            )
            .route(
                "/dead-letters/{id}/retry",
                web::post().to(dead_letters::retry_one),
            )
            .route(
                "/dead-letters/{id}/purge",
                web::post().to(dead_letters::purge),
            )
            .route("/history", web::get().to(history_list::page))
            .route("/history/{id}", web::get().to(webhook::page))
            .route("/history/{id}/replay", web::post().to(webhook::replay))
            .route("/history/{id}/rerender", web::post().to(webhook::rerender))
            .route("/api/history/stream", web::get().to(history_list::stream))
            .route("/api/history/{id}/body", web::get().to(webhook::body))
            .route("/playground", web::get().to(playground::page))
            .route("/api/preview", web::post().to(playground::preview))
            .route("/api/example/{name}", web::get().to(playground::example))
            .route("/inbox", web::get().to(inbox::page))
            .route("/assets/{name}", web::get().to(assets::serve)),
    );
}

#[cfg(test)]
mod tests;
