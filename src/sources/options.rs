//! A route's settings for decoding: which sender to expect and how alert groups become
//! notifications. Each setting parses from the text the configuration holds.

use std::fmt;
use std::str::FromStr;

use crate::pushjet::Importance;

/// Why a source setting's text cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptionError {
    /// Not one of the known sources.
    #[error("unknown source {0:?}; use {names}", names = SourceSetting::names().join(", "))]
    Source(String),
    /// Not one of the grouping modes.
    #[error("unknown alert grouping {0:?}; use group, alert or status")]
    Grouping(String),
    /// Not a resolved-alert policy.
    #[error("unknown resolved-alert policy {0:?}; use send, suppress or an importance from 1 to 5")]
    Resolved(String),
    /// A severity mapping entry that is not `name=1..5`.
    #[error("severity mapping entry {0:?} is not name=1..5 (example: critical=5,warning=4)")]
    Severity(String),
}

/// The senders this bridge understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourceKind {
    /// GitHub webhooks.
    Github,
    /// Gitea and Forgejo webhooks.
    Gitea,
    /// GitLab webhooks.
    Gitlab,
    /// Prometheus Alertmanager's webhook receiver.
    Alertmanager,
    /// Grafana alerting's webhook contact point (unified and legacy).
    Grafana,
    /// Slack's incoming-webhook message, also what Mattermost takes (`mattermost` is an alias).
    Slack,
    /// Discord's execute-webhook message.
    Discord,
    /// Microsoft Teams' MessageCard and Adaptive Card messages.
    Teams,
    /// Apprise's `json://` and `form://` notifications.
    Apprise,
    /// ntfy's message, from the ntfy publish endpoints.
    Ntfy,
    /// Gotify's message, from the Gotify message endpoint.
    Gotify,
    /// Anything else: curl, scripts, other services.
    Generic,
}

impl SourceKind {
    /// Every source, in the order of their names.
    pub const ALL: [SourceKind; 12] = [
        Self::Github,
        Self::Gitea,
        Self::Gitlab,
        Self::Alertmanager,
        Self::Grafana,
        Self::Slack,
        Self::Discord,
        Self::Teams,
        Self::Apprise,
        Self::Ntfy,
        Self::Gotify,
        Self::Generic,
    ];

    /// The source's name as configured and as templates see it (`github`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Github => "github",
            Self::Gitea => "gitea",
            Self::Gitlab => "gitlab",
            Self::Alertmanager => "alertmanager",
            Self::Grafana => "grafana",
            Self::Slack => "slack",
            Self::Discord => "discord",
            Self::Teams => "teams",
            Self::Apprise => "apprise",
            Self::Ntfy => "ntfy",
            Self::Gotify => "gotify",
            Self::Generic => "generic",
        }
    }
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SourceKind {
    type Err = OptionError;
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let wanted = raw.trim();
        if wanted.eq_ignore_ascii_case("mattermost") {
            return Ok(Self::Slack);
        }
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str().eq_ignore_ascii_case(wanted))
            .ok_or_else(|| OptionError::Source(raw.to_owned()))
    }
}

/// Which source a route expects: recognised per request, or fixed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SourceSetting {
    /// Recognise the sender from its headers and payload.
    #[default]
    Auto,
    /// Always this sender; recognition is skipped.
    Fixed(SourceKind),
}

impl SourceSetting {
    /// The header a sender names its event in (GitHub, Gitea, GitLab), when it has one.
    pub fn event_header(self) -> Option<&'static str> {
        match self {
            Self::Fixed(SourceKind::Github) => Some("x-github-event"),
            Self::Fixed(SourceKind::Gitea) => Some("x-gitea-event"),
            Self::Fixed(SourceKind::Gitlab) => Some("x-gitlab-event"),
            _ => None,
        }
    }

    /// Every name a setting accepts: `auto`, each source's, and the alias `mattermost`.
    pub fn names() -> Vec<&'static str> {
        let mut names = vec!["auto"];
        names.extend(SourceKind::ALL.map(SourceKind::as_str));
        names.push("mattermost");
        names
    }

    /// `auto` or the fixed source's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Fixed(kind) => kind.as_str(),
        }
    }
}

impl fmt::Display for SourceSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SourceSetting {
    type Err = OptionError;
    /// Parses `auto` or a source's name (`mattermost` meaning `slack`), ignoring case.
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        if raw.trim().eq_ignore_ascii_case("auto") {
            Ok(Self::Auto)
        } else {
            raw.parse().map(Self::Fixed)
        }
    }
}

/// How one Alertmanager or Grafana group payload splits into notifications.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AlertGrouping {
    /// One notification per payload (the group as the sender grouped it).
    #[default]
    Group,
    /// One notification per alert.
    Alert,
    /// One notification per status present in the group: firing first, then resolved.
    Status,
}

impl AlertGrouping {
    /// `group`, `alert` or `status`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Group => "group",
            Self::Alert => "alert",
            Self::Status => "status",
        }
    }
}

impl FromStr for AlertGrouping {
    type Err = OptionError;
    /// Parses `group|alert|status`, ignoring case.
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        [Self::Group, Self::Alert, Self::Status]
            .into_iter()
            .find(|mode| mode.as_str().eq_ignore_ascii_case(raw.trim()))
            .ok_or_else(|| OptionError::Grouping(raw.to_owned()))
    }
}

/// What to do with a notification that holds only resolved alerts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResolvedPolicy {
    /// Send it with importance 1.
    #[default]
    Send,
    /// Do not produce it. Resolved alerts that share a notification with firing ones stay in it.
    Suppress,
    /// Send it with this importance.
    Importance(Importance),
}

impl ResolvedPolicy {
    /// The importance of a notification holding only resolved alerts; `None` when it is dropped.
    pub fn importance(self) -> Option<Importance> {
        match self {
            Self::Send => Some(Importance::MIN),
            Self::Suppress => None,
            Self::Importance(importance) => Some(importance),
        }
    }
}

impl FromStr for ResolvedPolicy {
    type Err = OptionError;
    /// Parses `send`, `suppress` (ignoring case) or an importance `1`..`5`.
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let text = raw.trim();
        if text.eq_ignore_ascii_case("send") {
            Ok(Self::Send)
        } else if text.eq_ignore_ascii_case("suppress") {
            Ok(Self::Suppress)
        } else {
            Importance::parse(text)
                .map(Self::Importance)
                .map_err(|_| OptionError::Resolved(raw.to_owned()))
        }
    }
}

/// Maps an alert's `severity` label to an importance; names compare case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeverityImportance(Vec<(String, Importance)>);

impl SeverityImportance {
    /// The importance for a severity, if the mapping names it.
    pub fn get(&self, severity: &str) -> Option<Importance> {
        let wanted = severity.trim();
        self.0
            .iter()
            .rev()
            .find(|(name, _)| name.eq_ignore_ascii_case(wanted))
            .map(|(_, importance)| *importance)
    }
}

impl Default for SeverityImportance {
    /// `critical=5,page=5,major=4,error=4,warning=4,info=2`.
    fn default() -> Self {
        let entry = |name: &str, level| (name.to_owned(), Importance::new(level));
        let entries = [
            entry("critical", 5),
            entry("page", 5),
            entry("major", 4),
            entry("error", 4),
            entry("warning", 4),
            entry("info", 2),
        ];
        Self(
            entries
                .into_iter()
                .filter_map(|(name, importance)| Some((name, importance.ok()?)))
                .collect(),
        )
    }
}

impl FromStr for SeverityImportance {
    type Err = OptionError;
    /// Parses comma-separated `name=importance` entries, e.g. `critical=5,error=4,warning=4,info=2`.
    /// White space around names and numbers is ignored; an empty text maps nothing; a name given
    /// twice takes its last value.
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        raw.split(',')
            .filter(|entry| !entry.trim().is_empty())
            .map(|entry| {
                let bad = || OptionError::Severity(entry.trim().to_owned());
                let (name, level) = entry.split_once('=').ok_or_else(bad)?;
                let name = name.trim();
                if name.is_empty() {
                    return Err(bad());
                }
                let importance = Importance::parse(level).map_err(|_| bad())?;
                Ok((name.to_owned(), importance))
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }
}

/// Everything decoding needs to know about the route a request came in on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceOptions {
    /// Which sender to expect.
    pub setting: SourceSetting,
    /// The route's name, passed to templates as `bridge.route`.
    pub route: String,
    /// The importance of a notification when nothing in the request sets one.
    pub default_importance: Importance,
    /// How alert groups split into notifications.
    pub grouping: AlertGrouping,
    /// What to do with resolved-only notifications.
    pub resolved: ResolvedPolicy,
    /// How alert severities map to importance.
    pub severity: SeverityImportance,
}

impl SourceOptions {
    /// The defaults for a route: auto detection, importance 3, one notification per group,
    /// resolved notifications sent with importance 1, the default severity mapping.
    pub fn new(route: impl Into<String>) -> Self {
        Self {
            setting: SourceSetting::Auto,
            route: route.into(),
            default_importance: Importance::DEFAULT,
            grouping: AlertGrouping::Group,
            resolved: ResolvedPolicy::Send,
            severity: SeverityImportance::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_setting_parses_every_name_and_round_trips() {
        assert_eq!("auto".parse(), Ok(SourceSetting::Auto));
        assert_eq!(
            " GitHub ".parse(),
            Ok(SourceSetting::Fixed(SourceKind::Github))
        );
        for kind in SourceKind::ALL {
            let setting = SourceSetting::Fixed(kind);
            assert_eq!(setting.as_str().parse(), Ok(setting));
        }
        assert_eq!(
            "Mattermost".parse(),
            Ok(SourceSetting::Fixed(SourceKind::Slack))
        );
        assert_eq!(
            "hipchat".parse::<SourceSetting>(),
            Err(OptionError::Source("hipchat".to_owned()))
        );
    }

    #[test]
    fn grouping_parses_its_three_modes() {
        assert_eq!("group".parse(), Ok(AlertGrouping::Group));
        assert_eq!("Alert".parse(), Ok(AlertGrouping::Alert));
        assert_eq!("status".parse(), Ok(AlertGrouping::Status));
        assert!("per-alert".parse::<AlertGrouping>().is_err());
    }

    #[test]
    fn resolved_policy_parses_words_and_importance() {
        assert_eq!("send".parse(), Ok(ResolvedPolicy::Send));
        assert_eq!("SUPPRESS".parse(), Ok(ResolvedPolicy::Suppress));
        assert_eq!(
            "2".parse::<ResolvedPolicy>().ok(),
            Importance::new(2).ok().map(ResolvedPolicy::Importance)
        );
        assert!("0".parse::<ResolvedPolicy>().is_err());
        assert!("drop".parse::<ResolvedPolicy>().is_err());
    }

    #[test]
    fn severity_default_is_the_documented_mapping() {
        let parsed: SeverityImportance = "critical=5,page=5,major=4,error=4,warning=4,info=2"
            .parse()
            .expect("the default text parses");
        assert_eq!(parsed, SeverityImportance::default());
    }

    #[test]
    fn severity_lookup_ignores_case() {
        let mapping = SeverityImportance::default();
        assert_eq!(mapping.get("CRITICAL").map(Importance::get), Some(5));
        assert_eq!(mapping.get("Info").map(Importance::get), Some(2));
        assert_eq!(mapping.get("debug"), None);
    }

    #[test]
    fn severity_default_maps_page_and_major() {
        let mapping = SeverityImportance::default();
        assert_eq!(mapping.get("page").map(Importance::get), Some(5));
        assert_eq!(mapping.get("major").map(Importance::get), Some(4));
    }

    #[test]
    fn severity_mapping_rejects_bad_entries() {
        for bad in ["critical", "critical=6", "=3", "page=high"] {
            assert!(bad.parse::<SeverityImportance>().is_err(), "{bad}");
        }
        let custom: SeverityImportance = " page = 5 , ticket=2,".parse().expect("valid");
        assert_eq!(custom.get("page").map(Importance::get), Some(5));
        assert_eq!(custom.get("critical"), None);
    }
}
