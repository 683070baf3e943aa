//! Prometheus Alertmanager's webhook receiver: a version-4 group payload with an `alerts` array.
//! It names no event and no delivery id in headers; the group's state is the event, and a digest
//! of it stands in for the delivery id (see [`super::Decoded::delivery_id`]).

use serde_json::Value;

use super::body::Body;
use super::{DecodeError, Decoded, SourceKind, SourceOptions, alerts};

/// True for Alertmanager's payload: `"version": "4"` and an `alerts` array.
pub(super) fn recognises(payload: &Value) -> bool {
    let Some(alerts) = payload.get("alerts").and_then(Value::as_array) else {
        return false;
    };
    if payload.get("version").and_then(Value::as_str) == Some("4") {
        return true;
    }
    // Older releases (`version` "3", 0 or none) and senders copying the shape: a group's
    // fields beside alerts that carry labels, and none of Grafana's own fields.
    let group_fields = GROUP_FIELDS.iter().any(|key| payload.get(key).is_some());
    let labelled = !alerts.is_empty()
        && alerts
            .iter()
            .all(|alert| alert.get("labels").is_some_and(Value::is_object));
    let grafana = GRAFANA_FIELDS.iter().any(|key| payload.get(key).is_some());
    group_fields && labelled && !grafana
}

/// Fields of an Alertmanager group payload beside `alerts`, in every release.
const GROUP_FIELDS: [&str; 5] = [
    "receiver",
    "groupLabels",
    "commonLabels",
    "externalURL",
    "groupKey",
];
/// Fields only Grafana's Alertmanager-like payload has.
const GRAFANA_FIELDS: [&str; 3] = ["orgId", "state", "title"];

/// Decodes an Alertmanager group into its notifications.
pub(super) fn decode(body: Body, options: &SourceOptions) -> Result<Decoded, DecodeError> {
    match body {
        Body::Json(Value::Object(group)) => {
            alerts::decode_group(SourceKind::Alertmanager, group, options)
        }
        _ => Err(DecodeError::UnexpectedPayload {
            sender: SourceKind::Alertmanager,
            expected: "a JSON object with an alerts array",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::super::decode as decode_request;
    use super::super::test_support::{fixture, fixture_names, json_headers};
    use super::super::{AlertGrouping, ResolvedPolicy};
    use super::*;
    use crate::pushjet::Importance;
    use serde_json::json;

    const MIXED: &str = "captured-mixed-firing-resolved.json";

    fn options(grouping: AlertGrouping, resolved: ResolvedPolicy) -> SourceOptions {
        let mut options = SourceOptions::new("am");
        options.grouping = grouping;
        options.resolved = resolved;
        options
    }

    fn deliver(body: &[u8], options: &SourceOptions) -> Decoded {
        decode_request(&json_headers(), "", body, options).expect("decodes")
    }

    fn instances(alerts: &Value) -> Vec<&str> {
        alerts
            .as_array()
            .map(|alerts| {
                alerts
                    .iter()
                    .filter_map(|alert| alert["labels"]["instance"].as_str())
                    .map(|instance| instance.split('.').next().unwrap_or_default())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn importance(context: &Value) -> &str {
        context["bridge"]["importance"].as_str().unwrap_or_default()
    }

    #[test]
    fn group_mode_gives_one_notification_with_the_split() {
        let decoded = deliver(
            &fixture("alertmanager", MIXED),
            &options(AlertGrouping::Group, ResolvedPolicy::Send),
        );
        assert_eq!(decoded.source, SourceKind::Alertmanager);
        assert_eq!(decoded.event, "firing");
        assert_eq!(decoded.contexts.len(), 1);
        let context = &decoded.contexts[0].tree;
        assert_eq!(instances(&context["alerts"]), ["api-1", "api-2", "api-3"]);
        assert_eq!(instances(&context["bridge"]["firing"]), ["api-1", "api-2"]);
        assert_eq!(instances(&context["bridge"]["resolved"]), ["api-3"]);
        assert_eq!(context["bridge"]["event"], json!("firing"));
        assert_eq!(context["bridge"]["more"], json!(0));
        assert_eq!(importance(context), "5");
        assert_eq!(
            context["groupKey"],
            json!("{}:{alertname=\"HighRequestLatency\"}")
        );
        assert_eq!(context["status"], json!("firing"));
    }

    #[test]
    fn alert_mode_gives_one_notification_per_alert() {
        let decoded = deliver(
            &fixture("alertmanager", MIXED),
            &options(AlertGrouping::Alert, ResolvedPolicy::Send),
        );
        let summary: Vec<(Vec<&str>, &str, &str)> = decoded
            .contexts
            .iter()
            .map(|context| {
                (
                    instances(&context.tree["alerts"]),
                    context.event.as_str(),
                    importance(&context.tree),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (vec!["api-1"], "firing", "5"),
                (vec!["api-2"], "firing", "4"),
                (vec!["api-3"], "resolved", "1"),
            ]
        );
    }

    #[test]
    fn status_mode_gives_firing_then_resolved() {
        let decoded = deliver(
            &fixture("alertmanager", MIXED),
            &options(AlertGrouping::Status, ResolvedPolicy::Send),
        );
        assert_eq!(decoded.contexts.len(), 2);
        let (firing, resolved) = (&decoded.contexts[0].tree, &decoded.contexts[1].tree);
        assert_eq!(instances(&firing["alerts"]), ["api-1", "api-2"]);
        assert_eq!(instances(&firing["bridge"]["firing"]), ["api-1", "api-2"]);
        assert_eq!(firing["bridge"]["resolved"], json!([]));
        assert_eq!(importance(firing), "5");
        assert_eq!(instances(&resolved["alerts"]), ["api-3"]);
        assert_eq!(resolved["bridge"]["event"], json!("resolved"));
        assert_eq!(importance(resolved), "1");
    }

    #[test]
    fn suppress_drops_resolved_only_notifications_and_keeps_mixed_ones() {
        let body = fixture("alertmanager", MIXED);
        let by_status = deliver(
            &body,
            &options(AlertGrouping::Status, ResolvedPolicy::Suppress),
        );
        assert_eq!(by_status.contexts.len(), 1);
        assert_eq!(
            by_status.contexts[0].tree["bridge"]["event"],
            json!("firing")
        );
        let by_group = deliver(
            &body,
            &options(AlertGrouping::Group, ResolvedPolicy::Suppress),
        );
        assert_eq!(
            instances(&by_group.contexts[0].tree["bridge"]["resolved"]),
            ["api-3"]
        );
        let resolved = fixture("alertmanager", "captured-resolved-multi.json");
        let dropped = deliver(
            &resolved,
            &options(AlertGrouping::Group, ResolvedPolicy::Suppress),
        );
        assert_eq!(dropped.event, "resolved");
        assert!(dropped.contexts.is_empty());
    }

    #[test]
    fn resolved_policy_importance_applies_to_resolved_notifications() {
        let resolved = fixture("alertmanager", "captured-resolved-multi.json");
        let policy = ResolvedPolicy::Importance(Importance::new(2).expect("valid"));
        let decoded = deliver(&resolved, &options(AlertGrouping::Group, policy));
        assert_eq!(importance(&decoded.contexts[0].tree), "2");
    }

    #[test]
    fn pushjet_importance_label_or_annotation_overrides_severity() {
        let text = String::from_utf8(fixture("alertmanager", MIXED)).expect("UTF-8");
        let mut group: Value = serde_json::from_str(&text).expect("JSON");
        group["alerts"][0]["labels"]["pushjet_importance"] = json!("2");
        group["alerts"][1]["annotations"]["pushjet_importance"] = json!("3");
        let body = group.to_string();
        let by_alert = deliver(
            body.as_bytes(),
            &options(AlertGrouping::Alert, ResolvedPolicy::Send),
        );
        assert_eq!(importance(&by_alert.contexts[0].tree), "2");
        assert_eq!(importance(&by_alert.contexts[1].tree), "3");
        let by_group = deliver(
            body.as_bytes(),
            &options(AlertGrouping::Group, ResolvedPolicy::Send),
        );
        assert_eq!(importance(&by_group.contexts[0].tree), "3");
    }

    #[test]
    fn invalid_override_falls_back_to_severity() {
        let text = String::from_utf8(fixture("alertmanager", MIXED)).expect("UTF-8");
        let mut group: Value = serde_json::from_str(&text).expect("JSON");
        group["alerts"][0]["labels"]["pushjet_importance"] = json!("urgent");
        let body = group.to_string();
        let decoded = deliver(
            body.as_bytes(),
            &options(AlertGrouping::Alert, ResolvedPolicy::Send),
        );
        assert_eq!(importance(&decoded.contexts[0].tree), "5");
    }

    #[test]
    fn page_and_major_severities_are_mapped_by_default() {
        let text = String::from_utf8(fixture("alertmanager", "captured-firing-single.json"))
            .expect("UTF-8");
        let mut group: Value = serde_json::from_str(&text).expect("JSON");
        let options = options(AlertGrouping::Group, ResolvedPolicy::Send);
        for (severity, expected) in [("page", "5"), ("major", "4")] {
            group["alerts"][0]["labels"]["severity"] = json!(severity);
            let decoded = deliver(group.to_string().as_bytes(), &options);
            assert_eq!(importance(&decoded.contexts[0].tree), expected, "{severity}");
        }
    }

    #[test]
    fn alerts_without_a_mapped_severity_get_the_route_default() {
        let mut options = options(AlertGrouping::Group, ResolvedPolicy::Send);
        options.default_importance = Importance::new(4).expect("valid");
        let body = fixture("alertmanager", "captured-firing-minimal-nogroup.json");
        let decoded = deliver(&body, &options);
        assert_eq!(importance(&decoded.contexts[0].tree), "4");
    }

    #[test]
    fn multi_severity_group_takes_the_highest() {
        let body = fixture("alertmanager", "captured-firing-multi-severity.json");
        let decoded = deliver(&body, &options(AlertGrouping::Group, ResolvedPolicy::Send));
        assert_eq!(importance(&decoded.contexts[0].tree), "5");
        let by_alert = deliver(&body, &options(AlertGrouping::Alert, ResolvedPolicy::Send));
        let levels: Vec<&str> = by_alert
            .contexts
            .iter()
            .map(|context| importance(&context.tree))
            .collect();
        assert_eq!(levels, ["5", "4", "2"]);
    }

    #[test]
    fn truncated_alerts_are_reported_as_more() {
        let body = fixture("alertmanager", "captured-firing-truncated-bearer.json");
        let decoded = deliver(&body, &options(AlertGrouping::Group, ResolvedPolicy::Send));
        assert_eq!(decoded.contexts[0].tree["bridge"]["more"], json!(2));
    }

    #[test]
    fn every_fixture_decodes_into_notifications() {
        for file in fixture_names("alertmanager") {
            let decoded = deliver(
                &fixture("alertmanager", &file),
                &options(AlertGrouping::Group, ResolvedPolicy::Send),
            );
            assert_eq!(decoded.contexts.len(), 1, "{file}");
            assert_eq!(decoded.delivery_id.as_ref().map(String::len), Some(64));
        }
    }

    #[test]
    fn the_group_digest_stays_what_earlier_releases_stored() {
        // SHA-256 of `[groupKey, status, sorted [fingerprint, status, startsAt, endsAt] JSON]`,
        // computed apart from this code (Python's json.dumps, compact): a change would send a
        // group again after an upgrade, its dedup key being new.
        let decoded = deliver(
            &fixture("alertmanager", "captured-firing-multi-severity.json"),
            &options(AlertGrouping::Group, ResolvedPolicy::Send),
        );
        assert_eq!(
            decoded.delivery_id.as_deref(),
            Some("c4a03a03ef0985cc5b325acd421004dc13c3ffc01abdcab88cb11b308e34c489")
        );
    }

    #[test]
    fn identical_bodies_share_a_dedup_key() {
        let body = fixture("alertmanager", "captured-firing-multi-severity.json");
        let options = options(AlertGrouping::Group, ResolvedPolicy::Send);
        let first = deliver(&body, &options).dedup_key();
        let reformatted: Value = serde_json::from_slice(&body).expect("JSON");
        let pretty = serde_json::to_vec_pretty(&reformatted).expect("serialises");
        let second = deliver(&pretty, &options).dedup_key();
        assert!(
            first
                .as_deref()
                .is_some_and(|key| key.starts_with("alertmanager:"))
        );
        assert_eq!(first, second);
    }

    #[test]
    fn dedup_key_changes_when_an_alert_resolves() {
        let options = options(AlertGrouping::Group, ResolvedPolicy::Send);
        let keys: Vec<Option<String>> = [
            "captured-firing-multi-severity.json",
            MIXED,
            "captured-resolved-multi.json",
        ]
        .into_iter()
        .map(|file| deliver(&fixture("alertmanager", file), &options).dedup_key())
        .collect();
        assert_ne!(keys[0], keys[1]);
        assert_ne!(keys[1], keys[2]);
        assert_ne!(keys[0], keys[2]);
    }

    #[test]
    fn older_and_copied_shapes_are_recognised_without_version_4() {
        let auto = SourceOptions::new("am");
        for name in [
            "prometheus-bot.version-3.json",
            "prometheus-bot.version-0-no-alert-status.json",
        ] {
            let decoded = deliver(&fixture("alertmanager", name), &auto);
            assert_eq!(decoded.source, SourceKind::Alertmanager, "{name}");
        }
        let grafana = json!({"receiver": "x", "orgId": 1, "alerts": [{"labels": {"alertname": "a"}}]});
        let decoded = deliver(grafana.to_string().as_bytes(), &auto);
        assert_eq!(decoded.source, SourceKind::Grafana);
        let unlabelled = json!({"receiver": "x", "alerts": [{"text": "a"}]});
        let decoded = deliver(unlabelled.to_string().as_bytes(), &auto);
        assert_eq!(decoded.source, SourceKind::Generic);
    }

    #[test]
    fn alerts_without_a_status_take_the_groups() {
        let decoded = deliver(
            &fixture("alertmanager", "prometheus-bot.version-0-no-alert-status.json"),
            &options(AlertGrouping::Group, ResolvedPolicy::Send),
        );
        assert_eq!(decoded.event, "resolved");
        let tree = &decoded.contexts[0].tree;
        assert_eq!(tree["bridge"]["resolved"].as_array().map(Vec::len), Some(8));
    }

    #[test]
    fn the_shared_alertname_is_named_and_a_missing_one_falls_back() {
        let split = deliver(
            &fixture("alertmanager", MIXED),
            &options(AlertGrouping::Status, ResolvedPolicy::Send),
        );
        for context in &split.contexts {
            let shared = &context.tree["bridge"]["alertname"];
            let first = &context.tree["alerts"][0]["labels"]["alertname"];
            let all_alike = context.tree["alerts"]
                .as_array()
                .is_some_and(|alerts| alerts.iter().all(|alert| &alert["labels"]["alertname"] == first));
            assert_eq!(shared == first, all_alike, "{shared} {first}");
        }
        let two_names = json!({"version": "4", "status": "firing", "alerts": [
            {"status": "firing", "labels": {"alertname": "DiskSpace", "instance": "db-1"}},
            {"status": "firing", "labels": {"alertname": "DiskSpace", "instance": "db-2"}},
            {"status": "firing", "labels": {"alertname": "Load", "instance": "db-2"}}
        ]});
        let alike = json!({"version": "4", "status": "resolved", "alerts": [
            {"status": "resolved", "labels": {"alertname": "DiskSpace", "instance": "db-1"}},
            {"status": "resolved", "labels": {"alertname": "DiskSpace", "instance": "db-2"}}
        ]});
        let unnamed = json!({"version": "4", "status": "firing", "groupLabels": {"alertname": "HostDown"},
            "alerts": [{"status": "firing", "labels": {"instance": "db-1"}}]});
        let by_annotation = json!({"version": "4", "status": "firing",
            "alerts": [{"status": "firing", "labels": {}, "annotations": {"summary": "Backup late"}}]});
        let name = |body: Value| {
            let decoded = deliver(body.to_string().as_bytes(), &options(AlertGrouping::Group, ResolvedPolicy::Send));
            decoded.contexts[0].tree["bridge"]["alertname"].clone()
        };
        assert_eq!(name(two_names), Value::Null);
        assert_eq!(name(alike), json!("DiskSpace"));
        assert_eq!(name(unnamed), json!("HostDown"));
        assert_eq!(name(by_annotation), json!("Backup late"));
    }
}
