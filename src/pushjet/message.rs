//! Messages both ways: the one a service sends, and the one a device reads.

use serde::{Deserialize, Serialize};

use super::wire::MessageView;
use super::{Importance, Link, MessageText, ServiceInfo, Title};

/// A message to send: validated text, title, optional link and importance. Deserializing checks
/// every field as its own type does, so a stored message reads back as valid as it was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewMessage {
    /// The message text (non-empty, at most 65,535 bytes).
    pub message: MessageText,
    /// The title (may be empty).
    #[serde(default)]
    pub title: Title,
    /// The link, if any.
    pub link: Option<Link>,
    /// How urgent it is.
    pub importance: Importance,
}

impl NewMessage {
    /// A message with no title or link and the default importance.
    pub fn text(message: MessageText) -> Self {
        Self {
            message,
            title: Title::default(),
            link: None,
            importance: Importance::DEFAULT,
        }
    }

    /// The form fields of `POST /message` besides the secret: `message`, and `title`, `link`,
    /// `level` when they have a value.
    pub(crate) fn form_fields(&self) -> Vec<(&'static str, String)> {
        let mut fields = vec![("message", self.message.as_str().to_owned())];
        if !self.title.is_empty() {
            fields.push(("title", self.title.as_str().to_owned()));
        }
        if let Some(link) = &self.link {
            fields.push(("link", link.as_str().to_owned()));
        }
        fields.push(("level", self.importance.to_string()));
        fields
    }
}

/// A message as a device received it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    /// The text.
    pub message: String,
    /// The title, `None` when empty.
    pub title: Option<String>,
    /// The link, `None` when empty.
    pub link: Option<String>,
    /// When it was sent, seconds since the Unix epoch.
    pub time_sent: i64,
    /// How urgent it is (the wire's `level`).
    pub importance: Importance,
    /// The service that sent it.
    pub service: ServiceInfo,
}

impl From<MessageView> for Message {
    fn from(view: MessageView) -> Self {
        Self {
            message: view.message,
            title: non_empty(view.title),
            link: non_empty(view.link),
            time_sent: view.timestamp,
            importance: view.level,
            service: view.service.into(),
        }
    }
}

/// `None` for an empty string, as the Python client does.
pub(crate) fn non_empty(text: String) -> Option<String> {
    (!text.is_empty()).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_message_reads_back_as_it_was_written() {
        let message = NewMessage {
            message: MessageText::new("Deployed v1.2").unwrap(),
            title: Title::new("CI"),
            link: Some(Link::parse("https://example.com/run/1").unwrap()),
            importance: Importance::MAX,
        };
        let json = serde_json::to_string(&message).unwrap();
        assert_eq!(serde_json::from_str::<NewMessage>(&json).unwrap(), message);
    }

    #[test]
    fn reading_a_new_message_checks_its_fields() {
        let empty = r#"{"message": "", "title": "", "link": null, "importance": 3}"#;
        assert!(serde_json::from_str::<NewMessage>(empty).is_err());
        let level = r#"{"message": "x", "title": "", "link": null, "importance": 9}"#;
        assert!(serde_json::from_str::<NewMessage>(level).is_err());
        let minimal: NewMessage =
            serde_json::from_str(r#"{"message": "x", "importance": 2}"#).unwrap();
        assert_eq!(minimal.title, Title::default());
        assert_eq!(minimal.link, None);
    }
}
