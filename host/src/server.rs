//! `wasmhook serve`: storage, plugin runtime and built-in connectors behind an HTTP server.

use std::future::Future;
use std::path::PathBuf;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::connectors::Connectors;
use crate::runtime::{PluginError, Runtime, RuntimeConfig, RuntimeError};

/// What `serve` needs to start.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Holds the database (and, later, generated keys and tokens).
    pub data_dir: PathBuf,
    pub runtime: RuntimeConfig,
}

/// Why the server could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot open the database in {path}: {source}")]
    Storage { path: PathBuf, source: sled::Error },
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("a built-in connector failed to load: {0}")]
    Builtin(PluginError),
    #[error("the HTTP server failed: {0}")]
    Http(#[from] std::io::Error),
}

/// Everything a request handler may use. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub db: sled::Db,
    pub runtime: Runtime,
    pub connectors: Connectors,
}

/// The HTTP routes.
pub fn app(state: AppState) -> Router {
    Router::new().route("/healthz", get(healthz)).with_state(state)
}

async fn healthz(State(state): State<AppState>) -> Json<Value> {
    let connectors: Vec<String> = state.connectors.list().into_iter().map(|(name, _)| name).collect();
    Json(json!({"status": "ok", "connectors": connectors}))
}

/// Runs the server on `listener` until `shutdown` completes, then flushes storage.
pub async fn serve(
    config: ServeConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let db_path = config.data_dir.join("db");
    let db = sled::open(&db_path).map_err(|source| ServeError::Storage { path: db_path.clone(), source })?;
    let runtime = Runtime::new(config.runtime)?;
    let connectors = Connectors::with_builtins(&runtime).await.map_err(ServeError::Builtin)?;
    tracing::info!(
        address = %listener.local_addr()?,
        data_dir = %config.data_dir.display(),
        connectors = connectors.list().len(),
        "wasmhook is serving"
    );
    let state = AppState { db: db.clone(), runtime, connectors };
    axum::serve(listener, app(state)).with_graceful_shutdown(shutdown).await?;
    db.flush_async().await.map_err(|source| ServeError::Storage { path: db_path, source })?;
    tracing::info!("stopped; storage flushed");
    Ok(())
}
