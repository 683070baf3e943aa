//! `/console/history/{id}`: one webhook's story: the request (headers as kept, secrets already
//! removed by the history; the body pretty-printed when kept), the decision, each notification
//! as a phone shows it with its attempts as a timeline, and its actions: Replay and Re-render
//! (forms posting with the session's CSRF token to the history's own functions) and "Copy as
//! curl" (the request again, its credentials as shell variables). The playground reads kept
//! bodies through `GET /console/api/history/{id}/body`.

use std::time::{Duration, UNIX_EPOCH};

use actix_web::{HttpRequest, HttpResponse, web};

use super::Console;
use super::error::ConsoleError;
use super::pages::{self, CsrfForm, Layout};
use crate::delivery::Outbox;
use crate::history::record::{Attempt, KeptRequest, Rendered, Via};
use crate::history::redact::REDACTED;
use crate::history::{self, History, Story};
use crate::http::history::request_id;
use crate::reload::SharedBridge;
use crate::routes::Route;

/// Headers "Copy as curl" leaves out: the connection's, and those curl sets by itself.
const UNCOPIED_HEADERS: [&str; 8] = [
    "host",
    "content-length",
    "connection",
    "accept-encoding",
    "transfer-encoding",
    "x-forwarded-for",
    "x-real-ip",
    "x-request-id",
];

#[derive(askama::Template)]
#[template(path = "webhook.html")]
struct WebhookPage {
    layout: Layout,
    notice: Option<String>,
    id: u64,
    facts: Vec<(&'static str, String)>,
    again_of: Option<u64>,
    request: Option<RequestView>,
    notifications: Vec<NotificationView>,
    can_replay: bool,
    can_rerender: bool,
    curl: Option<String>,
}

struct RequestView {
    headers: Vec<(String, String)>,
    query: String,
    body: String,
    body_bytes: usize,
    truncated: bool,
    read_as: Option<String>,
}

struct NotificationView {
    number: usize,
    template: String,
    template_error: Option<String>,
    title: String,
    message: String,
    link: Option<String>,
    importance: String,
    skipped: bool,
    outbox_id: Option<u64>,
    state: Option<String>,
    attempts: Vec<AttemptView>,
}

struct AttemptView {
    at: String,
    outcome: String,
    ok: bool,
}

fn time(millis: u64) -> String {
    pages::timestamp(UNIX_EPOCH + Duration::from_millis(millis))
}

impl From<&Attempt> for AttemptView {
    fn from(attempt: &Attempt) -> Self {
        let mut outcome = match (&attempt.error, attempt.status) {
            (None, Some(status)) => format!("sent (HTTP {status})"),
            (None, None) => "sent".to_owned(),
            (Some(error), Some(status)) => format!("failed (HTTP {status}): {error}"),
            (Some(error), None) => format!("failed: {error}"),
        };
        if let Some(error_id) = attempt.error_id {
            outcome.push_str(&format!(", Pushjet error {error_id}"));
        }
        if let Some(latency) = attempt.latency_ms {
            outcome.push_str(&format!(", {latency} ms"));
        }
        Self {
            at: time(attempt.at),
            outcome,
            ok: attempt.error.is_none(),
        }
    }
}

fn notification_view(number: usize, rendered: &Rendered) -> NotificationView {
    let delivery = rendered.delivery.as_ref();
    let state = delivery.map(|delivery| {
        let mut state = delivery.state.as_str().to_owned();
        if let Some(until) = delivery.until {
            state.push_str(&format!(", tried again at {}", time(until)));
        }
        if let Some(reason) = &delivery.reason {
            state.push_str(&format!(": {reason}"));
        }
        state
    });
    let message = rendered.notification.as_ref();
    NotificationView {
        number,
        template: rendered.template.clone(),
        template_error: rendered.template_error.clone(),
        title: message.map_or_else(String::new, |m| m.title.as_str().to_owned()),
        message: message.map_or_else(String::new, |m| m.message.as_str().to_owned()),
        link: message.and_then(|m| m.link.as_ref().map(|link| link.as_str().to_owned())),
        importance: message.map_or_else(String::new, |m| m.importance.to_string()),
        skipped: message.is_none(),
        outbox_id: rendered.id,
        state,
        attempts: delivery
            .map(|delivery| delivery.attempts.iter().map(AttemptView::from).collect())
            .unwrap_or_default(),
    }
}

/// A kept body as the page shows it: JSON pretty-printed, anything else as it came.
fn pretty(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|value| serde_json::to_string_pretty(&value).ok())
        .unwrap_or_else(|| body.to_owned())
}

/// `text` quoted for a POSIX shell, where nothing in it expands.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// `text` double-quoted for a POSIX shell, where nothing in it expands.
fn double_quote(text: &str) -> String {
    let mut quoted = String::from('"');
    for character in text.chars() {
        if matches!(character, '\\' | '"' | '$' | '`') {
            quoted.push('\\');
        }
        quoted.push(character);
    }
    quoted.push('"');
    quoted
}

/// A curl command that sends the kept request again to `base` (the bridge's address as the
/// browser reached it). The route's credentials are shell variables (`$TOKEN`, `$USERNAME`,
/// `$PASSWORD`, and `$TOKEN` for a redacted query value; a signature is noted, since it needs
/// the webhook secret); the history removed them from the kept headers and query already.
fn curl(base: &str, story: &Story, kept: &KeptRequest, route: Option<&Route>) -> String {
    let record = &story.record;
    let path = match record.via {
        Via::Gotify => "/message".to_owned(),
        Via::Ntfy => format!("/{}", record.route),
        _ => format!("/hooks/{}", record.route),
    };
    let mut url = format!("{base}{path}");
    if !kept.query.is_empty() {
        url.push('?');
        url.push_str(&kept.query);
    }
    let mut lines = Vec::new();
    let kinds = route.map(|route| route.auth.kinds()).unwrap_or_default();
    if kinds.contains(&"webhook secret") {
        lines.push(
            "# The route checks the sender's signature: compute it over the body with the \
             webhook secret and add its header."
                .to_owned(),
        );
    }
    // A credential the history redacted from the query becomes `$TOKEN`, so the URL is
    // double-quoted, everything else in it escaped.
    let url = if url.contains(REDACTED) {
        double_quote(&url).replace(REDACTED, "$TOKEN")
    } else {
        shell_quote(&url)
    };
    let mut command = vec![format!("curl -X POST {url}")];
    for (name, value) in &kept.headers {
        if UNCOPIED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            continue;
        }
        command.push(format!("  -H {}", shell_quote(&format!("{name}: {value}"))));
    }
    if kinds.contains(&"token") {
        command.push("  -H \"Authorization: Bearer $TOKEN\"".to_owned());
    }
    if kinds.contains(&"basic auth") {
        command.push("  -u \"$USERNAME:$PASSWORD\"".to_owned());
    }
    command.push(format!("  --data-binary {}", shell_quote(&kept.body)));
    lines.push(command.join(" \\\n"));
    lines.join("\n")
}

/// The bridge's address as the browser reached it (scheme and host, as the connection says).
fn base_url(request: &HttpRequest) -> String {
    let info = request.connection_info();
    format!("{}://{}", info.scheme(), info.host())
}

/// The page's query: what the last action did (a code, never free text).
#[derive(serde::Deserialize)]
pub(super) struct StoryQuery {
    done: Option<String>,
    new: Option<u64>,
}

/// `GET /console/history/{id}`.
pub(super) async fn page(
    request: HttpRequest,
    console: web::Data<Console>,
    bridge: web::Data<SharedBridge>,
    history: web::Data<History>,
    id: web::Path<u64>,
    query: web::Query<StoryQuery>,
) -> Result<HttpResponse, ConsoleError> {
    console.sessions()?;
    let session = console.page_session(&request)?;
    let id = id.into_inner();
    let story = history.story(id).await?;
    let bridge = bridge.load_full();
    let route = bridge.routes.get(&story.record.route);
    let record = &story.record;
    let mut facts = vec![
        ("Received", time(record.at)),
        ("Route", record.route.clone()),
        (
            "Arrived through",
            format!("{:?}", record.via).to_lowercase(),
        ),
        ("Source", record.source.clone()),
        (
            "Event",
            match &record.action {
                Some(action) => format!("{} (action {action})", record.event),
                None => record.event.clone(),
            },
        ),
        ("Answer", format!("HTTP {}", record.status)),
        ("Decision", record.verdict.as_str().to_owned()),
        ("State", story.state.clone()),
        ("Request id", record.request_id.clone()),
    ];
    if let Some(delivery_id) = &record.delivery_id {
        facts.push(("Delivery id", delivery_id.clone()));
    }
    if let Some(reason) = &record.reason {
        facts.push(("Why", reason.clone()));
    }
    let notice = match query.done.as_deref() {
        Some("replayed") => Some("Its notifications are queued again"),
        Some("rerendered") => Some("Its kept body was rendered again with today's templates"),
        _ => None,
    }
    .map(|done| match query.new {
        Some(new) => format!("{done}: webhook #{new}."),
        None => format!("{done}."),
    });
    let curl = record
        .request
        .as_ref()
        .map(|kept| curl(&base_url(&request), &story, kept, route));
    let page = WebhookPage {
        layout: Layout::signed_in(&console, &session, "history"),
        notice,
        id,
        facts,
        again_of: record.again_of,
        request: record.request.as_ref().map(|kept| RequestView {
            headers: kept.headers.clone(),
            query: kept.query.clone(),
            body: pretty(&kept.body),
            body_bytes: kept.body_bytes,
            truncated: kept.truncated,
            read_as: kept.read_as.clone(),
        }),
        notifications: record
            .notifications
            .iter()
            .enumerate()
            .map(|(index, rendered)| notification_view(index + 1, rendered))
            .collect(),
        can_replay: record
            .notifications
            .iter()
            .any(|rendered| rendered.notification.is_some()),
        can_rerender: record.request.as_ref().is_some_and(|kept| !kept.truncated),
        curl,
    };
    pages::html(&page)
}

/// `POST /console/history/{id}/replay`: its notifications queued again, as stored.
pub(super) async fn replay(
    request: HttpRequest,
    console: web::Data<Console>,
    bridge: web::Data<SharedBridge>,
    history: web::Data<History>,
    outbox: web::Data<Outbox>,
    id: web::Path<u64>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, ConsoleError> {
    console.sessions()?;
    console.acting_session(&request, form.csrf.as_deref())?;
    let id = id.into_inner();
    let bridge = bridge.load_full();
    let record = history::replay(&history, &outbox, &bridge, id, &request_id(&request)).await?;
    tracing::info!(
        id,
        replay = record.id,
        "history record {id} replayed from the console"
    );
    Ok(pages::see_other(&format!(
        "/console/history/{id}?done=replayed&new={}",
        record.id
    )))
}

/// `POST /console/history/{id}/rerender`: the kept body rendered again and queued.
pub(super) async fn rerender(
    request: HttpRequest,
    console: web::Data<Console>,
    bridge: web::Data<SharedBridge>,
    history: web::Data<History>,
    outbox: web::Data<Outbox>,
    id: web::Path<u64>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, ConsoleError> {
    console.sessions()?;
    console.acting_session(&request, form.csrf.as_deref())?;
    let id = id.into_inner();
    let bridge = bridge.load_full();
    let record = history::rerender(&history, &outbox, &bridge, id, &request_id(&request)).await?;
    tracing::info!(
        id,
        rerender = record.id,
        "history record {id} rendered again from the console"
    );
    Ok(pages::see_other(&format!(
        "/console/history/{id}?done=rerendered&new={}",
        record.id
    )))
}

/// A kept body for the playground: its sender, event and text.
#[derive(serde::Serialize)]
struct KeptBody {
    source: String,
    event: String,
    body: String,
}

/// `GET /console/api/history/{id}/body`: a kept request body, for the playground.
pub(super) async fn body(
    request: HttpRequest,
    console: web::Data<Console>,
    history: web::Data<History>,
    id: web::Path<u64>,
) -> Result<HttpResponse, ConsoleError> {
    console.sessions()?;
    console
        .session(&request)
        .ok_or(ConsoleError::Unauthorized)?;
    let record = history.story(id.into_inner()).await?.record;
    let kept = record
        .request
        .ok_or_else(|| ConsoleError::NotFound("that webhook's body was not kept".to_owned()))?;
    Ok(HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(KeptBody {
            source: kept.read_as.unwrap_or(record.source),
            event: record.event,
            body: kept.body,
        }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;
    use crate::history::record::{Record, Verdict};
    use crate::reload::build_bridge;

    const TOKEN: &str = "curl-test-route-token-77";
    const PASSWORD: &str = "curl-test-basic-password-88";
    const WEBHOOK_SECRET: &str = "curl-test-webhook-secret-99";

    fn story(kept: &KeptRequest) -> Story {
        Record {
            id: 1,
            at: 0,
            route: "gh".to_owned(),
            via: Via::Hooks,
            source: "github".to_owned(),
            event: "push".to_owned(),
            action: None,
            delivery_id: None,
            request_id: "-".to_owned(),
            status: 202,
            verdict: Verdict::Queued,
            reason: None,
            notifications: Vec::new(),
            request: Some(kept.clone()),
            again_of: None,
        }
        .into_story()
    }

    #[test]
    fn copy_as_curl_puts_shell_variables_where_the_credentials_go() {
        let dir = tempfile::TempDir::new().expect("a folder");
        let settings = Settings::from_vars([
            (
                "PUSHJET_BRIDGE_DATA_DIR".to_owned(),
                dir.path().display().to_string(),
            ),
            ("PUSHJET_BRIDGE_ROUTES".to_owned(), "gh".to_owned()),
            (
                "PUSHJET_BRIDGE_ROUTE_GH_SECRET".to_owned(),
                "0123456789abcdef0123456789abcdef".to_owned(),
            ),
            (
                "PUSHJET_BRIDGE_ROUTE_GH_SOURCE".to_owned(),
                "github".to_owned(),
            ),
            ("PUSHJET_BRIDGE_ROUTE_GH_TOKEN".to_owned(), TOKEN.to_owned()),
            (
                "PUSHJET_BRIDGE_ROUTE_GH_BASIC_AUTH".to_owned(),
                format!("ops:{PASSWORD}"),
            ),
            (
                "PUSHJET_BRIDGE_ROUTE_GH_WEBHOOK_SECRET".to_owned(),
                WEBHOOK_SECRET.to_owned(),
            ),
        ])
        .expect("valid settings");
        let bridge = build_bridge(&settings, None).expect("the bridge builds");
        let kept = KeptRequest {
            headers: vec![
                ("host".to_owned(), "bridge.example".to_owned()),
                ("content-type".to_owned(), "application/json".to_owned()),
                ("x-github-event".to_owned(), "push".to_owned()),
            ],
            query: "token=<redacted>".to_owned(),
            body: r#"{"ref":"it's"}"#.to_owned(),
            body_bytes: 14,
            truncated: false,
            read_as: None,
        };
        let command = curl(
            "https://bridge.example",
            &story(&kept),
            &kept,
            bridge.routes.get("gh"),
        );
        assert!(
            command.contains("curl -X POST \"https://bridge.example/hooks/gh?token=$TOKEN\""),
            "{command}"
        );
        assert!(command.contains("-H 'x-github-event: push'"), "{command}");
        assert!(!command.contains("-H 'host:"), "{command}");
        assert!(
            command.contains("-H \"Authorization: Bearer $TOKEN\""),
            "{command}"
        );
        assert!(command.contains("-u \"$USERNAME:$PASSWORD\""), "{command}");
        assert!(
            command.starts_with("# The route checks the sender's signature"),
            "{command}"
        );
        assert!(
            command.ends_with(r#"--data-binary '{"ref":"it'\''s"}'"#),
            "{command}"
        );
        for secret in [TOKEN, PASSWORD, WEBHOOK_SECRET] {
            assert!(!command.contains(secret), "{command}");
        }
    }

    #[test]
    fn shell_quoting_keeps_quotes_and_dollars_literal() {
        assert_eq!(shell_quote("it's $HOME"), r"'it'\''s $HOME'");
        assert_eq!(double_quote(r#"a"$b`\"#), r#""a\"\$b\`\\""#);
    }

    #[test]
    fn a_json_body_is_pretty_printed_and_other_text_kept() {
        assert_eq!(pretty(r#"{"a":1}"#), "{\n  \"a\": 1\n}");
        assert_eq!(pretty("not json"), "not json");
    }
}
