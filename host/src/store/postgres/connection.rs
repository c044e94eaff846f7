//! Connecting to PostgreSQL: the database URL read (and described without its password),
//! the connection pools, and the driver's errors in the store's words.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::{Config, NoTls};

use crate::store::StoreError;

/// How long a call waits for a connection (or to make one) before it answers "unavailable".
const POOL_WAIT: Duration = Duration::from_secs(5);

/// A pool of up to `size` connections to `config`'s database (`location` names it in errors).
pub(super) fn build_pool(config: &Config, size: usize, location: &str) -> Result<Pool, StoreError> {
    let manager = Manager::from_config(
        config.clone(),
        NoTls,
        ManagerConfig { recycling_method: RecyclingMethod::Fast },
    );
    Pool::builder(manager)
        .max_size(size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(POOL_WAIT))
        .create_timeout(Some(POOL_WAIT))
        .recycle_timeout(Some(POOL_WAIT))
        .build()
        .map_err(|e| StoreError::Unavailable(format!("cannot set up connections to {location}: {e}")))
}

/// Reads a database URL; refuses `sslmode=require` (no TLS is built in, see
/// [the backend's docs](super)).
pub(super) fn parse_url(url: &str) -> Result<Config, StoreError> {
    let mut config: Config = url.parse().map_err(|e: tokio_postgres::Error| {
        StoreError::Unavailable(format!("the database URL is not one PostgreSQL reads: {}", error_text(&e)))
    })?;
    if config.get_ssl_mode() == SslMode::Require {
        return Err(StoreError::Unavailable(format!(
            "{} asks for sslmode=require, but this wasmhook connects to PostgreSQL without TLS: \
             use sslmode=disable or prefer on a private network, or a TLS tunnel",
            describe_config(&config)
        )));
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(POOL_WAIT);
    }
    if config.get_application_name().is_none() {
        config.application_name("wasmhook");
    }
    Ok(config)
}

/// What [`describe_config`] says of a URL, without connecting; never any of its text when it
/// does not parse (it might hold a password).
pub(in crate::store) fn describe_url(url: &str) -> String {
    match parse_url(url) {
        Ok(config) => describe_config(&config),
        Err(_) => "postgres (an unreadable URL)".into(),
    }
}

/// `postgres host:port/dbname` — never the user's password.
pub(super) fn describe_config(config: &Config) -> String {
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
    use super::*;

    #[test]
    fn the_description_has_no_password_and_require_is_refused() {
        let config: Config = "postgres://app:secret@db.internal:6543/hooks".parse().expect("a URL");
        assert_eq!(describe_config(&config), "postgres db.internal:6543/hooks");
        let Err(StoreError::Unavailable(message)) =
            parse_url("postgres://app:secret@db/hooks?sslmode=require")
        else {
            panic!("sslmode=require is refused");
        };
        assert!(message.contains("sslmode=require") && !message.contains("secret"), "{message}");
        parse_url("postgres://app@db/hooks?sslmode=prefer").expect("prefer connects without TLS");
    }
}
