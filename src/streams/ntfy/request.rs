//! What an ntfy subscribe request asks for, read as ntfy reads it: `since`, `poll` and the
//! message filters, each from an `X-` header or the query string (its topics:
//! `super::super::ntfy_topics`).

use std::time::Duration;

use actix_web::HttpRequest;

use super::shown_title;
use crate::streams::hub::{self, Since, StreamMessage};

/// ntfy's message filters: a message is sent only when it matches every filter given.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Filter {
    id: Option<String>,
    message: Option<String>,
    title: Option<String>,
    priorities: Option<Vec<u8>>,
    tags: bool,
}

impl Filter {
    /// `id`, `message` (`m`), `title` (`t`), `priority` (`prio`, `p`: a comma-separated list of
    /// 1–5 or `min`, `low`, `default`, `high`, `max`, `urgent`) and `tags` (`tag`, `ta`: Pushjet
    /// messages have none, so nothing matches), each also as an `X-` header; `None` for a
    /// priority that is none of these.
    pub(super) fn read(request: &HttpRequest) -> Option<Self> {
        let priorities = match param(request, "x-priority", &["priority", "prio", "p"]) {
            Some(raw) if !raw.is_empty() => Some(
                raw.split(',')
                    .map(|one| parse_priority(one.trim()))
                    .collect::<Option<Vec<u8>>>()?,
            ),
            _ => None,
        };
        let given = |value: Option<String>| value.filter(|value| !value.is_empty());
        Some(Self {
            id: given(param(request, "x-id", &["id"])),
            message: given(param(request, "x-message", &["message", "m"])),
            title: given(param(request, "x-title", &["title", "t"])),
            priorities,
            tags: given(param(request, "x-tags", &["tags", "tag", "ta"])).is_some(),
        })
    }

    pub(super) fn matches(&self, message: &StreamMessage) -> bool {
        let view = &message.view;
        self.id.as_ref().is_none_or(|id| *id == message.id)
            && self
                .message
                .as_ref()
                .is_none_or(|text| *text == view.message)
            && self
                .title
                .as_ref()
                .is_none_or(|title| title == shown_title(message))
            && self
                .priorities
                .as_ref()
                .is_none_or(|priorities| priorities.contains(&view.level.get()))
            && !self.tags
    }
}

/// An ntfy priority: `1`–`5` or its name.
fn parse_priority(raw: &str) -> Option<u8> {
    match raw.to_ascii_lowercase().as_str() {
        "1" | "min" => Some(1),
        "2" | "low" => Some(2),
        "3" | "default" => Some(3),
        "4" | "high" => Some(4),
        "5" | "max" | "urgent" => Some(5),
        _ => None,
    }
}

/// A parameter as ntfy reads one: the first header named, then the query parameters.
pub(super) fn param(
    request: &HttpRequest,
    header_name: &str,
    query_names: &[&str],
) -> Option<String> {
    if let Some(value) = request
        .headers()
        .get(header_name)
        .and_then(|value| value.to_str().ok())
    {
        return Some(value.trim().to_owned());
    }
    let query: Vec<(String, String)> =
        url::form_urlencoded::parse(request.query_string().as_bytes())
            .into_owned()
            .collect();
    query_names.iter().find_map(|name| {
        query
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.trim().to_owned())
    })
}

pub(super) fn is_true(value: Option<String>) -> bool {
    value.is_some_and(|value| matches!(value.to_ascii_lowercase().as_str(), "1" | "yes" | "true"))
}

/// ntfy's `since`: empty means nothing when streaming and everything when polling.
pub(super) fn parse_since(raw: Option<&str>, poll: bool) -> Option<Since> {
    let raw = raw.unwrap_or_default();
    match raw {
        "" if poll => Some(Since::All),
        "" | "none" => Some(Since::Nothing),
        "all" => Some(Since::All),
        "latest" => Some(Since::Latest),
        id if id.len() == hub::MESSAGE_ID_LENGTH
            && id.bytes().all(|b| b.is_ascii_alphanumeric())
            && !id.bytes().all(|b| b.is_ascii_digit()) =>
        {
            Some(Since::Id(id.to_owned()))
        }
        time if time.bytes().all(|b| b.is_ascii_digit()) => time.parse().ok().map(Since::Time),
        duration => parse_go_duration(duration).map(|duration| {
            Since::Time(hub::now() - i64::try_from(duration.as_secs()).unwrap_or(i64::MAX / 2))
        }),
    }
}

/// A Go duration such as `10m`, `1h30m`, `45s` or `1.5h`.
fn parse_go_duration(raw: &str) -> Option<Duration> {
    let mut total = 0.0_f64;
    let mut rest = raw;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..number_end].parse().ok()?;
        rest = &rest[number_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += number * seconds;
        rest = &rest[unit_end..];
    }
    Duration::try_from_secs_f64(total).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_every_form_ntfy_documents() {
        assert_eq!(parse_since(None, false), Some(Since::Nothing));
        assert_eq!(parse_since(None, true), Some(Since::All));
        assert_eq!(parse_since(Some("none"), true), Some(Since::Nothing));
        assert_eq!(parse_since(Some("all"), false), Some(Since::All));
        assert_eq!(parse_since(Some("latest"), false), Some(Since::Latest));
        assert_eq!(
            parse_since(Some("hwQ2YpKdmg12"), false),
            Some(Since::Id("hwQ2YpKdmg12".to_owned()))
        );
        assert_eq!(
            parse_since(Some("1635528757"), false),
            Some(Since::Time(1_635_528_757))
        );
        let Some(Since::Time(time)) = parse_since(Some("1h30m"), false) else {
            panic!("a duration is a time");
        };
        assert!((hub::now() - 5400 - time).abs() <= 1);
        assert_eq!(parse_since(Some("soon"), false), None);
        assert_eq!(parse_since(Some("10x"), false), None);
    }

    #[test]
    fn go_durations_add_up() {
        assert_eq!(parse_go_duration("10m"), Some(Duration::from_secs(600)));
        assert_eq!(parse_go_duration("1.5h"), Some(Duration::from_secs(5400)));
        assert_eq!(
            parse_go_duration("1h30m5s"),
            Some(Duration::from_secs(5405))
        );
        assert_eq!(parse_go_duration("5"), None);
        assert_eq!(parse_go_duration(""), None);
    }
}
