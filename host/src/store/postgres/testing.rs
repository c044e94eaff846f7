//! A PostgreSQL database of its own for each test, dropped when the test ends.
//!
//! The server is `WASMHOOK_TEST_DATABASE_URL`, else `postgres://postgres@127.0.0.1:5432/postgres`
//! when it answers; with neither, [`TestDb::create`] returns `None` and the test is skipped.

use std::time::Duration;

use tokio_postgres::NoTls;

const DEFAULT_SERVER: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A database made for one test (`wasmhook_t_<random>`); dropped with this value.
pub(crate) struct TestDb {
    /// The database's URL.
    pub(crate) url: String,
    server: String,
    name: String,
}

impl TestDb {
    /// Creates a database, or `None` when no server is configured and none answers locally.
    pub(crate) async fn create() -> Option<TestDb> {
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
        let name = format!("wasmhook_t_{}", uuid::Uuid::now_v7().simple());
        client.batch_execute(&format!("CREATE DATABASE {name}")).await.expect("create a test database");
        let mut url = url::Url::parse(&server).expect("the test server's URL");
        url.set_path(&name);
        Some(TestDb { url: url.to_string(), server, name })
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

async fn connect(url: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let mut config: tokio_postgres::Config = url.parse()?;
    config.connect_timeout(Duration::from_secs(3));
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}
