//! When quiet hours are on: the wall-clock range read in the route's time zone, crossing midnight
//! when its end comes before its start. Times are milliseconds since the Unix epoch, passed in,
//! so that tests choose the moment.

use jiff::Timestamp;
use jiff::civil::{Date, Time};

use super::settings::QuietHours;

impl QuietHours {
    /// When the quiet hours `now` falls in end (milliseconds since the epoch); `None` outside
    /// quiet hours.
    pub fn quiet_until(&self, now: u64) -> Option<u64> {
        let now_ms = i64::try_from(now).ok()?;
        let zoned = Timestamp::from_millisecond(now_ms).ok()?.to_zoned_datetime(self.zone.clone());
        let (today, time) = (zoned.date(), zoned.time());
        let end_day = if self.start < self.end {
            (self.start <= time && time < self.end).then_some(today)
        } else if time >= self.start {
            today.tomorrow().ok()
        } else if time < self.end {
            Some(today)
        } else {
            None
        }?;
        self.instant(end_day, self.end)
            .filter(|end| *end > now)
            .or(Some(now.saturating_add(1)))
    }

    /// `time` on `day` in the zone, as milliseconds since the epoch (a time skipped by a clock
    /// change counts as the moment after the change).
    fn instant(&self, day: Date, time: Time) -> Option<u64> {
        let zoned = day.to_datetime(time).to_zoned_datetime(self.zone.clone()).ok()?;
        u64::try_from(zoned.timestamp().as_millisecond()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::super::settings::{QuietRange, parse_time_zone};
    use super::*;
    use crate::pushjet::Importance;

    fn quiet(range: &str, zone: &str) -> QuietHours {
        QuietHours::new(
            range.parse::<QuietRange>().expect("a range"),
            parse_time_zone(zone).expect("a zone"),
            Importance::new(5).expect("an importance"),
        )
    }

    fn at(rfc3339: &str) -> u64 {
        let timestamp: Timestamp = rfc3339.parse().expect("a timestamp");
        u64::try_from(timestamp.as_millisecond()).expect("after the epoch")
    }

    #[test]
    fn a_range_crossing_midnight_is_quiet_on_both_sides_of_it() {
        let hours = quiet("22:00-07:00", "UTC");
        assert_eq!(
            hours.quiet_until(at("2026-03-10T23:30:00Z")),
            Some(at("2026-03-11T07:00:00Z"))
        );
        assert_eq!(
            hours.quiet_until(at("2026-03-11T03:00:00Z")),
            Some(at("2026-03-11T07:00:00Z"))
        );
        assert_eq!(hours.quiet_until(at("2026-03-11T07:00:00Z")), None);
        assert_eq!(hours.quiet_until(at("2026-03-11T12:00:00Z")), None);
        assert_eq!(hours.quiet_until(at("2026-03-11T21:59:59Z")), None);
    }

    #[test]
    fn a_range_within_a_day_is_quiet_only_inside_it() {
        let hours = quiet("12:00-13:30", "UTC");
        assert_eq!(
            hours.quiet_until(at("2026-03-10T12:10:00Z")),
            Some(at("2026-03-10T13:30:00Z"))
        );
        assert_eq!(hours.quiet_until(at("2026-03-10T11:59:00Z")), None);
        assert_eq!(hours.quiet_until(at("2026-03-10T13:30:00Z")), None);
    }

    #[test]
    fn quiet_hours_are_read_in_their_time_zone() {
        // 22:00-07:00 in Berlin (UTC+1 in winter) is 21:00-06:00 UTC.
        let hours = quiet("22:00-07:00", "Europe/Berlin");
        assert_eq!(
            hours.quiet_until(at("2026-01-15T21:30:00Z")),
            Some(at("2026-01-16T06:00:00Z"))
        );
        assert_eq!(hours.quiet_until(at("2026-01-15T20:30:00Z")), None);
        assert_eq!(hours.quiet_until(at("2026-01-16T06:30:00Z")), None);
    }
}
