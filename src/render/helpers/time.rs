//! Helpers for times: a moment in UTC, a span between two moments, time elapsed until now.

use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

use super::{arg, as_number};

/// `{{date t}}`: `2019-05-15 15:20 UTC`; empty when `t` is missing, unset or not a time.
///
/// Takes RFC 3339 (`2019-05-15T15:20:30Z`), GitLab's `2019-05-15 15:20:30 UTC` and
/// `… +0200`, and Unix seconds as a number. Go's zero time (year 1) counts as unset.
pub(super) fn date(args: &[&Value]) -> Result<Value, String> {
    Ok(Value::String(parse(arg(args, 0)).map_or_else(
        String::new,
        |moment| {
            let utc = moment.to_offset(UtcOffset::UTC);
            format!(
                "{:04}-{:02}-{:02} {:02}:{:02} UTC",
                utc.year(),
                u8::from(utc.month()),
                utc.day(),
                utc.hour(),
                utc.minute()
            )
        },
    )))
}

/// `{{duration start end}}`: the span between two times (`12s`, `42m`, `2m 13s`, `2h 13m`,
/// `3d 4h`); `{{duration seconds}}` formats a number of seconds. Empty when a time is missing.
pub(super) fn duration(args: &[&Value]) -> Result<Value, String> {
    let seconds = match args {
        [single] => as_number(single),
        _ => span_seconds(parse(arg(args, 0)), parse(arg(args, 1))),
    };
    Ok(Value::String(seconds.map_or_else(String::new, human)))
}

/// `{{since t}}`: the time from `t` until now, formatted like `duration`.
pub(super) fn since(args: &[&Value]) -> Result<Value, String> {
    let seconds = span_seconds(parse(arg(args, 0)), Some(OffsetDateTime::now_utc()));
    Ok(Value::String(seconds.map_or_else(String::new, human)))
}

/// Seconds from `start` to `end`, when both are known.
fn span_seconds(start: Option<OffsetDateTime>, end: Option<OffsetDateTime>) -> Option<f64> {
    Some((end? - start?).as_seconds_f64())
}

/// Reads a moment from any of the forms [`date`] accepts.
fn parse(value: &Value) -> Option<OffsetDateTime> {
    let moment = match value {
        Value::String(text) => parse_text(text.trim())?,
        Value::Number(seconds) => OffsetDateTime::from_unix_timestamp(seconds.as_i64()?).ok()?,
        _ => return None,
    };
    (moment.year() > 1).then_some(moment)
}

/// RFC 3339, or GitLab's `YYYY-MM-DD HH:MM:SS UTC` / `YYYY-MM-DD HH:MM:SS +HHMM`.
fn parse_text(text: &str) -> Option<OffsetDateTime> {
    if let Ok(moment) = OffsetDateTime::parse(text, &Rfc3339) {
        return Some(moment);
    }
    if let Some(utc) = text.strip_suffix(" UTC") {
        let format = format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
        return PrimitiveDateTime::parse(utc, &format)
            .ok()
            .map(PrimitiveDateTime::assume_utc);
    }
    let format = format_description!(
        "[year]-[month]-[day] [hour]:[minute]:[second] [offset_hour sign:mandatory][offset_minute]"
    );
    OffsetDateTime::parse(text, &format).ok()
}

/// A span in its largest unit and, when not zero, the next one: `12s`, `2m 13s`, `3d 4h`.
/// Negative spans (clock skew) read `0s`.
fn human(seconds: f64) -> String {
    const UNITS: [(u64, &str); 4] = [(86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")];
    let total = if seconds.is_finite() && seconds > 0.0 {
        seconds.round() as u64
    } else {
        0
    };
    let Some(first) = UNITS.iter().position(|(size, _)| total >= *size) else {
        return "0s".to_owned();
    };
    let (size, unit) = UNITS[first];
    let mut text = format!("{}{unit}", total / size);
    if let Some(&(next_size, next_unit)) = UNITS.get(first + 1) {
        let next = total % size / next_size;
        if next > 0 {
            text.push_str(&format!(" {next}{next_unit}"));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::testing::ok;
    use super::human;

    #[test]
    fn date_shows_minutes_in_utc_with_the_zone() {
        let data = json!({"t": "2019-05-15T17:20:30+02:00"});
        assert_eq!(ok("{{date t}}", &data), "2019-05-15 15:20 UTC");
    }

    #[test]
    fn date_reads_fractions_gitlab_times_and_unix_seconds() {
        let cases = [
            (
                json!("2026-11-28T03:10:27.828316357Z"),
                "2026-11-28 03:10 UTC",
            ),
            (json!("2021-02-23 02:41:37 UTC"), "2021-02-23 02:41 UTC"),
            (json!("2021-02-23 04:41:37 +0200"), "2021-02-23 02:41 UTC"),
            (json!(1557933565), "2019-05-15 15:19 UTC"),
        ];
        for (input, expected) in cases {
            assert_eq!(
                ok("{{date t}}", &json!({ "t": input })),
                expected,
                "{input}"
            );
        }
    }

    #[test]
    fn date_is_empty_for_zero_time_garbage_and_missing_values() {
        for input in [
            json!("0001-01-01T00:00:00Z"),
            json!("yesterday"),
            json!(null),
            json!([1]),
        ] {
            assert_eq!(ok("[{{date t}}]", &json!({ "t": input })), "[]", "{input}");
        }
        assert_eq!(ok("[{{date}}]", &json!({})), "[]");
    }

    #[test]
    fn duration_between_two_times() {
        let data = json!({"a": "2026-11-28T03:04:12Z", "b": "2026-11-28T03:46:12Z", "c": "2026-11-28T05:17:40Z"});
        assert_eq!(ok("{{duration a b}}", &data), "42m");
        assert_eq!(ok("{{duration a c}}", &data), "2h 13m");
    }

    #[test]
    fn duration_of_a_number_of_seconds() {
        assert_eq!(ok("{{duration s}}", &json!({"s": 133})), "2m 13s");
        assert_eq!(ok("{{duration s}}", &json!({"s": 12.4})), "12s");
    }

    #[test]
    fn duration_is_empty_when_a_time_is_missing_or_unset() {
        let data = json!({"a": "2026-11-28T03:04:12Z", "zero": "0001-01-01T00:00:00Z"});
        assert_eq!(ok("[{{duration a missing}}]", &data), "[]");
        assert_eq!(ok("[{{duration a zero}}]", &data), "[]");
        assert_eq!(ok("[{{duration}}]", &data), "[]");
    }

    #[test]
    fn human_durations_show_two_units_at_most() {
        assert_eq!(human(12.0), "12s");
        assert_eq!(human(42.0 * 60.0), "42m");
        assert_eq!(human(133.0), "2m 13s");
        assert_eq!(human(2.0 * 3600.0 + 13.0 * 60.0 + 59.0), "2h 13m");
        assert_eq!(human(3.0 * 86_400.0 + 4.0 * 3600.0 + 5.0), "3d 4h");
        assert_eq!(human(86_400.0), "1d");
        assert_eq!(human(0.2), "0s");
        assert_eq!(human(-30.0), "0s");
    }

    #[test]
    fn since_measures_from_a_time_to_now() {
        let ten_minutes_ago = time::OffsetDateTime::now_utc() - time::Duration::minutes(10);
        let rendered = ok(
            "{{since t}}",
            &json!({ "t": ten_minutes_ago.unix_timestamp() }),
        );
        assert!(rendered == "10m" || rendered == "10m 1s", "{rendered}");
        assert_eq!(ok("[{{since missing}}]", &json!({})), "[]");
    }
}
