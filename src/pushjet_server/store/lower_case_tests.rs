//! Device UUIDs stored in upper case by an older version (which kept a UUID's case as sent) are
//! found in lower case after an upgrade: the redb file is re-keyed when it opens, the PostgreSQL
//! tables by migration 0005.

use tempfile::TempDir;

use super::*;
use crate::database::test_server::TestPostgres;

const LOWER: &str = "abcdef01-2345-6789-abcd-ef0123456789";

async fn subscribed(store: &Store) -> PublicKey {
    let view = store
        .create_service(&ServiceName::new("Old").unwrap(), &Icon::default())
        .await
        .unwrap();
    store
        .subscribe(&DeviceUuid::parse(LOWER).unwrap(), &view.public)
        .await
        .unwrap();
    view.public
}

async fn assert_found_in_lower_case(store: &Store, public: &PublicKey) {
    let subscriptions = store
        .subscriptions(&DeviceUuid::parse(LOWER).unwrap())
        .await
        .unwrap();
    assert_eq!(subscriptions.len(), 1);
    assert_eq!(subscriptions[0].service.public, *public);
    assert_eq!(subscriptions[0].uuid.as_str(), LOWER);
}

#[actix_web::test]
async fn a_redb_file_with_upper_case_devices_is_rekeyed_when_it_opens() {
    let dir = TempDir::new().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let public = subscribed(&store).await;
    drop(store);
    {
        // What an older version wrote: the UUID in the case the device sent.
        let subscriptions: ::redb::TableDefinition<(&str, &str), &[u8]> =
            ::redb::TableDefinition::new("subscriptions");
        let subscribers: ::redb::TableDefinition<(&str, &str), ()> =
            ::redb::TableDefinition::new("subscribers");
        let db = ::redb::Database::create(dir.path().join("pushjet.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let upper = LOWER.to_ascii_uppercase();
            let mut table = txn.open_table(subscriptions).unwrap();
            let record = table
                .remove((LOWER, public.as_str()))
                .unwrap()
                .unwrap()
                .value()
                .to_vec();
            table
                .insert((upper.as_str(), public.as_str()), record.as_slice())
                .unwrap();
            let mut table = txn.open_table(subscribers).unwrap();
            table.remove((public.as_str(), LOWER)).unwrap();
            table.insert((public.as_str(), upper.as_str()), ()).unwrap();
        }
        txn.commit().unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    assert_found_in_lower_case(&store, &public).await;
    assert_eq!(store.subscriber_count(&public).await.unwrap(), 1);
}

#[actix_web::test]
async fn migration_0005_lowers_upper_case_devices_in_postgresql() {
    let url = TestPostgres::shared().create_database().await;
    let database = DatabaseUrl::parse(&url).unwrap();
    let dir = TempDir::new().unwrap();
    let store = Store::connect(dir.path(), Some(&database), StoreOptions::default())
        .await
        .unwrap();
    let public = subscribed(&store).await;
    drop(store);
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    actix_web::rt::spawn(connection);
    // As an older version left it: the UUID in upper case, the schema before migration 0005.
    client
        .batch_execute(
            "UPDATE pushjet_subscriptions SET device = upper(device);
             DELETE FROM pushjet_bridge_schema WHERE version = 5;",
        )
        .await
        .unwrap();
    let store = Store::connect(dir.path(), Some(&database), StoreOptions::default())
        .await
        .unwrap();
    assert_found_in_lower_case(&store, &public).await;
}
