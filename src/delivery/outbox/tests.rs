//! The interface as the dispatcher and the admin endpoints use it, on the redb backend.

use tempfile::TempDir;

use super::*;
use crate::delivery::test_support::{fast_settings, message, route};

fn open(dir: &TempDir) -> Outbox {
    Outbox::open(dir.path(), &fast_settings()).unwrap()
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

fn ids(batch: &[(u64, PendingRecord)]) -> Vec<u64> {
    batch.iter().map(|(id, _)| *id).collect()
}

#[test]
fn the_outbox_can_be_shared_between_http_workers() {
    fn shareable<T: Send + Sync + 'static>() {}
    shareable::<Outbox>();
}

#[actix_web::test]
async fn a_claim_hands_out_its_routes_notifications_in_order_and_only_once() {
    let dir = TempDir::new().unwrap();
    let outbox = open(&dir);
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

#[actix_web::test]
async fn a_retry_holds_its_route_back_until_it_is_due() {
    let dir = TempDir::new().unwrap();
    let outbox = open(&dir);
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

#[actix_web::test]
async fn a_dead_letter_outcome_can_be_listed_and_retried() {
    let dir = TempDir::new().unwrap();
    let outbox = open(&dir);
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
    let outbox = open(&dir);
    assert_eq!(outbox.data_dir(), Some(dir.path()));
    assert!(!outbox.needs_restart());
}

#[actix_web::test]
async fn the_same_dedup_key_on_another_route_is_not_a_duplicate() {
    let dir = TempDir::new().unwrap();
    let outbox = open(&dir);
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
