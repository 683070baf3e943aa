//! The template helpers: each is a plain function from its argument values to a value, so it works
//! both inline (`{{upper x}}`) and as a subexpression (`{{#if (gt (len commits) 5)}}`).

mod lists;
mod text;
mod time;

use handlebars::{
    Context, Handlebars, Helper, HelperDef, PathAndJson, RenderContext, RenderError,
    RenderErrorReason, ScopedJson,
};
use serde_json::Value;

/// A helper body: the argument values in, the value to render or an explanation of what is wrong.
type HelperFn = fn(&[&Value]) -> Result<Value, String>;

/// Every helper this module adds, by the name templates call it.
const HELPERS: [(&str, HelperFn); 27] = [
    ("default", text::default),
    ("truncate", text::truncate),
    ("fit", text::fit),
    ("humanize", text::humanize),
    ("wrap", text::wrap),
    ("pick", text::pick),
    ("upper", text::upper),
    ("lower", text::lower),
    ("first_line", text::first_line),
    ("short_sha", text::short_sha),
    ("ref_name", text::ref_name),
    ("starts_with", text::starts_with),
    ("pluralize", text::pluralize),
    ("url_encode", text::url_encode),
    ("http_url", text::http_url),
    ("short_host", text::short_host),
    ("json", text::json),
    ("join", lists::join),
    ("len", lists::len),
    ("take", lists::take),
    ("excess", lists::excess),
    ("where", lists::where_),
    ("add", lists::add),
    ("sub", lists::sub),
    ("date", time::date),
    ("duration", time::duration),
    ("since", time::since),
];

/// The names templates call the helpers by.
#[cfg(test)]
pub(super) fn names() -> impl Iterator<Item = &'static str> {
    HELPERS.iter().map(|(name, _)| *name)
}

/// Registers every helper on `registry` (replacing handlebars' own `len`, which counts bytes).
pub(super) fn register(registry: &mut Handlebars<'static>) {
    for (name, run) in HELPERS {
        registry.register_helper(name, Box::new(FnHelper { name, run }));
    }
}

/// Adapts a [`HelperFn`] to handlebars; its error becomes a render error naming the helper.
struct FnHelper {
    name: &'static str,
    run: HelperFn,
}

impl HelperDef for FnHelper {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        helper: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let args: Vec<&Value> = helper.params().iter().map(PathAndJson::value).collect();
        (self.run)(&args)
            .map(ScopedJson::Derived)
            .map_err(|reason| {
                RenderErrorReason::Other(format!("helper `{}`: {reason}", self.name)).into()
            })
    }
}

/// The argument at `index`, or null when the template passed fewer.
fn arg<'a>(args: &[&'a Value], index: usize) -> &'a Value {
    args.get(index).copied().unwrap_or(&Value::Null)
}

/// A value as plain text: strings as they are, null as nothing, numbers and booleans as written,
/// arrays and objects as compact JSON (never `[object]`).
fn as_text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// A number given as a JSON number or as a string holding one.
fn as_number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(number) => number.as_f64(),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

/// A count (whole, not negative) given as a number or a numeric string.
fn as_count(value: &Value, what: &str) -> Result<usize, String> {
    as_number(value)
        .filter(|number| number.fract() == 0.0 && *number >= 0.0)
        .map(|number| number as usize)
        .ok_or_else(|| format!("{what} must be a whole number, not {value}"))
}

#[cfg(test)]
pub(super) mod testing {
    use handlebars::{Handlebars, no_escape};
    use serde_json::Value;

    /// Renders `template` against `data` with these helpers and the renderer's settings.
    pub fn render(template: &str, data: &Value) -> Result<String, String> {
        let mut registry = Handlebars::new();
        registry.register_escape_fn(no_escape);
        super::register(&mut registry);
        registry
            .render_template(template, data)
            .map_err(|error| error.to_string())
    }

    /// Like [`render`], for templates that must render.
    pub fn ok(template: &str, data: &Value) -> String {
        render(template, data).expect("template renders")
    }
}
