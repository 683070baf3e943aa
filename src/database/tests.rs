//! TLS to the database against a real PostgreSQL with `ssl=on` whose certificate comes from a
//! private CA made here: trusted with `PUSHJET_BRIDGE_DATABASE_CA_FILE`, refused without it,
//! and refused for a host name the certificate does not carry; what each `sslmode` does.

use std::sync::OnceLock;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

use super::test_server::TestPostgres;
use super::{Database, DatabaseError, connect, latest_version};
use crate::config::{DatabaseUrl, Settings};

/// The password in every URL here; the server trusts any, and no error may repeat it.
const PASSWORD: &str = "hunter2-s3cret";

/// A PostgreSQL taking TLS with a certificate for `localhost` and `127.0.0.1` signed by a CA of
/// its own, and that CA's certificate in a file.
struct TlsServer {
    server: TestPostgres,
    ca_file: tempfile::NamedTempFile,
}

/// The server every test here shares, started on first use.
fn tls_server() -> &'static TlsServer {
    static SERVER: OnceLock<TlsServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.distinguished_name
            .push(DnType::CommonName, "pushjet-bridge test CA");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();

        let mut leaf =
            CertificateParams::new(["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        leaf.distinguished_name
            .push(DnType::CommonName, "pushjet-bridge test database");
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().unwrap();
        let certificate = leaf.signed_by(&key, &ca).unwrap();

        let mut ca_file = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut ca_file, ca.pem().as_bytes()).unwrap();
        TlsServer {
            server: TestPostgres::start_with_tls(&certificate.pem(), &key.serialize_pem()),
            ca_file,
        }
    })
}

/// A database of its own on the TLS server.
struct TestDatabase {
    port: u16,
    name: String,
}

impl TestDatabase {
    async fn new() -> Self {
        let plain: tokio_postgres::Config =
            tls_server().server.create_database().await.parse().unwrap();
        Self {
            port: plain.get_ports()[0],
            name: plain.get_dbname().unwrap().to_owned(),
        }
    }

    /// Its URL with `host` (the certificate's name checked against it) and `query`.
    fn url(&self, host: &str, query: &str) -> String {
        format!(
            "postgres://postgres:{PASSWORD}@{host}:{}/{}?{query}",
            self.port, self.name
        )
    }
}

/// The database as the service reads it: `PUSHJET_BRIDGE_DATABASE_URL`, and the CA file when
/// `with_ca`.
fn settings(url: &str, with_ca: bool) -> DatabaseUrl {
    let mut vars = vec![("PUSHJET_BRIDGE_DATABASE_URL".to_owned(), url.to_owned())];
    if with_ca {
        let path = tls_server().ca_file.path().to_str().unwrap().to_owned();
        vars.push(("PUSHJET_BRIDGE_DATABASE_CA_FILE".to_owned(), path));
    }
    let settings = Settings::from_vars(vars).unwrap();
    settings.delivery.database.unwrap()
}

async fn connect_with(url: &str, with_ca: bool) -> Result<Database, DatabaseError> {
    connect(&settings(url, with_ca), 2).await
}

/// Whether the pool's connection to the database is encrypted, as the server sees it.
async fn uses_tls(database: &Database) -> bool {
    let client = database.pool.get().await.unwrap();
    client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

#[actix_web::test]
async fn require_with_the_ca_file_connects_over_tls_and_migrates() {
    let database = TestDatabase::new().await;
    for host in ["127.0.0.1", "localhost"] {
        let url = database.url(host, "sslmode=require");
        let connected = connect_with(&url, true)
            .await
            .unwrap_or_else(|error| panic!("{host}: {error}"));
        assert!(uses_tls(&connected).await, "{host}: not encrypted");
        let client = connected.pool.get().await.unwrap();
        let version: i32 = client
            .query_one("SELECT max(version) FROM pushjet_bridge_schema", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(version, latest_version(), "{host}");
    }
}

#[actix_web::test]
async fn a_certificate_from_an_unknown_ca_is_refused_without_showing_the_password() {
    let database = TestDatabase::new().await;
    for mode in ["require", "prefer"] {
        let url = database.url("127.0.0.1", &format!("sslmode={mode}"));
        let DatabaseError(error) = connect_with(&url, false).await.unwrap_err();
        assert!(
            error.contains("not signed by a trusted CA"),
            "{mode}: {error}"
        );
        assert!(
            error.contains("PUSHJET_BRIDGE_DATABASE_CA_FILE"),
            "{mode}: {error}"
        );
        assert!(!error.contains(PASSWORD), "{mode}: {error}");
    }
    // The keyword form, and no sslmode at all (the default, prefer), the same.
    let keywords = format!(
        "host=127.0.0.1 port={} user=postgres password={PASSWORD} dbname={}",
        database.port, database.name
    );
    let DatabaseError(error) = connect_with(&keywords, false).await.unwrap_err();
    assert!(error.contains("not signed by a trusted CA"), "{error}");
    assert!(!error.contains(PASSWORD), "{error}");
}

#[actix_web::test]
async fn a_certificate_for_another_host_name_is_refused() {
    let database = TestDatabase::new().await;
    // Connect to 127.0.0.1 but check the certificate for a name it does not carry.
    let url = database.url("db.example", "sslmode=require&hostaddr=127.0.0.1");
    let DatabaseError(error) = connect_with(&url, true).await.unwrap_err();
    assert!(
        error.contains("certificate not valid for name \"db.example\""),
        "{error}"
    );
    assert!(!error.contains(PASSWORD), "{error}");
}

#[actix_web::test]
async fn prefer_uses_tls_when_offered_and_disable_never_does() {
    let database = TestDatabase::new().await;
    let prefer = connect_with(&database.url("localhost", "sslmode=prefer"), true)
        .await
        .unwrap();
    assert!(uses_tls(&prefer).await);
    let disable = connect_with(&database.url("localhost", "sslmode=disable"), false)
        .await
        .unwrap();
    assert!(!uses_tls(&disable).await);
}
