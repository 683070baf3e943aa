use std::time::Duration;

use super::*;
use crate::noise::settings::{QuietHours, QuietRange, RateLimit, parse_time_zone};
use crate::pushjet::{Importance, MessageText};

fn message(title: &str, importance: u8) -> NewMessage {
    NewMessage {
        message: MessageText::new(format!("{title} happened")).expect("a message"),
        title: Title::new(title),
        link: Some(Link::parse(&format!("https://example.com/{importance}")).expect("a link")),
        importance: Importance::new(importance).expect("an importance"),
    }
}

fn plain(title: &str, importance: u8) -> Candidate {
    Candidate {
        message: message(title, importance),
        collapse: None,
    }
}

fn keyed(title: &str, identity: &str, state: &str) -> Candidate {
    Candidate {
        message: message(title, 3),
        collapse: Some(CollapseKey {
            identity: identity.into(),
            state: state.into(),
        }),
    }
}

fn rate(count: u32, seconds: u64) -> NoisePolicy {
    NoisePolicy {
        rate: Some(RateLimit {
            count,
            window: Duration::from_secs(seconds),
        }),
        ..NoisePolicy::default()
    }
}

const T0: u64 = 1_800_000_000_000;

#[test]
fn over_the_rate_the_rest_of_the_window_is_held_for_one_digest_at_its_end() {
    let policy = rate(5, 10);
    let mut noise = RouteNoise::default();
    let mut verdicts = Vec::new();
    for n in 0..50u64 {
        let importance = if n == 30 { 5 } else { 2 };
        let decision = noise.decide(&policy, vec![plain(&format!("event {n}"), importance)], T0 + n * 100);
        verdicts.extend(decision.verdicts);
    }
    assert_eq!(verdicts.iter().filter(|v| **v == Verdict::Send).count(), 5);
    assert_eq!(verdicts.iter().filter(|v| **v == Verdict::HeldRate).count(), 45);
    assert_eq!(noise.next_release(), Some(T0 + 10_000));
    assert_eq!(noise.take_due(T0 + 9_999), None);
    let held = noise.take_due(T0 + 10_000).expect("the digest is due");
    assert_eq!(held.count, 45);
    assert_eq!(held.titles.first().map(String::as_str), Some("event 5"));
    assert_eq!(held.titles.last().map(String::as_str), Some("event 49"));
    assert_eq!(held.importance, 5);
    assert_eq!(held.link.as_deref(), Some("https://example.com/5"));
    assert_eq!(noise.take_due(T0 + 20_000), None, "released once");
}

#[test]
fn a_new_window_sends_again() {
    let policy = rate(1, 10);
    let mut noise = RouteNoise::default();
    assert_eq!(noise.decide(&policy, vec![plain("a", 3)], T0).verdicts, [Verdict::Send]);
    assert_eq!(noise.decide(&policy, vec![plain("b", 3)], T0 + 1).verdicts, [Verdict::HeldRate]);
    assert_eq!(noise.decide(&policy, vec![plain("c", 3)], T0 + 10_000).verdicts, [Verdict::Send]);
}

fn quiet_policy(range: &str, zone: &str) -> NoisePolicy {
    NoisePolicy {
        quiet: Some(QuietHours::new(
            range.parse::<QuietRange>().expect("a range"),
            parse_time_zone(zone).expect("a zone"),
            Importance::new(5).expect("an importance"),
        )),
        ..NoisePolicy::default()
    }
}

fn at(rfc3339: &str) -> u64 {
    let timestamp: jiff::Timestamp = rfc3339.parse().expect("a timestamp");
    u64::try_from(timestamp.as_millisecond()).expect("after the epoch")
}

#[test]
fn during_quiet_hours_only_the_important_are_sent_and_the_rest_wait_for_their_end() {
    // 22:00-07:00 in New York (UTC-5 in January): 03:00-12:00 UTC, across midnight there.
    let policy = quiet_policy("22:00-07:00", "America/New_York");
    let mut noise = RouteNoise::default();
    let night = at("2026-01-20T04:30:00Z");
    let decision = noise.decide(&policy, vec![plain("disk 80%", 3), plain("site down", 5)], night);
    assert_eq!(decision.verdicts, [Verdict::HeldQuietHours, Verdict::Send]);
    assert_eq!(decision.send.len(), 1);
    assert_eq!(decision.send[0].title.as_str(), "site down");
    assert_eq!(noise.next_release(), Some(at("2026-01-20T12:00:00Z")));
    let day = at("2026-01-20T12:00:00Z");
    assert_eq!(noise.decide(&policy, vec![plain("disk 85%", 3)], day).verdicts, [Verdict::Send]);
    let held = noise.take_due(day).expect("due at the end of the quiet hours");
    assert_eq!((held.count, held.titles.clone()), (1, vec!["disk 80%".to_owned()]));
}

fn collapse_policy() -> NoisePolicy {
    NoisePolicy {
        collapse: Some(Duration::from_secs(30 * 60)),
        ..NoisePolicy::default()
    }
}

#[test]
fn repeats_within_the_window_collapse_and_a_new_state_goes_through_with_their_count() {
    let policy = collapse_policy();
    let mut noise = RouteNoise::default();
    let mut verdicts = Vec::new();
    for minute in 0..3 {
        let decision = noise.decide(&policy, vec![keyed("CPU high", "fp1", "firing")], T0 + minute * 60_000);
        verdicts.extend(decision.verdicts);
    }
    assert_eq!(verdicts, [Verdict::Send, Verdict::Collapsed, Verdict::Collapsed]);
    let resolved = noise.decide(&policy, vec![keyed("CPU normal", "fp1", "resolved")], T0 + 5 * 60_000);
    assert_eq!(resolved.verdicts, [Verdict::Send]);
    assert_eq!(resolved.send[0].title.as_str(), "CPU normal (2 repeats)");
    let other = noise.decide(&policy, vec![keyed("Disk", "fp2", "firing")], T0 + 6 * 60_000);
    assert_eq!(other.verdicts, [Verdict::Send], "another key is not a repeat");
}

#[test]
fn a_repeat_after_the_window_is_sent_with_the_count() {
    let policy = collapse_policy();
    let mut noise = RouteNoise::default();
    noise.decide(&policy, vec![keyed("CPU high", "fp1", "firing")], T0);
    noise.decide(&policy, vec![keyed("CPU high", "fp1", "firing")], T0 + 60_000);
    let later = noise.decide(&policy, vec![keyed("CPU high", "fp1", "firing")], T0 + 31 * 60_000);
    assert_eq!(later.verdicts, [Verdict::Send]);
    assert_eq!(later.send[0].title.as_str(), "CPU high (1 repeat)");
}

#[test]
fn the_state_survives_being_stored() {
    let policy = rate(1, 60);
    let mut noise = RouteNoise::default();
    noise.decide(&policy, vec![plain("a", 3), plain("b", 4)], T0);
    let stored = serde_json::to_string(&noise).expect("serialises");
    let mut read: RouteNoise = serde_json::from_str(&stored).expect("reads back");
    assert_eq!(read, noise);
    assert_eq!(read.decide(&policy, vec![plain("c", 3)], T0 + 1).verdicts, [Verdict::HeldRate]);
    assert_eq!(read.held_count(), 2);
}

#[test]
fn a_route_remembers_a_bounded_number_of_collapse_keys() {
    let policy = collapse_policy();
    let mut noise = RouteNoise::default();
    for n in 0..(MAX_COLLAPSE_KEYS as u64 + 50) {
        noise.decide(&policy, vec![keyed("PR updated", &format!("pr {n}"), "")], T0 + n);
    }
    noise.decide(&policy, vec![], T0 + 5000);
    assert!(noise.collapse.len() <= MAX_COLLAPSE_KEYS);
    let newest = noise.decide(&policy, vec![keyed("PR updated", &format!("pr {}", MAX_COLLAPSE_KEYS + 49), "")], T0 + 5001);
    assert_eq!(newest.verdicts, [Verdict::Collapsed], "the newest keys are kept");
}
