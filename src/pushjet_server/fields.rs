//! The server-side fields that the shared domain types do not cover: a service's name and icon and
//! a message's link. Each is whitespace-stripped like the real server does, then held to the size
//! of the real server's database column (where the real server would fail with a 500).

use std::fmt;

/// The most characters a service name may have (the real server's `VARCHAR(255)`).
pub const NAME_MAX_CHARS: usize = 255;

/// The most bytes an icon URL or a link may have (the real server's `TEXT` columns).
pub const TEXT_COLUMN_MAX_BYTES: usize = 65_535;

/// A field over its size limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} is {length} {unit} long; at most {limit} {unit} are allowed")]
pub struct TooLong {
    /// The form field's name.
    pub field: &'static str,
    /// Its length, in `unit`s.
    pub length: usize,
    /// The limit, in `unit`s.
    pub limit: usize,
    /// `characters` or `bytes`.
    pub unit: &'static str,
}

/// A service's display name: stripped, at most 255 characters. It may be empty, because
/// `PATCH /service` with an empty `name=` blanks the name on the real server; `POST /service`
/// refuses an empty one before it gets here.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServiceName(String);

impl ServiceName {
    /// Strips white space and checks the length.
    pub fn new(raw: &str) -> Result<Self, TooLong> {
        let name = raw.trim();
        let length = name.chars().count();
        if length > NAME_MAX_CHARS {
            return Err(TooLong {
                field: "name",
                length,
                limit: NAME_MAX_CHARS,
                unit: "characters",
            });
        }
        Ok(Self(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True for an empty name.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A service's icon URL: stripped, at most 65,535 bytes, not checked as a URL; empty for none.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Icon(String);

impl Icon {
    /// Strips white space and checks the length.
    pub fn new(raw: &str) -> Result<Self, TooLong> {
        stripped_text("icon", raw).map(Self)
    }

    /// The icon URL, `""` when none.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A message's link: stripped, at most 65,535 bytes, not checked as a URL; empty for none.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Link(String);

impl Link {
    /// Strips white space and checks the length.
    pub fn new(raw: &str) -> Result<Self, TooLong> {
        stripped_text("link", raw).map(Self)
    }

    /// The link, `""` when none.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn stripped_text(field: &'static str, raw: &str) -> Result<String, TooLong> {
    let text = raw.trim();
    if text.len() > TEXT_COLUMN_MAX_BYTES {
        return Err(TooLong {
            field,
            length: text.len(),
            limit: TEXT_COLUMN_MAX_BYTES,
            unit: "bytes",
        });
    }
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_is_stripped_and_may_be_empty() {
        assert_eq!(
            ServiceName::new("  Build bot \n").unwrap().as_str(),
            "Build bot"
        );
        assert!(ServiceName::new("   ").unwrap().is_empty());
    }

    #[test]
    fn name_over_255_characters_is_refused_counting_characters_not_bytes() {
        assert!(ServiceName::new(&"é".repeat(255)).is_ok());
        let error = ServiceName::new(&"a".repeat(256)).unwrap_err();
        assert_eq!(
            error.to_string(),
            "name is 256 characters long; at most 255 characters are allowed"
        );
    }

    #[test]
    fn icon_and_link_are_stripped_and_limited_to_65535_bytes() {
        assert_eq!(
            Icon::new(" http://i/x.png ").unwrap().as_str(),
            "http://i/x.png"
        );
        assert_eq!(Link::new("\thttp://l/\n").unwrap().as_str(), "http://l/");
        assert!(Link::new(&"a".repeat(65_535)).is_ok());
        assert_eq!(Link::new(&"a".repeat(65_536)).unwrap_err().field, "link");
        assert_eq!(Icon::new(&"a".repeat(65_536)).unwrap_err().field, "icon");
    }
}
