//! `pushjet-bridge render`: what a payload in a file would become, without a running service.

use std::io::Read;
use std::path::PathBuf;

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use clap::Args;
use serde_json::{Value, json};

use crate::config::DEFAULT_MAX_MESSAGE_BYTES;
use crate::pipeline::{Inbound, RenderOptions, decode_for_preview, render_all};
use crate::render::Renderer;
use crate::sources::{SourceKind, SourceOptions, SourceSetting};

/// `render` and its options.
#[derive(Debug, Args)]
pub struct RenderArgs {
    /// The sender (`auto` recognises it from the headers and payload).
    #[arg(long, default_value = "auto", ignore_case = true, value_parser = source_setting_parser())]
    pub source: SourceSetting,
    /// The event, for senders that name it in a header (GitHub, Gitea, GitLab), e.g. `push`.
    #[arg(long)]
    pub event: Option<String>,
    /// A template name to use instead of the sender's built-in choice.
    #[arg(long)]
    pub template: Option<String>,
    /// User templates that override built-ins.
    #[arg(long, env = "PUSHJET_BRIDGE_TEMPLATES_DIR")]
    pub templates_dir: Option<PathBuf>,
    /// The payload file, or `-` for standard input.
    pub file: PathBuf,
}

/// `--source`'s parser: the names [`SourceSetting::names`] lists, so `--help` shows them all.
fn source_setting_parser() -> impl clap::builder::TypedValueParser<Value = SourceSetting> {
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(SourceSetting::names())
        .try_map(|name| name.parse::<SourceSetting>())
}

/// Why `render` failed.
#[derive(Debug, thiserror::Error)]
pub enum RenderCommandError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The arguments do not fit together.
    #[error("{0}")]
    Argument(String),
    /// The templates do not load.
    #[error(transparent)]
    Templates(#[from] crate::render::LoadError),
    /// The payload cannot be decoded.
    #[error(transparent)]
    Decode(#[from] crate::sources::DecodeError),
}

/// The headers a sender would have sent with this event.
pub fn sender_headers(
    source: SourceSetting,
    event: Option<&str>,
) -> Result<HeaderMap, RenderCommandError> {
    let mut headers = HeaderMap::new();
    match (source.event_header(), event) {
        (Some(name), Some(event)) => {
            let value = HeaderValue::from_str(event).map_err(|_| {
                RenderCommandError::Argument(format!("`{event}` is not a usable event name"))
            })?;
            headers.insert(HeaderName::from_static(name), value);
        }
        (Some(_), None) if source == SourceSetting::Fixed(SourceKind::Gitlab) => {}
        (Some(_), None) => {
            return Err(RenderCommandError::Argument(format!(
                "--source {} needs --event (the event header's value, e.g. push)",
                source.as_str()
            )));
        }
        (None, _) => {}
    }
    Ok(headers)
}

/// Renders the file and returns the notifications as JSON. The body's type is sniffed: JSON when
/// it parses, text otherwise.
pub fn run(args: RenderArgs) -> Result<Value, RenderCommandError> {
    let body = read_input(&args.file)?;
    let renderer = Renderer::load(args.templates_dir.as_deref())?;
    let headers = sender_headers(args.source, args.event.as_deref())?;
    let options = SourceOptions {
        setting: args.source,
        ..SourceOptions::new("render")
    };
    let inbound = Inbound {
        headers: &headers,
        query: "",
        body: &body,
    };
    let mut decoded = decode_for_preview(inbound, &options)?;
    let notifications = render_all(
        &renderer,
        &mut decoded,
        &RenderOptions {
            route: "render",
            template: args.template.as_deref(),
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            log_failures: true,
        },
    );
    Ok(json!({
        "source": decoded.source.as_str(),
        "event": decoded.event,
        "action": decoded.action,
        "notifications": notifications,
    }))
}

fn read_input(path: &PathBuf) -> Result<Vec<u8>, RenderCommandError> {
    let read_error = |source| RenderCommandError::Read {
        path: path.display().to_string(),
        source,
    };
    if path.as_os_str() == "-" {
        let mut body = Vec::new();
        std::io::stdin()
            .read_to_end(&mut body)
            .map_err(read_error)?;
        Ok(body)
    } else {
        std::fs::read(path).map_err(read_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Command;

    fn command() -> Command {
        RenderArgs::augment_args(Command::new("render"))
    }

    #[test]
    fn help_lists_every_accepted_source() {
        let help = command().render_long_help().to_string();
        for name in SourceSetting::names() {
            assert!(help.contains(name), "{name} missing from:\n{help}");
        }
        assert!(SourceSetting::names().len() >= 14);
    }

    #[test]
    fn source_names_parse_in_any_case_and_others_are_refused() {
        let matches = command()
            .try_get_matches_from(["render", "--source", "Mattermost", "payload.json"])
            .expect("parses");
        let source = matches.get_one::<SourceSetting>("source").copied();
        assert_eq!(source, Some(SourceSetting::Fixed(SourceKind::Slack)));
        let refused = command().try_get_matches_from(["render", "--source", "jira", "x.json"]);
        assert!(refused.is_err());
    }
}
