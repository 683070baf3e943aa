//! Noise control through the outbox, on both backends, with a clock the tests move: what is held
//! stays held across a reopening, is released as one digest when due, and only once, also when
//! two replicas of a shared database race for it.

use std::sync::Arc;
use std::time::Duration;

use tempfile::TempDir;

use super::*;
use crate::config::{DatabaseUrl, DeliverySettings};
use crate::database::on_both_backends;
use crate::database::test_server::TestPostgres;
use crate::delivery::outbox::Outbox;
use crate::delivery::outbox::records::PendingRecord;
use crate::delivery::postgres::PostgresOutbox;
use crate::delivery::redb::RedbOutbox;
use crate::delivery::test_support::{ManualClock, fast_settings, route};
use crate::noise::{QuietHours, QuietRange, RateLimit, parse_time_zone};
use crate::pushjet::{Importance, MessageText, NewMessage, Title};

#[derive(Debug, Clone, Copy)]
enum Backend {
    Redb,
    Postgres,
}

/// Where a test's outboxes keep their records, and the clock they all read.
struct Store {
    backend: Backend,
    settings: DeliverySettings,
    dir: TempDir,
    clock: Arc<ManualClock>,
}

impl Store {
    async fn new(backend: Backend) -> Self {
        let settings = match backend {
            Backend::Redb => fast_settings(),
            Backend::Postgres => DeliverySettings {
                database: Some(
                    DatabaseUrl::parse(&TestPostgres::shared().create_database().await).unwrap(),
                ),
                ..fast_settings()
            },
        };
        Self {
            backend,
            settings,
            dir: TempDir::new().unwrap(),
            clock: ManualClock::new(),
        }
    }

    /// An outbox on the store (for redb, only one may be open at a time).
    async fn open(&self) -> Outbox {
        match (self.backend, &self.settings.database) {
            (Backend::Postgres, Some(url)) => Outbox::new(
                PostgresOutbox::connect_with_clock(url, &self.settings, self.clock.clone())
                    .await
                    .unwrap(),
            ),
            _ => Outbox::new(
                RedbOutbox::open_with_test_clock(self.dir.path(), &self.settings, self.clock.clone())
                    .unwrap(),
            ),
        }
    }
}

fn notification(title: &str, importance: u8) -> Candidate {
    Candidate {
        message: NewMessage {
            message: MessageText::new(format!("{title}: details")).unwrap(),
            title: Title::new(title),
            link: None,
            importance: Importance::new(importance).unwrap(),
        },
        collapse: None,
    }
}

async fn admit(outbox: &Outbox, policy: &NoisePolicy, candidates: Vec<Candidate>) -> (Vec<Verdict>, Vec<u64>) {
    admit_deduped(outbox, policy, candidates, None).await.expect("not a duplicate")
}

async fn admit_deduped(
    outbox: &Outbox,
    policy: &NoisePolicy,
    candidates: Vec<Candidate>,
    dedup: Option<&str>,
) -> Option<(Vec<Verdict>, Vec<u64>)> {
    let admission = Admission {
        policy,
        candidates,
        dedup: dedup.map(|key| DedupKey::delivery(key.to_owned())),
    };
    match outbox.admit(&route("ops"), admission).await.unwrap() {
        Admitted::Decided { verdicts, ids } => Some((verdicts, ids)),
        Admitted::Duplicate => None,
    }
}

/// The pending notifications of `ops`, oldest first, once there are `count` (claimed and given
/// back: new ones become claimable once the backend's commit that holds them is done).
async fn pending(outbox: &Outbox, count: usize) -> Vec<(u64, PendingRecord)> {
    let started = std::time::Instant::now();
    loop {
        let due = outbox.claim_due(1).await;
        if let Some(mut claim) = due.claims.into_iter().next() {
            let batch = outbox.next_batch(&mut claim, 1000).await;
            outbox.release(claim).await;
            if batch.len() >= count {
                return batch;
            }
        }
        assert!(started.elapsed() < Duration::from_secs(10), "fewer than {count} pending");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn rate_policy() -> NoisePolicy {
    NoisePolicy {
        rate: Some(RateLimit {
            count: 5,
            window: Duration::from_secs(10),
        }),
        ..NoisePolicy::default()
    }
}

on_both_backends!(
    over_the_rate_the_rest_is_held_across_a_reopening_and_released_once_as_one_digest,
    quiet_hours_hold_the_unimportant_until_they_end_in_their_time_zone,
    a_duplicate_webhook_changes_no_noise_state,
);

async fn over_the_rate_the_rest_is_held_across_a_reopening_and_released_once_as_one_digest(
    backend: Backend,
) {
    let store = Store::new(backend).await;
    let policy = rate_policy();
    let mut verdicts = Vec::new();
    let outbox = store.open().await;
    for n in 0..25 {
        let importance = if n == 17 { 5 } else { 3 };
        verdicts.extend(admit(&outbox, &policy, vec![notification(&format!("event {n}"), importance)]).await.0);
        store.clock.advance(Duration::from_millis(100));
    }
    drop(outbox);
    let outbox = store.open().await;
    for n in 25..50 {
        verdicts.extend(admit(&outbox, &policy, vec![notification(&format!("event {n}"), 3)]).await.0);
        store.clock.advance(Duration::from_millis(100));
    }
    assert_eq!(verdicts.iter().filter(|v| **v == Verdict::Send).count(), 5);
    assert_eq!(verdicts.iter().filter(|v| **v == Verdict::HeldRate).count(), 45);
    let early = outbox.release_held(4096).await.unwrap();
    assert!(early.digests.is_empty(), "not before the window ends: {early:?}");
    assert!(early.next_release.is_some());

    store.clock.advance(Duration::from_secs(5));
    let released = outbox.release_held(4096).await.unwrap();
    assert_eq!(released.digests.len(), 1, "{released:?}");
    assert_eq!(released.digests[0].count, 45);
    assert_eq!(released.next_release, None);
    let again = outbox.release_held(4096).await.unwrap();
    assert!(again.digests.is_empty(), "a digest is queued once");

    let queued = pending(&outbox, 6).await;
    assert_eq!(queued.len(), 6, "five sent at once and the digest");
    let digest = &queued[5].1.message;
    assert_eq!(digest.title.as_str(), "45 more from ops");
    assert_eq!(digest.importance.get(), 5);
    let lines: Vec<&str> = digest.message.as_str().lines().collect();
    assert_eq!((lines[0], lines[44]), ("event 5", "event 49"));
}

async fn quiet_hours_hold_the_unimportant_until_they_end_in_their_time_zone(backend: Backend) {
    let store = Store::new(backend).await;
    // The clock starts at 2023-11-14T22:13:20Z: 23:13 in Paris (UTC+1), inside 22:00-07:00
    // there, which ends at 06:00 UTC.
    let policy = NoisePolicy {
        quiet: Some(QuietHours::new(
            "22:00-07:00".parse::<QuietRange>().unwrap(),
            parse_time_zone("Europe/Paris").unwrap(),
            Importance::new(5).unwrap(),
        )),
        ..NoisePolicy::default()
    };
    let outbox = store.open().await;
    let (verdicts, ids) = admit(&outbox, &policy, vec![notification("disk 80%", 3), notification("site down", 5)]).await;
    assert_eq!(verdicts, [Verdict::HeldQuietHours, Verdict::Send]);
    assert_eq!(ids.len(), 1);
    let end_ms = 1_700_028_000_000; // 2023-11-15T06:00:00Z
    let night = outbox.release_held(4096).await.unwrap();
    assert_eq!((night.digests.len(), night.next_release), (0, Some(end_ms)));

    store.clock.advance(Duration::from_millis(end_ms - 1_700_000_000_000));
    let morning = outbox.release_held(4096).await.unwrap();
    assert_eq!(morning.digests.len(), 1);
    let (verdicts, _) = admit(&outbox, &policy, vec![notification("disk 85%", 3)]).await;
    assert_eq!(verdicts, [Verdict::Send], "the quiet hours are over");
    let queued = pending(&outbox, 3).await;
    let titles: Vec<&str> = queued.iter().map(|(_, record)| record.message.title.as_str()).collect();
    assert_eq!(titles, ["site down", "1 more from ops", "disk 85%"]);
    assert_eq!(queued[1].1.message.message.as_str(), "disk 80%");
}

async fn a_duplicate_webhook_changes_no_noise_state(backend: Backend) {
    let store = Store::new(backend).await;
    let policy = NoisePolicy {
        rate: Some(RateLimit {
            count: 1,
            window: Duration::from_secs(60),
        }),
        ..NoisePolicy::default()
    };
    let outbox = store.open().await;
    let first = admit_deduped(&outbox, &policy, vec![notification("a", 3)], Some("k")).await;
    assert_eq!(first.map(|(verdicts, _)| verdicts), Some(vec![Verdict::Send]));
    let again = admit_deduped(&outbox, &policy, vec![notification("a", 3)], Some("k")).await;
    assert_eq!(again, None, "a duplicate");
    let held = admit_deduped(&outbox, &policy, vec![notification("b", 3)], None).await;
    assert_eq!(held.map(|(verdicts, _)| verdicts), Some(vec![Verdict::HeldRate]));
    store.clock.advance(Duration::from_secs(60));
    let released = outbox.release_held(4096).await.unwrap();
    assert_eq!(released.digests.iter().map(|d| d.count).collect::<Vec<_>>(), [1], "the duplicate was not held");
}

#[actix_web::test]
async fn two_replicas_racing_for_a_due_digest_queue_it_once() {
    let store = Store::new(Backend::Postgres).await;
    let (first, second) = (store.open().await, store.open().await);
    let policy = NoisePolicy {
        rate: Some(RateLimit {
            count: 1,
            window: Duration::from_secs(10),
        }),
        ..NoisePolicy::default()
    };
    for round in 0..5 {
        for n in 0..4 {
            let replica = if n % 2 == 0 { &first } else { &second };
            admit(replica, &policy, vec![notification(&format!("round {round} event {n}"), 3)]).await;
        }
        store.clock.advance(Duration::from_secs(11));
        let (one, two) = tokio::join!(first.release_held(4096), second.release_held(4096));
        let digests: Vec<u64> = one.unwrap().digests.iter().chain(&two.unwrap().digests).map(|d| d.count).collect();
        assert_eq!(digests, [3], "round {round}: one digest of the three held");
    }
}
