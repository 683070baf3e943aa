//! Gotify's message API at the root, `POST /message`, and, on the same path, the Pushjet send of
//! Apprise's `pjet://` plugin. See `docs/ntfy-gotify.md`.
//!
//! **Gotify.** The application token (`?token=`, else `X-Gotify-Key`, else
//! `Authorization: Bearer`) names the route whose `TOKEN` it is (the first by name when routes
//! share a token); a missing token, or one no route has, is a 401 that does not say which. The fields `title`, `message` (required) and `priority`
//! come as JSON, as a form (urlencoded, or multipart as `curl -F` sends), or in the query string; `extras` only in JSON, where
//! `extras["client::notification"].click.url` is the link. The message goes through the pipeline
//! as a webhook of the route (source `gotify`, so `templates/gotify/` renders it, the priority
//! mapped to importance as `src/sources/gotify.rs` documents) and the outbox. The answer is the
//! message as Gotify returns it: `id` (the first outbox id, or 0 when nothing was queued),
//! `appid`, `message`, `title`, `priority`, `extras` and `date` (RFC 3339).
//!
//! **Apprise's Pushjet.** `pjet://HOST:PORT/SECRET` posts to `/message/` at the root of the host
//! with the service's secret in the query string; such a request (a non-empty `secret` in the
//! query) is the embedded Pushjet API's `POST /message`, which reads Apprise's JSON body (see
//! `crate::pushjet_server`). A Gotify request never carries `secret`.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, Resource, ResponseError, guard, web};
use serde_json::{Map, Value, json};

use crate::delivery::Outbox;
use crate::http::error::HookError;
use crate::http::hooks::{self, Accepted, Handed, Handoff};
use crate::metrics::Metrics;
use crate::pipeline::{Bridge, Inbound};
use crate::pushjet::Api;
use crate::pushjet_server::{self, Store};
use crate::reload::SharedBridge;
use crate::routes::Route;
use crate::secret::authorization_credentials;
use crate::sources::SourceKind;
use crate::verify::AuthError;

/// Gotify's header for an application token.
const KEY_HEADER: &str = "x-gotify-key";
/// The application id every answer names (routes are the bridge's applications).
const APP_ID: u64 = 1;

/// `POST /message` and `POST /message/`: Apprise's Pushjet send when the query names a `secret`
/// and the embedded Pushjet API runs (`store`), Gotify's message otherwise.
pub fn message_resource(store: Option<Arc<Store>>) -> Resource {
    let resource = web::resource(["/message", "/message/"]);
    let resource = match store {
        Some(store) => resource.app_data(web::Data::from(store)).route(
            pushjet_server::send_message_route().guard(guard::fn_guard(|context| {
                names_a_secret(context.head().uri.query().unwrap_or_default())
            })),
        ),
        None => resource,
    };
    resource.route(web::post().to(publish))
}

/// Whether a query string has a non-empty `secret`.
fn names_a_secret(query: &str) -> bool {
    url::form_urlencoded::parse(query.as_bytes())
        .any(|(key, value)| key == "secret" && !value.is_empty())
}

/// `POST /message`: Gotify's publish.
pub async fn publish(
    request: HttpRequest,
    payload: web::Payload,
    bridge: web::Data<SharedBridge>,
    outbox: web::Data<Outbox>,
    api: web::Data<Api>,
    metrics: web::Data<Metrics>,
) -> HttpResponse {
    let started = Instant::now();
    let bridge = bridge.load_full();
    let mut route = None;
    let outcome = accept(
        &request,
        payload,
        &bridge,
        Handoff {
            outbox: &outbox,
            api: &api,
            metrics: &metrics,
            announcer: hooks::announcer(&request),
        },
        &mut route,
    )
    .await;
    let (accepted, message) = hooks::observe_adapted(&metrics, &request, route, outcome, started);
    match accepted {
        Ok(accepted) => HttpResponse::Ok().json(answer(&accepted, message)),
        Err(error) => error.error_response(),
    }
}

/// Finds the route by its token, reads the message and hands it to the pipeline.
async fn accept<'b>(
    request: &HttpRequest,
    payload: web::Payload,
    bridge: &'b Bridge,
    handoff: Handoff<'_>,
    found: &mut Option<&'b Route>,
) -> Result<(Accepted<'b>, Map<String, Value>), HookError> {
    let query: Vec<(String, String)> =
        url::form_urlencoded::parse(request.query_string().as_bytes())
            .into_owned()
            .collect();
    let (token, in_header) = token(request.headers(), &query)?;
    let route = bridge
        .routes
        .iter()
        .find(|route| route.auth.has_token(&token))
        .ok_or(HookError::Unauthorized(AuthError::TokenMismatch))?;
    *found = Some(route);
    let body = hooks::read_adapted_body(request, payload, bridge.max_body_bytes).await?;
    let message = read_message(request.headers(), &body, &query)?;
    let mut headers = request.headers().clone();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if in_header && let Ok(bearer) = HeaderValue::from_str(&format!("Bearer {token}")) {
        headers.insert(header::AUTHORIZATION, bearer);
    }
    let body = Value::Object(message.clone()).to_string();
    let inbound = Inbound {
        headers: &headers,
        query: request.query_string(),
        body: body.as_bytes(),
    };
    crate::http::recording::keep_input(request, &inbound, Some(SourceKind::Gotify.as_str()));
    let accepted =
        hooks::accept_adapted(route, inbound, SourceKind::Gotify, bridge, handoff).await?;
    Ok((accepted, message))
}

/// The application token and whether it came in a header (rather than `?token=`).
fn token(headers: &HeaderMap, query: &[(String, String)]) -> Result<(String, bool), HookError> {
    if let Some((_, token)) = query
        .iter()
        .find(|(key, value)| key == "token" && !value.is_empty())
    {
        return Ok((token.clone(), false));
    }
    let key = headers
        .get(KEY_HEADER)
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .filter(|key| !key.is_empty());
    key.or_else(|| authorization_credentials(headers, "bearer").next())
        .map(|token| (token.to_owned(), true))
        .ok_or(HookError::Unauthorized(AuthError::MissingToken))
}

/// Gotify's message from a JSON body, a form body, or the query string (in that order of
/// precedence, field by field).
fn read_message(
    headers: &HeaderMap,
    body: &[u8],
    query: &[(String, String)],
) -> Result<Map<String, Value>, HookError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .map(|essence| essence.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let mut fields: Map<String, Value> = match content_type.as_str() {
        "application/json" => match serde_json::from_slice(body) {
            Ok(Value::Object(fields)) => fields,
            _ => return Err(invalid("the body is not a JSON object")),
        },
        "application/x-www-form-urlencoded" => url::form_urlencoded::parse(body)
            .into_owned()
            .filter(|(key, _)| key != "extras")
            .map(|(key, value)| (key, Value::String(value)))
            .collect(),
        "multipart/form-data" => crate::sources::multipart_form_fields(headers, body)
            .map_err(|_| invalid("the multipart form body cannot be read"))?
            .into_iter()
            .filter(|(key, _)| key != "extras")
            .map(|(key, value)| (key, Value::String(value)))
            .collect(),
        _ => Map::new(),
    };
    for key in ["title", "message", "priority"] {
        if !fields.contains_key(key)
            && let Some((_, value)) = query.iter().find(|(name, _)| name == key)
        {
            fields.insert(key.into(), value.clone().into());
        }
    }
    let mut message = Map::new();
    let text = |value: Option<&Value>| match value {
        Some(Value::String(text)) => Ok(text.clone()),
        None | Some(Value::Null) => Ok(String::new()),
        Some(_) => Err(invalid("title and message must be text")),
    };
    let body_text = text(fields.get("message"))?;
    if body_text.trim().is_empty() {
        return Err(invalid("the message field is required"));
    }
    message.insert("title".into(), text(fields.get("title"))?.into());
    message.insert("message".into(), body_text.into());
    match fields.get("priority") {
        None | Some(Value::Null) => {}
        Some(Value::Number(number)) if number.is_i64() => {
            message.insert("priority".into(), number.clone().into());
        }
        Some(Value::String(raw)) if raw.trim().parse::<i64>().is_ok() => {
            let priority: i64 = raw.trim().parse().unwrap_or_default();
            message.insert("priority".into(), priority.into());
        }
        Some(_) => return Err(invalid("the priority must be a whole number from 0 to 10")),
    }
    if let Some(extras @ Value::Object(_)) = fields.get("extras") {
        message.insert("extras".into(), extras.clone());
    }
    Ok(message)
}

fn invalid(why: &str) -> HookError {
    HookError::InvalidParameter(why.to_owned())
}

/// The message as Gotify answers a publish.
fn answer(accepted: &Accepted<'_>, message: Map<String, Value>) -> Value {
    let id = match accepted.handed() {
        Handed::Queued(ids) => ids.first().copied().unwrap_or(0),
        _ => 0,
    };
    let date = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let mut answer = json!({
        "id": id,
        "appid": APP_ID,
        "message": message.get("message").cloned().unwrap_or_default(),
        "title": message.get("title").cloned().unwrap_or_default(),
        "priority": message.get("priority").cloned().unwrap_or(json!(0)),
        "date": date,
    });
    if let Some(extras) = message.get("extras") {
        answer["extras"] = extras.clone();
    }
    answer
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::test_support::headers;

    fn query(raw: &str) -> Vec<(String, String)> {
        url::form_urlencoded::parse(raw.as_bytes())
            .into_owned()
            .collect()
    }

    #[test]
    fn the_token_comes_from_the_query_then_the_key_header_then_bearer() {
        let both = headers(&[
            ("X-Gotify-Key", "from-header"),
            ("Authorization", "Bearer b"),
        ]);
        assert_eq!(
            token(&both, &query("token=q")).ok(),
            Some(("q".to_owned(), false))
        );
        assert_eq!(
            token(&both, &[]).ok(),
            Some(("from-header".to_owned(), true))
        );
        let bearer = headers(&[("Authorization", "Bearer b")]);
        assert_eq!(token(&bearer, &[]).ok(), Some(("b".to_owned(), true)));
        let error = token(&headers(&[]), &[]).expect_err("no token");
        assert_eq!(error.status_code(), 401);
    }

    #[test]
    fn json_form_and_query_bodies_give_the_same_message() {
        let expected = json!({"title": "Backup", "message": "done", "priority": 8});
        let json_body = read_message(
            &headers(&[("Content-Type", "application/json")]),
            br#"{"title":"Backup","message":"done","priority":8}"#,
            &[],
        );
        let form = read_message(
            &headers(&[("Content-Type", "application/x-www-form-urlencoded")]),
            b"title=Backup&message=done&priority=8",
            &[],
        );
        let in_query = read_message(
            &headers(&[]),
            b"",
            &query("title=Backup&message=done&priority=8"),
        );
        for message in [json_body, form, in_query] {
            assert_eq!(message.map(Value::Object).ok(), Some(expected.clone()));
        }
    }

    #[test]
    fn a_missing_message_or_a_bad_priority_is_a_400() {
        let json = headers(&[("Content-Type", "application/json")]);
        for body in [
            &br#"{"title":"x"}"#[..],
            br#"{"message":"x","priority":"high"}"#,
            b"[1]",
        ] {
            let error = read_message(&json, body, &[]).expect_err("refused");
            assert_eq!(error.status_code(), 400);
        }
    }

    #[test]
    fn only_a_non_empty_secret_is_apprise_pushjet() {
        assert!(names_a_secret("secret=0123"));
        assert!(!names_a_secret("secret="));
        assert!(!names_a_secret("token=abc"));
    }
}
