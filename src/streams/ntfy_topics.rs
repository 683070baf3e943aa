//! The topics of an ntfy stream's path (`/<a>,<b>/json`): each a device UUID (the UUID is the
//! credential, as in Pushjet) or a route's name, read with one of the route's credentials
//! ([`ReaderAuth`]) sent as `Authorization` or as ntfy's `?auth=` parameter. Without a
//! credential a route answers ntfy's 403, with a wrong one ntfy's 401, so the apps ask for one.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{HttpRequest, HttpResponse};

use super::ntfy::error;
use super::route_topics::RouteTopics;
use crate::pushjet::DeviceUuid;
use crate::reload::SharedBridge;
use crate::secret::ntfy_auth_param;
use crate::verify::ReadAccess;

/// Who may read the routes' streams: the routes in force (swapped whole on reload).
pub trait RouteReaders: Send + Sync {
    /// How `authorization` (an `Authorization` value, if any) fares with `route`'s readers;
    /// `None` when no route has that name.
    fn check(&self, route: &str, authorization: Option<&str>) -> Option<ReadAccess>;
}

impl RouteReaders for SharedBridge {
    fn check(&self, route: &str, authorization: Option<&str>) -> Option<ReadAccess> {
        self.load()
            .routes
            .get(route)
            .map(|route| route.readers.check(authorization))
    }
}

/// The routes' side of the streams: their topics in the hub and who may read them.
#[derive(Clone)]
pub struct RouteStreams {
    /// The routes' topics in the hub.
    pub topics: Arc<RouteTopics>,
    /// Who may read them.
    pub readers: Arc<dyn RouteReaders>,
}

impl std::fmt::Debug for RouteStreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteStreams").finish_non_exhaustive()
    }
}

/// A stream's topics: the hub's UUID of each, with the name the reader gave.
#[derive(Debug, Clone)]
pub(super) struct Topics(Vec<(DeviceUuid, String)>);

impl Topics {
    /// The hub's UUIDs.
    pub(super) fn keys(&self) -> Vec<DeviceUuid> {
        self.0.iter().map(|(key, _)| key.clone()).collect()
    }

    /// The name a reader gave for the topic the hub knows as `key`.
    pub(super) fn name<'a>(&'a self, key: &'a DeviceUuid) -> &'a str {
        self.0
            .iter()
            .find(|(known, _)| known == key)
            .map_or(key.as_str(), |(_, name)| name.as_str())
    }

    /// The names, comma-separated, as ntfy shows several topics.
    pub(super) fn joined(&self) -> String {
        let names: Vec<&str> = self.0.iter().map(|(_, name)| name.as_str()).collect();
        names.join(",")
    }
}

/// The `Authorization` value the reader sent: the header, or what ntfy's `?auth=` encodes.
fn presented(request: &HttpRequest) -> Option<String> {
    request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
        .or_else(|| ntfy_auth_param(request.query_string()))
}

/// Why a path's topics were refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    /// A route's topic without a credential (ntfy's 403 for anonymous readers).
    Forbidden,
    /// A route's topic with a credential that is none of the route's (ntfy's 401).
    Unauthorized,
    /// Neither a route nor a device UUID.
    Invalid,
    /// More topics than `PUSHJET_BRIDGE_MAX_TOPICS_PER_STREAM`.
    TooMany(usize),
}

impl Refusal {
    /// ntfy's answer.
    pub(super) fn response(self) -> HttpResponse {
        match self {
            Self::Forbidden => error(StatusCode::FORBIDDEN, 40301, "forbidden"),
            Self::Unauthorized => error(StatusCode::UNAUTHORIZED, 40101, "unauthorized"),
            Self::Invalid => error(
                StatusCode::BAD_REQUEST,
                40009,
                "invalid request: topic invalid; a topic here is a route's name or a Pushjet \
                 device UUID (8-4-4-4-12 hex digits)",
            ),
            Self::TooMany(most) => error(
                StatusCode::BAD_REQUEST,
                40009,
                &format!(
                    "invalid request: too many topics; a stream names at most {most} topics \
                     (PUSHJET_BRIDGE_MAX_TOPICS_PER_STREAM)"
                ),
            ),
        }
    }
}

/// The path's topics (the same one named twice counts once, a UUID in any case), at most
/// `most` of them, or why they are refused.
pub(super) fn resolve(
    request: &HttpRequest,
    routes: &RouteStreams,
    most: usize,
) -> Result<Topics, Refusal> {
    let raw = request.match_info().get("topics").unwrap_or_default();
    let authorization = presented(request);
    let mut topics: Vec<(DeviceUuid, String)> = Vec::new();
    for part in raw.split(',') {
        let key = match DeviceUuid::parse(part) {
            Ok(device) => device,
            Err(_) => match routes.readers.check(part, authorization.as_deref()) {
                Some(ReadAccess::Granted) => routes.topics.topic(part),
                Some(ReadAccess::Missing) => return Err(Refusal::Forbidden),
                Some(ReadAccess::Refused) => return Err(Refusal::Unauthorized),
                None => return Err(Refusal::Invalid),
            },
        };
        if !topics.iter().any(|(known, _)| *known == key) {
            if topics.len() == most {
                return Err(Refusal::TooMany(most));
            }
            topics.push((key, part.to_owned()));
        }
    }
    Ok(Topics(topics))
}
