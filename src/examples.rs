//! The bundled example payloads (`examples/*.json`): one real payload per sender, and one per
//! event where the event's payload differs too much. `check` renders every template against
//! them; the console's template playground offers them.

use include_dir::{Dir, include_dir};

use crate::sources::SourceKind;

/// The `examples/` folder of this crate, embedded at build time.
static EXAMPLES: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/examples");

/// The example payload for a sender's event: the event's own (`<source>.<event>.json`) if
/// bundled, else the sender's (`<source>.json`), else `{}`.
pub(crate) fn for_event(source: SourceKind, event: &str) -> &'static [u8] {
    [format!("{source}.{event}.json"), format!("{source}.json")]
        .iter()
        .find_map(|name| EXAMPLES.get_file(name))
        .map_or(b"{}", |file| file.contents())
}

/// Every example payload's file name (`github.json`, `github.pull_request.json`, ...), sorted.
pub(crate) fn names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = EXAMPLES
        .files()
        .filter_map(|file| file.path().to_str())
        .filter(|name| name.ends_with(".json"))
        .collect();
    names.sort_unstable();
    names
}

/// The example payload named `name` (as [`names`] lists it).
pub(crate) fn get(name: &str) -> Option<&'static [u8]> {
    names()
        .contains(&name)
        .then(|| EXAMPLES.get_file(name).map(|file| file.contents()))
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sender_has_an_example_listed_and_nothing_else_is() {
        let names = names();
        for source in SourceKind::ALL {
            assert!(
                names.contains(&format!("{source}.json").as_str()),
                "{source}"
            );
        }
        assert!(names.iter().all(|name| name.ends_with(".json")));
        assert!(get("github.json").is_some());
        assert!(get("README.md").is_none());
        assert!(get("reference/sink.rs").is_none());
    }
}
