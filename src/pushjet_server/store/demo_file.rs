//! The demo route's keys next to the redb file: `<data_dir>/demo.json`, readable by the owner
//! only (it holds the service's secret). On PostgreSQL they are a row of `pushjet_demo` instead.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{DemoKeys, StoreError};
use crate::pushjet::{DeviceUuid, KeyError, SecretKey};

/// The file inside the data directory.
const DEMO_FILE: &str = "demo.json";

#[derive(Serialize, Deserialize)]
struct DemoFile {
    secret: String,
    device: String,
}

/// The keys in `<data_dir>/demo.json`; `None` when there is no such file.
pub(super) fn read(data_dir: &Path) -> Result<Option<DemoKeys>, StoreError> {
    let path = data_dir.join(DEMO_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(StoreError::DemoFile { path, source }),
    };
    let unreadable = || StoreError::DemoUnreadable { path: path.clone() };
    let file: DemoFile = serde_json::from_str(&text).map_err(|_| unreadable())?;
    let keys: Result<_, KeyError> = SecretKey::parse(&file.secret).and_then(|secret| {
        Ok(DemoKeys {
            secret,
            device: DeviceUuid::parse(&file.device)?,
        })
    });
    keys.map(Some).map_err(|_| unreadable())
}

/// Writes the keys to `<data_dir>/demo.json`, readable by its owner only.
pub(super) fn write(data_dir: &Path, keys: &DemoKeys) -> Result<(), StoreError> {
    let path = data_dir.join(DEMO_FILE);
    let file = DemoFile {
        secret: keys.secret.expose().to_owned(),
        device: keys.device.to_string(),
    };
    let text = serde_json::to_string_pretty(&file)?;
    write_private(&path, &text).map_err(|source| StoreError::DemoFile { path, source })
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
