//! A PostgreSQL database of its own for each test, dropped when the test ends. Shared by the
//! backend's unit tests and the end-to-end suite (which includes this file by path).
//!
//! The server is `WASMHOOK_TEST_DATABASE_URL` (`scripts/test` always sets it), else
//! `postgres://postgres@127.0.0.1:5432/postgres` when it answers; with neither,
//! [`TestDb::create`] returns `None` and the test is skipped. Databases are named
//! `wasmhook_t_<run>_<id>`, `<run>` from `WASMHOOK_TEST_RUN`, so that a run can drop whatever
//! its tests left behind (a test killed half-way never drops its own).

#![allow(dead_code)] // each includer uses part of it

use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use tokio_postgres::NoTls;

const DEFAULT_SERVER: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A database made for one test; dropped with this value unless [`TestDb::keep`] is called.
pub struct TestDb {
    /// The database's URL.
    pub url: String,
    server: String,
    name: String,
}

impl TestDb {
    /// Creates a database, or `None` when no server is configured and none answers locally.
    pub async fn create() -> Option<TestDb> {
        let (server, configured) = match std::env::var("WASMHOOK_TEST_DATABASE_URL") {
            Ok(url) => (url, true),
            Err(_) => (DEFAULT_SERVER.to_owned(), false),
        };
        let client = match connect(&server).await {
            Ok(client) => client,
            Err(error) if !configured => {
                eprintln!("skipped: no PostgreSQL at {DEFAULT_SERVER} ({error})");
                return None;
            }
            Err(error) => panic!("WASMHOOK_TEST_DATABASE_URL does not answer: {error}"),
        };
        let run: String = std::env::var("WASMHOOK_TEST_RUN")
            .unwrap_or_else(|_| "local".into())
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect();
        let name = format!("wasmhook_t_{run}_{}", uuid::Uuid::now_v7().simple());
        client.batch_execute(&format!("CREATE DATABASE {name}")).await.expect("create a test database");
        let mut url = url::Url::parse(&server).expect("the test server's URL");
        url.set_path(&name);
        Some(TestDb { url: url.to_string(), server, name })
    }

    /// [`TestDb::create`] from code that is not async (or runs inside a runtime it cannot
    /// block): on a thread of its own.
    pub fn create_blocking() -> Option<TestDb> {
        std::thread::spawn(|| {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            runtime.block_on(TestDb::create())
        })
        .join()
        .expect("creating a test database")
    }

    /// Leaves the database for the run's clean-up (a server restarted later uses it again).
    pub fn keep(self) -> String {
        let url = self.url.clone();
        std::mem::forget(self);
        url
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (server, name) = (self.server.clone(), self.name.clone());
        // Drop runs inside the test's runtime, which cannot be blocked on: a thread of its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async {
                let client = connect(&server).await?;
                // FORCE: the store's pooled connections may still be open.
                client.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await?;
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
            })?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop the test database {}", self.name);
        }
    }
}

/// What a test of TLS needs from the server: its certificate in a file, to trust, and a name
/// it holds.
pub struct ServerTls {
    /// The path of the server's certificate (PEM).
    pub root: String,
    /// A DNS name the certificate holds, if it holds any.
    pub name: Option<String>,
    _dir: tempfile::TempDir,
}

impl TestDb {
    /// The server's certificate, or `None` when the server does not offer TLS. The test user
    /// must be allowed to read the server's files (a superuser, as on the test servers).
    pub async fn server_tls(&self) -> Option<ServerTls> {
        let client = connect(&self.url).await.expect("connect");
        let ssl: String = client.query_one("SHOW ssl", &[]).await.expect("SHOW ssl").get(0);
        if ssl != "on" {
            return None;
        }
        let pem: String = client
            .query_one("SELECT pg_read_file(current_setting('ssl_cert_file'))", &[])
            .await
            .expect("the server's certificate")
            .get(0);
        let der =
            rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).expect("a PEM certificate");
        let certificate = webpki::EndEntityCert::try_from(&der).expect("an X.509 certificate");
        let name = certificate.valid_dns_names().next().map(str::to_owned);
        let dir = tempfile::tempdir().expect("a temporary directory");
        let root = dir.path().join("server.pem");
        std::fs::write(&root, pem).expect("write the certificate");
        let root = root.to_str().expect("a UTF-8 path").to_owned();
        Some(ServerTls { root, name, _dir: dir })
    }

    /// This database's URL with `params` added, and the host called `name` while
    /// `hostaddr` keeps the connection on the address it had: TLS checks `name`.
    pub async fn url_named(&self, name: &str, params: &[(&str, &str)]) -> String {
        let mut url = url::Url::parse(&self.url).expect("a URL");
        let (host, port) = (url.host_str().expect("a host").to_owned(), url.port().unwrap_or(5432));
        let address =
            tokio::net::lookup_host((host, port)).await.expect("resolve").next().expect("an address");
        url.set_host(Some(name)).expect("a host name");
        url.query_pairs_mut().extend_pairs(params).append_pair("hostaddr", &address.ip().to_string());
        url.to_string()
    }

    /// wasmhook's connections to this database (by `application_name`): how many are
    /// encrypted, and how many are not.
    pub async fn wasmhook_connections(&self) -> (i64, i64) {
        let client = connect(&self.url).await.expect("connect");
        let row = client
            .query_one(
                "SELECT count(*) FILTER (WHERE s.ssl), count(*) FILTER (WHERE NOT s.ssl) \
                 FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
                 WHERE a.datname = current_database() AND a.application_name = 'wasmhook'",
                &[],
            )
            .await
            .expect("connections");
        (row.get(0), row.get(1))
    }
}

async fn connect(url: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let mut config: tokio_postgres::Config = url.parse()?;
    config.connect_timeout(Duration::from_secs(3));
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}
