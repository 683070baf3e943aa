//! Helpers for lists and counts: joining, measuring, taking the first few, adding up.

use serde_json::{Number, Value};

use super::{arg, as_count, as_number, as_text};

/// `{{join list ", "}}`: the items as text between separators (default `, `); nulls are skipped,
/// a single value that is not a list renders as itself.
pub(super) fn join(args: &[&Value]) -> Result<Value, String> {
    let separator = match arg(args, 1) {
        Value::Null => ", ".to_owned(),
        other => as_text(other),
    };
    let joined = match arg(args, 0) {
        Value::Array(items) => items
            .iter()
            .filter(|item| !item.is_null())
            .map(as_text)
            .collect::<Vec<_>>()
            .join(&separator),
        other => as_text(other),
    };
    Ok(Value::String(joined))
}

/// `{{len x}}`: items of a list, fields of an object, characters of a string; 0 for anything else.
pub(super) fn len(args: &[&Value]) -> Result<Value, String> {
    let length = match arg(args, 0) {
        Value::Array(items) => items.len(),
        Value::Object(fields) => fields.len(),
        Value::String(text) => text.chars().count(),
        Value::Null | Value::Bool(_) | Value::Number(_) => 0,
    };
    Ok(Value::from(length))
}

/// `{{#each (take list 5)}}`: the first items of a list (none when it is not a list).
pub(super) fn take(args: &[&Value]) -> Result<Value, String> {
    let count = as_count(arg(args, 1), "the number of items")?;
    let items = arg(args, 0).as_array().map_or(&[][..], Vec::as_slice);
    Ok(Value::Array(items.iter().take(count).cloned().collect()))
}

/// `{{excess list 5}}`: how many items come after the first 5 (0 when there are no more), the
/// `N` of `… and N more` next to `take`.
pub(super) fn excess(args: &[&Value]) -> Result<Value, String> {
    let count = as_count(arg(args, 1), "the number of items")?;
    let length = arg(args, 0).as_array().map_or(0, Vec::len);
    Ok(Value::from(length.saturating_sub(count)))
}

/// `{{#each (where alerts "labels.severity" "critical")}}`: the items of a list whose field (a
/// dotted path) equals the value.
pub(super) fn where_(args: &[&Value]) -> Result<Value, String> {
    let path = arg(args, 1)
        .as_str()
        .ok_or("the second argument must be a field name, in quotes")?;
    let wanted = arg(args, 2);
    let items = arg(args, 0).as_array().map_or(&[][..], Vec::as_slice);
    let field = |item: &Value| -> Value {
        path.split('.')
            .try_fold(item, |value, key| value.get(key))
            .cloned()
            .unwrap_or(Value::Null)
    };
    Ok(Value::Array(
        items
            .iter()
            .filter(|item| field(item) == *wanted)
            .cloned()
            .collect(),
    ))
}

/// `{{add a b c}}`: the sum of numbers (numeric strings count; null and missing are 0).
pub(super) fn add(args: &[&Value]) -> Result<Value, String> {
    let mut sum = 0.0;
    for value in args {
        sum += match value {
            Value::Null => 0.0,
            other => as_number(other).ok_or_else(|| format!("{other} is not a number"))?,
        };
    }
    Ok(number_value(sum))
}

/// `{{sub a b}}`: `a` minus `b` (numeric strings count; null and missing are 0).
pub(super) fn sub(args: &[&Value]) -> Result<Value, String> {
    let operand = |index: usize| match arg(args, index) {
        Value::Null => Ok(0.0),
        other => as_number(other).ok_or_else(|| format!("{other} is not a number")),
    };
    Ok(number_value(operand(0)? - operand(1)?))
}

/// A whole result as an integer (`5`, not `5.0`), any other as a float.
fn number_value(number: f64) -> Value {
    if number.fract() == 0.0 && number.abs() < 9.0e15 {
        Value::from(number as i64)
    } else {
        Number::from_f64(number).map_or(Value::Null, Value::Number)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::testing::{ok, render};

    #[test]
    fn join_puts_separator_between_items_and_skips_nulls() {
        let data = json!({"tags": ["prod", null, "web", 3]});
        assert_eq!(ok("{{join tags \" · \"}}", &data), "prod · web · 3");
        assert_eq!(ok("{{join tags}}", &data), "prod, web, 3");
    }

    #[test]
    fn join_of_a_single_value_or_nothing() {
        assert_eq!(ok("{{join s \"-\"}}", &json!({"s": "solo"})), "solo");
        assert_eq!(ok("[{{join missing \"-\"}}]", &json!({})), "[]");
    }

    #[test]
    fn len_counts_items_fields_and_characters() {
        let data = json!({"list": [1, 2, 3], "map": {"a": 1}, "s": "héllo", "n": 7});
        assert_eq!(
            ok(
                "{{len list}} {{len map}} {{len s}} {{len n}} {{len missing}}",
                &data
            ),
            "3 1 5 0 0"
        );
    }

    #[test]
    fn len_works_in_a_condition() {
        let template = "{{#if (gt (len list) 2)}}many{{else}}few{{/if}}";
        assert_eq!(ok(template, &json!({"list": [1, 2, 3]})), "many");
        assert_eq!(ok(template, &json!({})), "few");
    }

    #[test]
    fn take_keeps_the_first_items() {
        let data = json!({"list": ["a", "b", "c"]});
        assert_eq!(
            ok("{{#each (take list 2)}}{{this}};{{/each}}", &data),
            "a;b;"
        );
        assert_eq!(
            ok("{{#each (take list 9)}}{{this}};{{/each}}", &data),
            "a;b;c;"
        );
        assert_eq!(ok("[{{#each (take missing 2)}}x{{/each}}]", &data), "[]");
        assert!(render("{{take list}}", &data).is_err());
    }

    #[test]
    fn excess_counts_items_past_the_first_n() {
        let data = json!({"list": [1, 2, 3, 4, 5, 6, 7]});
        assert_eq!(
            ok(
                "{{excess list 5}} {{excess list 9}} {{excess missing 1}}",
                &data
            ),
            "2 0 0"
        );
        let template = "{{#with (excess list 5) as |n|}}… and {{n}} more{{/with}}";
        assert_eq!(ok(template, &data), "… and 2 more");
        assert_eq!(ok(template, &json!({"list": [1]})), "");
    }

    #[test]
    fn where_keeps_items_whose_field_matches() {
        let data = json!({"alerts": [
            {"labels": {"severity": "critical"}, "n": 1},
            {"labels": {"severity": "warning"}, "n": 2},
            {"labels": {}, "n": 3},
            "not an object"
        ]});
        let template = "{{#each (where alerts \"labels.severity\" \"critical\")}}{{n}}{{/each}}";
        assert_eq!(ok(template, &data), "1");
        assert_eq!(ok("{{len (where alerts \"n\" 2)}}", &data), "1");
        assert_eq!(ok("{{len (where missing \"n\" 2)}}", &data), "0");
        assert!(render("{{where alerts}}", &data).is_err());
    }

    #[test]
    fn sub_subtracts_treating_null_as_zero() {
        let data = json!({"total": 4, "shown": "2"});
        assert_eq!(
            ok(
                "{{sub total shown}} {{sub total missing}} {{sub shown total}}",
                &data
            ),
            "2 4 -2"
        );
        assert!(render("{{sub total \"x\"}}", &data).is_err());
    }

    #[test]
    fn add_sums_numbers_treating_null_as_zero() {
        let data = json!({"a": 2, "b": "3", "half": 0.5});
        assert_eq!(ok("{{add a b missing}}", &data), "5");
        assert_eq!(ok("{{add a half}}", &data), "2.5");
        assert_eq!(ok("{{add}}", &data), "0");
        let error = render("{{add a \"x\"}}", &data).expect_err("not a number");
        assert!(error.contains("add"), "{error}");
    }
}
