//! How the PostgreSQL outbox sends its hot statements: prepared once per connection, and a
//! statement with its own `BEGIN` and `COMMIT` in one round trip.

use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::unavailable;
use crate::delivery::outbox::records::OutboxError;

/// Runs one of the statements the dispatcher runs all the time, prepared once per connection:
/// one round trip instead of two.
pub(super) async fn prepared(
    client: &deadpool_postgres::Client,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>, OutboxError> {
    let statement = client.prepare_cached(sql).await.map_err(unavailable)?;
    client.query(&statement, params).await.map_err(unavailable)
}

/// [`prepared`], for a statement that answers with exactly one row.
pub(super) async fn prepared_one(
    client: &deadpool_postgres::Client,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Row, OutboxError> {
    let statement = client.prepare_cached(sql).await.map_err(unavailable)?;
    client.query_one(&statement, params).await.map_err(unavailable)
}

/// Runs `sql` (prepared once per connection) in a transaction of its own, opened by `begin`
/// (`BEGIN` and any `SET LOCAL`), in one round trip: the three requests are pipelined, and the
/// rows count only once `COMMIT` has answered (after a failed statement, `COMMIT` rolls back).
pub(super) async fn in_own_transaction(
    client: &deadpool_postgres::Client,
    begin: &str,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>, OutboxError> {
    let statement = client.prepare_cached(sql).await.map_err(unavailable)?;
    let (begun, rows, committed) = tokio::join!(
        client.batch_execute(begin),
        client.query(&statement, params),
        client.batch_execute("COMMIT"),
    );
    begun.map_err(unavailable)?;
    let rows = rows.map_err(unavailable)?;
    committed.map_err(unavailable)?;
    Ok(rows)
}
