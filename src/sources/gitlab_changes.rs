//! What a GitLab merge request or issue `update` changed, in words, from the payload's `changes`
//! (each a `previous`/`current` pair) and, for a merge request, `object_attributes.oldrev` (new
//! commits). Templates read the lines as `bridge.changes`; bookkeeping fields (`updated_at`,
//! `updated_by_id`, `state_id`, time tracking) say nothing a person acts on and are left out.

use serde_json::{Map, Value};

/// The readable lines for a merge request or issue payload; empty when nothing a person would
/// care about changed.
pub(super) fn change_lines(payload: &Map<String, Value>) -> Vec<String> {
    let mut lines = Vec::new();
    let changes = payload.get("changes").and_then(Value::as_object);
    let change = |key: &str| {
        changes
            .and_then(|changes| changes.get(key))
            .map(|change| (&change["previous"], &change["current"]))
    };
    if let Some((previous, current)) = change("title") {
        match (text(previous), text(current)) {
            (Some(previous), Some(current)) => lines.push(format!("Title: {previous} → {current}")),
            (None, Some(current)) => lines.push(format!("Title: {current}")),
            _ => {}
        }
    }
    if change("description").is_some() {
        lines.push("Description edited".to_owned());
    }
    if let Some((previous, current)) = change("labels") {
        let (added, removed) = difference(previous, current, "title");
        let mut parts = Vec::new();
        if !added.is_empty() {
            parts.push(format!("added {}", added.join(", ")));
        }
        if !removed.is_empty() {
            parts.push(format!("removed {}", removed.join(", ")));
        }
        if !parts.is_empty() {
            lines.push(format!("Labels: {}", parts.join("; ")));
        }
    }
    for (key, added_words, removed_words) in [
        ("assignees", "Assigned to", "Unassigned"),
        ("reviewers", "Review requested from", "Review no longer requested from"),
    ] {
        if let Some((previous, current)) = change(key) {
            let (added, removed) = difference(previous, current, "username");
            if !added.is_empty() {
                lines.push(format!("{added_words} {}", added.join(", ")));
            }
            if !removed.is_empty() {
                lines.push(format!("{removed_words} {}", removed.join(", ")));
            }
        }
    }
    if let Some((_, current)) = change("milestone_id") {
        let title = payload
            .get("object_attributes")
            .and_then(|attributes| attributes.get("milestone"))
            .and_then(|milestone| text(&milestone["title"]));
        lines.push(match (current.is_null(), title) {
            (true, _) => "Milestone removed".to_owned(),
            (false, Some(title)) => format!("Milestone: {title}"),
            (false, None) => "Milestone set".to_owned(),
        });
    }
    if let Some((_, current)) = change("draft").or_else(|| change("work_in_progress")) {
        match current.as_bool() {
            Some(true) => lines.push("Marked as draft".to_owned()),
            Some(false) => lines.push("Marked as ready".to_owned()),
            None => {}
        }
    }
    if let Some((_, current)) = change("due_date") {
        lines.push(text(current).map_or("Due date removed".to_owned(), |date| format!("Due {date}")));
    }
    if let Some((_, current)) = change("confidential") {
        match current.as_bool() {
            Some(true) => lines.push("Made confidential".to_owned()),
            Some(false) => lines.push("Made public".to_owned()),
            None => {}
        }
    }
    let attributes = payload.get("object_attributes");
    let pushed = attributes.is_some_and(|attributes| text(&attributes["oldrev"]).is_some());
    if pushed {
        let commit = attributes.and_then(|attributes| text(&attributes["last_commit"]["title"]));
        lines.push(commit.map_or("New commits pushed".to_owned(), |title| {
            format!("New commits pushed, the last: {title}")
        }));
    }
    lines
}

/// [`change_lines`] of a payload, for the template checks' hand-made contexts.
#[cfg(test)]
pub(crate) fn change_lines_of(payload: &Value) -> Vec<String> {
    payload.as_object().map(change_lines).unwrap_or_default()
}

/// A non-blank string value.
fn text(value: &Value) -> Option<&str> {
    value.as_str().map(str::trim).filter(|text| !text.is_empty())
}

/// The `key` names in `current` and not in `previous` (added), and the other way round (removed).
fn difference(previous: &Value, current: &Value, key: &str) -> (Vec<String>, Vec<String>) {
    let names = |list: &Value| -> Vec<String> {
        list.as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|item| text(&item[key]).or_else(|| text(&item["name"])))
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let (before, after) = (names(previous), names(current));
    let added = after.iter().filter(|name| !before.contains(name)).cloned().collect();
    let removed = before.iter().filter(|name| !after.contains(name)).cloned().collect();
    (added, removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lines(payload: Value) -> Vec<String> {
        change_lines(payload.as_object().expect("an object"))
    }

    /// The `changes` shapes of GitLab's webhook documentation (merge request and issue events).
    #[test]
    fn documented_changes_read_as_words() {
        let user = |name: &str| json!({"id": 1, "name": name, "username": name});
        let label = |title: &str| json!({"id": 1, "title": title});
        let changes = json!({"changes": {
            "updated_by_id": {"previous": null, "current": 1},
            "updated_at": {"previous": "2017-09-15 16:50:55 UTC", "current": "2017-09-15 16:52:00 UTC"},
            "title": {"previous": "Old title", "current": "New title"},
            "description": {"previous": null, "current": "New description"},
            "labels": {"previous": [label("API")], "current": [label("Platform"), label("bug")]},
            "assignees": {"previous": [user("ann")], "current": [user("bob")]},
            "reviewers": {"previous": [], "current": [user("cy")]},
            "milestone_id": {"previous": null, "current": 5},
            "draft": {"previous": true, "current": false},
            "total_time_spent": {"previous": 8100, "current": 9900}
        }});
        assert_eq!(
            lines(changes),
            [
                "Title: Old title → New title",
                "Description edited",
                "Labels: added Platform, bug; removed API",
                "Assigned to bob",
                "Unassigned ann",
                "Review requested from cy",
                "Milestone set",
                "Marked as ready"
            ]
        );
    }

    #[test]
    fn bookkeeping_alone_says_nothing_and_a_push_says_so() {
        let bookkeeping = json!({"changes": {"updated_at": {"previous": "a", "current": "b"}}});
        assert!(lines(bookkeeping).is_empty());
        let pushed = json!({"object_attributes": {"oldrev": "6ef0475", "last_commit": {"title": "Update state.go"}}});
        assert_eq!(lines(pushed), ["New commits pushed, the last: Update state.go"]);
    }
}
