//! One history record per request to a known route, made from the handled request once it is
//! answered: hooks and the protocol adapters (ntfy, Gotify) call [`note`] where they log and
//! count it. Requests to no route are only counted in the metrics (so that nobody can fill the
//! history by posting to made-up paths), and refused requests are recorded at most
//! `REFUSALS_PER_MINUTE` per route (see `History::admits_refusal`).

use actix_web::{HttpMessage, HttpRequest, ResponseError, web};

use crate::history::{self, History, KeptRequest, Record, Verdict, Via};
use crate::http::error::HookError;
use crate::http::hooks::{Accepted, Handed};
use crate::pipeline::Inbound;
use crate::routes::RouteName;

/// The request as the history keeps it, stashed in the request's extensions by the handler that
/// read the body (only when bodies are kept).
#[derive(Debug, Clone)]
pub(crate) struct Kept(pub(crate) KeptRequest);

/// Stashes what the pipeline reads of this request, redacted, for its record (when the history
/// keeps bodies). `read_as` names the sender a protocol adapter turned it into.
pub(crate) fn keep_input(request: &HttpRequest, inbound: &Inbound<'_>, read_as: Option<&str>) {
    let keeps = request
        .app_data::<web::Data<History>>()
        .is_some_and(|history| history.keeps_bodies());
    if keeps {
        let kept =
            history::redact::kept_request(inbound.headers, inbound.query, inbound.body, read_as);
        request.extensions_mut().insert(Kept(kept));
    }
}

/// How the request came in, from its path.
fn via(request: &HttpRequest) -> Via {
    let path = request.path();
    if path.starts_with("/hooks/") {
        Via::Hooks
    } else if path == "/message" {
        Via::Gotify
    } else {
        Via::Ntfy
    }
}

/// Records a handled request to `route` in the history (queued; returns at once).
pub(crate) fn note(
    request: &HttpRequest,
    route: Option<&RouteName>,
    outcome: &Result<Accepted<'_>, HookError>,
    request_id: &str,
) {
    let Some(route) = route else {
        return;
    };
    let Some(history) = request.app_data::<web::Data<History>>() else {
        return;
    };
    if !history.is_on() {
        return;
    }
    let at = history::now_millis();
    let kept = request.extensions_mut().remove::<Kept>().map(|kept| kept.0);
    let mut record = Record {
        id: 0,
        at,
        route: route.to_string(),
        via: via(request),
        source: String::new(),
        event: String::new(),
        action: None,
        delivery_id: None,
        request_id: request_id.to_owned(),
        status: 0,
        verdict: Verdict::Refused,
        reason: None,
        notifications: Vec::new(),
        request: kept,
        again_of: None,
    };
    match outcome {
        Ok(accepted) => {
            let prepared = accepted.prepared();
            record.source = prepared.source.to_owned();
            record.event.clone_from(&prepared.event);
            record.action.clone_from(&prepared.action);
            record.delivery_id.clone_from(&prepared.delivery_id);
            let (status, verdict, queued, sent_at): (u16, Verdict, &[u64], Option<u64>) =
                match accepted.handed() {
                    Handed::Nothing if prepared.filtered.is_some() => {
                        (200, Verdict::Filtered, &[], None)
                    }
                    Handed::Nothing => (200, Verdict::Skipped, &[], None),
                    Handed::Queued(ids) => (202, Verdict::Queued, ids, None),
                    Handed::Duplicate => (200, Verdict::Duplicate, &[], None),
                    Handed::Sent(_) => (200, Verdict::Sent, &[], Some(at)),
                };
            record.status = status;
            record.verdict = verdict;
            record.reason = match verdict {
                Verdict::Filtered => prepared.filtered.clone(),
                Verdict::Skipped => Some("every template rendered an empty message".to_owned()),
                Verdict::Duplicate => Some("this delivery was already accepted".to_owned()),
                _ => None,
            };
            record.notifications = history::rendered(prepared, queued, sent_at);
        }
        Err(error) => {
            if !history.admits_refusal(route.as_str()) {
                return;
            }
            record.status = error.status_code().as_u16();
            // The answer's sentence: for a failed authentication only that it failed.
            record.reason = Some(error.to_string());
        }
    }
    record.id = history.next_id(at);
    history.record(record);
}
