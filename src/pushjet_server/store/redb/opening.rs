//! Opening the redb file (creating its directory and tables, upgrading an older file, filling the
//! live streams' cache) and the check that refuses to store more once it holds `max_disk_bytes`.

use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use redb::Database;

use super::{
    DATABASE_FILE_NAME, MESSAGES, META, RedbFile, SERVICE_MESSAGES, SERVICE_SECRETS, SERVICES,
    SIZE_CHECK_INTERVAL, SUBSCRIBERS, SUBSCRIPTIONS, direct, lower_case, stream_cache,
};
use crate::pushjet_server::store::{StoreError, StoreOptions};

/// redb's own cache of the file's pages (its default is 1 GiB, which messages and the live
/// streams' cache written at a webhook's pace would fill): what is read often (services,
/// subscriptions, the newest messages) fits in it; the rest comes back from the operating
/// system's page cache when needed.
const CACHE_BYTES: usize = 4 * 1024 * 1024;

impl RedbFile {
    /// Opens `<data_dir>/pushjet.redb`, creating the directory (mode 0700 on Unix) and the file
    /// if needed.
    pub(super) fn open(data_dir: &Path, options: StoreOptions) -> Result<Self, StoreError> {
        create_private_dir(data_dir).map_err(|source| StoreError::CreateDir {
            path: data_dir.to_path_buf(),
            source,
        })?;
        let path = data_dir.join(DATABASE_FILE_NAME);
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(&path)
            .map_err(|source| StoreError::Open { path, source })?;
        let txn = db.begin_write()?;
        {
            txn.open_table(SERVICES)?;
            txn.open_table(SERVICE_SECRETS)?;
            txn.open_table(SUBSCRIPTIONS)?;
            txn.open_table(SUBSCRIBERS)?;
            txn.open_table(MESSAGES)?;
            txn.open_table(SERVICE_MESSAGES)?;
            txn.open_table(META)?;
            txn.open_table(direct::DIRECT_SERVICES)?;
            stream_cache::create(&txn)?;
            lower_case::lower_case_devices(&txn)?;
        }
        txn.commit()?;
        if let Some(events) = &options.events {
            let filled = stream_cache::fill(
                &db,
                events.as_ref(),
                options.stream_cache,
                options.stream_cache_bytes,
            )?;
            tracing::debug!(
                messages = filled,
                "filled the live stream cache from the Pushjet database"
            );
        }
        Ok(Self {
            stream_cache: options.stream_cache,
            db,
            path: data_dir.join(DATABASE_FILE_NAME),
            data_dir: data_dir.to_path_buf(),
            limits: options.limits,
            size_check: Mutex::new(None),
            events: options.events,
            announcing: Mutex::new(()),
        })
    }

    /// Refuses to store more once the database holds `max_disk_bytes`: the file's size while it
    /// is smaller, else the bytes of the pages in use inside it (freed pages are reused before it
    /// grows). Once over, it is measured again only every [`SIZE_CHECK_INTERVAL`].
    pub(super) fn check_space(&self) -> Result<(), StoreError> {
        let file_size = std::fs::metadata(&self.path).map_or(0, |meta| meta.len());
        if file_size < self.limits.max_disk_bytes {
            return Ok(());
        }
        let mut checked = self.size_check.lock().map_err(|_| StoreError::Full)?;
        let full = match *checked {
            Some((at, true)) if at.elapsed() < SIZE_CHECK_INTERVAL => true,
            _ => {
                let stats = self.db.begin_write()?.stats()?;
                let page_size = u64::try_from(stats.page_size()).unwrap_or(u64::MAX);
                let used = stats.allocated_pages().saturating_mul(page_size);
                let full = used >= self.limits.max_disk_bytes;
                *checked = Some((Instant::now(), full));
                full
            }
        };
        if full { Err(StoreError::Full) } else { Ok(()) }
    }
}

/// Creates the directory and its parents; on Unix a newly created directory is private (0700),
/// because the database holds the services' secrets.
pub(super) fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}
