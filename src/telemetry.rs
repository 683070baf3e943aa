//! Logging with tracing: a `RUST_LOG` filter (default `info`), human lines or one JSON object
//! per line. Human lines are coloured only when standard error is a terminal, so a log written
//! to a file or a pipe holds no escape sequences.
//!
//! Lines are written by a thread of their own (`tracing-appender`'s non-blocking writer, never
//! dropping a line: a full queue makes the logger wait): a request's thread only formats its line,
//! and the writer puts whatever lines have gathered on standard error in one write. At thousands
//! of webhooks a second that is a write per batch instead of two locked writes per webhook.

use std::io::{BufWriter, IsTerminal};

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Lines the writer's queue holds before a logger waits for it.
const QUEUED_LINES: usize = 16_384;

/// Keeps the log writer running; dropping it writes out the lines still queued. Hold it until the
/// process ends.
#[must_use = "dropping the guard stops the log writer"]
pub struct LogGuard {
    _writer: Option<WorkerGuard>,
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
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(QUEUED_LINES)
        .thread_name("log-writer")
        .finish(BufWriter::new(std::io::stderr()));
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
