//! How a variable becomes a value: the variable set (with `PUSHJET_BRIDGE_ENV_FILE`), blank
//! meaning unset, `*_FILE` secrets, durations and booleans, and every problem collected rather
//! than stopping at the first. The variable set remembers every name it was asked for, so that
//! what was set and never asked for can be reported (`known.rs`).

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::secret::Secret;

/// The variables settings are read from, one value per name, with those of
/// `PUSHJET_BRIDGE_ENV_FILE` added (the file's win), and the names the settings asked for.
#[derive(Clone)]
pub(super) struct Vars {
    values: BTreeMap<String, String>,
    /// Every name asked for: by [`Vars::get`], or as a field of a [`Vars::section`].
    asked: RefCell<BTreeSet<String>>,
    /// Families of variables named `<prefix><member>_<suffix>` (a route's), by prefix: the
    /// suffixes a member takes and the variable that names the members.
    families: RefCell<BTreeMap<String, Family>>,
}

/// Variables named `<prefix><MEMBER>_<SUFFIX>`: one set per member named in `listed_in`.
#[derive(Clone, Debug)]
pub(super) struct Family {
    /// The variable that lists the members (`PUSHJET_BRIDGE_ROUTES`).
    pub(super) listed_in: String,
    /// The suffixes a member's variables take (`SECRET`, `WEBHOOK_SECRET`, …).
    pub(super) suffixes: Vec<String>,
}

impl Vars {
    fn new(values: BTreeMap<String, String>) -> Self {
        let asked = BTreeSet::from([String::from("PUSHJET_BRIDGE_ENV_FILE")]);
        Self {
            values,
            asked: RefCell::new(asked),
            families: RefCell::default(),
        }
    }

    /// Merges the env file named by `PUSHJET_BRIDGE_ENV_FILE` (dotenv syntax) into `vars`.
    pub(super) fn with_env_file(vars: &[(String, String)]) -> Result<Self, String> {
        let mut merged: BTreeMap<String, String> = vars.iter().cloned().collect();
        let Some(path) = merged
            .get("PUSHJET_BRIDGE_ENV_FILE")
            .map(PathBuf::from)
            .filter(|path| !path.as_os_str().is_empty())
        else {
            return Ok(Self::new(merged));
        };
        let problem = |error: dotenvy::Error| {
            format!(
                "PUSHJET_BRIDGE_ENV_FILE: cannot read {}: {error}",
                path.display()
            )
        };
        for line in dotenvy::from_path_iter(&path).map_err(problem)? {
            let (name, value) = line.map_err(problem)?;
            merged.insert(name, value);
        }
        Ok(Self::new(merged))
    }

    /// The value of one variable (its name is known from now on).
    pub(super) fn get(&self, name: &str) -> Option<String> {
        self.asked.borrow_mut().insert(name.to_owned());
        self.values.get(name).cloned()
    }

    /// The variables whose names start with `prefix`, as the fields of `T` (envy, the prefix
    /// removed and the rest lower-cased). Every field's variable is known from now on, set or
    /// not.
    pub(super) fn section<T: DeserializeOwned>(
        &self,
        prefix: &str,
        problems: &mut Problems,
    ) -> Option<T> {
        self.asked.borrow_mut().extend(
            field_names::<T>()
                .iter()
                .map(|field| format!("{prefix}{}", field.to_ascii_uppercase())),
        );
        envy::prefixed(prefix)
            .from_iter(self.values.clone())
            .map_err(|error| problems.push(format!("{prefix}*: {error}")))
            .ok()
    }

    /// Declares a family: `<prefix><MEMBER>_<field of T>` for each member listed in `listed_in`
    /// (`PUSHJET_BRIDGE_ROUTE_` and the route variables), so that a variable of a member not
    /// listed is reported as such. Declaring the same prefix again adds `T`'s fields.
    pub(super) fn family<T: DeserializeOwned>(&self, prefix: &str, listed_in: &str) {
        let mut families = self.families.borrow_mut();
        let family = families.entry(prefix.to_owned()).or_insert_with(|| Family {
            listed_in: listed_in.to_owned(),
            suffixes: Vec::new(),
        });
        family.suffixes.extend(
            field_names::<T>()
                .iter()
                .map(|field| field.to_ascii_uppercase()),
        );
    }

    /// Every variable set, name and value.
    pub(super) fn entries(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
    }

    /// Every name asked for so far.
    pub(super) fn asked(&self) -> BTreeSet<String> {
        self.asked.borrow().clone()
    }

    /// Every family declared so far, by prefix.
    pub(super) fn families(&self) -> BTreeMap<String, Family> {
        self.families.borrow().clone()
    }
}

/// The field names of a struct `T` deserializes as (after any `rename`), read without any
/// input: a deserializer that only notes the fields it is handed. Empty for anything but a
/// plain struct.
pub(super) fn field_names<T: DeserializeOwned>() -> &'static [&'static str] {
    let mut fields: &'static [&'static str] = &[];
    let _only_the_names = T::deserialize(FieldNames(&mut fields));
    fields
}

/// See [`field_names`].
struct FieldNames<'a>(&'a mut &'static [&'static str]);

impl<'de> serde::Deserializer<'de> for FieldNames<'_> {
    type Error = serde::de::value::Error;

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(serde::de::Error::custom(
            "only a struct's field names are read",
        ))
    }

    fn deserialize_struct<V: serde::de::Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = fields;
        Err(serde::de::Error::custom(
            "only a struct's field names are read",
        ))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

/// Every problem found so far, each a sentence naming its variable.
#[derive(Debug, Default)]
pub(super) struct Problems(Vec<String>);

impl Problems {
    /// Records a problem.
    pub(super) fn push(&mut self, problem: String) {
        self.0.push(problem);
    }

    /// How many problems were found so far.
    pub(super) fn len(&self) -> usize {
        self.0.len()
    }

    /// The problems found.
    pub(super) fn into_vec(self) -> Vec<String> {
        self.0
    }

    /// The problems, or `Ok(value)` when there are none.
    pub(super) fn into_result<T>(self, value: T) -> Result<T, Vec<String>> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(self.0)
        }
    }

    /// Parses the variable `name` (blank counts as unset and gives `default`). A bad value is
    /// recorded as `NAME: \`raw\`: problem` and gives `default`, so every other problem is still
    /// found. Never use it for secrets: the problem shows the value.
    pub(super) fn parse<T, E: std::fmt::Display>(
        &mut self,
        name: &str,
        raw: Option<&str>,
        default: T,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> T {
        self.parse_optional(name, raw, parse).unwrap_or(default)
    }

    /// [`Problems::parse`] without a default: unset, blank or bad gives `None`.
    pub(super) fn parse_optional<T, E: std::fmt::Display>(
        &mut self,
        name: &str,
        raw: Option<&str>,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Option<T> {
        let raw = raw.map(str::trim).filter(|raw| !raw.is_empty())?;
        parse(raw)
            .map_err(|error| self.push(format!("{name}: `{raw}`: {error}")))
            .ok()
    }

    /// A secret given directly (`NAME`) or in a file (`NAME_FILE`, trailing line break dropped),
    /// trimmed (so possibly empty: what an empty secret means is the caller's to say). Both set,
    /// or an unreadable file, is a problem whose text never contains the value.
    pub(super) fn secret(
        &mut self,
        name: &str,
        value: Option<String>,
        file: Option<PathBuf>,
    ) -> Option<String> {
        let raw = match (value, file) {
            (Some(_), Some(_)) => {
                self.push(format!("{name} and {name}_FILE are both set; keep one"));
                return None;
            }
            (Some(value), None) => value,
            (None, Some(path)) => match std::fs::read_to_string(&path) {
                Ok(text) => text.trim_end_matches(['\n', '\r']).to_owned(),
                Err(error) => {
                    self.push(format!(
                        "{name}_FILE: cannot read {}: {error}",
                        path.display()
                    ));
                    return None;
                }
            },
            (None, None) => return None,
        };
        Some(raw.trim().to_owned())
    }

    /// An optional token (`NAME` or `NAME_FILE`, see [`Problems::secret`]); blank means unset.
    pub(super) fn optional_token(
        &mut self,
        name: &str,
        value: Option<String>,
        file: Option<PathBuf>,
    ) -> Option<Secret> {
        self.secret(name, value, file)
            .filter(|token| !token.is_empty())
            .map(|token| Secret::new(&token))
    }
}

/// `true/false`, `1/0`, `yes/no`, `on/off`, any case.
pub(super) fn parse_bool(raw: &str) -> Result<bool, &'static str> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err("not true or false"),
    }
}

/// A duration the humantime way: `90s`, `15m`, `24h`, `1h 30m`, `250ms`.
pub(super) fn parse_duration(raw: &str) -> Result<Duration, String> {
    humantime::parse_duration(raw)
        .map_err(|error| format!("not a duration such as 90s, 15m or 24h ({error})"))
}

/// A whole number in `range` (underscores allowed as separators: `100_000`).
pub(super) fn parse_count<T>(raw: &str, range: std::ops::RangeInclusive<T>) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display,
{
    raw.replace('_', "")
        .parse::<T>()
        .ok()
        .filter(|value| range.contains(value))
        .ok_or_else(|| {
            format!(
                "not a whole number from {} to {}",
                range.start(),
                range.end()
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_section_knows_every_field_set_or_not() {
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        struct Section {
            max_body_bytes: Option<String>,
            token_file: Option<PathBuf>,
        }
        let vars = Vars::with_env_file(&[("P_MAX_BODY_BYTES".into(), "1".into())]).unwrap();
        vars.section::<Section>("P_", &mut Problems::default());
        vars.get("OTHER");
        let asked = vars.asked();
        for name in [
            "P_MAX_BODY_BYTES",
            "P_TOKEN_FILE",
            "OTHER",
            "PUSHJET_BRIDGE_ENV_FILE",
        ] {
            assert!(asked.contains(name), "{name} in {asked:?}");
        }
    }

    #[test]
    fn blank_is_unset_and_a_bad_value_is_named_with_its_variable() {
        let mut problems = Problems::default();
        assert_eq!(
            problems.parse("N", Some("  "), 7, |raw| parse_count(raw, 1..=9)),
            7
        );
        assert_eq!(
            problems.parse("N", Some(" 3 "), 7, |raw| parse_count(raw, 1..=9)),
            3
        );
        assert_eq!(
            problems.parse("N", Some("12"), 7, |raw| parse_count(raw, 1..=9)),
            7
        );
        assert_eq!(
            problems.into_result(()).unwrap_err(),
            vec!["N: `12`: not a whole number from 1 to 9".to_owned()]
        );
    }

    #[test]
    fn a_secret_comes_from_its_variable_or_its_file_never_both() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "from-file\r\n").unwrap();
        let mut problems = Problems::default();
        assert_eq!(
            problems.secret("T", None, Some(file.clone())).as_deref(),
            Some("from-file")
        );
        assert_eq!(
            problems
                .secret("T", Some(" given ".into()), None)
                .as_deref(),
            Some("given")
        );
        assert_eq!(
            problems.secret("T", Some(" ".into()), None).as_deref(),
            Some("")
        );
        assert_eq!(problems.secret("T", Some("x".into()), Some(file)), None);
        let text = problems.into_result(()).unwrap_err().join("\n");
        assert!(text.contains("T and T_FILE are both set"), "{text}");
        assert!(!text.contains("from-file"), "{text}");
    }
}
