//! Signing in and out: the admin token for a session cookie, `HttpOnly`, `SameSite=Strict`,
//! `Secure` when the request came over HTTPS (directly, or by a trusted proxy's word), lasting
//! `PUSHJET_BRIDGE_CONSOLE_SESSION`. Failed sign-ins are counted per client address
//! ([`super::failures`]).

use std::time::{Instant, SystemTime};

use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};
use actix_web::{HttpRequest, HttpResponse, web};

use super::Console;
use super::error::ConsoleError;
use super::pages::{self, CsrfForm, Layout};
use super::session::COOKIE;

/// The sign-in page.
#[derive(askama::Template)]
#[template(path = "sign_in.html")]
struct SignInPage {
    layout: Layout,
    lifetime: String,
    problem: Option<&'static str>,
}

fn sign_in_page(
    console: &Console,
    problem: Option<&'static str>,
) -> Result<HttpResponse, ConsoleError> {
    let page = SignInPage {
        layout: Layout::signed_out(console),
        lifetime: pages::human_duration(console.sessions()?.lifetime()),
        problem,
    };
    pages::html(&page)
}

/// `GET /console/sign-in`: the form, or the overview when already signed in.
pub(super) async fn form(
    request: HttpRequest,
    console: web::Data<Console>,
) -> Result<HttpResponse, ConsoleError> {
    console.sessions()?;
    if console.session(&request).is_some() {
        return Ok(pages::see_other("/console/"));
    }
    sign_in_page(&console, None)
}

/// The sign-in form.
#[derive(serde::Deserialize)]
pub(super) struct SignInForm {
    token: String,
}

/// `POST /console/sign-in`: a session for the right token; the form again (401) for a wrong one;
/// 429 once the address failed too often.
pub(super) async fn sign_in(
    request: HttpRequest,
    console: web::Data<Console>,
    form: web::Form<SignInForm>,
) -> Result<HttpResponse, ConsoleError> {
    let sessions = console.sessions()?;
    let client = console.client(&request);
    let now = Instant::now();
    if let Some(address) = client.address {
        console
            .failures
            .check(address, now)
            .map_err(ConsoleError::TooManyFailures)?;
    }
    let Some(token) = admin_token(&console) else {
        return Err(ConsoleError::Off);
    };
    if !token.matches(form.token.trim().as_bytes()) {
        if let Some(address) = client.address {
            console.failures.fail(address, now);
        }
        tracing::warn!(client = ?client.address, "console sign-in refused: wrong admin token");
        let mut response = sign_in_page(&console, Some("That is not the admin token."))?;
        *response.status_mut() = actix_web::http::StatusCode::UNAUTHORIZED;
        return Ok(response);
    }
    let value = sessions
        .start(SystemTime::now())
        .map_err(|error| ConsoleError::Internal(error.to_string()))?;
    let max_age = i64::try_from(sessions.lifetime().as_secs()).unwrap_or(i64::MAX);
    let cookie = Cookie::build(COOKIE, value)
        .path("/console")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(client.https)
        .max_age(CookieDuration::seconds(max_age))
        .finish();
    tracing::info!(client = ?client.address, "console sign-in");
    let mut response = pages::see_other("/console/");
    response
        .add_cookie(&cookie)
        .map_err(|error| ConsoleError::Internal(error.to_string()))?;
    Ok(response)
}

/// The admin token the console was started with.
fn admin_token(console: &Console) -> Option<&crate::secret::Secret> {
    console.admin_token.as_ref()
}

/// `POST /console/sign-out`: ends the session (its cookie is refused from now on) and removes
/// the cookie.
pub(super) async fn sign_out(
    request: HttpRequest,
    console: web::Data<Console>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, ConsoleError> {
    let sessions = console.sessions()?;
    let session = console.acting_session(&request, form.csrf.as_deref())?;
    sessions.sign_out(&session, SystemTime::now());
    let mut removal = Cookie::build(COOKIE, "").path("/console").finish();
    removal.make_removal();
    let mut response = pages::see_other("/console/sign-in");
    response
        .add_cookie(&removal)
        .map_err(|error| ConsoleError::Internal(error.to_string()))?;
    Ok(response)
}
