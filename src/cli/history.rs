//! `pushjet-bridge history list|show|replay`: the delivery history of a running service, through
//! its admin endpoints (`/admin/history`), with the admin token from the environment
//! (`PUSHJET_BRIDGE_ADMIN_TOKEN`, or the file named by `PUSHJET_BRIDGE_ADMIN_TOKEN_FILE`). Prints
//! the service's JSON on standard output.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::Value;

/// `history` and its options.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The service's base URL; by default loopback at the port of PUSHJET_BRIDGE_LISTEN (8080).
    #[arg(long)]
    pub url: Option<String>,
    /// How long to wait for an answer, in seconds.
    #[arg(long, default_value_t = 30)]
    pub timeout: u64,
    /// What to do.
    #[command(subcommand)]
    pub command: HistoryCommand,
}

/// What to do with the history.
#[derive(Debug, Subcommand)]
pub enum HistoryCommand {
    /// List records, newest first.
    List {
        /// Only this route's.
        #[arg(long)]
        route: Option<String>,
        /// Only this sender's (`github`, …).
        #[arg(long)]
        source: Option<String>,
        /// Only this event's.
        #[arg(long)]
        event: Option<String>,
        /// Only records in this state (pending, sent, retrying, dead, filtered, duplicate, …).
        #[arg(long)]
        state: Option<String>,
        /// Only records at or after this time (RFC 3339, or milliseconds since the epoch).
        #[arg(long)]
        since: Option<String>,
        /// Only records before this time.
        #[arg(long)]
        until: Option<String>,
        /// Only records whose titles or messages contain this text.
        #[arg(long)]
        q: Option<String>,
        /// How many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// The previous page's `next_cursor`.
        #[arg(long)]
        cursor: Option<u64>,
    },
    /// Show one record's whole story.
    Show {
        /// The record's id.
        id: u64,
    },
    /// Send a record's notifications again, as stored (or, with --rerender, render its kept
    /// body again with today's templates).
    Replay {
        /// The record's id.
        id: u64,
        /// Render the kept body again instead of sending the stored notifications.
        #[arg(long)]
        rerender: bool,
    },
}

/// Why the command failed.
#[derive(Debug, thiserror::Error)]
pub enum HistoryCliError {
    /// No admin token in the environment.
    #[error(
        "set PUSHJET_BRIDGE_ADMIN_TOKEN (or PUSHJET_BRIDGE_ADMIN_TOKEN_FILE) to the service's admin token"
    )]
    NoToken,
    /// The token file could not be read.
    #[error("cannot read PUSHJET_BRIDGE_ADMIN_TOKEN_FILE {}: {source}", path.display())]
    TokenFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// No answer.
    #[error("no answer from {url}: {reason}")]
    Unreachable {
        /// The URL asked.
        url: String,
        /// Why.
        reason: String,
    },
    /// The service refused.
    #[error("{url} answered HTTP {status}: {message}")]
    Refused {
        /// The URL asked.
        url: String,
        /// The status.
        status: u16,
        /// The service's sentence.
        message: String,
    },
}

/// The base URL: loopback at the port the service listens on.
fn default_base(listen: Option<&str>) -> String {
    super::healthcheck::default_url(listen)
        .trim_end_matches("/healthz")
        .to_owned()
}

/// The admin token from the environment; never printed.
fn token() -> Result<String, HistoryCliError> {
    if let Ok(token) = std::env::var("PUSHJET_BRIDGE_ADMIN_TOKEN")
        && !token.trim().is_empty()
    {
        return Ok(token.trim().to_owned());
    }
    let path = std::env::var_os("PUSHJET_BRIDGE_ADMIN_TOKEN_FILE")
        .map(PathBuf::from)
        .filter(|path| !path.as_os_str().is_empty())
        .ok_or(HistoryCliError::NoToken)?;
    let token = std::fs::read_to_string(&path)
        .map_err(|source| HistoryCliError::TokenFile { path, source })?;
    Some(token.trim().to_owned())
        .filter(|token| !token.is_empty())
        .ok_or(HistoryCliError::NoToken)
}

/// The path and query of the request the command makes, and whether it is a POST.
fn request_path(command: &HistoryCommand) -> (String, bool) {
    match command {
        HistoryCommand::List {
            route,
            source,
            event,
            state,
            since,
            until,
            q,
            limit,
            cursor,
        } => {
            let mut query = url::form_urlencoded::Serializer::new(String::new());
            for (name, value) in [
                ("route", route),
                ("source", source),
                ("event", event),
                ("state", state),
                ("since", since),
                ("until", until),
                ("q", q),
            ] {
                if let Some(value) = value {
                    query.append_pair(name, value);
                }
            }
            query.append_pair("limit", &limit.to_string());
            if let Some(cursor) = cursor {
                query.append_pair("cursor", &cursor.to_string());
            }
            (format!("/admin/history?{}", query.finish()), false)
        }
        HistoryCommand::Show { id } => (format!("/admin/history/{id}"), false),
        HistoryCommand::Replay { id, rerender } => {
            let action = if *rerender { "rerender" } else { "replay" };
            (format!("/admin/history/{id}/{action}"), true)
        }
    }
}

/// Runs the command against the running service; the JSON to print on success.
pub async fn run(args: HistoryArgs) -> Result<Value, HistoryCliError> {
    let token = token()?;
    let base = args
        .url
        .unwrap_or_else(|| default_base(crate::config::listen_from_env().as_deref()));
    let (path, post) = request_path(&args.command);
    let url = format!("{}{path}", base.trim_end_matches('/'));
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(args.timeout))
        .finish();
    let request = if post {
        client.post(&url)
    } else {
        client.get(&url)
    }
    .bearer_auth(&token);
    let mut response = request
        .send()
        .await
        .map_err(|error| HistoryCliError::Unreachable {
            url: url.clone(),
            reason: error.to_string(),
        })?;
    let body = response
        .body()
        .limit(64 * 1024 * 1024)
        .await
        .map_err(|error| HistoryCliError::Unreachable {
            url: url.clone(),
            reason: error.to_string(),
        })?;
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if response.status().is_success() {
        Ok(json)
    } else {
        Err(HistoryCliError::Refused {
            url,
            status: response.status().as_u16(),
            message: json["error"].as_str().map_or_else(
                || String::from_utf8_lossy(&body).into_owned(),
                str::to_owned,
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct TestCli {
        #[command(flatten)]
        args: HistoryArgs,
    }

    fn parse(words: &[&str]) -> HistoryArgs {
        TestCli::try_parse_from(std::iter::once("history").chain(words.iter().copied()))
            .unwrap()
            .args
    }

    #[test]
    fn each_command_asks_its_endpoint() {
        let list = parse(&[
            "list",
            "--route",
            "ci",
            "--state",
            "dead",
            "--q",
            "disk full",
        ]);
        assert_eq!(
            request_path(&list.command),
            (
                "/admin/history?route=ci&state=dead&q=disk+full&limit=50".to_owned(),
                false
            )
        );
        let show = parse(&["--url", "http://bridge:9000", "show", "42"]);
        assert_eq!(show.url.as_deref(), Some("http://bridge:9000"));
        assert_eq!(
            request_path(&show.command),
            ("/admin/history/42".to_owned(), false)
        );
        let replay = parse(&["replay", "42"]);
        assert_eq!(
            request_path(&replay.command),
            ("/admin/history/42/replay".to_owned(), true)
        );
        let rerender = parse(&["replay", "42", "--rerender"]);
        assert_eq!(
            request_path(&rerender.command),
            ("/admin/history/42/rerender".to_owned(), true)
        );
        assert_eq!(default_base(Some("0.0.0.0:9000")), "http://127.0.0.1:9000");
    }
}
