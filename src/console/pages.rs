//! What every page shares: the layout's data (assets, CSRF token, the current page) and how a
//! rendered page becomes an answer.

use actix_web::HttpResponse;
use actix_web::http::header;

use super::Console;
use super::error::ConsoleError;
use super::session::Session;

/// The largest form a console page posts (the sign-in token, a CSRF token).
pub(super) const FORM_LIMIT: usize = 16 * 1024;

/// The layout's data (`templates/base.html`).
pub(super) struct Layout {
    pub(super) stylesheet: String,
    pub(super) script: String,
    /// The session's CSRF token; empty when signed out.
    pub(super) csrf: String,
    pub(super) signed_in: bool,
    /// Which navigation entry is this page (`overview`, `dead-letters`, ...).
    pub(super) current: &'static str,
}

impl Layout {
    /// The layout of a page seen in `session`.
    pub(super) fn signed_in(console: &Console, session: &Session, current: &'static str) -> Self {
        Self {
            stylesheet: console.assets.stylesheet(),
            script: console.assets.script(),
            csrf: session.csrf().to_owned(),
            signed_in: true,
            current,
        }
    }

    /// The layout of the sign-in page.
    pub(super) fn signed_out(console: &Console) -> Self {
        Self {
            stylesheet: console.assets.stylesheet(),
            script: console.assets.script(),
            csrf: String::new(),
            signed_in: false,
            current: "sign-in",
        }
    }
}

/// A rendered page: HTML, never stored by caches (it is one session's).
pub(super) fn html(page: &impl askama::Template) -> Result<HttpResponse, ConsoleError> {
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(page.render()?))
}

/// A 303 to `location`: where a form's post sends the browser next.
pub(super) fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

/// A form that carries only the CSRF token.
#[derive(Debug, serde::Deserialize)]
pub(super) struct CsrfForm {
    pub(super) csrf: Option<String>,
}

/// A duration for people: `12h`, `30m`, `1h 30m`.
pub(super) fn human_duration(duration: std::time::Duration) -> String {
    humantime::format_duration(std::time::Duration::from_secs(duration.as_secs())).to_string()
}

/// A time as RFC 3339 in UTC, to the second.
pub(super) fn timestamp(time: std::time::SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}
