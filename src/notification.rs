//! From rendered template text to a notification Pushjet will take unchanged: title trimmed and
//! cut to 255 characters, message non-empty and clipped to the byte limit with a visible marker,
//! link absolute http(s) (percent-encoded where it holds characters a URL may not) or none, importance 1–5 or the route's default.

use serde::Serialize;

use crate::pushjet::{Importance, Link, MESSAGE_MAX_BYTES, MessageText, NewMessage, Title};
use crate::render::RenderedFields;

/// What is appended to a message cut to the byte limit.
pub const CLIPPED_MARKER: &str = "\n… (cut)";

/// What a rendered template turned into.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Assembled {
    /// A notification to send, with the corrections made on the way.
    Send {
        /// The notification.
        notification: NewMessage,
        /// What was corrected (dropped link, defaulted importance, clipped message).
        #[serde(skip_serializing_if = "Vec::is_empty")]
        corrections: Vec<String>,
    },
    /// The template rendered an empty message: this one is skipped on purpose.
    Skip,
}

/// Turns rendered fields into a notification. `max_message_bytes` is the route's message limit
/// (never above the protocol's 65,535 bytes).
pub fn assemble(
    fields: &RenderedFields,
    default_importance: Importance,
    max_message_bytes: usize,
) -> Assembled {
    if fields.message.trim().is_empty() {
        return Assembled::Skip;
    }
    let mut corrections = Vec::new();
    let limit = max_message_bytes.clamp(CLIPPED_MARKER.len() + 1, MESSAGE_MAX_BYTES);
    let text = clip(&fields.message, limit);
    if text.len() < fields.message.len() {
        corrections.push(format!(
            "message cut from {} to {} bytes",
            fields.message.len(),
            text.len()
        ));
    }
    let link = match fields.link.trim() {
        "" => None,
        raw => match Link::parse(&encoded_link(raw)) {
            Ok(link) => Some(link),
            Err(_) => {
                corrections.push(format!(
                    "link `{}` dropped: not an absolute http(s) URL",
                    shorten(raw)
                ));
                None
            }
        },
    };
    let importance = match fields.importance.trim() {
        "" => default_importance,
        raw => Importance::parse(raw).unwrap_or_else(|_| {
            corrections.push(format!(
                "importance `{}` is not 1-5; used the route's default {default_importance}",
                shorten(raw)
            ));
            default_importance
        }),
    };
    match MessageText::new(text) {
        Ok(message) => Assembled::Send {
            notification: NewMessage {
                message,
                title: Title::new(&fields.title),
                link,
                importance,
            },
            corrections,
        },
        Err(_) => Assembled::Skip,
    }
}

/// A link with the characters a URL may not hold (spaces, quotes, `<>`, `{}`, `|`, non-ASCII,
/// …) percent-encoded as a browser would; a link without any is left exactly as written.
fn encoded_link(raw: &str) -> String {
    let needs_encoding = raw
        .chars()
        .any(|c| !c.is_ascii_graphic() || "\"<>\\^`{|}".contains(c));
    match url::Url::parse(raw) {
        // The WHATWG parser leaves `{`, `|`, `}`, `^` and `` ` `` in a query; RFC 3986 does not.
        Ok(url) if needs_encoding => url
            .as_str()
            .chars()
            .map(|c| match c {
                '{' | '|' | '}' | '^' | '`' => format!("%{:02X}", u32::from(c)),
                other => other.to_string(),
            })
            .collect(),
        _ => raw.to_owned(),
    }
}

/// Cuts `text` to at most `limit` bytes on a character boundary, marking the cut.
fn clip(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_owned();
    }
    let mut end = limit - CLIPPED_MARKER.len();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{CLIPPED_MARKER}", text[..end].trim_end())
}

/// The first 80 characters of a value, for messages about it.
fn shorten(raw: &str) -> String {
    match raw.char_indices().nth(80) {
        Some((end, _)) => format!("{}…", &raw[..end]),
        None => raw.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(title: &str, message: &str, link: &str, importance: &str) -> RenderedFields {
        RenderedFields {
            title: title.to_owned(),
            message: message.to_owned(),
            link: link.to_owned(),
            importance: importance.to_owned(),
        }
    }

    fn sent(assembled: Assembled) -> (NewMessage, Vec<String>) {
        match assembled {
            Assembled::Send {
                notification,
                corrections,
            } => (notification, corrections),
            Assembled::Skip => panic!("expected a notification"),
        }
    }

    #[test]
    fn well_formed_fields_pass_unchanged() {
        let (notification, corrections) = sent(assemble(
            &fields(" repo: 3 commits ", "a\nb", "https://github.com/o/r", "2"),
            Importance::DEFAULT,
            4096,
        ));
        assert_eq!(notification.title.as_str(), "repo: 3 commits");
        assert_eq!(notification.message.as_str(), "a\nb");
        assert_eq!(
            notification.link.unwrap().as_str(),
            "https://github.com/o/r"
        );
        assert_eq!(notification.importance.get(), 2);
        assert!(corrections.is_empty());
    }

    #[test]
    fn an_empty_or_blank_message_means_skip() {
        assert_eq!(
            assemble(&fields("t", "", "", "3"), Importance::DEFAULT, 4096),
            Assembled::Skip
        );
        assert_eq!(
            assemble(&fields("t", " \n\t", "", "3"), Importance::DEFAULT, 4096),
            Assembled::Skip
        );
    }

    #[test]
    fn a_long_message_is_cut_on_a_character_boundary_with_a_marker() {
        let (notification, corrections) = sent(assemble(
            &fields("t", &"é".repeat(100), "", ""),
            Importance::DEFAULT,
            51,
        ));
        let text = notification.message.as_str();
        assert!(text.len() <= 51, "{}", text.len());
        assert!(text.ends_with(CLIPPED_MARKER));
        assert_eq!(corrections.len(), 1);
    }

    #[test]
    fn a_relative_or_odd_link_is_dropped_and_said() {
        let (notification, corrections) = sent(assemble(
            &fields("t", "m", "/relative", ""),
            Importance::DEFAULT,
            4096,
        ));
        assert_eq!(notification.link, None);
        assert!(corrections[0].contains("/relative"));
    }

    #[test]
    fn a_link_with_spaces_or_other_unsafe_characters_is_percent_encoded() {
        let link = |raw: &str| {
            sent(assemble(&fields("t", "m", raw, ""), Importance::DEFAULT, 4096))
                .0
                .link
                .map(|link| link.as_str().to_owned())
        };
        assert_eq!(
            link("https://grafana.example/d/abc/My Dashboard?var-host=db 1&x={a|b}").as_deref(),
            Some("https://grafana.example/d/abc/My%20Dashboard?var-host=db%201&x=%7Ba%7Cb%7D")
        );
        assert_eq!(link("https://wiki.example/Café").as_deref(), Some("https://wiki.example/Caf%C3%A9"));
        assert_eq!(link("https://github.com/o/r").as_deref(), Some("https://github.com/o/r"));
        assert_eq!(link("javascript:alert(1) x"), None);
        assert_eq!(link("not a url at all"), None);
    }

    #[test]
    fn importance_out_of_range_falls_back_to_the_route_default() {
        let default = Importance::new(4).unwrap();
        let (notification, corrections) = sent(assemble(&fields("t", "m", "", "9"), default, 4096));
        assert_eq!(notification.importance, default);
        assert_eq!(corrections.len(), 1);
        let (notification, corrections) = sent(assemble(&fields("t", "m", "", ""), default, 4096));
        assert_eq!(notification.importance, default);
        assert!(corrections.is_empty());
    }
}
