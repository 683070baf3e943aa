//! The history as the outbox's [`DeliveryObserver`]: each send becomes an attempt and a state,
//! each retried dead letter pending again, each purged one purged.

use crate::delivery::{DeliveryObserver, Fate, SendReport};
use crate::pushjet::{Error, RequestError};

use super::History;
use super::record::{Attempt, State, Write};

/// The upstream's HTTP status and Pushjet error id in a failed send, when it answered.
fn upstream_answer(error: &Error) -> (Option<u16>, Option<i64>) {
    match error {
        Error::Nonexistent { id, .. } => (Some(404), Some(*id)),
        Error::Subscription { id, .. } => (Some(409), Some(*id)),
        Error::Invalid { status, id, .. } => (Some(*status), Some(*id)),
        Error::RateLimited { .. } => (Some(429), None),
        Error::Server { status, .. } => (Some(*status), None),
        Error::Request(
            RequestError::Timeout(_) | RequestError::Connect(_) | RequestError::Transport(_),
        )
        | Error::Access(_) => (None, None),
    }
}

impl DeliveryObserver for History {
    fn sent(&self, report: SendReport<'_>) {
        let (status, error_id) = report.error.map_or((Some(200), None), upstream_answer);
        let (state, until, reason) = match report.fate {
            Fate::Sent => (State::Sent, None, None),
            Fate::Retrying { until } => (State::Retrying, Some(until), None),
            Fate::Dead { reason } => (State::Dead, None, Some(reason)),
        };
        let attempt = Attempt {
            at: report.at,
            latency_ms: report
                .latency
                .map(|latency| u64::try_from(latency.as_millis()).unwrap_or(u64::MAX)),
            status: report.latency.and(status),
            error_id,
            error: match (report.error, &reason) {
                (Some(error), _) => Some(error.to_string()),
                (None, Some(reason)) if report.latency.is_none() => Some(reason.clone()),
                _ => None,
            },
        };
        self.queue(Write::Delivery {
            id: report.id,
            at: super::now_millis(),
            state,
            until,
            reason,
            attempt: Some(attempt),
        });
    }

    fn requeued(&self, ids: &[u64]) {
        let at = super::now_millis();
        for &id in ids {
            self.queue(Write::Delivery {
                id,
                at,
                state: State::Pending,
                until: None,
                reason: None,
                attempt: None,
            });
        }
    }

    fn purged(&self, id: u64) {
        self.queue(Write::Delivery {
            id,
            at: super::now_millis(),
            state: State::Purged,
            until: None,
            reason: None,
            attempt: None,
        });
    }
}
