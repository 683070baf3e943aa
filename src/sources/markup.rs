//! The chat formats' markup as plain text a phone shows as it reads: one layer for Slack's mrkdwn
//! (and Mattermost's Markdown), Discord's Markdown and Teams' HTML and Markdown.
//!
//! - **emphasis** (`*bold*`, `**bold**`, `_italic_`, `__underline__`, `~strike~`, `~~strike~~`,
//!   `||spoiler||`): the markers are dropped, the words kept; a marker inside a word
//!   (`snake_case`) or without its partner stays as written;
//! - **links** (`<https://x|label>`, `[label](https://x)`, `<a href="https://x">label</a>`): the
//!   label, or the URL when there is none; the URLs are collected, in order, for the link;
//! - **mentions**: `@name` when the payload names the person (`<@U123|ann>`, `<!here>` → `@here`,
//!   `<#C123|ops>` → `#ops`, Teams' `<at>Ann</at>`); dropped when it gives only an id (Discord's
//!   `<@123>`, `<@&123>`, `<#123>`, a custom emoji `<:name:123>`);
//! - **emoji shortcodes** (`:rotating_light:`) as the emoji (GitHub's gemoji names, which Slack and
//!   Discord share); a name the table does not know stays as written;
//! - **code**: backticks and fences dropped, the code kept as written;
//! - **lines**: `> ` quotes, Markdown headings (`# `, Discord's `-# `) and `* ` bullets lose their
//!   markers; HTML tags are removed, with a line break for `<br>`, `<p>`, `<div>`, `<li>` (a
//!   `- ` bullet) and table rows;
//! - **escapes**: `\_`, `\-`, `\*` are the character; HTML entities (`&amp;`, `&nbsp;`,
//!   `&#x1F6A8;`) are decoded in Slack's and Teams' text (Discord writes none).

use std::borrow::Cow;

/// How deep emphasis may nest before its markers are left as written.
const MAX_NESTING: usize = 8;
/// The longest emoji shortcode name looked up.
const MAX_SHORTCODE: usize = 40;

/// The markup a chat format writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum Markup {
    /// Slack's mrkdwn and Mattermost's Markdown: `*bold*`, `_italic_`, `~strike~`, `<url|label>`,
    /// `<@U123|name>`, `<!here>`, `<#C123|name>`, and `&lt;`-style escapes.
    Slack,
    /// Discord's Markdown: `**bold**`, `__underline__`, `||spoiler||`, headings, `<@123>`
    /// mentions, `<:name:123>` emoji, `<t:1700000000:R>` times.
    Discord,
    /// Teams cards: HTML tags and entities, and Markdown (`**bold**`, `[label](url)`, `\_`).
    Teams,
    /// Text as written (Apprise, ntfy, Gotify).
    #[default]
    Plain,
}

impl Markup {
    /// The emphasis markers, longest first.
    fn markers(self) -> &'static [&'static str] {
        match self {
            Self::Slack => &["***", "**", "__", "~~", "*", "_", "~"],
            Self::Discord => &["***", "**", "__", "~~", "||", "*", "_"],
            Self::Teams | Self::Plain => &["***", "**", "__", "~~", "*", "_"],
        }
    }
}

/// `raw` as plain text, and the URLs its links pointed to, in order.
pub(super) fn plain_text(raw: &str, markup: Markup) -> (String, Vec<String>) {
    let mut links = Vec::new();
    if markup == Markup::Plain {
        return (raw.to_owned(), links);
    }
    let tokens = match markup {
        Markup::Slack => angle_tokens(raw, &mut links, slack_token),
        Markup::Discord => angle_tokens(raw, &mut links, discord_token),
        _ => html_tags(raw, &mut links),
    };
    let mut out = String::with_capacity(tokens.len());
    let mut in_fence = false;
    for (index, line) in tokens.split('\n').enumerate() {
        if index > 0 {
            out.push('\n');
        }
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix("```")
            && !rest.contains("```")
        {
            in_fence = !in_fence;
            // An opening fence names the language (`rust`); Slack writes the code right after it.
            let language = in_fence && markup != Markup::Slack && !rest.trim().contains(' ');
            if !language {
                out.push_str(rest.trim_end());
            }
            continue;
        }
        if in_fence {
            match line.split_once("```") {
                Some((code, _)) => {
                    in_fence = false;
                    out.push_str(code);
                }
                None => out.push_str(line),
            }
            continue;
        }
        let chars: Vec<char> = line_body(line, markup).chars().collect();
        inline(&chars, markup, 0, &mut out, &mut links);
    }
    let text = match markup {
        Markup::Slack | Markup::Teams => match html_escape::decode_html_entities(&out) {
            Cow::Borrowed(_) => out,
            Cow::Owned(decoded) => decoded,
        },
        _ => out,
    };
    (text.replace('\u{a0}', " "), links)
}

/// A line without its quote, heading or bullet marker.
fn line_body(line: &str, markup: Markup) -> Cow<'_, str> {
    let mut rest = line;
    // Discord needs the space after `>`; Slack and Markdown do not.
    for quote in [">>> ", "> ", ">"] {
        if let Some(after) = rest.strip_prefix(quote)
            && (quote.ends_with(' ') || after.is_empty() || markup != Markup::Discord)
        {
            rest = after;
            break;
        }
    }
    if markup != Markup::Slack {
        let hashes = rest.chars().take_while(|c| *c == '#').count();
        if (1..=6).contains(&hashes) && rest[hashes..].starts_with(' ') {
            rest = rest[hashes + 1..].trim_start();
        } else if let Some(after) = rest.strip_prefix("-# ") {
            rest = after;
        }
        let indent = rest.len() - rest.trim_start().len();
        if rest[indent..].starts_with("* ") || rest[indent..].starts_with("+ ") {
            return Cow::Owned(format!("{}- {}", &rest[..indent], &rest[indent + 2..]));
        }
    }
    Cow::Borrowed(rest)
}

/// True for a character that may stand next to an emphasis marker outside a word.
fn is_boundary(c: Option<&char>) -> bool {
    c.is_none_or(|c| !c.is_alphanumeric())
}

/// One line's inline markup as plain text, appended to `out`.
fn inline(chars: &[char], markup: Markup, depth: usize, out: &mut String, links: &mut Vec<String>) {
    let markers = markup.markers();
    // A marker (by index) or `[` found without a partner after some position has none after any
    // later position either: remembering it keeps a line full of lone markers linear.
    let mut no_closer = [false; 8];
    // No Markdown link starts before this index: a `[` that failed tells how far the next
    // cannot succeed either (to its first `]`, or the whole line), which keeps a line of `[`s
    // linear.
    let mut no_link_before = 0;
    let mut at = 0;
    while at < chars.len() {
        let c = chars[at];
        let prev = at.checked_sub(1).and_then(|before| chars.get(before));
        if c == '\\' && chars.get(at + 1).is_some_and(char::is_ascii_punctuation) {
            out.push(chars[at + 1]);
            at += 2;
            continue;
        }
        if c == '`' {
            at = code_span(chars, at, out);
            continue;
        }
        if (c == 'h' && is_boundary(prev)) && starts_with(chars, at, "http") {
            let word = chars[at..].iter().take_while(|c| !c.is_whitespace());
            let word: String = word.collect();
            if word.starts_with("https://") || word.starts_with("http://") {
                at += word.chars().count();
                out.push_str(&word);
                continue;
            }
        }
        if (c == '[' || (c == '!' && chars.get(at + 1) == Some(&'['))) && at >= no_link_before {
            match markdown_link(chars, at, markup, depth, out, links) {
                Ok(next) => {
                    at = next;
                    continue;
                }
                Err(until) => no_link_before = until,
            }
        }
        if c == ':'
            && is_boundary(prev)
            && let Some(next) = shortcode(chars, at, out)
        {
            at = next;
            continue;
        }
        let mut matched = false;
        for (index, marker) in markers.iter().enumerate() {
            if !starts_with(chars, at, marker) {
                continue;
            }
            let length = marker.chars().count();
            let opens = is_boundary(prev)
                && prev != Some(&c)
                && chars.get(at + length).is_some_and(|next| !next.is_whitespace());
            if opens && depth < MAX_NESTING && !no_closer[index] {
                match closer(chars, at + length, marker, length) {
                    Some(end) => {
                        inline(&chars[at + length..end], markup, depth + 1, out, links);
                        at = end + length;
                        matched = true;
                        break;
                    }
                    None => no_closer[index] = true,
                }
            }
            out.push_str(marker);
            at += length;
            matched = true;
            break;
        }
        if !matched {
            out.push(c);
            at += 1;
        }
    }
}

/// True when `chars` holds `text` at `at`.
fn starts_with(chars: &[char], at: usize, text: &str) -> bool {
    (at..)
        .zip(text.chars())
        .all(|(index, expected)| chars.get(index) == Some(&expected))
}

/// Where the marker closing one opened before `from` starts: after a non-space, before a word's
/// end, and not part of a longer run of the same character.
fn closer(chars: &[char], from: usize, marker: &str, length: usize) -> Option<usize> {
    let first = marker.chars().next()?;
    (from + 1..chars.len()).find(|&end| {
        starts_with(chars, end, marker)
            && !chars[end - 1].is_whitespace()
            && is_boundary(chars.get(end + length))
            && chars.get(end + length) != Some(&first)
    })
}

/// A code span from the backtick run at `at`: its code written as is; the index after it. A
/// run without its partner is written as is.
fn code_span(chars: &[char], at: usize, out: &mut String) -> usize {
    let run = chars[at..].iter().take_while(|c| **c == '`').count();
    let start = at + run;
    let mut end = start;
    while end < chars.len() {
        let length = chars[end..].iter().take_while(|c| **c == '`').count();
        if length == run {
            let code: String = chars[start..end].iter().collect();
            out.push_str(code.trim());
            return end + run;
        }
        end += length.max(1);
    }
    out.extend(&chars[at..start]);
    start
}

/// A Markdown link or image at `at` (`[label](url)`, `![alt](src)`): its label (an image's alt
/// text), with the link's URL collected; the index after it. Without one, the index before which
/// no link can start either (`usize::MAX`: none on this line).
fn markdown_link(
    chars: &[char],
    at: usize,
    markup: Markup,
    depth: usize,
    out: &mut String,
    links: &mut Vec<String>,
) -> Result<usize, usize> {
    let image = chars[at] == '!';
    let open = at + usize::from(image);
    let close = (open + 1..chars.len())
        .find(|&index| chars[index] == ']')
        .ok_or(usize::MAX)?;
    if chars.get(close + 1) != Some(&'(') {
        return Err(close);
    }
    let end = (close + 2..chars.len())
        .find(|&index| chars[index] == ')')
        .ok_or(usize::MAX)?;
    let target: String = chars[close + 2..end].iter().collect();
    let url = target.split_whitespace().next().unwrap_or_default();
    let label = &chars[open + 1..close];
    if label.is_empty() && !image {
        out.push_str(url);
    } else {
        inline(label, markup, depth + 1, out, links);
    }
    if !image && (url.starts_with("https://") || url.starts_with("http://")) {
        links.push(url.to_owned());
    }
    Ok(end + 1)
}

/// An emoji shortcode at `at` (`:fire:`, Slack's `:+1::skin-tone-2:`) as its emoji; the index
/// after it. `None` when the name is not one the emoji table knows.
fn shortcode(chars: &[char], at: usize, out: &mut String) -> Option<usize> {
    let name_char = |c: &&char| c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-');
    let name: String = chars[at + 1..]
        .iter()
        .take(MAX_SHORTCODE + 1)
        .take_while(name_char)
        .collect();
    let close = at + 1 + name.len();
    if name.is_empty() || chars.get(close) != Some(&':') {
        return None;
    }
    let emoji = emoji(&name)?;
    let mut next = close + 1;
    let tone: String = chars[next..].iter().take(14).collect();
    if let Some(rest) = tone.strip_prefix(":skin-tone-")
        && rest.chars().nth(1) == Some(':')
    {
        next += ":skin-tone-N:".len();
    }
    if !is_boundary(chars.get(next)) {
        return None;
    }
    out.push_str(emoji);
    Some(next)
}

/// The emoji a shortcode name (`rotating_light`) stands for.
pub(super) fn emoji(name: &str) -> Option<&'static str> {
    emojis::get_by_shortcode(&name.to_ascii_lowercase()).map(emojis::Emoji::as_str)
}

/// The text with each `<…>` token replaced by what `read` makes of it (`None`: written as is).
/// A token read as nothing takes one of the spaces around it along.
fn angle_tokens(
    raw: &str,
    links: &mut Vec<String>,
    read: fn(&str, &mut Vec<String>) -> Option<String>,
) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(start) = rest.find('<') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let Some(length) = after.find(['>', '<', '\n']).filter(|end| after[*end..].starts_with('>'))
        else {
            out.push('<');
            rest = after;
            continue;
        };
        let mut next = &after[length + 1..];
        match read(&after[..length], links) {
            Some(text) if text.is_empty() => {
                let line_start = out.is_empty() || out.ends_with(['\n', ' ']);
                if line_start && next.starts_with(' ') {
                    next = &next[1..];
                } else if out.ends_with(' ')
                    && (next.is_empty() || next.starts_with(['\n', ',', '.', '!', '?', ':']))
                {
                    out.pop();
                }
            }
            Some(text) => out.push_str(&text),
            None => {
                out.push('<');
                out.push_str(&after[..=length]);
            }
        }
        rest = next;
    }
    out.push_str(rest);
    out
}

/// A Slack token: a link's label (or its URL), a named mention, `@here`.
fn slack_token(inner: &str, links: &mut Vec<String>) -> Option<String> {
    let (target, label) = match inner.split_once('|') {
        Some((target, label)) => (target, Some(label)),
        None => (inner, None),
    };
    if let Some(special) = target.strip_prefix('!') {
        return Some(match (special, label) {
            (_, Some(label)) => label.to_owned(),
            ("here" | "channel" | "everyone", None) => format!("@{special}"),
            (other, None) if other.starts_with("subteam^") => String::new(),
            (other, None) => other.split('^').next().unwrap_or(other).to_owned(),
        });
    }
    if let Some(kind @ ('@' | '#')) = target.chars().next() {
        return Some(label.map_or_else(String::new, |name| format!("{kind}{name}")));
    }
    if target.starts_with("http://") || target.starts_with("https://") || target.starts_with("mailto:") {
        if !target.starts_with("mailto:") {
            links.push(target.to_owned());
        }
        return Some(label.unwrap_or(target.trim_start_matches("mailto:")).to_owned());
    }
    None
}

/// A Discord token: mentions and custom emoji by id (dropped), a timestamp (in UTC), a slash
/// command, a link whose preview was turned off (the URL).
fn discord_token(inner: &str, links: &mut Vec<String>) -> Option<String> {
    let digits = |text: &str| !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    if let Some(id) = inner
        .strip_prefix("@!")
        .or_else(|| inner.strip_prefix("@&"))
        .or_else(|| inner.strip_prefix('@'))
        .or_else(|| inner.strip_prefix('#'))
    {
        return digits(id).then(String::new);
    }
    if let Some(emoji) = inner.strip_prefix("a:").or_else(|| inner.strip_prefix(':')) {
        let (name, id) = emoji.split_once(':')?;
        return (!name.is_empty() && digits(id)).then(String::new);
    }
    if let Some(time) = inner.strip_prefix("t:") {
        let seconds = time.split(':').next().unwrap_or_default();
        let moment = seconds
            .parse::<i64>()
            .ok()
            .and_then(|seconds| time::OffsetDateTime::from_unix_timestamp(seconds).ok())?;
        let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
        return moment.format(format).ok();
    }
    if let Some(command) = inner.strip_prefix('/') {
        let (name, id) = command.rsplit_once(':')?;
        return digits(id).then(|| format!("/{name}"));
    }
    if inner.starts_with("id:") {
        return Some(String::new());
    }
    if inner.starts_with("http://") || inner.starts_with("https://") {
        links.push(inner.to_owned());
        return Some(inner.to_owned());
    }
    None
}

/// Teams' HTML without its tags: line breaks where blocks end, `- ` for list items, `@` before
/// a mention; each `<a href>`'s URL collected.
fn html_tags(raw: &str, links: &mut Vec<String>) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(start) = rest.find('<') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let is_tag = after
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '/' || c == '!');
        if !is_tag {
            out.push('<');
            rest = after;
            continue;
        }
        let Some(end) = after.find('>') else {
            // No `>` follows: no later `<` closes either.
            out.push('<');
            rest = after;
            break;
        };
        let tag = &after[..end];
        let closing = tag.starts_with('/');
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(char::is_ascii_alphanumeric)
            .collect::<String>()
            .to_ascii_lowercase();
        match name.as_str() {
            "br" | "p" | "div" | "tr" | "ul" | "ol" | "table" | "blockquote" | "pre" | "hr" => {
                out.push('\n');
            }
            "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => out.push('\n'),
            "li" if !closing => out.push_str("\n- "),
            "td" | "th" if closing => out.push(' '),
            "at" if !closing => out.push('@'),
            "a" if !closing => {
                if let Some(href) = attribute(tag, "href")
                    && (href.starts_with("https://") || href.starts_with("http://"))
                {
                    links.push(html_escape::decode_html_entities(href).into_owned());
                }
            }
            _ => {}
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// An HTML attribute's value (quoted with `"` or `'`).
fn attribute<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let lower = tag.to_ascii_lowercase();
    let at = lower.find(&format!("{name}="))? + name.len() + 1;
    let value = &tag[at..];
    let quote = value.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let inner = &value[1..];
    inner.find(quote).map(|end| &inner[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slack(raw: &str) -> String {
        plain_text(raw, Markup::Slack).0
    }

    fn discord(raw: &str) -> String {
        plain_text(raw, Markup::Discord).0
    }

    fn teams(raw: &str) -> String {
        plain_text(raw, Markup::Teams).0
    }

    /// Slack's "Formatting text for app surfaces" examples.
    #[test]
    fn slack_mrkdwn_reads_as_plain_text() {
        assert_eq!(
            slack("This is *bold*, _italic_ and ~strike~ with `code` and *_both_*"),
            "This is bold, italic and strike with code and both"
        );
        let (text, links) = plain_text(
            "<!here> <@U024BE7LH|ann> in <#C024BE7LR|ops>: <https://example.com|Overlook Hotel> \
             and <https://b.example> &lt;3 &amp; <not a link",
            Markup::Slack,
        );
        assert_eq!(
            text,
            "@here @ann in #ops: Overlook Hotel and https://b.example <3 & <not a link"
        );
        assert_eq!(links, ["https://example.com", "https://b.example"]);
        assert_eq!(slack("Hey <@U024BE7LH>, look"), "Hey, look");
        assert_eq!(slack("<!subteam^SAZ94GDB8> on call"), "on call");
        assert_eq!(slack("<!date^1392734382^{date}|Feb 18, 2014>"), "Feb 18, 2014");
        assert_eq!(
            slack(":rotating_light: deploy :white_check_mark: :+1::skin-tone-2: :no_such_emoji:"),
            "🚨 deploy ✅ 👍 :no_such_emoji:"
        );
        assert_eq!(slack(">quoted\n> also quoted"), "quoted\nalso quoted");
        assert_eq!(slack("```\nlet x = *y*;\n```"), "\nlet x = *y*;\n");
        assert_eq!(slack("```one line```"), "one line");
    }

    #[test]
    fn words_and_lone_markers_stay_as_written() {
        assert_eq!(slack("my_snake_case_var and 2 * 3 * 4"), "my_snake_case_var and 2 * 3 * 4");
        assert_eq!(slack("a *b c"), "a *b c");
        assert_eq!(slack("10:100:200 at 12:30:45"), "10:100:200 at 12:30:45");
        assert_eq!(
            slack("see https://x.example/_a_/b_c_ now"),
            "see https://x.example/_a_/b_c_ now"
        );
        let stars = "*a ".repeat(20_000);
        assert_eq!(slack(&stars), stars);
        // Lines built to make a naive scanner quadratic read in one pass.
        for line in ["[".repeat(50_000) + "](", "[".repeat(50_000) + "]x", "<a".repeat(50_000)] {
            assert_eq!(teams(&line).chars().count(), line.chars().count(), "{}", &line[..8]);
        }
    }

    /// Discord's "Markdown Text 101" and message formatting reference.
    #[test]
    fn discord_markdown_reads_as_plain_text() {
        assert_eq!(
            discord("**bold** *italics* __underline__ ~~strike~~ ||spoiler|| ***__all__***"),
            "bold italics underline strike spoiler all"
        );
        assert_eq!(discord("# Deploy\n## Step\n-# small print"), "Deploy\nStep\nsmall print");
        assert_eq!(discord("> quoted\n>>> the rest"), "quoted\nthe rest");
        assert_eq!(
            discord("Ping <@80351110224678912> <@!80351110224678912> <@&165511591545143296> in <#103735883630395392>"),
            "Ping in"
        );
        assert_eq!(discord("<:mmLol:216154654256398347> nice <a:b1nzy:392938283556143104>"), "nice");
        assert_eq!(discord("at <t:1618953630:R>"), "at 2021-04-20 21:20 UTC");
        assert_eq!(discord("run </airhorn:816437322781949972>"), "run /airhorn");
        let (text, links) = plain_text("[the docs](https://discord.com/developers) and <https://b.example>", Markup::Discord);
        assert_eq!(text, "the docs and https://b.example");
        assert_eq!(links, ["https://b.example", "https://discord.com/developers"]);
        assert_eq!(discord("```rust\nfn main() {}\n```"), "\nfn main() {}\n");
        assert_eq!(discord("* one\n* two"), "- one\n- two");
        assert_eq!(discord(":tada: done"), "🎉 done");
    }

    /// Teams' documented card formatting: HTML in connector cards, Markdown in both.
    #[test]
    fn teams_html_and_markdown_read_as_plain_text() {
        assert_eq!(
            teams("<b>Build</b> failed<br/>on <i>main</i><br>see log"),
            "Build failed\non main\nsee log"
        );
        assert_eq!(
            teams("<p>First</p><ul><li>one</li><li>two</li></ul>"),
            "\nFirst\n\n\n- one\n- two\n"
        );
        assert_eq!(teams("&#x1F6A8; Alert &amp; more&nbsp;here &lt;x&gt;"), "🚨 Alert & more here <x>");
        assert_eq!(teams("myFirst\\_Job\\_ on PR\\-1"), "myFirst_Job_ on PR-1");
        assert_eq!(teams("<at>Ann Lee</at> please look"), "@Ann Lee please look");
        let (text, links) = plain_text(
            "Open <a href=\"https://ci.example/1?a=1&amp;b=2\">the run</a> or [docs](https://docs.example)",
            Markup::Teams,
        );
        assert_eq!(text, "Open the run or docs");
        assert_eq!(links, ["https://ci.example/1?a=1&b=2", "https://docs.example"]);
        assert_eq!(teams("**Status**: _done_ and 3 < 4"), "Status: done and 3 < 4");
    }

    #[test]
    fn plain_text_is_left_as_written() {
        assert_eq!(plain_text("*a* <b>", Markup::Plain).0, "*a* <b>");
    }
}
