//! How every built-in notification reads, checked over every fixture and over variants of each
//! with optional fields removed: short titles in words, no text left dangling where a value was
//! missing, and the most specific link the payload offers (`templates/README.md`, "How the
//! built-in templates are checked"); and the coverage table of `templates/README.md`.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::fixture_tests::{Case, case_of, cases, render_case};
use super::template_file::TemplateFile;
use super::{RenderedFields, Renderer, files, helpers};

/// The longest title a phone shows without cutting much (most show 40 to 60 characters).
const TITLE_MAX_CHARS: usize = 80;

/// Words that need something after them: a line ending in one lost the value that followed.
const DANGLING_WORDS: [&str; 16] = [
    "by", "on", "to", "into", "in", "from", "for", "after", "at", "of", "with", "since", "and",
    "was", "as", "Now",
];

/// Characters that separate two values: a line ending in one lost the second value.
const TRAILING_SEPARATORS: [char; 14] = [
    ':', ',', '·', '—', '-', '→', '/', '(', '#', '!', '@', '|', '+', '−',
];

/// Payload fields whose values are machine names that a title must put in words.
const STATE_KEYS: [&str; 5] = ["action", "state", "status", "conclusion", "build_status"];

/// Every string in a payload, to tell text the sender wrote from text a template left behind.
fn strings(value: &Value, into: &mut Vec<String>) {
    match value {
        Value::String(text) => into.push(text.clone()),
        Value::Array(items) => items.iter().for_each(|item| strings(item, into)),
        Value::Object(fields) => fields.values().for_each(|item| strings(item, into)),
        _ => {}
    }
}

/// The snake_case values of state-like fields anywhere in the payload (`converted_to_draft`).
fn snake_states(value: &Value, into: &mut BTreeSet<String>) {
    match value {
        Value::Array(items) => items.iter().for_each(|item| snake_states(item, into)),
        Value::Object(fields) => {
            for (key, item) in fields {
                if let Value::String(text) = item {
                    let snake = text.contains('_')
                        && text.chars().all(|c| c.is_ascii_lowercase() || c == '_');
                    if snake && STATE_KEYS.contains(&key.as_str()) {
                        into.insert(text.clone());
                    }
                }
                snake_states(item, into);
            }
        }
        _ => {}
    }
}

/// Up to `length` characters of `chars` starting `before` characters ahead of `at`.
fn window(chars: &[char], at: usize, before: usize, length: usize) -> String {
    let start = at.saturating_sub(before);
    chars[start..].iter().take(length).collect()
}

/// What reads badly in one line of a notification; `sender_text` excuses what the sender wrote.
fn line_problems(line: &str, sender_text: &[String], found: &mut Vec<String>) {
    let written = |snippet: &str| sender_text.iter().any(|text| text.contains(snippet));
    let trimmed = line.trim_end();
    let chars: Vec<char> = trimmed.chars().collect();
    let tail = window(&chars, chars.len(), 12, 12);
    for (at, pair) in chars.windows(2).enumerate() {
        if pair == [' ', ' '] && !written(&window(&chars, at, 6, 10)) {
            found.push(format!("doubled space in {line:?}"));
            break;
        }
    }
    for empty in ["()", "( )", "[]", "\"\""] {
        if trimmed.contains(empty) && !written(empty) {
            found.push(format!("empty {empty} in {line:?}"));
        }
    }
    let heading = !trimmed.contains(' ') && trimmed.ends_with(':');
    if let Some(last) = chars.last()
        && TRAILING_SEPARATORS.contains(last)
        && !heading
        && !written(&tail)
    {
        found.push(format!("ends in a separator: {line:?}"));
    }
    if let Some(word) = trimmed.rsplit(' ').next()
        && trimmed.contains(' ')
        && DANGLING_WORDS.contains(&word)
        && !written(&tail)
    {
        found.push(format!("ends in {word:?}: {line:?}"));
    }
    // `owner/repo#12`, `group/project!3`, `repo@6113728`: a sigil after a path or a space, with
    // nothing after it, lost its number.
    for (at, &sigil) in chars.iter().enumerate() {
        let ends_there = chars.get(at + 1).is_none_or(|next| *next == ' ');
        let token: String = chars[..at]
            .iter()
            .rev()
            .take_while(|c| **c != ' ')
            .collect();
        let after_a_path = token.is_empty() || token.contains('/');
        if matches!(sigil, '#' | '!' | '@')
            && ends_there
            && after_a_path
            && !written(&window(&chars, at, 8, 12))
        {
            found.push(format!("{sigil} without a number in {line:?}"));
        }
    }
    for lonely in [" ,", " )", "( ", " :"] {
        let sender_wrote_it = trimmed.match_indices(lonely).all(|(at, _)| {
            let after: String = trimmed[at + 1..].chars().take(8).collect();
            written(&after)
        });
        if trimmed.contains(lonely) && !sender_wrote_it {
            found.push(format!("{lonely:?} in {line:?}"));
        }
    }
    if trimmed.starts_with([':', ',', '·', '→', ')']) && !written(&window(&chars, 0, 0, 12)) {
        found.push(format!("starts with a separator: {line:?}"));
    }
}

/// Everything that reads badly in a notification rendered from `payload`.
fn reading_problems(fields: &RenderedFields, payload: &Value, alerts: bool) -> Vec<String> {
    let mut sender_text = Vec::new();
    strings(payload, &mut sender_text);
    let mut found = Vec::new();
    let length = fields.title.chars().count();
    if length > TITLE_MAX_CHARS {
        found.push(format!("title of {length} characters: {:?}", fields.title));
    }
    if fields.title.is_empty() {
        found.push("empty title".to_owned());
    }
    let mut snake = BTreeSet::new();
    snake_states(payload, &mut snake);
    for word in snake {
        let in_title = fields
            .title
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .any(|token| token == word);
        if in_title {
            found.push(format!("raw {word:?} in the title {:?}", fields.title));
        }
    }
    line_problems(&fields.title, &sender_text, &mut found);
    for line in fields.message.lines() {
        if alerts {
            // Alert lists line their columns up with two spaces; only the rest is checked.
            let columns: Vec<&str> = line.split("  ").collect();
            columns
                .iter()
                .for_each(|column| line_problems(column, &sender_text, &mut found));
        } else {
            line_problems(line, &sender_text, &mut found);
        }
    }
    found
}

/// The payload a case was built from: its context without `bridge`.
fn payload_of(case: &Case) -> Value {
    let mut payload = case.context.clone();
    if let Value::Object(fields) = &mut payload {
        fields.remove("bridge");
    }
    payload
}

#[test]
fn every_fixture_reads_well() {
    let renderer = Renderer::load(None).expect("built-ins load");
    let mut failures = Vec::new();
    for case in cases() {
        let (name, fields) = render_case(&renderer, &case);
        let alerts = matches!(case.source, "alertmanager" | "grafana");
        for problem in reading_problems(&fields, &payload_of(&case), alerts) {
            failures.push(format!("{} ({name}): {problem}", case.label));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// The payload without null or empty values anywhere: how a sender's optional fields look when
/// it leaves them all out.
fn without_empty_values(value: &Value) -> Value {
    match value {
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .filter(|(_, item)| !is_empty(item))
                .map(|(key, item)| (key.clone(), without_empty_values(item)))
                .collect::<Map<String, Value>>(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_empty_values).collect()),
        other => other.clone(),
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(text) => text.is_empty(),
        Value::Array(items) => items.is_empty(),
        Value::Object(fields) => fields.is_empty(),
        _ => false,
    }
}

/// Fields no sender leaves out: what names the event and its object. Everything else a
/// template reads may be missing and must have a fallback.
const REQUIRED: [&str; 14] = [
    "action",
    "object_kind",
    "object_attributes",
    "repository.full_name",
    "repository.name",
    "repository.html_url",
    "project.path_with_namespace",
    "project.name",
    "project.web_url",
    "sender.login",
    "status",
    "alerts",
    "ref",
    "labels.alertname",
];

/// The dotted paths a template's text reads (`pull_request.base.ref`), without `@root.` and `../`.
fn paths_read_by(text: &str) -> BTreeSet<String> {
    let mut paths = BTreeSet::new();
    let mut in_tag = false;
    let mut in_quotes = false;
    let mut token = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if !in_tag {
            if c == '{' && chars.peek() == Some(&'{') {
                in_tag = true;
            }
            continue;
        }
        if c == '"' {
            in_quotes = !in_quotes;
            continue;
        }
        let part_of_path = c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '@' | '/');
        if !in_quotes && part_of_path {
            token.push(c);
            continue;
        }
        if !token.is_empty() {
            let path = token.trim_start_matches("@root.").trim_start_matches("../");
            if !path.is_empty() && !path.starts_with('@') && !path.contains('/') {
                paths.insert(path.trim_end_matches('.').to_owned());
            }
            token.clear();
        }
        if c == '}' && chars.peek() == Some(&'}') {
            in_tag = false;
        }
    }
    paths
}

/// Removes the field at a dotted path (`alerts.0.endsAt`); true when there was one.
fn remove_path(value: &mut Value, path: &str) -> bool {
    let (head, rest) = match path.split_once('.') {
        Some((head, rest)) => (head, Some(rest)),
        None => (path, None),
    };
    match (value, rest) {
        (Value::Object(fields), None) => fields.remove(head).is_some(),
        (Value::Object(fields), Some(rest)) => fields
            .get_mut(head)
            .is_some_and(|inner| remove_path(inner, rest)),
        (Value::Array(items), rest) => match head.parse::<usize>() {
            Ok(index) => match (items.get_mut(index), rest) {
                (Some(item), Some(rest)) => remove_path(item, rest),
                _ => false,
            },
            Err(_) => false,
        },
        _ => false,
    }
}

/// The text of a built-in template's four fields.
fn template_text(name: &str) -> String {
    files::built_in()
        .find(|(path, _)| super::template_file::template_name(path).as_deref() == Some(name))
        .and_then(|(_, text)| text)
        .and_then(|text| TemplateFile::parse(text).ok())
        .map(|file| {
            file.fields()
                .iter()
                .map(|(_, text)| *text)
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

/// The variants of a payload: all empty values removed, and each field the template reads
/// removed on its own (in every alert too, for alert templates), unless it is [`REQUIRED`].
fn variants(payload: &Value, template: &str) -> Vec<(String, Value)> {
    let mut variants = vec![(
        "without empty values".to_owned(),
        without_empty_values(payload),
    )];
    for path in paths_read_by(template) {
        let in_alert = path.strip_prefix("alerts.0.").unwrap_or(&path).to_owned();
        let required = REQUIRED.contains(&path.as_str()) || REQUIRED.contains(&in_alert.as_str());
        if path.starts_with("bridge.") || required {
            continue;
        }
        let mut variant = payload.clone();
        let mut removed = remove_path(&mut variant, &path);
        let alert_count = payload["alerts"].as_array().map_or(0, Vec::len);
        for index in 0..alert_count {
            removed |= remove_path(&mut variant, &format!("alerts.{index}.{in_alert}"));
        }
        if removed {
            variants.push((format!("without {path}"), variant));
        }
    }
    variants
}

#[test]
fn every_fixture_reads_well_with_optional_fields_removed() {
    let renderer = Renderer::load(None).expect("built-ins load");
    let mut failures = BTreeSet::new();
    let mut checked = 0;
    for case in cases() {
        let (name, _) = render_case(&renderer, &case);
        let stem = case
            .label
            .split_once('/')
            .map_or(case.label.as_str(), |(_, stem)| stem);
        for (what, payload) in variants(&payload_of(&case), &template_text(&name)) {
            let variant = case_of(case.source, stem, payload.clone());
            let Some(name) = renderer.lookup(
                variant.source,
                &variant.event,
                variant.action.as_deref(),
                None,
            ) else {
                continue;
            };
            let fields = match renderer.render(name, &variant.context) {
                Ok(fields) => fields,
                Err(error) => {
                    failures.insert(format!("{} {what} ({name}): {error}", case.label));
                    continue;
                }
            };
            checked += 1;
            let alerts = matches!(case.source, "alertmanager" | "grafana");
            for problem in reading_problems(&fields, &payload, alerts) {
                failures.insert(format!("{} {what} ({name}): {problem}", case.label));
            }
        }
    }
    let shown: Vec<String> = failures.into_iter().collect();
    assert!(
        shown.is_empty(),
        "{} problems:\n{}",
        shown.len(),
        shown.join("\n")
    );
    assert!(checked > 400, "only {checked} variants rendered");
}

/// The URLs a notification should open, most specific first: what was said (a comment, review or
/// answer), then the object the event is about, then GitLab's object.
const SPECIFIC_LINKS: [&str; 17] = [
    "alert.html_url",
    "comment.html_url",
    "review.html_url",
    "answer.html_url",
    "pull_request.html_url",
    "issue.html_url",
    "discussion.html_url",
    "milestone.html_url",
    "release.html_url",
    "security_advisory.html_url",
    "package.html_url",
    "registry_package.html_url",
    "workflow_job.html_url",
    "workflow_run.html_url",
    "check_run.html_url",
    "project.html_url",
    "object_attributes.url",
];

/// The value at a dotted path, if it is an absolute http(s) URL.
fn url_at(payload: &Value, path: &str) -> Option<String> {
    let value = path
        .split('.')
        .try_fold(payload, |value, key| value.get(key))?;
    value
        .as_str()
        .filter(|url| url.starts_with("https://") || url.starts_with("http://"))
        .map(str::to_owned)
}

#[test]
fn every_forge_fixture_links_the_most_specific_page_it_offers() {
    let renderer = Renderer::load(None).expect("built-ins load");
    let mut failures = Vec::new();
    let mut checked = 0;
    for case in cases() {
        if !matches!(case.source, "github" | "gitea" | "gitlab") {
            continue;
        }
        let payload = payload_of(&case);
        let Some((path, url)) = SPECIFIC_LINKS
            .iter()
            .find_map(|path| url_at(&payload, path).map(|url| (path, url)))
        else {
            continue;
        };
        checked += 1;
        let (name, fields) = render_case(&renderer, &case);
        if !fields.link.starts_with(&url) {
            failures.push(format!(
                "{} ({name}): link {:?}, but {path} is {url:?}",
                case.label, fields.link
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    assert!(
        checked > 25,
        "only {checked} fixtures offer a specific link"
    );
}

/// `templates/README.md`, whose coverage table says which template each event gets.
const TEMPLATES_README: &str =
    include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/templates/README.md"));

/// The rows of the coverage table: source, `event` or `event.action`, template name.
fn coverage_rows() -> Vec<(String, String, String)> {
    let section = TEMPLATES_README
        .split("\n## Coverage")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("templates/README.md has a Coverage section");
    section
        .lines()
        .filter(|line| line.starts_with("| `"))
        .map(|line| {
            let cells: Vec<String> = line
                .split('|')
                .map(|cell| cell.trim().trim_matches('`').to_owned())
                .filter(|cell| !cell.is_empty())
                .collect();
            assert_eq!(cells.len(), 3, "coverage row {line:?}");
            (cells[0].clone(), cells[1].clone(), cells[2].clone())
        })
        .collect()
}

/// What the bridge looks up for a row: `event.action`, or the event with an action no template
/// names (so an event row shows what its other actions get).
fn row_lookup<'a>(renderer: &'a Renderer, source: &str, key: &str) -> Option<&'a str> {
    match key.split_once('.') {
        Some((event, action)) => renderer.lookup(source, event, Some(action), None),
        None => renderer.lookup(source, key, Some("any_other_action"), None),
    }
}

#[test]
fn coverage_table_says_which_template_each_event_gets() {
    let renderer = Renderer::load(None).expect("built-ins load");
    let rows = coverage_rows();
    assert!(rows.len() > 50, "only {} coverage rows", rows.len());
    let mut wrong = Vec::new();
    for (source, key, template) in &rows {
        let found = row_lookup(&renderer, source, key);
        if found != Some(template.as_str()) {
            wrong.push(format!(
                "{source} {key}: the table says {template}, the bridge uses {found:?}"
            ));
        }
    }
    for name in renderer.names() {
        if !rows.iter().any(|(_, _, template)| template == name) {
            wrong.push(format!("{name} is in no row of the coverage table"));
        }
    }
    for case in cases() {
        if matches!(case.source, "alertmanager" | "grafana") {
            continue;
        }
        let listed = rows.iter().any(|(source, key, _)| {
            source == case.source
                && (*key == case.event
                    || case
                        .action
                        .as_ref()
                        .is_some_and(|action| *key == format!("{}.{action}", case.event)))
        });
        if !listed {
            wrong.push(format!(
                "{}: event {} is not in the coverage table",
                case.label, case.event
            ));
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

/// A block parameter named like a helper (`{{#with (date startsAt) as |since|}}`) is read as a
/// call of that helper, which renders nothing: Grafana's "Firing since " had this bug.
#[test]
fn no_built_in_template_names_a_block_parameter_like_a_helper() {
    let helper_names: BTreeSet<&str> = helpers::names().collect();
    let mut clashes = Vec::new();
    for (path, text) in files::built_in() {
        let text = text.unwrap_or_default();
        for (_, rest) in text.match_indices(" as |") {
            let name: String = rest[5..].chars().take_while(|c| *c != '|').collect();
            if helper_names.contains(name.as_str()) {
                clashes.push(format!("{}: |{name}|", path.display()));
            }
        }
    }
    assert!(clashes.is_empty(), "{clashes:?}");
}
