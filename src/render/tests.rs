//! Loading, overriding, looking up and rendering templates.

use std::fs;
use std::path::Path;

use serde_json::json;

use super::{Origin, Problem, RenderError, Renderer, TemplateContext};

/// A user template folder holding `files` (`("github/push.toml", "...")`).
fn user_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for (relative, text) in files {
        let path = dir.path().join(relative);
        fs::create_dir_all(path.parent().expect("has a folder")).expect("mkdir");
        fs::write(path, text).expect("write");
    }
    dir
}

fn load(dir: &Path) -> Renderer {
    Renderer::load(Some(dir)).expect("templates load")
}

#[test]
fn renderer_can_be_shared_between_threads() {
    fn shareable<T: Send + Sync>() {}
    shareable::<Renderer>();
}

#[test]
fn built_in_templates_load_without_a_user_folder() {
    let renderer = Renderer::load(None).expect("built-ins load");
    assert!(renderer.contains("github/push"));
    assert!(
        renderer
            .names()
            .all(|name| renderer.origin(name) == Some(&Origin::BuiltIn))
    );
}

#[test]
fn user_template_overrides_built_in_of_the_same_name() {
    let dir = user_dir(&[("github/push.toml", "title = 'mine'\nmessage = 'pushed'")]);

    let renderer = load(dir.path());
    let fields = renderer.render("github/push", &json!({})).expect("renders");

    assert_eq!(fields.title, "mine");
    let origin = Origin::User {
        path: dir.path().join("github/push.toml"),
        overrides_built_in: true,
    };
    assert_eq!(renderer.origin("github/push"), Some(&origin));
}

#[test]
fn user_template_with_a_new_name_is_added() {
    let dir = user_dir(&[("custom/deploys.toml", "message = 'deployed'")]);

    let renderer = load(dir.path());

    assert!(renderer.names().any(|name| name == "custom/deploys"));
    assert!(matches!(
        renderer.origin("custom/deploys"),
        Some(Origin::User {
            overrides_built_in: false,
            ..
        })
    ));
    assert_eq!(renderer.origin("github/push"), Some(&Origin::BuiltIn));
}

#[test]
fn unknown_key_is_reported_with_the_file() {
    let dir = user_dir(&[("github/push.toml", "message = 'm'\nurl = 'x'")]);

    let error = Renderer::load(Some(dir.path())).expect_err("unknown key");

    let [problem] = &error.problems[..] else {
        panic!("one problem expected: {error}");
    };
    assert!(
        problem.file.ends_with("github/push.toml"),
        "{}",
        problem.file
    );
    assert!(
        matches!(&problem.problem, Problem::Format(text) if text.contains("unknown field `url`"))
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let dir = user_dir(&[
        ("github/push.toml", "message = 'm'\nurl = 'x'"),
        (
            "github/star.toml",
            "title = '{{#if x}}open'\nmessage = '{{/each}}'",
        ),
        ("gitlab/push.toml", "message = 'not closed"),
        ("stray.toml", "message = 'm'"),
    ]);

    let error = Renderer::load(Some(dir.path())).expect_err("broken templates");

    let text = error.to_string();
    assert!(text.starts_with("5 template problems:"), "{text}");
    for expected in ["github/push.toml", "gitlab/push.toml", "stray.toml", "url"] {
        assert!(text.contains(expected), "{expected} not in {text}");
    }
    let broken_fields: Vec<&str> = error
        .problems
        .iter()
        .filter_map(|problem| match &problem.problem {
            Problem::Template { field, .. } => Some(*field),
            _ => None,
        })
        .collect();
    assert_eq!(broken_fields, ["title", "message"]);
}

#[test]
fn handlebars_compile_error_gives_field_line_and_column() {
    let dir = user_dir(&[(
        "github/star.toml",
        "message = '''\nline one\n{{#if x}}\n'''",
    )]);

    let error = Renderer::load(Some(dir.path())).expect_err("unclosed block");

    let text = error.to_string();
    assert!(
        text.contains("github/star.toml: `message` is not a valid template"),
        "{text}"
    );
    assert!(text.contains("(line "), "{text}");
}

#[test]
fn lookup_prefers_route_template_then_action_then_event_then_default() {
    let dir = user_dir(&[
        ("github/pull_request.opened.toml", "message = 'a'"),
        ("custom/mine.toml", "message = 'b'"),
    ]);
    let renderer = load(dir.path());
    let lookup = |event, action, route| renderer.lookup("github", event, action, route);

    assert_eq!(
        lookup("pull_request", Some("opened"), Some("custom/mine")),
        Some("custom/mine")
    );
    assert_eq!(
        lookup("pull_request", Some("opened"), None),
        Some("github/pull_request.opened")
    );
    assert_eq!(
        lookup("pull_request", Some("edited"), None),
        Some("github/pull_request")
    );
    assert_eq!(
        lookup("pull_request", None, None),
        Some("github/pull_request")
    );
    assert_eq!(lookup("future_event", None, None), Some("github/default"));
    assert_eq!(
        lookup("push", None, Some("custom/absent")),
        Some("github/push")
    );
    assert_eq!(renderer.lookup("nobody", "x", None, None), None);
}

#[test]
fn render_does_not_escape_html_and_renders_missing_values_empty() {
    let dir = user_dir(&[(
        "custom/raw.toml",
        "title = '{{a}} & {{missing.deeply.nested}}'\nmessage = '{{b}}'",
    )]);
    let renderer = load(dir.path());

    let fields = renderer
        .render(
            "custom/raw",
            &json!({"a": "<b>R&D</b>", "b": "it's \"quoted\""}),
        )
        .expect("renders");

    assert_eq!(fields.title, "<b>R&D</b> &");
    assert_eq!(fields.message, "it's \"quoted\"");
}

#[test]
fn render_trims_blank_edges_of_the_message_and_keeps_inner_lines() {
    let message = "message = '''\n{{#if no}}x{{/if}}\n\n  one\n\ntwo  \n\n\n'''";
    let dir = user_dir(&[("custom/lines.toml", message)]);

    let fields = load(dir.path())
        .render("custom/lines", &json!({}))
        .expect("renders");

    assert_eq!(fields.message, "  one\n\ntwo");
}

#[test]
fn render_left_out_fields_use_empty_text_and_the_route_importance() {
    let dir = user_dir(&[("custom/bare.toml", "message = 'm'")]);
    let context = json!({"bridge": {"importance": "4"}});

    let fields = load(dir.path())
        .render("custom/bare", &context)
        .expect("renders");

    assert_eq!((fields.title.as_str(), fields.link.as_str()), ("", ""));
    assert_eq!(fields.importance, "4");
}

#[test]
fn render_of_an_unknown_template_is_an_error() {
    let renderer = Renderer::load(None).expect("built-ins load");
    let error = renderer
        .render("github/nope", &json!({}))
        .expect_err("unknown");
    assert!(matches!(error, RenderError::UnknownTemplate(name) if name == "github/nope"));
}

#[test]
fn render_error_names_the_template_and_field() {
    let dir = user_dir(&[("custom/bad.toml", "message = '{{truncate text \"many\"}}'")]);

    let error = load(dir.path())
        .render("custom/bad", &json!({"text": "x"}))
        .expect_err("bad argument");

    let text = error.to_string();
    assert!(
        text.contains("custom/bad") && text.contains("`message`"),
        "{text}"
    );
    assert!(text.contains("truncate"), "{text}");
}

#[test]
fn generic_template_uses_the_senders_fields() {
    let renderer = Renderer::load(None).expect("built-ins load");
    let context = json!({
        "title": "Deploy finished", "message": "api v2.3.1 is live", "importance": "4",
        "link": "https://ci.example.com/pipelines/8812", "summary": "",
        "payload": {}, "bridge": {"route": "ci", "source": "generic", "event": "message", "importance": "4"}
    });

    let fields = renderer
        .render("generic/default", &context)
        .expect("renders");

    assert_eq!(fields.title, "Deploy finished");
    assert_eq!(fields.message, "api v2.3.1 is live");
    assert_eq!(fields.link, "https://ci.example.com/pipelines/8812");
    assert_eq!(fields.importance, "4");
}

/// The decoder reads `"priority": "high"` as `bridge.importance` 4 and keeps the word in
/// `importance`; the notification must get the 4, not the route's default.
#[test]
fn generic_template_sends_a_priority_word_as_its_number() {
    let renderer = Renderer::load(None).expect("built-ins load");
    let context = json!({
        "title": "", "message": "disk full", "importance": "high", "link": "", "summary": "",
        "payload": {}, "bridge": {"route": "ci", "source": "generic", "event": "message", "importance": "4"}
    });

    let fields = renderer
        .render("generic/default", &context)
        .expect("renders");

    assert_eq!(fields.importance, "4");
}

#[test]
fn generic_template_falls_back_to_summary_route_and_route_importance() {
    let renderer = Renderer::load(None).expect("built-ins load");
    let context = json!({
        "summary": "alert.title: CPU high\nmeta.attempt: 2", "link": "javascript:alert(1)",
        "payload": {}, "bridge": {"route": "cron", "source": "generic", "event": "message", "importance": "3"}
    });

    let fields = renderer
        .render("generic/default", &context)
        .expect("renders");

    assert_eq!(fields.title, "cron");
    assert_eq!(fields.message, "alert.title: CPU high\nmeta.attempt: 2");
    assert_eq!(fields.link, "");
    assert_eq!(fields.importance, "3");
}

#[test]
fn readme_worked_example_overrides_github_push() {
    let readme = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/templates/README.md"));
    let example = readme
        .split("## Worked example")
        .nth(1)
        .and_then(|section| section.split("```toml\n").nth(1))
        .and_then(|block| block.split("```").next())
        .expect("the README has a worked example");
    let dir = user_dir(&[("github/push.toml", example)]);
    let context = json!({
        "ref": "refs/heads/main", "forced": false, "compare": "https://github.com/o/api/compare/a...b",
        "repository": {"name": "api", "default_branch": "main"},
        "head_commit": {"id": "6113728f27ae82c7b1a177c8d03f9e96e0adf246", "message": "Fix login redirect\n\nDetails", "author": {"name": "Mona"}},
        "commits": [{}, {}, {}],
        "bridge": {"route": "gh", "source": "github", "event": "push", "importance": "3"}
    });

    let fields = load(dir.path())
        .render("github/push", &context)
        .expect("renders");

    assert_eq!(fields.title, "api ← main: Fix login redirect (+2 more)");
    assert_eq!(fields.message, "6113728 by Mona");
    assert_eq!(fields.importance, "3");
}

#[test]
fn a_template_context_renders_as_its_value_does_and_keeps_it() {
    let renderer = Renderer::load(None).expect("built-ins load");
    let value = json!({
        "bridge": {"route": "ops", "source": "generic", "event": "message", "importance": "4"},
        "title": "Deploy",
        "message": "v1.2 is live",
    });
    let context = TemplateContext::new(value.clone());
    let rendered = renderer
        .render_context("generic/default", &context)
        .expect("renders");
    assert_eq!(rendered.title, "Deploy");
    assert_eq!(
        Some(rendered),
        renderer.render("generic/default", &value).ok()
    );
    assert_eq!(context.value(), &value);
}

#[test]
fn a_copy_with_one_template_replaced_renders_it_and_leaves_the_original_alone() {
    let renderer = Renderer::load(None).expect("built-ins load");
    let original = renderer.text("github/push").expect("its text").to_owned();
    assert!(original.contains("repository.full_name"), "{original}");
    let edited = renderer
        .with_template("github/push", "title = 'new {{ref}}'\nmessage = 'm'\n")
        .expect("compiles");
    let context = json!({ "ref": "refs/heads/main" });
    assert_eq!(
        edited.render("github/push", &context).unwrap().title,
        "new refs/heads/main"
    );
    assert_ne!(
        renderer.render("github/push", &context).unwrap().title,
        "new refs/heads/main"
    );
    assert_eq!(renderer.text("github/push"), Some(original.as_str()));

    let problems = renderer
        .with_template("github/push", "title = '{{#if x}}'\nmessage = 'm'\n")
        .expect_err("does not compile");
    assert!(
        matches!(problems[0].problem, Problem::Template { field: "title", .. }),
        "{problems:?}"
    );
}
