//! Connecting to PostgreSQL: the database URL read (and described without its password), with
//! the TLS it asks for (`tls.rs`), the connection pools, and the driver's errors in the
//! store's words.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::config::Host;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{Client, Config, Connection, Socket};

use super::tls::{self, Connector};
use crate::store::StoreError;

/// How long a call waits for a connection (or to make one) before it answers "unavailable".
const POOL_WAIT: Duration = Duration::from_secs(5);

/// A connection made by [`Database::connect`], to be driven by its caller.
pub(super) type Link = Connection<Socket, <Connector as MakeTlsConnect<Socket>>::Stream>;

/// A database to connect to: tokio-postgres's settings, and the TLS the URL asks for.
#[derive(Clone)]
pub(super) struct Database {
    pub(super) config: Config,
    tls: Connector,
}

impl Database {
    /// Reads a database URL, with libpq's TLS options (see [`tls`]).
    pub(super) fn parse(url: &str) -> Result<Database, StoreError> {
        let unreadable = |reason: String| {
            StoreError::Unavailable(format!("the database URL is not one PostgreSQL reads: {reason}"))
        };
        let (rest, options) = tls::take_options(url).map_err(unreadable)?;
        let mut config: Config =
            rest.parse().map_err(|e: tokio_postgres::Error| unreadable(error_text(&e)))?;
        let mode = options.mode(config.get_ssl_mode()).map_err(unreadable)?;
        // TLS checks a name; with addresses alone (`hostaddr`), libpq checks the address.
        if config.get_hosts().is_empty() {
            for address in config.get_hostaddrs().to_vec() {
                config.host(address.to_string());
            }
        }
        config.ssl_mode(mode.driver());
        let tls = options
            .connector(mode)
            .map_err(|reason| StoreError::Unavailable(format!("{}: {reason}", describe_config(&config))))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(POOL_WAIT);
        }
        if config.get_application_name().is_none() {
            config.application_name("wasmhook");
        }
        Ok(Database { config, tls })
    }

    /// `postgres host:port/dbname` — never the user's password.
    pub(super) fn describe(&self) -> String {
        describe_config(&self.config)
    }

    /// One connection outside the pools; the caller drives the returned [`Link`].
    pub(super) async fn connect(&self) -> Result<(Client, Link), tokio_postgres::Error> {
        self.config.connect(self.tls.clone()).await
    }

    /// A pool of up to `size` connections.
    pub(super) fn pool(&self, size: usize) -> Result<Pool, StoreError> {
        let manager = Manager::from_config(
            self.config.clone(),
            self.tls.clone(),
            ManagerConfig { recycling_method: RecyclingMethod::Fast },
        );
        Pool::builder(manager)
            .max_size(size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(POOL_WAIT))
            .recycle_timeout(Some(POOL_WAIT))
            .build()
            .map_err(|e| {
                StoreError::Unavailable(format!("cannot set up connections to {}: {e}", self.describe()))
            })
    }
}

/// What [`Database::describe`] says of a URL, without connecting (nor reading its TLS
/// files); never any of its text when it does not parse (it might hold a password).
pub(in crate::store) fn describe_url(url: &str) -> String {
    let config = tls::take_options(url).ok().and_then(|(rest, _)| rest.parse::<Config>().ok());
    match config {
        Some(config) => describe_config(&config),
        None => "postgres (an unreadable URL)".into(),
    }
}

fn describe_config(config: &Config) -> String {
    let ports = config.get_ports();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            match host {
                Host::Tcp(name) => format!("{name}:{port}"),
                Host::Unix(dir) => format!("{}:{port}", dir.display()),
            }
        })
        .collect();
    let hosts = if hosts.is_empty() { "localhost:5432".to_owned() } else { hosts.join(",") };
    let dbname = config.get_dbname().or(config.get_user()).unwrap_or("postgres");
    format!("postgres {hosts}/{dbname}")
}

/// PostgreSQL's errors in the store's words. Everything the database refuses is "unavailable"
/// (503, try again): a dropped connection, a timeout, a serialization failure, a full disk.
pub(super) fn pg_error(error: tokio_postgres::Error) -> StoreError {
    StoreError::Unavailable(error_text(&error))
}

/// An error with its causes: tokio-postgres's own text is only its kind ("db error").
pub(super) fn error_text(error: &tokio_postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        return format!("PostgreSQL: {} (SQLSTATE {})", db.message(), db.code().code());
    }
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text += &format!(": {cause}");
        source = cause.source();
    }
    text
}

pub(super) fn pool_error_text(error: &deadpool_postgres::PoolError) -> String {
    match error {
        deadpool_postgres::PoolError::Backend(error) => error_text(error),
        other => format!("no database connection: {other}"),
    }
}

/// Whether a failed statement may succeed alone: the data of one call was refused (class 22,
/// data exception; class 23, integrity constraint), not the connection or the server.
pub(super) fn refused_data(error: &tokio_postgres::Error) -> bool {
    error.as_db_error().is_some_and(|db| matches!(&db.code().code()[..2], "22" | "23"))
}

#[cfg(test)]
mod tests {
    use tokio_postgres::config::SslMode;

    use super::*;

    #[test]
    fn the_description_has_no_password() {
        let database = Database::parse("postgres://app:secret@db.internal:6543/hooks").expect("a URL");
        assert_eq!(database.describe(), "postgres db.internal:6543/hooks");
        let Err(StoreError::Unavailable(message)) =
            Database::parse("postgres://app:secret@db/hooks?sslmode=verify-full")
        else {
            panic!("verify-full without an authority to trust is refused");
        };
        assert!(message.contains("postgres db:5432/hooks") && !message.contains("secret"), "{message}");
        let described = describe_url("postgres://app:secret@db/hooks?sslmode=verify-full");
        assert_eq!(described, "postgres db:5432/hooks", "a URL whose TLS options are refused");
    }

    #[test]
    fn tokio_postgres_reads_the_mode_of_a_key_value_string() {
        let database = Database::parse("host=db dbname=hooks sslmode=require").expect("readable");
        assert_eq!(database.config.get_ssl_mode(), SslMode::Require);
        let database = Database::parse("host=db dbname=hooks").expect("readable");
        assert_eq!(database.config.get_ssl_mode(), SslMode::Prefer, "libpq's default");
        let database = Database::parse("hostaddr=10.1.2.3 dbname=hooks").expect("readable");
        assert_eq!(database.config.get_hosts(), [Host::Tcp("10.1.2.3".into())], "the name TLS checks");
    }
}
