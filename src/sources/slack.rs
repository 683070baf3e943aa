//! Slack's incoming-webhook message, which Mattermost also takes (`SOURCE=slack` or
//! `SOURCE=mattermost`): JSON, or a form whose `payload` field holds the JSON.
//!
//! - **text**: the top-level `text`, each block's text (see below), and each attachment's
//!   `pretext`, `text`, `fields` (`title: value`) and blocks, in that order; when all of them are
//!   empty, the first attachment's `fallback` (what Slack shows in a phone notification), then the
//!   title, then any `text` string in the body (a block kind not read here), so a body that
//!   carries text is never skipped.
//! - **blocks**: a section's or `markdown` block's text and fields, a context's texts, a
//!   `rich_text` block's elements (texts, links, emoji, lists), an image's or video's title, and a
//!   second `header` as a line.
//! - **title**: the first attachment's `title`, else the first `header` block's text.
//! - **link**: the first attachment's `title_link`, else a button's `url` in the blocks, else the
//!   first link written in the text.
//! - **importance**: 4 when an attachment's `color` is `danger` or a red; else the route's default.
//!
//! Slack's mrkdwn (and Mattermost's Markdown) becomes plain text (`markup.rs`): `<https://x|label>`
//! is `label`, `<!here>` is `@here`, `<@U123|ann>` is `@ann`, `<#C123|ops>` is `#ops`, a mention
//! by id alone is dropped, `*bold*`, `_italic_` and `~strike~` lose their markers, `:fire:` is 🔥,
//! and entities are unescaped.

use actix_web::http::header::HeaderMap;
use serde_json::Value;

use super::body::Body;
use super::chat::{Notice, is_alarm_colour, items, text};
use super::markup::{Markup, emoji};
use super::{DecodeError, Decoded, SourceKind, SourceOptions};

/// How deep rich text and unknown blocks are followed; deeper content is left out.
const MAX_DEPTH: usize = 8;

/// Top-level keys only a Slack or Mattermost message has next to `text`.
const SLACK_ONLY_KEYS: [&str; 8] = [
    "username",
    "icon_emoji",
    "icon_url",
    "channel",
    "mrkdwn",
    "link_names",
    "unfurl_links",
    "props",
];

/// True for a Slack-shaped message: an `attachments` or `blocks` array (Teams' own `attachments`
/// is recognised before this), or a `text` string beside a key only Slack messages have. A body
/// with nothing but `text` stays generic (which reads `text` as the message too).
pub(super) fn recognises(payload: &Value) -> bool {
    let arrays = ["attachments", "blocks"]
        .iter()
        .any(|key| payload.get(key).is_some_and(Value::is_array));
    let text_message = payload.get("text").is_some_and(Value::is_string)
        && SLACK_ONLY_KEYS.iter().any(|key| payload.get(key).is_some());
    arrays || text_message
}

/// Decodes a Slack or Mattermost message into its one notification.
pub(super) fn decode(
    headers: &HeaderMap,
    body: Body,
    options: &SourceOptions,
) -> Result<Decoded, DecodeError> {
    let Body::Json(payload @ Value::Object(_)) = body else {
        return Err(DecodeError::UnexpectedPayload {
            sender: SourceKind::Slack,
            expected: "a JSON object with text, attachments or blocks (or a form with a JSON payload field)",
        });
    };
    let mut notice = Notice::new(Markup::Slack);
    notice.push(text(&payload, "text"));
    for block in items(&payload, "blocks") {
        read_block(block, &mut notice);
    }
    let attachments = items(&payload, "attachments");
    for attachment in attachments {
        notice.offer_title(text(attachment, "title"));
        notice.offer_link(text(attachment, "title_link"));
        notice.push(text(attachment, "pretext"));
        notice.push(text(attachment, "text"));
        for field in items(attachment, "fields") {
            notice.push_field(text(field, "title"), text(field, "value"));
        }
        for block in items(attachment, "blocks") {
            read_block(block, &mut notice);
        }
        if attachment.get("color").is_some_and(is_alarm_colour) {
            notice.raise_alarm();
        }
    }
    if notice.lines.is_empty() {
        let fallback = attachments
            .iter()
            .map(|attachment| text(attachment, "fallback"))
            .find(|fallback| !fallback.trim().is_empty());
        match fallback {
            Some(fallback) => notice.push(fallback),
            None => {
                let title = notice.title.clone();
                notice.push(&title);
            }
        }
    }
    if notice.lines.is_empty() {
        // A block kind this module does not know: its texts, rather than nothing.
        let mut texts = Vec::new();
        any_texts(&payload, 0, &mut texts);
        for found in texts {
            notice.push(&found);
        }
    }
    notice.offer_written_links();
    Ok(notice.into_decoded(
        SourceKind::Slack,
        ("message", None),
        payload,
        headers,
        options,
    ))
}

/// A block's `text.text` (or a `markdown` block's `text`).
fn block_text(block: &Value) -> &str {
    match block.get("text") {
        Some(Value::String(markdown)) => markdown,
        Some(inner) => text(inner, "text"),
        None => "",
    }
}

/// Reads one Block Kit block: a header's text is the title (a line when there is one already), a
/// section's text and fields, a context's texts, a rich text's elements and a media block's
/// title are lines, and a button's or section accessory's `url` is a link.
fn read_block(block: &Value, notice: &mut Notice) {
    match text(block, "type") {
        "header" => {
            if notice.title.is_empty() {
                notice.offer_title(block_text(block));
            } else {
                notice.push(block_text(block));
            }
        }
        "section" | "markdown" => {
            notice.push(block_text(block));
            for field in items(block, "fields") {
                notice.push(text(field, "text"));
            }
            if let Some(accessory) = block.get("accessory") {
                notice.offer_link(text(accessory, "url"));
            }
        }
        "context" => {
            for element in items(block, "elements") {
                notice.push(text(element, "text"));
            }
        }
        "actions" => {
            for element in items(block, "elements") {
                notice.offer_link(text(element, "url"));
            }
        }
        "rich_text" => {
            for element in items(block, "elements") {
                let written = rich_text(element, notice, 0);
                notice.push_written(&written);
            }
        }
        "image" | "video" => {
            if let Some(title) = block.get("title") {
                notice.push(text(title, "text"));
            }
        }
        _ => {}
    }
}

/// A rich text element (`rich_text_section`, `_list`, `_quote`, `_preformatted`) as plain text:
/// its texts as written, links as their labels, emoji as themselves, named mentions.
fn rich_text(element: &Value, notice: &mut Notice, depth: usize) -> String {
    if depth > MAX_DEPTH {
        return String::new();
    }
    match text(element, "type") {
        "rich_text_list" => items(element, "elements")
            .iter()
            .map(|item| format!("- {}", rich_text(item, notice, depth + 1)))
            .collect::<Vec<_>>()
            .join("\n"),
        "rich_text_section" | "rich_text_quote" | "rich_text_preformatted" => items(element, "elements")
            .iter()
            .map(|item| rich_text(item, notice, depth + 1))
            .collect(),
        "text" => text(element, "text").to_owned(),
        "link" => {
            let url = text(element, "url");
            notice.offer_written_link(url);
            match text(element, "text") {
                "" => url.to_owned(),
                label => label.to_owned(),
            }
        }
        "emoji" => emoji(text(element, "name")).map_or_else(String::new, str::to_owned),
        "broadcast" => format!("@{}", text(element, "range")),
        "date" => text(element, "fallback").to_owned(),
        _ => String::new(),
    }
}

/// Every `text` string in a body, depth first (for block kinds not read above).
fn any_texts(value: &Value, depth: usize, into: &mut Vec<String>) {
    if depth > MAX_DEPTH {
        return;
    }
    match value {
        Value::Object(fields) => {
            for (key, item) in fields {
                match item {
                    Value::String(found) if key == "text" => into.push(found.clone()),
                    _ => any_texts(item, depth + 1, into),
                }
            }
        }
        Value::Array(elements) => elements.iter().for_each(|item| any_texts(item, depth + 1, into)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::super::decode as decode_request;
    use super::super::test_support::{fixture, fixture_names, headers, json_headers};
    use super::*;
    use serde_json::json;

    fn context(body: &[u8], request: &HeaderMap) -> (Decoded, Value) {
        let decoded = decode_request(request, "", body, &SourceOptions::new("chat"))
            .unwrap_or_else(|error| panic!("{error}"));
        let tree = decoded.contexts[0].tree.clone();
        (decoded, tree)
    }

    #[test]
    fn every_fixture_is_recognised_as_slack() {
        for name in fixture_names("slack") {
            let (decoded, tree) = context(&fixture("slack", &name), &json_headers());
            assert_eq!(decoded.source, SourceKind::Slack, "{name}");
            assert!(
                !tree["message"].as_str().unwrap_or_default().is_empty(),
                "{name}"
            );
        }
    }

    #[test]
    fn alertmanager_attachment_reads_title_link_fallback_and_danger() {
        let (decoded, tree) = context(
            &fixture("slack", "alertmanager-0.25.firing.json"),
            &json_headers(),
        );
        assert_eq!(tree["title"], json!("[FIRING:1] DiskFull (db-1 critical)"));
        assert_eq!(
            tree["link"],
            json!("http://vm:18766/#/alerts?receiver=chat")
        );
        assert_eq!(
            tree["message"],
            json!("[FIRING:1] DiskFull (db-1 critical) | http://vm:18766/#/alerts?receiver=chat")
        );
        assert_eq!(decoded.contexts[0].importance.get(), 4);
        let (resolved, _) = context(
            &fixture("slack", "alertmanager-0.25.resolved.json"),
            &json_headers(),
        );
        assert_eq!(resolved.contexts[0].importance.get(), 3);
    }

    #[test]
    fn blocks_give_lines_and_the_written_link() {
        let (_, tree) = context(
            &fixture("slack", "blocks.incoming-webhook-docs.json"),
            &json_headers(),
        );
        let message = tree["message"].as_str().unwrap_or_default();
        assert!(
            message.starts_with("Danny Torrence left a 1 star review"),
            "{message}"
        );
        assert!(message.contains("Overlook Hotel\n ⭐"), "{message}");
        assert!(message.ends_with("Average Rating\n1.0"), "{message}");
        assert_eq!(tree["link"], json!("https://example.com"));
        assert_eq!(tree["title"], json!(""));
    }

    #[test]
    fn blocks_inside_attachments_are_read() {
        let (_, tree) = context(
            &fixture("slack", "attachment-blocks.slack-messaging-docs.json"),
            &json_headers(),
        );
        assert_eq!(
            tree["message"],
            json!(
                "author\n\nOptional text that appears within the attachment\n\n\
                 A 1st field's title\nA 1st field's value\n\n\
                 A 2nd field's title\nA 2nd field's value\n\n\
                 footer | February 18th, 2014 at 6:39 AM PST"
            )
        );
        assert_eq!(tree["link"], json!("http://flickr.com/bobby/"));
    }

    #[test]
    fn rich_text_blocks_read_their_elements() {
        let (_, tree) = context(
            &fixture("slack", "rich-text.block-kit-docs.json"),
            &json_headers(),
        );
        assert_eq!(
            tree["message"],
            json!(
                "Hello there, I am a basic rich text block!\n\n\
                 My favorite Slack features (in no particular order):\n\n\
                 - Huddles\n- Canvas\n- Developing with Block Kit\n\n🏀 Slack API"
            )
        );
        assert_eq!(tree["link"], json!("https://api.slack.com"));
    }

    #[test]
    fn an_unknown_block_kind_gives_its_texts_rather_than_nothing() {
        let body = json!({"blocks": [{"type": "future_block", "label": {"type": "plain_text", "text": "Disk *almost* full"}}]});
        let (_, tree) = context(body.to_string().as_bytes(), &json_headers());
        assert_eq!(tree["message"], json!("Disk almost full"));
    }

    #[test]
    fn a_second_header_block_is_a_line() {
        let body = json!({"blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": ":rotating_light: Outage"}},
            {"type": "header", "text": {"type": "plain_text", "text": "Update 2"}}
        ]});
        let (_, tree) = context(body.to_string().as_bytes(), &json_headers());
        assert_eq!(tree["title"], json!("🚨 Outage"));
        assert_eq!(tree["message"], json!("Update 2"));
    }

    #[test]
    fn the_form_payload_variant_reads_like_json() {
        let json = fixture("slack", "mattermost.text-and-attachment.docs.json");
        let form: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("payload", &String::from_utf8_lossy(&json))
            .finish();
        let request = headers(&[("Content-Type", "application/x-www-form-urlencoded")]);
        let mut options = SourceOptions::new("chat");
        options.setting = super::super::SourceSetting::Fixed(SourceKind::Slack);
        let decoded = decode_request(&request, "", form.as_bytes(), &options).expect("decodes");
        assert_eq!(
            decoded.contexts[0].tree["message"],
            json!(
                "Test message\n\nThis is the attachment pretext.\n\nThis is the attachment text."
            )
        );
    }

    #[test]
    fn a_text_only_body_stays_generic_unless_slack_keys_come_with_it() {
        let (generic, _) = context(br#"{"text":"hi"}"#, &json_headers());
        assert_eq!(generic.source, SourceKind::Generic);
        let (slack, tree) = context(
            br#"{"text":"<!channel> deploy done","username":"ci"}"#,
            &json_headers(),
        );
        assert_eq!(slack.source, SourceKind::Slack);
        assert_eq!(tree["message"], json!("@channel deploy done"));
    }

    #[test]
    fn a_fixed_slack_route_refuses_what_is_not_an_object() {
        let mut options = SourceOptions::new("chat");
        options.setting = super::super::SourceSetting::Fixed(SourceKind::Slack);
        let error = decode_request(&json_headers(), "", b"[1]", &options);
        assert!(matches!(
            error,
            Err(DecodeError::UnexpectedPayload {
                sender: SourceKind::Slack,
                ..
            })
        ));
    }
}
