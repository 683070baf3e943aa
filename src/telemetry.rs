//! Logging with tracing: a `RUST_LOG` filter (default `info`), human lines or one JSON object
//! per line. Human lines are coloured only when standard error is a terminal, so a log written
//! to a file or a pipe holds no escape sequences.
//!
//! Lines are written by a thread of their own ([`batched`], never dropping a line: a logger waits
//! while too much is unwritten): a request's thread only formats its line and appends it, and
//! the writer puts what gathered in up to 10 ms on standard error in one write. At thousands of
//! webhooks a second that is about a hundred writes (and wake-ups of the writer) a second instead
//! of two per webhook.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

mod batched;

use batched::{Batched, BatchedGuard};

/// Keeps the log writer running; dropping it writes out the lines still queued. Hold it until the
/// process ends.
#[must_use = "dropping the guard stops the log writer"]
pub struct LogGuard {
    _writer: Option<BatchedGuard>,
}

impl std::fmt::Debug for LogGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogGuard").finish_non_exhaustive()
    }
}

/// Installs the global subscriber, writing to standard error. Calling it twice is harmless (the
/// second guard holds nothing).
pub fn init(format: LogFormat) -> LogGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::stderr().is_terminal();
    let (writer, guard) = Batched::start(Box::new(std::io::stderr()));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi);
    let installed = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    LogGuard {
        _writer: installed.is_ok().then_some(guard),
    }
}

/// Text from a request made safe for a log line: every control character (line breaks, carriage
/// returns, NUL, escape sequences) is written escaped (`\n`, `\r`, `\0`, `\u{1b}`), so a request
/// cannot end a log line and forge the next one.
pub fn escape_controls(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for character in text.chars() {
        if character.is_control() {
            escaped.extend(character.escape_debug());
        } else {
            escaped.push(character);
        }
    }
    std::borrow::Cow::Owned(escaped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_other_text_kept() {
        assert_eq!(
            escape_controls("a\nb\r\0c\u{1b}[2m"),
            "a\\nb\\r\\0c\\u{1b}[2m"
        );
        assert_eq!(escape_controls("plain ü \"quoted\""), "plain ü \"quoted\"");
    }
}
