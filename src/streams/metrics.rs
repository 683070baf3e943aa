//! The streams' metrics: open streams, messages streamed, slow streams dropped and streams
//! refused by a limit, each by kind of stream. Registered with the service's other metrics.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The kinds of live stream.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum StreamKind {
    /// Pushjet's connector protocol, `GET /pushjet/ws`.
    Connector,
    /// ntfy's `/<uuid>/json`.
    Json,
    /// ntfy's `/<uuid>/sse`.
    Sse,
    /// ntfy's `/<uuid>/raw`.
    Raw,
    /// ntfy's `/<uuid>/ws`.
    Ws,
}

impl StreamKind {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connector => "connector",
            Self::Json => "json",
            Self::Sse => "sse",
            Self::Raw => "raw",
            Self::Ws => "ws",
        }
    }
}

/// A kind of stream as a label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    /// `connector`, `json`, `sse`, `raw` or `ws`.
    pub kind: &'static str,
}

fn label(kind: StreamKind) -> KindLabel {
    KindLabel {
        kind: kind.as_str(),
    }
}

/// The streams' metrics (cheap to clone: every clone counts into the same values).
#[derive(Clone, Debug, Default)]
pub struct StreamMetrics {
    open: Family<KindLabel, Gauge>,
    messages: Family<KindLabel, Counter>,
    slow_dropped: Family<KindLabel, Counter>,
    refused: Family<KindLabel, Counter>,
}

impl StreamMetrics {
    /// Registers every stream metric in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "streams_open",
            "Live streams open, by kind",
            self.open.clone(),
        );
        registry.register(
            "stream_messages",
            "Messages handed to live streams, by kind",
            self.messages.clone(),
        );
        registry.register(
            "stream_slow_consumers_dropped",
            "Live streams disconnected because their buffer was full or too many bytes waited for their client, by kind",
            self.slow_dropped.clone(),
        );
        registry.register(
            "streams_refused",
            "Live streams refused by PUSHJET_BRIDGE_MAX_STREAMS or the per-device limit, by kind",
            self.refused.clone(),
        );
    }

    pub(super) fn opened(&self, kind: StreamKind) {
        self.open.get_or_create(&label(kind)).inc();
    }

    pub(super) fn closed(&self, kind: StreamKind) {
        self.open.get_or_create(&label(kind)).dec();
    }

    pub(super) fn streamed(&self, kind: StreamKind) {
        self.messages.get_or_create(&label(kind)).inc();
    }

    pub(super) fn dropped_slow(&self, kind: StreamKind) {
        self.slow_dropped.get_or_create(&label(kind)).inc();
    }

    pub(super) fn refused(&self, kind: StreamKind) {
        self.refused.get_or_create(&label(kind)).inc();
    }
}
