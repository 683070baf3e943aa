//! The live streams' settings (`crate::streams`): the per-device cache that serves ntfy's
//! `since` and its memory budget, the limits on open streams (by connection and by device UUID),
//! the per-stream buffer and the keepalive interval.

use std::time::Duration;

use serde::Deserialize;

use super::HttpLimits;
use super::read::{Problems, Vars as Variables, parse_count, parse_duration};

const PREFIX: &str = "PUSHJET_BRIDGE_";

/// How live streams behave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamSettings {
    /// How long each device's recent messages are kept for ntfy's `since`
    /// (`PUSHJET_BRIDGE_STREAM_CACHE`, default `12h`, ntfy's own default; `0s` keeps none).
    pub cache_for: Duration,
    /// The most bytes the cache holds over all devices, each message counted once by its size
    /// whatever the devices it is for; beyond it the oldest messages go first
    /// (`PUSHJET_BRIDGE_STREAM_CACHE_MAX_BYTES`, default 8 MiB: some 8,000 alert notifications;
    /// the whole process stays within a few tens of MiB under load).
    pub cache_max_bytes: usize,
    /// The most stream subscriptions open at once, a stream counting once per device UUID it
    /// names (`PUSHJET_BRIDGE_MAX_STREAMS`, default 10,000, and never more than three quarters of
    /// `PUSHJET_BRIDGE_MAX_CONNECTIONS`, so that webhooks and health checks always find a
    /// connection); beyond it HTTP streams get 429 and WebSockets are refused.
    pub max_streams: usize,
    /// The most device UUIDs one stream may name (`PUSHJET_BRIDGE_MAX_TOPICS_PER_STREAM`,
    /// default 32); more get 400.
    pub max_topics_per_stream: usize,
    /// The most streams open at once for one device (`PUSHJET_BRIDGE_MAX_STREAMS_PER_DEVICE`,
    /// default 50).
    pub max_streams_per_device: usize,
    /// Messages waiting for one slow stream before it is disconnected
    /// (`PUSHJET_BRIDGE_STREAM_BUFFER`, default 256).
    pub buffer: usize,
    /// How long a stream may stay silent before a keepalive (an ntfy `keepalive` event, a
    /// WebSocket ping) is sent (`PUSHJET_BRIDGE_STREAM_KEEPALIVE`, default `45s`, ntfy's).
    pub keepalive: Duration,
}

impl Default for StreamSettings {
    fn default() -> Self {
        Self {
            cache_for: Duration::from_secs(12 * 60 * 60),
            cache_max_bytes: 8 * 1024 * 1024,
            max_streams: 10_000,
            max_topics_per_stream: 32,
            max_streams_per_device: 50,
            buffer: 256,
            keepalive: Duration::from_secs(45),
        }
    }
}

#[derive(Deserialize)]
struct Vars {
    stream_cache: Option<String>,
    stream_cache_max_bytes: Option<String>,
    max_streams: Option<String>,
    max_topics_per_stream: Option<String>,
    max_streams_per_device: Option<String>,
    stream_buffer: Option<String>,
    stream_keepalive: Option<String>,
}

impl StreamSettings {
    /// Reads the settings; unset or blank variables take their default, and each problem is
    /// recorded by its variable. `http` caps the streams (see [`HttpLimits::stream_connections`]).
    pub(super) fn read(vars: &Variables, http: &HttpLimits, problems: &mut Problems) -> Self {
        let defaults = Self::default();
        let Some(raw) = vars.section::<Vars>(PREFIX, problems) else {
            return defaults;
        };
        let name = |key: &str| format!("{PREFIX}{key}");
        let cache_for = problems.parse(
            &name("STREAM_CACHE"),
            raw.stream_cache.as_deref(),
            defaults.cache_for,
            parse_duration,
        );
        let keepalive = problems.parse(
            &name("STREAM_KEEPALIVE"),
            raw.stream_keepalive.as_deref(),
            defaults.keepalive,
            parse_duration,
        );
        if keepalive < Duration::from_millis(100) {
            problems.push(format!("{PREFIX}STREAM_KEEPALIVE must be at least 100ms"));
        }
        let cache_max_bytes = problems.parse(
            &name("STREAM_CACHE_MAX_BYTES"),
            raw.stream_cache_max_bytes.as_deref(),
            defaults.cache_max_bytes,
            |raw| parse_count(raw, 0..=usize::MAX),
        );
        let mut count = |key: &str, raw: Option<String>, default: usize| {
            problems.parse(&name(key), raw.as_deref(), default, |raw| {
                parse_count(raw, 1..=1_000_000)
            })
        };
        Self {
            cache_for,
            cache_max_bytes,
            max_streams: count("MAX_STREAMS", raw.max_streams, defaults.max_streams)
                .min(http.stream_connections()),
            max_topics_per_stream: count(
                "MAX_TOPICS_PER_STREAM",
                raw.max_topics_per_stream,
                defaults.max_topics_per_stream,
            ),
            max_streams_per_device: count(
                "MAX_STREAMS_PER_DEVICE",
                raw.max_streams_per_device,
                defaults.max_streams_per_device,
            ),
            buffer: count("STREAM_BUFFER", raw.stream_buffer, defaults.buffer),
            keepalive,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(vars: &[(&str, &str)]) -> (StreamSettings, Vec<String>) {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect();
        let mut problems = Problems::default();
        let settings = StreamSettings::read(
            &Variables::with_env_file(&vars).unwrap(),
            &HttpLimits::default(),
            &mut problems,
        );
        (settings, problems.into_vec())
    }

    #[test]
    fn defaults_follow_ntfy_and_every_variable_is_read() {
        let defaults = StreamSettings {
            max_streams: HttpLimits::default().stream_connections(),
            ..StreamSettings::default()
        };
        assert_eq!(read(&[]), (defaults, Vec::new()));
        let (settings, problems) = read(&[
            ("PUSHJET_BRIDGE_STREAM_CACHE", "30m"),
            ("PUSHJET_BRIDGE_STREAM_CACHE_MAX_BYTES", "1000"),
            ("PUSHJET_BRIDGE_MAX_STREAMS", "7"),
            ("PUSHJET_BRIDGE_MAX_TOPICS_PER_STREAM", "4"),
            ("PUSHJET_BRIDGE_MAX_STREAMS_PER_DEVICE", "3"),
            ("PUSHJET_BRIDGE_STREAM_BUFFER", "5"),
            ("PUSHJET_BRIDGE_STREAM_KEEPALIVE", "2s"),
        ]);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            settings,
            StreamSettings {
                cache_for: Duration::from_secs(1800),
                cache_max_bytes: 1000,
                max_streams: 7,
                max_topics_per_stream: 4,
                max_streams_per_device: 3,
                buffer: 5,
                keepalive: Duration::from_secs(2),
            }
        );
    }

    #[test]
    fn streams_leave_a_quarter_of_the_connections_to_everything_else() {
        let (settings, _) = read(&[("PUSHJET_BRIDGE_MAX_STREAMS", "1000000")]);
        assert_eq!(settings.max_streams, 3072);
        assert!(settings.max_streams < HttpLimits::default().max_connections);
    }

    #[test]
    fn bad_values_are_named() {
        let (_, problems) = read(&[
            ("PUSHJET_BRIDGE_STREAM_CACHE", "soon"),
            ("PUSHJET_BRIDGE_MAX_STREAMS", "0"),
            ("PUSHJET_BRIDGE_STREAM_KEEPALIVE", "1ms"),
        ]);
        let text = problems.join("\n");
        assert!(
            text.contains("PUSHJET_BRIDGE_STREAM_CACHE: `soon`"),
            "{text}"
        );
        assert!(text.contains("PUSHJET_BRIDGE_MAX_STREAMS: `0`"), "{text}");
        assert!(
            text.contains("PUSHJET_BRIDGE_STREAM_KEEPALIVE must be at least"),
            "{text}"
        );
    }
}
