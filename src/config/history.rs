//! The delivery history's settings (`crate::history`): how long records are kept, how many bytes
//! they may take, and whether request bodies are kept with them.

use std::time::Duration;

use serde::Deserialize;

use super::read::{Problems, Vars as Variables, parse_bool, parse_count, parse_duration};

const PREFIX: &str = "PUSHJET_BRIDGE_";

/// How the delivery history behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistorySettings {
    /// How long a record is kept (`PUSHJET_BRIDGE_HISTORY`, default `7d`); `None` (`0`) turns
    /// the history off.
    pub keep_for: Option<Duration>,
    /// The most bytes the records may take; the oldest go first (`PUSHJET_BRIDGE_HISTORY_MAX_BYTES`,
    /// default 256 MiB).
    pub max_bytes: u64,
    /// Whether request bodies (redacted, at most 64 KiB) are kept with their records
    /// (`PUSHJET_BRIDGE_HISTORY_BODIES`, default false).
    pub bodies: bool,
}

impl Default for HistorySettings {
    fn default() -> Self {
        Self {
            keep_for: Some(Duration::from_secs(7 * 24 * 60 * 60)),
            max_bytes: 256 * 1024 * 1024,
            bodies: false,
        }
    }
}

impl HistorySettings {
    /// No history at all.
    pub fn off() -> Self {
        Self {
            keep_for: None,
            ..Self::default()
        }
    }

    /// True when records are kept.
    pub fn is_on(&self) -> bool {
        self.keep_for.is_some()
    }
}

#[derive(Deserialize)]
struct Vars {
    history: Option<String>,
    history_max_bytes: Option<String>,
    history_bodies: Option<String>,
}

/// The smallest byte cap accepted: one kept body and a little more.
const MIN_MAX_BYTES: u64 = 1024 * 1024;

impl HistorySettings {
    /// Reads the settings; unset or blank variables take their default, and each problem is
    /// recorded by its variable.
    pub(super) fn read(vars: &Variables, problems: &mut Problems) -> Self {
        let defaults = Self::default();
        let Some(raw) = vars.section::<Vars>(PREFIX, problems) else {
            return defaults;
        };
        let keep_for = problems.parse(
            &format!("{PREFIX}HISTORY"),
            raw.history.as_deref(),
            defaults.keep_for,
            |raw| match raw.trim() {
                "0" => Ok(None),
                other => parse_duration(other).map(|keep| (!keep.is_zero()).then_some(keep)),
            },
        );
        let max_bytes = problems.parse(
            &format!("{PREFIX}HISTORY_MAX_BYTES"),
            raw.history_max_bytes.as_deref(),
            defaults.max_bytes,
            |raw| parse_count(raw, MIN_MAX_BYTES..=u64::MAX),
        );
        let bodies = problems.parse(
            &format!("{PREFIX}HISTORY_BODIES"),
            raw.history_bodies.as_deref(),
            defaults.bodies,
            parse_bool,
        );
        Self {
            keep_for,
            max_bytes,
            bodies,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(pairs: &[(&str, &str)]) -> Result<HistorySettings, Vec<String>> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
            .collect();
        let vars = Variables::with_env_file(&pairs).unwrap();
        let mut problems = Problems::default();
        let settings = HistorySettings::read(&vars, &mut problems);
        problems.into_result(settings)
    }

    #[test]
    fn the_history_is_on_for_a_week_without_bodies_by_default() {
        let settings = read(&[]).unwrap();
        assert_eq!(settings, HistorySettings::default());
        assert_eq!(settings.keep_for, Some(Duration::from_secs(604_800)));
        assert_eq!(settings.max_bytes, 268_435_456);
        assert!(!settings.bodies);
    }

    #[test]
    fn zero_turns_the_history_off_and_bad_values_are_named() {
        assert_eq!(
            read(&[("PUSHJET_BRIDGE_HISTORY", "0")]).unwrap().keep_for,
            None
        );
        assert_eq!(
            read(&[("PUSHJET_BRIDGE_HISTORY", "0s")]).unwrap().keep_for,
            None
        );
        let settings = read(&[
            ("PUSHJET_BRIDGE_HISTORY", "36h"),
            ("PUSHJET_BRIDGE_HISTORY_MAX_BYTES", "2_000_000"),
            ("PUSHJET_BRIDGE_HISTORY_BODIES", "true"),
        ])
        .unwrap();
        assert_eq!(settings.keep_for, Some(Duration::from_secs(36 * 3600)));
        assert_eq!(settings.max_bytes, 2_000_000);
        assert!(settings.bodies);
        let problems = read(&[
            ("PUSHJET_BRIDGE_HISTORY", "a while"),
            ("PUSHJET_BRIDGE_HISTORY_MAX_BYTES", "10"),
            ("PUSHJET_BRIDGE_HISTORY_BODIES", "maybe"),
        ])
        .unwrap_err()
        .join("\n");
        assert_eq!(problems.lines().count(), 3, "{problems}");
        for name in ["HISTORY_MAX_BYTES", "HISTORY_BODIES"] {
            assert!(
                problems.contains(&format!("PUSHJET_BRIDGE_{name}")),
                "{problems}"
            );
        }
    }
}
