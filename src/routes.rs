//! Routes: the named webhook targets (`POST /hooks/{route}`), each with its Pushjet service,
//! inbound authentication, sender options, template choice and event filter.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::noise::NoisePolicy;
use crate::pushjet::{DeviceUuid, SecretKey};
use crate::sources::SourceOptions;
use crate::verify::{InboundAuth, ReaderAuth};

/// Why a text is not a route name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "route name `{0}` must be 1-64 characters of a-z, 0-9, `_` and `-`, and not shaped like a \
     device UUID (8-4-4-4-12 hex digits), which as an ntfy topic names a device"
)]
pub struct RouteNameError(pub String);

/// A route's name: 1–64 characters of `a-z`, `0-9`, `_` and `-`, never shaped like a device UUID
/// (route names and device UUIDs share ntfy's topics).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct RouteName(String);

impl RouteName {
    /// Parses a route name.
    pub fn parse(raw: &str) -> Result<Self, RouteNameError> {
        let valid = (1..=64).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
            && DeviceUuid::parse(raw).is_err();
        if valid {
            Ok(Self(raw.to_owned()))
        } else {
            Err(RouteNameError(raw.chars().take(80).collect()))
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The prefix of this route's environment variables: `PUSHJET_BRIDGE_ROUTE_<NAME>_`, the
    /// name upper-cased with `-` turned into `_`.
    pub fn env_prefix(&self) -> String {
        format!(
            "PUSHJET_BRIDGE_ROUTE_{}_",
            self.0.to_ascii_uppercase().replace('-', "_")
        )
    }
}

impl fmt::Display for RouteName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which events a route sends: entries are `event` or `event.action`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFilter(Vec<String>);

impl EventFilter {
    /// Parses a comma-separated allow-list; empty entries are ignored.
    pub fn parse(raw: &str) -> Self {
        Self(
            raw.split(',')
                .map(str::trim)
                .filter(|entry| !entry.is_empty())
                .map(str::to_owned)
                .collect(),
        )
    }

    /// The entries, as configured.
    pub fn entries(&self) -> &[String] {
        &self.0
    }

    /// True when `event` (with `action`) is on the list, by its event name or `event.action`.
    pub fn allows(&self, event: &str, action: Option<&str>) -> bool {
        self.0.iter().any(|entry| match entry.split_once('.') {
            Some((entry_event, entry_action)) => {
                entry_event == event && action == Some(entry_action)
            }
            None => entry == event,
        })
    }
}

/// When a route answers the sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeliveryMode {
    /// Answer 202 once the notifications are in the durable outbox; workers send them (`queued`,
    /// the default).
    #[default]
    Queued,
    /// Answer only after Pushjet accepted every notification, or with its error (`sync`).
    Sync,
}

impl std::str::FromStr for DeliveryMode {
    type Err = String;
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "queued" | "async" => Ok(Self::Queued),
            "sync" => Ok(Self::Sync),
            _ => Err("use queued (the default) or sync".to_owned()),
        }
    }
}

/// How a route hands notifications to Pushjet.
#[derive(Debug, Clone)]
pub struct Route {
    /// Its name.
    pub name: RouteName,
    /// The Pushjet service's secret key.
    pub secret: SecretKey,
    /// Who may post to it.
    pub auth: InboundAuth,
    /// Who may read its stream (`/<route>/json`, …).
    pub readers: ReaderAuth,
    /// How payloads are read.
    pub source: SourceOptions,
    /// A template to use instead of the sender's built-in choice.
    pub template: Option<String>,
    /// The events to send; `None` sends all.
    pub events: Option<EventFilter>,
    /// When the sender gets its answer.
    pub delivery: DeliveryMode,
    /// Rate limit, quiet hours and collapsing (all off by default).
    pub noise: NoisePolicy,
}

impl Route {
    /// Whether notifications for this event are sent. GitHub's `ping` is only sent when the
    /// allow-list names it.
    pub fn sends(&self, event: &str, action: Option<&str>) -> bool {
        match &self.events {
            Some(filter) => filter.allows(event, action),
            None => event != "ping",
        }
    }
}

/// Every configured route by name.
#[derive(Debug, Clone, Default)]
pub struct Routes(BTreeMap<RouteName, Route>);

impl Routes {
    /// Collects routes (names are unique by construction in the configuration).
    pub fn new(routes: impl IntoIterator<Item = Route>) -> Self {
        Self(
            routes
                .into_iter()
                .map(|route| (route.name.clone(), route))
                .collect(),
        )
    }

    /// The route named by a request path segment.
    pub fn get(&self, name: &str) -> Option<&Route> {
        RouteName::parse(name)
            .ok()
            .and_then(|name| self.0.get(&name))
    }

    /// True when no route is configured.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every route, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Route> {
        self.0.values()
    }

    /// Adds or replaces a route.
    pub fn insert(&mut self, route: Route) {
        self.0.insert(route.name.clone(), route);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_names_are_lowercase_digits_dash_underscore_up_to_64() {
        assert!(RouteName::parse("github-prod_2").is_ok());
        assert!(RouteName::parse(&"a".repeat(64)).is_ok());
        assert!(RouteName::parse(&"a".repeat(65)).is_err());
        assert!(RouteName::parse("").is_err());
        assert!(RouteName::parse("Upper").is_err());
        assert!(RouteName::parse("dot.ted").is_err());
        assert!(RouteName::parse("../etc").is_err());
    }

    #[test]
    fn a_route_name_shaped_like_a_device_uuid_is_refused() {
        let refused = RouteName::parse("01234567-89ab-cdef-0123-456789abcdef");
        assert!(
            refused.is_err_and(|error| error.to_string().contains("device UUID")),
            "a UUID-shaped route would hide the device's topic"
        );
        assert!(RouteName::parse("01234567-89ab-cdef-0123-456789abcdeg").is_ok());
    }

    #[test]
    fn env_prefix_upper_cases_and_turns_dashes_into_underscores() {
        assert_eq!(
            RouteName::parse("gh-prod").unwrap().env_prefix(),
            "PUSHJET_BRIDGE_ROUTE_GH_PROD_"
        );
    }

    #[test]
    fn event_filter_matches_event_or_event_dot_action() {
        let filter = EventFilter::parse("push, pull_request.opened,workflow_run.completed,");
        assert!(filter.allows("push", None));
        assert!(filter.allows("push", Some("anything")));
        assert!(filter.allows("pull_request", Some("opened")));
        assert!(!filter.allows("pull_request", Some("closed")));
        assert!(!filter.allows("pull_request", None));
        assert!(!filter.allows("issues", Some("opened")));
    }
}
