//! Helpers that shape one value into text: choosing, cutting, casing, encoding.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;

use super::{arg, as_count, as_number, as_text};

/// `{{default a b c}}`: the first argument that is not null, missing or empty (`""`, `[]`, `{}`).
pub(super) fn default(args: &[&Value]) -> Result<Value, String> {
    let is_empty = |value: &Value| match value {
        Value::Null => true,
        Value::String(text) => text.is_empty(),
        Value::Array(items) => items.is_empty(),
        Value::Object(fields) => fields.is_empty(),
        Value::Bool(_) | Value::Number(_) => false,
    };
    Ok(args
        .iter()
        .find(|value| !is_empty(value))
        .map_or(Value::Null, |value| (*value).clone()))
}

/// `{{truncate text 60}}`: at most that many characters, the last one `…` when text was cut.
pub(super) fn truncate(args: &[&Value]) -> Result<Value, String> {
    let text = as_text(arg(args, 0));
    let limit = as_count(arg(args, 1), "the length")?;
    if text.chars().count() <= limit {
        return Ok(Value::String(text));
    }
    if limit == 0 {
        return Ok(Value::String(String::new()));
    }
    let kept: String = text.chars().take(limit - 1).collect();
    Ok(Value::String(format!("{}…", kept.trim_end())))
}

/// `{{humanize action}}`: a machine name in words: `converted_to_draft` is `converted to draft`,
/// `DetailedStatus` is unchanged but for its underscores and dashes.
pub(super) fn humanize(args: &[&Value]) -> Result<Value, String> {
    let text = as_text(arg(args, 0)).replace(['_', '-'], " ");
    Ok(Value::String(
        text.split_whitespace().collect::<Vec<_>>().join(" "),
    ))
}

/// `{{fit 60 "PR opened: " repository.full_name "#" number " " title}}`: the parts joined, at most
/// that many characters: while too long, the longest part is cut (ending in `…`), so the name of
/// the object survives and its long free text gives way. A path (`group/subgroup/project`) loses
/// its namespace first, from the left (`…/project`, then `project`), never its last segment
/// while the namespace lasts.
pub(super) fn fit(args: &[&Value]) -> Result<Value, String> {
    let limit = as_count(arg(args, 0), "the length")?;
    let mut parts: Vec<String> = args.iter().skip(1).map(|part| as_text(part)).collect();
    let count = |parts: &[String]| parts.iter().map(|part| part.chars().count()).sum::<usize>();
    while count(&parts) > limit {
        let excess = count(&parts) - limit;
        let Some((index, longest)) = parts
            .iter()
            .map(|part| part.chars().count())
            .enumerate()
            .max_by_key(|(index, length)| (*length, usize::MAX - index))
        else {
            break;
        };
        if longest <= 1 {
            break;
        }
        let keep = longest.saturating_sub(excess).max(1);
        let part = &parts[index];
        // ` (a long branch)` is cut inside its brackets: ` (a long…)`.
        let closing = part
            .strip_suffix(')')
            .filter(|inner| inner.contains('(') && keep > 3);
        parts[index] = match closing {
            Some(inner) => {
                let cut = truncate(&[&Value::String(inner.to_owned()), &Value::from(keep - 1)])?;
                format!("{})", as_text(&cut))
            }
            None if is_path(part) => cut_path(part, keep),
            None => as_text(&truncate(&[
                &Value::String(part.clone()),
                &Value::from(keep),
            ])?),
        };
    }
    let joined: String = parts.concat();
    let shown: String = joined.chars().take(limit).collect();
    Ok(Value::String(shown.trim_end().to_owned()))
}

/// True for a part that is a path of names: it has a `/` and no white space.
fn is_path(part: &str) -> bool {
    part.contains('/') && !part.contains(char::is_whitespace) && !part.contains("://")
}

/// A path cut to at most `keep` characters from the left, at a `/`: `…/subgroup/project`, then
/// `…/project`, then `project`; only a last segment longer than `keep` is itself cut.
fn cut_path(part: &str, keep: usize) -> String {
    for (at, _) in part.match_indices('/') {
        let rest = &part[at..];
        if rest.chars().count() < keep {
            return format!("…{rest}");
        }
    }
    let last = part.rsplit('/').next().unwrap_or(part);
    if last.chars().count() <= keep {
        return last.to_owned();
    }
    let cut: String = last.chars().take(keep.saturating_sub(1)).collect();
    format!("{cut}…")
}

/// `{{wrap "#" number}}`, `{{wrap " (" branch ")"}}`: the value between the texts around it, or
/// nothing at all when the value is missing or empty, so no `#` or `()` is left alone.
pub(super) fn wrap(args: &[&Value]) -> Result<Value, String> {
    let value = as_text(arg(args, 1));
    if value.trim().is_empty() {
        return Ok(Value::String(String::new()));
    }
    let (before, after) = (as_text(arg(args, 0)), as_text(arg(args, 2)));
    Ok(Value::String(format!("{before}{value}{after}")))
}

/// `{{pick conclusion "success" "Passed" "failure" "FAILED" "Finished"}}`: the text paired with
/// the first key equal to the value; the last argument, when unpaired, is the fallback.
pub(super) fn pick(args: &[&Value]) -> Result<Value, String> {
    let value = as_text(arg(args, 0));
    let choices = args.get(1..).unwrap_or_default();
    let found = choices
        .chunks_exact(2)
        .find(|pair| as_text(pair[0]) == value)
        .map(|pair| pair[1]);
    let fallback = choices.chunks_exact(2).remainder().first().copied();
    Ok(found.or(fallback).cloned().unwrap_or(Value::Null))
}

/// `{{upper text}}`: upper case.
pub(super) fn upper(args: &[&Value]) -> Result<Value, String> {
    Ok(Value::String(as_text(arg(args, 0)).to_uppercase()))
}

/// `{{lower text}}`: lower case.
pub(super) fn lower(args: &[&Value]) -> Result<Value, String> {
    Ok(Value::String(as_text(arg(args, 0)).to_lowercase()))
}

/// `{{first_line text}}`: the first line that is not blank, without surrounding white space.
pub(super) fn first_line(args: &[&Value]) -> Result<Value, String> {
    let text = as_text(arg(args, 0));
    let line = text.lines().map(str::trim).find(|line| !line.is_empty());
    Ok(Value::String(line.unwrap_or_default().to_owned()))
}

/// `{{short_sha sha}}`: the first 7 characters of a commit id.
pub(super) fn short_sha(args: &[&Value]) -> Result<Value, String> {
    Ok(Value::String(
        as_text(arg(args, 0)).chars().take(7).collect(),
    ))
}

/// `{{ref_name ref}}`: a branch or tag name from a Git ref (`refs/heads/main` is `main`,
/// `refs/tags/v1.0` is `v1.0`); other text is kept as it is.
pub(super) fn ref_name(args: &[&Value]) -> Result<Value, String> {
    let full = as_text(arg(args, 0));
    let short = ["refs/heads/", "refs/tags/"]
        .iter()
        .find_map(|prefix| full.strip_prefix(prefix))
        .unwrap_or(&full);
    Ok(Value::String(short.to_owned()))
}

/// `{{#if (starts_with ref "refs/tags/")}}`: whether the text begins with the prefix.
pub(super) fn starts_with(args: &[&Value]) -> Result<Value, String> {
    let text = as_text(arg(args, 0));
    Ok(Value::Bool(text.starts_with(&as_text(arg(args, 1)))))
}

/// `{{pluralize n "commit"}}` is `1 commit` or `3 commits`; a third argument gives the plural
/// when adding `s` is wrong (`{{pluralize n "entry" "entries"}}`). A missing count renders empty.
pub(super) fn pluralize(args: &[&Value]) -> Result<Value, String> {
    let count = arg(args, 0);
    if count.is_null() {
        return Ok(Value::String(String::new()));
    }
    let number =
        as_number(count).ok_or_else(|| format!("the count must be a number, not {count}"))?;
    let singular = arg(args, 1)
        .as_str()
        .filter(|word| !word.is_empty())
        .ok_or("the second argument must be the singular word, in quotes")?;
    let word = if number == 1.0 {
        singular.to_owned()
    } else {
        arg(args, 2)
            .as_str()
            .map_or_else(|| format!("{singular}s"), str::to_owned)
    };
    Ok(Value::String(format!("{} {word}", as_text(count).trim())))
}

/// The characters RFC 3986 leaves unencoded: letters, digits and `-._~`.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `{{url_encode text}}`: percent-encodes everything but letters, digits and `-._~`, for a
/// query value or a path segment.
pub(super) fn url_encode(args: &[&Value]) -> Result<Value, String> {
    let text = as_text(arg(args, 0));
    Ok(Value::String(
        utf8_percent_encode(&text, UNRESERVED).to_string(),
    ))
}

/// `{{http_url x}}`: `x` when it is an absolute `http://` or `https://` URL with a host, else
/// empty, so `{{default (http_url a) (http_url b)}}` picks the first usable link.
pub(super) fn http_url(args: &[&Value]) -> Result<Value, String> {
    let text = as_text(arg(args, 0));
    let text = text.trim();
    let usable = url::Url::parse(text).is_ok_and(|url| {
        matches!(url.scheme(), "http" | "https") && url.host_str().is_some_and(|h| !h.is_empty())
    });
    Ok(Value::String(if usable {
        text.to_owned()
    } else {
        String::new()
    }))
}

/// `{{short_host instance}}`: a host name for a title: without scheme, port and path, and a DNS
/// name cut to its first label (`db-1.example.internal:9100` is `db-1`); IP addresses stay whole.
pub(super) fn short_host(args: &[&Value]) -> Result<Value, String> {
    let text = as_text(arg(args, 0));
    let text = text.trim();
    let without_scheme = text.split_once("://").map_or(text, |(_, rest)| rest);
    let authority = without_scheme
        .split(['/', '?', '#'])
        .next()
        .unwrap_or_default();
    let host = if let Some(bracketed) = authority.strip_prefix('[') {
        bracketed.split(']').next().unwrap_or_default()
    } else if authority.matches(':').count() > 1 {
        authority
    } else {
        authority.split(':').next().unwrap_or_default()
    };
    let is_ip = host.parse::<std::net::IpAddr>().is_ok();
    let short = if is_ip {
        host
    } else {
        host.split('.').next().unwrap_or_default()
    };
    Ok(Value::String(short.to_owned()))
}

/// `{{json value}}`: the value as compact JSON; null and missing render empty, like everywhere.
pub(super) fn json(args: &[&Value]) -> Result<Value, String> {
    Ok(Value::String(match arg(args, 0) {
        Value::Null => String::new(),
        value => value.to_string(),
    }))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::testing::{ok, render};

    #[test]
    fn default_picks_first_argument_that_is_not_empty() {
        let data = json!({"empty": "", "none": null, "list": [], "name": "octocat"});
        assert_eq!(
            ok("{{default empty none list missing name}}", &data),
            "octocat"
        );
        assert_eq!(ok("{{default missing \"fallback\"}}", &data), "fallback");
        assert_eq!(ok("{{default empty none}}", &data), "");
    }

    #[test]
    fn default_keeps_zero_and_false() {
        assert_eq!(ok("{{default n 5}}", &json!({"n": 0})), "0");
        assert_eq!(ok("{{default b true}}", &json!({"b": false})), "false");
    }

    #[test]
    fn truncate_cuts_characters_and_ends_with_ellipsis() {
        let data = json!({"s": "héllo wörld"});
        assert_eq!(ok("{{truncate s 7}}", &data), "héllo…");
        assert_eq!(ok("{{truncate s 11}}", &data), "héllo wörld");
        assert_eq!(ok("{{truncate s 0}}", &data), "");
        assert_eq!(ok("{{truncate missing 5}}", &data), "");
    }

    #[test]
    fn truncate_without_a_length_is_an_error_naming_the_helper() {
        let error = render("{{truncate s}}", &json!({"s": "x"})).expect_err("no length");
        assert!(error.contains("truncate"), "{error}");
        assert!(render("{{truncate s \"ten\"}}", &json!({"s": "x"})).is_err());
    }

    #[test]
    fn humanize_turns_machine_names_into_words() {
        let data = json!({"a": "converted_to_draft", "b": "in-progress", "c": "opened"});
        assert_eq!(
            ok(
                "{{humanize a}}|{{humanize b}}|{{humanize c}}|{{humanize missing}}",
                &data
            ),
            "converted to draft|in progress|opened|"
        );
    }

    #[test]
    fn fit_cuts_the_longest_part_first() {
        let data = json!({"repo": "octo/hello", "title": "A very long pull request title indeed"});
        assert_eq!(
            ok("{{fit 30 \"PR: \" repo \"#\" 12 \" \" title}}", &data),
            "PR: octo/hello#12 A very long…"
        );
        assert_eq!(
            ok("{{fit 80 \"PR: \" repo \"#\" 12 \" \" title}}", &data),
            "PR: octo/hello#12 A very long pull request title indeed"
        );
        assert_eq!(ok("[{{fit 10 missing}}]", &data), "[]");
        assert!(render("{{fit \"x\" repo}}", &data).is_err());
    }

    #[test]
    fn fit_cuts_a_path_from_the_left_keeping_the_project_and_the_number() {
        let data = json!({"path": "demo-group/a-subgroup/test-project", "iid": 3});
        let title = |limit: usize| {
            ok(
                &format!("{{{{fit {limit} \"MR opened: \" path \"!\" iid}}}}"),
                &data,
            )
        };
        assert_eq!(title(80), "MR opened: demo-group/a-subgroup/test-project!3");
        assert_eq!(title(40), "MR opened: …/a-subgroup/test-project!3");
        assert_eq!(title(30), "MR opened: …/test-project!3");
        assert_eq!(title(26), "MR opened: test-project!3");
        assert_eq!(title(20), "MR opened: test-p…!3");
    }

    #[test]
    fn wrap_puts_text_around_a_value_only_when_there_is_one() {
        let data = json!({"n": 12, "b": "main", "e": ""});
        assert_eq!(
            ok(
                "{{wrap \"#\" n}}|{{wrap \" (\" b \")\"}}|{{wrap \"(\" e \")\"}}|{{wrap \"#\" missing}}",
                &data
            ),
            "#12| (main)||"
        );
    }

    #[test]
    fn pick_chooses_the_text_paired_with_the_value() {
        let template = "{{pick c \"success\" \"Passed\" \"failure\" \"FAILED\" \"Finished\"}}";
        assert_eq!(ok(template, &json!({"c": "failure"})), "FAILED");
        assert_eq!(ok(template, &json!({"c": "neutral"})), "Finished");
        assert_eq!(ok(template, &json!({})), "Finished");
        assert_eq!(ok("[{{pick c \"a\" \"A\"}}]", &json!({"c": "b"})), "[]");
    }

    #[test]
    fn fit_cuts_inside_brackets_and_keeps_them_closed() {
        let data = json!({"branch": "a-very-long-branch-name-indeed"});
        assert_eq!(
            ok(
                "{{fit 24 \"FAILED: job\" (wrap \" (\" branch \")\")}}",
                &data
            ),
            "FAILED: job (a-very-lo…)"
        );
    }

    #[test]
    fn upper_and_lower_change_case_and_render_other_values_as_text() {
        let data = json!({"s": "Firing", "n": 3});
        assert_eq!(
            ok("{{upper s}} {{lower s}} {{upper n}}", &data),
            "FIRING firing 3"
        );
        assert_eq!(ok("[{{upper missing}}]", &data), "[]");
    }

    #[test]
    fn first_line_skips_blank_lines_and_trims() {
        let data = json!({"m": "\n  Fix typo in docs  \r\n\r\nLonger explanation"});
        assert_eq!(ok("{{first_line m}}", &data), "Fix typo in docs");
        assert_eq!(ok("[{{first_line missing}}]", &data), "[]");
    }

    #[test]
    fn short_sha_keeps_seven_characters() {
        let data = json!({"id": "6113728f27ae82c7b1a177c8d03f9e96e0adf246", "short": "abc"});
        assert_eq!(
            ok("{{short_sha id}} {{short_sha short}}", &data),
            "6113728 abc"
        );
    }

    #[test]
    fn ref_name_strips_branch_and_tag_prefixes() {
        let template = "{{ref_name a}} {{ref_name b}} {{ref_name c}} {{ref_name d}}";
        let data = json!({"a": "refs/heads/feature/x", "b": "refs/tags/v1.0", "c": "refs/pull/1/merge", "d": "main"});
        assert_eq!(ok(template, &data), "feature/x v1.0 refs/pull/1/merge main");
    }

    #[test]
    fn starts_with_tests_a_prefix() {
        let template = "{{#if (starts_with r \"refs/tags/\")}}tag{{else}}branch{{/if}}";
        assert_eq!(ok(template, &json!({"r": "refs/tags/v1"})), "tag");
        assert_eq!(ok(template, &json!({"r": "refs/heads/main"})), "branch");
        assert_eq!(ok(template, &json!({})), "branch");
    }

    #[test]
    fn pluralize_uses_singular_for_one_and_adds_s_otherwise() {
        assert_eq!(ok("{{pluralize 1 \"commit\"}}", &json!({})), "1 commit");
        assert_eq!(ok("{{pluralize 3 \"commit\"}}", &json!({})), "3 commits");
        assert_eq!(ok("{{pluralize 0 \"commit\"}}", &json!({})), "0 commits");
        assert_eq!(
            ok("{{pluralize n \"commit\"}}", &json!({"n": "1"})),
            "1 commit"
        );
        assert_eq!(ok("[{{pluralize n \"commit\"}}]", &json!({})), "[]");
    }

    #[test]
    fn pluralize_takes_an_explicit_plural() {
        let template = "{{pluralize n \"entry\" \"entries\"}}";
        assert_eq!(ok(template, &json!({"n": 2})), "2 entries");
        assert_eq!(ok(template, &json!({"n": 1})), "1 entry");
    }

    #[test]
    fn pluralize_rejects_a_count_that_is_not_a_number() {
        let error = render("{{pluralize n \"commit\"}}", &json!({"n": "many"})).expect_err("nan");
        assert!(error.contains("pluralize"), "{error}");
        assert!(render("{{pluralize 2}}", &json!({})).is_err());
    }

    #[test]
    fn url_encode_escapes_all_but_unreserved_characters() {
        let data = json!({"s": "a b&c=d/é~x"});
        assert_eq!(ok("{{url_encode s}}", &data), "a%20b%26c%3Dd%2F%C3%A9~x");
    }

    #[test]
    fn http_url_keeps_only_absolute_http_links() {
        let template = "[{{http_url u}}]";
        let url = "https://example.com/a?b=c&d=e";
        assert_eq!(ok(template, &json!({"u": url})), format!("[{url}]"));
        assert_eq!(
            ok(template, &json!({"u": "http://127.0.0.1:9093"})),
            "[http://127.0.0.1:9093]"
        );
        for bad in [
            "localhost:3000/alerting",
            "javascript:alert(1)",
            "/relative",
            "",
            "ftp://x",
        ] {
            assert_eq!(ok(template, &json!({"u": bad})), "[]", "{bad}");
        }
        assert_eq!(ok(template, &json!({})), "[]");
    }

    #[test]
    fn short_host_drops_port_path_and_domain_but_not_ip_addresses() {
        let cases = [
            ("db-1.example.internal:9100", "db-1"),
            ("https://api.example.com/health", "api"),
            ("10.108.0.2:9100", "10.108.0.2"),
            ("[::1]:9090", "::1"),
            ("backup", "backup"),
            ("", ""),
        ];
        for (instance, host) in cases {
            assert_eq!(
                ok("{{short_host i}}", &json!({"i": instance})),
                host,
                "{instance}"
            );
        }
    }

    #[test]
    fn json_renders_compact_json() {
        let data = json!({"v": {"a": [1, "x"], "b": null}});
        assert_eq!(ok("{{json v}}", &data), r#"{"a":[1,"x"],"b":null}"#);
        assert_eq!(ok("[{{json missing}}]", &data), "[]");
    }
}
