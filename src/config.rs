//! Settings from the environment, read once at start-up (and again, whole, on reload) into an
//! immutable value of typed parts. Every variable the service reads is read here, and every
//! problem is collected so that one start reports them all.
//!
//! - [`read`]: the variable set, blank-is-unset, `*_FILE` secrets, the problem list;
//! - [`routes`]: `PUSHJET_BRIDGE_ROUTES` and each route's `PUSHJET_BRIDGE_ROUTE_<NAME>_*`;
//! - [`delivery`]: the outbox and its dispatcher, [`database`] the shared database it may live in;
//! - [`streams`]: the live streams of the embedded API;
//! - [`console`]: the console's session length and the proxies it believes;
//! - [`history`]: the delivery history's retention and bodies;
//! - [`limits`]: limits against hostile load, on every request and on the embedded Pushjet API;
//! - [`known`]: a `PUSHJET_BRIDGE_*` variable no setting asked for is a problem (a misspelling);
//! - this file: listening and data, the Pushjet API, limits, tokens, and putting it together.

mod console;
mod database;
mod delivery;
mod history;
mod known;
mod limits;
mod read;
mod routes;
mod streams;

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

pub use console::ConsoleSettings;
pub use database::{DatabaseCa, DatabaseUrl};
pub use delivery::DeliverySettings;
pub use history::HistorySettings;
pub use limits::{ApiLimits, HttpLimits, MAX_BUFFERED_BYTES};
use read::{Problems, Vars, parse_bool};
pub use streams::StreamSettings;

use crate::pushjet::{ApiUrl, MESSAGE_MAX_BYTES};
use crate::routes::Routes;
use crate::secret::Secret;

/// The default largest accepted webhook body, 5 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 5 * 1024 * 1024;
/// The default largest message sent, 4,096 bytes.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 4096;
/// The smallest message limit that still leaves room for text and the cut marker.
const MIN_MAX_MESSAGE_BYTES: usize = 64;
/// The shortest admin token accepted.
pub const ADMIN_TOKEN_MIN_CHARS: usize = 16;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines (the default).
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = &'static str;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        match raw.to_ascii_lowercase().as_str() {
            "human" => Ok(Self::Human),
            "json" => Ok(Self::Json),
            _ => Err("not human or json"),
        }
    }
}

/// Everything the service needs to start, validated.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where it listens and keeps its state.
    pub server: ServerSettings,
    /// Which Pushjet API it delivers to, and whether it serves one.
    pub pushjet: PushjetSettings,
    /// The configured routes (`PUSHJET_BRIDGE_ROUTES` and `PUSHJET_BRIDGE_ROUTE_<NAME>_*`).
    pub routes: Routes,
    /// User templates that override built-ins (`PUSHJET_BRIDGE_TEMPLATES_DIR`).
    pub templates_dir: Option<PathBuf>,
    /// How large a webhook and a message may be, and the limits against hostile load.
    pub limits: Limits,
    /// The outbox and its delivery workers.
    pub delivery: DeliverySettings,
    /// The tokens of the operator endpoints.
    pub tokens: Tokens,
    /// The live streams of the embedded API.
    pub streams: StreamSettings,
    /// The console's sessions and the proxies it believes.
    pub console: ConsoleSettings,
    /// The delivery history.
    pub history: HistorySettings,
    /// The variables these settings came from, for [`Settings::reread`].
    source_vars: SourceVars,
}

/// Listening and data.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Where to listen (`PUSHJET_BRIDGE_LISTEN`, default `0.0.0.0:8080`).
    pub listen: SocketAddr,
    /// Where state is kept (`PUSHJET_BRIDGE_DATA_DIR`, default `./data`).
    pub data_dir: PathBuf,
    /// Log format (`PUSHJET_BRIDGE_LOG_FORMAT`, `human` or `json`).
    pub log_format: LogFormat,
}

/// The Pushjet side.
#[derive(Debug, Clone)]
pub struct PushjetSettings {
    /// Whether the embedded Pushjet API is served at `/pushjet/`
    /// (`PUSHJET_BRIDGE_EMBEDDED_PUSHJET`, default true).
    pub embedded: bool,
    /// The Pushjet API to deliver to (`PUSHJET_API_URL`); `None` means the embedded one.
    pub api_url: Option<ApiUrl>,
}

/// Sizes and limits (README, "Limits").
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest accepted webhook body (`PUSHJET_BRIDGE_MAX_BODY_BYTES`, default 5 MiB).
    pub max_body_bytes: usize,
    /// Largest message sent; longer ones are cut (`PUSHJET_BRIDGE_MAX_MESSAGE_BYTES`, default 4096).
    pub max_message_bytes: usize,
    /// Connections, the request deadline and buffered body bytes.
    pub http: HttpLimits,
    /// The embedded Pushjet API's rate limit, create token and storage caps.
    pub api: ApiLimits,
}

/// The bearer tokens of the operator endpoints.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    /// The token of the admin endpoints (`PUSHJET_BRIDGE_ADMIN_TOKEN[_FILE]`, at least
    /// [`ADMIN_TOKEN_MIN_CHARS`] characters); `None` turns them off.
    pub admin: Option<Secret>,
    /// The token `/metrics` asks for (`PUSHJET_BRIDGE_METRICS_TOKEN[_FILE]`); `None` leaves the
    /// metrics open.
    pub metrics: Option<Secret>,
}

/// Why the settings could not be read; lists every problem at once.
#[derive(Debug, thiserror::Error)]
#[error("the configuration has {} problem(s):\n  - {}", .0.len(), .0.join("\n  - "))]
pub struct ConfigError(pub Vec<String>);

/// The `PUSHJET_BRIDGE_*` variables this file reads; the routes and delivery read their own.
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
    admin_token: Option<String>,
    admin_token_file: Option<PathBuf>,
}

/// `PUSHJET_API_URL`, the variable the Pushjet client tools share.
#[derive(Deserialize)]
struct PushjetVars {
    api_url: Option<String>,
}

/// The variables settings were read from, before the env file was added, kept for reloads. Its
/// `Debug` shows only the names: values may be secrets.
#[derive(Clone, Default)]
struct SourceVars(Vec<(String, String)>);

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
        let vars =
            Vars::with_env_file(&source_vars).map_err(|problem| ConfigError(vec![problem]))?;
        let mut problems = Problems::default();
        let global: Option<GlobalVars> = vars.section("PUSHJET_BRIDGE_", &mut problems);
        let pushjet: Option<PushjetVars> = vars.section("PUSHJET_", &mut problems);
        let (Some(global), Some(pushjet)) = (global, pushjet) else {
            return Err(ConfigError(problems.into_vec()));
        };
        let limits = read_limits(&global, &vars, &mut problems);
        let settings = Self {
            server: read_server(&global, &mut problems),
            pushjet: read_pushjet(&global, pushjet, &mut problems),
            routes: routes::read_routes(
                global.routes.as_deref().unwrap_or_default(),
                &vars,
                &mut problems,
            ),
            templates_dir: global
                .templates_dir
                .clone()
                .filter(|dir| !dir.as_os_str().is_empty()),
            streams: StreamSettings::read(&vars, &limits.http, &mut problems),
            limits,
            delivery: DeliverySettings::read(&vars, &mut problems),
            tokens: read_tokens(global, &mut problems),
            console: ConsoleSettings::read(&vars, &mut problems),
            history: HistorySettings::read(&vars, &mut problems),
            source_vars: SourceVars(source_vars),
        };
        known::report_unknown(&vars, &mut problems);
        problems.into_result(settings).map_err(ConfigError)
    }
}

/// `PUSHJET_BRIDGE_LISTEN` alone (the env file included), for `healthcheck`, which must find the
/// service even where the rest of the configuration cannot be read.
pub fn listen_from_env() -> Option<String> {
    single_from_env("PUSHJET_BRIDGE_LISTEN")
}

/// `PUSHJET_BRIDGE_TEMPLATES_DIR` alone (the env file included), for `check`, which checks the
/// templates even when the rest of the configuration is invalid.
pub fn templates_dir_from_env() -> Option<PathBuf> {
    single_from_env("PUSHJET_BRIDGE_TEMPLATES_DIR").map(PathBuf::from)
}

fn single_from_env(name: &str) -> Option<String> {
    let vars: Vec<(String, String)> = std::env::vars().collect();
    Vars::with_env_file(&vars)
        .ok()?
        .get(name)
        .filter(|value| !value.trim().is_empty())
}

fn read_server(global: &GlobalVars, problems: &mut Problems) -> ServerSettings {
    ServerSettings {
        listen: problems.parse(
            "PUSHJET_BRIDGE_LISTEN",
            global.listen.as_deref(),
            SocketAddr::from(([0, 0, 0, 0], 8080)),
            |raw| {
                raw.parse::<SocketAddr>()
                    .map_err(|_| "not an address such as 0.0.0.0:8080")
            },
        ),
        data_dir: global
            .data_dir
            .clone()
            .filter(|dir| !dir.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("data")),
        log_format: problems.parse(
            "PUSHJET_BRIDGE_LOG_FORMAT",
            global.log_format.as_deref(),
            LogFormat::Human,
            str::parse::<LogFormat>,
        ),
    }
}

fn read_pushjet(
    global: &GlobalVars,
    vars: PushjetVars,
    problems: &mut Problems,
) -> PushjetSettings {
    let embedded = problems.parse(
        "PUSHJET_BRIDGE_EMBEDDED_PUSHJET",
        global.embedded_pushjet.as_deref(),
        true,
        parse_bool,
    );
    let api_url =
        problems.parse_optional("PUSHJET_API_URL", vars.api_url.as_deref(), ApiUrl::parse);
    if api_url.is_none() && !embedded && vars.api_url.is_none_or(|raw| raw.trim().is_empty()) {
        problems.push(
            "PUSHJET_API_URL is unset and the embedded Pushjet API is off (PUSHJET_BRIDGE_EMBEDDED_PUSHJET=false): \
             set PUSHJET_API_URL to your Pushjet server"
                .to_owned(),
        );
    }
    PushjetSettings { embedded, api_url }
}

fn read_limits(global: &GlobalVars, vars: &Vars, problems: &mut Problems) -> Limits {
    let (http, api) = limits::read(vars, problems);
    Limits {
        http,
        api,
        max_body_bytes: problems.parse(
            "PUSHJET_BRIDGE_MAX_BODY_BYTES",
            global.max_body_bytes.as_deref(),
            DEFAULT_MAX_BODY_BYTES,
            |raw| read::parse_count(raw, 1..=usize::MAX),
        ),
        max_message_bytes: problems.parse(
            "PUSHJET_BRIDGE_MAX_MESSAGE_BYTES",
            global.max_message_bytes.as_deref(),
            DEFAULT_MAX_MESSAGE_BYTES,
            |raw| read::parse_count(raw, MIN_MAX_MESSAGE_BYTES..=MESSAGE_MAX_BYTES),
        ),
    }
}

fn read_tokens(global: GlobalVars, problems: &mut Problems) -> Tokens {
    let admin = problems
        .optional_token(
            "PUSHJET_BRIDGE_ADMIN_TOKEN",
            global.admin_token,
            global.admin_token_file,
        )
        .filter(|token| {
            let long_enough = token.char_count() >= ADMIN_TOKEN_MIN_CHARS;
            if !long_enough {
                problems.push(format!(
                    "PUSHJET_BRIDGE_ADMIN_TOKEN must be at least {ADMIN_TOKEN_MIN_CHARS} characters \
                     (white space around it does not count)"
                ));
            }
            long_enough
        });
    let metrics = problems.optional_token(
        "PUSHJET_BRIDGE_METRICS_TOKEN",
        global.metrics_token,
        global.metrics_token_file,
    );
    Tokens { admin, metrics }
}

#[cfg(test)]
mod tests;
