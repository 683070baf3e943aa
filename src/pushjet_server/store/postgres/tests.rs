//! What only the PostgreSQL store does: riding out a database that hangs. (Its behaviour is
//! tested on both backends in `store/tests.rs`.)

use std::time::{Duration, Instant};

use crate::config::DatabaseUrl;
use crate::database::test_server::TestPostgres;
use crate::pushjet_server::fields::{Icon, ServiceName};
use crate::pushjet_server::store::{Store, StoreError, StoreOptions};

#[actix_web::test]
async fn a_hung_database_is_unavailable_within_the_timeout_and_the_store_works_after() {
    let server = TestPostgres::start();
    let url = DatabaseUrl::parse(&server.create_database().await)
        .unwrap()
        .with_timeout(Duration::from_millis(500));
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(dir.path(), Some(&url), StoreOptions::default())
        .await
        .unwrap();
    let name = ServiceName::new("Hung").unwrap();
    store.create_service(&name, &Icon::default()).await.unwrap();

    server.pause();
    let started = Instant::now();
    let created = store.create_service(&name, &Icon::default());
    // Resumed after 8 s if it has not answered by then, so that a wait without a bound fails.
    let created = tokio::select! {
        created = created => created,
        () = tokio::time::sleep(Duration::from_secs(8)) => {
            server.resume();
            panic!("no answer from the store while the database hangs");
        }
    };
    let waited = started.elapsed();
    server.resume();
    assert!(
        matches!(&created, Err(StoreError::Unavailable(reason)) if reason.contains("no answer")),
        "{created:?}"
    );
    assert!(waited < Duration::from_secs(5), "waited {waited:?}");

    let deadline = Instant::now() + Duration::from_secs(20);
    while store.create_service(&name, &Icon::default()).await.is_err() {
        assert!(Instant::now() < deadline, "the store never worked again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
