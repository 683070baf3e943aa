//! A route's noise settings as domain types, each parsed once from its variable: `RATE=N/WINDOW`,
//! `QUIET_HOURS=HH:MM-HH:MM` (with `QUIET_TIMEZONE` and `QUIET_MIN_IMPORTANCE`), `COLLAPSE=WINDOW`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use jiff::civil::Time;
use jiff::tz::TimeZone;

use crate::pushjet::Importance;

/// The longest window `RATE` and `COLLAPSE` take: a held notification waits at most a day.
pub const MAX_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);
/// The shortest window: below a second the digest would come with the next notification anyway.
pub const MIN_WINDOW: Duration = Duration::from_secs(1);

/// A route's noise policy; every part is off unless its variable is set.
#[derive(Debug, Clone, Default)]
pub struct NoisePolicy {
    /// `RATE`: at most so many sent per window, the rest held for one digest.
    pub rate: Option<RateLimit>,
    /// `QUIET_HOURS`: below an importance, held until the quiet hours end.
    pub quiet: Option<QuietHours>,
    /// `COLLAPSE`: the same collapse key (and state) sent within this window is not sent again.
    pub collapse: Option<Duration>,
}

impl NoisePolicy {
    /// True when no part is on: notifications go to the outbox as they come.
    pub fn is_off(&self) -> bool {
        self.rate.is_none() && self.quiet.is_none() && self.collapse.is_none()
    }
}

/// `RATE=N/WINDOW`: at most `count` notifications sent per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// How many are sent as they come in one window (at least 1).
    pub count: u32,
    /// How long a window lasts; it starts with the first notification after the last one ended.
    pub window: Duration,
}

impl FromStr for RateLimit {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let format = || "not N/WINDOW (for example 10/1m)".to_owned();
        let (count, window) = raw.trim().split_once('/').ok_or_else(format)?;
        let count: u32 = count.trim().parse().map_err(|_| format())?;
        if count == 0 {
            return Err("at least 1 notification per window (unset it to send everything)".into());
        }
        let window = parse_window(window)?;
        Ok(Self { count, window })
    }
}

/// A noise window (`RATE`'s, `COLLAPSE`): a humantime duration from 1 second to 24 hours.
pub fn parse_window(raw: &str) -> Result<Duration, String> {
    let window = humantime::parse_duration(raw.trim())
        .map_err(|error| format!("not a duration such as 30s, 10m or 1h: {error}"))?;
    if (MIN_WINDOW..=MAX_WINDOW).contains(&window) {
        Ok(window)
    } else {
        Err("outside 1s to 24h".into())
    }
}

/// `QUIET_HOURS=22:00-07:00` in `QUIET_TIMEZONE`: from `start` (included) to `end` (excluded),
/// crossing midnight when `end` comes before `start`, only notifications at or above
/// `min_importance` are sent.
#[derive(Debug, Clone)]
pub struct QuietHours {
    pub(super) start: Time,
    pub(super) end: Time,
    pub(super) zone: TimeZone,
    pub(super) min_importance: Importance,
}

/// The time range of `QUIET_HOURS`, parsed; the zone and importance come from their own variables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietRange {
    start: Time,
    end: Time,
}

impl FromStr for QuietRange {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let (start, end) = raw.trim().split_once('-').ok_or_else(|| {
            "not START-END in 24-hour time (for example 22:00-07:00)".to_owned()
        })?;
        let (start, end) = (time_of_day(start)?, time_of_day(end)?);
        if start == end {
            return Err("start and end are the same time (unset it for no quiet hours)".into());
        }
        Ok(Self { start, end })
    }
}

/// `HH:MM` or `HH:MM:SS`, 24-hour.
fn time_of_day(raw: &str) -> Result<Time, String> {
    let raw = raw.trim();
    let invalid = || format!("`{raw}` is not a time of day HH:MM (00:00 to 23:59)");
    let parts: Vec<&str> = raw.split(':').collect();
    if !(2..=3).contains(&parts.len()) || parts.iter().any(|part| part.len() != 2) {
        return Err(invalid());
    }
    let mut numbers = parts.iter().map(|part| part.parse::<i8>());
    let mut next = || numbers.next().transpose().map_err(|_| invalid());
    let (hour, minute, second) = (next()?, next()?, next()?);
    Time::new(
        hour.ok_or_else(invalid)?,
        minute.ok_or_else(invalid)?,
        second.unwrap_or(0),
        0,
    )
    .map_err(|_| invalid())
}

/// A `QUIET_TIMEZONE`: an IANA time zone name (`Europe/Berlin`, `UTC`).
pub fn parse_time_zone(raw: &str) -> Result<TimeZone, String> {
    TimeZone::get(raw.trim())
        .map_err(|_| "not an IANA time zone name (for example Europe/Berlin or UTC)".to_owned())
}

impl QuietHours {
    /// The quiet hours of `range` in `zone`, sending `min_importance` and above.
    pub fn new(range: QuietRange, zone: TimeZone, min_importance: Importance) -> Self {
        Self {
            start: range.start,
            end: range.end,
            zone,
            min_importance,
        }
    }

    /// The lowest importance sent during the quiet hours.
    pub fn min_importance(&self) -> Importance {
        self.min_importance
    }
}

impl fmt::Display for QuietHours {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}-{} {}",
            self.start.strftime("%H:%M"),
            self.end.strftime("%H:%M"),
            self.zone.iana_name().unwrap_or("UTC")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_reads_count_and_window() {
        let rate: RateLimit = "10/1m".parse().expect("a rate");
        assert_eq!(rate.count, 10);
        assert_eq!(rate.window, Duration::from_secs(60));
    }

    #[test]
    fn bad_rates_say_what_is_expected() {
        for raw in ["10", "0/1m", "x/1m", "5/soon", "5/0s", "5/2d"] {
            assert!(raw.parse::<RateLimit>().is_err(), "{raw} should be refused");
        }
    }

    #[test]
    fn a_quiet_range_may_cross_midnight_and_have_seconds() {
        let range: QuietRange = "22:00-07:00".parse().expect("a range");
        assert!(range.start > range.end);
        let range: QuietRange = "09:15:30-09:16".parse().expect("a range with seconds");
        assert_eq!(range.start, Time::new(9, 15, 30, 0).expect("a time"));
    }

    #[test]
    fn bad_quiet_ranges_are_refused() {
        for raw in ["22:00", "24:00-07:00", "22:00-07:60", "7:00-8:00", "08:00-08:00", "a-b"] {
            assert!(raw.parse::<QuietRange>().is_err(), "{raw} should be refused");
        }
    }

    #[test]
    fn time_zones_are_iana_names() {
        assert!(parse_time_zone("Europe/Berlin").is_ok());
        assert!(parse_time_zone("UTC").is_ok());
        assert!(parse_time_zone("Mars/Olympus").is_err());
    }
}
