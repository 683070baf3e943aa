//! The interface as the dispatcher and the admin endpoints use it, on both backends: every
//! behavioural test runs on the embedded redb store and on a PostgreSQL database (a throwaway
//! server per test binary, a database per test).

use tempfile::TempDir;

use super::*;
use crate::config::DatabaseUrl;
use crate::database::on_both_backends;
use crate::database::test_server::TestPostgres;
use crate::delivery::test_support::{fast_settings, message, route};

/// Which backend a test runs on.
#[derive(Debug, Clone, Copy)]
enum Backend {
    Redb,
    Postgres,
}

/// An outbox on a new, empty store, and what keeps the store (a directory for redb).
struct Opened {
    outbox: Outbox,
    _dir: TempDir,
}

async fn open_with(backend: Backend, settings: DeliverySettings) -> Opened {
    let dir = TempDir::new().unwrap();
    let settings = match backend {
        Backend::Redb => settings,
        Backend::Postgres => DeliverySettings {
            database: Some(
                DatabaseUrl::parse(&TestPostgres::shared().create_database().await).unwrap(),
            ),
            ..settings
        },
    };
    let outbox = Outbox::connect(dir.path(), &settings).await.unwrap();
    Opened { outbox, _dir: dir }
}

async fn open(backend: Backend) -> Opened {
    open_with(backend, fast_settings()).await
}

async fn enqueue(outbox: &Outbox, route_name: &str, texts: &[&str]) -> Vec<u64> {
    let messages = texts.iter().map(|text| message(text)).collect();
    match outbox.enqueue(&route(route_name), messages, None).await {
        Ok(Enqueued::Queued(ids)) => ids,
        other => panic!("enqueue failed: {other:?}"),
    }
}

/// Claims routes until `count` are claimed: new notifications become claimable once the
/// backend's commit that holds them is done, a few milliseconds after they were stored.
async fn claim(outbox: &Outbox, count: usize) -> Vec<Claim> {
    let started = std::time::Instant::now();
    let mut claims = Vec::new();
    while claims.len() < count {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "only {} of {count} routes claimed",
            claims.len()
        );
        claims.extend(outbox.claim_due(count - claims.len()).await.claims);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    claims
}

on_both_backends!(
    a_claim_hands_out_its_routes_notifications_in_order_and_only_once,
    a_retry_holds_its_route_back_until_it_is_due,
    a_dead_letter_outcome_can_be_listed_and_retried,
    the_same_dedup_key_on_another_route_is_not_a_duplicate,
    dead_letters_are_retried_as_far_as_there_is_room_and_purged,
    the_queue_limit_and_the_dedup_window_refuse_without_storing,
    pending_notifications_are_counted_per_route,
);

async fn pending_notifications_are_counted_per_route(backend: Backend) {
    let Opened { outbox, _dir } = open(backend).await;
    assert!(outbox.pending_by_route().await.unwrap().is_empty());
    enqueue(&outbox, "gh", &["1", "2"]).await;
    enqueue(&outbox, "am", &["3"]).await;
    let started = std::time::Instant::now();
    let counts = loop {
        let counts = outbox.pending_by_route().await.unwrap();
        if counts.values().sum::<u64>() == 3 || started.elapsed() > Duration::from_secs(10) {
            break counts;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert_eq!(counts.get(&route("gh")), Some(&2), "{counts:?}");
    assert_eq!(counts.get(&route("am")), Some(&1), "{counts:?}");
}

fn ids(batch: &[(u64, PendingRecord)]) -> Vec<u64> {
    batch.iter().map(|(id, _)| *id).collect()
}

#[test]
fn the_outbox_can_be_shared_between_http_workers() {
    fn shareable<T: Send + Sync + 'static>() {}
    shareable::<Outbox>();
}

async fn a_claim_hands_out_its_routes_notifications_in_order_and_only_once(backend: Backend) {
    let Opened { outbox, _dir } = open(backend).await;
    enqueue(&outbox, "gh", &["1", "2", "3"]).await;
    enqueue(&outbox, "am", &["4"]).await;
    let mut claims = claim(&outbox, 2).await;
    let routes: Vec<&str> = claims.iter().map(|claim| claim.route().as_str()).collect();
    assert_eq!(routes, ["gh", "am"], "the oldest due notification first");
    let due = outbox.claim_due(5).await;
    assert!(
        due.claims.is_empty(),
        "a claimed route is not claimed twice"
    );
    assert_eq!(due.next_due, None, "no route is left unclaimed");

    let gh = &mut claims[0];
    let first = outbox.next_batch(gh, 2).await;
    assert_eq!(ids(&first), [1, 2]);
    assert_eq!(first[1].1.message, message("2"));
    assert_eq!(ids(&outbox.next_batch(gh, 2).await), [3]);
    assert!(outbox.next_batch(gh, 2).await.is_empty());
    for id in 1..=3 {
        outbox.record(gh, id, Outcome::Sent).await.unwrap();
    }
    assert_eq!(outbox.pending_count(), 1);
    for claim in claims {
        outbox.release(claim).await;
    }
    let again = claim(&outbox, 1).await;
    assert_eq!(again[0].route().as_str(), "am");
}

async fn a_retry_holds_its_route_back_until_it_is_due(backend: Backend) {
    let Opened { outbox, _dir } = open(backend).await;
    enqueue(&outbox, "gh", &["first", "second"]).await;
    let mut claims = claim(&outbox, 1).await;
    let mut gh = claims.remove(0);
    let batch = outbox.next_batch(&mut gh, 10).await;
    assert_eq!(ids(&batch), [1, 2]);
    let at = outbox.now() + 60_000;
    let error = "503".to_owned();
    outbox
        .record(&gh, 1, Outcome::Retry { at, error })
        .await
        .unwrap();
    outbox.release(gh).await;

    let due = outbox.claim_due(5).await;
    assert!(due.claims.is_empty(), "the second waits behind the first");
    assert_eq!(due.next_due, Some(at));
    assert_eq!(outbox.pending_count(), 2);
}

async fn a_dead_letter_outcome_can_be_listed_and_retried(backend: Backend) {
    let Opened { outbox, _dir } = open(backend).await;
    enqueue(&outbox, "gh", &["doomed"]).await;
    let mut claims = claim(&outbox, 1).await;
    let mut gh = claims.remove(0);
    assert_eq!(ids(&outbox.next_batch(&mut gh, 10).await), [1]);
    let reason = "the service was deleted".to_owned();
    outbox
        .record(&gh, 1, Outcome::Dead { reason })
        .await
        .unwrap();
    outbox.release(gh).await;
    assert_eq!(outbox.pending_count(), 0);
    let dead = outbox.dead_letters(None, 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!((dead[0].id, dead[0].attempts), (1, 1));
    assert_eq!(dead[0].reason, "the service was deleted");

    outbox.retry_dead_letter(1).await.unwrap();
    let again = claim(&outbox, 1).await;
    assert_eq!(again[0].route().as_str(), "gh");
    assert_eq!(outbox.dead_letter_count().await.unwrap(), 0);
}

#[actix_web::test]
async fn the_data_directory_is_where_the_outbox_was_opened() {
    let dir = TempDir::new().unwrap();
    let outbox = Outbox::open(dir.path(), &fast_settings()).unwrap();
    assert_eq!(outbox.data_dir(), Some(dir.path()));
    assert!(!outbox.needs_restart());
    assert_eq!(outbox.problem(), None);
}

async fn the_same_dedup_key_on_another_route_is_not_a_duplicate(backend: Backend) {
    let Opened { outbox, _dir } = open(backend).await;
    let key = || Some("idempotency:shared-key".to_owned());
    let first = outbox
        .enqueue(&route("ops"), vec![message("a")], key())
        .await
        .unwrap();
    assert_eq!(first, Enqueued::Queued(vec![1]));
    let other_route = outbox
        .enqueue(&route("alerts"), vec![message("b")], key())
        .await
        .unwrap();
    assert_eq!(
        other_route,
        Enqueued::Queued(vec![2]),
        "a sender on one route cannot silence another"
    );
    let same_route = outbox
        .enqueue(&route("ops"), vec![message("c")], key())
        .await
        .unwrap();
    assert_eq!(same_route, Enqueued::Duplicate);
}

async fn dead_letters_are_retried_as_far_as_there_is_room_and_purged(backend: Backend) {
    let settings = DeliverySettings {
        max_queue: 2,
        ..fast_settings()
    };
    let Opened { outbox, _dir } = open_with(backend, settings).await;
    assert_eq!(enqueue(&outbox, "gh", &["a", "b"]).await, [1, 2]);
    let mut gh = claim(&outbox, 1).await.remove(0);
    assert_eq!(ids(&outbox.next_batch(&mut gh, 10).await), [1, 2]);
    for id in [1, 2] {
        let reason = format!("refused {id}");
        outbox
            .record(&gh, id, Outcome::Dead { reason })
            .await
            .unwrap();
    }
    outbox.release(gh).await;
    assert_eq!(outbox.dead_letter_count().await.unwrap(), 2);
    assert_eq!(enqueue(&outbox, "gh", &["c"]).await, [3]);

    let retried = outbox.retry_all_dead_letters().await.unwrap();
    assert_eq!(retried, RetriedDeadLetters { ids: vec![1], left: 1 });
    assert!(matches!(
        outbox.retry_all_dead_letters().await,
        Err(OutboxError::Full { limit: 2 })
    ));
    assert!(matches!(
        outbox.retry_dead_letter(2).await,
        Err(OutboxError::Full { limit: 2 })
    ));
    let listed = outbox.dead_letters(None, 10).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].id, listed[0].reason.as_str()), (2, "refused 2"));
    outbox.purge_dead_letter(2).await.unwrap();
    assert!(matches!(
        outbox.purge_dead_letter(2).await,
        Err(OutboxError::NoSuchDeadLetter(2))
    ));
    assert!(matches!(
        outbox.retry_dead_letter(2).await,
        Err(OutboxError::NoSuchDeadLetter(2))
    ));
    assert_eq!(outbox.dead_letter_count().await.unwrap(), 0);
    assert_eq!(outbox.pending_count(), 2);

    let mut gh = claim(&outbox, 1).await.remove(0);
    let batch = outbox.next_batch(&mut gh, 10).await;
    assert_eq!(ids(&batch), [1, 3], "a retried dead letter keeps its place by its id");
    assert_eq!(batch[0].1.message, message("a"));
    assert_eq!(batch[0].1.attempts, 0, "a retried dead letter starts afresh");
}

async fn the_queue_limit_and_the_dedup_window_refuse_without_storing(backend: Backend) {
    let settings = DeliverySettings {
        max_queue: 3,
        dedup_window: Duration::from_millis(300),
        ..fast_settings()
    };
    let Opened { outbox, _dir } = open_with(backend, settings).await;
    let key = || Some("github:delivery-1".to_owned());
    let ops = route("ops");
    let two = || vec![message("a"), message("b")];
    assert_eq!(
        outbox.enqueue(&ops, two(), key()).await.unwrap(),
        Enqueued::Queued(vec![1, 2])
    );
    assert_eq!(
        outbox.enqueue(&ops, two(), key()).await.unwrap(),
        Enqueued::Duplicate
    );
    assert!(matches!(
        outbox.enqueue(&ops, two(), None).await,
        Err(OutboxError::Full { limit: 3 })
    ));
    let refused_key = || Some("refused".to_owned());
    assert!(matches!(
        outbox.enqueue(&ops, two(), refused_key()).await,
        Err(OutboxError::Full { .. })
    ));
    assert_eq!(outbox.pending_count(), 2, "nothing of a refused enqueue is stored");
    assert_eq!(
        outbox.enqueue(&ops, vec![message("c")], refused_key()).await.unwrap(),
        Enqueued::Queued(vec![3]),
        "the key of a refused enqueue was not kept"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    let mut claimed = claim(&outbox, 1).await.remove(0);
    assert_eq!(ids(&outbox.next_batch(&mut claimed, 10).await), [1, 2, 3]);
    outbox.record(&claimed, 1, Outcome::Sent).await.unwrap();
    outbox.release(claimed).await;
    assert_eq!(
        outbox.enqueue(&ops, vec![message("again")], key()).await.unwrap(),
        Enqueued::Queued(vec![4]),
        "a key is forgotten after the dedup window"
    );
}
