//! `PUSHJET_BRIDGE_DATABASE_URL[_FILE]`: the PostgreSQL database the outbox and the embedded
//! Pushjet API are kept in when several replicas share one (README, "High availability"). It holds a password, so it is read
//! like the other secrets and never shown: not in a problem, a log line or a `Debug` print.
//! `PUSHJET_BRIDGE_DATABASE_CA_FILE`: the CA certificates (PEM) its server's certificate may
//! chain to besides the Mozilla roots, for a private CA. `PUSHJET_BRIDGE_DATABASE_TIMEOUT`: how
//! long any wait on it may last (a connection, a statement, an enqueue).

use std::fmt;
use std::path::Path;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, TrustAnchor};

/// A PostgreSQL connection string (`postgres://user:password@host:5432/dbname?sslmode=require`,
/// or the `key=value` form), parsed once, with the extra CA certificates its server's TLS
/// certificate may chain to ([`DatabaseCa`]). Its `Debug` and [`DatabaseUrl::redacted`] leave the
/// password out.
#[derive(Clone)]
pub struct DatabaseUrl {
    config: tokio_postgres::Config,
    raw: String,
    ca: DatabaseCa,
    timeout: Duration,
}

/// The default of `PUSHJET_BRIDGE_DATABASE_TIMEOUT`.
pub const DEFAULT_DATABASE_TIMEOUT: Duration = Duration::from_secs(5);

impl DatabaseUrl {
    /// Parses a connection string. The error never repeats the input: it may hold a password.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let raw = raw.trim();
        if raw.contains("sslmode=verify-") {
            return Err(
                "sslmode=verify-ca and verify-full are not supported here: use sslmode=require, \
                        which checks the server's certificate and host name",
            );
        }
        let config: tokio_postgres::Config = raw.parse().map_err(|_| {
            "not a PostgreSQL connection string such as \
             postgres://user:password@host:5432/dbname (the value is not shown: it may hold a \
             password)"
        })?;
        if config.get_hosts().is_empty() {
            return Err("names no host, as in postgres://user:password@host:5432/dbname");
        }
        Ok(Self {
            config,
            raw: raw.to_owned(),
            ca: DatabaseCa::default(),
            timeout: DEFAULT_DATABASE_TIMEOUT,
        })
    }

    /// The same database, its server's certificate also trusted when it chains to `ca`.
    pub fn with_ca(self, ca: DatabaseCa) -> Self {
        Self { ca, ..self }
    }

    /// The same database, with `timeout` as the longest any wait on it may last.
    pub fn with_timeout(self, timeout: Duration) -> Self {
        Self { timeout, ..self }
    }

    /// The longest a wait on the database may last: connecting, a free connection, a statement
    /// (also the server's `statement_timeout`), and the whole of one operation such as an
    /// enqueue (`PUSHJET_BRIDGE_DATABASE_TIMEOUT`, default 5 s). A server that does not answer
    /// within it, down or hung, is unavailable.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The connection settings, password included, for the database client.
    pub fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    /// The CA certificates trusted besides the Mozilla roots (none unless
    /// `PUSHJET_BRIDGE_DATABASE_CA_FILE` is set).
    pub fn ca(&self) -> &DatabaseCa {
        &self.ca
    }

    /// Where it points, for a log line: `postgres://user@host:port/dbname`, no password.
    pub fn redacted(&self) -> String {
        let hosts: Vec<String> = self
            .config
            .get_hosts()
            .iter()
            .zip(
                self.config
                    .get_ports()
                    .iter()
                    .copied()
                    .chain(std::iter::repeat(5432)),
            )
            .map(|(host, port)| match host {
                tokio_postgres::config::Host::Tcp(name) => format!("{name}:{port}"),
                tokio_postgres::config::Host::Unix(path) => format!("{}:{port}", path.display()),
            })
            .collect();
        let user = self
            .config
            .get_user()
            .map(|user| format!("{user}@"))
            .unwrap_or_default();
        let dbname = self.config.get_dbname().unwrap_or_default();
        format!("postgres://{user}{}/{dbname}", hosts.join(","))
    }
}

impl PartialEq for DatabaseUrl {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw && self.ca == other.ca && self.timeout == other.timeout
    }
}

impl Eq for DatabaseUrl {}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut tuple = f.debug_tuple("DatabaseUrl");
        tuple.field(&self.redacted());
        if !self.ca.0.is_empty() {
            tuple.field(&self.ca);
        }
        tuple.finish()
    }
}

/// CA certificates the database server's certificate may chain to, trusted besides the Mozilla
/// roots (`PUSHJET_BRIDGE_DATABASE_CA_FILE`): each checked once, when read, to be a certificate
/// a chain can end at.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct DatabaseCa(Vec<TrustAnchor<'static>>);

impl DatabaseCa {
    /// Reads a PEM file of one or more certificates (`-----BEGIN CERTIFICATE-----`; other
    /// sections, such as keys, are skipped). The error names the path.
    pub fn read(path: &Path) -> Result<Self, String> {
        let pem = std::fs::read(path)
            .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
        Self::from_pem(&pem).map_err(|error| format!("{}: {error}", path.display()))
    }

    /// The certificates of PEM text: at least one, each valid.
    pub fn from_pem(pem: &[u8]) -> Result<Self, String> {
        let mut store = rustls::RootCertStore::empty();
        for certificate in CertificateDer::pem_slice_iter(pem) {
            let certificate = certificate.map_err(|error| format!("is not valid PEM: {error}"))?;
            let number = store.len() + 1;
            store.add(certificate).map_err(|error| {
                format!("certificate {number} is not a usable CA certificate: {error}")
            })?;
        }
        if store.is_empty() {
            return Err("holds no PEM certificate (-----BEGIN CERTIFICATE-----)".to_owned());
        }
        Ok(Self(store.roots))
    }

    /// The certificates, as the TLS client takes them.
    pub fn trust_anchors(&self) -> &[TrustAnchor<'static>] {
        &self.0
    }
}

impl fmt::Debug for DatabaseCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseCa({} certificates)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_is_shown_without_its_password() {
        let url =
            DatabaseUrl::parse("postgres://bridge:hunter2-s3cret@db.example:6543/outbox").unwrap();
        assert_eq!(url.redacted(), "postgres://bridge@db.example:6543/outbox");
        let debug = format!("{url:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert_eq!(url.config().get_password(), Some(&b"hunter2-s3cret"[..]));
        let keywords =
            DatabaseUrl::parse("host=10.0.0.5 user=bridge password=pw dbname=o").unwrap();
        assert_eq!(keywords.redacted(), "postgres://bridge@10.0.0.5:5432/o");
    }

    #[test]
    fn a_bad_url_is_refused_without_repeating_it() {
        for raw in [
            "mysql://u:topsecret@h/db",
            "postgres://u:topsecret@h:port/db",
            "postgres:///db",
        ] {
            let error = DatabaseUrl::parse(raw).unwrap_err();
            assert!(!error.contains("topsecret"), "{raw}: {error}");
        }
        for raw in [
            "postgres://u:topsecret@h/db?sslmode=verify-full",
            "host=h password=topsecret sslmode=verify-ca",
        ] {
            let error = DatabaseUrl::parse(raw).unwrap_err();
            assert!(error.contains("use sslmode=require"), "{raw}: {error}");
        }
    }
}
