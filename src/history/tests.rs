//! The history on both stores: records and deliveries written behind, read back whole, listed
//! with every filter, counted per route and state, pruned by age and by bytes.

use std::time::Duration;

use tempfile::TempDir;

use super::record::{Attempt, Rendered, State, Write};
use super::*;
use crate::config::HistorySettings;
use crate::database::on_both_backends;
use crate::database::test_server::TestPostgres;
use crate::pushjet::{MessageText, NewMessage, Title};

enum Backend {
    Redb,
    Postgres,
}

struct Opened {
    history: History,
    _dir: TempDir,
}

async fn open_with(backend: Backend, settings: HistorySettings) -> Opened {
    let dir = TempDir::new().unwrap();
    let url = match backend {
        Backend::Redb => None,
        Backend::Postgres => {
            Some(DatabaseUrl::parse(&TestPostgres::shared().create_database().await).unwrap())
        }
    };
    let history = History::open(
        &settings,
        dir.path(),
        url.as_ref(),
        HistoryMetrics::default(),
    )
    .await
    .unwrap();
    Opened { history, _dir: dir }
}

async fn open(backend: Backend) -> Opened {
    open_with(backend, HistorySettings::default()).await
}

fn message(title: &str, text: &str) -> NewMessage {
    NewMessage {
        title: Title::new(title),
        ..NewMessage::text(MessageText::new(text).unwrap())
    }
}

/// A record of `route` made `age_ms` ago, with one notification queued as `queued` (if any).
fn record(history: &History, route: &str, title: &str, queued: Option<u64>, age_ms: u64) -> Record {
    let at = now_millis() - age_ms;
    Record {
        id: history.next_id(at),
        at,
        route: route.to_owned(),
        via: Via::Hooks,
        source: "generic".to_owned(),
        event: "message".to_owned(),
        action: None,
        delivery_id: None,
        request_id: "req".to_owned(),
        status: if queued.is_some() { 202 } else { 200 },
        verdict: if queued.is_some() {
            Verdict::Queued
        } else {
            Verdict::Filtered
        },
        reason: None,
        notifications: queued
            .map(|id| Rendered {
                id: Some(id),
                template: "generic/message".to_owned(),
                notification: Some(message(title, "the text")),
                template_error: None,
                delivery: None,
                noise: None,
            })
            .into_iter()
            .collect(),
        request: None,
        again_of: None,
    }
}

fn delivery(id: u64, state: State, status: u16) -> Write {
    Write::Delivery {
        id,
        at: now_millis(),
        state,
        until: None,
        reason: (state == State::Dead).then(|| "refused".to_owned()),
        attempt: Some(Attempt {
            at: now_millis(),
            latency_ms: Some(3),
            status: Some(status),
            error_id: None,
            error: (status != 200).then(|| format!("HTTP {status}")),
        }),
    }
}

/// `length` characters that do not compress (kept bodies are stored compressed).
fn incompressible(length: usize, seed: u64) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..length)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            char::from(ALPHABET[(state % 64) as usize])
        })
        .collect()
}

async fn flushed(history: &History) {
    history.flush(Duration::from_secs(10)).await;
}

fn query(limit: usize) -> Query {
    Query {
        limit,
        ..Query::default()
    }
}

async fn a_record_tells_its_whole_story_even_when_an_attempt_is_written_first(backend: Backend) {
    let Opened { history, _dir } = open(backend).await;
    // The dispatcher may report a send before the webhook's record is written.
    history.queue(delivery(7, State::Retrying, 500));
    let record = record(&history, "ci", "Build failed", Some(7), 0);
    history.record(record.clone());
    history.queue(delivery(7, State::Sent, 200));
    flushed(&history).await;

    let story = history.story(record.id).await.unwrap();
    assert_eq!(story.state, "sent");
    let delivery = story.record.notifications[0].delivery.clone().unwrap();
    assert_eq!(delivery.state, State::Sent);
    let statuses: Vec<_> = delivery.attempts.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [Some(500), Some(200)]);
    assert!(matches!(
        history.story(record.id + 1).await,
        Err(HistoryError::NotFound(_))
    ));
}

async fn lists_filter_page_and_count(backend: Backend) {
    let Opened { history, _dir } = open(backend).await;
    let dead = record(&history, "ci", "Disk almost full", Some(1), 3_000);
    let sent = record(&history, "ci", "Deploy done", Some(2), 2_000);
    let filtered = record(&history, "alerts", "", None, 1_000);
    for record in [&dead, &sent, &filtered] {
        history.record(record.clone());
    }
    history.queue(delivery(1, State::Dead, 400));
    history.queue(delivery(2, State::Sent, 200));
    flushed(&history).await;

    let all = history.list(query(10)).await.unwrap();
    let ids: Vec<u64> = all.records.iter().map(|s| s.id).collect();
    assert_eq!(ids, [filtered.id, sent.id, dead.id], "newest first");
    assert_eq!(all.next_cursor, None);
    let states: Vec<&str> = all.records.iter().map(|s| s.state.as_str()).collect();
    assert_eq!(states, ["filtered", "sent", "dead"]);

    let page = history.list(query(2)).await.unwrap();
    assert_eq!(page.records.len(), 2);
    let cursor = page.next_cursor.unwrap();
    let rest = history
        .list(Query {
            cursor: Some(cursor),
            ..query(2)
        })
        .await
        .unwrap();
    assert_eq!(rest.records[0].id, dead.id);

    let by = |query: Query| {
        let history = history.clone();
        async move {
            history
                .list(query)
                .await
                .unwrap()
                .records
                .into_iter()
                .map(|s| s.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        by(Query {
            state: Some("dead".into()),
            ..query(10)
        })
        .await,
        [dead.id]
    );
    assert_eq!(
        by(Query {
            route: Some("alerts".into()),
            ..query(10)
        })
        .await,
        [filtered.id]
    );
    assert_eq!(
        by(Query {
            q: Some("DISK".into()),
            ..query(10)
        })
        .await,
        [dead.id]
    );
    assert_eq!(
        by(Query {
            since: Some(sent.at),
            until: Some(filtered.at),
            ..query(10)
        })
        .await,
        [sent.id]
    );

    let mut counts = history.counts(0).await.unwrap();
    counts.sort_by(|a, b| (&a.route, &a.state).cmp(&(&b.route, &b.state)));
    let counts: Vec<(String, String, u64)> = counts
        .into_iter()
        .map(|c| (c.route, c.state, c.count))
        .collect();
    assert_eq!(
        counts,
        [
            ("alerts".to_owned(), "filtered".to_owned(), 1),
            ("ci".to_owned(), "dead".to_owned(), 1),
            ("ci".to_owned(), "sent".to_owned(), 1),
        ]
    );
}

async fn records_older_than_the_setting_are_pruned(backend: Backend) {
    let settings = HistorySettings {
        keep_for: Some(Duration::from_secs(2)),
        ..HistorySettings::default()
    };
    let Opened { history, _dir } = open_with(backend, settings).await;
    let old = record(&history, "ci", "old", Some(1), 60_000);
    let new = record(&history, "ci", "new", Some(2), 0);
    history.record(old.clone());
    history.record(new.clone());
    flushed(&history).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let ids: Vec<u64> = history
            .list(query(10))
            .await
            .unwrap()
            .records
            .iter()
            .map(|s| s.id)
            .collect();
        if ids == [new.id] {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not pruned: {ids:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(matches!(
        history.story(old.id).await,
        Err(HistoryError::NotFound(_))
    ));
}

async fn the_byte_cap_holds_under_a_flood(backend: Backend) {
    let settings = HistorySettings {
        max_bytes: 1024 * 1024,
        ..HistorySettings::default()
    };
    let Opened { history, _dir } = open_with(backend, settings).await;
    let mut newest = 0;
    for n in 0..400 {
        let mut record = record(&history, "flood", &format!("n{n}"), Some(n), 0);
        record.request = Some(redact::kept_request(
            &actix_web::http::header::HeaderMap::new(),
            "",
            incompressible(8 * 1024, n).as_bytes(),
            None,
        ));
        newest = record.id;
        history.record(record);
    }
    flushed(&history).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let pruned = history
            .store()
            .unwrap()
            .prune(0, 1024 * 1024)
            .await
            .unwrap();
        if pruned.bytes <= 1024 * 1024 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} bytes",
            pruned.bytes
        );
    }
    let kept = history.list(query(500)).await.unwrap().records;
    assert!(kept.len() < 400 && !kept.is_empty(), "{} kept", kept.len());
    assert_eq!(kept[0].id, newest, "the newest stay");
}

async fn a_new_record_and_a_state_change_are_announced(backend: Backend) {
    let Opened { history, _dir } = open(backend).await;
    let mut changes = history.subscribe().unwrap();
    let record = record(&history, "ci", "Live", Some(9), 0);
    history.record(record.clone());
    history.queue(delivery(9, State::Sent, 200));
    let mut seen = Vec::new();
    // The creation and the state change may be written (and so announced) as one.
    while seen.last().is_none_or(|(_, state)| state != "sent") {
        let change = tokio::time::timeout(Duration::from_secs(10), changes.recv())
            .await
            .expect("a change within 10 s")
            .unwrap();
        if change.record.id == record.id {
            seen.push((change.kind, change.record.state));
        }
    }
    assert_eq!(seen[0].0, ChangeKind::Record, "{seen:?}");
    assert!(
        seen[1..].iter().all(|(kind, _)| *kind == ChangeKind::State),
        "{seen:?}"
    );
}

async fn a_kept_request_is_stored_compressed_and_reads_back_whole(backend: Backend) {
    let Opened { history, _dir } = open(backend).await;
    // A pull request's payload (28 KB of JSON), cut at the limit after a character's first byte.
    let mut body = std::fs::read("tests/fixtures/github/pull_request.opened.json").unwrap();
    body.extend("é".repeat(redact::MAX_KEPT_BODY).as_bytes());
    let mut headers = actix_web::http::header::HeaderMap::new();
    headers.insert(
        actix_web::http::header::CONTENT_TYPE,
        actix_web::http::header::HeaderValue::from_static("application/json"),
    );
    let kept = redact::kept_request(&headers, "title=x&token=s3cret", &body, Some("github"));
    assert!(kept.truncated);
    let mut record = record(&history, "ci", "A pull request", Some(11), 0);
    record.request = Some(kept.clone());
    history.record(record.clone());
    flushed(&history).await;
    let story = history.story(record.id).await.unwrap();
    let read = story.record.request.expect("the kept request");
    assert_eq!(read.body.as_bytes(), kept.body.as_bytes(), "byte for byte");
    assert_eq!(read, kept, "headers, query, length and cut too");
    let stored = history
        .store()
        .unwrap()
        .prune(0, u64::MAX)
        .await
        .unwrap()
        .bytes;
    assert!(
        stored * 3 < kept.body.len() as u64,
        "{stored} bytes stored for a body of {}",
        kept.body.len()
    );
}

/// A record written before migration 7, its request whole as JSON in `request`, still reads.
#[actix_web::test]
async fn a_request_stored_whole_as_json_before_migration_7_still_reads() {
    let url = DatabaseUrl::parse(&TestPostgres::shared().create_database().await).unwrap();
    let history = History::open(
        &HistorySettings::default(),
        TempDir::new().unwrap().path(),
        Some(&url),
        HistoryMetrics::default(),
    )
    .await
    .unwrap();
    let kept = redact::kept_request(
        &actix_web::http::header::HeaderMap::new(),
        "a=1",
        br#"{"ref":"main"}"#,
        None,
    );
    let record = record(&history, "ci", "Old", None, 0);
    let database = crate::database::connect(&url, 1).await.unwrap();
    let client = database.pool.get().await.unwrap();
    client
        .execute(
            "INSERT INTO history_records (id, at, route, source, event, verdict, search, \
                 record, request, bytes, created_seq, change_seq) \
             VALUES ($1, $2, 'ci', 'generic', 'message', 'filtered', '', $3, $4, 1, 1, 1)",
            &[
                &i64::try_from(record.id).unwrap(),
                &i64::try_from(record.at).unwrap(),
                &serde_json::to_string(&record).unwrap(),
                &serde_json::to_string(&kept).unwrap(),
            ],
        )
        .await
        .unwrap();
    let story = history.story(record.id).await.unwrap();
    assert_eq!(story.record.request, Some(kept));
}

on_both_backends!(
    a_kept_request_is_stored_compressed_and_reads_back_whole,
    a_record_tells_its_whole_story_even_when_an_attempt_is_written_first,
    lists_filter_page_and_count,
    records_older_than_the_setting_are_pruned,
    the_byte_cap_holds_under_a_flood,
    a_new_record_and_a_state_change_are_announced,
);

#[test]
fn ids_grow_with_time_and_never_repeat() {
    let history = History { inner: None };
    assert_eq!(history.next_id(5), 0, "off: no ids");
    assert_eq!(id_floor(1), 1 << ID_SHIFT);
    assert_eq!(id_floor(u64::MAX), u64::MAX);
}

#[actix_web::test]
async fn refusals_are_recorded_at_most_sixty_per_route_and_minute() {
    let Opened { history, _dir } = open(Backend::Redb).await;
    let admitted = (0..100).filter(|_| history.admits_refusal("ci")).count();
    // The minute may turn during the loop: then a few more are admitted, never all.
    assert!((60..100).contains(&admitted), "{admitted} admitted");
    assert!(
        history.admits_refusal("other"),
        "each route has its own allowance"
    );
}

#[test]
fn a_kept_body_weighs_on_the_writers_queue() {
    let history = History::off();
    let mut with_body = record(&history, "ops", "title", Some(1), 0);
    let plain = Write::Record(Box::new(with_body.clone()));
    with_body.request = Some(KeptRequest {
        headers: vec![("content-type".to_owned(), "application/json".to_owned())],
        query: String::new(),
        body: "x".repeat(64 * 1024),
        body_bytes: 64 * 1024,
        truncated: false,
        read_as: None,
    });
    let heavy = Write::Record(Box::new(with_body));
    assert!(plain.weight() < 2_000, "{}", plain.weight());
    assert!(heavy.weight() > 64 * 1024, "{}", heavy.weight());
    assert!(delivery(1, State::Sent, 200).weight() < 1_000);
}
