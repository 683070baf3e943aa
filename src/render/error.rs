//! What can go wrong loading templates (every problem, collected) and rendering one.

use std::fmt;

/// Loading the templates failed; lists every file with what is wrong with it.
#[derive(Debug, thiserror::Error)]
pub struct LoadError {
    /// Each problem found, in the order the files were read.
    pub problems: Vec<TemplateProblem>,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.problems.len();
        let plural = if count == 1 { "" } else { "s" };
        write!(f, "{count} template problem{plural}:")?;
        for problem in &self.problems {
            let text = problem.to_string().replace('\n', "\n    ");
            write!(f, "\n  - {text}")?;
        }
        Ok(())
    }
}

/// One thing wrong with one template file.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {problem}")]
pub struct TemplateProblem {
    /// The file: its path for a user template, `built-in <source>/<file>.toml` otherwise.
    pub file: String,
    /// What is wrong with it.
    pub problem: Problem,
}

/// What can be wrong with a template file.
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    /// The file or folder cannot be read.
    #[error("cannot be read: {0}")]
    Unreadable(#[source] std::io::Error),
    /// The file is not UTF-8 text.
    #[error("is not UTF-8 text")]
    NotText,
    /// The file's or its folder's name is not UTF-8, so it cannot name a template.
    #[error("has a name that is not UTF-8 text")]
    NameNotText,
    /// The file is not valid TOML, has an unknown key, lacks `message`, or has a non-string value.
    #[error("{0}")]
    Format(String),
    /// One field's handlebars template does not compile.
    #[error("`{field}` is not a valid template: {reason}")]
    Template {
        /// The field: `title`, `message`, `link` or `importance`.
        field: &'static str,
        /// Handlebars' explanation, with the line and column inside the field.
        reason: String,
    },
    /// A `.toml` file outside the `<source>/<event>.toml` layout, which would never be used.
    #[error("is not read: templates live at <source>/<event>[.<action>].toml, one folder deep")]
    Misplaced,
}

/// Rendering a template failed.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// No template has this name.
    #[error("there is no template named {0:?}")]
    UnknownTemplate(String),
    /// A field's template failed while rendering (a helper given arguments it cannot use).
    #[error("template {template:?} could not render its `{field}`: {source}")]
    Field {
        /// The template's name.
        template: String,
        /// The field that failed.
        field: &'static str,
        /// Handlebars' explanation.
        #[source]
        source: handlebars::RenderError,
    },
}
