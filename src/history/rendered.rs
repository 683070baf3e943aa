//! How what the pipeline made becomes a record's notifications.

use crate::noise::Verdict as NoiseVerdict;
use crate::notification::Assembled;
use crate::pipeline::Prepared;

use super::record::{Delivery, Rendered, State};

/// The notifications `prepared` rendered, in order; those sent (and not held or collapsed by
/// the route's noise control) get the outbox ids of `queued` in their order, or, for a route that sent them at once (`sent_at`), a delivery already sent.
pub fn rendered(prepared: &Prepared, queued: &[u64], sent_at: Option<u64>) -> Vec<Rendered> {
    let mut ids = queued.iter().copied();
    prepared
        .notifications
        .iter()
        .map(|notification| {
            let message = match &notification.assembled {
                Assembled::Send { notification, .. } => Some(notification.clone()),
                Assembled::Skip => None,
            };
            // Held or collapsed by the route's noise control: not queued, so no id of its own.
            let queued = notification
                .noise
                .is_none_or(|verdict| verdict == NoiseVerdict::Send);
            let id = message.as_ref().filter(|_| queued).and_then(|_| ids.next());
            let delivery = sent_at.filter(|_| message.is_some()).map(|at| Delivery {
                state: State::Sent,
                ..Delivery::pending(at)
            });
            Rendered {
                id,
                template: notification.template.clone(),
                notification: message,
                template_error: notification.template_error.clone(),
                delivery,
                noise: notification.noise,
            }
        })
        .collect()
}
