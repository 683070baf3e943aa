//! Settings from the environment, read once at start-up with envy into an immutable value.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;
use url::Url;

use crate::pushjet::Api;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (the default).
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

/// Everything the service needs to start, validated.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where to listen (`PUSHJET_BRIDGE_LISTEN`, default `0.0.0.0:8080`).
    pub listen: SocketAddr,
    /// Where state is kept (`PUSHJET_BRIDGE_DATA_DIR`, default `./data`).
    pub data_dir: PathBuf,
    /// Whether the embedded Pushjet API is served at `/pushjet/`
    /// (`PUSHJET_BRIDGE_EMBEDDED_PUSHJET`, default true).
    pub embedded_pushjet: bool,
    /// The Pushjet API to deliver to (`PUSHJET_API_URL`); `None` means the embedded one.
    pub api_url: Option<Url>,
    /// Log format (`PUSHJET_BRIDGE_LOG_FORMAT`).
    pub log_format: LogFormat,
}

/// Why the settings could not be read; lists every problem at once.
#[derive(Debug, thiserror::Error)]
#[error("the configuration has {} problem(s):\n  - {}", .0.len(), .0.join("\n  - "))]
pub struct ConfigError(pub Vec<String>);

#[derive(Deserialize)]
struct GlobalVars {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    embedded_pushjet: Option<String>,
    log_format: Option<String>,
}

#[derive(Deserialize)]
struct PushjetVars {
    api_url: Option<String>,
}

impl Settings {
    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(std::env::vars())
    }

    /// Reads the settings from the given variables (the environment, or a test's own list).
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Result<Self, ConfigError> {
        let vars: Vec<(String, String)> = vars.into_iter().collect();
        let mut problems = Vec::new();
        let global: GlobalVars = envy::prefixed("PUSHJET_BRIDGE_")
            .from_iter(vars.clone())
            .map_err(|error| ConfigError(vec![error.to_string()]))?;
        let pushjet: PushjetVars = envy::prefixed("PUSHJET_")
            .from_iter(vars)
            .map_err(|error| ConfigError(vec![error.to_string()]))?;

        let listen = parse_or(&mut problems, global.listen.as_deref(), "0.0.0.0:8080", |raw| {
            raw.parse::<SocketAddr>()
                .map_err(|_| format!("PUSHJET_BRIDGE_LISTEN: `{raw}` is not an address such as 0.0.0.0:8080"))
        });
        let embedded_pushjet = parse_or(&mut problems, global.embedded_pushjet.as_deref(), "true", |raw| {
            parse_bool(raw).ok_or_else(|| format!("PUSHJET_BRIDGE_EMBEDDED_PUSHJET: `{raw}` is not true or false"))
        });
        let log_format = parse_or(&mut problems, global.log_format.as_deref(), "human", |raw| {
            match raw.trim().to_ascii_lowercase().as_str() {
                "human" => Ok(LogFormat::Human),
                "json" => Ok(LogFormat::Json),
                _ => Err(format!("PUSHJET_BRIDGE_LOG_FORMAT: `{raw}` is not human or json")),
            }
        });
        let api_url = match pushjet.api_url.as_deref().map(str::trim).filter(|raw| !raw.is_empty()) {
            None => None,
            Some(raw) => match Api::new(raw) {
                Ok(api) => Some(api.base_url().clone()),
                Err(error) => {
                    problems.push(format!("PUSHJET_API_URL: {error}"));
                    None
                }
            },
        };
        if api_url.is_none() && embedded_pushjet == Some(false) {
            problems.push(
                "PUSHJET_API_URL is unset and the embedded Pushjet API is off (PUSHJET_BRIDGE_EMBEDDED_PUSHJET=false): \
                 set PUSHJET_API_URL to your Pushjet server"
                    .to_owned(),
            );
        }
        match (listen, embedded_pushjet, log_format) {
            (Some(listen), Some(embedded_pushjet), Some(log_format)) if problems.is_empty() => Ok(Self {
                listen,
                data_dir: global.data_dir.unwrap_or_else(|| PathBuf::from("data")),
                embedded_pushjet,
                api_url,
                log_format,
            }),
            _ => Err(ConfigError(problems)),
        }
    }
}

/// Parses a variable (or its default), recording a problem instead of stopping at the first.
fn parse_or<T>(
    problems: &mut Vec<String>,
    raw: Option<&str>,
    default: &str,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Option<T> {
    match parse(raw.unwrap_or(default)) {
        Ok(value) => Some(value),
        Err(problem) => {
            problems.push(problem);
            None
        }
    }
}

/// `true/false`, `1/0`, `yes/no`, `on/off`, any case.
pub fn parse_bool(raw: &str) -> Option<bool> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn defaults_serve_the_embedded_api_on_8080() {
        let settings = Settings::from_vars(vars(&[])).unwrap();
        assert_eq!(settings.listen.to_string(), "0.0.0.0:8080");
        assert_eq!(settings.data_dir, PathBuf::from("data"));
        assert!(settings.embedded_pushjet);
        assert_eq!(settings.api_url, None);
        assert_eq!(settings.log_format, LogFormat::Human);
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let error = Settings::from_vars(vars(&[
            ("PUSHJET_BRIDGE_LISTEN", "nowhere"),
            ("PUSHJET_BRIDGE_EMBEDDED_PUSHJET", "maybe"),
            ("PUSHJET_BRIDGE_LOG_FORMAT", "xml"),
            ("PUSHJET_API_URL", "ftp://example.com/"),
        ]))
        .unwrap_err();
        assert_eq!(error.0.len(), 4, "{error}");
    }

    #[test]
    fn api_url_gets_a_trailing_slash() {
        let settings = Settings::from_vars(vars(&[("PUSHJET_API_URL", "http://pushjet.local/api")])).unwrap();
        assert_eq!(settings.api_url.unwrap().as_str(), "http://pushjet.local/api/");
    }

    #[test]
    fn embedded_off_needs_an_api_url() {
        let error = Settings::from_vars(vars(&[("PUSHJET_BRIDGE_EMBEDDED_PUSHJET", "false")])).unwrap_err();
        assert!(error.to_string().contains("PUSHJET_API_URL"));
    }
}
