//! The routes: `PUSHJET_BRIDGE_ROUTES` names them, and each reads its own
//! `PUSHJET_BRIDGE_ROUTE_<NAME>_*` variables.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde::Deserialize;

use super::read::{Problems, Vars};
use crate::noise::{NoisePolicy, QuietHours, QuietRange, RateLimit, parse_time_zone, parse_window};
use crate::pushjet::{Importance, SecretKey};
use crate::routes::{DeliveryMode, EventFilter, Route, RouteName, Routes};
use crate::sources::{
    AlertGrouping, ResolvedPolicy, SeverityImportance, SourceOptions, SourceSetting,
};
use crate::verify::{InboundAuth, ReaderAuth};

#[derive(Deserialize)]
struct RouteVars {
    secret: Option<String>,
    secret_file: Option<PathBuf>,
    source: Option<String>,
    template: Option<String>,
    webhook_secret: Option<String>,
    webhook_secret_file: Option<PathBuf>,
    token: Option<String>,
    token_file: Option<PathBuf>,
    basic_auth: Option<String>,
    basic_auth_file: Option<PathBuf>,
    subscribe_token: Option<String>,
    subscribe_token_file: Option<PathBuf>,
    subscribe_basic_auth: Option<String>,
    subscribe_basic_auth_file: Option<PathBuf>,
    importance: Option<String>,
    events: Option<String>,
    alert_grouping: Option<String>,
    resolved: Option<String>,
    severity_importance: Option<String>,
    delivery: Option<String>,
    rate: Option<String>,
    quiet_hours: Option<String>,
    quiet_timezone: Option<String>,
    quiet_min_importance: Option<String>,
    collapse: Option<String>,
}

/// What every route's variables start with, before the route's name in capitals.
const ROUTE_PREFIX: &str = "PUSHJET_BRIDGE_ROUTE_";

/// Reads every route named in `names` (the value of `PUSHJET_BRIDGE_ROUTES`), recording each
/// problem; a route with a problem is left out.
pub(super) fn read_routes(names: &str, vars: &Vars, problems: &mut Problems) -> Routes {
    vars.family::<RouteVars>(ROUTE_PREFIX, "PUSHJET_BRIDGE_ROUTES");
    let mut routes = Vec::new();
    let mut seen = BTreeSet::new();
    for raw in names
        .split(',')
        .map(str::trim)
        .filter(|raw| !raw.is_empty())
    {
        match RouteName::parse(raw) {
            Ok(name) if !seen.insert(name.clone()) => {
                problems.push(format!(
                    "PUSHJET_BRIDGE_ROUTES: route `{name}` is named twice"
                ));
            }
            Ok(name) => routes.extend(read_route(name, vars, problems)),
            Err(error) => problems.push(format!("PUSHJET_BRIDGE_ROUTES: {error}")),
        }
    }
    Routes::new(routes)
}

/// Reads one route's variables; `None` when any of them has a problem.
fn read_route(name: RouteName, vars: &Vars, problems: &mut Problems) -> Option<Route> {
    let prefix = name.env_prefix();
    let raw: RouteVars = vars.section(&prefix, problems)?;
    let problems_before = problems.len();
    let secret = read_secret(
        &prefix,
        raw.secret.clone(),
        raw.secret_file.clone(),
        problems,
    );
    let auth = read_auth(&prefix, &raw, problems);
    let source = read_source(&name, &prefix, &raw, problems);
    let delivery = problems.parse(
        &format!("{prefix}DELIVERY"),
        raw.delivery.as_deref(),
        DeliveryMode::default(),
        str::parse::<DeliveryMode>,
    );
    let noise = read_noise(&prefix, &raw, delivery, problems);
    let template = raw
        .template
        .map(|raw| raw.trim().to_owned())
        .filter(|raw| !raw.is_empty());
    let events = raw
        .events
        .as_deref()
        .filter(|raw| !raw.trim().is_empty())
        .map(EventFilter::parse);
    match (secret, auth) {
        (Some(secret), Some((auth, readers))) if problems.len() == problems_before => Some(Route {
            name,
            secret,
            auth,
            readers,
            source,
            template,
            events,
            delivery,
            noise,
        }),
        _ => None,
    }
}

/// The route's Pushjet service secret, required; its problems never show the value.
fn read_secret(
    prefix: &str,
    value: Option<String>,
    file: Option<PathBuf>,
    problems: &mut Problems,
) -> Option<SecretKey> {
    let name = format!("{prefix}SECRET");
    let problems_before = problems.len();
    match problems.secret(&name, value, file) {
        Some(raw) => SecretKey::parse(&raw)
            .map_err(|error| problems.push(format!("{name}: {error}")))
            .ok(),
        None if problems.len() > problems_before => None,
        None => {
            problems.push(format!(
                "{name} (or {name}_FILE) is required: the route's Pushjet service secret key"
            ));
            None
        }
    }
}

/// How the route authenticates its senders (webhook secrets, token, basic auth) and the readers
/// of its stream (those, or the read-only `SUBSCRIBE_TOKEN` and `SUBSCRIBE_BASIC_AUTH`).
fn read_auth(
    prefix: &str,
    raw: &RouteVars,
    problems: &mut Problems,
) -> Option<(InboundAuth, ReaderAuth)> {
    let mut secret = |key: &str, value: &Option<String>, file: &Option<PathBuf>| {
        problems.secret(&format!("{prefix}{key}"), value.clone(), file.clone())
    };
    let webhook_secret = secret(
        "WEBHOOK_SECRET",
        &raw.webhook_secret,
        &raw.webhook_secret_file,
    );
    let token = secret("TOKEN", &raw.token, &raw.token_file);
    let basic_auth = secret("BASIC_AUTH", &raw.basic_auth, &raw.basic_auth_file);
    let subscribe_token = secret(
        "SUBSCRIBE_TOKEN",
        &raw.subscribe_token,
        &raw.subscribe_token_file,
    );
    let subscribe_basic = secret(
        "SUBSCRIBE_BASIC_AUTH",
        &raw.subscribe_basic_auth,
        &raw.subscribe_basic_auth_file,
    );
    let auth = InboundAuth::new(
        webhook_secret.as_deref(),
        token.as_deref(),
        basic_auth.as_deref(),
    )
    .map_err(|error| problems.push(format!("{prefix}*: authentication: {error}")))
    .ok()?;
    let readers = ReaderAuth::new(
        &auth,
        subscribe_token.as_deref(),
        subscribe_basic.as_deref(),
    )
    .map_err(|error| problems.push(format!("{prefix}SUBSCRIBE_*: {error}")))
    .ok()?;
    Some((auth, readers))
}

/// How the route reads its sender's payloads.
fn read_source(
    name: &RouteName,
    prefix: &str,
    raw: &RouteVars,
    problems: &mut Problems,
) -> SourceOptions {
    let mut source = SourceOptions::new(name.as_str());
    let key = |key: &str| format!("{prefix}{key}");
    source.setting = problems.parse(
        &key("SOURCE"),
        raw.source.as_deref(),
        source.setting,
        str::parse::<SourceSetting>,
    );
    source.default_importance = problems.parse(
        &key("IMPORTANCE"),
        raw.importance.as_deref(),
        source.default_importance,
        Importance::parse,
    );
    source.grouping = problems.parse(
        &key("ALERT_GROUPING"),
        raw.alert_grouping.as_deref(),
        source.grouping,
        str::parse::<AlertGrouping>,
    );
    source.resolved = problems.parse(
        &key("RESOLVED"),
        raw.resolved.as_deref(),
        source.resolved,
        str::parse::<ResolvedPolicy>,
    );
    source.severity = problems.parse(
        &key("SEVERITY_IMPORTANCE"),
        raw.severity_importance.as_deref(),
        source.severity,
        str::parse::<SeverityImportance>,
    );
    source
}

/// The route's noise policy: `RATE`, `QUIET_HOURS` with `QUIET_TIMEZONE` and
/// `QUIET_MIN_IMPORTANCE`, `COLLAPSE`; each problem recorded, all of them at once.
fn read_noise(
    prefix: &str,
    raw: &RouteVars,
    delivery: DeliveryMode,
    problems: &mut Problems,
) -> NoisePolicy {
    let key = |key: &str| format!("{prefix}{key}");
    let rate = problems.parse_optional(&key("RATE"), raw.rate.as_deref(), str::parse::<RateLimit>);
    let range = problems.parse_optional(
        &key("QUIET_HOURS"),
        raw.quiet_hours.as_deref(),
        str::parse::<QuietRange>,
    );
    let zone = problems.parse(
        &key("QUIET_TIMEZONE"),
        raw.quiet_timezone.as_deref(),
        jiff::tz::TimeZone::UTC,
        parse_time_zone,
    );
    let min_importance = problems.parse(
        &key("QUIET_MIN_IMPORTANCE"),
        raw.quiet_min_importance.as_deref(),
        Importance::new(5).unwrap_or_default(),
        Importance::parse,
    );
    let collapse = problems.parse_optional(&key("COLLAPSE"), raw.collapse.as_deref(), parse_window);
    let set = |value: &Option<String>| value.as_deref().is_some_and(|raw| !raw.trim().is_empty());
    if range.is_none()
        && raw
            .quiet_hours
            .as_deref()
            .is_none_or(|raw| raw.trim().is_empty())
    {
        for (name, value) in [
            ("QUIET_TIMEZONE", &raw.quiet_timezone),
            ("QUIET_MIN_IMPORTANCE", &raw.quiet_min_importance),
        ] {
            if set(value) {
                problems.push(format!(
                    "{}: has no effect without {}",
                    key(name),
                    key("QUIET_HOURS")
                ));
            }
        }
    }
    let policy = NoisePolicy {
        rate,
        quiet: range.map(|range| QuietHours::new(range, zone, min_importance)),
        collapse,
    };
    if delivery == DeliveryMode::Sync && !policy.is_off() {
        problems.push(format!(
            "{}: a sync route sends at once and holds nothing; RATE, QUIET_HOURS and COLLAPSE \
             need DELIVERY=queued",
            key("DELIVERY")
        ));
    }
    policy
}
