//! The template playground: a payload (a bundled example, a body the history kept, or pasted) and a template edited as
//! TOML, rendered as a webhook's would be. `POST /console/api/preview` decodes the payload with
//! the route's (or the chosen source's) options and renders it with the templates in force, the
//! edited one compiled in their place, through the pipeline's own functions
//! ([`decode_for_preview`], [`render_all`]); the page's script only shows the answer. Nothing is
//! sent and nothing is saved.

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};

use super::Console;
use super::error::ConsoleError;
use super::pages::{self, Layout};
use crate::examples;
use crate::history::record::Via;
use crate::history::{History, Query};
use crate::notification::Assembled;
use crate::pipeline::{
    Inbound, PreparedNotification, RenderOptions, decode_for_preview, render_all,
};
use crate::reload::SharedBridge;
use crate::render::{Problem, TemplateProblem};
use crate::sources::{SourceKind, SourceOptions, SourceSetting};

/// The largest preview request: a payload and a template.
pub(super) const PREVIEW_LIMIT: usize = 1024 * 1024;
/// The header the page's script sends the CSRF token in.
const CSRF_HEADER: &str = "x-csrf-token";
/// The route name templates see when no route is picked.
const NO_ROUTE: &str = "playground";

#[derive(askama::Template)]
#[template(path = "playground.html")]
struct PlaygroundPage {
    layout: Layout,
    routes: Vec<RouteChoice>,
    sources: Vec<(&'static str, bool)>,
    event: String,
    examples: Vec<(&'static str, bool)>,
    payload: String,
    templates_dir: String,
    /// Recent webhooks whose bodies the history kept: their id and a label.
    kept: Vec<(u64, String)>,
}

struct RouteChoice {
    name: String,
    source: &'static str,
    selected: bool,
}

/// How many recent webhooks the playground looks at for kept bodies.
const KEPT_LOOKED_AT: usize = 20;

/// Recent webhooks whose bodies the history kept, as payload choices: their id and a label
/// (empty when the history keeps no bodies or cannot be read).
async fn kept_bodies(history: &History) -> Vec<(u64, String)> {
    if !history.keeps_bodies() {
        return Vec::new();
    }
    let query = Query {
        limit: KEPT_LOOKED_AT,
        ..Query::default()
    };
    let Ok(page) = history.list(query).await else {
        return Vec::new();
    };
    let mut kept = Vec::new();
    for summary in page.records {
        if matches!(summary.via, Via::Replay | Via::Rerender) {
            continue;
        }
        if let Ok(story) = history.story(summary.id).await
            && story.record.request.is_some()
        {
            kept.push((
                summary.id,
                format!(
                    "#{} {} · {} {} · {}",
                    summary.id,
                    summary.route,
                    summary.source,
                    summary.event,
                    pages::timestamp(
                        std::time::UNIX_EPOCH + std::time::Duration::from_millis(summary.at)
                    )
                ),
            ));
        }
    }
    kept
}

/// The page's query: a route to start with (`?route=`).
#[derive(Deserialize)]
pub(super) struct PageQuery {
    route: Option<String>,
}

/// `GET /console/playground?route=NAME`.
pub(super) async fn page(
    request: HttpRequest,
    console: web::Data<Console>,
    bridge: web::Data<SharedBridge>,
    history: web::Data<History>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ConsoleError> {
    console.sessions()?;
    let session = console.page_session(&request)?;
    let bridge = bridge.load_full();
    let picked = query
        .route
        .as_deref()
        .and_then(|name| bridge.routes.get(name));
    let setting = picked.map_or(SourceSetting::Fixed(SourceKind::Github), |route| {
        route.source.setting
    });
    let example_source = match setting {
        SourceSetting::Fixed(kind) => kind,
        SourceSetting::Auto => SourceKind::Generic,
    };
    let event = if example_source == SourceKind::Github {
        "push"
    } else {
        ""
    };
    let selected_example = format!("{example_source}.json");
    let payload = String::from_utf8_lossy(examples::for_event(example_source, event)).into_owned();
    let routes = bridge
        .routes
        .iter()
        .map(|route| RouteChoice {
            name: route.name.to_string(),
            source: route.source.setting.as_str(),
            selected: picked.is_some_and(|picked| picked.name == route.name),
        })
        .collect();
    let sources = std::iter::once("auto")
        .chain(SourceKind::ALL.iter().map(|kind| kind.as_str()))
        .map(|source| (source, source == setting.as_str()))
        .collect();
    let examples = examples::names()
        .into_iter()
        .map(|name| (name, name == selected_example))
        .collect();
    pages::html(&PlaygroundPage {
        layout: Layout::signed_in(&console, &session, "playground"),
        routes,
        sources,
        event: event.to_owned(),
        examples,
        payload,
        templates_dir: templates_dir_label(&console),
        kept: kept_bodies(&history).await,
    })
}

fn templates_dir_label(console: &Console) -> String {
    console.templates_dir.as_ref().map_or_else(
        || "$PUSHJET_BRIDGE_TEMPLATES_DIR".to_owned(),
        |dir| dir.display().to_string(),
    )
}

/// `GET /console/api/example/{name}`: a bundled example payload.
pub(super) async fn example(
    request: HttpRequest,
    console: web::Data<Console>,
    name: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    console.sessions()?;
    console
        .session(&request)
        .ok_or(ConsoleError::Unauthorized)?;
    let body = examples::get(&name)
        .ok_or_else(|| ConsoleError::NotFound("no bundled example has that name".to_owned()))?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .insert_header(("Cache-Control", "private, max-age=3600"))
        .body(body))
}

/// What the playground asks to render.
#[derive(Debug, Deserialize)]
pub(super) struct PreviewRequest {
    /// A route whose options (source, template, filter) apply; none for a bare source.
    #[serde(default)]
    route: Option<String>,
    /// The sender (`auto`, `github`, ...); the route's when left out.
    #[serde(default)]
    source: Option<String>,
    /// The event, for senders that name it in a header.
    #[serde(default)]
    event: Option<String>,
    /// The payload, as a sender would post it.
    payload: String,
    /// The edited template file (TOML); none to render with, and answer, the one in force.
    #[serde(default)]
    template: Option<String>,
}

/// What a preview answers: the notifications as a phone would show them, or what is wrong.
#[derive(Debug, Serialize)]
struct PreviewAnswer {
    source: &'static str,
    event: String,
    action: Option<String>,
    /// The template rendered (`github/push`), when the payload made a notification.
    template: Option<String>,
    /// The text of that template as in force (answered when none was sent).
    toml: Option<String>,
    /// Where to save the template to put it in force.
    save_as: Option<String>,
    /// Why nothing would be sent, when the route's event filter says so.
    filtered: Option<String>,
    notifications: Vec<PhoneView>,
}

/// One notification as a phone shows it.
#[derive(Debug, Serialize)]
struct PhoneView {
    title: String,
    message: String,
    link: Option<String>,
    importance: u8,
    /// The template rendered an empty message: not sent.
    skipped: bool,
    /// The template failed while rendering: this is the fallback notification.
    error: Option<String>,
}

impl From<&PreparedNotification> for PhoneView {
    fn from(prepared: &PreparedNotification) -> Self {
        match &prepared.assembled {
            Assembled::Send { notification, .. } => Self {
                title: notification.title.as_str().to_owned(),
                message: notification.message.as_str().to_owned(),
                link: notification
                    .link
                    .as_ref()
                    .map(|link| link.as_str().to_owned()),
                importance: notification.importance.get(),
                skipped: false,
                error: prepared.template_error.clone(),
            },
            Assembled::Skip => Self {
                title: String::new(),
                message: String::new(),
                link: None,
                importance: 0,
                skipped: true,
                error: prepared.template_error.clone(),
            },
        }
    }
}

/// Why a preview could not render: a sentence, and the line of the template file it is about.
#[derive(Debug, Serialize)]
struct PreviewProblem {
    error: String,
    line: Option<usize>,
}

fn problem(error: impl Into<String>, line: Option<usize>) -> HttpResponse {
    HttpResponse::UnprocessableEntity().json(PreviewProblem {
        error: error.into(),
        line,
    })
}

/// `POST /console/api/preview` (JSON, with the session's `X-CSRF-Token`).
pub(super) async fn preview(
    request: HttpRequest,
    console: web::Data<Console>,
    bridge: web::Data<SharedBridge>,
    asked: web::Json<PreviewRequest>,
) -> Result<HttpResponse, ConsoleError> {
    console.sessions()?;
    let csrf = request
        .headers()
        .get(CSRF_HEADER)
        .and_then(|value| value.to_str().ok());
    console.acting_session(&request, csrf)?;
    let bridge = bridge.load_full();
    if asked.payload.len() > bridge.max_body_bytes {
        return Ok(problem(
            format!(
                "the payload is larger than PUSHJET_BRIDGE_MAX_BODY_BYTES ({} bytes): a webhook \
                 this large would be refused",
                bridge.max_body_bytes
            ),
            None,
        ));
    }
    let route = match asked.route.as_deref().filter(|name| !name.is_empty()) {
        Some(name) => Some(bridge.routes.get(name).ok_or_else(|| {
            ConsoleError::BadRequest("no route has that name; reload the page".to_owned())
        })?),
        None => None,
    };
    let mut options = route.map_or_else(
        || SourceOptions::new(NO_ROUTE),
        |route| route.source.clone(),
    );
    if let Some(source) = asked.source.as_deref().filter(|source| !source.is_empty()) {
        options.setting = source
            .parse()
            .map_err(|error| ConsoleError::BadRequest(format!("source: {error}")))?;
    }
    let headers = match sender_headers(options.setting, asked.event.as_deref()) {
        Ok(headers) => headers,
        Err(error) => return Ok(problem(error, None)),
    };
    let inbound = Inbound {
        headers: &headers,
        query: "",
        body: asked.payload.as_bytes(),
    };
    let mut decoded = match decode_for_preview(inbound, &options) {
        Ok(decoded) => decoded,
        Err(error) => return Ok(problem(format!("the payload: {error}"), None)),
    };
    let route_template = route.and_then(|route| route.template.as_deref());
    let template = decoded.contexts.first().and_then(|context| {
        bridge.renderer.lookup(
            decoded.source.as_str(),
            &context.event,
            context.action.as_deref(),
            route_template,
        )
    });
    let edited = match (&asked.template, template) {
        (Some(text), Some(name)) => match bridge.renderer.with_template(name, text) {
            Ok(renderer) => Some(renderer),
            Err(problems) => {
                let line = problems.first().and_then(|first| line_of(first, text));
                let text = problems
                    .iter()
                    .map(|problem| problem.problem.to_string())
                    .collect::<Vec<_>>()
                    .join("\n");
                return Ok(problem(text, line));
            }
        },
        _ => None,
    };
    let renderer = edited.as_ref().unwrap_or(&bridge.renderer);
    let filtered = route
        .filter(|route| !route.sends(&decoded.event, decoded.action.as_deref()))
        .map(|route| {
            format!(
                "events {}: this route's event filter leaves it out",
                route.name
            )
        });
    let notifications = render_all(
        renderer,
        &mut decoded,
        &RenderOptions {
            route: route.map_or(NO_ROUTE, |route| route.name.as_str()),
            template: route_template,
            max_message_bytes: bridge.max_message_bytes,
            log_failures: false,
        },
    );
    let template = template.map(str::to_owned);
    let answer = PreviewAnswer {
        source: decoded.source.as_str(),
        toml: match (&asked.template, &template) {
            (None, Some(name)) => bridge.renderer.text(name).map(str::to_owned),
            _ => None,
        },
        save_as: template
            .as_ref()
            .map(|name| format!("{}/{name}.toml", templates_dir_label(&console))),
        template,
        event: decoded.event,
        action: decoded.action,
        filtered,
        notifications: notifications.iter().map(PhoneView::from).collect(),
    };
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(answer))
}

/// The headers a sender would send with `event` (its event header, for those that have one).
fn sender_headers(setting: SourceSetting, event: Option<&str>) -> Result<HeaderMap, String> {
    let mut headers = HeaderMap::new();
    let event = event.map(str::trim).filter(|event| !event.is_empty());
    match (setting.event_header(), event) {
        (Some(name), Some(event)) => {
            let value = HeaderValue::from_str(event)
                .map_err(|_| format!("`{event}` is not a usable event name"))?;
            headers.insert(HeaderName::from_static(name), value);
        }
        (Some(_), None) if setting != SourceSetting::Fixed(SourceKind::Gitlab) => {
            return Err(format!(
                "{} names its event in a header: give the event (such as push)",
                setting.as_str()
            ));
        }
        _ => {}
    }
    Ok(headers)
}

/// The line of the template file a problem is about: the TOML reader's own `line N`, or for a
/// field that does not compile, the field's line in the file plus the line inside the field.
fn line_of(problem: &TemplateProblem, text: &str) -> Option<usize> {
    match &problem.problem {
        Problem::Format(reason) => number_after(reason, "line "),
        Problem::Template { field, reason } => {
            let inner = number_after(reason, "line ").unwrap_or(1);
            let (index, line) = text.lines().enumerate().find(|(_, line)| {
                line.trim_start()
                    .strip_prefix(field)
                    .is_some_and(|rest| rest.trim_start().starts_with('='))
            })?;
            let value = line.split_once('=').map_or("", |(_, value)| value.trim());
            let opens_block = (value == "'''" || value == "\"\"\"") as usize;
            Some(index + 1 + opens_block + inner - 1)
        }
        _ => None,
    }
}

/// The number right after the first `marker` in `text`.
fn number_after(text: &str, marker: &str) -> Option<usize> {
    let start = text.find(marker)? + marker.len();
    let digits: String = text[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template_problem(field: &'static str, reason: &str) -> TemplateProblem {
        TemplateProblem {
            file: "x.toml".to_owned(),
            problem: Problem::Template {
                field,
                reason: reason.to_owned(),
            },
        }
    }

    #[test]
    fn a_field_that_does_not_compile_is_placed_on_its_line_of_the_file() {
        let text = "# c\ntitle = '{{#if x}}'\nmessage = '''\nfirst\n{{/each}}\n'''\n";
        let title = template_problem("title", "unclosed block (line 1, column 1)");
        assert_eq!(line_of(&title, text), Some(2));
        let message = template_problem("message", "mismatched (line 2, column 3)");
        assert_eq!(line_of(&message, text), Some(5));
    }

    #[test]
    fn a_toml_error_keeps_the_readers_line() {
        let problem = TemplateProblem {
            file: "x.toml".to_owned(),
            problem: Problem::Format("TOML parse error at line 3, column 9".to_owned()),
        };
        assert_eq!(line_of(&problem, ""), Some(3));
    }
}
