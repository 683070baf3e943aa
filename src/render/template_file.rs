//! The template file format: one TOML file per template, `<source>/<event>[.<action>].toml`,
//! holding a handlebars template for each notification field.

use std::path::Path;

use serde::Deserialize;

/// The four fields of a template file, each a handlebars template (not yet compiled).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TemplateFile {
    /// The notification title; empty when left out.
    #[serde(default)]
    title: String,
    /// The message body; required.
    message: String,
    /// The link; empty when left out.
    #[serde(default)]
    link: String,
    /// The importance 1..=5 as text; the route's default when left out.
    #[serde(default = "route_importance")]
    importance: String,
}

/// What `importance` is when a file leaves it out: the route's default.
fn route_importance() -> String {
    "{{bridge.importance}}".to_owned()
}

impl TemplateFile {
    /// Reads a template file's text; the error is the TOML reader's own explanation (position,
    /// unknown or missing key).
    pub(super) fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|error| error.to_string().trim_end().to_owned())
    }

    /// Each field's name and its template text.
    pub(super) fn fields(&self) -> [(&'static str, &str); 4] {
        [
            ("title", &self.title),
            ("message", &self.message),
            ("link", &self.link),
            ("importance", &self.importance),
        ]
    }
}

/// The template name of a file at `.../<source>/<event>[.<action>].toml`: `<source>/<event>[.<action>]`.
/// `None` when the file does not end in `.toml` or a part of the name is not UTF-8.
pub(super) fn template_name(path: &Path) -> Option<String> {
    if path.extension()? != "toml" {
        return None;
    }
    let stem = path.file_stem()?.to_str()?;
    let source = path.parent()?.file_name()?.to_str()?;
    Some(format!("{source}/{stem}"))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::{TemplateFile, template_name};

    #[test]
    fn parses_all_four_fields() {
        let text =
            "# For pushes.\ntitle = 't'\nmessage = '''\nm\n'''\nlink = 'l'\nimportance = '2'\n";
        let file = TemplateFile::parse(text).expect("valid");
        let values: Vec<&str> = file.fields().iter().map(|(_, text)| *text).collect();
        assert_eq!(values, ["t", "m\n", "l", "2"]);
    }

    #[test]
    fn missing_fields_default_except_message() {
        let file = TemplateFile::parse("message = 'only'").expect("valid");
        let values: Vec<&str> = file.fields().iter().map(|(_, text)| *text).collect();
        assert_eq!(values, ["", "only", "", "{{bridge.importance}}"]);
        let error = TemplateFile::parse("title = 'no message'").expect_err("message required");
        assert!(error.contains("missing field `message`"), "{error}");
    }

    #[test]
    fn unknown_key_is_an_error_naming_it() {
        let error = TemplateFile::parse("message = 'm'\ntitel = 't'").expect_err("unknown key");
        assert!(error.contains("unknown field `titel`"), "{error}");
        assert!(error.contains("line 2"), "{error}");
    }

    #[test]
    fn a_value_that_is_not_a_string_is_an_error() {
        assert!(TemplateFile::parse("message = 'm'\nimportance = 3").is_err());
    }

    #[test]
    fn name_is_source_folder_and_file_stem() {
        let name = |path: &str| template_name(Path::new(path));
        assert_eq!(name("github/push.toml").as_deref(), Some("github/push"));
        assert_eq!(
            name("/etc/templates/github/pull_request.closed.toml").as_deref(),
            Some("github/pull_request.closed")
        );
        assert_eq!(name("github/README.md"), None);
    }
}
