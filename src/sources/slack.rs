//! Slack's incoming-webhook message, which Mattermost also takes (`SOURCE=slack` or
//! `SOURCE=mattermost`): JSON, or a form whose `payload` field holds the JSON.
//!
//! - **text**: the top-level `text`, each section block's text and fields, each context block's
//!   texts, and each attachment's `pretext`, `text` and `fields` (`title: value`), in that order;
//!   when all of them are empty, the first attachment's `fallback` (what Slack shows in a phone
//!   notification), then the title.
//! - **title**: the first attachment's `title`, else the first `header` block's text.
//! - **link**: the first attachment's `title_link`, else a button's `url` in the blocks, else the
//!   first link written in the text.
//! - **importance**: 4 when an attachment's `color` is `danger` or a red; else the route's default.
//!
//! Slack's markup becomes plain text: `<https://x|label>` is `label`, `<https://x>` is the URL,
//! `<!here>` is `@here`, `<@U123|ann>` is `@ann`, `<#C123|ops>` is `#ops`, and `&lt;`, `&gt;`,
//! `&amp;` are unescaped. Bold and italic markers are left as written.

use actix_web::http::header::HeaderMap;
use serde_json::Value;

use super::body::Body;
use super::chat::{Notice, is_alarm_colour, items, text};
use super::{DecodeError, Decoded, SourceKind, SourceOptions};

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
    let mut notice = Notice::default();
    let mut written_links = Vec::new();
    let mut plain = |raw: &str| {
        let (text, links) = plain_text(raw);
        written_links.extend(links);
        text
    };
    notice.push(&plain(text(&payload, "text")));
    for block in items(&payload, "blocks") {
        read_block(block, &mut notice, &mut plain);
    }
    let attachments = items(&payload, "attachments");
    for attachment in attachments {
        notice.offer_title(&plain(text(attachment, "title")));
        notice.offer_link(text(attachment, "title_link"));
        notice.push(&plain(text(attachment, "pretext")));
        notice.push(&plain(text(attachment, "text")));
        for field in items(attachment, "fields") {
            notice.push_field(&plain(text(field, "title")), &plain(text(field, "value")));
        }
        if attachment.get("color").is_some_and(is_alarm_colour) {
            notice.raise_alarm();
        }
    }
    if notice.lines.is_empty() {
        let fallback = attachments
            .iter()
            .map(|attachment| plain(text(attachment, "fallback")))
            .find(|fallback| !fallback.trim().is_empty());
        match fallback {
            Some(fallback) => notice.push(&fallback),
            None => {
                let title = notice.title.clone();
                notice.push(&title);
            }
        }
    }
    for link in &written_links {
        notice.offer_link(link);
    }
    Ok(notice.into_decoded(
        SourceKind::Slack,
        ("message", None),
        payload,
        headers,
        options,
    ))
}

/// A block's `text.text`.
fn block_text(block: &Value) -> &str {
    block.get("text").map_or("", |inner| text(inner, "text"))
}

/// Reads one Block Kit block: a header's text is a title, a section's text and fields and a
/// context's texts are lines, and a button's or section accessory's `url` is a link.
fn read_block(block: &Value, notice: &mut Notice, plain: &mut impl FnMut(&str) -> String) {
    match text(block, "type") {
        "header" => notice.offer_title(&plain(block_text(block))),
        "section" => {
            notice.push(&plain(block_text(block)));
            for field in items(block, "fields") {
                notice.push(&plain(text(field, "text")));
            }
            if let Some(accessory) = block.get("accessory") {
                notice.offer_link(text(accessory, "url"));
            }
        }
        "context" => {
            for element in items(block, "elements") {
                notice.push(&plain(text(element, "text")));
            }
        }
        "actions" => {
            for element in items(block, "elements") {
                notice.offer_link(text(element, "url"));
            }
        }
        _ => {}
    }
}

/// Slack markup as plain text, and the URLs its links pointed to, in order.
pub(super) fn plain_text(raw: &str) -> (String, Vec<String>) {
    let mut out = String::with_capacity(raw.len());
    let mut links = Vec::new();
    let mut rest = raw;
    while let Some(start) = rest.find('<') {
        let Some(length) = rest[start..].find('>') else {
            break;
        };
        out.push_str(&rest[..start]);
        let inner = &rest[start + 1..start + length];
        out.push_str(&readable_token(inner, &mut links));
        rest = &rest[start + length + 1..];
    }
    out.push_str(rest);
    let unescaped = out
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    (unescaped, links)
}

/// One `<…>` token as it reads: a link's label (or its URL), a mention's name.
fn readable_token(inner: &str, links: &mut Vec<String>) -> String {
    let (target, label) = match inner.split_once('|') {
        Some((target, label)) => (target, Some(label)),
        None => (inner, None),
    };
    if let Some(special) = target.strip_prefix('!') {
        return match (special, label) {
            (_, Some(label)) => label.to_owned(),
            ("here" | "channel" | "everyone", None) => format!("@{special}"),
            (other, None) => other.split('^').next().unwrap_or(other).to_owned(),
        };
    }
    if let Some(user) = target.strip_prefix('@') {
        return format!("@{}", label.unwrap_or(user));
    }
    if let Some(channel) = target.strip_prefix('#') {
        return format!("#{}", label.unwrap_or(channel));
    }
    if target.contains(':') {
        links.push(target.to_owned());
        return label.unwrap_or(target).to_owned();
    }
    format!("<{inner}>")
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
    fn markup_becomes_plain_text_and_links_are_collected() {
        let (text, links) = plain_text(
            "<!here> <@U024BE7LH|ann> in <#C024BE7LR|ops>: <https://example.com|Overlook Hotel> \
             and <https://b.example> &lt;3 &amp; <not a link",
        );
        assert_eq!(
            text,
            "@here @ann in #ops: Overlook Hotel and https://b.example <3 & <not a link"
        );
        assert_eq!(links, ["https://example.com", "https://b.example"]);
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
        assert!(message.contains("Overlook Hotel\n :star:"), "{message}");
        assert!(message.ends_with("*Average Rating*\n1.0"), "{message}");
        assert_eq!(tree["link"], json!("https://example.com"));
        assert_eq!(tree["title"], json!(""));
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
