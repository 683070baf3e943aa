//! `/console/dead-letters`: the outbox's dead letters with their reasons; retry one, retry all,
//! purge one. Each action is a form behind a "…" disclosure that asks for confirmation, posts
//! with the session's CSRF token and comes back to the list with what happened.

use actix_web::{HttpRequest, HttpResponse, web};

use super::Console;
use super::error::ConsoleError;
use super::pages::{self, CsrfForm, Layout};
use crate::delivery::Outbox;

/// How many dead letters one page lists.
const PAGE: usize = 50;
/// How much of a message the list shows.
const MESSAGE_CHARS: usize = 600;

#[derive(askama::Template)]
#[template(path = "dead_letters.html")]
struct DeadLettersPage {
    layout: Layout,
    notice: Option<String>,
    total: u64,
    letters: Vec<LetterView>,
    next_after: Option<u64>,
}

struct LetterView {
    id: u64,
    route: String,
    title: String,
    message: String,
    reason: String,
    attempts: u32,
    queued_at: String,
    dead_at: String,
}

/// The list's query: paging, and what the last action did (a code, never free text).
#[derive(serde::Deserialize)]
pub(super) struct ListQuery {
    after: Option<u64>,
    done: Option<String>,
    id: Option<u64>,
    count: Option<u64>,
    left: Option<u64>,
}

impl ListQuery {
    fn notice(&self) -> Option<String> {
        let id = self.id.unwrap_or_default();
        match self.done.as_deref()? {
            "retried" => Some(format!("Dead letter #{id} is queued again.")),
            "purged" => Some(format!("Dead letter #{id} is purged.")),
            "retried-all" => Some(format!(
                "{} dead letter(s) queued again; {} left.",
                self.count.unwrap_or_default(),
                self.left.unwrap_or_default()
            )),
            _ => None,
        }
    }
}

/// `GET /console/dead-letters?after=ID`.
pub(super) async fn page(
    request: HttpRequest,
    console: web::Data<Console>,
    outbox: web::Data<Outbox>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ConsoleError> {
    console.sessions()?;
    let session = console.page_session(&request)?;
    let letters = outbox.dead_letters(query.after, PAGE).await?;
    let total = outbox.dead_letter_count().await?;
    let next_after = (letters.len() == PAGE)
        .then(|| letters.last().map(|letter| letter.id))
        .flatten();
    let letters = letters
        .into_iter()
        .map(|letter| LetterView {
            id: letter.id,
            route: letter.route.to_string(),
            title: letter.message.title.as_str().to_owned(),
            message: letter
                .message
                .message
                .as_str()
                .chars()
                .take(MESSAGE_CHARS)
                .collect(),
            reason: letter.reason,
            attempts: letter.attempts,
            queued_at: pages::timestamp(letter.queued_at),
            dead_at: pages::timestamp(letter.dead_at),
        })
        .collect();
    pages::html(&DeadLettersPage {
        layout: Layout::signed_in(&console, &session, "dead-letters"),
        notice: query.notice(),
        total,
        letters,
        next_after,
    })
}

/// `POST /console/dead-letters/{id}/retry`.
pub(super) async fn retry_one(
    request: HttpRequest,
    console: web::Data<Console>,
    outbox: web::Data<Outbox>,
    id: web::Path<u64>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, ConsoleError> {
    console.sessions()?;
    console.acting_session(&request, form.csrf.as_deref())?;
    let id = id.into_inner();
    outbox.retry_dead_letter(id).await?;
    tracing::info!(id, "dead letter {id} queued again from the console");
    Ok(pages::see_other(&format!(
        "/console/dead-letters?done=retried&id={id}"
    )))
}

/// `POST /console/dead-letters/retry`.
pub(super) async fn retry_all(
    request: HttpRequest,
    console: web::Data<Console>,
    outbox: web::Data<Outbox>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, ConsoleError> {
    console.sessions()?;
    console.acting_session(&request, form.csrf.as_deref())?;
    let retried = outbox.retry_all_dead_letters().await?;
    tracing::info!(
        retried = retried.ids.len(),
        left = retried.left,
        "dead letters queued again from the console"
    );
    Ok(pages::see_other(&format!(
        "/console/dead-letters?done=retried-all&count={}&left={}",
        retried.ids.len(),
        retried.left
    )))
}

/// `POST /console/dead-letters/{id}/purge`.
pub(super) async fn purge(
    request: HttpRequest,
    console: web::Data<Console>,
    outbox: web::Data<Outbox>,
    id: web::Path<u64>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, ConsoleError> {
    console.sessions()?;
    console.acting_session(&request, form.csrf.as_deref())?;
    let id = id.into_inner();
    outbox.purge_dead_letter(id).await?;
    tracing::info!(id, "dead letter {id} purged from the console");
    Ok(pages::see_other(&format!(
        "/console/dead-letters?done=purged&id={id}"
    )))
}
