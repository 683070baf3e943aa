//! The history's metrics: records written, pruned and dropped, bytes in use, and refusals that
//! were counted rather than recorded.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Every history metric; clones share the values.
#[derive(Debug, Clone, Default)]
pub struct HistoryMetrics {
    /// Records written.
    pub written: Counter,
    /// Records deleted by retention (age or bytes).
    pub pruned: Counter,
    /// Bytes the records take (as last measured).
    pub bytes: Gauge,
    /// Writes dropped because the writer was too far behind or the store refused them.
    pub dropped: Counter,
    /// Refused requests counted here instead of recorded (over the per-route rate of refusals).
    pub refusals_unrecorded: Counter,
}

impl HistoryMetrics {
    /// Registers every history metric in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "history_records_written",
            "Delivery history records written",
            self.written.clone(),
        );
        registry.register(
            "history_records_pruned",
            "Delivery history records deleted by retention (age or bytes)",
            self.pruned.clone(),
        );
        registry.register(
            "history_bytes",
            "Bytes the delivery history's records take",
            self.bytes.clone(),
        );
        registry.register(
            "history_writes_dropped",
            "Delivery history writes dropped (writer behind, or the store refused)",
            self.dropped.clone(),
        );
        registry.register(
            "history_refusals_unrecorded",
            "Refused requests counted instead of recorded (too many for their route)",
            self.refusals_unrecorded.clone(),
        );
    }
}
