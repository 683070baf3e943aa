//! The digest the held notifications of a route become: "N more from <route>", one line per held
//! notification's title (newest last), cut to the message limit with "… and K more", the highest
//! importance among them and the link of the one that has it.

use super::state::HeldBatch;
use crate::pushjet::{Importance, MESSAGE_MAX_BYTES, MessageText, NewMessage, Title};
use crate::routes::RouteName;

/// The digest of `held` for `route`, its message at most `max_message_bytes`.
pub fn digest(route: &RouteName, held: &HeldBatch, max_message_bytes: usize) -> NewMessage {
    let limit = max_message_bytes.clamp(64, MESSAGE_MAX_BYTES);
    let mut text = String::new();
    let mut shown: u64 = 0;
    for title in &held.titles {
        let line = if title.is_empty() { "(untitled)" } else { title };
        let left_after = held.count.saturating_sub(shown + 1);
        let with_line = text.len() + usize::from(!text.is_empty()) + line.len();
        let tail = if left_after > 0 {
            1 + more_line(left_after).len()
        } else {
            0
        };
        if with_line + tail > limit {
            break;
        }
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(line);
        shown += 1;
    }
    let left = held.count.saturating_sub(shown);
    if left > 0 {
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(&more_line(left));
    }
    let message = MessageText::new(text)
        .or_else(|_| MessageText::new(more_line(held.count)))
        .unwrap_or_else(|_| unreachable_text());
    NewMessage {
        message,
        title: Title::new(&format!("{} more from {route}", held.count)),
        link: held.link(),
        importance: Importance::new(held.importance).unwrap_or_default(),
    }
}

fn more_line(count: u64) -> String {
    format!("… and {count} more")
}

/// "… and N more" is never empty nor too long; this is its stand-in for the type system.
fn unreachable_text() -> MessageText {
    MessageText::new("…").unwrap_or_else(|_| unreachable!("a one-character message is valid"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(titles: &[&str], count: u64) -> HeldBatch {
        HeldBatch {
            release_at: 0,
            count,
            titles: titles.iter().map(|title| (*title).to_owned()).collect(),
            importance: 4,
            link: Some("https://ci.example/run/7".into()),
        }
    }

    fn route() -> RouteName {
        RouteName::parse("ci").expect("a route name")
    }

    #[test]
    fn a_digest_names_every_held_notification_oldest_first() {
        let digest = digest(&route(), &batch(&["one", "two", "three"], 3), 4096);
        assert_eq!(digest.title.as_str(), "3 more from ci");
        assert_eq!(digest.message.as_str(), "one\ntwo\nthree");
        assert_eq!(digest.importance.get(), 4);
        assert_eq!(digest.link.map(|link| link.as_str().to_owned()).as_deref(), Some("https://ci.example/run/7"));
    }

    #[test]
    fn a_long_digest_is_cut_to_the_limit_with_how_many_more() {
        let titles: Vec<String> = (1..=45).map(|n| format!("build {n} failed on main")).collect();
        let titles: Vec<&str> = titles.iter().map(String::as_str).collect();
        let digest = digest(&route(), &batch(&titles, 45), 200);
        let text = digest.message.as_str();
        assert!(text.len() <= 200, "{} bytes", text.len());
        assert!(text.starts_with("build 1 failed on main\n"));
        let shown = text.lines().count() - 1;
        assert!(text.ends_with(&format!("… and {} more", 45 - shown)), "{text}");
    }

    #[test]
    fn titles_not_kept_are_counted() {
        let digest = digest(&route(), &batch(&["a", "b"], 250), 4096);
        assert_eq!(digest.title.as_str(), "250 more from ci");
        assert_eq!(digest.message.as_str(), "a\nb\n… and 248 more");
    }
}
