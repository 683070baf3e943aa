//! `history.redb`'s own forms: a batch's bodies in a chunk, freed with its last record; requests
//! stored whole as JSON by the first version.

use super::*;
use crate::history::record::{KeptRequest, Verdict, Via};

fn record(id: u64, request: Option<KeptRequest>) -> Record {
    Record {
        id,
        at: 1,
        route: "ci".to_owned(),
        via: Via::Hooks,
        source: "github".to_owned(),
        event: "push".to_owned(),
        action: None,
        delivery_id: None,
        request_id: "req".to_owned(),
        status: 200,
        verdict: Verdict::Filtered,
        reason: None,
        notifications: Vec::new(),
        request,
        again_of: None,
    }
}

fn kept(body: &str) -> KeptRequest {
    KeptRequest {
        headers: vec![("x-github-event".to_owned(), "push".to_owned())],
        query: "title=a".to_owned(),
        body: body.to_owned(),
        body_bytes: body.len(),
        truncated: false,
        read_as: None,
    }
}

#[test]
fn a_chunk_of_bodies_goes_with_the_last_of_its_records() {
    let dir = tempfile::TempDir::new().unwrap();
    let history = RedbHistory::open(dir.path()).unwrap();
    let ids = [id_floor(10), id_floor(20), id_floor(30)];
    let batch = ids
        .iter()
        .map(|&id| Write::Record(Box::new(record(id, Some(kept(&format!("{{\"n\":{id}}}")))))))
        .collect();
    history.inner.write(batch, false).unwrap();
    let chunks = || {
        let txn = history.inner.db.begin_read().unwrap();
        txn.open_table(BODIES).unwrap().iter().unwrap().count()
    };
    assert_eq!(chunks(), 1, "one batch, one chunk");
    let pruned = history.inner.prune(15, u64::MAX).unwrap();
    assert_eq!(pruned.records, 1);
    assert_eq!(chunks(), 1, "two of its records are kept");
    let story = history.inner.story(ids[2]).unwrap().unwrap();
    assert_eq!(
        story.record.request,
        Some(kept(&format!("{{\"n\":{}}}", ids[2])))
    );
    let pruned = history.inner.prune(100, u64::MAX).unwrap();
    assert_eq!(pruned.records, 2);
    assert_eq!(chunks(), 0, "its last record is gone");
    assert_eq!(pruned.bytes, 0, "every byte counted is freed");
    // Opened again, the next chunk takes a key of its own.
    drop(history);
    let history = RedbHistory::open(dir.path()).unwrap();
    assert_eq!(history.inner.bytes.load(Ordering::Relaxed), 0);
}

#[test]
fn a_request_stored_whole_as_json_by_the_first_version_still_reads() {
    let dir = tempfile::TempDir::new().unwrap();
    let (old, new) = (kept(r#"{"ref":"old"}"#), kept(r#"{"ref":"new"}"#));
    {
        let history = RedbHistory::open(dir.path()).unwrap();
        let written = vec![
            Write::Record(Box::new(record(1, None))),
            Write::Record(Box::new(record(2, Some(new.clone())))),
        ];
        history.inner.write(written, false).unwrap();
        // Record 1's request as the first version stored it: the whole request as JSON.
        let txn = history.inner.db.begin_write().unwrap();
        txn.open_table(REQUESTS)
            .unwrap()
            .insert(1, serde_json::to_vec(&old).unwrap().as_slice())
            .unwrap();
        txn.commit().unwrap();
    }
    let history = RedbHistory::open(dir.path()).unwrap();
    let story = |id| history.inner.story(id).unwrap().unwrap().record.request;
    assert_eq!(story(1), Some(old));
    assert_eq!(story(2), Some(new));
    let txn = history.inner.db.begin_read().unwrap();
    let requests = txn.open_table(REQUESTS).unwrap();
    let stored = requests.get(2).unwrap().unwrap();
    assert_ne!(
        stored.value().first(),
        Some(&b'{'),
        "a new request is packed, not JSON"
    );
}

/// The bytes in use as an open finds them.
fn bytes_at_open(dir: &tempfile::TempDir) -> u64 {
    RedbHistory::open(dir.path())
        .unwrap()
        .inner
        .bytes
        .load(Ordering::Relaxed)
}

#[test]
fn an_open_reads_the_bytes_in_use_as_kept_and_counts_a_file_without_them_once() {
    let dir = tempfile::TempDir::new().unwrap();
    let written = {
        let history = RedbHistory::open(dir.path()).unwrap();
        let batch = (1..=3)
            .map(|n| Write::Record(Box::new(record(id_floor(n * 10), Some(kept("{\"a\":1}"))))))
            .collect();
        history.inner.write(batch, false).unwrap();
        history.inner.prune(15, u64::MAX).unwrap();
        history.inner.bytes.load(Ordering::Relaxed)
    };
    assert!(written > 0);
    assert_eq!(
        bytes_at_open(&dir),
        written,
        "kept with the last transaction"
    );
    // Kept wrong on purpose: an open believes the file rather than reading every record.
    {
        let history = RedbHistory::open(dir.path()).unwrap();
        let txn = history.inner.db.begin_write().unwrap();
        txn.open_table(META).unwrap().insert(BYTES, 12_345).unwrap();
        txn.commit().unwrap();
    }
    assert_eq!(bytes_at_open(&dir), 12_345);
    // A file from before the count was kept is counted, as it always was.
    {
        let history = RedbHistory::open(dir.path()).unwrap();
        let txn = history.inner.db.begin_write().unwrap();
        txn.open_table(META).unwrap().remove(BYTES).unwrap();
        txn.commit().unwrap();
    }
    assert_eq!(bytes_at_open(&dir), written);
}
