//! Discord's execute-webhook message (`SOURCE=discord`): `content` and up to ten `embeds`.
//!
//! - **text**: `content`, then each embed's `description` and `fields` (`name: value`); when all
//!   are empty, the embeds' titles, else their authors' names and footers' texts.
//! - **title**: the first embed's `title`, else its `author.name`.
//! - **link**: the first embed's `url`, else the first link written in the text.
//! - **importance**: 4 when an embed's `color` is a red; else the route's default.
//!
//! Discord's Markdown reads as plain text (`markup.rs`): `**bold**` is `bold`, `[label](url)` is
//! `label` (and its URL a link), mentions by id and custom emoji `<:name:id>` are dropped,
//! `:tada:` is 🎉.

use actix_web::http::header::HeaderMap;
use serde_json::Value;

use super::body::Body;
use super::chat::{Notice, is_alarm_colour, items, text};
use super::markup::Markup;
use super::{DecodeError, Decoded, SourceKind, SourceOptions};

/// Top-level keys a Discord webhook message may have.
const DISCORD_KEYS: [&str; 13] = [
    "content",
    "username",
    "avatar_url",
    "tts",
    "embeds",
    "allowed_mentions",
    "components",
    "flags",
    "thread_name",
    "attachments",
    "poll",
    "applied_tags",
    "payload_json",
];

/// True for a Discord-shaped message: an `embeds` array, or a `content` string with nothing
/// but Discord's keys beside it.
pub(super) fn recognises(payload: &Value) -> bool {
    let embeds = payload.get("embeds").is_some_and(Value::is_array);
    let content = payload.get("content").is_some_and(Value::is_string)
        && payload.as_object().is_some_and(|object| {
            object
                .keys()
                .all(|key| DISCORD_KEYS.contains(&key.as_str()))
        });
    embeds || content
}

/// Decodes a Discord message into its one notification.
pub(super) fn decode(
    headers: &HeaderMap,
    body: Body,
    options: &SourceOptions,
) -> Result<Decoded, DecodeError> {
    let Body::Json(payload @ Value::Object(_)) = body else {
        return Err(DecodeError::UnexpectedPayload {
            sender: SourceKind::Discord,
            expected: "a JSON object with content or embeds",
        });
    };
    let mut notice = Notice::new(Markup::Discord);
    let content = text(&payload, "content");
    notice.push(content);
    let embeds = items(&payload, "embeds");
    for embed in embeds {
        notice.offer_title(text(embed, "title"));
        if let Some(author) = embed.get("author") {
            notice.offer_title(text(author, "name"));
        }
        notice.offer_link(text(embed, "url"));
        notice.push(text(embed, "description"));
        for field in items(embed, "fields") {
            notice.push_field(text(field, "name"), text(field, "value"));
        }
        if embed.get("color").is_some_and(is_alarm_colour) {
            notice.raise_alarm();
        }
    }
    if notice.lines.is_empty() {
        for embed in embeds {
            notice.push(text(embed, "title"));
        }
    }
    if notice.lines.is_empty() {
        // An embed with nothing but an author or a footer still says something.
        for embed in embeds {
            for (part, key) in [("author", "name"), ("footer", "text")] {
                if let Some(inner) = embed.get(part) {
                    notice.push(text(inner, key));
                }
            }
        }
    }
    notice.offer_written_links();
    Ok(notice.into_decoded(
        SourceKind::Discord,
        ("message", None),
        payload,
        headers,
        options,
    ))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{fixture, fixture_names};
    use super::*;
    use serde_json::json;

    use super::super::test_support::decode_json as deliver;

    #[test]
    fn every_fixture_is_recognised_as_discord() {
        for name in fixture_names("discord") {
            let (decoded, tree) = deliver(&fixture("discord", &name));
            assert_eq!(decoded.source, SourceKind::Discord, "{name}");
            assert!(
                !tree["message"].as_str().unwrap_or_default().is_empty(),
                "{name}"
            );
        }
    }

    #[test]
    fn alertmanager_embed_reads_title_description_and_red() {
        let (decoded, tree) = deliver(&fixture("discord", "alertmanager-0.25.firing.json"));
        assert_eq!(tree["title"], json!("[FIRING:1] DiskFull (db-1 critical)"));
        let message = tree["message"].as_str().unwrap_or_default();
        assert!(
            message.starts_with("Alerts Firing:\nLabels:\n - alertname = DiskFull"),
            "{message}"
        );
        assert!(!message.contains("\n\n\n"), "{message}");
        assert_eq!(decoded.contexts[0].importance.get(), 4);
        let (resolved, _) = deliver(&fixture("discord", "alertmanager-0.25.resolved.json"));
        assert_eq!(resolved.contexts[0].importance.get(), 3);
    }

    #[test]
    fn grafana_embed_gives_its_url_as_the_link() {
        let (decoded, tree) = deliver(&fixture("discord", "grafana.firing-one-alert.json"));
        assert_eq!(tree["link"], json!("http://localhost/alerting/list"));
        assert_eq!(tree["title"], json!("[FIRING:1] (val1)"));
        assert_eq!(decoded.contexts[0].importance.get(), 4);
    }

    #[test]
    fn content_alone_is_discord_only_without_foreign_keys() {
        let (discord, tree) = deliver(br#"{"content":"Deploy done: https://ci.example/1"}"#);
        assert_eq!(discord.source, SourceKind::Discord);
        assert_eq!(tree["link"], json!("https://ci.example/1"));
        let (generic, _) = deliver(br#"{"content":"x","host":"web-1"}"#);
        assert_eq!(generic.source, SourceKind::Generic);
    }

    #[test]
    fn an_embed_with_only_an_author_or_footer_is_not_skipped() {
        let (_, tree) = deliver(br#"{"embeds":[{"footer":{"text":"Nightly backup **done**"}}]}"#);
        assert_eq!(tree["message"], json!("Nightly backup done"));
    }

    #[test]
    fn markdown_mentions_and_custom_emoji_read_as_plain_text() {
        let body = json!({"content": "<@80351110224678912> **Deploy** of `api` done <:ok:216154654256398347> :tada: [log](https://ci.example/1)"});
        let (_, tree) = deliver(body.to_string().as_bytes());
        assert_eq!(tree["message"], json!("Deploy of api done 🎉 log"));
        assert_eq!(tree["link"], json!("https://ci.example/1"));
    }

    #[test]
    fn embeds_without_text_read_their_titles() {
        let (_, tree) = deliver(br#"{"embeds":[{"title":"Backup done"}]}"#);
        assert_eq!(tree["message"], json!("Backup done"));
    }
}
