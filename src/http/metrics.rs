//! `GET /metrics` (Prometheus text, optionally behind a bearer token) and the middleware that
//! times every HTTP request.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, header};
use actix_web::middleware::Next;
use actix_web::{Error, HttpRequest, HttpResponse, web};

use crate::delivery::Outbox;
use crate::metrics::{HttpLabels, Metrics};
use crate::secret::Secret;

/// The bearer token `/metrics` asks for (`PUSHJET_BRIDGE_METRICS_TOKEN`); `None` leaves it open.
#[derive(Debug, Clone, Default)]
pub struct MetricsToken(pub Option<Secret>);

/// The exposition, after refreshing the outbox gauges.
pub async fn metrics(
    request: HttpRequest,
    metrics: web::Data<Metrics>,
    outbox: web::Data<Outbox>,
    token: web::Data<MetricsToken>,
) -> HttpResponse {
    if let Some(expected) = &token.0
        && !expected.is_bearer_of(request.headers())
    {
        return HttpResponse::Unauthorized()
                .insert_header((header::WWW_AUTHENTICATE, "Bearer"))
                .json(serde_json::json!({ "error": "the metrics need the bearer token of PUSHJET_BRIDGE_METRICS_TOKEN" }));
    }
    metrics
        .outbox_pending
        .set(i64::try_from(outbox.pending_count()).unwrap_or(i64::MAX));
    metrics.outbox_oldest_pending_seconds.set(
        outbox
            .oldest_pending_age()
            .map_or(0.0, |age| age.as_secs_f64()),
    );
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(metrics.encode())
}

/// The standard methods (RFC 9110 and `PATCH`) are labels of their own; any other is `other`:
/// a label a client can make up would add a series per request.
fn method_label(method: &Method) -> &'static str {
    const KNOWN: [Method; 9] = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::CONNECT,
        Method::OPTIONS,
        Method::TRACE,
        Method::PATCH,
    ];
    KNOWN
        .iter()
        .find(|known| *known == method)
        .map_or("other", Method::as_str)
}

/// Middleware: observes each request's duration by method (a closed set, see [`method_label`]),
/// matched route pattern (`unmatched` for any path no route has) and status.
pub async fn time_requests(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let metrics = request.app_data::<web::Data<Metrics>>().cloned();
    let method = method_label(request.method()).to_owned();
    let response = next.call(request).await?;
    if let Some(metrics) = metrics {
        let path = response
            .request()
            .match_pattern()
            .unwrap_or_else(|| "unmatched".to_owned());
        metrics
            .http_request_duration
            .get_or_create(&HttpLabels {
                method,
                path,
                status: response.status().as_u16().to_string(),
            })
            .observe(started.elapsed().as_secs_f64());
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_standard_methods_are_labels_of_their_own() {
        assert_eq!(method_label(&Method::POST), "POST");
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        let invented = Method::from_bytes(b"BREW").unwrap();
        assert_eq!(method_label(&invented), "other");
        let lower = Method::from_bytes(b"get").unwrap();
        assert_eq!(method_label(&lower), "other");
    }
}
