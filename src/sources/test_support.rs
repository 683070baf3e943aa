//! Helpers shared by the sources' tests (and the signature checks'): fixtures and header maps.

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};

/// The shared fixtures folder.
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

/// The bytes of one fixture.
pub(super) fn fixture(dir: &str, file: &str) -> Vec<u8> {
    let path = format!("{FIXTURES}/{dir}/{file}");
    std::fs::read(&path).unwrap_or_else(|error| panic!("{path}: {error}"))
}

/// The names of a fixture folder's `.json` files, sorted.
pub(super) fn fixture_names(dir: &str) -> Vec<String> {
    let path = format!("{FIXTURES}/{dir}");
    let mut names: Vec<String> = std::fs::read_dir(&path)
        .unwrap_or_else(|error| panic!("{path}: {error}"))
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".json"))
        .collect();
    names.sort();
    assert!(!names.is_empty(), "no fixtures in {path}");
    names
}

/// A header map from name/value pairs.
pub(crate) fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).expect("test header name"),
            HeaderValue::from_str(value).expect("test header value"),
        );
    }
    map
}

/// Just `Content-Type: application/json`.
pub(super) fn json_headers() -> HeaderMap {
    headers(&[("Content-Type", "application/json")])
}

/// A JSON body decoded on a route with the default options (the sender recognised by
/// `SOURCE=auto`), and its first notification's template tree.
pub(super) fn decode_json(body: &[u8]) -> (super::Decoded, serde_json::Value) {
    let decoded = super::decode(&json_headers(), "", body, &super::SourceOptions::new("chat"))
        .unwrap_or_else(|error| panic!("{error}"));
    let tree = decoded.contexts[0].tree.clone();
    (decoded, tree)
}
