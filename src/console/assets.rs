//! The console's stylesheet and script: the project's own (no library, no build step), embedded
//! in the binary and served under names that carry a digest of their content
//! (`console.<digest>.css`), so a browser may keep them for a year; `ETag` answers a revalidation
//! with 304.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use sha2::{Digest, Sha256};

use super::error::ConsoleError;

const STYLESHEET: &str = include_str!("assets/console.css");
const SCRIPT: &str = include_str!("assets/console.js");

/// One embedded file and the name it is served under.
#[derive(Debug)]
struct Asset {
    name: String,
    etag: String,
    body: &'static str,
    content_type: &'static str,
}

impl Asset {
    fn new(stem: &str, extension: &str, body: &'static str, content_type: &'static str) -> Self {
        let digest = hex::encode(&Sha256::digest(body.as_bytes())[..8]);
        Self {
            name: format!("{stem}.{digest}.{extension}"),
            etag: format!("\"{digest}\""),
            body,
            content_type,
        }
    }
}

/// The console's assets.
#[derive(Debug)]
pub struct Assets {
    stylesheet: Asset,
    script: Asset,
}

impl Assets {
    /// The embedded assets with their names.
    pub fn new() -> Self {
        Self {
            stylesheet: Asset::new("console", "css", STYLESHEET, "text/css; charset=utf-8"),
            script: Asset::new("console", "js", SCRIPT, "text/javascript; charset=utf-8"),
        }
    }

    /// The stylesheet's address.
    pub fn stylesheet(&self) -> String {
        format!("/console/assets/{}", self.stylesheet.name)
    }

    /// The script's address.
    pub fn script(&self) -> String {
        format!("/console/assets/{}", self.script.name)
    }

    fn find(&self, name: &str) -> Option<&Asset> {
        [&self.stylesheet, &self.script]
            .into_iter()
            .find(|asset| asset.name == name)
    }
}

impl Default for Assets {
    fn default() -> Self {
        Self::new()
    }
}

/// `GET /console/assets/{name}`: an asset, cached for a year (its name changes with it). Served
/// without a session: they hold nothing but the console's own code.
pub(super) async fn serve(
    request: HttpRequest,
    name: web::Path<String>,
    console: web::Data<super::Console>,
) -> Result<HttpResponse, ConsoleError> {
    console.sessions()?;
    let asset = console
        .assets
        .find(&name)
        .ok_or_else(|| ConsoleError::NotFound("no such console asset".to_owned()))?;
    let revalidated = request
        .headers()
        .get(header::IF_NONE_MATCH)
        .is_some_and(|tag| tag.as_bytes() == asset.etag.as_bytes());
    let mut response = if revalidated {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header((
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=31536000, immutable"),
        ))
        .insert_header((header::ETAG, asset.etag.clone()));
    if revalidated {
        return Ok(response.finish());
    }
    Ok(response.content_type(asset.content_type).body(asset.body))
}
