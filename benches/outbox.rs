//! The durable outbox: `Outbox::enqueue` in a temporary directory, which returns once the
//! notification and its dedup key are on disk in the outbox's journal (one frame, synced). One
//! enqueue alone pays a whole sync; 64 at once share one (group commit), which is what the service
//! does under load. The database takes the journaled changes in a durable commit every 10 ms,
//! which an enqueue waits for only when it arrives while that commit runs.
//!
//! These numbers are mostly the disk's `fdatasync` latency: compare them with the same machine's,
//! not with another machine's.
//!
//! ```sh
//! cargo bench --features internals --bench outbox
//! ```

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use futures_util::future::join_all;
use pushjet_bridge::delivery::{DeliverySettings, Enqueued, Outbox};
use pushjet_bridge::pushjet::{Importance, Link, MessageText, NewMessage, Title};
use pushjet_bridge::routes::RouteName;

/// A notification as the Alertmanager template renders a group of five alerts.
fn notification() -> NewMessage {
    let message = (1..=5)
        .map(|n| {
            format!("critical  api-{n}.example.internal:8080  p99 latency above 1s on api-{n}")
        })
        .collect::<Vec<_>>()
        .join("\n");
    NewMessage {
        message: MessageText::new(message).expect("message"),
        title: Title::new("FIRING 5: HighRequestLatency (api)"),
        link: Some(
            Link::parse("http://prometheus.example.internal:9090/graph?g0.expr=up").expect("link"),
        ),
        importance: Importance::new(5).expect("importance"),
    }
}

/// A dedup key never used before in this process, as the service makes from a delivery id.
fn fresh_key(counter: &AtomicU64) -> Option<String> {
    let n = counter.fetch_add(1, Ordering::Relaxed);
    Some(format!("alertmanager:{n:064x}"))
}

fn enqueue(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temporary directory");
    let settings = DeliverySettings {
        max_queue: u64::MAX,
        ..DeliverySettings::default()
    };
    let outbox = Outbox::open(dir.path(), &settings).expect("outbox");
    let route = RouteName::parse("alerts").expect("route name");
    let keys = AtomicU64::new(0);
    let message = notification();

    let mut group = c.benchmark_group("outbox");
    group.throughput(Throughput::Elements(1));
    group.bench_function("enqueue_commit_1", |b| {
        b.to_async(&runtime).iter_batched(
            || (vec![message.clone()], fresh_key(&keys)),
            |(messages, key)| async {
                let enqueued = outbox.enqueue(&route, messages, key).await;
                assert!(matches!(enqueued, Ok(Enqueued::Queued(_))), "{enqueued:?}");
                black_box(enqueued)
            },
            BatchSize::SmallInput,
        )
    });
    const AT_ONCE: usize = 64;
    group.throughput(Throughput::Elements(AT_ONCE as u64));
    group.bench_function("enqueue_commit_64_concurrent", |b| {
        b.to_async(&runtime).iter_batched(
            || {
                (0..AT_ONCE)
                    .map(|_| (vec![message.clone()], fresh_key(&keys)))
                    .collect::<Vec<_>>()
            },
            |requests| async {
                let enqueued = join_all(
                    requests
                        .into_iter()
                        .map(|(messages, key)| outbox.enqueue(&route, messages, key)),
                )
                .await;
                assert!(
                    enqueued
                        .iter()
                        .all(|result| matches!(result, Ok(Enqueued::Queued(_)))),
                    "every enqueue is queued"
                );
                black_box(enqueued)
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .sample_size(30)
}

criterion_group! {
    name = benches;
    config = config();
    targets = enqueue
}
criterion_main!(benches);
