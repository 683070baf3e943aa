//! Grafana alerting's webhook contact point. Unified alerting (Grafana 8 and later) sends an
//! Alertmanager-like group with Grafana's own fields (`orgId`, `state`, `title`, `message`);
//! legacy dashboard alerting sends one rule's state (`ruleName`, `ruleUrl`, `evalMatches`).

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::body::Body;
use super::{Context, DecodeError, Decoded, SourceKind, SourceOptions, alerts};

/// Fields only Grafana's unified alerting payload has next to `alerts`.
const UNIFIED_FIELDS: [&str; 3] = ["orgId", "state", "title"];
/// Fields of Grafana's legacy alerting payload.
const LEGACY_FIELDS: [&str; 3] = ["ruleName", "ruleUrl", "evalMatches"];

fn has_any(payload: &Value, fields: &[&str]) -> bool {
    fields.iter().any(|field| payload.get(field).is_some())
}

/// True for Grafana's unified payload (`alerts` plus a Grafana-only field) or its legacy one.
pub(super) fn recognises(payload: &Value) -> bool {
    let unified =
        payload.get("alerts").is_some_and(Value::is_array) && has_any(payload, &UNIFIED_FIELDS);
    unified || (payload.is_object() && has_any(payload, &LEGACY_FIELDS))
}

/// Decodes a Grafana payload into its notifications.
pub(super) fn decode(body: Body, options: &SourceOptions) -> Result<Decoded, DecodeError> {
    match body {
        Body::Json(Value::Object(payload))
            if payload.get("alerts").is_some_and(Value::is_array) =>
        {
            alerts::decode_group(SourceKind::Grafana, payload, options)
        }
        Body::Json(Value::Object(payload))
            if LEGACY_FIELDS.iter().any(|f| payload.contains_key(*f)) =>
        {
            Ok(decode_legacy(payload, options))
        }
        _ => Err(DecodeError::UnexpectedPayload {
            sender: SourceKind::Grafana,
            expected: "a JSON object with an alerts array (or legacy alerting's ruleName)",
        }),
    }
}

/// A legacy payload: one notification, its event the rule's `state`; state `ok` is resolved.
fn decode_legacy(payload: Map<String, Value>, options: &SourceOptions) -> Decoded {
    let state = payload
        .get("state")
        .and_then(Value::as_str)
        .unwrap_or("unknown")
        .to_owned();
    let importance = if state == "ok" {
        options.resolved.importance()
    } else {
        Some(options.default_importance)
    };
    let material = json!([
        payload.get("ruleId"),
        payload.get("ruleName"),
        payload.get("state"),
        payload.get("title"),
    ]);
    let delivery_id = hex::encode(Sha256::digest(material.to_string().as_bytes()));
    let contexts = importance
        .map(|importance| {
            let mut extra = Map::new();
            extra.insert("firing".into(), json!([]));
            extra.insert("resolved".into(), json!([]));
            extra.insert("more".into(), json!(0));
            Context::new(
                options,
                SourceKind::Grafana,
                (&state, None, importance),
                payload,
                extra,
            )
        })
        .into_iter()
        .collect();
    Decoded {
        source: SourceKind::Grafana,
        event: state,
        action: None,
        delivery_id: Some(delivery_id),
        contexts,
    }
}

#[cfg(test)]
mod tests {
    use super::super::decode as decode_request;
    use super::super::test_support::{fixture, json_headers};
    use super::super::{AlertGrouping, ResolvedPolicy};
    use super::*;

    fn deliver(file: &str, options: &SourceOptions) -> Decoded {
        decode_request(&json_headers(), "", &fixture("grafana", file), options)
            .unwrap_or_else(|error| panic!("{file}: {error}"))
    }

    #[test]
    fn unified_firing_group_is_split_like_alertmanager() {
        let mut options = SourceOptions::new("graf");
        let decoded = deliver("firing.docs-two-alerts.json", &options);
        assert_eq!(decoded.source, SourceKind::Grafana);
        assert_eq!(decoded.event, "firing");
        assert_eq!(decoded.contexts.len(), 1);
        let context = &decoded.contexts[0].tree;
        assert_eq!(
            context["bridge"]["firing"].as_array().map(Vec::len),
            Some(2)
        );
        assert_eq!(context["title"], json!("[FIRING:2]  (blue)"));
        assert_eq!(context["bridge"]["importance"], json!("3"));
        options.grouping = AlertGrouping::Alert;
        assert_eq!(
            deliver("firing.docs-two-alerts.json", &options)
                .contexts
                .len(),
            2
        );
    }

    #[test]
    fn unified_resolved_group_is_resolved() {
        let decoded = deliver("resolved.json", &SourceOptions::new("graf"));
        assert_eq!(decoded.event, "resolved");
        assert_eq!(decoded.contexts[0].tree["bridge"]["importance"], json!("1"));
        assert_eq!(
            decoded.contexts[0].tree["bridge"]["resolved"]
                .as_array()
                .map(Vec::len),
            Some(1)
        );
    }

    #[test]
    fn default_payload_template_body_decodes() {
        let decoded = deliver(
            "firing.grafana-alerting-default-payload.json",
            &SourceOptions::new("graf"),
        );
        assert_eq!(decoded.event, "firing");
        assert_eq!(decoded.contexts.len(), 1);
    }

    #[test]
    fn legacy_payload_is_one_notification_named_by_its_state() {
        let decoded = deliver(
            "legacy-alerting.test-notification.json",
            &SourceOptions::new("graf"),
        );
        assert_eq!(decoded.event, "alerting");
        assert_eq!(decoded.contexts.len(), 1);
        let context = &decoded.contexts[0].tree;
        assert_eq!(context["ruleName"], json!("Test notification"));
        assert_eq!(context["bridge"]["event"], json!("alerting"));
        assert_eq!(context["bridge"]["importance"], json!("3"));
        assert!(
            decoded
                .dedup_key()
                .is_some_and(|key| key.starts_with("grafana:"))
        );
    }

    #[test]
    fn legacy_ok_state_follows_the_resolved_policy() {
        let mut options = SourceOptions::new("graf");
        options.resolved = ResolvedPolicy::Suppress;
        let body = br#"{"ruleName":"CPU","state":"ok","title":"[OK] CPU"}"#;
        let decoded = decode_request(&json_headers(), "", body, &options).expect("decodes");
        assert_eq!(decoded.source, SourceKind::Grafana);
        assert_eq!(decoded.event, "ok");
        assert!(decoded.contexts.is_empty());
    }
}
