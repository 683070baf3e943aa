//! One webhook's straight line, without HTTP and without sending: authenticate, decode, filter by
//! event, pick a template, render, and assemble notifications Pushjet will take unchanged.

use actix_web::http::header::HeaderMap;
use serde::Serialize;
use serde_json::Value;

use crate::noise::{CollapseKey, Verdict};
use crate::notification::{Assembled, assemble};
use crate::pushjet::{Importance, NewMessage, Title};
use crate::render::{RenderedFields, Renderer, TemplateContext};
use crate::routes::{Route, Routes};
use crate::sources::{self, DecodeError, Decoded, SourceKind, SourceOptions, SourceSetting};
use crate::verify::AuthError;

/// The configuration in force for webhooks: routes, templates and limits. Built once at start-up
/// (and again, whole, on reload) and shared read-only.
#[derive(Debug)]
pub struct Bridge {
    /// The routes by name.
    pub routes: Routes,
    /// The compiled templates.
    pub renderer: Renderer,
    /// Largest accepted webhook body in bytes.
    pub max_body_bytes: usize,
    /// Largest message sent in bytes; longer ones are cut with a marker.
    pub max_message_bytes: usize,
}

/// A webhook request as the pipeline sees it.
#[derive(Debug, Clone, Copy)]
pub struct Inbound<'a> {
    /// The request headers.
    pub headers: &'a HeaderMap,
    /// The raw query string, without `?`.
    pub query: &'a str,
    /// The body exactly as received.
    pub body: &'a [u8],
}

/// Why a webhook was refused before anything was rendered.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// Authentication failed (the reason is for logs only).
    #[error("authentication failed: {0}")]
    Unauthorized(#[from] AuthError),
    /// The body could not be read as the sender's payload.
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

/// What a webhook turned into.
#[derive(Debug, Clone, Serialize)]
pub struct Prepared {
    /// The sender (`github`, `alertmanager`, ...).
    pub source: &'static str,
    /// The event.
    pub event: String,
    /// The event's action, if any.
    pub action: Option<String>,
    /// The sender's delivery id, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery_id: Option<String>,
    /// The key that identifies this delivery for deduplication.
    #[serde(skip)]
    pub dedup_key: Option<String>,
    /// True when the dedup key is an alert group's state rather than a delivery id.
    #[serde(skip)]
    pub dedup_is_alert_state: bool,
    /// Why nothing is sent, when the route's event filter says so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filtered: Option<String>,
    /// One entry per notification the payload produced.
    pub notifications: Vec<PreparedNotification>,
}

impl Prepared {
    /// The notifications to send, in order.
    pub fn to_send(&self) -> impl Iterator<Item = &NewMessage> {
        self.notifications
            .iter()
            .filter_map(|prepared| match &prepared.assembled {
                Assembled::Send { notification, .. } => Some(notification),
                Assembled::Skip => None,
            })
    }
}

/// One rendered notification, or a skip, with the template that made it.
#[derive(Debug, Clone, Serialize)]
pub struct PreparedNotification {
    /// The template used.
    pub template: String,
    /// What it produced.
    #[serde(flatten)]
    pub assembled: Assembled,
    /// When the template failed: the error; the notification is then the fallback.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template_error: Option<String>,
    /// What makes a repeat of it, for the route's `COLLAPSE`.
    #[serde(skip)]
    pub collapse_key: Option<CollapseKey>,
    /// What the route's noise policy did with it, once handed over.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub noise: Option<Verdict>,
}

/// How notifications are rendered for one route (or for `render` on the command line).
#[derive(Debug, Clone, Copy)]
pub struct RenderOptions<'a> {
    /// The route's name, for the fallback title.
    pub route: &'a str,
    /// A template that replaces the sender's built-in choice.
    pub template: Option<&'a str>,
    /// Largest message in bytes.
    pub max_message_bytes: usize,
    /// Whether a template that fails is logged as an error (not for a preview of a template
    /// being edited, which fails on purpose while it is typed).
    pub log_failures: bool,
}

impl Bridge {
    /// Runs a webhook through the line: authenticate against `route`, decode, filter, render.
    pub fn prepare(&self, route: &Route, inbound: Inbound<'_>) -> Result<Prepared, PipelineError> {
        self.prepare_with(route, inbound, &route.source)
    }

    /// [`Self::prepare`] for a body in the shape of `source` whatever the route's `SOURCE`: what
    /// the protocol adapters (ntfy, Gotify) hand over after turning a request into that shape.
    pub fn prepare_as(
        &self,
        route: &Route,
        inbound: Inbound<'_>,
        source: SourceKind,
    ) -> Result<Prepared, PipelineError> {
        let options = SourceOptions {
            setting: SourceSetting::Fixed(source),
            ..route.source.clone()
        };
        self.prepare_with(route, inbound, &options)
    }

    /// Runs a request the route accepted before through the line again, with today's
    /// templates and filter, without authenticating it (its secrets were not kept): what the
    /// history's re-render does with a kept body. `source` is the sender a protocol adapter read
    /// it as, if one did.
    pub fn prepare_again(
        &self,
        route: &Route,
        inbound: Inbound<'_>,
        source: Option<SourceKind>,
    ) -> Result<Prepared, PipelineError> {
        let options = match source {
            Some(source) => SourceOptions {
                setting: SourceSetting::Fixed(source),
                ..route.source.clone()
            },
            None => route.source.clone(),
        };
        self.prepare_unverified(route, inbound, &options)
    }

    fn prepare_with(
        &self,
        route: &Route,
        inbound: Inbound<'_>,
        options: &SourceOptions,
    ) -> Result<Prepared, PipelineError> {
        route
            .auth
            .verify(inbound.headers, inbound.query, inbound.body)?;
        self.prepare_unverified(route, inbound, options)
    }

    fn prepare_unverified(
        &self,
        route: &Route,
        inbound: Inbound<'_>,
        options: &SourceOptions,
    ) -> Result<Prepared, PipelineError> {
        let mut decoded = sources::decode(inbound.headers, inbound.query, inbound.body, options)?;
        let filtered = (!route.sends(&decoded.event, decoded.action.as_deref()))
            .then(|| filter_reason(route, &decoded));
        let collapse_keys: Vec<Option<CollapseKey>> = decoded
            .contexts
            .iter()
            .map(|context| sources::collapse_key(decoded.source, inbound.headers, context))
            .collect();
        let mut notifications = if filtered.is_some() {
            Vec::new()
        } else {
            render_all(
                &self.renderer,
                &mut decoded,
                &RenderOptions {
                    route: route.name.as_str(),
                    template: route.template.as_deref(),
                    max_message_bytes: self.max_message_bytes,
                    log_failures: true,
                },
            )
        };
        for (notification, key) in notifications.iter_mut().zip(collapse_keys) {
            notification.collapse_key = key;
        }
        Ok(Prepared {
            source: decoded.source.as_str(),
            dedup_key: decoded.dedup_key(),
            dedup_is_alert_state: decoded.dedup_is_alert_state(),
            event: decoded.event,
            action: decoded.action,
            delivery_id: decoded.delivery_id,
            filtered,
            notifications,
        })
    }
}

/// Decodes a payload for `render` on the command line: no route, no authentication.
pub fn decode_for_preview(
    inbound: Inbound<'_>,
    options: &SourceOptions,
) -> Result<Decoded, DecodeError> {
    sources::decode(inbound.headers, inbound.query, inbound.body, options)
}

fn filter_reason(route: &Route, decoded: &Decoded) -> String {
    let name = match &decoded.action {
        Some(action) => format!("{}.{action}", decoded.event),
        None => decoded.event.clone(),
    };
    if route.events.is_none() && decoded.event == "ping" {
        format!(
            "ping received; nothing sent (add ping to {}EVENTS to be notified)",
            route.name.env_prefix()
        )
    } else {
        format!(
            "event {name} is not in {}EVENTS; nothing sent",
            route.name.env_prefix()
        )
    }
}

/// Renders every context of a decoded webhook, taking the contexts out of `decoded` (rendering
/// consumes them, so none is copied). A template that fails never drops the webhook: its
/// notification becomes a fallback that names the error.
pub fn render_all(
    renderer: &Renderer,
    decoded: &mut Decoded,
    options: &RenderOptions<'_>,
) -> Vec<PreparedNotification> {
    let source = decoded.source.as_str();
    std::mem::take(&mut decoded.contexts)
        .into_iter()
        .map(|context| {
            let template = renderer
                .lookup(source, &context.event, context.action.as_deref(), options.template)
                .unwrap_or("(none)")
                .to_owned();
            let importance = context.importance;
            let tree = TemplateContext::new(context.tree);
            match renderer.render_context(&template, &tree) {
                Ok(fields) => PreparedNotification {
                    assembled: assemble(&fields, importance, options.max_message_bytes),
                    template,
                    template_error: None,
                    collapse_key: None,
                    noise: None,
                },
                Err(error) => {
                    let error = error.to_string();
                    if options.log_failures {
                        tracing::error!(route = options.route, %template, error = %crate::telemetry::escape_controls(&error), "template failed; sending the fallback notification");
                    }
                    PreparedNotification {
                        assembled: fallback(options.route, importance, options.max_message_bytes, &error, tree.value()),
                        template,
                        template_error: Some(error),
                        collapse_key: None,
                        noise: None,
                    }
                }
            }
        })
        .collect()
}

/// How much of the payload the fallback notification shows.
const FALLBACK_SUMMARY_CHARS: usize = 400;

/// The notification sent when a template fails: `<route>: template error`, the error, and the
/// start of the payload. Its message is never empty, so it is always sent.
fn fallback(
    route: &str,
    importance: Importance,
    max_message_bytes: usize,
    error: &str,
    context: &Value,
) -> Assembled {
    let mut payload = context.clone();
    if let Some(object) = payload.as_object_mut() {
        object.remove("bridge");
    }
    let compact = payload.to_string();
    let summary: String = compact.chars().take(FALLBACK_SUMMARY_CHARS).collect();
    let ellipsis = if summary.len() < compact.len() {
        "…"
    } else {
        ""
    };
    let fields = RenderedFields {
        title: Title::new(&format!("{route}: template error"))
            .as_str()
            .to_owned(),
        message: format!("{error}\n\nPayload: {summary}{ellipsis}"),
        link: String::new(),
        importance: String::new(),
    };
    assemble(&fields, importance, max_message_bytes)
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{CONTENT_TYPE, HeaderMap, HeaderValue};

    use super::*;

    /// A renderer with one user template, `generic/plain`, whose importance is left empty.
    fn renderer_with_plain_template(dir: &std::path::Path) -> Renderer {
        std::fs::create_dir(dir.join("generic")).expect("template folder");
        std::fs::write(
            dir.join("generic/plain.toml"),
            "title = '{{title}}'\nmessage = '{{message}}'\nlink = ''\nimportance = ''\n",
        )
        .expect("write the template");
        Renderer::load(Some(dir)).expect("templates load")
    }

    #[test]
    fn a_template_without_importance_gets_the_importance_the_source_chose() {
        let dir = tempfile::tempdir().expect("temp dir");
        let renderer = renderer_with_plain_template(dir.path());
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let body = br#"{"title": "Disk", "message": "almost full", "importance": "5"}"#;
        let mut decoded = sources::decode(&headers, "", body, &SourceOptions::new("ops"))
            .expect("a generic body decodes");
        assert_eq!(decoded.contexts[0].importance.get(), 5);

        let rendered = render_all(
            &renderer,
            &mut decoded,
            &RenderOptions {
                route: "ops",
                template: Some("generic/plain"),
                max_message_bytes: 4096,
                log_failures: true,
            },
        );
        let sent: Vec<u8> = rendered
            .iter()
            .filter_map(|prepared| match &prepared.assembled {
                Assembled::Send { notification, .. } => Some(notification.importance.get()),
                Assembled::Skip => None,
            })
            .collect();
        assert_eq!(sent, [5]);
    }
}
