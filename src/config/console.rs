//! The console's settings (`crate::console`): how long a sign-in lasts, and which peers are
//! proxies whose `X-Forwarded-Proto` and `X-Forwarded-For` headers are believed.

use std::net::IpAddr;
use std::time::Duration;

use serde::Deserialize;

use super::read::{Problems, Vars as Variables, parse_duration};

const PREFIX: &str = "PUSHJET_BRIDGE_";

/// The shortest and longest a console session may be set to last.
const SESSION_RANGE: std::ops::RangeInclusive<Duration> =
    Duration::from_secs(60)..=Duration::from_secs(30 * 24 * 60 * 60);

/// How the console (`/console/`) signs people in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSettings {
    /// How long a sign-in lasts (`PUSHJET_BRIDGE_CONSOLE_SESSION`, default `12h`, 1 minute to
    /// 30 days).
    pub session: Duration,
    /// The reverse proxies in front of the service (`PUSHJET_BRIDGE_TRUSTED_PROXIES`,
    /// comma-separated IP addresses; none by default). Only a request whose peer is one of them
    /// is believed when it says `X-Forwarded-Proto: https` (the session cookie is then `Secure`)
    /// or names the client in `X-Forwarded-For` (the address failed sign-ins are counted by).
    pub trusted_proxies: Vec<IpAddr>,
}

impl Default for ConsoleSettings {
    fn default() -> Self {
        Self {
            session: Duration::from_secs(12 * 60 * 60),
            trusted_proxies: Vec::new(),
        }
    }
}

#[derive(Deserialize)]
struct Vars {
    console_session: Option<String>,
    trusted_proxies: Option<String>,
}

impl ConsoleSettings {
    /// Reads the settings; unset or blank variables take their default, and each problem is
    /// recorded by its variable.
    pub(super) fn read(vars: &Variables, problems: &mut Problems) -> Self {
        let defaults = Self::default();
        let Some(raw) = vars.section::<Vars>(PREFIX, problems) else {
            return defaults;
        };
        let session = problems.parse(
            &format!("{PREFIX}CONSOLE_SESSION"),
            raw.console_session.as_deref(),
            defaults.session,
            |raw| {
                let session = parse_duration(raw)?;
                if SESSION_RANGE.contains(&session) {
                    Ok(session)
                } else {
                    Err("must be from 1m to 30days".to_owned())
                }
            },
        );
        let trusted_proxies = problems.parse(
            &format!("{PREFIX}TRUSTED_PROXIES"),
            raw.trusted_proxies.as_deref(),
            defaults.trusted_proxies,
            parse_addresses,
        );
        Self {
            session,
            trusted_proxies,
        }
    }
}

/// A comma-separated list of IP addresses (white space and empty entries ignored).
fn parse_addresses(raw: &str) -> Result<Vec<IpAddr>, String> {
    raw.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            entry.parse::<IpAddr>().map_err(|_| {
                format!(
                    "`{}` is not an IP address (list the proxies' addresses, comma-separated)",
                    entry.chars().take(60).collect::<String>()
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(pairs: &[(&str, &str)]) -> (ConsoleSettings, Vec<String>) {
        let list: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let vars = Variables::with_env_file(&list).expect("no env file");
        let mut problems = Problems::default();
        let settings = ConsoleSettings::read(&vars, &mut problems);
        (settings, problems.into_vec())
    }

    #[test]
    fn defaults_are_twelve_hours_and_no_proxy() {
        let (settings, problems) = read(&[]);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(settings, ConsoleSettings::default());
        assert_eq!(settings.session, Duration::from_secs(43_200));
    }

    #[test]
    fn session_and_proxies_are_read_and_bad_values_named() {
        let (settings, problems) = read(&[
            ("PUSHJET_BRIDGE_CONSOLE_SESSION", "30m"),
            ("PUSHJET_BRIDGE_TRUSTED_PROXIES", "10.0.0.1, ::1,"),
        ]);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(settings.session, Duration::from_secs(1800));
        assert_eq!(settings.trusted_proxies.len(), 2);

        let (_, problems) = read(&[
            ("PUSHJET_BRIDGE_CONSOLE_SESSION", "5s"),
            ("PUSHJET_BRIDGE_TRUSTED_PROXIES", "10.0.0.0/8"),
        ]);
        let text = problems.join("\n");
        assert!(text.contains("PUSHJET_BRIDGE_CONSOLE_SESSION"), "{text}");
        assert!(text.contains("`10.0.0.0/8` is not an IP address"), "{text}");
    }
}
