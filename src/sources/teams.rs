//! Microsoft Teams incoming-webhook cards (`SOURCE=teams`): the Office 365 connector
//! `MessageCard`, and a message holding Adaptive Cards (what Teams' Workflows webhooks take), or a
//! bare `AdaptiveCard`.
//!
//! A **MessageCard** reads its `title` (else `summary`) as the title; `text`, then each section's
//! `activityTitle`, `activitySubtitle`, `activityText`, `text` and `facts` (`name: value`) as the
//! message; the first `OpenUri` action's default target (or a `ViewAction`'s first `target`) as
//! the link (else the first link written in the text); a red `themeColor` raises the importance
//! to 4.
//!
//! An **Adaptive Card** reads its first `TextBlock` as the title when it is large, bold or a
//! heading, and every other `TextBlock` and `FactSet` (`title: value`), also inside containers and
//! columns, as the message; the first `Action.OpenUrl` is the link (else the first link written
//! in the text); a `TextBlock` coloured `attention`, or a `Container`, `ColumnSet` or `Column` styled
//! `attention`, raises the importance to 4.
//!
//! The text's HTML and Markdown read as plain text (`markup.rs`): tags removed with their line
//! breaks kept, entities (`&#x1F6A8;`) decoded, `**bold**` and `\_` escapes unmarked.

use actix_web::http::header::HeaderMap;
use serde_json::Value;

use super::body::Body;
use super::chat::{Notice, is_alarm_colour, items, text};
use super::markup::Markup;
use super::{DecodeError, Decoded, SourceKind, SourceOptions};

/// The content type of an Adaptive Card attachment.
const ADAPTIVE_CARD: &str = "application/vnd.microsoft.card.adaptive";
/// How deep containers are followed; deeper content is left out.
const MAX_DEPTH: usize = 8;

/// True for a MessageCard, a message with an Adaptive Card attachment, or an AdaptiveCard.
pub(super) fn recognises(payload: &Value) -> bool {
    text(payload, "@type").eq_ignore_ascii_case("MessageCard")
        || text(payload, "type") == "AdaptiveCard"
        || items(payload, "attachments")
            .iter()
            .any(|attachment| text(attachment, "contentType") == ADAPTIVE_CARD)
}

/// Decodes a Teams card into its one notification.
pub(super) fn decode(
    headers: &HeaderMap,
    body: Body,
    options: &SourceOptions,
) -> Result<Decoded, DecodeError> {
    let payload = match body {
        Body::Json(payload) if recognises(&payload) => payload,
        _ => {
            return Err(DecodeError::UnexpectedPayload {
                sender: SourceKind::Teams,
                expected: "a MessageCard, or a message with an Adaptive Card attachment",
            });
        }
    };
    let mut notice = Notice::new(Markup::Teams);
    let event = if text(&payload, "@type").eq_ignore_ascii_case("MessageCard") {
        read_message_card(&payload, &mut notice);
        "message_card"
    } else if text(&payload, "type") == "AdaptiveCard" {
        read_adaptive_card(&payload, &mut notice);
        "adaptive_card"
    } else {
        for attachment in items(&payload, "attachments") {
            if text(attachment, "contentType") == ADAPTIVE_CARD
                && let Some(card) = attachment.get("content")
            {
                read_adaptive_card(card, &mut notice);
            }
        }
        "adaptive_card"
    };
    if notice.lines.is_empty() {
        let title = notice.title.clone();
        notice.push(&title);
    }
    notice.offer_written_links();
    Ok(notice.into_decoded(SourceKind::Teams, (event, None), payload, headers, options))
}

fn read_message_card(card: &Value, notice: &mut Notice) {
    notice.offer_title(text(card, "title"));
    notice.offer_title(text(card, "summary"));
    notice.push(text(card, "text"));
    for section in items(card, "sections") {
        for key in ["activityTitle", "activitySubtitle", "activityText", "text"] {
            notice.push(text(section, key));
        }
        for fact in items(section, "facts") {
            notice.push_field(text(fact, "name"), text(fact, "value"));
        }
    }
    for action in items(card, "potentialAction") {
        match text(action, "@type") {
            "OpenUri" => {
                let targets = items(action, "targets");
                let default = targets
                    .iter()
                    .find(|target| text(target, "os") == "default")
                    .or_else(|| targets.first());
                if let Some(target) = default {
                    notice.offer_link(text(target, "uri"));
                }
            }
            "ViewAction" => {
                if let Some(Value::String(target)) = items(action, "target").first() {
                    notice.offer_link(target);
                }
            }
            _ => {}
        }
    }
    if card.get("themeColor").is_some_and(is_alarm_colour) {
        notice.raise_alarm();
    }
}

fn read_adaptive_card(card: &Value, notice: &mut Notice) {
    let mut first = true;
    read_elements(items(card, "body"), notice, &mut first, 0);
    for action in items(card, "actions") {
        if text(action, "type") == "Action.OpenUrl" {
            notice.offer_link(text(action, "url"));
        }
    }
}

fn read_elements(elements: &[Value], notice: &mut Notice, first: &mut bool, depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    for element in elements {
        match text(element, "type") {
            "TextBlock" | "RichTextBlock" => {
                let block = block_text(element);
                let prominent = text(element, "weight").eq_ignore_ascii_case("bolder")
                    || ["large", "extralarge", "medium"]
                        .contains(&text(element, "size").to_ascii_lowercase().as_str())
                    || text(element, "style").eq_ignore_ascii_case("heading");
                if std::mem::take(first) && prominent && notice.title.is_empty() {
                    notice.offer_title(&block);
                } else {
                    notice.push(&block);
                }
                if text(element, "color").eq_ignore_ascii_case("attention") {
                    notice.raise_alarm();
                }
            }
            "FactSet" => {
                for fact in items(element, "facts") {
                    notice.push_field(text(fact, "title"), text(fact, "value"));
                }
            }
            "Container" => {
                raise_for_attention_style(element, notice);
                read_elements(items(element, "items"), notice, first, depth + 1);
            }
            "ColumnSet" => {
                raise_for_attention_style(element, notice);
                for column in items(element, "columns") {
                    raise_for_attention_style(column, notice);
                    read_elements(items(column, "items"), notice, first, depth + 1);
                }
            }
            "ActionSet" => {
                for action in items(element, "actions") {
                    if text(action, "type") == "Action.OpenUrl" {
                        notice.offer_link(text(action, "url"));
                    }
                }
            }
            _ => {}
        }
    }
}

/// Raises the importance for a container, column set or column styled `attention` (red).
fn raise_for_attention_style(element: &Value, notice: &mut Notice) {
    if text(element, "style").eq_ignore_ascii_case("attention") {
        notice.raise_alarm();
    }
}

/// A TextBlock's `text`, or a RichTextBlock's inlines joined.
fn block_text(element: &Value) -> String {
    match element.get("inlines") {
        Some(Value::Array(inlines)) => inlines
            .iter()
            .map(|inline| inline.as_str().unwrap_or_else(|| text(inline, "text")))
            .collect(),
        _ => text(element, "text").to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{fixture, fixture_names};
    use super::*;
    use serde_json::json;

    use super::super::test_support::decode_json as deliver;

    #[test]
    fn every_fixture_is_recognised_as_teams() {
        for name in fixture_names("teams") {
            let (decoded, tree) = deliver(&fixture("teams", &name));
            assert_eq!(decoded.source, SourceKind::Teams, "{name}");
            assert!(
                !tree["message"].as_str().unwrap_or_default().is_empty(),
                "{name}"
            );
        }
    }

    #[test]
    fn message_card_reads_summary_sections_facts_and_open_uri() {
        let (decoded, tree) = deliver(&fixture("teams", "messagecard.connectors-using-docs.json"));
        assert_eq!(decoded.event, "message_card");
        assert_eq!(tree["title"], json!("Larry Bryant created a new task"));
        assert_eq!(
            tree["link"],
            json!("https://docs.microsoft.com/outlook/actionable-messages")
        );
        let message = tree["message"].as_str().unwrap_or_default();
        assert!(message.starts_with("On Project Tango"), "{message}");
        assert!(message.ends_with("Status: Not started"), "{message}");
        assert_eq!(decoded.contexts[0].importance.get(), 3);
    }

    #[test]
    fn adaptive_card_reads_its_text_blocks_and_actions() {
        let (decoded, tree) = deliver(&fixture(
            "teams",
            "adaptive-card.connectors-using-docs.json",
        ));
        assert_eq!(decoded.event, "adaptive_card");
        assert_eq!(
            tree["message"],
            json!(
                "For Samples and Templates, see https://adaptivecards.io/samples"
            )
        );
        let card = json!({
            "type": "AdaptiveCard",
            "body": [
                {"type": "TextBlock", "text": "Backup failed", "weight": "Bolder", "color": "Attention"},
                {"type": "Container", "items": [{"type": "FactSet", "facts": [{"title": "Host", "value": "db-1"}]}]}
            ],
            "actions": [{"type": "Action.OpenUrl", "title": "Logs", "url": "https://logs.example/1"}]
        });
        let (decoded, tree) = deliver(card.to_string().as_bytes());
        assert_eq!(tree["title"], json!("Backup failed"));
        assert_eq!(tree["message"], json!("Host: db-1"));
        assert_eq!(tree["link"], json!("https://logs.example/1"));
        assert_eq!(decoded.contexts[0].importance.get(), 4);
    }

    #[test]
    fn jenkins_message_card_unescapes_markdown_and_is_red() {
        let (decoded, tree) = deliver(&fixture("teams", "messagecard.jenkins-office365-failed.json"));
        assert_eq!(tree["title"], json!("myFirst_Job_: Build #167 Failed"));
        let message = tree["message"].as_str().unwrap_or_default();
        assert!(
            message.starts_with("Notification from myFirst_Job_: Build Failed"),
            "{message}"
        );
        assert_eq!(decoded.contexts[0].importance.get(), 4);
    }

    #[test]
    fn adaptive_card_mentions_read_as_names() {
        let (_, tree) = deliver(&fixture("teams", "adaptive-card.jenkins-office365-mention.json"));
        let message = tree["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("Hello @Testing tester, this is a test notification"),
            "{message}"
        );
    }

    #[test]
    fn an_attention_container_raises_the_importance() {
        let card = json!({
            "type": "AdaptiveCard",
            "body": [
                {"type": "TextBlock", "text": "Nightly backup", "weight": "Bolder"},
                {"type": "Container", "style": "attention", "items": [{"type": "TextBlock", "text": "3 tables failed"}]}
            ]
        });
        let (decoded, _) = deliver(card.to_string().as_bytes());
        assert_eq!(decoded.contexts[0].importance.get(), 4);
        let column = json!({
            "type": "AdaptiveCard",
            "body": [{"type": "ColumnSet", "columns": [{"type": "Column", "style": "Attention", "items": [{"type": "TextBlock", "text": "down"}]}]}]
        });
        let (decoded, _) = deliver(column.to_string().as_bytes());
        assert_eq!(decoded.contexts[0].importance.get(), 4);
        let calm = json!({
            "type": "AdaptiveCard",
            "body": [{"type": "Container", "style": "emphasis", "items": [{"type": "TextBlock", "text": "ok"}]}]
        });
        let (decoded, _) = deliver(calm.to_string().as_bytes());
        assert_eq!(decoded.contexts[0].importance.get(), 3);
    }

    #[test]
    fn a_red_theme_colour_raises_the_importance() {
        let card = json!({"@type": "MessageCard", "themeColor": "8C1A1A", "title": "Down", "text": "api is down"});
        let (decoded, _) = deliver(card.to_string().as_bytes());
        assert_eq!(decoded.contexts[0].importance.get(), 4);
    }
}
