//! Where template files come from: the built-in set embedded at build time, and a user folder
//! laid out the same way (`<dir>/<source>/<event>[.<action>].toml`).

use std::fs;
use std::path::{Path, PathBuf};

use include_dir::{Dir, include_dir};

use super::error::{Problem, TemplateProblem};

/// The `templates/` folder of this crate, embedded at build time.
static BUILT_IN: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/templates");

/// Every built-in template file: its path inside `templates/` and its text (`None` if not UTF-8).
pub(super) fn built_in() -> impl Iterator<Item = (&'static Path, Option<&'static str>)> {
    BUILT_IN
        .dirs()
        .flat_map(Dir::files)
        .filter(|file| file.path().extension().is_some_and(|ext| ext == "toml"))
        .map(|file| (file.path(), file.contents_utf8()))
}

/// Every `*.toml` file in the source folders of `dir`, and what is wrong with the layout.
///
/// Names starting with `.` are skipped (editor files, Kubernetes' `..data` links); symbolic
/// links are followed. A `.toml` file at the top, or in a folder inside a source folder, is
/// reported rather than silently ignored.
pub(super) fn user_files(dir: &Path) -> (Vec<PathBuf>, Vec<TemplateProblem>) {
    let mut files = Vec::new();
    let mut problems = Vec::new();
    for (path, is_dir) in visible_entries(dir, &mut problems) {
        if is_dir {
            for (inner, inner_is_dir) in visible_entries(&path, &mut problems) {
                if inner_is_dir {
                    if contains_toml(&inner) {
                        problems.push(misplaced(&inner));
                    }
                } else if is_toml(&inner) {
                    files.push(inner);
                }
            }
        } else if is_toml(&path) {
            problems.push(misplaced(&path));
        }
    }
    files.sort();
    (files, problems)
}

/// The entries of `dir` whose names do not start with `.`, each with whether it is a folder.
fn visible_entries(dir: &Path, problems: &mut Vec<TemplateProblem>) -> Vec<(PathBuf, bool)> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) => {
            problems.push(unreadable(dir, error));
            return Vec::new();
        }
    };
    let mut visible = Vec::new();
    for entry in entries {
        let path = match entry {
            Ok(entry) => entry.path(),
            Err(error) => {
                problems.push(unreadable(dir, error));
                continue;
            }
        };
        let hidden = path
            .file_name()
            .is_some_and(|name| name.as_encoded_bytes().starts_with(b"."));
        if hidden {
            continue;
        }
        match fs::metadata(&path) {
            Ok(metadata) => visible.push((path, metadata.is_dir())),
            Err(error) => problems.push(unreadable(&path, error)),
        }
    }
    visible
}

/// Whether a folder directly holds a `.toml` file (only asked of folders inside source folders).
fn contains_toml(dir: &Path) -> bool {
    fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .any(|entry| is_toml(&entry.path()))
}

fn is_toml(path: &Path) -> bool {
    path.extension().is_some_and(|ext| ext == "toml")
}

fn misplaced(path: &Path) -> TemplateProblem {
    TemplateProblem {
        file: path.display().to_string(),
        problem: Problem::Misplaced,
    }
}

fn unreadable(path: &Path, error: std::io::Error) -> TemplateProblem {
    TemplateProblem {
        file: path.display().to_string(),
        problem: Problem::Unreadable(error),
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::{built_in, user_files};
    use crate::render::error::Problem;

    #[test]
    fn built_in_set_has_a_default_for_every_source() {
        let paths: Vec<String> = built_in()
            .map(|(path, _)| path.display().to_string())
            .collect();
        for source in [
            "github",
            "gitea",
            "gitlab",
            "alertmanager",
            "grafana",
            "generic",
        ] {
            let default = format!("{source}/default.toml");
            assert!(paths.contains(&default), "{default} missing from {paths:?}");
        }
    }

    #[test]
    fn user_files_lists_toml_in_source_folders_and_skips_the_rest() {
        let dir = tempfile::tempdir().expect("temp dir");
        fs::create_dir_all(dir.path().join("github")).expect("mkdir");
        fs::create_dir_all(dir.path().join(".git")).expect("mkdir");
        fs::write(dir.path().join("github/push.toml"), "").expect("write");
        fs::write(dir.path().join("github/notes.md"), "").expect("write");
        fs::write(dir.path().join("github/.push.toml.swp"), "").expect("write");
        fs::write(dir.path().join(".git/x.toml"), "").expect("write");
        fs::write(dir.path().join("README.md"), "").expect("write");

        let (files, problems) = user_files(dir.path());

        assert_eq!(files, [dir.path().join("github/push.toml")]);
        assert!(problems.is_empty(), "{problems:?}");
    }

    #[test]
    fn user_files_reports_toml_outside_the_layout() {
        let dir = tempfile::tempdir().expect("temp dir");
        fs::create_dir_all(dir.path().join("github/deep")).expect("mkdir");
        fs::write(dir.path().join("push.toml"), "").expect("write");
        fs::write(dir.path().join("github/deep/push.toml"), "").expect("write");

        let (files, problems) = user_files(dir.path());

        assert!(files.is_empty());
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems
                .iter()
                .all(|p| matches!(p.problem, Problem::Misplaced))
        );
    }

    #[test]
    fn user_files_reports_a_missing_folder() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (files, problems) = user_files(&dir.path().join("absent"));
        assert!(files.is_empty());
        assert!(matches!(problems[..], [ref p] if matches!(p.problem, Problem::Unreadable(_))));
    }
}
