//! Helpers shared by the delivery tests: fast settings, messages, routes, a clock tests move by
//! hand, and a storage backend whose writes fail on demand (a full or read-only disk, even for
//! root).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use redb::StorageBackend;
use redb::backends::{FileBackend, InMemoryBackend};

use super::outbox::records::Clock;
use crate::config::DeliverySettings;
use crate::pushjet::{MessageText, NewMessage, SecretKey};
use crate::routes::{Route, RouteName, Routes};
use crate::sources::SourceOptions;
use crate::verify::InboundAuth;

/// Settings with delays short enough for tests.
pub(super) fn fast_settings() -> DeliverySettings {
    DeliverySettings {
        concurrency: 4,
        retry_for: Duration::from_secs(60),
        retry_min_delay: Duration::from_millis(10),
        retry_max_delay: Duration::from_millis(40),
        dedup_window: Duration::from_secs(3600),
        alert_dedup_window: Duration::from_secs(300),
        max_queue: 1000,
        shutdown_grace: Duration::from_secs(2),
        send_timeout: Duration::from_secs(2),
        database: None,
        lease: Duration::from_secs(5),
    }
}

pub(super) fn message(text: &str) -> NewMessage {
    NewMessage::text(MessageText::new(text).unwrap())
}

pub(super) fn route(name: &str) -> RouteName {
    RouteName::parse(name).unwrap()
}

/// A route named `name` whose secret is `name` padded with zeros to 32 characters.
pub(super) fn configured_route(name: &str) -> Route {
    Route {
        name: route(name),
        secret: secret_for(name),
        auth: InboundAuth::default(),
        readers: crate::verify::ReaderAuth::of(&InboundAuth::default()),
        source: SourceOptions::new(name),
        template: None,
        events: None,
        delivery: crate::routes::DeliveryMode::Queued,
        noise: crate::noise::NoisePolicy::default(),
    }
}

/// The secret [`configured_route`] gives a route.
pub(super) fn secret_for(name: &str) -> SecretKey {
    let alphanumeric: String = name.chars().filter(char::is_ascii_alphanumeric).collect();
    SecretKey::parse(&format!("{alphanumeric:0<32}")).unwrap()
}

pub(super) fn routes(names: &[&str]) -> Routes {
    Routes::new(names.iter().map(|name| configured_route(name)))
}

/// A clock that only moves when told to.
#[derive(Debug)]
pub(super) struct ManualClock(Mutex<SystemTime>);

impl ManualClock {
    pub(super) fn new() -> Arc<Self> {
        Arc::new(Self(Mutex::new(
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        )))
    }

    pub(super) fn advance(&self, by: Duration) {
        *self.0.lock().unwrap() += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self.0.lock().unwrap()
    }
}

/// A database (in memory, or in a file) whose writes and syncs fail with "no space left on
/// device" while `failing` is set, and whose syncs take `sync_delay` (a slow disk).
#[derive(Debug)]
pub(super) struct FailingBackend {
    inner: Box<dyn StorageBackend>,
    pub(super) failing: Arc<AtomicBool>,
    sync_delay: Duration,
}

impl FailingBackend {
    pub(super) fn new() -> Self {
        Self::over(Box::new(InMemoryBackend::new()))
    }

    /// The same over a real file, which a test can open again as a plain outbox.
    pub(super) fn on_file(path: &std::path::Path) -> Self {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .unwrap();
        Self::over(Box::new(FileBackend::new(file).unwrap()))
    }

    fn over(inner: Box<dyn StorageBackend>) -> Self {
        Self {
            inner,
            failing: Arc::new(AtomicBool::new(false)),
            sync_delay: Duration::ZERO,
        }
    }

    /// The same backend on a disk whose every sync takes `delay`.
    pub(super) fn with_sync_delay(self, delay: Duration) -> Self {
        Self {
            sync_delay: delay,
            ..self
        }
    }

    fn check(&self) -> std::io::Result<()> {
        if self.failing.load(Ordering::SeqCst) {
            Err(std::io::Error::from(std::io::ErrorKind::StorageFull))
        } else {
            Ok(())
        }
    }
}

impl StorageBackend for FailingBackend {
    fn len(&self) -> std::io::Result<u64> {
        self.inner.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
        self.inner.read(offset, out)
    }

    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.check()?;
        self.inner.set_len(len)
    }

    fn sync_data(&self) -> std::io::Result<()> {
        self.check()?;
        std::thread::sleep(self.sync_delay);
        self.inner.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        self.check()?;
        self.inner.write(offset, data)
    }
}
