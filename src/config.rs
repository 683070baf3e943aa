//! Settings from the environment, read once at start-up with envy into an immutable value.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use crate::delivery::DeliverySettings;
use crate::http::admin::AdminToken;
use crate::http::limits::HttpLimits;
use crate::http::metrics::MetricsToken;
use crate::pushjet::{ApiUrl, Importance, MESSAGE_MAX_BYTES, SecretKey};
use crate::pushjet_server::ApiLimits;
use crate::routes::{DeliveryMode, EventFilter, Route, RouteName, Routes};
use crate::sources::{
    AlertGrouping, ResolvedPolicy, SeverityImportance, SourceOptions, SourceSetting,
};
use crate::verify::InboundAuth;

/// The default largest accepted webhook body, 5 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 5 * 1024 * 1024;
/// The default largest message sent, 4,096 bytes.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 4096;
/// The smallest message limit that still leaves room for text and the cut marker.
const MIN_MAX_MESSAGE_BYTES: usize = 64;

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
    pub api_url: Option<ApiUrl>,
    /// Log format (`PUSHJET_BRIDGE_LOG_FORMAT`).
    pub log_format: LogFormat,
    /// User templates that override built-ins (`PUSHJET_BRIDGE_TEMPLATES_DIR`).
    pub templates_dir: Option<PathBuf>,
    /// Largest accepted webhook body (`PUSHJET_BRIDGE_MAX_BODY_BYTES`, default 5 MiB).
    pub max_body_bytes: usize,
    /// Largest message sent; longer ones are cut (`PUSHJET_BRIDGE_MAX_MESSAGE_BYTES`, default 4096).
    pub max_message_bytes: usize,
    /// The configured routes (`PUSHJET_BRIDGE_ROUTES` and `PUSHJET_BRIDGE_ROUTE_<NAME>_*`).
    pub routes: Routes,
    /// The outbox and its delivery workers.
    pub delivery: DeliverySettings,
    /// The bearer token `/metrics` asks for (`PUSHJET_BRIDGE_METRICS_TOKEN[_FILE]`); `None`
    /// leaves the metrics open.
    pub metrics_token: MetricsToken,
    /// The variables these settings came from, for [`Settings::reread`].
    pub source_vars: SourceVars,
    /// The token of the admin endpoints (`PUSHJET_BRIDGE_ADMIN_TOKEN[_FILE]`); `None` turns them off.
    pub admin_token: Option<AdminToken>,
    // Limits against hostile load (README, "Limits").
    /// Connections, request deadline and buffered body bytes.
    pub http_limits: HttpLimits,
    /// The embedded Pushjet API's rate limit, create token and storage caps.
    pub api_limits: ApiLimits,
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
    templates_dir: Option<PathBuf>,
    max_body_bytes: Option<String>,
    max_message_bytes: Option<String>,
    routes: Option<String>,
    metrics_token: Option<String>,
    metrics_token_file: Option<PathBuf>,
}

#[derive(Deserialize)]
struct RouteVars {
    secret: Option<String>,
    secret_file: Option<PathBuf>,
    source: Option<String>,
    template: Option<String>,
    webhook_secret: Option<String>,
    webhook_secret_file: Option<PathBuf>,
    token: Option<String>,
    token_file: Option<PathBuf>,
    basic_auth: Option<String>,
    basic_auth_file: Option<PathBuf>,
    importance: Option<String>,
    events: Option<String>,
    alert_grouping: Option<String>,
    resolved: Option<String>,
    severity_importance: Option<String>,
    delivery: Option<String>,
}

#[derive(Deserialize)]
struct PushjetVars {
    api_url: Option<String>,
}

/// The variables settings were read from, before the env file was added, kept for reloads. Its
/// `Debug` shows only the names: values may be secrets.
#[derive(Clone, Default)]
pub struct SourceVars(Vec<(String, String)>);

impl std::fmt::Debug for SourceVars {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(name, _)| name))
            .finish()
    }
}

impl Settings {
    /// Reads the settings from the process environment (and `PUSHJET_BRIDGE_ENV_FILE`).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(std::env::vars())
    }

    /// Reads the settings again from the variables they were first read from; the env file is
    /// read anew. This is what a reload does.
    pub fn reread(&self) -> Result<Self, ConfigError> {
        Self::from_vars(self.source_vars.0.clone())
    }

    /// Reads the settings from the given variables (the environment, or a test's own list). When
    /// `PUSHJET_BRIDGE_ENV_FILE` names a file, its `KEY=value` lines (dotenv syntax) are added
    /// and win over variables of the same name.
    pub fn from_vars(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let source_vars: Vec<(String, String)> = vars.into_iter().collect();
        let vars = with_env_file(&source_vars)?;
        let mut problems = Vec::new();
        let global: GlobalVars = envy::prefixed("PUSHJET_BRIDGE_")
            .from_iter(vars.clone())
            .map_err(|error| ConfigError(vec![error.to_string()]))?;
        let pushjet: PushjetVars = envy::prefixed("PUSHJET_")
            .from_iter(vars.clone())
            .map_err(|error| ConfigError(vec![error.to_string()]))?;

        let listen = parse_or(
            &mut problems,
            global.listen.as_deref(),
            "0.0.0.0:8080",
            |raw| {
                raw.parse::<SocketAddr>().map_err(|_| {
                    format!("PUSHJET_BRIDGE_LISTEN: `{raw}` is not an address such as 0.0.0.0:8080")
                })
            },
        );
        let embedded_pushjet = parse_or(
            &mut problems,
            global.embedded_pushjet.as_deref(),
            "true",
            |raw| {
                parse_bool(raw).ok_or_else(|| {
                    format!("PUSHJET_BRIDGE_EMBEDDED_PUSHJET: `{raw}` is not true or false")
                })
            },
        );
        let log_format = parse_or(
            &mut problems,
            global.log_format.as_deref(),
            "human",
            |raw| match raw.trim().to_ascii_lowercase().as_str() {
                "human" => Ok(LogFormat::Human),
                "json" => Ok(LogFormat::Json),
                _ => Err(format!(
                    "PUSHJET_BRIDGE_LOG_FORMAT: `{raw}` is not human or json"
                )),
            },
        );
        let api_url = match pushjet
            .api_url
            .as_deref()
            .map(str::trim)
            .filter(|raw| !raw.is_empty())
        {
            None => None,
            Some(raw) => match ApiUrl::parse(raw) {
                Ok(url) => Some(url),
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
        let max_body_bytes = parse_or(
            &mut problems,
            global.max_body_bytes.as_deref(),
            "5242880",
            |raw| {
                raw.trim()
                .parse::<usize>()
                .ok()
                .filter(|bytes| *bytes > 0)
                .ok_or_else(|| format!("PUSHJET_BRIDGE_MAX_BODY_BYTES: `{raw}` is not a positive number of bytes"))
            },
        );
        let max_message_bytes = parse_or(
            &mut problems,
            global.max_message_bytes.as_deref(),
            "4096",
            |raw| {
                raw.trim()
                .parse::<usize>()
                .ok()
                .filter(|bytes| (MIN_MAX_MESSAGE_BYTES..=MESSAGE_MAX_BYTES).contains(bytes))
                .ok_or_else(|| {
                    format!(
                        "PUSHJET_BRIDGE_MAX_MESSAGE_BYTES: `{raw}` is not a number of bytes from {MIN_MAX_MESSAGE_BYTES} to {MESSAGE_MAX_BYTES}"
                    )
                })
            },
        );
        let routes = read_routes(
            &mut problems,
            global.routes.as_deref().unwrap_or_default(),
            &vars,
        );
        let metrics_token = value_or_file(
            "PUSHJET_BRIDGE_",
            "METRICS_TOKEN",
            global.metrics_token.clone(),
            global.metrics_token_file.clone(),
        )
        .map_err(|problem| problems.push(problem))
        .ok()
        .flatten()
        .map(|token| token.trim().to_owned())
        .filter(|token| !token.is_empty())
        .map_or(MetricsToken(None), |token| MetricsToken(Some(token)));
        let delivery = DeliverySettings::from_vars(vars.clone())
            .map_err(|error| problems.extend(error.0))
            .ok();
        let admin_token = AdminToken::from_vars(vars.clone())
            .map_err(|error| problems.push(error.to_string()))
            .ok();
        // Limits against hostile load: any problem is in `problems`, so the defaults never serve.
        let http_limits = HttpLimits::from_vars(vars.clone())
            .map_err(|error| problems.extend(error.0))
            .unwrap_or_default();
        let api_limits = ApiLimits::from_vars(vars.clone())
            .map_err(|error| problems.extend(error.0))
            .unwrap_or_default();
        match (
            listen,
            embedded_pushjet,
            log_format,
            max_body_bytes,
            max_message_bytes,
            delivery,
            admin_token,
        ) {
            (
                Some(listen),
                Some(embedded_pushjet),
                Some(log_format),
                Some(max_body_bytes),
                Some(max_message_bytes),
                Some(delivery),
                Some(admin_token),
            ) if problems.is_empty() => Ok(Self {
                listen,
                data_dir: global.data_dir.unwrap_or_else(|| PathBuf::from("data")),
                embedded_pushjet,
                api_url,
                log_format,
                templates_dir: global
                    .templates_dir
                    .filter(|dir| !dir.as_os_str().is_empty()),
                max_body_bytes,
                max_message_bytes,
                routes,
                delivery,
                admin_token,
                metrics_token,
                source_vars: SourceVars(source_vars),
                http_limits,
                api_limits,
            }),
            _ => Err(ConfigError(problems)),
        }
    }
}

/// The variables with those of `PUSHJET_BRIDGE_ENV_FILE` added (the file's win), one value per
/// name.
fn with_env_file(vars: &[(String, String)]) -> Result<Vec<(String, String)>, ConfigError> {
    let mut merged: std::collections::BTreeMap<String, String> = vars.iter().cloned().collect();
    let Some(path) = merged
        .get("PUSHJET_BRIDGE_ENV_FILE")
        .map(PathBuf::from)
        .filter(|path| !path.as_os_str().is_empty())
    else {
        return Ok(merged.into_iter().collect());
    };
    let problem = |error: dotenvy::Error| {
        ConfigError(vec![format!(
            "PUSHJET_BRIDGE_ENV_FILE: cannot read {}: {error}",
            path.display()
        )])
    };
    for line in dotenvy::from_path_iter(&path).map_err(problem)? {
        let (name, value) = line.map_err(problem)?;
        merged.insert(name, value);
    }
    Ok(merged.into_iter().collect())
}

/// Reads every route named in `PUSHJET_BRIDGE_ROUTES`, recording each problem.
fn read_routes(problems: &mut Vec<String>, names: &str, vars: &[(String, String)]) -> Routes {
    let mut routes = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for raw in names
        .split(',')
        .map(str::trim)
        .filter(|raw| !raw.is_empty())
    {
        match RouteName::parse(raw) {
            Ok(name) if !seen.insert(name.clone()) => {
                problems.push(format!(
                    "PUSHJET_BRIDGE_ROUTES: route `{name}` is named twice"
                ));
            }
            Ok(name) => match read_route(name, vars) {
                Ok(route) => routes.push(route),
                Err(route_problems) => problems.extend(route_problems),
            },
            Err(error) => problems.push(format!("PUSHJET_BRIDGE_ROUTES: {error}")),
        }
    }
    Routes::new(routes)
}

/// Reads one route's variables, or every problem with them.
fn read_route(name: RouteName, vars: &[(String, String)]) -> Result<Route, Vec<String>> {
    let prefix = name.env_prefix();
    let route_vars: RouteVars = envy::prefixed(prefix.clone())
        .from_iter(vars.to_vec())
        .map_err(|error| vec![format!("{prefix}*: {error}")])?;
    let mut problems = Vec::new();

    let secret = match value_or_file(&prefix, "SECRET", route_vars.secret, route_vars.secret_file) {
        Ok(Some(raw)) => SecretKey::parse(raw.trim())
            .map_err(|error| problems.push(format!("{prefix}SECRET: {error}")))
            .ok(),
        Ok(None) => {
            problems.push(format!(
                "{prefix}SECRET (or {prefix}SECRET_FILE) is required: the route's Pushjet service secret key"
            ));
            None
        }
        Err(problem) => {
            problems.push(problem);
            None
        }
    };
    let mut optional_secret = |key: &str, value: Option<String>, file: Option<PathBuf>| {
        value_or_file(&prefix, key, value, file).unwrap_or_else(|problem| {
            problems.push(problem);
            None
        })
    };
    let webhook_secret = optional_secret(
        "WEBHOOK_SECRET",
        route_vars.webhook_secret,
        route_vars.webhook_secret_file,
    );
    let token = optional_secret("TOKEN", route_vars.token, route_vars.token_file);
    let basic_auth = optional_secret(
        "BASIC_AUTH",
        route_vars.basic_auth,
        route_vars.basic_auth_file,
    );
    let auth = InboundAuth::new(
        webhook_secret.as_deref().map(str::trim),
        token.as_deref().map(str::trim),
        basic_auth.as_deref().map(str::trim),
    )
    .map_err(|error| problems.push(format!("{prefix}*: authentication: {error}")))
    .ok();

    let mut source = SourceOptions::new(name.as_str());
    let mut problem_at = |key: &str, raw: &str, error: String| {
        problems.push(format!("{prefix}{key}: `{raw}`: {error}"))
    };
    if let Some(value) = route_setting(
        route_vars.source,
        "SOURCE",
        &mut problem_at,
        str::parse::<SourceSetting>,
    ) {
        source.setting = value;
    }
    if let Some(value) = route_setting(
        route_vars.importance,
        "IMPORTANCE",
        &mut problem_at,
        Importance::parse,
    ) {
        source.default_importance = value;
    }
    if let Some(value) = route_setting(
        route_vars.alert_grouping,
        "ALERT_GROUPING",
        &mut problem_at,
        str::parse::<AlertGrouping>,
    ) {
        source.grouping = value;
    }
    if let Some(value) = route_setting(
        route_vars.resolved,
        "RESOLVED",
        &mut problem_at,
        str::parse::<ResolvedPolicy>,
    ) {
        source.resolved = value;
    }
    if let Some(value) = route_setting(
        route_vars.severity_importance,
        "SEVERITY_IMPORTANCE",
        &mut problem_at,
        str::parse::<SeverityImportance>,
    ) {
        source.severity = value;
    }
    let delivery = route_setting(
        route_vars.delivery,
        "DELIVERY",
        &mut problem_at,
        str::parse::<DeliveryMode>,
    )
    .unwrap_or_default();
    let template = route_vars
        .template
        .map(|raw| raw.trim().to_owned())
        .filter(|raw| !raw.is_empty());
    let events = route_vars
        .events
        .as_deref()
        .filter(|raw| !raw.trim().is_empty())
        .map(EventFilter::parse);

    match (secret, auth) {
        (Some(secret), Some(auth)) if problems.is_empty() => Ok(Route {
            name,
            secret,
            auth,
            source,
            template,
            events,
            delivery,
        }),
        _ => Err(problems),
    }
}

/// Parses one optional route setting (blank counts as unset), reporting a bad value by its key.
fn route_setting<T, E: std::fmt::Display>(
    raw: Option<String>,
    key: &str,
    problem_at: &mut impl FnMut(&str, &str, String),
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> Option<T> {
    let raw = raw?;
    let raw = raw.trim();
    if raw.is_empty() {
        return None;
    }
    parse(raw)
        .map_err(|error| problem_at(key, raw, error.to_string()))
        .ok()
}

/// A setting given directly (`KEY`) or in a file (`KEY_FILE`, trailing line break dropped); both
/// is a problem. The problem text never contains the value.
fn value_or_file(
    prefix: &str,
    key: &str,
    value: Option<String>,
    file: Option<PathBuf>,
) -> Result<Option<String>, String> {
    match (value, file) {
        (Some(_), Some(_)) => Err(format!(
            "{prefix}{key} and {prefix}{key}_FILE are both set; keep one"
        )),
        (Some(value), None) => Ok(Some(value)),
        (None, Some(path)) => std::fs::read_to_string(&path)
            .map(|text| Some(text.trim_end_matches(['\n', '\r']).to_owned()))
            .map_err(|error| {
                format!(
                    "{prefix}{key}_FILE: cannot read {}: {error}",
                    path.display()
                )
            }),
        (None, None) => Ok(None),
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
mod tests;
