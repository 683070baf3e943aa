//! Every notification is plain text with a usable link, checked over every fixture: no raw chat
//! markup (`**`, `~~`, `<@U123>`, `[label](url)`, `\_`), no HTML tag or entity, no emoji
//! `:shortcode:` the emoji table knows, no mention id, every link a valid http(s) URL, and no body
//! that carries text skipped (`templates/README.md`, "How the built-in templates are checked").
//!
//! The forges' and alert senders' own text (an issue body written in Markdown) is excused where
//! the sender wrote it; the chat formats' text is what the bridge must turn into plain text, so
//! nothing of it is excused.

use actix_web::http::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use serde_json::Value;

use super::fixture_tests::{cases, render_case};
use super::{RenderedFields, Renderer};
use crate::notification::{Assembled, assemble};
use crate::pushjet::Importance;
use crate::sources::{self, SourceOptions};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

/// The chat formats whose markup the bridge reads as plain text.
const CHAT_SOURCES: [&str; 4] = ["slack", "discord", "teams", "apprise"];

/// Markup that must not reach a phone: Markdown and mrkdwn markers, Slack and Discord tokens.
const RAW_MARKUP: [&str; 12] = [
    "**", "~~", "||", "](http", "<@", "<!", "<#", "<:", "<a:", "<t:", "\\_", "\\-",
];

/// What in `text` is chat markup, HTML, a shortcode or a mention id; `written` excuses a snippet.
fn markup_problems(text: &str, written: &dyn Fn(&str) -> bool) -> Vec<String> {
    let mut found = Vec::new();
    for marker in RAW_MARKUP {
        if text.contains(marker) && !written(marker) {
            found.push(format!("raw markup {marker:?} in {text:?}"));
        }
    }
    for (at, _) in text.match_indices('<') {
        let tag: String = text[at..].chars().take_while(|c| *c != '>').collect();
        let name = tag.trim_start_matches(['<', '/']);
        let is_tag = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && text[at..].contains('>')
            && !name.contains(' ')
            || name.starts_with("br") && name.ends_with('/');
        if is_tag && !written(&tag) {
            found.push(format!("HTML tag {tag:?}> in {text:?}"));
        }
    }
    for (at, _) in text.match_indices('&') {
        let entity: String = text[at..].chars().take(12).take_while(|c| *c != ';').collect();
        let closed = text[at + entity.len()..].starts_with(';');
        let body = &entity[1..];
        let looks_like = !body.is_empty()
            && (body.chars().all(|c| c.is_ascii_alphanumeric()) || body.starts_with('#'));
        if closed && looks_like && !written(&format!("{entity};")) {
            found.push(format!("HTML entity {entity}; in {text:?}"));
        }
    }
    for word in text.split(|c: char| c.is_whitespace()) {
        let Some(name) = word
            .strip_prefix(':')
            .and_then(|rest| rest.split(':').next())
            .filter(|name| word.len() > name.len() + 1 && word[name.len() + 1..].starts_with(':'))
        else {
            continue;
        };
        if emojis::get_by_shortcode(name).is_some() && !written(&format!(":{name}:")) {
            found.push(format!("shortcode :{name}: in {text:?}"));
        }
    }
    found
}

/// A link a phone can open: empty, or an absolute http(s) URL with nothing a URL may not hold.
fn link_problems(link: &str) -> Option<String> {
    if link.is_empty() {
        return None;
    }
    let valid = url::Url::parse(link)
        .is_ok_and(|url| matches!(url.scheme(), "http" | "https") && url.has_host())
        && link
            .chars()
            .all(|c| c.is_ascii_graphic() && !"\"<>\\^`{|}".contains(c));
    (!valid).then(|| format!("invalid link {link:?}"))
}

/// Every string in a payload.
fn strings(value: &Value, into: &mut Vec<String>) {
    match value {
        Value::String(text) => into.push(text.clone()),
        Value::Array(items) => items.iter().for_each(|item| strings(item, into)),
        Value::Object(fields) => fields.values().for_each(|item| strings(item, into)),
        _ => {}
    }
}

/// The problems of one rendered notification, after assembly (the link as it is sent).
fn notification_problems(fields: &RenderedFields, written: &dyn Fn(&str) -> bool) -> Vec<String> {
    let mut found = markup_problems(&fields.title, written);
    found.extend(markup_problems(&fields.message, written));
    match assemble(fields, Importance::DEFAULT, 4096) {
        Assembled::Send { notification, .. } => {
            let link = notification.link.map(|link| link.as_str().to_owned());
            found.extend(link_problems(link.as_deref().unwrap_or_default()));
        }
        Assembled::Skip => found.push("skipped".to_owned()),
    }
    found
}

#[test]
fn every_forge_and_alert_fixture_reads_as_plain_text_with_a_valid_link() {
    let renderer = Renderer::load(None).expect("built-ins load");
    let mut failures = Vec::new();
    for case in cases() {
        let (name, fields) = render_case(&renderer, &case);
        let mut sender_text = Vec::new();
        strings(&case.context, &mut sender_text);
        let written = |snippet: &str| sender_text.iter().any(|text| text.contains(snippet));
        for problem in notification_problems(&fields, &written) {
            failures.push(format!("{} ({name}): {problem}", case.label));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn every_chat_fixture_reads_as_plain_text_and_none_is_skipped() {
    let renderer = Renderer::load(None).expect("built-ins load");
    let mut failures = Vec::new();
    let mut checked = 0;
    for source in CHAT_SOURCES {
        let dir = format!("{FIXTURES}/{source}");
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|error| panic!("{dir}: {error}"))
            .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
            .filter(|name| name.ends_with(".json"))
            .collect();
        names.sort();
        for name in names {
            let body = std::fs::read(format!("{dir}/{name}")).expect("fixture reads");
            let mut headers = HeaderMap::new();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            let mut options = SourceOptions::new("chat");
            options.setting = source.parse().expect("a source name");
            let decoded = match sources::decode(&headers, "", &body, &options) {
                Ok(decoded) => decoded,
                Err(error) => {
                    failures.push(format!("{source}/{name}: {error}"));
                    continue;
                }
            };
            for context in &decoded.contexts {
                let template = renderer
                    .lookup(source, &context.event, context.action.as_deref(), None)
                    .expect("a built-in template");
                let fields = renderer.render(template, &context.tree).expect("renders");
                checked += 1;
                for problem in notification_problems(&fields, &|_| false) {
                    failures.push(format!("{source}/{name}: {problem}"));
                }
            }
            if decoded.contexts.is_empty() {
                failures.push(format!("{source}/{name}: no notification"));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    assert!(checked >= 15, "only {checked} chat fixtures rendered");
}

#[test]
fn the_checks_find_what_they_look_for() {
    let none = |_: &str| false;
    for bad in [
        "**bold**",
        "see [docs](https://x.example)",
        "<@U024BE7LH> hi",
        "<b>Build</b>",
        "a<br/>b",
        "&amp; more",
        "&#x1F6A8; fire",
        ":rotating_light: down",
        "myFirst\\_Job",
    ] {
        assert!(!markup_problems(bad, &none).is_empty(), "{bad}");
    }
    for fine in ["3 < 4 & 5 > 2", "at 12:30:45", "snake_case", "🚨 down", "a - b", ":custom_thing:"] {
        assert!(markup_problems(fine, &none).is_empty(), "{fine}");
    }
    assert!(link_problems("https://a.example/a b").is_some());
    assert!(link_problems("ftp://a.example").is_some());
    assert!(link_problems("https://a.example/a%20b").is_none());
}
