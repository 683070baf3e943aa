//! The store's behaviour, on both backends: every test of `on_both_backends!` runs on a redb file
//! and on a PostgreSQL database (a throwaway server per test binary, a database per test); the
//! rest is what only the redb file has (its directory) or only a shared database does (several
//! handles on it).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::*;
use crate::database::on_both_backends;
use crate::database::test_server::TestPostgres;
use crate::pushjet_server::events::StoredMessage;

const DEVICE: &str = "01234567-89ab-cdef-0123-456789abcdef";
const OTHER_DEVICE: &str = "fedcba98-7654-3210-fedc-ba9876543210";

/// Which backend a test runs on.
#[derive(Debug, Clone, Copy)]
enum Backend {
    Redb,
    Postgres,
}

/// Where a test's store keeps its data: a directory, and the database for PostgreSQL.
struct Place {
    dir: TempDir,
    database: Option<DatabaseUrl>,
}

impl Place {
    async fn new(backend: Backend) -> Self {
        let database = match backend {
            Backend::Redb => None,
            Backend::Postgres => {
                Some(DatabaseUrl::parse(&TestPostgres::shared().create_database().await).unwrap())
            }
        };
        Self {
            dir: TempDir::new().unwrap(),
            database,
        }
    }

    /// A store on this place (another handle on the same data for PostgreSQL, as another replica
    /// has; redb allows only one at a time).
    async fn open(&self, options: StoreOptions) -> Store {
        Store::connect(self.dir.path(), self.database.as_ref(), options)
            .await
            .unwrap()
    }
}

async fn open(backend: Backend) -> (Place, Store) {
    open_with(backend, StoreOptions::default()).await
}

async fn open_with(backend: Backend, options: StoreOptions) -> (Place, Store) {
    let place = Place::new(backend).await;
    let store = place.open(options).await;
    (place, store)
}

fn device(raw: &str) -> DeviceUuid {
    DeviceUuid::parse(raw).unwrap()
}

async fn service(store: &Store) -> (SecretKey, PublicKey) {
    let view = store
        .create_service(&ServiceName::new("Test").unwrap(), &Icon::default())
        .await
        .unwrap();
    (view.secret.unwrap(), view.public)
}

fn message(text: &str) -> NewMessage {
    NewMessage {
        text: MessageText::new(text).unwrap(),
        title: Title::default(),
        link: Link::default(),
        level: Importance::DEFAULT,
    }
}

async fn texts(store: &Store, raw: &str) -> Vec<String> {
    store
        .fetch_messages(&device(raw))
        .await
        .unwrap()
        .into_iter()
        .map(|view| view.message)
        .collect()
}

on_both_backends!(
    create_service_gives_the_owner_view_and_lookups_give_the_public_view,
    update_service_changes_only_what_is_given,
    sending_without_subscribers_stores_nothing,
    messages_everyone_has_read_are_deleted_by_the_next_send,
    deleting_a_service_deletes_its_stored_messages,
    the_last_unsubscribe_deletes_the_services_messages,
    subscriptions_come_in_the_order_they_were_made,
    a_subscription_starts_after_the_newest_message,
    message_ids_keep_increasing_across_a_restart,
    concurrent_sends_are_all_stored,
    committed_messages_and_subscription_changes_are_announced_in_order,
    fetch_unread_gives_ids_and_the_newest_id_of_the_store,
    mark_read_up_to_marks_only_up_to_the_id_and_never_back,
    mark_all_read_leaves_nothing_unread,
    only_the_newest_max_unread_messages_are_kept,
    messages_older_than_the_max_age_are_not_returned,
    a_fetch_stops_at_its_byte_limit_and_leaves_the_rest_unread,
    the_demo_keys_are_remembered_and_the_first_kept_wins,
    the_streams_cache_is_handed_over_again_after_a_restart,
);

async fn create_service_gives_the_owner_view_and_lookups_give_the_public_view(backend: Backend) {
    let (_place, store) = open(backend).await;
    let created = store
        .create_service(
            &ServiceName::new(" Demo ").unwrap(),
            &Icon::new("http://i/x.png").unwrap(),
        )
        .await
        .unwrap();
    let secret = created.secret.clone().unwrap();
    assert_eq!(created.public, secret.public_key());
    assert_eq!(created.name, "Demo");
    let by_secret = store.service_by_secret(&secret).await.unwrap().unwrap();
    assert_eq!(by_secret.secret, None);
    assert_eq!(by_secret.public, created.public);
    assert_eq!(by_secret.icon, "http://i/x.png");
    let by_public = store
        .service_by_public(&created.public)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_public, by_secret);
    let stranger = SecretKey::generate().unwrap();
    assert_eq!(store.service_by_secret(&stranger).await.unwrap(), None);
    assert_eq!(
        store
            .service_by_public(&stranger.public_key())
            .await
            .unwrap(),
        None
    );
}

async fn update_service_changes_only_what_is_given(backend: Backend) {
    let (_place, store) = open(backend).await;
    let (secret, _) = service(&store).await;
    let renamed = ServiceName::new("Renamed").unwrap();
    store
        .update_service(&secret, Some(&renamed), None)
        .await
        .unwrap();
    let view = store.service_by_secret(&secret).await.unwrap().unwrap();
    assert_eq!((view.name.as_str(), view.icon.as_str()), ("Renamed", ""));
    let icon = Icon::new("http://i/y.png").unwrap();
    store
        .update_service(&secret, None, Some(&icon))
        .await
        .unwrap();
    let view = store.service_by_secret(&secret).await.unwrap().unwrap();
    assert_eq!(
        (view.name.as_str(), view.icon.as_str()),
        ("Renamed", "http://i/y.png")
    );
    let stranger = SecretKey::generate().unwrap();
    assert!(matches!(
        store.update_service(&stranger, Some(&renamed), None).await,
        Err(StoreError::ServiceNotFound)
    ));
}

async fn sending_without_subscribers_stores_nothing(backend: Backend) {
    let (_place, store) = open(backend).await;
    let (secret, _) = service(&store).await;
    let outcome = store.send_message(&secret, &message("lost")).await.unwrap();
    assert_eq!(outcome, SendOutcome::NoSubscribers);
    assert_eq!(store.stored_messages().await.unwrap(), (0, 0));
}

async fn messages_everyone_has_read_are_deleted_by_the_next_send(backend: Backend) {
    let (_place, store) = open(backend).await;
    let (secret, public) = service(&store).await;
    store.subscribe(&device(DEVICE), &public).await.unwrap();
    store
        .subscribe(&device(OTHER_DEVICE), &public)
        .await
        .unwrap();
    store.send_message(&secret, &message("one")).await.unwrap();
    store.fetch_messages(&device(DEVICE)).await.unwrap();
    assert_eq!(store.stored_messages().await.unwrap(), (1, 1));
    store.fetch_messages(&device(OTHER_DEVICE)).await.unwrap();
    store.send_message(&secret, &message("two")).await.unwrap();
    assert_eq!(store.stored_messages().await.unwrap(), (1, 1));
    assert_eq!(texts(&store, DEVICE).await, ["two"]);
}

async fn deleting_a_service_deletes_its_stored_messages(backend: Backend) {
    let (_place, store) = open(backend).await;
    let (secret, public) = service(&store).await;
    store.subscribe(&device(DEVICE), &public).await.unwrap();
    store
        .send_message(&secret, &message("unread"))
        .await
        .unwrap();
    store.delete_service(&secret).await.unwrap();
    assert_eq!(store.stored_messages().await.unwrap(), (0, 0));
    assert!(
        store
            .subscriptions(&device(DEVICE))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        store.delete_service(&secret).await,
        Err(StoreError::ServiceNotFound)
    ));
}

async fn the_last_unsubscribe_deletes_the_services_messages(backend: Backend) {
    let (_place, store) = open(backend).await;
    let (secret, public) = service(&store).await;
    store.subscribe(&device(DEVICE), &public).await.unwrap();
    store
        .send_message(&secret, &message("unread"))
        .await
        .unwrap();
    store.unsubscribe(&device(DEVICE), &public).await.unwrap();
    assert_eq!(store.stored_messages().await.unwrap(), (0, 0));
    assert_eq!(store.subscriber_count(&public).await.unwrap(), 0);
    assert!(matches!(
        store.unsubscribe(&device(DEVICE), &public).await,
        Err(StoreError::NotSubscribed)
    ));
    let stranger = SecretKey::generate().unwrap().public_key();
    assert!(matches!(
        store.unsubscribe(&device(DEVICE), &stranger).await,
        Err(StoreError::ServiceNotFound)
    ));
}

async fn subscriptions_come_in_the_order_they_were_made(backend: Backend) {
    let (_place, store) = open(backend).await;
    let mut publics = Vec::new();
    for _ in 0..3 {
        publics.push(service(&store).await.1);
    }
    for public in publics.iter().rev() {
        store.subscribe(&device(DEVICE), public).await.unwrap();
    }
    assert!(matches!(
        store.subscribe(&device(DEVICE), &publics[0]).await,
        Err(StoreError::AlreadySubscribed)
    ));
    let stranger = SecretKey::generate().unwrap().public_key();
    assert!(matches!(
        store.subscribe(&device(DEVICE), &stranger).await,
        Err(StoreError::ServiceNotFound)
    ));
    let listed: Vec<PublicKey> = store
        .subscriptions(&device(DEVICE))
        .await
        .unwrap()
        .into_iter()
        .map(|subscription| subscription.service.public)
        .collect();
    let expected: Vec<PublicKey> = publics.into_iter().rev().collect();
    assert_eq!(listed, expected);
    assert_eq!(store.subscriber_count(&expected[0]).await.unwrap(), 1);
}

async fn a_subscription_starts_after_the_newest_message(backend: Backend) {
    let (_place, store) = open(backend).await;
    let (secret, public) = service(&store).await;
    store.subscribe(&device(DEVICE), &public).await.unwrap();
    store
        .send_message(&secret, &message("before"))
        .await
        .unwrap();
    store
        .subscribe(&device(OTHER_DEVICE), &public)
        .await
        .unwrap();
    store
        .send_message(&secret, &message("after"))
        .await
        .unwrap();
    assert_eq!(texts(&store, OTHER_DEVICE).await, ["after"]);
    assert_eq!(texts(&store, DEVICE).await, ["before", "after"]);
}

async fn message_ids_keep_increasing_across_a_restart(backend: Backend) {
    let place = Place::new(backend).await;
    let store = place.open(StoreOptions::default()).await;
    let (secret, public) = service(&store).await;
    store.subscribe(&device(DEVICE), &public).await.unwrap();
    store.send_message(&secret, &message("old")).await.unwrap();
    drop(store);
    let store = place.open(StoreOptions::default()).await;
    store
        .subscribe(&device(OTHER_DEVICE), &public)
        .await
        .unwrap();
    store.send_message(&secret, &message("new")).await.unwrap();
    assert_eq!(texts(&store, OTHER_DEVICE).await, ["new"]);
    let ids: Vec<u64> = store
        .fetch_unread(&device(DEVICE))
        .await
        .unwrap()
        .messages
        .iter()
        .map(|(id, _)| *id)
        .collect();
    assert_eq!(ids, [1, 2]);
}

async fn concurrent_sends_are_all_stored(backend: Backend) {
    let (_place, store) = open(backend).await;
    let (secret, public) = service(&store).await;
    store.subscribe(&device(DEVICE), &public).await.unwrap();
    let workers: Vec<_> = (0..4)
        .map(|worker| {
            let (store, secret) = (store.clone(), secret.clone());
            tokio::spawn(async move {
                for round in 0..5 {
                    let text = format!("{worker}-{round}");
                    store.send_message(&secret, &message(&text)).await.unwrap();
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    let unread = store.fetch_unread(&device(DEVICE)).await.unwrap();
    let ids: Vec<u64> = unread.messages.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, (1..=20).collect::<Vec<u64>>());
}

/// Records what the store announces.
#[derive(Debug, Default)]
struct Recorder(Mutex<Vec<String>>);

impl Recorder {
    /// What was announced, once `count` announcements arrived (they come through the database
    /// on PostgreSQL, a moment after the commit).
    async fn wait_for(&self, count: usize) -> Vec<String> {
        let started = Instant::now();
        loop {
            let seen = self.0.lock().unwrap().clone();
            if seen.len() >= count || started.elapsed() > Duration::from_secs(20) {
                return seen;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl StoreEvents for Recorder {
    fn message_stored(&self, message: StoredMessage) {
        let devices: Vec<&str> = message.devices.iter().map(DeviceUuid::as_str).collect();
        self.0.lock().unwrap().push(format!(
            "message {} {} for {}",
            message.id,
            message.message.message,
            devices.join(",")
        ));
    }

    fn subscription_changed(&self, subscription: SubscriptionView) {
        self.0
            .lock()
            .unwrap()
            .push(format!("subscription {}", subscription.uuid));
    }
}

fn announcing_to(recorder: &Arc<Recorder>) -> StoreOptions {
    StoreOptions {
        events: Some(recorder.clone()),
        ..StoreOptions::default()
    }
}

async fn the_streams_cache_is_handed_over_again_after_a_restart(backend: Backend) {
    let place = Place::new(backend).await;
    let before = Arc::new(Recorder::default());
    let store = place.open(announcing_to(&before)).await;
    let (secret, public) = service(&store).await;
    store.subscribe(&device(DEVICE), &public).await.unwrap();
    for text in ["one", "two", "three"] {
        store.send_message(&secret, &message(text)).await.unwrap();
    }
    assert_eq!(before.wait_for(4).await.len(), 4);
    assert_eq!(
        texts(&store, DEVICE).await.len(),
        3,
        "read: gone from the mailbox"
    );
    drop(store);

    let after = Arc::new(Recorder::default());
    let _store = place.open(announcing_to(&after)).await;
    assert_eq!(
        *after.0.lock().unwrap(),
        [
            format!("message 1 one for {DEVICE}"),
            format!("message 2 two for {DEVICE}"),
            format!("message 3 three for {DEVICE}"),
        ],
        "the reopened store hands its listener the cached messages before anything else"
    );
}

#[actix_web::test]
async fn with_no_stream_cache_the_redb_file_keeps_none() {
    let place = Place::new(Backend::Redb).await;
    let options = |recorder: &Arc<Recorder>| StoreOptions {
        stream_cache: Duration::ZERO,
        ..announcing_to(recorder)
    };
    let store = place.open(options(&Arc::new(Recorder::default()))).await;
    let (secret, public) = service(&store).await;
    store.subscribe(&device(DEVICE), &public).await.unwrap();
    store.send_message(&secret, &message("one")).await.unwrap();
    drop(store);
    let after = Arc::new(Recorder::default());
    let _store = place.open(options(&after)).await;
    assert!(after.0.lock().unwrap().is_empty());
}

async fn committed_messages_and_subscription_changes_are_announced_in_order(backend: Backend) {
    let recorder = Arc::new(Recorder::default());
    let (_place, store) = open_with(backend, announcing_to(&recorder)).await;
    let (secret, public) = service(&store).await;
    store
        .send_message(&secret, &message("nobody"))
        .await
        .unwrap();
    store.subscribe(&device(DEVICE), &public).await.unwrap();
    store
        .subscribe(&device(OTHER_DEVICE), &public)
        .await
        .unwrap();
    store
        .send_message(&secret, &message("hello"))
        .await
        .unwrap();
    store
        .unsubscribe(&device(OTHER_DEVICE), &public)
        .await
        .unwrap();
    store
        .send_message(&secret, &message("again"))
        .await
        .unwrap();
    store.delete_service(&secret).await.unwrap();
    let expected = [
        format!("subscription {DEVICE}"),
        format!("subscription {OTHER_DEVICE}"),
        format!("message 1 hello for {DEVICE},{OTHER_DEVICE}"),
        format!("message 2 again for {DEVICE}"),
        format!("subscription {DEVICE}"),
    ];
    assert_eq!(recorder.wait_for(expected.len()).await, expected);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        recorder.0.lock().unwrap().len(),
        expected.len(),
        "each once"
    );
}

async fn fetch_unread_gives_ids_and_the_newest_id_of_the_store(backend: Backend) {
    let (_place, store) = open(backend).await;
    let (secret, public) = service(&store).await;
    store.subscribe(&device(DEVICE), &public).await.unwrap();
    store
        .subscribe(&device(OTHER_DEVICE), &public)
        .await
        .unwrap();
    store.send_message(&secret, &message("one")).await.unwrap();
    assert_eq!(
        store
            .fetch_unread(&device(DEVICE))
            .await
            .unwrap()
            .messages
            .len(),
        1
    );
    store.send_message(&secret, &message("two")).await.unwrap();
    let unread = store.fetch_unread(&device(DEVICE)).await.unwrap();
    let ids: Vec<u64> = unread.messages.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, [2]);
    assert_eq!(unread.messages[0].1.message, "two");
    assert_eq!(unread.watermark, 2);
    let nobody = store
        .fetch_unread(&device("00000000-0000-0000-0000-000000000000"))
        .await
        .unwrap();
    assert!(nobody.messages.is_empty());
    assert_eq!(nobody.watermark, 2);
}

async fn mark_read_up_to_marks_only_up_to_the_id_and_never_back(backend: Backend) {
    let (_place, store) = open(backend).await;
    let (secret, public) = service(&store).await;
    store.subscribe(&device(DEVICE), &public).await.unwrap();
    for text in ["one", "two", "three"] {
        store.send_message(&secret, &message(text)).await.unwrap();
    }
    store.mark_read_up_to(&[(device(DEVICE), 2)]).await.unwrap();
    store.mark_read_up_to(&[(device(DEVICE), 1)]).await.unwrap();
    assert_eq!(texts(&store, DEVICE).await, ["three"]);
    assert_eq!(
        store.stored_messages().await.unwrap(),
        (0, 0),
        "read by everyone, so deleted"
    );
}

async fn mark_all_read_leaves_nothing_unread(backend: Backend) {
    let (_place, store) = open(backend).await;
    let (secret, public) = service(&store).await;
    store.subscribe(&device(DEVICE), &public).await.unwrap();
    store
        .subscribe(&device(OTHER_DEVICE), &public)
        .await
        .unwrap();
    for text in ["one", "two"] {
        store.send_message(&secret, &message(text)).await.unwrap();
    }
    store.mark_all_read(&device(DEVICE)).await.unwrap();
    assert!(texts(&store, DEVICE).await.is_empty());
    assert_eq!(
        store.stored_messages().await.unwrap(),
        (2, 2),
        "unread by the other"
    );
    store.mark_all_read(&device(OTHER_DEVICE)).await.unwrap();
    assert_eq!(store.stored_messages().await.unwrap(), (0, 0));
    store
        .send_message(&secret, &message("three"))
        .await
        .unwrap();
    assert_eq!(texts(&store, OTHER_DEVICE).await, ["three"]);
}

fn limited(limits: impl FnOnce(&mut StoreLimits)) -> StoreOptions {
    let mut options = StoreOptions::default();
    limits(&mut options.limits);
    options
}

async fn only_the_newest_max_unread_messages_are_kept(backend: Backend) {
    let (_place, store) = open_with(backend, limited(|limits| limits.max_unread = 2)).await;
    let (secret, public) = service(&store).await;
    store.subscribe(&device(DEVICE), &public).await.unwrap();
    for text in ["one", "two", "three"] {
        store.send_message(&secret, &message(text)).await.unwrap();
    }
    assert_eq!(store.stored_messages().await.unwrap(), (2, 2));
    assert_eq!(texts(&store, DEVICE).await, ["two", "three"]);
}

async fn messages_older_than_the_max_age_are_not_returned(backend: Backend) {
    let (_place, store) = open_with(
        backend,
        limited(|limits| limits.message_max_age = Duration::ZERO),
    )
    .await;
    let (secret, public) = service(&store).await;
    store.subscribe(&device(DEVICE), &public).await.unwrap();
    store
        .send_message(&secret, &message("stale"))
        .await
        .unwrap();
    // The age is counted in whole seconds: wait until the message is older than now.
    let sent = now();
    while now() <= sent {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(texts(&store, DEVICE).await.is_empty());
    assert_eq!(
        store.stored_messages().await.unwrap(),
        (0, 0),
        "marked read, deleted"
    );
}

async fn a_fetch_stops_at_its_byte_limit_and_leaves_the_rest_unread(backend: Backend) {
    let (_place, store) = open_with(backend, limited(|limits| limits.max_fetch_bytes = 10)).await;
    let (secret, public) = service(&store).await;
    store.subscribe(&device(DEVICE), &public).await.unwrap();
    for text in ["0123456789abc", "four", "five!", "six"] {
        store.send_message(&secret, &message(text)).await.unwrap();
    }
    assert_eq!(
        texts(&store, DEVICE).await,
        ["0123456789abc"],
        "at least one"
    );
    assert_eq!(texts(&store, DEVICE).await, ["four", "five!"]);
    assert_eq!(texts(&store, DEVICE).await, ["six"]);
    assert!(texts(&store, DEVICE).await.is_empty());
}

async fn the_demo_keys_are_remembered_and_the_first_kept_wins(backend: Backend) {
    let (_place, store) = open(backend).await;
    assert_eq!(store.demo().await.unwrap(), None);
    let keys = |raw: &str| DemoKeys {
        secret: SecretKey::generate().unwrap(),
        device: device(raw),
    };
    let first = keys(DEVICE);
    assert_eq!(store.keep_demo(None, first.clone()).await.unwrap(), first);
    assert_eq!(store.demo().await.unwrap(), Some(first.clone()));
    let replacement = keys(OTHER_DEVICE);
    let kept = store
        .keep_demo(Some(&first.secret), replacement.clone())
        .await
        .unwrap();
    assert_eq!(kept, replacement);
    assert_eq!(store.demo().await.unwrap(), Some(replacement));
}

#[actix_web::test]
async fn open_creates_missing_directories_and_the_database_file() {
    let dir = TempDir::new().unwrap();
    let nested = dir.path().join("a").join("b");
    Store::open(&nested).unwrap();
    assert!(nested.join(DATABASE_FILE_NAME).is_file());
}

#[cfg(unix)]
#[actix_web::test]
async fn a_created_data_directory_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("data");
    Store::open(&data).unwrap();
    let mode = std::fs::metadata(&data).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
}

#[actix_web::test]
async fn a_second_open_of_the_same_directory_fails_cleanly() {
    let (place, _store) = open(Backend::Redb).await;
    assert!(matches!(
        Store::open(place.dir.path()),
        Err(StoreError::Open { .. })
    ));
}

#[actix_web::test]
async fn on_a_shared_database_two_replicas_see_one_store_and_both_hear_every_change() {
    let place = Place::new(Backend::Postgres).await;
    let (heard_a, heard_b) = (Arc::new(Recorder::default()), Arc::new(Recorder::default()));
    let a = place.open(announcing_to(&heard_a)).await;
    let b = place.open(announcing_to(&heard_b)).await;
    let (secret, public) = service(&a).await;
    b.subscribe(&device(DEVICE), &public).await.unwrap();
    b.send_message(&secret, &message("via b")).await.unwrap();
    a.send_message(&secret, &message("via a")).await.unwrap();
    let expected = [
        format!("subscription {DEVICE}"),
        format!("message 1 via b for {DEVICE}"),
        format!("message 2 via a for {DEVICE}"),
    ];
    assert_eq!(heard_a.wait_for(3).await, expected);
    assert_eq!(heard_b.wait_for(3).await, expected);
    assert_eq!(texts(&a, DEVICE).await, ["via b", "via a"]);
    assert!(texts(&b, DEVICE).await.is_empty(), "read once, on either");

    let late = Arc::new(Recorder::default());
    let _c = place.open(announcing_to(&late)).await;
    assert_eq!(
        *late.0.lock().unwrap(),
        expected[1..],
        "a replica that starts is filled with the recent messages"
    );
}

#[actix_web::test]
async fn concurrent_sends_on_two_replicas_get_ids_in_commit_order() {
    let place = Place::new(Backend::Postgres).await;
    let heard = Arc::new(Recorder::default());
    let a = place.open(announcing_to(&heard)).await;
    let b = place.open(StoreOptions::default()).await;
    let (secret, public) = service(&a).await;
    a.subscribe(&device(DEVICE), &public).await.unwrap();
    let sends = (0..20).map(|n| {
        let store = if n % 2 == 0 { a.clone() } else { b.clone() };
        let secret = secret.clone();
        tokio::spawn(async move { store.send_message(&secret, &message(&n.to_string())).await })
    });
    for sent in futures_util::future::join_all(sends).await {
        sent.unwrap().unwrap();
    }
    let seen = heard.wait_for(21).await;
    let ids: Vec<u64> = seen
        .iter()
        .filter_map(|line| line.strip_prefix("message "))
        .filter_map(|rest| rest.split(' ').next()?.parse().ok())
        .collect();
    assert_eq!(
        ids,
        (1..=20).collect::<Vec<u64>>(),
        "each once, in id order"
    );
}
