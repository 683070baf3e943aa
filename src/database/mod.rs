//! The PostgreSQL database that replicas share (`PUSHJET_BRIDGE_DATABASE_URL`): what its users
//! (the outbox in `delivery/postgres/`, the embedded Pushjet API's store in
//! `pushjet_server/store/postgres/`) have in common.
//!
//! - [`connect`]: a connection pool (TLS when the URL's `sslmode` asks for it, the server's
//!   certificate and name checked against the Mozilla roots and the CA certificates of
//!   `PUSHJET_BRIDGE_DATABASE_CA_FILE`; connections made again when they drop) with the schema
//!   brought up to date;
//! - `migrations.rs`: the one schema of the database, numbered migrations applied under an
//!   advisory lock;
//! - `listen.rs`: `LISTEN` on a channel over a connection of its own, made again when it drops;
//! - [`reason`]: a failure as a person reads it (the server's own message when it sent one);
//! - [`within`]: the bound on every wait (`PUSHJET_BRIDGE_DATABASE_TIMEOUT`): a server that does
//!   not answer, hung rather than down, is unavailable within it, like one that refuses.
//!
//! Every failure here is [`DatabaseError`]: the database cannot be reached or refused; its users
//! turn it into their own "unavailable" error (a 503 with `Retry-After`).

mod listen;
mod migrations;
#[cfg(test)]
pub(crate) mod test_server;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres_rustls::MakeRustlsConnect;

pub(crate) use listen::{Listener, listen};
#[cfg(test)]
pub(crate) use migrations::latest_version;

use crate::config::{DatabaseCa, DatabaseUrl};

/// The database cannot be reached, or refused what was asked; the text never holds the
/// password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct DatabaseError(pub(crate) String);

/// A pool of connections to the database, with what it takes to open one more outside the pool
/// (for `LISTEN`).
#[derive(Clone)]
pub(crate) struct Database {
    /// The pool.
    pub(crate) pool: Pool,
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    /// The longest any wait on the database may last (`PUSHJET_BRIDGE_DATABASE_TIMEOUT`).
    pub(crate) timeout: Duration,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("pool", &self.pool.status())
            .finish_non_exhaustive()
    }
}

/// Connects to the database with a pool of at most `pool_size` connections and brings its
/// schema up to date, refusing one newer than this binary knows.
pub(crate) async fn connect(
    url: &DatabaseUrl,
    pool_size: usize,
) -> Result<Database, DatabaseError> {
    let tls = tls(url.ca())?;
    let mut config = url.config().clone();
    if config.get_application_name().is_none() {
        config.application_name("pushjet-bridge");
    }
    let timeout = url.timeout();
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(timeout);
    }
    let options = config.get_options().unwrap_or_default().to_owned();
    if !options.contains("statement_timeout") {
        let bound = format!("-c statement_timeout={}", timeout.as_millis());
        config.options(format!("{options} {bound}").trim());
    }
    // A connection whose server stops acknowledging (a network that drops everything) is closed
    // after the timeout, and the pool makes a new one, rather than waiting out TCP's minutes.
    if config.get_tcp_user_timeout().is_none() {
        config.tcp_user_timeout(timeout);
    }
    config.keepalives(true);
    let manager = Manager::from_config(
        config.clone(),
        tls.clone(),
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let pool = Pool::builder(manager)
        .max_size(pool_size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(timeout))
        .create_timeout(Some(timeout))
        .recycle_timeout(Some(timeout))
        .build()
        .map_err(|error| DatabaseError(format!("database pool: {error}")))?;
    migrations::migrate(&pool)
        .await
        .map_err(|DatabaseError(reason)| {
            DatabaseError(format!(
                "{reason} (connecting to {} at start)",
                url.redacted()
            ))
        })?;
    Ok(Database {
        pool,
        config,
        tls,
        timeout,
    })
}

/// Waits for `work` (a connection from the pool and what is done with it) at most `timeout`: a
/// server that has not answered by then, hung or behind a network that drops everything, is a
/// [`DatabaseError`] as one that refuses is. The server may still carry out what was sent once it
/// answers again: a transaction whose `COMMIT` had been sent may commit after its caller was told
/// it failed.
pub(crate) async fn within<T>(
    timeout: Duration,
    work: impl Future<Output = T>,
) -> Result<T, DatabaseError> {
    tokio::time::timeout(timeout, work).await.map_err(|_| {
        DatabaseError(format!(
            "the database: no answer within {} (PUSHJET_BRIDGE_DATABASE_TIMEOUT)",
            humantime::format_duration(timeout)
        ))
    })
}

/// TLS for the database (when its `sslmode` asks for it): the server's certificate must chain
/// to one of the Mozilla roots or of `ca`, and name the host connected to.
fn tls(ca: &DatabaseCa) -> Result<MakeRustlsConnect, DatabaseError> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    roots.extend(ca.trust_anchors().iter().cloned());
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|error| DatabaseError(format!("TLS for the database: {error}")))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// A database failure as a person reads it, prefixed with "the database: ": the server's own
/// message when it sent one (a client error's text alone is only "db error"), else the error
/// with the causes its text does not already say ("error connecting to server" alone does not
/// say that it was refused), and what to do about a server certificate from an unknown CA; a
/// pool that waited out the timeout says what it waited for.
pub(crate) fn reason(error: &(dyn std::error::Error + 'static)) -> String {
    if let Some(deadpool_postgres::PoolError::Timeout(kind)) =
        error.downcast_ref::<deadpool_postgres::PoolError>()
    {
        let waiting = match kind {
            deadpool_postgres::TimeoutType::Wait => "waiting for a free connection",
            deadpool_postgres::TimeoutType::Create => "connecting",
            deadpool_postgres::TimeoutType::Recycle => "checking a pooled connection",
        };
        return format!(
            "the database: no answer within PUSHJET_BRIDGE_DATABASE_TIMEOUT ({waiting})"
        );
    }
    let mut reason = error.to_string();
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(cause) = source {
        if let Some(rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)) =
            rustls_error(cause)
        {
            reason = format!(
                "{reason}: the server's certificate is not signed by a trusted CA (the Mozilla \
                 roots, or one in PUSHJET_BRIDGE_DATABASE_CA_FILE)"
            );
            break;
        }
        if let Some(db) = cause.downcast_ref::<tokio_postgres::error::DbError>() {
            reason = format!("{}: {}", db.severity(), db.message());
            break;
        }
        if let Some(client) = cause.downcast_ref::<tokio_postgres::Error>()
            && let Some(db) = client.as_db_error()
        {
            reason = format!("{}: {}", db.severity(), db.message());
            break;
        }
        let text = cause.to_string();
        if !reason.contains(&text) {
            reason = format!("{reason}: {text}");
        }
        source = cause.source();
    }
    format!("the database: {reason}")
}

/// The TLS error a cause is or carries: the TLS stream hands it over inside an `io::Error`,
/// whose `source` skips it.
fn rustls_error<'a>(cause: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    cause.downcast_ref::<rustls::Error>().or_else(|| {
        cause
            .downcast_ref::<std::io::Error>()?
            .get_ref()?
            .downcast_ref::<rustls::Error>()
    })
}

/// [`reason`] as a [`DatabaseError`].
pub(crate) fn failed(error: impl std::error::Error + 'static) -> DatabaseError {
    DatabaseError(reason(&error))
}

/// A secret as a query parameter: sent as text, shown as `<secret>`. The database client logs
/// every query's parameters at DEBUG, and a secret must never reach a log.
pub(crate) struct SecretParam<'a>(pub(crate) &'a str);

impl std::fmt::Debug for SecretParam<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<secret>")
    }
}

impl tokio_postgres::types::ToSql for SecretParam<'_> {
    fn to_sql(
        &self,
        ty: &tokio_postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> Result<tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        self.0.to_sql(ty, out)
    }

    fn accepts(ty: &tokio_postgres::types::Type) -> bool {
        <&str as tokio_postgres::types::ToSql>::accepts(ty)
    }

    tokio_postgres::types::to_sql_checked!();
}

/// Runs each named test, `async fn name(backend: Backend)`, on both backends: the calling
/// module has a `Backend` with `Redb` and `Postgres` (the outbox's and the store's tests).
#[cfg(test)]
macro_rules! on_both_backends {
    ($($test:ident),+ $(,)?) => {
        mod on_redb {
            $(
                #[actix_web::test]
                async fn $test() {
                    super::$test(super::Backend::Redb).await;
                }
            )+
        }
        mod on_postgres {
            $(
                #[actix_web::test]
                async fn $test() {
                    super::$test(super::Backend::Postgres).await;
                }
            )+
        }
    };
}

#[cfg(test)]
pub(crate) use on_both_backends;
