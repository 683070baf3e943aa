//! The database schema (the outbox's tables and the embedded Pushjet API's), embedded in the
//! binary: numbered migrations, applied at start in one transaction under an advisory lock, so
//! that replicas starting together apply each once. A
//! database whose schema is newer than this binary knows is refused: an older binary would
//! misread it.

use deadpool_postgres::Pool;

use super::{DatabaseError, failed};

/// The advisory lock key of schema changes (`pg_advisory_xact_lock`): "pjbridge" in ASCII.
const MIGRATION_LOCK: i64 = 0x706a_6272_6964_6765;

/// Every migration, in order: (version, SQL).
const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("migrations/0001_outbox.sql")),
    (2, include_str!("migrations/0002_pushjet.sql")),
    (3, include_str!("migrations/0003_history.sql")),
    (4, include_str!("migrations/0004_noise.sql")),
    (5, include_str!("migrations/0005_lower_case_devices.sql")),
    (6, include_str!("migrations/0006_direct_services.sql")),
    (
        7,
        include_str!("migrations/0007_history_request_bodies.sql"),
    ),
];

/// The schema version this binary writes.
pub(crate) fn latest_version() -> i32 {
    MIGRATIONS.last().map_or(0, |(version, _)| *version)
}

/// Brings the schema up to date: applies every migration the database has not had, in order;
/// refuses a schema with a version this binary does not know (written by a newer one).
pub(super) async fn migrate(pool: &Pool) -> Result<(), DatabaseError> {
    let mut client = pool.get().await.map_err(failed)?;
    let txn = client.transaction().await.map_err(failed)?;
    // A migration may take longer than a statement may: the bound is for the webhook path.
    txn.batch_execute("SET LOCAL statement_timeout = 0")
        .await
        .map_err(failed)?;
    txn.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(failed)?;
    txn.batch_execute(
        "CREATE TABLE IF NOT EXISTS pushjet_bridge_schema (
             version    INTEGER PRIMARY KEY,
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
         )",
    )
    .await
    .map_err(failed)?;
    let applied: Vec<i32> = txn
        .query("SELECT version FROM pushjet_bridge_schema", &[])
        .await
        .map_err(failed)?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let latest = latest_version();
    if let Some(unknown) = applied
        .iter()
        .find(|version| !MIGRATIONS.iter().any(|(known, _)| known == *version))
    {
        return Err(DatabaseError(format!(
            "the database's schema has version {unknown}, newer than this pushjet-bridge knows \
             (up to {latest}): run the newer version that wrote it"
        )));
    }
    // Every migration not yet applied, in order, gaps included: a migration numbered below one
    // already applied (branches merged in another order) is applied all the same.
    let missing = MIGRATIONS
        .iter()
        .filter(|(version, _)| !applied.contains(version));
    for (version, sql) in missing {
        txn.batch_execute(sql).await.map_err(failed)?;
        txn.execute(
            "INSERT INTO pushjet_bridge_schema (version) VALUES ($1)",
            &[version],
        )
        .await
        .map_err(failed)?;
        tracing::info!(version, "database schema migrated");
    }
    txn.commit().await.map_err(failed)
}
