//! `pushjet-bridge check`: validates the configuration and every template without serving.
//! Each template (built-in and user) is compiled and rendered against the bundled example payload
//! of its sender (`examples/`), so a template that fails at render time is found here, not when an
//! alert arrives.

use std::fmt::Write as _;

use crate::cli::render::sender_headers;
use crate::config::{DEFAULT_MAX_MESSAGE_BYTES, Settings};
use crate::notification::{Assembled, assemble};
use crate::pipeline::{Inbound, decode_for_preview};
use crate::pushjet::Importance;
use crate::reload::check_route_templates;
use crate::render::{Origin, Renderer};
use crate::sources::{SourceKind, SourceOptions, SourceSetting};

use crate::examples::for_event as example;

/// What `check` found: a printable report and whether anything is wrong.
#[derive(Debug)]
pub struct CheckReport {
    /// The report, one line per finding.
    pub text: String,
    /// How many problems were found.
    pub problems: usize,
}

/// Checks the configuration from the environment and every template.
pub fn run() -> CheckReport {
    let mut text = String::new();
    let mut problems = 0;
    let settings = match Settings::from_env() {
        Ok(settings) => {
            let names: Vec<&str> = settings
                .routes
                .iter()
                .map(|route| route.name.as_str())
                .collect();
            let _ = writeln!(
                text,
                "configuration: ok ({} route(s): {})",
                names.len(),
                names.join(", ")
            );
            Some(settings)
        }
        Err(error) => {
            problems += error.0.len();
            let _ = writeln!(text, "{error}");
            None
        }
    };
    let templates_dir = settings
        .as_ref()
        .and_then(|settings| settings.templates_dir.clone())
        .or_else(crate::config::templates_dir_from_env);
    let renderer = match Renderer::load(templates_dir.as_deref()) {
        Ok(renderer) => renderer,
        Err(error) => {
            problems += error.problems.len();
            let _ = writeln!(text, "{error}");
            return finish(text, problems);
        }
    };
    if let Some(settings) = &settings
        && let Err(error) = check_route_templates(settings, &renderer)
    {
        problems += error.0.len();
        let _ = writeln!(text, "{error}");
    }
    let names: Vec<String> = renderer.names().map(str::to_owned).collect();
    let _ = writeln!(text, "templates: {}", names.len());
    for name in &names {
        let origin = match renderer.origin(name) {
            Some(Origin::User { path, .. }) => format!("user {}", path.display()),
            _ => "built-in".to_owned(),
        };
        match render_example(&renderer, name) {
            Ok(title) => {
                let _ = writeln!(text, "  ok    {name} ({origin}): {title}");
            }
            Err(problem) => {
                problems += 1;
                let _ = writeln!(text, "  FAIL  {name} ({origin}): {problem}");
            }
        }
    }
    finish(text, problems)
}

fn finish(mut text: String, problems: usize) -> CheckReport {
    let _ = writeln!(text, "{problems} problem(s)");
    CheckReport { text, problems }
}

/// Renders one template against its sender's example; returns the title or the problem.
fn render_example(renderer: &Renderer, name: &str) -> Result<String, String> {
    let (source_name, event) = name.split_once('/').unwrap_or(("generic", name));
    let source = source_name
        .parse::<SourceKind>()
        .unwrap_or(SourceKind::Generic);
    let event = event.split('.').next().unwrap_or(event);
    let headers = sender_headers(SourceSetting::Fixed(source), Some(event))
        .map_err(|error| error.to_string())?;
    let options = SourceOptions {
        setting: SourceSetting::Fixed(source),
        ..SourceOptions::new("check")
    };
    let inbound = Inbound {
        headers: &headers,
        query: "",
        body: example(source, event),
    };
    let decoded = decode_for_preview(inbound, &options)
        .map_err(|error| format!("example payload: {error}"))?;
    let context = decoded
        .contexts
        .first()
        .ok_or_else(|| "the example payload produced no notification".to_owned())?;
    let fields = renderer
        .render(name, &context.tree)
        .map_err(|error| error.to_string())?;
    Ok(
        match assemble(&fields, Importance::DEFAULT, DEFAULT_MAX_MESSAGE_BYTES) {
            Assembled::Send { notification, .. } => format!("\"{}\"", notification.title.as_str()),
            Assembled::Skip => "(renders an empty message for the example: skipped)".to_owned(),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_template_renders_its_senders_example() {
        let renderer = Renderer::load(None).unwrap();
        for name in renderer.names() {
            assert!(
                render_example(&renderer, name).is_ok(),
                "{name}: {:?}",
                render_example(&renderer, name)
            );
        }
    }

    #[test]
    fn every_sender_finds_its_example_among_the_rust_examples() {
        for source in SourceKind::ALL {
            let payload = example(source, "no-such-event");
            assert_ne!(
                payload, b"{}",
                "{source}: examples/{source}.json is missing"
            );
            assert!(
                serde_json::from_slice::<serde_json::Value>(payload).is_ok(),
                "{source}: examples/{source}.json is not JSON"
            );
        }
    }

    #[test]
    fn a_template_failing_at_render_time_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("github")).unwrap();
        std::fs::write(
            dir.path().join("github/push.toml"),
            "message = '{{truncate ref \"ten\"}}'\n",
        )
        .unwrap();
        let renderer = Renderer::load(Some(dir.path())).unwrap();
        let outcome = render_example(&renderer, "github/push");
        assert!(outcome.is_err(), "{outcome:?}");
    }
}
