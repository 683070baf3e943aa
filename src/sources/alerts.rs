//! Alert groups (Alertmanager's payload, and Grafana's unified alerting payload that copies it):
//! splitting a group into notifications, their importance, and the group's digest. The rules are
//! in the documentation of [`super`].

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::pushjet::Importance;

use super::{AlertGrouping, Context, DecodeError, Decoded, SourceKind, SourceOptions};

/// The label or annotation that sets an alert's importance directly.
const IMPORTANCE_OVERRIDE: &str = "pushjet_importance";

/// True when an alert fires: any status but `resolved`.
fn is_firing(alert: &Value) -> bool {
    alert.get("status").and_then(Value::as_str) != Some("resolved")
}

/// An alert's label or annotation as text (Alertmanager sends strings; numbers are accepted).
fn alert_field(alert: &Value, section: &str, name: &str) -> Option<String> {
    match alert.get(section)?.get(name)? {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

/// An alert's own importance: its `pushjet_importance` label, then annotation, when it is 1..5;
/// else its `severity` label through the mapping; else none.
fn alert_importance(alert: &Value, options: &SourceOptions) -> Option<Importance> {
    ["labels", "annotations"]
        .into_iter()
        .filter_map(|section| alert_field(alert, section, IMPORTANCE_OVERRIDE))
        .find_map(|text| Importance::parse(&text).ok())
        .or_else(|| {
            alert_field(alert, "labels", "severity")
                .and_then(|severity| options.severity.get(&severity))
        })
}

/// The importance of a notification holding `alerts`; `None` when it must not be sent.
fn notification_importance(alerts: &[&Value], options: &SourceOptions) -> Option<Importance> {
    let firing: Vec<&Value> = alerts.iter().copied().filter(|a| is_firing(a)).collect();
    if firing.is_empty() {
        return options.resolved.importance();
    }
    let highest = firing
        .iter()
        .filter_map(|alert| alert_importance(alert, options))
        .max();
    Some(highest.unwrap_or(options.default_importance))
}

/// The alerts of each notification, by the grouping mode, as positions in `alerts`: each alert
/// is in one notification at most.
fn batches(alerts: &[Value], grouping: AlertGrouping) -> Vec<Vec<usize>> {
    let all: Vec<usize> = (0..alerts.len()).collect();
    let batches = match grouping {
        AlertGrouping::Group => vec![all],
        AlertGrouping::Alert => all.into_iter().map(|alert| vec![alert]).collect(),
        AlertGrouping::Status => {
            let (firing, resolved) = all.into_iter().partition(|&at| is_firing(&alerts[at]));
            vec![firing, resolved]
        }
    };
    batches
        .into_iter()
        .filter(|batch| !batch.is_empty())
        .collect()
}

/// A digest of the group's state: group key, status, and each alert's fingerprint, status,
/// `startsAt` and `endsAt`, in a fixed order, so that the same state always gives the same text.
fn group_digest(group: &Map<String, Value>, alerts: &[Value]) -> String {
    // Serialised straight from the payload's values: `null` for a missing field.
    let mut entries: Vec<String> = alerts
        .iter()
        .map(|alert| {
            let fields = ["fingerprint", "status", "startsAt", "endsAt"].map(|key| alert.get(key));
            serde_json::to_string(&fields).unwrap_or_default()
        })
        .collect();
    entries.sort();
    let material = (group.get("groupKey"), group.get("status"), entries);
    hex::encode(Sha256::digest(
        serde_json::to_string(&material).unwrap_or_default().as_bytes(),
    ))
}

/// The name the notification's alerts go by: the `alertname` all of them share; for alerts
/// without one, the group's (`groupLabels`, then `commonLabels`), then a name the annotations
/// give (`alertname`, `title`, `summary`). `None` when the alerts have different names.
fn alert_name(group: &Map<String, Value>, batch: &[&Value]) -> Option<String> {
    let label = |alert: &Value| alert_field(alert, "labels", "alertname");
    let mut names = batch.iter().filter_map(|alert| label(alert));
    if let Some(first) = names.next() {
        return names.all(|name| name == first).then_some(first);
    }
    let group_label = |section: &str| {
        group
            .get(section)
            .and_then(|labels| labels.get("alertname"))
            .and_then(Value::as_str)
            .filter(|name| !name.trim().is_empty())
            .map(str::to_owned)
    };
    group_label("groupLabels")
        .or_else(|| group_label("commonLabels"))
        .or_else(|| {
            let first = batch.first()?;
            ["alertname", "title", "summary"]
                .iter()
                .find_map(|key| alert_field(first, "annotations", key))
        })
}

/// [`alert_name`] of a whole group payload, for the template checks' hand-made contexts.
#[cfg(test)]
pub(crate) fn group_alert_name(payload: &Value) -> Option<String> {
    let group = payload.as_object()?;
    let alerts = payload.get("alerts")?.as_array()?;
    alert_name(group, &alerts.iter().collect::<Vec<_>>())
}

/// What a notification's context says of its alerts as a whole: its importance and the name
/// they go by.
type About = (Importance, Option<String>);

/// The notification's context: the group's fields, its own `alerts`, and `bridge` (`firing` and
/// `resolved` are the one copy of the alerts made here).
fn context(
    mut payload: Map<String, Value>,
    batch: Vec<Value>,
    (importance, alertname): About,
    source: SourceKind,
    options: &SourceOptions,
) -> Context {
    let (firing, resolved): (Vec<Value>, Vec<Value>) = batch.iter().cloned().partition(is_firing);
    let event = if firing.is_empty() {
        "resolved"
    } else {
        "firing"
    };
    let more = payload
        .get("truncatedAlerts")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let mut extra = Map::new();
    extra.insert("firing".into(), Value::Array(firing));
    extra.insert("resolved".into(), Value::Array(resolved));
    extra.insert("more".into(), more.into());
    extra.insert(
        "alertname".into(),
        alertname.map_or(Value::Null, Value::from),
    );
    payload.insert("alerts".into(), Value::Array(batch));
    Context::new(options, source, (event, None, importance), payload, extra)
}

/// Decodes an alert group payload into its notifications.
pub(super) fn decode_group(
    source: SourceKind,
    mut group: Map<String, Value>,
    options: &SourceOptions,
) -> Result<Decoded, DecodeError> {
    let Some(Value::Array(mut alerts)) = group.remove("alerts") else {
        return Err(DecodeError::UnexpectedPayload {
            sender: source,
            expected: "a JSON object with an alerts array",
        });
    };
    // Alertmanager releases before 0.6 gave alerts no status of their own: the group's holds.
    if let Some(status) = group.get("status").and_then(Value::as_str) {
        for alert in &mut alerts {
            if let Value::Object(fields) = alert
                && !fields.contains_key("status")
            {
                fields.insert("status".into(), status.into());
            }
        }
    }
    let event = if alerts.iter().any(is_firing) {
        "firing"
    } else {
        "resolved"
    };
    let delivery_id = group_digest(&group, &alerts);
    // What each notification needs of the alerts is read first; then the alerts move into their
    // notifications, and the group's fields into the last one (copied for the others).
    let notifications: Vec<(Vec<usize>, About)> =
        batches(&alerts, options.grouping)
            .into_iter()
            .filter_map(|batch| {
                let refs: Vec<&Value> = batch.iter().map(|&at| &alerts[at]).collect();
                let importance = notification_importance(&refs, options)?;
                let name = alert_name(&group, &refs);
                Some((batch, (importance, name)))
            })
            .collect();
    let mut alerts: Vec<Option<Value>> = alerts.into_iter().map(Some).collect();
    let count = notifications.len();
    let contexts = notifications
        .into_iter()
        .enumerate()
        .map(|(index, (batch, about))| {
            let fields = if index + 1 == count {
                std::mem::take(&mut group)
            } else {
                group.clone()
            };
            let batch = batch
                .into_iter()
                .filter_map(|at| alerts.get_mut(at).and_then(Option::take))
                .collect();
            context(fields, batch, about, source, options)
        })
        .collect();
    Ok(Decoded {
        source,
        event: event.to_owned(),
        action: None,
        delivery_id: Some(delivery_id),
        contexts,
    })
}
