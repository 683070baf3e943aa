//! What the chat and push formats (Slack and Mattermost, Discord, Microsoft Teams, Apprise, ntfy,
//! Gotify) have in common once read: a title, the lines of a message, a link, and an importance;
//! and the one context shape their built-in templates read:
//!
//! - `title`, `message`, `link`: text (empty when the sender gave none);
//! - `payload`: the body exactly as sent (for a form, its fields);
//! - `bridge`: as for every source; `bridge.importance` is the one the format gave or implied.
//!
//! None of these formats carries a delivery id, so, as for generic senders, only an
//! `Idempotency-Key` header deduplicates.

use actix_web::http::header::HeaderMap;
use serde_json::{Map, Value};

use super::markup::{Markup, plain_text};
use super::{Context, Decoded, SourceKind, SourceOptions, delivery_header};
use crate::pushjet::Importance;

/// The header a client may set to make retries of one message idempotent.
const IDEMPOTENCY_HEADER: &str = "idempotency-key";

/// The importance a red colour (or Slack's `danger`) raises a notification to.
pub(super) const ALARM_IMPORTANCE: u8 = 4;

/// One notification read from a chat or push format.
#[derive(Debug, Default)]
pub(super) struct Notice {
    /// The title; empty when the format has none.
    pub title: String,
    /// The message, one entry per paragraph or line; empty entries are dropped.
    pub lines: Vec<String>,
    /// The page to open; empty when none.
    pub link: String,
    /// The importance the sender asked for or implied; `None` leaves the route's default.
    pub importance: Option<Importance>,
    /// The markup the format's text is written in, read as plain text (see `markup.rs`).
    pub markup: Markup,
    /// The URLs the text's links pointed to, in order.
    pub written_links: Vec<String>,
}

impl Notice {
    /// A notice whose text is written in `markup`.
    pub fn new(markup: Markup) -> Self {
        Self {
            markup,
            ..Self::default()
        }
    }

    /// The format's text as plain text; its links' URLs are kept for [`Self::offer_written_links`].
    pub fn plain(&mut self, raw: &str) -> String {
        let (text, links) = plain_text(raw, self.markup);
        self.written_links.extend(links);
        text
    }

    /// Adds a paragraph, read as plain text and tidied, unless it is blank.
    pub fn push(&mut self, text: &str) {
        let text = tidy(&self.plain(text));
        if !text.is_empty() {
            self.lines.push(text);
        }
    }

    /// Adds a paragraph already in plain text, tidied, unless it is blank.
    pub fn push_written(&mut self, text: &str) {
        let text = tidy(text);
        if !text.is_empty() {
            self.lines.push(text);
        }
    }

    /// Keeps a URL the text pointed to, for [`Self::offer_written_links`].
    pub fn offer_written_link(&mut self, url: &str) {
        self.written_links.push(url.to_owned());
    }

    /// Adds `name: value`, or the one of them that is not blank.
    pub fn push_field(&mut self, name: &str, value: &str) {
        let (name, value) = (self.plain(name), self.plain(value));
        let (name, value) = (name.trim(), tidy(value.trim()));
        match (name.is_empty(), value.is_empty()) {
            (false, false) if value.contains('\n') => self.lines.push(format!("{name}:\n{value}")),
            (false, false) => self.lines.push(format!("{name}: {value}")),
            (true, false) => self.lines.push(value),
            (false, true) => self.lines.push(name.to_owned()),
            (true, true) => {}
        }
    }

    /// Keeps the first link offered.
    pub fn offer_link(&mut self, link: &str) {
        let link = link.trim();
        if self.link.is_empty() && (link.starts_with("https://") || link.starts_with("http://")) {
            link.clone_into(&mut self.link);
        }
    }

    /// Keeps the first title offered that is not blank, read as plain text on one line.
    pub fn offer_title(&mut self, title: &str) {
        if !self.title.is_empty() {
            return;
        }
        let title = self.plain(title);
        let title = title.split_whitespace().collect::<Vec<_>>().join(" ");
        if !title.is_empty() {
            self.title = title;
        }
    }

    /// Offers the links the text pointed to, then every `http(s)://` link written bare in the
    /// message so far, in order; the first is kept unless a link was set before.
    pub fn offer_written_links(&mut self) {
        for link in std::mem::take(&mut self.written_links) {
            self.offer_link(&link);
        }
        let written = self.lines.join("\n");
        for word in written.split(|c: char| c.is_whitespace() || "<>()[]|\"".contains(c)) {
            self.offer_link(word);
        }
    }

    /// Raises the importance to [`ALARM_IMPORTANCE`] (never lowers one the sender set higher).
    pub fn raise_alarm(&mut self) {
        let alarm = Importance::new(ALARM_IMPORTANCE).ok();
        self.importance = self.importance.max(alarm);
    }

    /// The notification's one context, with `payload` the body as sent. A first line that only
    /// repeats the title is left out when more lines follow.
    pub fn into_decoded(
        mut self,
        source: SourceKind,
        (event, action): (&str, Option<&str>),
        payload: Value,
        headers: &HeaderMap,
        options: &SourceOptions,
    ) -> Decoded {
        if self.lines.len() > 1 && self.lines.first() == Some(&self.title) {
            self.lines.remove(0);
        }
        let importance = self.importance.unwrap_or(options.default_importance);
        let mut tree = Map::new();
        tree.insert("title".into(), self.title.into());
        tree.insert("message".into(), self.lines.join("\n\n").into());
        tree.insert("link".into(), self.link.into());
        tree.insert("payload".into(), payload);
        let context = Context::new(
            options,
            source,
            (event, action, importance),
            tree,
            Map::new(),
        );
        Decoded {
            source,
            event: event.to_owned(),
            action: action.map(str::to_owned),
            delivery_id: delivery_header(headers, &[IDEMPOTENCY_HEADER]),
            contexts: vec![context],
        }
    }
}

/// Text with each line's trailing white space removed, runs of blank lines made one, and blank
/// lines at either end dropped.
pub(super) fn tidy(text: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for line in text.lines().map(str::trim_end) {
        if line.trim().is_empty() && out.last().is_none_or(|last| last.is_empty()) {
            continue;
        }
        out.push(if line.trim().is_empty() { "" } else { line });
    }
    while out.last().is_some_and(|last| last.is_empty()) {
        out.pop();
    }
    out.join("\n")
}

/// A string field of a JSON object; empty when absent or not a string.
pub(super) fn text<'a>(object: &'a Value, key: &str) -> &'a str {
    object.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// The items of an array field; none when absent or not an array.
pub(super) fn items<'a>(object: &'a Value, key: &str) -> &'a [Value] {
    object
        .get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// True for a colour that reads as an alarm: the words `danger`, `attention` or `red`, or an
/// RGB colour (`#rrggbb`, `rrggbb`, `#rgb`, or a number as Discord sends it) whose red channel is
/// at least 128 and at least twice each of the others. Slack's `danger`, Alertmanager's and
/// Grafana's firing colours (`#992D22`, `#D63232`, Teams' `8C1A1A`) count; orange, green, blue
/// and grey do not.
pub(super) fn is_alarm_colour(colour: &Value) -> bool {
    let rgb = match colour {
        Value::Number(number) => number
            .as_u64()
            .filter(|value| *value <= 0xFF_FFFF)
            .map(|value| ((value >> 16) as u8, (value >> 8) as u8, value as u8)),
        Value::String(name) => {
            let name = name.trim().to_ascii_lowercase();
            if ["danger", "attention", "red"].contains(&name.as_str()) {
                return true;
            }
            hex_rgb(name.strip_prefix('#').unwrap_or(&name))
        }
        _ => None,
    };
    rgb.is_some_and(|(red, green, blue)| {
        red >= 0x80
            && u16::from(green) * 2 <= u16::from(red)
            && u16::from(blue) * 2 <= u16::from(red)
    })
}

/// `rrggbb` or `rgb` in hex.
fn hex_rgb(hex: &str) -> Option<(u8, u8, u8)> {
    let channel = |text: &str| u8::from_str_radix(text, 16).ok();
    match hex.len() {
        6 if hex.is_ascii() => Some((
            channel(&hex[0..2])?,
            channel(&hex[2..4])?,
            channel(&hex[4..6])?,
        )),
        3 if hex.is_ascii() => {
            let short = |index: usize| channel(&hex[index..=index]).map(|value| value * 17);
            Some((short(0)?, short(1)?, short(2)?))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn alarm_colours_are_the_reds() {
        for red in [
            json!("danger"),
            json!("#D63232"),
            json!("8C1A1A"),
            json!("#f00"),
            json!(10_038_562),
            json!("Attention"),
        ] {
            assert!(is_alarm_colour(&red), "{red}");
        }
        for other in [
            json!("good"),
            json!("warning"),
            json!("#FF8000"),
            json!("#36a64f"),
            json!("0076D7"),
            json!(3_066_993),
            json!("#zzzzzz"),
            json!(null),
            json!(-1),
        ] {
            assert!(!is_alarm_colour(&other), "{other}");
        }
    }

    #[test]
    fn tidy_collapses_blank_lines_and_trims_the_ends() {
        assert_eq!(
            tidy("\n\nAlerts Firing:  \n\n\n - a\n\n - b\n\n\n"),
            "Alerts Firing:\n\n - a\n\n - b"
        );
        assert_eq!(tidy(" \n\t\n"), "");
    }

    #[test]
    fn fields_read_as_name_and_value() {
        let mut notice = Notice::default();
        notice.push_field("Status", " Not started ");
        notice.push_field("", "only a value");
        notice.push_field("Notes", "line 1\nline 2");
        notice.push_field("", " ");
        assert_eq!(
            notice.lines,
            [
                "Status: Not started",
                "only a value",
                "Notes:\nline 1\nline 2"
            ]
        );
    }

    #[test]
    fn the_first_absolute_link_and_title_win_and_alarms_only_raise() {
        let mut notice = Notice::default();
        notice.offer_link("/relative");
        notice.offer_link("https://a.example");
        notice.offer_link("https://b.example");
        notice.offer_title(" ");
        notice.offer_title("First");
        notice.offer_title("Second");
        assert_eq!(
            (notice.link.as_str(), notice.title.as_str()),
            ("https://a.example", "First")
        );
        notice.importance = Importance::new(5).ok();
        notice.raise_alarm();
        assert_eq!(notice.importance.map(Importance::get), Some(5));
        notice.importance = None;
        notice.raise_alarm();
        assert_eq!(
            notice.importance.map(Importance::get),
            Some(ALARM_IMPORTANCE)
        );
    }
}
