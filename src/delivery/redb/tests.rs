use std::sync::atomic::Ordering;

use tempfile::TempDir;

use super::*;
use crate::delivery::outbox::records::{FULL_RETRY_AFTER, UNAVAILABLE_RETRY_AFTER};
use crate::delivery::test_support::{FailingBackend, ManualClock, fast_settings, message, route};

fn open(dir: &TempDir) -> RedbOutbox {
    RedbOutbox::open(dir.path(), &fast_settings()).unwrap()
}

fn queued(outcome: Result<Enqueued, OutboxError>) -> Vec<u64> {
    match outcome {
        Ok(Enqueued::Queued(ids)) => ids,
        other => panic!("expected Queued, got {other:?}"),
    }
}

/// Waits (up to 10 s) until `done` says so: for what the committer does a few milliseconds
/// after it answers.
async fn wait_until(done: impl Fn() -> bool) {
    let started = std::time::Instant::now();
    while !done() && started.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Makes pending notifications dead letters, as the worker does for permanent failures.
async fn kill(outbox: &RedbOutbox, ids: &[u64]) {
    for id in ids {
        let reason = format!("reason {id}");
        outbox
            .dead_letter_for_test(*id, &route("gh"), &reason)
            .await
            .unwrap();
    }
}

#[actix_web::test]
async fn enqueued_notifications_are_on_disk_when_enqueue_returns() {
    let dir = TempDir::new().unwrap();
    let outbox = open(&dir);
    let ids = queued(
        outbox
            .enqueue(&route("gh"), vec![message("one"), message("two")], None)
            .await,
    );
    assert_eq!(ids, [1, 2]);
    drop(outbox);

    let reopened = open(&dir);
    assert_eq!(reopened.pending_count(), 2);
    let stored = reopened.load(2).await.unwrap().unwrap();
    assert_eq!(stored.message, message("two"));
    assert_eq!(stored.route, "gh");
    assert_eq!(stored.attempts, 0);
}

/// An outbox whose write transaction is not committed by time (an hour), only when a request
/// asks for it or the outbox closes: what its journal holds can be copied into a crash image
/// without a commit in between starting the journal over, however slow the machine.
fn open_holding_commits(dir: &TempDir) -> RedbOutbox {
    RedbOutbox::open_with_clock(
        dir.path(),
        &fast_settings(),
        Arc::new(SystemClock),
        Duration::from_secs(3600),
    )
    .unwrap()
}

/// The database file as it is now: taken right after opening, it is what a crash leaves
/// when the crash comes before the first commit (the one that holds nothing of the journal).
fn database_bytes(dir: &TempDir) -> Vec<u8> {
    std::fs::read(dir.path().join(OUTBOX_FILE_NAME)).unwrap()
}

/// A data directory holding `database` and the journal of `dir` as it is now: every frame
/// written since must be replayed from the journal.
fn crash_image(database: &[u8], dir: &TempDir) -> TempDir {
    let image = TempDir::new().unwrap();
    std::fs::write(image.path().join(OUTBOX_FILE_NAME), database).unwrap();
    let journal = super::journal::JOURNAL_FILE_NAME;
    std::fs::copy(dir.path().join(journal), image.path().join(journal)).unwrap();
    image
}

#[actix_web::test]
async fn a_crash_loses_nothing_the_journal_holds_and_applies_it_once() {
    let dir = TempDir::new().unwrap();
    let outbox = open_holding_commits(&dir);
    let database = database_bytes(&dir);
    let key = || Some("github:crash".to_owned());
    let first = queued(
        outbox
            .enqueue(&route("gh"), vec![message("one"), message("two")], key().map(DedupKey::delivery))
            .await,
    );
    queued(
        outbox
            .enqueue(&route("am"), vec![message("three")], None)
            .await,
    );
    outbox
        .settle(first[0], &route("gh"), Settlement::Sent)
        .await
        .unwrap();
    let retry_at = outbox.core().now() + 60_000;
    outbox
        .settle(
            first[1],
            &route("gh"),
            Settlement::Retry {
                at: retry_at,
                error: "503".to_owned(),
            },
        )
        .await
        .unwrap();
    let image = crash_image(&database, &dir);
    let without_journal = TempDir::new().unwrap();
    std::fs::write(without_journal.path().join(OUTBOX_FILE_NAME), &database).unwrap();
    assert_eq!(
        open(&without_journal).pending_count(),
        0,
        "the database image alone holds none of it"
    );

    let recovered = open(&image);
    assert_eq!(recovered.pending_count(), 2, "two: the first one was sent");
    let retried = recovered.load(first[1]).await.unwrap().unwrap();
    assert_eq!((retried.attempts, retried.next_attempt_at), (1, retry_at));
    assert_eq!(retried.last_error.as_deref(), Some("503"));
    assert_eq!(
        recovered.load(3).await.unwrap().unwrap().message,
        message("three")
    );
    let again = recovered
        .enqueue(&route("gh"), vec![message("one")], key().map(DedupKey::delivery))
        .await
        .unwrap();
    assert_eq!(again, Enqueued::Duplicate, "the dedup key came back too");
    assert_eq!(
        queued(
            recovered
                .enqueue(&route("gh"), vec![message("four")], None)
                .await
        ),
        [4],
        "ids go on after the recovered ones"
    );
    drop(recovered);

    // Opening again finds the recovered changes in the database, and in the journal only
    // frames the database holds: none is applied twice.
    let reopened = open(&image);
    assert_eq!(reopened.pending_count(), 3, "nothing applied twice");
}

/// Whether the database file alone, as it is on disk now (without the journal), holds `pending`
/// notifications.
fn database_alone_holds(dir: &TempDir, pending: u64) -> bool {
    let image = TempDir::new().unwrap();
    std::fs::write(image.path().join(OUTBOX_FILE_NAME), database_bytes(dir)).unwrap();
    open(&image).pending_count() == pending
}

#[actix_web::test]
async fn readable_commits_become_durable_within_a_checkpoint_even_when_idle() {
    let dir = TempDir::new().unwrap();
    let outbox = open(&dir);
    // The first commits after opening are readable-only: the journal holds the notification.
    queued(
        outbox
            .enqueue(&route("gh"), vec![message("one")], None)
            .await,
    );
    assert_eq!(outbox.pending_count(), 1);
    // Nothing else comes; the committer still makes it durable in the database itself.
    let started = std::time::Instant::now();
    while !database_alone_holds(&dir, 1) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the database file never held the notification on its own"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[actix_web::test]
async fn dead_letter_changes_are_recovered_from_the_journal() {
    use super::journal::{ChangeRef, JOURNAL_FILE_NAME, encode_frame};

    // Operators' changes are committed before they are answered, so they are replayed only
    // after a crash between the journal's sync and that commit: write such frames by hand.
    let dir = TempDir::new().unwrap();
    let outbox = open(&dir);
    let messages = (1..=4).map(|n| message(&format!("m{n}"))).collect();
    queued(outbox.enqueue(&route("gh"), messages, None).await);
    kill(&outbox, &[1, 2, 3, 4]).await;
    drop(outbox);
    let applied = Database::open(dir.path().join(OUTBOX_FILE_NAME))
        .unwrap()
        .begin_read()
        .unwrap()
        .open_table(META)
        .unwrap()
        .get("journal_seq")
        .unwrap()
        .map_or(0, |value| value.value());
    let dead = Settlement::Dead {
        reason: "again".to_owned(),
    };
    let changes = [
        ChangeRef::PurgeDeadLetter { id: 4 },
        ChangeRef::RetryDeadLetter { id: 3 },
        ChangeRef::RetryDeadLetter { id: 1 },
        ChangeRef::RetryDeadLetter { id: 2 },
        ChangeRef::Settle {
            id: 2,
            route: "gh",
            settlement: &dead,
        },
    ];
    let mut journal = Vec::new();
    for (seq, change) in (applied + 1..).zip(&changes) {
        journal.extend(encode_frame(seq, 1, &[change.to_json().unwrap()]));
    }
    std::fs::write(dir.path().join(JOURNAL_FILE_NAME), journal).unwrap();

    let recovered = open(&dir);
    assert_eq!(recovered.pending_count(), 2);
    assert!(recovered.load(1).await.unwrap().is_some());
    assert!(recovered.load(3).await.unwrap().is_some());
    let dead = recovered.dead_letters(None, 10).await.unwrap();
    assert_eq!(dead.iter().map(|d| d.id).collect::<Vec<_>>(), [2]);
    assert_eq!(dead[0].reason, "again");
}

#[actix_web::test]
async fn ids_keep_increasing_across_restarts_and_deliveries() {
    let dir = TempDir::new().unwrap();
    let outbox = open(&dir);
    queued(outbox.enqueue(&route("a"), vec![message("1")], None).await);
    outbox
        .settle(1, &route("a"), Settlement::Sent)
        .await
        .unwrap();
    assert_eq!(outbox.pending_count(), 0);
    drop(outbox);

    let reopened = open(&dir);
    let ids = queued(
        reopened
            .enqueue(&route("b"), vec![message("2"), message("3")], None)
            .await,
    );
    assert_eq!(ids, [2, 3]);
}

#[actix_web::test]
async fn a_dedup_key_seen_within_the_window_is_a_duplicate_and_queues_nothing() {
    let dir = TempDir::new().unwrap();
    let outbox = open(&dir);
    let key = || Some("github:72d3162e".to_owned());
    queued(
        outbox
            .enqueue(&route("gh"), vec![message("a")], key().map(DedupKey::delivery))
            .await,
    );
    let again = outbox
        .enqueue(&route("gh"), vec![message("a"), message("b")], key().map(DedupKey::delivery))
        .await
        .unwrap();
    assert_eq!(again, Enqueued::Duplicate);
    assert_eq!(outbox.pending_count(), 1);
    let other = outbox
        .enqueue(
            &route("gh"),
            vec![message("c")],
            Some(DedupKey::delivery("github:other".to_owned())),
        )
        .await;
    assert_eq!(queued(other), [2]);
}

#[actix_web::test]
async fn a_dedup_key_is_forgotten_after_the_window_and_remembered_across_restarts() {
    let dir = TempDir::new().unwrap();
    let clock = ManualClock::new();
    let settings = DeliverySettings {
        dedup_window: Duration::from_secs(3600),
        ..fast_settings()
    };
    let key = || Some("gitlab:1".to_owned());
    let outbox = RedbOutbox::open_with_clock(dir.path(), &settings, clock.clone(), committer::APPLY_DELAY).unwrap();
    queued(
        outbox
            .enqueue(&route("gl"), vec![message("a")], key().map(DedupKey::delivery))
            .await,
    );
    drop(outbox);

    clock.advance(Duration::from_secs(3599));
    let outbox = RedbOutbox::open_with_clock(dir.path(), &settings, clock.clone(), committer::APPLY_DELAY).unwrap();
    let within = outbox
        .enqueue(&route("gl"), vec![message("a")], key().map(DedupKey::delivery))
        .await;
    assert_eq!(within.unwrap(), Enqueued::Duplicate);

    clock.advance(Duration::from_secs(1));
    let after = outbox
        .enqueue(&route("gl"), vec![message("a")], key().map(DedupKey::delivery))
        .await;
    assert_eq!(queued(after), [2]);
    let fresh_window = outbox
        .enqueue(&route("gl"), vec![message("a")], key().map(DedupKey::delivery))
        .await;
    assert_eq!(fresh_window.unwrap(), Enqueued::Duplicate);
}

#[actix_web::test]
async fn enqueue_refuses_beyond_the_queue_limit_all_or_nothing() {
    let dir = TempDir::new().unwrap();
    let settings = DeliverySettings {
        max_queue: 3,
        ..fast_settings()
    };
    let outbox = RedbOutbox::open(dir.path(), &settings).unwrap();
    queued(
        outbox
            .enqueue(&route("gh"), vec![message("1"), message("2")], None)
            .await,
    );
    let key = || Some("github:big".to_owned());
    let refused = outbox
        .enqueue(&route("gh"), vec![message("3"), message("4")], key().map(DedupKey::delivery))
        .await
        .unwrap_err();
    assert!(
        matches!(refused, OutboxError::Full { limit: 3 }),
        "{refused}"
    );
    assert_eq!(refused.retry_after(), Some(FULL_RETRY_AFTER));
    assert_eq!(outbox.pending_count(), 2);
    let fits = outbox
        .enqueue(&route("gh"), vec![message("3")], key().map(DedupKey::delivery))
        .await;
    assert_eq!(queued(fits), [3], "the refused call must not keep its key");
}

#[actix_web::test]
async fn group_commit_batches_concurrent_enqueues_into_few_transactions() {
    let dir = TempDir::new().unwrap();
    let outbox = open(&dir);
    let before = outbox.core().transactions.load(Ordering::Relaxed);
    let calls = (0..200).map(|n| {
        let outbox = &outbox;
        async move {
            let key = Some(format!("generic:{n}"));
            outbox
                .enqueue(&route("load"), vec![message(&n.to_string())], key.map(DedupKey::delivery))
                .await
        }
    });
    let outcomes = futures_util::future::join_all(calls).await;
    let mut ids: Vec<u64> = outcomes.into_iter().flat_map(queued).collect();
    ids.sort_unstable();
    assert_eq!(ids, (1..=200).collect::<Vec<u64>>());
    assert_eq!(outbox.pending_count(), 200);
    let transactions = outbox.core().transactions.load(Ordering::Relaxed) - before;
    assert!(
        transactions < 20,
        "{transactions} transactions for 200 enqueues"
    );
    drop(outbox);
    assert_eq!(open(&dir).pending_count(), 200);
}

#[test]
fn a_data_dir_under_a_regular_file_is_unavailable() {
    let dir = TempDir::new().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, b"not a directory").unwrap();
    let error = RedbOutbox::open(&file.join("data"), &fast_settings()).unwrap_err();
    assert!(matches!(error, OutboxError::Unavailable(_)), "{error}");
    assert_eq!(error.retry_after(), Some(UNAVAILABLE_RETRY_AFTER));
}

#[test]
fn a_database_path_that_is_a_directory_is_unavailable() {
    let dir = TempDir::new().unwrap();
    std::fs::create_dir(dir.path().join(OUTBOX_FILE_NAME)).unwrap();
    let error = RedbOutbox::open(dir.path(), &fast_settings()).unwrap_err();
    assert!(matches!(error, OutboxError::Unavailable(_)), "{error}");
}

#[test]
fn a_second_open_says_the_database_is_locked() {
    let dir = TempDir::new().unwrap();
    let _service = open(&dir);
    let error = RedbOutbox::open(dir.path(), &fast_settings()).unwrap_err();
    assert!(matches!(error, OutboxError::Locked { .. }), "{error}");
    assert!(error.to_string().contains("running service"), "{error}");
}

#[actix_web::test]
async fn a_failed_commit_of_answered_changes_refuses_everything_until_a_restart_restores_them() {
    let dir = TempDir::new().unwrap();
    let backend = FailingBackend::on_file(&dir.path().join(OUTBOX_FILE_NAME));
    let failing = backend.failing.clone();
    let outbox =
        RedbOutbox::open_with_backend(backend, Some(dir.path()), &fast_settings()).unwrap();
    // The database's file now refuses writes, the journal's does not: the enqueue is answered
    // from the journal, and the database's commit, a few milliseconds later, fails.
    failing.store(true, Ordering::SeqCst);
    let kept = queued(
        outbox
            .enqueue(&route("gh"), vec![message("answered")], None)
            .await,
    );
    wait_until(|| !outbox.is_writable()).await;
    assert!(!outbox.is_writable());
    failing.store(false, Ordering::SeqCst);
    let refused = outbox
        .enqueue(&route("gh"), vec![message("refused")], None)
        .await;
    assert!(
        matches!(refused, Err(OutboxError::Unavailable(_))),
        "the journal must stay as it is until a restart: {refused:?}"
    );
    drop(outbox);

    let restarted = open(&dir);
    assert_eq!(restarted.pending_count(), 1);
    let stored = restarted.load(kept[0]).await.unwrap().unwrap();
    assert_eq!(stored.message, message("answered"));
}

#[actix_web::test]
async fn a_disk_that_refuses_writes_makes_enqueue_unavailable_and_queues_nothing() {
    let backend = FailingBackend::new();
    let failing = backend.failing.clone();
    let outbox = RedbOutbox::open_with_backend(backend, None, &fast_settings()).unwrap();
    queued(
        outbox
            .enqueue(&route("gh"), vec![message("ok")], None)
            .await,
    );
    failing.store(true, Ordering::SeqCst);
    let error = outbox
        .enqueue(&route("gh"), vec![message("lost")], Some(DedupKey::delivery("k".to_owned())))
        .await
        .unwrap_err();
    assert!(matches!(error, OutboxError::Unavailable(_)), "{error}");
    assert!(error.retry_after().is_some());
    assert_eq!(outbox.pending_count(), 1);
    assert!(!outbox.is_writable());
    failing.store(false, Ordering::SeqCst);
    let after = outbox
        .enqueue(&route("gh"), vec![message("again")], None)
        .await;
    assert!(
        matches!(after, Err(OutboxError::Unavailable(_))),
        "{after:?}"
    );
    assert!(
        !outbox.is_writable(),
        "redb wants a reopen after an I/O error"
    );
}

#[actix_web::test]
async fn dead_letters_can_be_listed_retried_and_purged() {
    let dir = TempDir::new().unwrap();
    let outbox = open(&dir);
    let messages = (1..=4).map(|n| message(&format!("m{n}"))).collect();
    queued(outbox.enqueue(&route("gh"), messages, None).await);
    kill(&outbox, &[1, 2, 3]).await;
    assert_eq!(outbox.pending_count(), 1);

    let listed = outbox.dead_letters(None, 10).await.unwrap();
    assert_eq!(listed.iter().map(|d| d.id).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(listed[1].reason, "reason 2");
    assert_eq!(listed[1].message, message("m2"));
    assert_eq!(listed[1].route, route("gh"));
    assert_eq!(listed[1].attempts, 1);
    let page = outbox.dead_letters(Some(1), 1).await.unwrap();
    assert_eq!(page.iter().map(|d| d.id).collect::<Vec<_>>(), [2]);
    let json = serde_json::to_value(&listed[0]).unwrap();
    assert!(json["dead_at"].as_str().unwrap().ends_with('Z'), "{json}");

    outbox.retry_dead_letter(2).await.unwrap();
    assert_eq!(outbox.pending_count(), 2);
    assert_eq!(outbox.load(2).await.unwrap().unwrap().attempts, 0);
    assert!(matches!(
        outbox.retry_dead_letter(2).await,
        Err(OutboxError::NoSuchDeadLetter(2))
    ));

    outbox.purge_dead_letter(3).await.unwrap();
    assert!(matches!(
        outbox.purge_dead_letter(3).await,
        Err(OutboxError::NoSuchDeadLetter(3))
    ));
    assert_eq!(outbox.dead_letter_count().await.unwrap(), 1);
    drop(outbox);
    let reopened = open(&dir);
    assert_eq!(reopened.pending_count(), 2);
    assert_eq!(reopened.dead_letter_count().await.unwrap(), 1);
}

#[actix_web::test]
async fn retrying_all_dead_letters_queues_what_fits_oldest_first() {
    let dir = TempDir::new().unwrap();
    let settings = DeliverySettings {
        max_queue: 3,
        ..fast_settings()
    };
    let outbox = RedbOutbox::open(dir.path(), &settings).unwrap();
    let messages = (1..=3).map(|n| message(&n.to_string())).collect();
    queued(outbox.enqueue(&route("gh"), messages, None).await);
    kill(&outbox, &[1, 2, 3]).await;
    queued(outbox.enqueue(&route("gh"), vec![message("4")], None).await);

    let retried = outbox.retry_all_dead_letters().await.unwrap();
    assert_eq!(retried.ids, [1, 2]);
    assert_eq!(retried.left, 1);
    assert!(matches!(
        outbox.retry_all_dead_letters().await,
        Err(OutboxError::Full { .. })
    ));
    assert!(matches!(
        outbox.retry_dead_letter(3).await,
        Err(OutboxError::Full { .. })
    ));
}

#[actix_web::test]
async fn the_oldest_pending_age_follows_the_clock() {
    let dir = TempDir::new().unwrap();
    let clock = ManualClock::new();
    let outbox = RedbOutbox::open_with_clock(
        dir.path(),
        &fast_settings(),
        clock.clone(),
        committer::APPLY_DELAY,
    ).unwrap();
    assert_eq!(outbox.oldest_pending_age(), None);
    queued(outbox.enqueue(&route("gh"), vec![message("a")], None).await);
    clock.advance(Duration::from_secs(5));
    queued(outbox.enqueue(&route("gh"), vec![message("b")], None).await);
    // New notifications join the schedule when the committer's transaction is committed,
    // milliseconds (of real time) after they were stored.
    wait_until(|| outbox.core().schedule().len() == 2).await;
    assert_eq!(outbox.oldest_pending_age(), Some(Duration::from_secs(5)));
}
