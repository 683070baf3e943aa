//! ntfy's publish API at the root, a route's name being the topic: `PUT`/`POST /<route>` with the
//! message as the body (or the `message` parameter) and ntfy's parameters, and `PUT`/`POST /`
//! with ntfy's JSON message (`{"topic": "<route>", "message", "title", "priority", ...}`), which
//! Apprise's `ntfy://` and Uptime Kuma send. See `docs/ntfy-gotify.md`.
//!
//! Each parameter is read from a header under any of its names (case-insensitive), then from the
//! query string under its lower-case names: title (`X-Title`, `Title`, `t`), message
//! (`X-Message`, `Message`, `m`; a literal `\n` in it is a line break), priority (`X-Priority`,
//! `Priority`, `prio`, `p`: `1`..`5` or `min`, `low`, `default`, `high`, `max`, `urgent`), tags
//! (`X-Tags`, `Tags`, `tag`, `ta`), click (`X-Click`, `Click`), icon (`X-Icon`, `Icon`), actions
//! (`X-Actions`, `Actions`, `action`: ntfy's short form or its JSON array) and markdown
//! (`X-Markdown`, `Markdown`, `md`). A JSON body's fields win over the parameters, as on ntfy.
//!
//! The request becomes ntfy's JSON message and goes through the pipeline as a webhook of the
//! route (source `ntfy`, so `templates/ntfy/` renders it) and the outbox, with the route's
//! authentication: its `TOKEN` as `Authorization: Bearer` (or as basic auth's password with an
//! empty user, as ntfy's apps send a token), its `BASIC_AUTH`, or either as ntfy's `?auth=`
//! parameter (the whole `Authorization` value, base64url-encoded). A topic that is a device UUID
//! publishes to that device alone instead (`super::ntfy_device`). Every answer is open to every
//! origin, and the paths answer CORS preflights, for ntfy's web app. The answer is the
//! message as ntfy returns it: `id`, `time`, `expires`, `event`, `topic` and the fields set.
//! Delays, e-mail, calls, attachments and caching are not supported; a body that is not UTF-8
//! text (an attachment, for ntfy) is refused with 400.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use actix_web::http::Method;
use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use serde_json::{Map, Value};

use crate::delivery::Outbox;
use crate::http::error::HookError;
use crate::http::hooks::{self, Accepted, Handoff};
use crate::metrics::Metrics;
use crate::pipeline::{Bridge, Inbound};
use crate::pushjet::{Api, DeviceUuid};
use crate::pushjet_server::DeviceMailbox;
use crate::reload::SharedBridge;
use crate::routes::Route;
use crate::secret::{authorization_credentials, ntfy_auth_param};
use crate::sources::{SourceKind, parse_ntfy_priority};
use crate::streams::ntfy::{preflight, with_cors};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// How long ntfy's default cache keeps a message; the answer's `expires` is this after `time`.
const CACHE_SECONDS: u64 = 12 * 60 * 60;
/// The length of an ntfy message id.
const ID_LENGTH: usize = 12;

/// One publishing parameter: its header names, then its query names.
struct Param {
    headers: &'static [&'static str],
    query: &'static [&'static str],
}

const TITLE: Param = Param {
    headers: &["x-title", "title", "t"],
    query: &["title", "t"],
};
const MESSAGE: Param = Param {
    headers: &["x-message", "message", "m"],
    query: &["message", "m"],
};
const PRIORITY: Param = Param {
    headers: &["x-priority", "priority", "prio", "p"],
    query: &["priority", "prio", "p"],
};
const TAGS: Param = Param {
    headers: &["x-tags", "tags", "tag", "ta"],
    query: &["tags", "tag", "ta"],
};
const CLICK: Param = Param {
    headers: &["x-click", "click"],
    query: &["click"],
};
const ICON: Param = Param {
    headers: &["x-icon", "icon"],
    query: &["icon"],
};
const ACTIONS: Param = Param {
    headers: &["x-actions", "actions", "action"],
    query: &["actions", "action"],
};
const MARKDOWN: Param = Param {
    headers: &["x-markdown", "markdown", "md"],
    query: &["markdown", "md"],
};

/// Mounts `PUT`/`POST /` and `PUT`/`POST /{topic}` with their CORS preflights (`OPTIONS`), so
/// that ntfy's web app on another origin can publish; register it after every other root path.
pub fn configure(config: &mut web::ServiceConfig) {
    config
        .service(
            web::resource("/")
                .route(web::post().to(publish_json))
                .route(web::put().to(publish_json))
                .route(web::method(Method::OPTIONS).to(preflight)),
        )
        .service(
            web::resource("/{topic}")
                .route(web::post().to(publish_to_topic))
                .route(web::put().to(publish_to_topic))
                .route(web::method(Method::OPTIONS).to(preflight)),
        );
}

/// What every publish handler needs from the application (extracted together).
type Shared = (
    web::Data<SharedBridge>,
    web::Data<Outbox>,
    web::Data<Api>,
    web::Data<Metrics>,
    Option<web::Data<DeviceMailbox>>,
);

/// `PUT`/`POST /{topic}`: the body (or the `message` parameter) is the message.
pub async fn publish_to_topic(
    request: HttpRequest,
    topic: web::Path<String>,
    payload: web::Payload,
    shared: Shared,
) -> HttpResponse {
    publish(&request, Some(topic.as_str()), payload, shared).await
}

/// `PUT`/`POST /`: ntfy's JSON message, its `topic` naming the route or the device.
pub async fn publish_json(
    request: HttpRequest,
    payload: web::Payload,
    shared: Shared,
) -> HttpResponse {
    publish(&request, None, payload, shared).await
}

/// Where a publish goes: a route's pipeline, or one device of the embedded API.
enum Target<'b> {
    /// The route accepted it.
    Route(Accepted<'b>),
    /// The topic is a device UUID.
    Device(DeviceUuid),
}

/// What a topic names: a route, or a device of the embedded API (its UUID; no route is named
/// like one, see [`crate::routes::RouteName`]).
enum Topic<'b> {
    Route(&'b Route),
    Device(DeviceUuid),
}

/// The route or device `topic` names; `found` is the route when it is one.
fn find_topic<'b>(
    bridge: &'b Bridge,
    topic: &str,
    found: &mut Option<&'b Route>,
) -> Result<Topic<'b>, HookError> {
    if let Ok(device) = DeviceUuid::parse(topic) {
        return Ok(Topic::Device(device));
    }
    let route = hooks::find_route(bridge, topic)?;
    *found = Some(route);
    Ok(Topic::Route(route))
}

/// Runs one publish, logs and counts it like a webhook (one to a route), and answers as ntfy
/// does, open to every origin.
async fn publish(
    request: &HttpRequest,
    topic: Option<&str>,
    payload: web::Payload,
    (bridge, outbox, api, metrics, mailbox): Shared,
) -> HttpResponse {
    let started = Instant::now();
    let bridge = bridge.load_full();
    let mut route = None;
    let outcome = accept(
        request,
        topic,
        payload,
        &bridge,
        Handoff {
            outbox: &outbox,
            api: &api,
            metrics: &metrics,
            announcer: hooks::announcer(request),
        },
        &mut route,
    )
    .await;
    let outcome = match outcome {
        Ok((Target::Device(device), message)) => {
            return with_cors(
                super::ntfy_device::publish(
                    request,
                    &device,
                    message,
                    mailbox.as_ref().map(|data| data.get_ref()),
                )
                .await,
            );
        }
        Ok((Target::Route(accepted), message)) => Ok((accepted, message)),
        Err(error) => Err(error),
    };
    let (accepted, message) = hooks::observe_adapted(&metrics, request, route, outcome, started);
    with_cors(match accepted {
        Ok(_) => HttpResponse::Ok().json(answer(message)),
        Err(error) => error.error_response(),
    })
}

/// Finds the route (or the device), reads the request into ntfy's JSON message and hands it to
/// the route's pipeline; `found` is the route once known (for the log line, whatever happens
/// next). A device's message is returned for [`super::ntfy_device`] to store.
async fn accept<'b>(
    request: &HttpRequest,
    topic: Option<&str>,
    payload: web::Payload,
    bridge: &'b Bridge,
    handoff: Handoff<'_>,
    found: &mut Option<&'b Route>,
) -> Result<(Target<'b>, Map<String, Value>), HookError> {
    let in_path = match topic {
        Some(topic) => Some(find_topic(bridge, topic, found)?),
        None => None,
    };
    let body = hooks::read_adapted_body(request, payload, bridge.max_body_bytes).await?;
    let query: Vec<(String, String)> =
        url::form_urlencoded::parse(request.query_string().as_bytes())
            .into_owned()
            .collect();
    let mut message = parameters(request.headers(), &query)?;
    let topic = match in_path {
        Some(topic) => {
            if !message.contains_key("message") {
                let text = std::str::from_utf8(&body).map_err(|_| {
                    HookError::InvalidParameter(
                        "the body must be UTF-8 text: attachments are not supported".to_owned(),
                    )
                })?;
                message.insert("message".into(), text.into());
            }
            topic
        }
        None => {
            let json = json_message(&body)?;
            let topic = json
                .get("topic")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            merge_json(&mut message, json)?;
            find_topic(bridge, &topic, found)?
        }
    };
    let route = match topic {
        Topic::Route(route) => route,
        Topic::Device(device) => return Ok((Target::Device(device), message)),
    };
    message.insert("topic".into(), route.name.as_str().into());
    let body = Value::Object(message.clone()).to_string();
    let headers = adapted_headers(request.headers(), request.query_string());
    let inbound = Inbound {
        headers: &headers,
        query: request.query_string(),
        body: body.as_bytes(),
    };
    crate::http::recording::keep_input(request, &inbound, Some(SourceKind::Ntfy.as_str()));
    let accepted = hooks::accept_adapted(route, inbound, SourceKind::Ntfy, bridge, handoff).await?;
    Ok((Target::Route(accepted), message))
}

/// The first value of a parameter: its headers first, then the query string.
fn parameter(
    headers: &HeaderMap,
    query: &[(String, String)],
    param: &Param,
) -> Result<Option<String>, HookError> {
    for name in param.headers {
        if let Some(value) = headers.get(*name) {
            let text = std::str::from_utf8(value.as_bytes()).map_err(|_| {
                HookError::InvalidParameter(format!("the {name} header is not UTF-8 text"))
            })?;
            return Ok(Some(text.trim().to_owned()));
        }
    }
    Ok(param.query.iter().find_map(|name| {
        query
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.trim().to_owned())
    }))
}

/// ntfy's JSON message from the headers and the query string: only the fields given.
fn parameters(
    headers: &HeaderMap,
    query: &[(String, String)],
) -> Result<Map<String, Value>, HookError> {
    let mut message = Map::new();
    let get = |param: &Param| parameter(headers, query, param);
    if let Some(title) = get(&TITLE)? {
        message.insert("title".into(), title.into());
    }
    if let Some(text) = get(&MESSAGE)? {
        message.insert("message".into(), text.replace("\\n", "\n").into());
    }
    if let Some(priority) = get(&PRIORITY)? {
        insert_priority(&mut message, &priority)?;
    }
    if let Some(tags) = get(&TAGS)? {
        message.insert("tags".into(), split_tags(&tags).into());
    }
    for (param, key) in [(&CLICK, "click"), (&ICON, "icon")] {
        if let Some(value) = get(param)? {
            message.insert(key.into(), value.into());
        }
    }
    if let Some(actions) = get(&ACTIONS)? {
        message.insert("actions".into(), parse_actions(&actions)?.into());
    }
    if let Some(markdown) = get(&MARKDOWN)? {
        let on = ["1", "yes", "true"].contains(&markdown.to_ascii_lowercase().as_str());
        message.insert("markdown".into(), on.into());
    }
    Ok(message)
}

/// Comma-separated tags as a list.
fn split_tags(tags: &str) -> Vec<Value> {
    tags.split(',')
        .map(str::trim)
        .filter(|tag| !tag.is_empty())
        .map(Value::from)
        .collect()
}

/// Checks a priority and stores it as ntfy's number; empty or `0` sets none.
fn insert_priority(message: &mut Map<String, Value>, raw: &str) -> Result<(), HookError> {
    match parse_ntfy_priority(raw) {
        Ok(Some(importance)) => {
            message.insert("priority".into(), importance.get().into());
            Ok(())
        }
        Ok(None) => {
            message.remove("priority");
            Ok(())
        }
        Err(error) => Err(HookError::InvalidParameter(error.to_string())),
    }
}

/// ntfy's actions: a JSON array, or its short form
/// `view, Open portal, https://…, clear=true; http, …`.
fn parse_actions(raw: &str) -> Result<Vec<Value>, HookError> {
    if raw.trim_start().starts_with('[') {
        return match serde_json::from_str::<Value>(raw) {
            Ok(Value::Array(actions)) => Ok(actions),
            _ => Err(HookError::InvalidParameter(
                "the actions parameter is not a JSON array of actions".to_owned(),
            )),
        };
    }
    Ok(raw
        .split(';')
        .filter(|action| !action.trim().is_empty())
        .map(|action| {
            let mut fields = Map::new();
            let positional = ["action", "label", "url"];
            for (index, part) in action.split(',').map(str::trim).enumerate() {
                match part.split_once('=') {
                    Some((key, value))
                        if ["action", "label", "url", "clear", "method", "body"]
                            .contains(&key.trim()) =>
                    {
                        fields.insert(key.trim().into(), value.trim().into());
                    }
                    _ => {
                        if let Some(key) = positional.get(index) {
                            fields.insert((*key).into(), part.into());
                        }
                    }
                }
            }
            Value::Object(fields)
        })
        .collect())
}

/// The body of `POST /` as ntfy's JSON message.
fn json_message(body: &[u8]) -> Result<Map<String, Value>, HookError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(message)) => Ok(message),
        _ => Err(HookError::InvalidParameter(
            "the body of a publish to / must be ntfy's JSON message with a topic".to_owned(),
        )),
    }
}

/// Lays the JSON message's fields over the parameters (only the fields it has, as ntfy does).
fn merge_json(message: &mut Map<String, Value>, json: Map<String, Value>) -> Result<(), HookError> {
    for (key, value) in json {
        match (key.as_str(), value) {
            ("priority", Value::Number(number)) => insert_priority(message, &number.to_string())?,
            ("priority", Value::String(word)) => insert_priority(message, &word)?,
            ("actions", Value::String(short)) => {
                message.insert(key, parse_actions(&short)?.into());
            }
            ("tags", Value::String(tags)) => {
                message.insert(key, split_tags(&tags).into());
            }
            ("topic", _) | (_, Value::Null) => {}
            (_, value) => {
                message.insert(key, value);
            }
        }
    }
    Ok(())
}

/// The request's headers as the pipeline reads the JSON message: `Content-Type` JSON, ntfy's
/// `?auth=` parameter, when present, as the `Authorization` header it encodes, and basic auth
/// with an empty user as the bearer token its password is (how ntfy's apps send an access
/// token entered as a password).
fn adapted_headers(headers: &HeaderMap, query: &str) -> HeaderMap {
    let mut adapted = headers.clone();
    adapted.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(value) =
        ntfy_auth_param(query).and_then(|decoded| HeaderValue::from_str(&decoded).ok())
    {
        adapted.insert(header::AUTHORIZATION, value);
    }
    let token = authorization_credentials(&adapted, "basic")
        .find_map(|encoded| STANDARD.decode(encoded).ok())
        .and_then(|decoded| decoded.strip_prefix(b":").map(<[u8]>::to_vec))
        .and_then(|token| String::from_utf8(token).ok());
    if let Some(value) =
        token.and_then(|token| HeaderValue::from_str(&format!("Bearer {token}")).ok())
    {
        adapted.insert(header::AUTHORIZATION, value);
    }
    adapted
}

/// The message as ntfy answers a publish: a new id, the time, when the cache lets it go, and
/// the fields that were set.
pub(super) fn answer(mut message: Map<String, Value>) -> Value {
    let time = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let id: String = std::iter::repeat_with(fastrand::alphanumeric)
        .take(ID_LENGTH)
        .collect();
    let markdown = message.remove("markdown") == Some(Value::Bool(true));
    message.retain(|_, value| match value {
        Value::String(text) => !text.is_empty(),
        Value::Array(items) => !items.is_empty(),
        Value::Null => false,
        _ => true,
    });
    if message.get("message").is_none() {
        message.insert("message".into(), "triggered".into());
    }
    let mut answer = Map::new();
    answer.insert("id".into(), id.into());
    answer.insert("time".into(), time.into());
    answer.insert("expires".into(), (time + CACHE_SECONDS).into());
    answer.insert("event".into(), "message".into());
    answer.extend(message);
    if markdown {
        answer.insert("content_type".into(), "text/markdown".into());
    }
    Value::Object(answer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::test_support::headers;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use serde_json::json;

    fn query(raw: &str) -> Vec<(String, String)> {
        url::form_urlencoded::parse(raw.as_bytes())
            .into_owned()
            .collect()
    }

    #[test]
    fn headers_win_over_the_query_and_aliases_are_read() {
        let request = headers(&[
            ("X-Title", "Disk full"),
            ("Prio", "urgent"),
            ("Tags", "warning, db"),
            ("Click", "https://grafana.example/d/1"),
            ("md", "yes"),
        ]);
        let message = parameters(
            &request,
            &query("t=ignored&m=line+1%5Cnline+2&icon=https%3A%2F%2Fi.example%2Fa.png"),
        )
        .expect("valid parameters");
        assert_eq!(
            Value::Object(message),
            json!({
                "title": "Disk full", "message": "line 1\nline 2", "priority": 5,
                "tags": ["warning", "db"], "click": "https://grafana.example/d/1",
                "icon": "https://i.example/a.png", "markdown": true
            })
        );
    }

    #[test]
    fn a_priority_ntfy_refuses_is_a_400_and_empty_sets_none() {
        for bad in ["6", "loud", "-1"] {
            let error = parameters(&headers(&[("Priority", bad)]), &[]).expect_err(bad);
            assert_eq!(error.status_code(), 400, "{bad}");
        }
        let none = parameters(&headers(&[("Priority", "")]), &[]).expect("empty is unset");
        assert!(!none.contains_key("priority"));
    }

    #[test]
    fn actions_in_short_form_and_json() {
        let short = parse_actions(
            "view, Open portal, https://home.example/, clear=true; http, Close door, https://api.example/door, method=PUT",
        )
        .expect("short form");
        assert_eq!(
            short,
            [
                json!({"action": "view", "label": "Open portal", "url": "https://home.example/", "clear": "true"}),
                json!({"action": "http", "label": "Close door", "url": "https://api.example/door", "method": "PUT"}),
            ]
        );
        let named =
            parse_actions("action=view, label=Logs, url=https://logs.example").expect("named");
        assert_eq!(named[0]["url"], json!("https://logs.example"));
        let json = parse_actions(r#"[{"action":"view","label":"A","url":"https://a.example"}]"#)
            .expect("json");
        assert_eq!(json.len(), 1);
        assert!(parse_actions("[1,").is_err());
    }

    #[test]
    fn json_fields_win_over_headers_only_where_given() {
        let mut message = parameters(
            &headers(&[("X-Priority", "max"), ("X-Title", "From header")]),
            &[],
        )
        .expect("valid");
        let json = json_message(
            br#"{"topic":"ops","title":"Backup failed","message":"db-1","tags":"x, y"}"#,
        )
        .expect("JSON message");
        merge_json(&mut message, json).expect("merges");
        assert_eq!(
            Value::Object(message),
            json!({"title": "Backup failed", "message": "db-1", "priority": 5, "tags": ["x", "y"]})
        );
        assert!(json_message(b"not json").is_err());
        assert!(json_message(b"[1]").is_err());
    }

    #[test]
    fn the_auth_parameter_becomes_the_authorization_header() {
        let encoded = URL_SAFE_NO_PAD.encode("Bearer tk_abc");
        let adapted = adapted_headers(
            &headers(&[("Content-Type", "text/plain")]),
            &format!("auth={encoded}"),
        );
        assert_eq!(
            adapted
                .get(header::AUTHORIZATION)
                .map(HeaderValue::as_bytes),
            Some(&b"Bearer tk_abc"[..])
        );
        assert_eq!(
            adapted.get(header::CONTENT_TYPE).map(HeaderValue::as_bytes),
            Some(&b"application/json"[..])
        );
        let untouched = adapted_headers(&headers(&[]), "auth=%%%");
        assert!(untouched.get(header::AUTHORIZATION).is_none());
    }

    #[test]
    fn a_token_as_basic_auths_password_with_an_empty_user_becomes_a_bearer_token() {
        let as_app_sends = format!("Basic {}", STANDARD.encode(":tk_abc"));
        let adapted = adapted_headers(&headers(&[("Authorization", &as_app_sends)]), "");
        assert_eq!(
            adapted
                .get(header::AUTHORIZATION)
                .map(HeaderValue::as_bytes),
            Some(&b"Bearer tk_abc"[..])
        );
        let user = format!("Basic {}", STANDARD.encode("ops:pw"));
        let kept = adapted_headers(&headers(&[("Authorization", &user)]), "");
        assert_eq!(
            kept.get(header::AUTHORIZATION).map(HeaderValue::as_bytes),
            Some(user.as_bytes())
        );
    }

    #[test]
    fn the_answer_is_ntfy_shaped() {
        let answer = answer(
            json!({"topic": "ops", "message": "hi", "title": "", "tags": [], "markdown": true, "priority": 4})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        );
        let id = answer["id"].as_str().unwrap_or_default();
        assert_eq!(id.len(), ID_LENGTH);
        assert!(id.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_eq!(
            answer["expires"].as_u64(),
            answer["time"].as_u64().map(|t| t + CACHE_SECONDS)
        );
        assert_eq!(answer["event"], json!("message"));
        assert_eq!(answer["content_type"], json!("text/markdown"));
        assert!(answer.get("title").is_none() && answer.get("tags").is_none());
        assert_eq!(answer["priority"], json!(4));
    }
}
