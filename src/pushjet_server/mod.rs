//! The embedded Pushjet-compatible API server: the real Pushjet server's HTTP protocol (see
//! `docs/pushjet-protocol.md`, §0 and §1.1–§1.12), served under `/pushjet` and stored in one
//! redb file (or, for several replicas, in the PostgreSQL database they share), so the bridge can
//! run without a separate Pushjet installation.
//!
//! The real Python client works against it with `pushjet.Api("http://HOST:PORT/pushjet/")`.
//!
//! ```no_run
//! use std::sync::Arc;
//! use actix_web::{App, HttpServer};
//! use pushjet_bridge::pushjet_server::{self, Store};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let store = Arc::new(Store::open(std::path::Path::new("/var/lib/pushjet-bridge"))?);
//! let guard = pushjet_server::ApiGuard::default();
//! HttpServer::new(move || App::new().service(pushjet_server::scope(store.clone(), guard.clone())))
//!     .bind(("127.0.0.1", 8080))?
//!     .run()
//!     .await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Endpoints
//!
//! | path | methods |
//! |---|---|
//! | `/pushjet/service` | `POST` create, `GET` read, `PATCH` edit, `DELETE` delete |
//! | `/pushjet/message` (also `/pushjet/message/`) | `POST` send, `GET` fetch and mark read, `DELETE` mark all read |
//! | `/pushjet/subscription` | `POST` subscribe, `GET` list, `DELETE` unsubscribe |
//! | `/pushjet/` | `GET` → 302 to `http://docs.pushjet.io` |
//! | `/pushjet/version` | `GET` → this crate's version |
//!
//! Parameters come as `application/x-www-form-urlencoded` or `multipart/form-data` bodies (on
//! every method, `DELETE` and `PATCH` included); `secret`, `service` and `uuid` may also be in the
//! query string (a non-empty body value wins), every other field only counts in the body. Any other
//! body is ignored, so its fields are missing; except that a JSON object sent as
//! `application/x-www-form-urlencoded` (what Apprise's `pjet://` plugin sends, to `/message/` at
//! the root of the host, which the bridge also serves) gives its plain members as fields.
//!
//! Anything else under `/pushjet` is a 404 HTML page (`/gcm` included, as on a server without a
//! Google key); a known path with another method is a 405 HTML page with an `Allow` header.
//!
//! # Deliberate differences from the real server
//!
//! | situation | real server | here |
//! |---|---|---|
//! | `message` over 65,535 bytes (service has subscribers) | 500 HTML, nothing stored | 400 id 7 `Argument message is N bytes long; at most 65535 bytes are allowed` |
//! | `name` over 255 characters (`POST`/`PATCH /service`) | 500 HTML | 400 id 7 `Argument name is N characters long; at most 255 characters are allowed` |
//! | `link` or `icon` over 65,535 bytes | 500 HTML | 400 id 7 `Argument link is N bytes long; …` (same for `icon`) |
//! | request body over 1 MiB | accepted | 413 id 7 `Request body too large: at most 1048576 bytes are accepted` |
//! | form body or query string that decodes to invalid UTF-8 | bad bytes replaced by U+FFFD | 400 id 7 `Malformed request: …` |
//! | `GET /version` | first 7 characters of the git commit, or 500 outside a checkout | the crate version, e.g. `0.1.0` |
//! | key with one trailing newline (`secret=…%0A`) | passes the regex (Python's `$`), then 404 id 6 (or, for a `uuid`, stored with the newline) | malformed: 400 id 1/2/3 |
//! | `HEAD`, `OPTIONS` | answered by Flask | 405 |
//! | a JSON object body under the form content type (Apprise's `pjet://`) | no fields: 400 `message` missing | its text, number and boolean members are the fields |
//! | `/robots.txt`, `/favicon.ico` | static files | 404 (crawlers only read them at the host's root) |
//! | messages every subscriber has read | deleted after a send and a fetch | also deleted after an unsubscribe (never visible either way) |
//!
//! Why id 7 for the new errors: id 7 is the protocol's "a request argument is unusable" error,
//! which every known client treats as a permanent caller error (fix the request, do not retry),
//! and that is exactly what these are. No client knows ids above 11, so a new id would only be
//! "unknown". The message text never starts with `Missing argument`, so a person can tell them
//! apart. The HTTP status (400 or 413) is what the Python client looks at.
//!
//! Limits the real server does not have (see [`crate::config::ApiLimits`]): writes per client address (429, id
//! 5), an optional token to create services (401, id 7), unread messages kept per service and
//! device and their age (the oldest dropped), the bytes of one `GET /message` answer (the rest
//! stays unread), and the database's size (507, id 7).
//!
//! Not implemented, as on the real server without the optional parts configured: the GCM
//! endpoints, the ZeroMQ relay, rate limiting.
//!
//! Live push replaces the relay: the store announces what it commits ([`StoreEvents`]; on
//! PostgreSQL, what any replica commits) and `crate::streams` serves it at `/pushjet/ws` (the
//! connector protocol) and as ntfy streams.

mod direct;
mod error;
mod events;
mod fields;
mod form;
mod handlers;
mod limits;
mod store;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use actix_web::dev::HttpServiceFactory;
use actix_web::web;

pub use direct::{DIRECT_SERVICE_NAME, DeviceMailbox, DirectError};
pub use events::{RouteDelivered, STREAM_ID_LENGTH, StoreEvents, StoredMessage, new_stream_id};
pub use fields::{Icon, Link, NAME_MAX_CHARS, ServiceName, TEXT_COLUMN_MAX_BYTES, TooLong};
pub use form::BODY_LIMIT_BYTES;
pub use limits::ApiGuard;
pub(crate) use store::DemoKeys;
pub use store::{
    DATABASE_FILE_NAME, NewMessage, SendOutcome, Store, StoreError, StoreLimits, StoreOptions,
    Unread,
};

/// `POST /message` alone, for mounting where Apprise's `pjet://` plugin posts (the root of the
/// host); the resource that mounts it must hold the [`Store`] as app data.
pub fn send_message_route() -> actix_web::Route {
    web::post().to(handlers::send_message)
}

/// All endpoints under `/pushjet`, sharing `store`. Request bodies over [`BODY_LIMIT_BYTES`] are
/// refused with 413, whatever payload limits the surrounding app sets. Writes are rate limited
/// and creating services may need a token, as the `guard`'s limits say; make the guard once and
/// give each worker's scope a clone, so that all share one rate limit.
pub fn scope(store: Arc<Store>, guard: ApiGuard) -> impl HttpServiceFactory {
    web::scope("/pushjet")
        .app_data(web::Data::from(store))
        .app_data(guard.limiter)
        .app_data(guard.limits)
        .wrap(actix_web::middleware::from_fn(limits::guard))
        .service(
            web::resource(["", "/"])
                .route(web::get().to(handlers::root))
                .default_service(handlers::method_not_allowed("GET")),
        )
        .service(
            web::resource("/version")
                .route(web::get().to(handlers::version))
                .default_service(handlers::method_not_allowed("GET")),
        )
        .service(
            web::resource("/service")
                .route(web::post().to(handlers::create_service))
                .route(web::get().to(handlers::read_service))
                .route(web::patch().to(handlers::update_service))
                .route(web::delete().to(handlers::delete_service))
                .default_service(handlers::method_not_allowed("DELETE, GET, PATCH, POST")),
        )
        .service(
            web::resource(["/message", "/message/"])
                .route(web::post().to(handlers::send_message))
                .route(web::get().to(handlers::fetch_messages))
                .route(web::delete().to(handlers::mark_all_read))
                .default_service(handlers::method_not_allowed("DELETE, GET, POST")),
        )
        .service(
            web::resource("/subscription")
                .route(web::post().to(handlers::subscribe))
                .route(web::get().to(handlers::list_subscriptions))
                .route(web::delete().to(handlers::unsubscribe))
                .default_service(handlers::method_not_allowed("DELETE, GET, POST")),
        )
        .default_service(web::to(handlers::not_found))
}
