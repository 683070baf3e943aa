//! The service's Prometheus metrics: one registry per running service (no global state), its
//! counters, gauges and histograms, and the text exposition served at `GET /metrics`.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

/// The git revision the binary was built from (`unknown` outside a git checkout).
pub const GIT_REVISION: &str = env!("PUSHJET_BRIDGE_GIT_REVISION");

/// A route and the sender it named.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteSource {
    /// The route (`(unknown)` for a path that names no route).
    pub route: String,
    /// The sender (`github`, …; empty when the request was refused before decoding).
    pub source: String,
}

/// Why a webhook was refused.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Rejection {
    /// The route (`(unknown)` for a path that names no route).
    pub route: String,
    /// `unknown_route`, `auth`, `size`, `content_type`, `malformed`, `unavailable` or `upstream`.
    pub reason: String,
}

/// A route alone.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    /// The route.
    pub route: String,
}

/// A route and why its notifications were held.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HeldReason {
    /// The route.
    pub route: String,
    /// `rate` or `quiet_hours`.
    pub reason: String,
}

/// The outcome of one request to Pushjet.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PushjetOutcome {
    /// `ok`, `transient` (retry may help) or `permanent`.
    pub outcome: String,
}

/// One HTTP request to this service.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// The method: a standard one (`GET`, `POST`, …), else `other`.
    pub method: String,
    /// The matched route pattern (`/hooks/{route}`), or `unmatched`.
    pub path: String,
    /// The status code.
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
    revision: String,
}

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// Every metric of the service.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Webhooks received, by route and source.
    pub webhooks_received: Family<RouteSource, Counter>,
    /// Webhooks refused, by route and reason.
    pub webhooks_rejected: Family<Rejection, Counter>,
    /// Webhooks accepted but not sent because of the route's event filter (or GitHub's ping).
    pub webhooks_filtered: Family<RouteSource, Counter>,
    /// Webhooks recognised as a delivery already accepted.
    pub webhooks_deduplicated: Family<RouteSource, Counter>,
    /// Notifications rendered (sent, queued or skipped by their template).
    pub notifications_rendered: Family<RouteSource, Counter>,
    /// Templates that failed and were replaced by the fallback notification.
    pub template_errors: Family<RouteSource, Counter>,
    /// Notifications Pushjet accepted.
    pub notifications_sent: Family<RouteLabel, Counter>,
    /// Failed sends that will be tried again.
    pub notifications_retried: Family<RouteLabel, Counter>,
    /// Notifications that became dead letters.
    pub notifications_dead_lettered: Family<RouteLabel, Counter>,
    /// Notifications held by a route's noise policy for a digest, by route and reason.
    pub notifications_held: Family<HeldReason, Counter>,
    /// Held notifications released in a digest.
    pub notifications_digested: Family<RouteLabel, Counter>,
    /// Notifications not sent as repeats of one sent within the route's `COLLAPSE`.
    pub notifications_collapsed: Family<RouteLabel, Counter>,
    /// Notifications waiting in the outbox (set when scraped).
    pub outbox_pending: Gauge,
    /// Age of the oldest pending notification in seconds (set when scraped).
    pub outbox_oldest_pending_seconds: Gauge<f64, AtomicU64>,
    /// Duration of requests to Pushjet, by outcome.
    pub pushjet_request_duration: Family<PushjetOutcome, Histogram>,
    /// Duration of HTTP requests served.
    pub http_request_duration: Family<HttpLabels, Histogram>,
    /// The configuration's generation: 1 at start, one more per successful reload.
    pub config_generation: Gauge,
    /// 1 when the last reload succeeded (or none happened), 0 when it was refused.
    pub config_last_reload_success: Gauge,
    /// The live streams of the embedded API.
    pub streams: crate::streams::StreamMetrics,
    /// The delivery history.
    pub history: crate::history::HistoryMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric registered under the `pushjet_bridge` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("pushjet_bridge");
        let metrics = Self {
            webhooks_received: Family::default(),
            webhooks_rejected: Family::default(),
            webhooks_filtered: Family::default(),
            webhooks_deduplicated: Family::default(),
            notifications_rendered: Family::default(),
            template_errors: Family::default(),
            notifications_sent: Family::default(),
            notifications_retried: Family::default(),
            notifications_dead_lettered: Family::default(),
            notifications_held: Family::default(),
            notifications_digested: Family::default(),
            notifications_collapsed: Family::default(),
            outbox_pending: Gauge::default(),
            outbox_oldest_pending_seconds: Gauge::default(),
            pushjet_request_duration: Family::new_with_constructor(latency_histogram),
            http_request_duration: Family::new_with_constructor(latency_histogram),
            config_generation: Gauge::default(),
            config_last_reload_success: Gauge::default(),
            streams: crate::streams::StreamMetrics::default(),
            history: crate::history::HistoryMetrics::default(),
            registry: Registry::default(),
        };
        let Self {
            webhooks_received,
            webhooks_rejected,
            webhooks_filtered,
            webhooks_deduplicated,
            notifications_rendered,
            template_errors,
            notifications_sent,
            notifications_retried,
            notifications_dead_lettered,
            notifications_held,
            notifications_digested,
            notifications_collapsed,
            outbox_pending,
            outbox_oldest_pending_seconds,
            pushjet_request_duration,
            http_request_duration,
            config_generation,
            config_last_reload_success,
            ..
        } = &metrics;
        registry.register(
            "webhooks_received",
            "Webhooks received",
            webhooks_received.clone(),
        );
        registry.register(
            "webhooks_rejected",
            "Webhooks refused, by reason",
            webhooks_rejected.clone(),
        );
        registry.register(
            "webhooks_filtered",
            "Webhooks accepted and not sent (event filter, ping)",
            webhooks_filtered.clone(),
        );
        registry.register(
            "webhooks_deduplicated",
            "Webhooks recognised as an accepted delivery",
            webhooks_deduplicated.clone(),
        );
        registry.register(
            "notifications_rendered",
            "Notifications rendered from templates",
            notifications_rendered.clone(),
        );
        registry.register(
            "template_errors",
            "Templates that failed (the fallback was sent)",
            template_errors.clone(),
        );
        registry.register(
            "notifications_sent",
            "Notifications Pushjet accepted",
            notifications_sent.clone(),
        );
        registry.register(
            "notifications_retried",
            "Failed sends that will be retried",
            notifications_retried.clone(),
        );
        registry.register(
            "notifications_dead_lettered",
            "Notifications that became dead letters",
            notifications_dead_lettered.clone(),
        );
        registry.register(
            "notifications_held",
            "Notifications held for a digest by the route's noise policy, by reason",
            notifications_held.clone(),
        );
        registry.register(
            "notifications_digested",
            "Held notifications released in a digest",
            notifications_digested.clone(),
        );
        registry.register(
            "notifications_collapsed",
            "Notifications not sent as repeats within the route's COLLAPSE window",
            notifications_collapsed.clone(),
        );
        registry.register(
            "outbox_pending",
            "Notifications waiting in the outbox",
            outbox_pending.clone(),
        );
        registry.register(
            "outbox_oldest_pending_age_seconds",
            "Age of the oldest notification waiting in the outbox",
            outbox_oldest_pending_seconds.clone(),
        );
        registry.register(
            "pushjet_request_duration_seconds",
            "Duration of requests to the Pushjet API, by outcome",
            pushjet_request_duration.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Duration of HTTP requests served",
            http_request_duration.clone(),
        );
        registry.register(
            "config_generation",
            "Configuration generation (reloads + 1)",
            config_generation.clone(),
        );
        registry.register(
            "config_last_reload_success",
            "1 when the last configuration reload succeeded",
            config_last_reload_success.clone(),
        );
        registry.register(
            "build",
            "Version and git revision of this binary",
            Info::new(BuildLabels {
                version: env!("CARGO_PKG_VERSION").to_owned(),
                revision: GIT_REVISION.to_owned(),
            }),
        );
        metrics.streams.register(&mut registry);
        metrics.history.register(&mut registry);
        metrics.config_generation.set(1);
        metrics.config_last_reload_success.set(1);
        Self {
            registry,
            ..metrics
        }
    }

    /// The text exposition of every metric (OpenMetrics text, which Prometheus reads).
    pub fn encode(&self) -> String {
        let mut text = String::new();
        match prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            Ok(()) => text,
            Err(_) => String::from("# the metrics could not be encoded\n"),
        }
    }

    /// Records one request to Pushjet.
    pub fn observe_pushjet(&self, outcome: &str, duration: Duration) {
        self.pushjet_request_duration
            .get_or_create(&PushjetOutcome {
                outcome: outcome.to_owned(),
            })
            .observe(duration.as_secs_f64());
    }
}

/// A route-and-source label set.
pub fn route_source(route: &str, source: &str) -> RouteSource {
    RouteSource {
        route: route.to_owned(),
        source: source.to_owned(),
    }
}

/// A route label set.
pub fn route_label(route: &str) -> RouteLabel {
    RouteLabel {
        route: route.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_appear_in_the_exposition_with_their_labels() {
        let metrics = Metrics::new();
        metrics
            .webhooks_received
            .get_or_create(&route_source("gh", "github"))
            .inc();
        metrics
            .notifications_sent
            .get_or_create(&route_label("gh"))
            .inc_by(2);
        let text = metrics.encode();
        assert!(
            text.contains(
                r#"pushjet_bridge_webhooks_received_total{route="gh",source="github"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"pushjet_bridge_notifications_sent_total{route="gh"} 2"#),
            "{text}"
        );
        assert!(
            text.contains("pushjet_bridge_build_info{version="),
            "{text}"
        );
        assert!(
            text.contains("pushjet_bridge_config_generation 1"),
            "{text}"
        );
    }
}
