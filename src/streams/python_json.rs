//! JSON written the way Python's `json.dumps` writes it with its defaults, which is how the
//! Pushjet server and its connector wrote every frame (§1.13): `", "` between items, `": "` after
//! keys, and everything outside printable ASCII escaped as `\uXXXX` (UTF-16, so a character
//! beyond the Basic Multilingual Plane becomes a surrogate pair). Keys come out in the order the
//! value gives them; the protocol's shapes declare their fields sorted, as `sort_keys=True` would.

use std::io::{self, Write};

use serde::Serialize;
use serde_json::ser::Formatter;

/// Python's `json.dumps` separators and `ensure_ascii` escaping.
struct PythonFormatter;

impl Formatter for PythonFormatter {
    fn begin_array_value<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_key<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_value<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        writer.write_all(b": ")
    }

    fn write_string_fragment<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        for character in fragment.chars() {
            if (' '..='~').contains(&character) {
                writer.write_all(&[character as u8])?;
            } else {
                let mut units = [0_u16; 2];
                for unit in character.encode_utf16(&mut units) {
                    write!(writer, "\\u{unit:04x}")?;
                }
            }
        }
        Ok(())
    }
}

/// `value` as Python's `json.dumps(value)` writes it.
pub fn to_string<T: Serialize + ?Sized>(value: &T) -> String {
    let mut bytes = Vec::new();
    let mut serializer = serde_json::Serializer::with_formatter(&mut bytes, PythonFormatter);
    match value.serialize(&mut serializer) {
        // The formatter writes ASCII only.
        Ok(()) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(error) => format!("{{\"error\": \"{error}\"}}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separators_and_escapes_are_pythons() {
        // What Python 3 prints for json.dumps({"a": [1, 2], "b": "é\u{1F600}\"\\\n\u{7f}", "c": None})
        let value =
            serde_json::json!({"a": [1, 2], "b": "é\u{1F600}\"\\\n\u{7f}\u{1f}", "c": null});
        assert_eq!(
            to_string(&value),
            r#"{"a": [1, 2], "b": "\u00e9\ud83d\ude00\"\\\n\u007f\u001f", "c": null}"#
        );
    }

    #[test]
    fn an_empty_object_and_array_have_no_separators() {
        assert_eq!(
            to_string(&serde_json::json!({"a": {}, "b": []})),
            r#"{"a": {}, "b": []}"#
        );
    }
}
