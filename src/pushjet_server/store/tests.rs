use super::*;
use std::sync::Mutex;

use tempfile::TempDir;

const DEVICE: &str = "01234567-89ab-cdef-0123-456789abcdef";
const OTHER_DEVICE: &str = "fedcba98-7654-3210-fedc-ba9876543210";

fn open() -> (TempDir, Store) {
    let dir = TempDir::new().unwrap();
    let store = Store::open(dir.path()).unwrap();
    (dir, store)
}

fn device(raw: &str) -> DeviceUuid {
    DeviceUuid::parse(raw).unwrap()
}

fn service(store: &Store) -> (SecretKey, PublicKey) {
    let view = store
        .create_service(&ServiceName::new("Test").unwrap(), &Icon::default())
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

/// Rows in the message table and in its per-service index.
fn stored_messages(store: &Store) -> (u64, u64) {
    use redb::ReadableTableMetadata;
    let txn = store.db.begin_read().unwrap();
    (
        txn.open_table(MESSAGES).unwrap().len().unwrap(),
        txn.open_table(SERVICE_MESSAGES).unwrap().len().unwrap(),
    )
}

#[test]
fn open_creates_missing_directories_and_the_database_file() {
    let dir = TempDir::new().unwrap();
    let nested = dir.path().join("a").join("b");
    Store::open(&nested).unwrap();
    assert!(nested.join(DATABASE_FILE_NAME).is_file());
}

#[cfg(unix)]
#[test]
fn a_created_data_directory_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("data");
    Store::open(&data).unwrap();
    let mode = std::fs::metadata(&data).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
}

#[test]
fn a_second_open_of_the_same_directory_fails_cleanly() {
    let (dir, _store) = open();
    assert!(matches!(
        Store::open(dir.path()),
        Err(StoreError::Open { .. })
    ));
}

#[test]
fn create_service_gives_the_owner_view_and_lookups_give_the_public_view() {
    let (_dir, store) = open();
    let created = store
        .create_service(
            &ServiceName::new(" Demo ").unwrap(),
            &Icon::new("http://i/x.png").unwrap(),
        )
        .unwrap();
    let secret = created.secret.clone().unwrap();
    assert_eq!(created.public, secret.public_key());
    assert_eq!(created.name, "Demo");
    let by_secret = store.service_by_secret(&secret).unwrap().unwrap();
    assert_eq!(by_secret.secret, None);
    assert_eq!(by_secret.public, created.public);
    let by_public = store.service_by_public(&created.public).unwrap().unwrap();
    assert_eq!(by_public, by_secret);
    let stranger = SecretKey::generate().unwrap();
    assert_eq!(store.service_by_secret(&stranger).unwrap(), None);
}

#[test]
fn sending_without_subscribers_stores_nothing() {
    let (_dir, store) = open();
    let (secret, _) = service(&store);
    let outcome = store.send_message(&secret, &message("lost")).unwrap();
    assert_eq!(outcome, SendOutcome::NoSubscribers);
    assert_eq!(stored_messages(&store), (0, 0));
}

#[test]
fn messages_everyone_has_read_are_deleted_by_the_next_send() {
    let (_dir, store) = open();
    let (secret, public) = service(&store);
    store.subscribe(&device(DEVICE), &public).unwrap();
    store.subscribe(&device(OTHER_DEVICE), &public).unwrap();
    store.send_message(&secret, &message("one")).unwrap();
    store.fetch_messages(&device(DEVICE)).unwrap();
    assert_eq!(stored_messages(&store), (1, 1));
    store.fetch_messages(&device(OTHER_DEVICE)).unwrap();
    store.send_message(&secret, &message("two")).unwrap();
    assert_eq!(stored_messages(&store), (1, 1));
    assert_eq!(
        store.fetch_messages(&device(DEVICE)).unwrap()[0].message,
        "two"
    );
}

#[test]
fn deleting_a_service_deletes_its_stored_messages() {
    let (_dir, store) = open();
    let (secret, public) = service(&store);
    store.subscribe(&device(DEVICE), &public).unwrap();
    store.send_message(&secret, &message("unread")).unwrap();
    store.delete_service(&secret).unwrap();
    assert_eq!(stored_messages(&store), (0, 0));
    assert!(matches!(
        store.delete_service(&secret),
        Err(StoreError::ServiceNotFound)
    ));
}

#[test]
fn the_last_unsubscribe_deletes_the_services_messages() {
    let (_dir, store) = open();
    let (secret, public) = service(&store);
    store.subscribe(&device(DEVICE), &public).unwrap();
    store.send_message(&secret, &message("unread")).unwrap();
    store.unsubscribe(&device(DEVICE), &public).unwrap();
    assert_eq!(stored_messages(&store), (0, 0));
    assert_eq!(store.subscriber_count(&public).unwrap(), 0);
}

#[test]
fn message_ids_keep_increasing_across_a_restart() {
    let dir = TempDir::new().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (secret, public) = service(&store);
    store.subscribe(&device(DEVICE), &public).unwrap();
    store.send_message(&secret, &message("old")).unwrap();
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    store.subscribe(&device(OTHER_DEVICE), &public).unwrap();
    store.send_message(&secret, &message("new")).unwrap();
    let late = store.fetch_messages(&device(OTHER_DEVICE)).unwrap();
    assert_eq!(late.len(), 1);
    assert_eq!(late[0].message, "new");
    assert_eq!(store.fetch_messages(&device(DEVICE)).unwrap().len(), 2);
}

#[test]
fn concurrent_sends_from_many_threads_are_all_stored() {
    let (_dir, store) = open();
    let (secret, public) = service(&store);
    store.subscribe(&device(DEVICE), &public).unwrap();
    let store = std::sync::Arc::new(store);
    let workers: Vec<_> = (0..4)
        .map(|worker| {
            let store = store.clone();
            let secret = secret.clone();
            std::thread::spawn(move || {
                for round in 0..5 {
                    let text = format!("{worker}-{round}");
                    store.send_message(&secret, &message(&text)).unwrap();
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    assert_eq!(store.fetch_messages(&device(DEVICE)).unwrap().len(), 20);
}

/// Records what the store announces.
#[derive(Debug, Default)]
struct Recorder(Mutex<Vec<String>>);

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

#[test]
fn committed_messages_and_subscription_changes_are_announced_in_order() {
    let dir = TempDir::new().unwrap();
    let recorder = Arc::new(Recorder::default());
    let store = Store::open(dir.path())
        .unwrap()
        .announcing_to(recorder.clone());
    let (secret, public) = service(&store);
    store.send_message(&secret, &message("nobody")).unwrap();
    store.subscribe(&device(DEVICE), &public).unwrap();
    store.subscribe(&device(OTHER_DEVICE), &public).unwrap();
    store.send_message(&secret, &message("hello")).unwrap();
    store.unsubscribe(&device(OTHER_DEVICE), &public).unwrap();
    store.send_message(&secret, &message("again")).unwrap();
    store.delete_service(&secret).unwrap();
    assert_eq!(
        *recorder.0.lock().unwrap(),
        [
            format!("subscription {DEVICE}"),
            format!("subscription {OTHER_DEVICE}"),
            format!("message 1 hello for {DEVICE},{OTHER_DEVICE}"),
            format!("message 2 again for {DEVICE}"),
            format!("subscription {DEVICE}"),
        ]
    );
}

#[test]
fn fetch_unread_gives_ids_and_the_newest_id_of_the_store() {
    let (_dir, store) = open();
    let (secret, public) = service(&store);
    store.subscribe(&device(DEVICE), &public).unwrap();
    store.subscribe(&device(OTHER_DEVICE), &public).unwrap();
    store.send_message(&secret, &message("one")).unwrap();
    assert_eq!(
        store.fetch_unread(&device(DEVICE)).unwrap().messages.len(),
        1
    );
    store.send_message(&secret, &message("two")).unwrap();
    let unread = store.fetch_unread(&device(DEVICE)).unwrap();
    let ids: Vec<u64> = unread.messages.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, [2]);
    assert_eq!(unread.messages[0].1.message, "two");
    assert_eq!(unread.watermark, 2);
    let nobody = store
        .fetch_unread(&device("00000000-0000-0000-0000-000000000000"))
        .unwrap();
    assert!(nobody.messages.is_empty());
    assert_eq!(nobody.watermark, 2);
}

#[test]
fn mark_read_up_to_marks_only_up_to_the_id_and_never_back() {
    let (_dir, store) = open();
    let (secret, public) = service(&store);
    store.subscribe(&device(DEVICE), &public).unwrap();
    for text in ["one", "two", "three"] {
        store.send_message(&secret, &message(text)).unwrap();
    }
    store.mark_read_up_to(&[(device(DEVICE), 2)]).unwrap();
    store.mark_read_up_to(&[(device(DEVICE), 1)]).unwrap();
    let left: Vec<String> = store
        .fetch_messages(&device(DEVICE))
        .unwrap()
        .into_iter()
        .map(|view| view.message)
        .collect();
    assert_eq!(left, ["three"]);
    assert_eq!(
        stored_messages(&store),
        (0, 0),
        "read by everyone, so deleted"
    );
}
