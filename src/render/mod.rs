//! Turns a template context into the four notification fields, as plain text.
//!
//! Templates are TOML files of handlebars templates (see `templates/README.md`): the built-in
//! set is embedded in the binary, and a user folder may override or add any of them. All are
//! compiled once by [`Renderer::load`]; rendering never compiles.

mod error;
mod files;
mod helpers;
mod template_file;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use handlebars::{Context, Handlebars, no_escape};
use serde_json::Value;

pub use error::{LoadError, Problem, RenderError, TemplateProblem};
use template_file::{TemplateFile, template_name};

/// The rendered fields of a notification, as raw text: validation and clipping happen later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedFields {
    /// The title, trimmed.
    pub title: String,
    /// The message: leading blank lines and trailing white space removed, inner lines kept.
    pub message: String,
    /// The link, trimmed; may be empty.
    pub link: String,
    /// The importance as text, trimmed (expected `1`..`5`).
    pub importance: String,
}

/// Where a template came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Embedded in the binary.
    BuiltIn,
    /// A file in the user's template folder.
    User {
        /// The file.
        path: PathBuf,
        /// Whether it replaces a built-in template of the same name.
        overrides_built_in: bool,
    },
}

/// A notification's template context, owned by the template engine, so that rendering takes no
/// copy of the payload (a large webhook's context is most of the cost of copying).
pub struct TemplateContext(Context);

impl TemplateContext {
    /// Wraps a context value.
    pub fn new(value: Value) -> Self {
        Self(Context::from(value))
    }

    /// The context value.
    pub fn value(&self) -> &Value {
        self.0.data()
    }
}

impl fmt::Debug for TemplateContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TemplateContext")
            .field(self.value())
            .finish()
    }
}

/// The compiled templates, ready to render; built once, shared read-only.
#[derive(Clone)]
pub struct Renderer {
    registry: Handlebars<'static>,
    origins: BTreeMap<String, Origin>,
    /// Each template's file text, as loaded (what the console's playground shows).
    texts: BTreeMap<String, String>,
}

/// The field names, in the order [`RenderedFields`] has them.
const FIELDS: [&str; 4] = ["title", "message", "link", "importance"];

impl Renderer {
    /// Compiles the built-in templates, then every `<source>/<name>.toml` in `user_dir`, which
    /// replaces the built-in of the same name or adds a new one. Every problem in every file is
    /// collected and reported together.
    pub fn load(user_dir: Option<&Path>) -> Result<Renderer, LoadError> {
        let mut registry = Handlebars::new();
        registry.register_escape_fn(no_escape);
        registry.set_strict_mode(false);
        helpers::register(&mut registry);
        let mut renderer = Renderer {
            registry,
            origins: BTreeMap::new(),
            texts: BTreeMap::new(),
        };
        let mut problems = Vec::new();

        for (path, text) in files::built_in() {
            let label = format!("built-in {}", path.display());
            let (Some(name), Some(text)) = (template_name(path), text) else {
                problems.push(TemplateProblem {
                    file: label,
                    problem: Problem::NotText,
                });
                continue;
            };
            renderer.add(&name, text, Origin::BuiltIn, &label, &mut problems);
        }

        if let Some(dir) = user_dir {
            let (paths, layout_problems) = files::user_files(dir);
            problems.extend(layout_problems);
            for path in paths {
                let label = path.display().to_string();
                match read_user_file(&path) {
                    Ok((name, text)) => {
                        let overrides_built_in =
                            renderer.origins.get(&name) == Some(&Origin::BuiltIn);
                        let origin = Origin::User {
                            path,
                            overrides_built_in,
                        };
                        renderer.add(&name, &text, origin, &label, &mut problems);
                    }
                    Err(problem) => problems.push(TemplateProblem {
                        file: label,
                        problem,
                    }),
                }
            }
        }

        if problems.is_empty() {
            Ok(renderer)
        } else {
            Err(LoadError { problems })
        }
    }

    /// Parses and compiles one template file under `name`, or records what is wrong with it.
    fn add(
        &mut self,
        name: &str,
        text: &str,
        origin: Origin,
        label: &str,
        problems: &mut Vec<TemplateProblem>,
    ) {
        let file = match TemplateFile::parse(text) {
            Ok(file) => file,
            Err(reason) => {
                problems.push(TemplateProblem {
                    file: label.to_owned(),
                    problem: Problem::Format(reason),
                });
                return;
            }
        };
        let mut compiled = true;
        for (field, source) in file.fields() {
            if let Err(error) = self
                .registry
                .register_template_string(&field_key(name, field), source)
            {
                compiled = false;
                let position = error
                    .pos()
                    .map(|(line, column)| format!(" (line {line}, column {column})"))
                    .unwrap_or_default();
                problems.push(TemplateProblem {
                    file: label.to_owned(),
                    problem: Problem::Template {
                        field,
                        reason: format!("{}{position}", error.reason()),
                    },
                });
            }
        }
        if compiled {
            self.origins.insert(name.to_owned(), origin);
            self.texts.insert(name.to_owned(), text.to_owned());
        }
    }

    /// A copy of these templates with `name` replaced (or added) by the template file `text`,
    /// compiled as a file of the template folder would be: what the console's playground renders
    /// an edited template with. The problems are those [`Renderer::load`] would report.
    pub fn with_template(&self, name: &str, text: &str) -> Result<Renderer, Vec<TemplateProblem>> {
        let mut renderer = self.clone();
        let mut problems = Vec::new();
        let origin = Origin::User {
            path: PathBuf::from(format!("{name}.toml")),
            overrides_built_in: self.origins.get(name) == Some(&Origin::BuiltIn),
        };
        renderer.origins.remove(name);
        renderer.add(name, text, origin, &format!("{name}.toml"), &mut problems);
        if problems.is_empty() {
            Ok(renderer)
        } else {
            Err(problems)
        }
    }

    /// The file text of the template `name`, as it was loaded.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.texts.get(name).map(String::as_str)
    }

    /// The template to use for an event, the first that exists of: the route's `TEMPLATE`
    /// (a full name such as `github/deploys`), `<source>/<event>.<action>`, `<source>/<event>`,
    /// `<source>/default`.
    pub fn lookup(
        &self,
        source: &str,
        event: &str,
        action: Option<&str>,
        route_template: Option<&str>,
    ) -> Option<&str> {
        let candidates = route_template
            .map(str::to_owned)
            .into_iter()
            .chain(action.map(|action| format!("{source}/{event}.{action}")))
            .chain([format!("{source}/{event}"), format!("{source}/default")]);
        candidates
            .into_iter()
            .find_map(|name| self.origins.get_key_value(&name))
            .map(|(name, _)| name.as_str())
    }

    /// Renders the template `name` against `context`; missing values render empty.
    pub fn render(&self, name: &str, context: &Value) -> Result<RenderedFields, RenderError> {
        self.render_context(name, &TemplateContext::new(context.clone()))
    }

    /// [`Self::render`] on a context that is already a [`TemplateContext`]: no copy of it is made.
    pub fn render_context(
        &self,
        name: &str,
        context: &TemplateContext,
    ) -> Result<RenderedFields, RenderError> {
        if !self.origins.contains_key(name) {
            return Err(RenderError::UnknownTemplate(name.to_owned()));
        }
        let context = &context.0;
        let [title, message, link, importance] = FIELDS.map(|field| {
            self.registry
                .render_with_context(&field_key(name, field), context)
                .map_err(|source| RenderError::Field {
                    template: name.to_owned(),
                    field,
                    source,
                })
        });
        Ok(RenderedFields {
            title: title?.trim().to_owned(),
            message: tidy_message(&message?),
            link: link?.trim().to_owned(),
            importance: importance?.trim().to_owned(),
        })
    }

    /// Whether a template of this name exists (to check a route's `TEMPLATE` at start-up).
    pub fn contains(&self, name: &str) -> bool {
        self.origins.contains_key(name)
    }

    /// Every template name, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.origins.keys().map(String::as_str)
    }

    /// Where the template `name` came from, if it exists.
    pub fn origin(&self, name: &str) -> Option<&Origin> {
        self.origins.get(name)
    }
}

impl fmt::Debug for Renderer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Renderer")
            .field("templates", &self.origins)
            .finish_non_exhaustive()
    }
}

/// A user template file's name and text.
fn read_user_file(path: &Path) -> Result<(String, String), Problem> {
    let name = template_name(path).ok_or(Problem::NameNotText)?;
    match std::fs::read_to_string(path) {
        Ok(text) => Ok((name, text)),
        Err(error) if error.kind() == std::io::ErrorKind::InvalidData => Err(Problem::NotText),
        Err(error) => Err(Problem::Unreadable(error)),
    }
}

/// The registry key of one field of one template, e.g. `github/push:title`.
fn field_key(name: &str, field: &str) -> String {
    format!("{name}:{field}")
}

/// Drops leading blank lines and trailing white space; keeps every line in between.
fn tidy_message(rendered: &str) -> String {
    let start = rendered
        .char_indices()
        .find(|(_, c)| !c.is_whitespace())
        .map_or(rendered.len(), |(index, _)| {
            rendered[..index]
                .rfind('\n')
                .map_or(0, |newline| newline + 1)
        });
    rendered[start..].trim_end().to_owned()
}

#[cfg(test)]
mod fixture_tests;
#[cfg(test)]
mod plain_text_tests;
#[cfg(test)]
mod reading_tests;
#[cfg(test)]
mod style_tests;
#[cfg(test)]
mod tests;
