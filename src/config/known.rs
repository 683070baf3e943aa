//! Misspelled settings are problems, not silence: once every setting has been read, each
//! `PUSHJET_BRIDGE_*` variable that is set and that no setting asked for is reported, with the
//! nearest name that is a setting ("did you mean …?"), and a variable of a route that
//! `PUSHJET_BRIDGE_ROUTES` does not name says so.
//!
//! Nothing here lists the settings: a setting is known because its reader asked the variable set
//! for it ([`Vars::get`], or a field of a [`Vars::section`] struct, `*_FILE` fields included), so
//! a setting added anywhere through the reader is known without a word here.

use super::read::{Problems, Vars};

/// The namespace whose variables must all be settings.
const NAMESPACE: &str = "PUSHJET_BRIDGE_";

/// Variables in the namespace that are not settings and that the service ignores: the test
/// suite's own, `PUSHJET_BRIDGE_TEST_*` (`scripts/test` sets them, e.g. `…_TEST_PYTHON`, and
/// services the tests start inherit them). Kubernetes' service links are ignored too
/// ([`is_service_link`]).
const TEST_SUITE: &str = "PUSHJET_BRIDGE_TEST_";

/// Whether `name=value` is one of the variables Kubernetes gives a pod for each service of its
/// namespace (unless `enableServiceLinks: false`): a service named `pushjet-bridge` gives
/// `PUSHJET_BRIDGE_SERVICE_HOST`, `PUSHJET_BRIDGE_SERVICE_PORT[_<PORT NAME>]`,
/// `PUSHJET_BRIDGE_PORT=tcp://…` and `PUSHJET_BRIDGE_PORT_<N>_<TCP|UDP|SCTP>[_PROTO|_PORT|_ADDR]`.
fn is_service_link(name: &str, value: &str) -> bool {
    const PROTOCOLS: [&str; 3] = ["TCP", "UDP", "SCTP"];
    if name.ends_with("_SERVICE_HOST") || name.ends_with("_SERVICE_PORT") {
        return true;
    }
    if let Some((_, port_name)) = name.rsplit_once("_SERVICE_PORT_") {
        return !port_name.is_empty();
    }
    if name.ends_with("_PORT")
        && PROTOCOLS
            .iter()
            .any(|protocol| value.starts_with(&format!("{}://", protocol.to_ascii_lowercase())))
    {
        return true;
    }
    let Some((_, port)) = name.rsplit_once("_PORT_") else {
        return false;
    };
    let mut parts = port.splitn(3, '_');
    let number = parts.next().unwrap_or_default();
    let protocol = parts.next().unwrap_or_default();
    let field = parts.next();
    !number.is_empty()
        && number.bytes().all(|byte| byte.is_ascii_digit())
        && PROTOCOLS.contains(&protocol)
        && field.is_none_or(|field| matches!(field, "PROTO" | "PORT" | "ADDR"))
}

/// Records a problem for every variable of the namespace set in `vars` that no setting asked
/// for. Call it after every setting has been read.
pub(super) fn report_unknown(vars: &Vars, problems: &mut Problems) {
    let asked = vars.asked();
    let families = vars.families();
    for (name, value) in vars.entries() {
        if !name.starts_with(NAMESPACE)
            || asked.contains(name)
            || name.starts_with(TEST_SUITE)
            || is_service_link(name, value)
        {
            continue;
        }
        let member = families.iter().find_map(|(prefix, family)| {
            let rest = name.strip_prefix(prefix.as_str())?;
            family
                .suffixes
                .iter()
                .filter_map(|suffix| rest.strip_suffix(suffix.as_str())?.strip_suffix('_'))
                .filter(|member| !member.is_empty())
                .min_by_key(|member| member.len())
                .map(|member| (member, family))
        });
        let problem = match member {
            Some((member, family)) => format!(
                "{name} is set, but {} does not name {}",
                family.listed_in,
                member_names(member)
            ),
            None => format!("{name} is not a setting"),
        };
        problems.push(match (nearest(name, &asked), member) {
            (Some(known), _) => format!("{problem} (did you mean `{known}`?)"),
            (None, Some(_)) => problem,
            (None, None) => format!("{problem} (the README's tables of variables list them)"),
        });
    }
}

/// A member as a list may name it: `gh` for `GH`, `gh_prod` or `gh-prod` for `GH_PROD`.
fn member_names(member: &str) -> String {
    let lower = member.to_ascii_lowercase();
    if lower.contains('_') {
        format!("`{lower}` (or `{}`)", lower.replace('_', "-"))
    } else {
        format!("`{lower}`")
    }
}

/// The known name closest to `name` by edit distance (letters swapped count once), when it is
/// close enough to be what was meant: at most a quarter of the part after the namespace
/// (and at least 2) edits away.
fn nearest<'a>(name: &str, known: impl IntoIterator<Item = &'a String>) -> Option<&'a str> {
    let within = (name.len().saturating_sub(NAMESPACE.len()) / 4).max(2);
    known
        .into_iter()
        .filter(|known| known.starts_with(NAMESPACE))
        .map(|known| (strsim::damerau_levenshtein(name, known), known))
        .filter(|(distance, _)| *distance <= within)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, known)| known.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| (*name).to_owned()).collect()
    }

    #[test]
    fn kubernetes_service_links_are_recognised_and_settings_are_not() {
        for (name, value) in [
            ("PUSHJET_BRIDGE_SERVICE_HOST", "10.96.0.12"),
            ("PUSHJET_BRIDGE_SERVICE_PORT", "8080"),
            ("PUSHJET_BRIDGE_SERVICE_PORT_HTTP", "8080"),
            ("PUSHJET_BRIDGE_PORT", "tcp://10.96.0.12:8080"),
            ("PUSHJET_BRIDGE_PORT_8080_TCP", "tcp://10.96.0.12:8080"),
            ("PUSHJET_BRIDGE_PORT_8080_TCP_PROTO", "tcp"),
            ("PUSHJET_BRIDGE_PORT_8080_TCP_PORT", "8080"),
            ("PUSHJET_BRIDGE_PORT_8080_TCP_ADDR", "10.96.0.12"),
            (
                "PUSHJET_BRIDGE_METRICS_PORT_9090_UDP",
                "udp://10.96.0.13:9090",
            ),
        ] {
            assert!(is_service_link(name, value), "{name}");
        }
        for (name, value) in [
            ("PUSHJET_BRIDGE_PORT", "8080"),
            ("PUSHJET_BRIDGE_PORT_8080", "tcp://10.96.0.12:8080"),
            ("PUSHJET_BRIDGE_PORT_HTTP_TCP", "tcp://10.96.0.12:8080"),
            ("PUSHJET_BRIDGE_PORT_8080_TCP_HOST", "10.96.0.12"),
            ("PUSHJET_BRIDGE_MAX_BODYBYTES", "1000"),
        ] {
            assert!(!is_service_link(name, value), "{name}");
        }
    }

    #[test]
    fn the_nearest_name_is_one_a_typo_away_and_none_is_far() {
        let names = known(&[
            "PUSHJET_BRIDGE_MAX_BODY_BYTES",
            "PUSHJET_BRIDGE_MAX_MESSAGE_BYTES",
            "PUSHJET_API_URL",
        ]);
        assert_eq!(
            nearest("PUSHJET_BRIDGE_MAX_BODYBYTES", &names),
            Some("PUSHJET_BRIDGE_MAX_BODY_BYTES")
        );
        assert_eq!(
            nearest("PUSHJET_BRIDGE_MAX_BDOY_BYTES", &names),
            Some("PUSHJET_BRIDGE_MAX_BODY_BYTES")
        );
        assert_eq!(nearest("PUSHJET_BRIDGE_COLOUR", &names), None);
        assert_eq!(nearest("PUSHJET_BRIDGE_API_URL", &names), None);
    }
}
