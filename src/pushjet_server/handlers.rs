//! The endpoints. Each one checks its parameters in the real server's order (uuid → service →
//! secret → endpoint-specific), awaits its storage work (see [`Store`]) and answers with
//! the real server's body and content type.

use actix_web::http::StatusCode;
use actix_web::http::header::{ALLOW, LOCATION};
use actix_web::{HttpResponse, web};
use futures_util::future::BoxFuture;
use serde::Serialize;

use super::error::{ProtocolError, TEXT_HTML, html_page};
use super::fields::{Icon, Link, ServiceName, TooLong};
use super::form::Params;
use super::store::{NewMessage, Store, StoreError};
use crate::pushjet::wire::{
    MessagesEnvelope, STATUS_OK, ServiceEnvelope, ServiceView, SubscriptionsEnvelope,
};
use crate::pushjet::{
    FieldError, Importance, MESSAGE_MAX_BYTES, MessageText, PublicKey, SecretKey, Title,
};

/// Where `GET /` sends a browser, as the real server does.
pub(crate) const DOCS_URL: &str = "http://docs.pushjet.io";

type Answer = Result<HttpResponse, ProtocolError>;

/// Runs storage work (the backend's: the blocking thread pool for redb, the database's pool
/// for PostgreSQL) and turns its failure into the protocol's.
async fn storage<T, F>(store: &web::Data<Store>, work: F) -> Result<T, ProtocolError>
where
    F: FnOnce(&Store) -> BoxFuture<'static, Result<T, StoreError>>,
{
    Ok(work(store.get_ref()).await?)
}

/// A data object, `application/json`.
fn json<T: Serialize>(value: &T) -> Answer {
    let body =
        serde_json::to_vec(value).map_err(|error| ProtocolError::Internal(error.to_string()))?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(body))
}

/// The acknowledgement `{"status": "ok"}`, `text/html` like the real server.
fn status_ok() -> HttpResponse {
    HttpResponse::Ok().content_type(TEXT_HTML).body(STATUS_OK)
}

/// Fails with id 6 unless a service has this secret.
async fn require_service(
    store: &web::Data<Store>,
    secret: &SecretKey,
) -> Result<ServiceView, ProtocolError> {
    let secret = secret.clone();
    storage(store, move |store| store.service_by_secret(&secret))
        .await?
        .ok_or(ProtocolError::ServiceNotFound)
}

/// `POST /service`: creates a service and shows it with its secret.
pub(crate) async fn create_service(store: web::Data<Store>, params: Params) -> Answer {
    let name = ServiceName::new(params.field("name").unwrap_or_default())?;
    if name.is_empty() {
        return Err(ProtocolError::MissingArgument("name"));
    }
    let icon = Icon::new(params.field("icon").unwrap_or_default())?;
    let service = storage(&store, move |store| store.create_service(&name, &icon)).await?;
    json(&ServiceEnvelope { service })
}

/// `GET /service`: shows a service found by public key (preferred) or by secret, without secret.
pub(crate) async fn read_service(store: web::Data<Store>, params: Params) -> Answer {
    let service = if let Some(raw) = params.identity("service") {
        let public = PublicKey::parse(raw).map_err(|_| ProtocolError::InvalidService)?;
        storage(&store, move |store| store.service_by_public(&public)).await?
    } else if let Some(raw) = params.identity("secret") {
        let secret = SecretKey::parse(raw).map_err(|_| ProtocolError::InvalidSecret)?;
        storage(&store, move |store| store.service_by_secret(&secret)).await?
    } else {
        return Err(ProtocolError::MissingArgument("service"));
    };
    json(&ServiceEnvelope {
        service: service.ok_or(ProtocolError::ServiceNotFound)?,
    })
}

/// `PATCH /service`: stores each of `name` and `icon` that is present, even when empty.
pub(crate) async fn update_service(store: web::Data<Store>, params: Params) -> Answer {
    let secret = params.secret()?;
    require_service(&store, &secret).await?;
    let name = params.field("name").map(ServiceName::new).transpose()?;
    let icon = params.field("icon").map(Icon::new).transpose()?;
    if name.is_none() && icon.is_none() {
        return Err(ProtocolError::NoChanges);
    }
    storage(&store, move |store| {
        store.update_service(&secret, name.as_ref(), icon.as_ref())
    })
    .await?;
    Ok(status_ok())
}

/// `DELETE /service`: deletes the service, its subscriptions and its messages.
pub(crate) async fn delete_service(store: web::Data<Store>, params: Params) -> Answer {
    let secret = params.secret()?;
    storage(&store, move |store| store.delete_service(&secret)).await?;
    Ok(status_ok())
}

/// `POST /message`: stores a message for the service's subscribers; with no subscribers it
/// answers ok without storing or checking sizes, like the real server.
pub(crate) async fn send_message(store: web::Data<Store>, params: Params) -> Answer {
    let secret = params.secret()?;
    let service = require_service(&store, &secret).await?;
    let text = params
        .field("message")
        .filter(|text| !text.is_empty())
        .ok_or(ProtocolError::MissingArgument("message"))?;
    let public = service.public;
    if storage(&store, move |store| store.subscriber_count(&public)).await? == 0 {
        return Ok(status_ok());
    }
    let message = NewMessage {
        text: message_text(text)?,
        title: Title::new(params.field("title").unwrap_or_default()),
        link: Link::new(params.field("link").unwrap_or_default())?,
        level: Importance::from_level_field(params.field("level")),
    };
    storage(&store, move |store| store.send_message(&secret, &message)).await?;
    Ok(status_ok())
}

fn message_text(raw: &str) -> Result<MessageText, ProtocolError> {
    MessageText::new(raw).map_err(|error| match error {
        FieldError::MessageTooLong(length) => TooLong {
            field: "message",
            length,
            limit: MESSAGE_MAX_BYTES,
            unit: "bytes",
        }
        .into(),
        FieldError::EmptyMessage | FieldError::Importance | FieldError::Link => {
            ProtocolError::MissingArgument("message")
        }
    })
}

/// `GET /message`: the device's unread messages, which are then marked read.
pub(crate) async fn fetch_messages(store: web::Data<Store>, params: Params) -> Answer {
    let device = params.uuid()?;
    let messages = storage(&store, move |store| store.fetch_messages(&device)).await?;
    json(&MessagesEnvelope { messages })
}

/// `DELETE /message`: marks everything read for the device.
pub(crate) async fn mark_all_read(store: web::Data<Store>, params: Params) -> Answer {
    let device = params.uuid()?;
    storage(&store, move |store| store.mark_all_read(&device)).await?;
    Ok(status_ok())
}

/// `POST /subscription`: subscribes a device to a service.
pub(crate) async fn subscribe(store: web::Data<Store>, params: Params) -> Answer {
    let device = params.uuid()?;
    let public = params.service()?;
    let service = storage(&store, move |store| store.subscribe(&device, &public)).await?;
    json(&ServiceEnvelope { service })
}

/// `GET /subscription`: the device's subscriptions.
pub(crate) async fn list_subscriptions(store: web::Data<Store>, params: Params) -> Answer {
    let device = params.uuid()?;
    let subscriptions = storage(&store, move |store| store.subscriptions(&device)).await?;
    json(&SubscriptionsEnvelope { subscriptions })
}

/// `DELETE /subscription`: unsubscribes a device from a service.
pub(crate) async fn unsubscribe(store: web::Data<Store>, params: Params) -> Answer {
    let device = params.uuid()?;
    let public = params.service()?;
    storage(&store, move |store| store.unsubscribe(&device, &public)).await?;
    Ok(status_ok())
}

/// `GET /`: a redirect to the protocol's documentation.
pub(crate) async fn root() -> HttpResponse {
    HttpResponse::Found()
        .insert_header((LOCATION, DOCS_URL))
        .content_type(TEXT_HTML)
        .body(format!(
            "<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 3.2 Final//EN\">\n<title>Redirecting...</title>\n\
             <h1>Redirecting...</h1>\n<p>You should be redirected automatically to target URL: \
             <a href=\"{DOCS_URL}\">{DOCS_URL}</a>.  If not click the link.\n"
        ))
}

/// `GET /version`: this crate's version as text.
pub(crate) async fn version() -> HttpResponse {
    HttpResponse::Ok()
        .content_type(TEXT_HTML)
        .body(env!("CARGO_PKG_VERSION"))
}

/// Any path the protocol does not have (including `/gcm`, as on a server without a Google key).
pub(crate) async fn not_found() -> HttpResponse {
    HttpResponse::NotFound().content_type(TEXT_HTML).body(html_page(
        StatusCode::NOT_FOUND,
        "The requested URL was not found on the server.  If you entered the URL manually please \
         check your spelling and try again.",
    ))
}

/// A known path asked with a method it does not answer; `allow` lists the methods it does.
pub(crate) fn method_not_allowed(allow: &'static str) -> actix_web::Route {
    web::to(move || async move {
        HttpResponse::MethodNotAllowed()
            .insert_header((ALLOW, allow))
            .content_type(TEXT_HTML)
            .body(html_page(
                StatusCode::METHOD_NOT_ALLOWED,
                "The method is not allowed for the requested URL.",
            ))
    })
}
