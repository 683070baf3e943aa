//! `GET /console/inbox`: a device's messages as they arrive. The page's script opens the
//! ntfy-compatible SSE stream of the device (`GET /<uuid>/sse`, served by `crate::streams`) and
//! shows each message; with the person's permission, also as a browser notification. The demo
//! route's device is filled in when the demo route exists.

use actix_web::{HttpRequest, HttpResponse, web};

use super::Console;
use super::error::ConsoleError;
use super::pages::{self, Layout};

#[derive(askama::Template)]
#[template(path = "inbox.html")]
struct InboxPage {
    layout: Layout,
    demo_device: Option<String>,
}

/// `GET /console/inbox`.
pub(super) async fn page(
    request: HttpRequest,
    console: web::Data<Console>,
) -> Result<HttpResponse, ConsoleError> {
    console.sessions()?;
    let session = console.page_session(&request)?;
    pages::html(&InboxPage {
        layout: Layout::signed_in(&console, &session, "inbox"),
        demo_device: console.demo_device.as_ref().map(ToString::to_string),
    })
}
