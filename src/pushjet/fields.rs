//! The content fields of a Pushjet message, each parsed once: importance, title and message text.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a value is not a valid message field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    /// Importance outside 1..=5.
    #[error("importance must be a whole number from 1 to 5")]
    Importance,
    /// An empty message.
    #[error("the message is empty")]
    EmptyMessage,
    /// A message over the protocol's byte limit.
    #[error("the message is {0} bytes long; Pushjet takes at most 65535 bytes")]
    MessageTooLong(usize),
    /// A link that is not an absolute http(s) URL of at most 65,535 bytes.
    #[error("a link must be an absolute http:// or https:// URL of at most 65535 bytes")]
    Link,
}

/// How urgent a message is, 1 (least) to 5 (most); the wire calls it `level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Importance(u8);

impl Importance {
    /// The protocol's default, 3.
    pub const DEFAULT: Importance = Importance(3);
    /// The lowest importance, 1.
    pub const MIN: Importance = Importance(1);
    /// The highest importance, 5.
    pub const MAX: Importance = Importance(5);

    /// Accepts 1..=5.
    pub fn new(value: u8) -> Result<Self, FieldError> {
        if (1..=5).contains(&value) {
            Ok(Self(value))
        } else {
            Err(FieldError::Importance)
        }
    }

    /// Parses a whole number 1..=5, surrounding white space allowed.
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        raw.trim()
            .parse::<u8>()
            .map_err(|_| FieldError::Importance)
            .and_then(Self::new)
    }

    /// Reads a `level` form field the way the real server does: only its first character counts;
    /// `1`..`5` is that level, anything else (absent, empty, `0`, `9`, `-1`, letters) is 3.
    pub fn from_level_field(raw: Option<&str>) -> Self {
        match raw.and_then(|text| text.bytes().next()) {
            Some(digit @ b'1'..=b'5') => Self(digit - b'0'),
            _ => Self::DEFAULT,
        }
    }

    /// The number 1..=5.
    pub fn get(self) -> u8 {
        self.0
    }
}

impl Default for Importance {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl fmt::Display for Importance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl Serialize for Importance {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u8(self.0)
    }
}

impl<'de> Deserialize<'de> for Importance {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = u8::deserialize(deserializer)?;
        Self::new(value).map_err(serde::de::Error::custom)
    }
}

/// The most characters a title keeps.
pub const TITLE_MAX_CHARS: usize = 255;

/// A message title: trimmed, then cut to at most 255 characters on a character boundary, exactly
/// as the server stores it. May be empty.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(transparent)]
pub struct Title(String);

impl Title {
    /// Trims and truncates; never fails.
    pub fn new(raw: &str) -> Self {
        let trimmed = raw.trim();
        let cut = trimmed
            .char_indices()
            .nth(TITLE_MAX_CHARS)
            .map_or(trimmed, |(end, _)| &trimmed[..end]);
        Self(cut.to_owned())
    }

    /// The title text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True when there is no title.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'de> Deserialize<'de> for Title {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Self::new(&String::deserialize(deserializer)?))
    }
}

/// The most bytes a message may have (the server's TEXT column).
pub const MESSAGE_MAX_BYTES: usize = 65_535;

/// A message body: non-empty and at most 65,535 bytes of UTF-8. Kept as given (the server does
/// not strip it either).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct MessageText(String);

impl MessageText {
    /// Accepts a non-empty text of at most [`MESSAGE_MAX_BYTES`] bytes.
    pub fn new(raw: impl Into<String>) -> Result<Self, FieldError> {
        let text = raw.into();
        if text.is_empty() {
            Err(FieldError::EmptyMessage)
        } else if text.len() > MESSAGE_MAX_BYTES {
            Err(FieldError::MessageTooLong(text.len()))
        } else {
            Ok(Self(text))
        }
    }

    /// The message text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for MessageText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Self::new(String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

/// A message link: an absolute `http://` or `https://` URL of at most 65,535 bytes, kept as
/// written (white space around it trimmed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Link(String);

impl Link {
    /// Parses a link; empty text is not a link (use `Option<Link>`).
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let trimmed = raw.trim();
        let absolute_http = url::Url::parse(trimmed)
            .map(|url| matches!(url.scheme(), "http" | "https") && url.has_host())
            .unwrap_or(false);
        if absolute_http && trimmed.len() <= MESSAGE_MAX_BYTES {
            Ok(Self(trimmed.to_owned()))
        } else {
            Err(FieldError::Link)
        }
    }

    /// The link text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Link {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Self::parse(&String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_field_reads_only_the_first_character() {
        let level = |raw| Importance::from_level_field(Some(raw)).get();
        assert_eq!(level("10"), 1);
        assert_eq!(level("42"), 4);
        assert_eq!(level("2.9"), 2);
        assert_eq!(level("5abc"), 5);
        assert_eq!(level("9"), 3);
        assert_eq!(level("0"), 3);
        assert_eq!(level("-1"), 3);
        assert_eq!(level(" 4"), 3);
        assert_eq!(level(""), 3);
        assert_eq!(Importance::from_level_field(None).get(), 3);
    }

    #[test]
    fn importance_accepts_one_to_five_only() {
        assert_eq!(Importance::parse(" 5 ").map(Importance::get), Ok(5));
        assert_eq!(Importance::parse("0"), Err(FieldError::Importance));
        assert_eq!(Importance::parse("6"), Err(FieldError::Importance));
        assert_eq!(Importance::parse("high"), Err(FieldError::Importance));
    }

    #[test]
    fn title_is_trimmed_and_cut_at_255_characters() {
        assert_eq!(Title::new("  hello \n").as_str(), "hello");
        let long = "é".repeat(300);
        assert_eq!(Title::new(&long).as_str().chars().count(), 255);
        let emoji = "🔥".repeat(256);
        assert_eq!(Title::new(&emoji).as_str(), "🔥".repeat(255));
    }

    #[test]
    fn message_must_be_non_empty_and_within_65535_bytes() {
        assert_eq!(MessageText::new(""), Err(FieldError::EmptyMessage));
        assert!(MessageText::new("   ").is_ok());
        assert!(MessageText::new("a".repeat(65_535)).is_ok());
        assert_eq!(
            MessageText::new("a".repeat(65_536)),
            Err(FieldError::MessageTooLong(65_536))
        );
    }

    #[test]
    fn link_must_be_absolute_http_or_https() {
        assert_eq!(
            Link::parse(" https://github.com/o/r/compare/a...b ").map(|l| l.as_str().to_owned()),
            Ok("https://github.com/o/r/compare/a...b".to_owned())
        );
        assert!(Link::parse("http://127.0.0.1:9093/#/alerts").is_ok());
        assert_eq!(Link::parse("/relative/path"), Err(FieldError::Link));
        assert_eq!(Link::parse("javascript:alert(1)"), Err(FieldError::Link));
        assert_eq!(Link::parse("ftp://example.com/file"), Err(FieldError::Link));
        assert_eq!(Link::parse(""), Err(FieldError::Link));
    }
}
