//! The embedded default: with no route configured and the embedded Pushjet API on, a route `demo`
//! that works at once. Its Pushjet service and a demo device subscribed to it are created once and
//! remembered in the data directory (`demo.json`, readable by the owner only), so a restart keeps
//! the same keys and the device's unread messages.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::pushjet::{DeviceUuid, KeyError, PublicKey, SecretKey};
use crate::pushjet_server::{Icon, ServiceName, Store, StoreError};
use crate::routes::{DeliveryMode, Route, RouteName};
use crate::sources::SourceOptions;
use crate::verify::InboundAuth;

/// The demo route's name.
pub const DEMO_ROUTE: &str = "demo";
const DEMO_FILE: &str = "demo.json";

/// Why the demo route could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The embedded store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The demo file could not be read or written.
    #[error("cannot use {}: {source}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The demo file holds something else than the demo's keys.
    #[error("{} is not a demo file this version understands; delete it to start over", path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
    },
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

#[derive(Serialize, Deserialize)]
struct DemoFile {
    secret: String,
    device: String,
}

/// Loads the demo route, creating its service and device the first time (or again when the
/// service was deleted). Blocking: call it at start-up, before serving.
pub fn ensure(store: &Store, data_dir: &Path) -> Result<Demo, DemoError> {
    let path = data_dir.join(DEMO_FILE);
    let remembered = read_file(&path)?;
    let (secret, device) = match remembered {
        Some((secret, device)) if store.service_by_secret(&secret)?.is_some() => (secret, device),
        _ => create(store, &path)?,
    };
    let public_key = secret.public_key();
    let subscribed = store
        .subscriptions(&device)?
        .iter()
        .any(|subscription| subscription.service.public == public_key);
    if !subscribed {
        store.subscribe(&device, &public_key)?;
    }
    let name = RouteName::parse(DEMO_ROUTE).map_err(|error| DemoError::Keys(error.to_string()))?;
    let route = Route {
        source: SourceOptions::new(DEMO_ROUTE),
        name,
        secret,
        auth: InboundAuth::default(),
        template: None,
        events: None,
        delivery: DeliveryMode::Queued,
    };
    Ok(Demo {
        route,
        public_key,
        device,
    })
}

fn read_file(path: &Path) -> Result<Option<(SecretKey, DeviceUuid)>, DemoError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(DemoError::File {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let unreadable = || DemoError::Unreadable {
        path: path.to_path_buf(),
    };
    let file: DemoFile = serde_json::from_str(&text).map_err(|_| unreadable())?;
    let keys: Result<_, KeyError> = SecretKey::parse(&file.secret)
        .and_then(|secret| Ok((secret, DeviceUuid::parse(&file.device)?)));
    keys.map(Some).map_err(|_| unreadable())
}

fn create(store: &Store, path: &Path) -> Result<(SecretKey, DeviceUuid), DemoError> {
    let name = ServiceName::new("pushjet-bridge demo")
        .map_err(|error| DemoError::Keys(error.to_string()))?;
    let icon = Icon::new("").map_err(|error| DemoError::Keys(error.to_string()))?;
    let service = store.create_service(&name, &icon)?;
    let secret = service.secret.ok_or_else(|| {
        DemoError::Keys("the new service came back without its secret".to_owned())
    })?;
    let device = DeviceUuid::parse(&uuid::Uuid::new_v4().to_string())
        .map_err(|error| DemoError::Keys(error.to_string()))?;
    let file = DemoFile {
        secret: secret.expose().to_owned(),
        device: device.to_string(),
    };
    let text =
        serde_json::to_string_pretty(&file).map_err(|error| DemoError::Keys(error.to_string()))?;
    write_private(path, &text).map_err(|source| DemoError::File {
        path: path.to_path_buf(),
        source,
    })?;
    Ok((secret, device))
}

/// Writes a file only its owner can read.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_is_created_once_and_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let first = ensure(&store, dir.path()).unwrap();
        let again = ensure(&store, dir.path()).unwrap();
        assert_eq!(first.public_key, again.public_key);
        assert_eq!(first.device, again.device);
        assert_eq!(store.subscriptions(&first.device).unwrap().len(), 1);
        assert_eq!(first.route.name.as_str(), "demo");
    }

    #[test]
    fn a_deleted_demo_service_is_made_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let first = ensure(&store, dir.path()).unwrap();
        store.delete_service(&first.route.secret).unwrap();
        let again = ensure(&store, dir.path()).unwrap();
        assert_ne!(first.public_key, again.public_key);
        assert!(
            store
                .service_by_secret(&again.route.secret)
                .unwrap()
                .is_some()
        );
    }
}
