//! What only a database shared by replicas does: leases across handles, their lapse and takeover,
//! global dedup, `LISTEN`/`NOTIFY`, schema versions, and riding out a database that stops or hangs. The
//! interface's behaviour on this backend is tested with redb's in `outbox/tests.rs`.

use std::collections::HashSet;
use std::time::Duration;

use crate::database::test_server::TestPostgres;
use crate::config::{DatabaseUrl, DeliverySettings};
use crate::delivery::outbox::{Claim, Outbox, Outcome};
use crate::delivery::test_support::{fast_settings, message, route};
use crate::delivery::{Enqueued, OutboxError};

fn settings(url: &str) -> DeliverySettings {
    DeliverySettings {
        database: Some(DatabaseUrl::parse(url).unwrap()),
        ..fast_settings()
    }
}

/// Two replicas' outboxes on one new database, with leases of `lease`.
async fn replicas(lease: Duration) -> (Outbox, Outbox) {
    let url = TestPostgres::shared().create_database().await;
    let settings = DeliverySettings {
        lease,
        ..settings(&url)
    };
    let dir = tempfile::tempdir().unwrap();
    let first = Outbox::connect(dir.path(), &settings).await.unwrap();
    let second = Outbox::connect(dir.path(), &settings).await.unwrap();
    (first, second)
}

async fn enqueue(outbox: &Outbox, route_name: &str, texts: &[&str]) -> Vec<u64> {
    let messages = texts.iter().map(|text| message(text)).collect();
    match outbox.enqueue(&route(route_name), messages, None).await {
        Ok(Enqueued::Queued(ids)) => ids,
        other => panic!("enqueue failed: {other:?}"),
    }
}

fn routes(claims: &[Claim]) -> Vec<&str> {
    claims.iter().map(|claim| claim.route().as_str()).collect()
}

#[actix_web::test]
async fn two_replicas_never_hold_the_same_route_at_once() {
    let (first, second) = replicas(Duration::from_secs(60)).await;
    let names: Vec<String> = (0..12).map(|n| format!("route-{n}")).collect();
    for name in &names {
        enqueue(&first, name, &["a", "b"]).await;
    }
    let mut held: Vec<(bool, Claim)> = Vec::new();
    for _round in 0..6 {
        let (one, two) = tokio::join!(first.claim_due(3), second.claim_due(3));
        held.extend(one.claims.into_iter().map(|claim| (true, claim)));
        held.extend(two.claims.into_iter().map(|claim| (false, claim)));
        let distinct: HashSet<&str> = held.iter().map(|(_, claim)| claim.route().as_str()).collect();
        assert_eq!(distinct.len(), held.len(), "a route was handed out twice");
    }
    // Which replica gets how many is up to the database's locks (a claim skips the rows the
    // other is locking): only that each route is handed out once, and all of them, is promised.
    assert_eq!(held.len(), names.len(), "every route was claimed once");
    let (by_first, mut claim) = held.pop().unwrap();
    let (holder, other) = if by_first {
        (&first, &second)
    } else {
        (&second, &first)
    };
    assert!(other.claim_due(20).await.claims.is_empty());
    let batch = holder.next_batch(&mut claim, 10).await;
    assert_eq!(batch.len(), 2);
    holder.release(claim).await;
    let taken = other.claim_due(20).await.claims;
    assert_eq!(routes(&taken).len(), 1, "a route given back is free for the other replica");
}

#[actix_web::test]
async fn a_lapsed_lease_is_taken_over_and_fences_out_its_old_holder() {
    let (dying, survivor) = replicas(Duration::from_millis(600)).await;
    let ids = enqueue(&dying, "alerts", &["first", "second"]).await;
    let mut lost = dying.claim_due(5).await.claims.remove(0);
    assert_eq!(dying.next_batch(&mut lost, 1).await[0].0, ids[0]);
    assert!(
        survivor.claim_due(5).await.claims.is_empty(),
        "the lease holds while it is fresh"
    );

    let started = std::time::Instant::now();
    let mut taken = loop {
        assert!(started.elapsed() < Duration::from_secs(10), "never taken over");
        if let Some(claim) = survivor.claim_due(5).await.claims.pop() {
            break claim;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(taken.lease() > lost.lease(), "a new lease has a higher number");
    let batch = survivor.next_batch(&mut taken, 10).await;
    assert_eq!(
        batch.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        ids,
        "the new holder starts from the route's oldest notification"
    );

    let fenced = dying.record(&lost, ids[0], Outcome::Sent).await;
    assert!(
        matches!(&fenced, Err(OutboxError::LeaseLost { id, .. }) if *id == ids[0]),
        "{fenced:?}"
    );
    assert!(dying.next_batch(&mut lost, 10).await.is_empty());
    dying.release(lost).await;
    for (id, _) in batch {
        survivor.record(&taken, id, Outcome::Sent).await.unwrap();
    }
    survivor.release(taken).await;
    assert!(survivor.claim_due(5).await.claims.is_empty(), "all sent");
    assert_eq!(survivor.dead_letter_count().await.unwrap(), 0);
}

#[actix_web::test]
async fn the_same_delivery_posted_to_two_replicas_is_queued_once() {
    let (first, second) = replicas(Duration::from_secs(60)).await;
    let key = || Some("github:72d3162e-cc78-11e3-81ab-4c9367dc0958".to_owned());
    let post = |outbox: &Outbox| {
        let outbox = outbox.clone();
        async move {
            outbox
                .enqueue(&route("github"), vec![message("push")], key())
                .await
                .unwrap()
        }
    };
    let (one, two) = tokio::join!(post(&first), post(&second));
    let mut answers = [one, two];
    answers.sort_by_key(|answer| *answer == Enqueued::Duplicate);
    assert_eq!(answers, [Enqueued::Queued(vec![1]), Enqueued::Duplicate]);
}

#[actix_web::test]
async fn another_replicas_enqueue_wakes_an_idle_dispatcher_at_once() {
    let (idle, busy) = replicas(Duration::from_secs(600)).await;
    // The first wake-up says the LISTEN is in place; the fallback poll is 5 s away.
    tokio::time::timeout(Duration::from_secs(4), idle.changed())
        .await
        .expect("listening");
    let waiting = tokio::spawn({
        let idle = idle.clone();
        async move { tokio::time::timeout(Duration::from_secs(4), idle.changed()).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    enqueue(&busy, "ops", &["hello"]).await;
    waiting.await.unwrap().expect("woken by NOTIFY");
    assert_eq!(idle.claim_due(5).await.claims.len(), 1);
}

#[actix_web::test]
async fn a_schema_newer_than_this_binary_is_refused() {
    let url = TestPostgres::shared().create_database().await;
    let dir = tempfile::tempdir().unwrap();
    let outbox = Outbox::connect(dir.path(), &settings(&url)).await.unwrap();
    drop(outbox);
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let newer = crate::database::latest_version() + 1;
    client
        .execute(
            "INSERT INTO pushjet_bridge_schema (version) VALUES ($1)",
            &[&newer],
        )
        .await
        .unwrap();
    let error = Outbox::connect(dir.path(), &settings(&url))
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains(&format!("version {newer}, newer")), "{error}");
}

#[actix_web::test]
async fn a_migration_missing_below_the_newest_applied_is_applied() {
    // Branches merged in another order than their migrations' numbers: a database that has
    // version 5 but not 4 still gets 4.
    let url = TestPostgres::shared().create_database().await;
    let dir = tempfile::tempdir().unwrap();
    drop(Outbox::connect(dir.path(), &settings(&url)).await.unwrap());
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .batch_execute(
            "DROP TABLE noise_routes; DELETE FROM pushjet_bridge_schema WHERE version = 4",
        )
        .await
        .unwrap();
    drop(Outbox::connect(dir.path(), &settings(&url)).await.unwrap());
    let applied: i64 = client
        .query_one(
            "SELECT count(*) FROM pushjet_bridge_schema WHERE version = 4",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(applied, 1);
    client
        .query("SELECT route FROM noise_routes", &[])
        .await
        .expect("migration 4 applied again");
}

#[actix_web::test]
async fn replicas_starting_together_migrate_the_schema_once() {
    let url = TestPostgres::shared().create_database().await;
    let dir = tempfile::tempdir().unwrap();
    let settings = settings(&url);
    let starts = (0..4).map(|_| Outbox::connect(dir.path(), &settings));
    for started in futures_util::future::join_all(starts).await {
        started.unwrap();
    }
}

#[actix_web::test]
async fn a_stopped_database_refuses_webhooks_and_recovers_when_it_is_back() {
    let server = TestPostgres::start();
    let url = server.create_database().await;
    let dir = tempfile::tempdir().unwrap();
    let outbox = Outbox::connect(dir.path(), &settings(&url)).await.unwrap();
    assert_eq!(enqueue(&outbox, "ops", &["before"]).await, [1]);
    assert_eq!(outbox.problem(), None);

    server.stop();
    let refused = outbox
        .enqueue(&route("ops"), vec![message("during")], None)
        .await;
    let Err(error) = refused else {
        panic!("accepted while the database was down: {refused:?}");
    };
    assert!(matches!(error, OutboxError::Unavailable(_)), "{error}");
    assert!(error.retry_after().is_some(), "a 503 with Retry-After");
    assert!(outbox.problem().is_some(), "/readyz says why");
    let due = outbox.claim_due(5).await;
    assert!(due.claims.is_empty());
    assert!(due.next_due.is_some(), "the dispatcher asks again later");

    server.start_again();
    let started = std::time::Instant::now();
    let ids = loop {
        let attempt = outbox
            .enqueue(&route("ops"), vec![message("after")], None)
            .await;
        match attempt {
            Ok(Enqueued::Queued(ids)) => break ids,
            other => assert!(
                started.elapsed() < Duration::from_secs(20),
                "never recovered: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(ids.len(), 1, "ids may skip after a server crash, never repeat");
    assert!(ids[0] > 1);
    assert_eq!(outbox.problem(), None);
    let mut claim = outbox.claim_due(5).await.claims.remove(0);
    let texts: Vec<_> = outbox
        .next_batch(&mut claim, 10)
        .await
        .into_iter()
        .map(|(_, pending)| pending.message)
        .collect();
    assert_eq!(
        texts,
        [message("before"), message("after")],
        "nothing refused was stored"
    );
}

/// Waits for `work` while `server` hangs; resumes it after 8 s if `work` has not ended by then,
/// so that a wait without a bound fails its test rather than hanging it.
async fn while_hung<T>(server: &TestPostgres, work: impl Future<Output = T>) -> T {
    tokio::pin!(work);
    tokio::select! {
        done = &mut work => done,
        () = tokio::time::sleep(Duration::from_secs(8)) => {
            server.resume();
            work.await
        }
    }
}

#[actix_web::test]
async fn a_hung_database_is_unavailable_within_the_timeout_and_a_retry_is_kept_once() {
    let server = TestPostgres::start();
    let url = server.create_database().await;
    let timeout = Duration::from_millis(500);
    let settings = DeliverySettings {
        database: Some(DatabaseUrl::parse(&url).unwrap().with_timeout(timeout)),
        ..fast_settings()
    };
    let dir = tempfile::tempdir().unwrap();
    let outbox = Outbox::connect(dir.path(), &settings).await.unwrap();
    assert_eq!(enqueue(&outbox, "ops", &["before"]).await, [1]);

    server.pause();
    let started = std::time::Instant::now();
    let refused = while_hung(
        &server,
        outbox.enqueue(&route("ops"), vec![message("during")], Some("d-1".into())),
    )
    .await;
    let waited = started.elapsed();
    // While hung, the dispatcher is told nothing is due rather than waiting with it.
    let due = while_hung(&server, outbox.claim_due(5)).await;
    let problem = outbox.problem();
    server.resume();
    let Err(error) = refused else {
        panic!("accepted while the database was hung: {refused:?}");
    };
    assert!(error.to_string().contains("no answer within 500ms"), "{error}");
    assert!(error.retry_after().is_some(), "a 503 with Retry-After");
    // Generous: the bound is 500 ms; without it the enqueue waits as long as the server hangs.
    assert!(waited < Duration::from_secs(5), "waited {waited:?}");
    assert!(due.claims.is_empty() && due.next_due.is_some());
    assert!(problem.is_some_and(|reason| reason.contains("database")));

    // The refused enqueue may have committed once the server went on: the sender's retry, with
    // the same delivery id, is then a duplicate, and the message is kept once either way.
    let started = std::time::Instant::now();
    loop {
        let retry = outbox
            .enqueue(&route("ops"), vec![message("during")], Some("d-1".into()))
            .await;
        match retry {
            Ok(Enqueued::Queued(_) | Enqueued::Duplicate) => break,
            other => assert!(
                started.elapsed() < Duration::from_secs(20),
                "never recovered: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut claim = outbox.claim_due(5).await.claims.remove(0);
    let texts: Vec<_> = outbox
        .next_batch(&mut claim, 10)
        .await
        .into_iter()
        .map(|(_, pending)| pending.message)
        .collect();
    assert_eq!(texts, [message("before"), message("during")]);
}

#[actix_web::test]
async fn a_lease_in_use_is_renewed_by_every_outcome_and_outlives_its_length() {
    let lease = Duration::from_millis(600);
    let (sender, other) = replicas(lease).await;
    let ids = enqueue(&sender, "slow", &["1", "2", "3", "4", "5"]).await;
    let mut claim = sender.claim_due(5).await.claims.remove(0);
    assert_eq!(sender.next_batch(&mut claim, 10).await.len(), ids.len());
    let started = std::time::Instant::now();
    for id in ids {
        tokio::time::sleep(lease / 2).await;
        assert!(
            other.claim_due(5).await.claims.is_empty(),
            "the route is still held"
        );
        sender.record(&claim, id, Outcome::Sent).await.unwrap();
    }
    assert!(started.elapsed() > lease * 2, "the run outlasted the lease");
    sender.release(claim).await;
    assert!(other.claim_due(5).await.claims.is_empty(), "all sent");
}

#[actix_web::test]
async fn the_queue_limit_counts_what_other_replicas_queued() {
    let url = TestPostgres::shared().create_database().await;
    let settings = DeliverySettings {
        max_queue: 3,
        ..settings(&url)
    };
    let dir = tempfile::tempdir().unwrap();
    let first = Outbox::connect(dir.path(), &settings).await.unwrap();
    let second = Outbox::connect(dir.path(), &settings).await.unwrap();
    enqueue(&first, "ops", &["a", "b"]).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while second.pending_count() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the other replica never read the pending count"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let two = vec![message("c"), message("d")];
    assert!(matches!(
        second.enqueue(&route("ops"), two, None).await,
        Err(OutboxError::Full { limit: 3 })
    ));
    assert_eq!(enqueue(&second, "ops", &["e"]).await.len(), 1);
}

#[actix_web::test]
async fn concurrent_enqueues_on_one_route_are_each_committed_once_in_their_own_order() {
    let (first, second) = replicas(Duration::from_secs(60)).await;
    let batches: Vec<Vec<String>> = (0..40)
        .map(|n| (0..3).map(|part| format!("{n}-{part}")).collect())
        .collect();
    let posts = batches.iter().enumerate().map(|(n, texts)| {
        let outbox = if n % 2 == 0 { &first } else { &second };
        let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
        async move { (enqueue(outbox, "storm", &texts).await, texts.clone()) }
    });
    let results = futures_util::future::join_all(posts).await;
    let mut all_ids = HashSet::new();
    for (ids, _) in &results {
        assert_eq!(ids.len(), 3);
        assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "{ids:?}");
        assert!(ids.iter().all(|id| all_ids.insert(*id)), "an id handed out twice");
    }
    let mut claimed = first.claim_due(1).await.claims.remove(0);
    let batch = first.next_batch(&mut claimed, 1000).await;
    assert_eq!(batch.len(), 120, "every committed notification is pending");
    for (ids, texts) in &results {
        for (id, text) in ids.iter().zip(texts) {
            let found = batch.iter().find(|(pending, _)| pending == id);
            assert_eq!(found.map(|(_, record)| record.message.clone()), Some(message(text)));
        }
    }
}
