//! The embedded default: with no route configured and the embedded Pushjet API on, a route `demo`
//! that works at once. Its Pushjet service and a demo device subscribed to it are created once and
//! remembered by the store (`demo.json` in the data directory, readable by the owner only, or a
//! row of the shared database), so a restart keeps the same keys and the device's unread
//! messages, and replicas on one database share one demo.

use crate::pushjet::{DeviceUuid, PublicKey};
use crate::pushjet_server::{DemoKeys, Icon, ServiceName, Store, StoreError};
use crate::routes::{DeliveryMode, Route, RouteName};
use crate::sources::SourceOptions;
use crate::verify::{InboundAuth, ReaderAuth};

/// The demo route's name.
pub const DEMO_ROUTE: &str = "demo";

/// Why the demo route could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The embedded store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A key could not be made.
    #[error("cannot make the demo keys: {0}")]
    Keys(String),
}

/// The demo route with what a new user needs to see it work.
#[derive(Debug)]
pub struct Demo {
    /// The route, `demo`, reading any sender.
    pub route: Route,
    /// The service's public key, to subscribe other devices.
    pub public_key: PublicKey,
    /// A device already subscribed, to read the messages.
    pub device: DeviceUuid,
}

/// Loads the demo route, creating its service and device the first time (or again when the
/// service was deleted). Two replicas doing it at once on one database end with the same demo:
/// the one whose keys the store remembered first wins, and the other deletes its own service.
pub async fn ensure(store: &Store) -> Result<Demo, DemoError> {
    let remembered = store.demo().await?;
    let keys = match remembered {
        Some(keys) if store.service_by_secret(&keys.secret).await?.is_some() => keys,
        other => {
            let previous = other.map(|keys| keys.secret);
            let made = create(store).await?;
            let kept = store.keep_demo(previous.as_ref(), made.clone()).await?;
            if kept.secret != made.secret {
                store.delete_service(&made.secret).await?;
            }
            kept
        }
    };
    let public_key = keys.secret.public_key();
    let subscribed = store
        .subscriptions(&keys.device)
        .await?
        .iter()
        .any(|subscription| subscription.service.public == public_key);
    if !subscribed {
        match store.subscribe(&keys.device, &public_key).await {
            Ok(_) | Err(StoreError::AlreadySubscribed) => {}
            Err(error) => return Err(error.into()),
        }
    }
    let name = RouteName::parse(DEMO_ROUTE).map_err(|error| DemoError::Keys(error.to_string()))?;
    let route = Route {
        source: SourceOptions::new(DEMO_ROUTE),
        name,
        secret: keys.secret,
        auth: InboundAuth::default(),
        readers: ReaderAuth::of(&InboundAuth::default()),
        template: None,
        events: None,
        delivery: DeliveryMode::Queued,
        noise: crate::noise::NoisePolicy::default(),
    };
    Ok(Demo {
        route,
        public_key,
        device: keys.device,
    })
}

/// A new demo service and device.
async fn create(store: &Store) -> Result<DemoKeys, DemoError> {
    let name = ServiceName::new("pushjet-bridge demo")
        .map_err(|error| DemoError::Keys(error.to_string()))?;
    let icon = Icon::new("").map_err(|error| DemoError::Keys(error.to_string()))?;
    let service = store.create_service(&name, &icon).await?;
    let secret = service.secret.ok_or_else(|| {
        DemoError::Keys("the new service came back without its secret".to_owned())
    })?;
    let device = DeviceUuid::parse(&uuid::Uuid::new_v4().to_string())
        .map_err(|error| DemoError::Keys(error.to_string()))?;
    Ok(DemoKeys { secret, device })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_web::test]
    async fn the_demo_is_created_once_and_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let first = ensure(&store).await.unwrap();
        let again = ensure(&store).await.unwrap();
        assert_eq!(first.public_key, again.public_key);
        assert_eq!(first.device, again.device);
        assert_eq!(store.subscriptions(&first.device).await.unwrap().len(), 1);
        assert_eq!(first.route.name.as_str(), "demo");
        drop(store);
        let reopened = Store::open(dir.path()).unwrap();
        assert_eq!(ensure(&reopened).await.unwrap().device, first.device);
    }

    #[actix_web::test]
    async fn replicas_ensuring_at_once_on_one_database_end_with_one_demo() {
        use crate::config::DatabaseUrl;
        use crate::database::test_server::TestPostgres;
        let url = TestPostgres::shared().create_database().await;
        let database = DatabaseUrl::parse(&url).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut stores = Vec::new();
        for _ in 0..4 {
            let options = crate::pushjet_server::StoreOptions::default();
            stores.push(
                Store::connect(dir.path(), Some(&database), options)
                    .await
                    .unwrap(),
            );
        }
        let demos = futures_util::future::join_all(stores.iter().map(ensure)).await;
        let keys: Vec<_> = demos
            .into_iter()
            .map(|demo| {
                let demo = demo.unwrap();
                (demo.public_key, demo.device)
            })
            .collect();
        assert!(keys.iter().all(|key| *key == keys[0]), "{keys:?}");
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        let services: i64 = client
            .query_one("SELECT count(*) FROM pushjet_services", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(services, 1, "the others deleted the services they made");
        let subscriptions = stores[0].subscriptions(&keys[0].1).await.unwrap();
        assert_eq!(subscriptions.len(), 1);
    }

    #[actix_web::test]
    async fn a_deleted_demo_service_is_made_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let first = ensure(&store).await.unwrap();
        store.delete_service(&first.route.secret).await.unwrap();
        let again = ensure(&store).await.unwrap();
        assert_ne!(first.public_key, again.public_key);
        assert!(
            store
                .service_by_secret(&again.route.secret)
                .await
                .unwrap()
                .is_some()
        );
    }
}
