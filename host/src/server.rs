//! `wasmhook serve`: storage, the match index, the plugin runtime and the connectors behind
//! the HTTP API, until a shutdown signal.

use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use axum::http::StatusCode;
use tokio::net::TcpListener;

use crate::access::{Caller, new_token_text, token_hash};
use crate::api::ApiError;
use crate::config::Config;
use crate::connectors::Connectors;
use crate::domain::catalog::Catalog;
use crate::domain::webhook::Webhook;
use crate::matching::MatchIndex;
use crate::ratelimit::RateLimiter;
use crate::runtime::{PluginError, Runtime, RuntimeConfig, RuntimeError};
use crate::secret::{KeyError, SecretBox};
use crate::store::{Store, StoreError};

/// Why the server could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot open the database {location}: {source}")]
    Storage { location: String, source: StoreError },
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("a built-in connector failed to load: {0}")]
    Builtin(PluginError),
    #[error(transparent)]
    SecretKey(#[from] KeyError),
    #[error(
        "the secret key {path} is missing, but the database holds {sealed} sealed webhook secrets \
         that only it can open; restore {path} from a backup (or give the original as secret-key) \
         — a new key would make every delivery fail"
    )]
    SecretKeyMissing { path: PathBuf, sealed: usize },
    #[error(
        "the configured secret key cannot open the sealed secret of webhook {webhook}: it is not the \
         key the database was written with; restore the original key"
    )]
    SecretKeyWrong { webhook: String },
    #[error("cannot set up the operator token in {path}: {source}")]
    OperatorToken { path: PathBuf, source: std::io::Error },
    #[error("the operator token file {path} is not usable: {reason}")]
    OperatorTokenFile { path: PathBuf, reason: String },
    #[error("the HTTP server failed: {0}")]
    Http(#[from] std::io::Error),
}

/// Everything a request handler may use, shared: a clone (one per request) is one reference
/// count, not one for each of the handles inside.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

/// What an [`AppState`] shares.
pub struct Shared {
    pub config: Arc<Config>,
    pub store: Store,
    pub runtime: Runtime,
    pub connectors: Connectors,
    pub catalog: Arc<Catalog>,
    /// Webhook transitions, and the match index they keep current.
    pub webhooks: crate::service::Webhooks,
    pub deliveries: crate::service::Deliveries,
    /// Taking events in.
    pub ingest: crate::service::Ingest,
    /// The broker sources this host consumes (none until [`AppState::start_sources`]).
    pub sources: crate::source::Sources,
    /// Connector uploads and removals, and the installed connectors they keep current.
    pub connector_service: crate::service::ConnectorService,
    pub secrets: SecretBox,
    /// Hashes of the operator tokens.
    pub operator_hashes: Arc<Vec<[u8; 32]>>,
    pub metrics: crate::metrics::Metrics,
    /// Where other hosts' changes are to be followed from (see `service::sync`).
    changes: u64,
    ingest_limiter: Option<Arc<RateLimiter>>,
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    /// Opens storage, rebuilds the match index and loads the connectors.
    pub async fn open(config: Config) -> Result<Self, ServeError> {
        crate::private_file::private_dir(&config.data_dir)?;
        let location = config.storage();
        let storage = |source| ServeError::Storage { location: location.to_string(), source };
        let operator_hashes = operator_hashes(&config)?;
        let store = Store::open(&location, config.migrate).await.map_err(storage)?;
        store.share_webhooks(config.delivery.share_webhooks);
        let storage = |source| ServeError::Storage { location: store.describe(), source };
        let changes = store.changes_cursor().await.map_err(storage)?;
        // What storage created under the default umask: nobody else reads the data directory.
        crate::private_file::restrict_tree(&config.data_dir)?;
        let webhooks = store.webhooks().await.map_err(storage)?;
        let secrets = secret_box(&config, &webhooks)?;
        let runtime = Runtime::new(RuntimeConfig {
            limits: config.plugin_limits.clone(),
            cache_dir: Some(config.cache_dir.clone()),
            ..RuntimeConfig::default()
        })?;
        let connectors = Connectors::with_builtins(&runtime).await.map_err(ServeError::Builtin)?;
        // Uploaded connectors (overriding built-ins of the same name); one that no longer
        // loads is reported and skipped rather than keeping the server down.
        for (name, bytes) in store.connectors().await.map_err(storage)? {
            match runtime.load(bytes.into(), crate::runtime::Policy::Pooled).await {
                Ok(plugin) => {
                    // An upload from before versions were kept is version 1.
                    let head = store.connector_head(&name).await.map_err(storage)?;
                    connectors.insert(&name, head.map_or(1, |head| head.live), plugin);
                }
                Err(error) => tracing::error!(connector = %name, "stored connector does not load: {error}"),
            }
        }
        let webhooks =
            seal_plain_write_only(&store, &connectors, &secrets, webhooks).await.map_err(storage)?;
        let mut index = MatchIndex::default();
        for user in store.users().await.map_err(storage)? {
            index.set_companies(&user.id, user.companies);
        }
        for webhook in &webhooks {
            index.upsert(webhook);
        }
        let catalog = Arc::new(Catalog::with_extra(&config.event_types));
        let webhooks = crate::service::Webhooks::new(store.clone(), Arc::new(RwLock::new(index)));
        let metrics = crate::metrics::Metrics::default();
        let connector_service = crate::service::ConnectorService::new(
            store.clone(),
            runtime.clone(),
            connectors.clone(),
            webhooks.clone(),
        );
        if let Err(error) = connector_service.load_versions().await {
            tracing::error!("cannot load the connectors' versions: {error}");
        }
        Ok(AppState(Arc::new(Shared {
            ingest: crate::service::Ingest::new(
                store.clone(),
                webhooks.clone(),
                catalog.clone(),
                config.limits.queue_depth,
                metrics.clone(),
            ),
            catalog,
            sources: Default::default(),
            ingest_limiter: config.limits.ingest_per_second.map(|n| Arc::new(RateLimiter::new(n))),
            config: Arc::new(config),
            webhooks,
            deliveries: crate::service::Deliveries::new(store.clone()),
            connector_service,
            store,
            runtime,
            connectors,
            secrets,
            operator_hashes: Arc::new(operator_hashes),
            metrics,
            changes,
        })))
    }

    /// Starts consuming the configured broker sources. Called once, before the state is
    /// shared (handed to the router or cloned).
    pub fn start_sources(&mut self) {
        let shared = Arc::get_mut(&mut self.0).expect("sources start before the state is shared");
        let specs = shared.config.sources.clone();
        shared.sources = crate::source::Sources::spawn(specs, shared.ingest.clone(), shared.store.clone());
    }

    /// What the delivery engine works with; its background work runs on the calling runtime.
    pub fn engine_context(&self) -> crate::delivery::engine::Context {
        crate::delivery::engine::Context {
            config: self.config.clone(),
            store: self.store.clone(),
            runtime: self.runtime.clone(),
            connectors: self.connectors.clone(),
            secrets: self.secrets.clone(),
            webhooks: self.webhooks.clone(),
            metrics: self.metrics.clone(),
            operations: crate::service::Operations::new(self.ingest.clone(), self.webhooks.clone()),
            connector_versions: self.connector_service.clone(),
            background: tokio::runtime::Handle::current(),
        }
    }

    /// 503 with `Retry-After` when `more` deliveries would take the queue past its bound.
    pub fn check_queue_room(&self, more: u64) -> Result<(), ApiError> {
        Ok(self.ingest.check_room(more)?)
    }

    /// 429 when the caller's token is over its ingest rate.
    pub fn check_ingest_rate(&self, caller: &Caller, events: u32) -> Result<(), ApiError> {
        let Some(limiter) = &self.ingest_limiter else { return Ok(()) };
        limiter.check(&format!("{:?}/{}", caller.scope, caller.user_id), events).map_err(|wait| {
            ApiError::retry_later(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many events for this token; slow down",
                wait,
            )
        })
    }
}

/// Seals write-only connector config that an older version stored in the clear; returns
/// the webhooks as stored.
async fn seal_plain_write_only(
    store: &Store,
    connectors: &Connectors,
    secrets: &SecretBox,
    webhooks: Vec<Webhook>,
) -> Result<Vec<Webhook>, StoreError> {
    let mut stored = Vec::with_capacity(webhooks.len());
    for webhook in webhooks {
        let write_only = connectors.get(&webhook.connector.name).map(|p| p.schema().write_only().to_vec());
        let write_only = write_only.unwrap_or_default();
        if !write_only.iter().any(|name| webhook.connector.config.get(name).is_some()) {
            stored.push(webhook);
            continue;
        }
        let sealed = store.update_webhook(&webhook.id, |webhook| {
            webhook.open_config(secrets);
            webhook.seal_config(&write_only, secrets);
            Ok::<_, StoreError>(true)
        });
        stored.extend(sealed.await?);
    }
    Ok(stored)
}

/// The key that seals secrets: configured, or `<data-dir>/secret-key`, generated only for a
/// database that holds no sealed secret yet. Refuses a key that cannot open what is stored.
fn secret_box(config: &Config, webhooks: &[Webhook]) -> Result<SecretBox, ServeError> {
    let secrets = match &config.secret_key {
        Some(key) => SecretBox::from_base64(key)?,
        None => {
            let path = config.data_dir.join("secret-key");
            if !path.exists() && !webhooks.is_empty() {
                return Err(ServeError::SecretKeyMissing { path, sealed: webhooks.len() });
            }
            SecretBox::from_file(&path)?
        }
    };
    if let Some(webhook) = webhooks.iter().find(|w| secrets.open(&w.sealed_secret).is_none()) {
        return Err(ServeError::SecretKeyWrong { webhook: webhook.id.clone() });
    }
    Ok(secrets)
}

/// The configured operator tokens, or the one in `<data-dir>/operator-token`, generated
/// (mode 0600) on first start. Only the path is printed, never the token. A file that is
/// empty or that others may read is refused, not trusted.
fn operator_hashes(config: &Config) -> Result<Vec<[u8; 32]>, ServeError> {
    if !config.operator_tokens.is_empty() {
        if config.operator_tokens.iter().any(|t| t.trim().is_empty()) {
            return Err(ServeError::OperatorTokenFile {
                path: "operator-tokens (configuration)".into(),
                reason: "an operator token must not be empty".into(),
            });
        }
        return Ok(config.operator_tokens.iter().map(|t| token_hash(t.trim())).collect());
    }
    let path = config.data_dir.join("operator-token");
    let io = |source| ServeError::OperatorToken { path: path.clone(), source };
    if !path.exists() {
        crate::private_file::write(&path, new_token_text().as_bytes()).map_err(io)?;
    }
    let refuse = |reason: String| ServeError::OperatorTokenFile { path: path.clone(), reason };
    let mode = crate::private_file::mode(&path).map_err(io)?;
    if mode & 0o077 != 0 {
        return Err(refuse(format!(
            "its mode is {mode:04o}, so others may read it; `chmod 600` it (or remove it to get a new one)"
        )));
    }
    let token = std::fs::read_to_string(&path).map_err(io)?;
    if token.trim().is_empty() {
        return Err(refuse("it is empty; remove it to get a new token generated".into()));
    }
    tracing::info!(path = %path.display(), "operator token is in this file");
    Ok(vec![token_hash(token.trim())])
}

/// Prunes what is older than the retention, a few times per retention period (at least
/// every minute).
pub fn spawn_retention(store: Store, retention: std::time::Duration) -> tokio::task::JoinHandle<()> {
    let every =
        (retention / 8).clamp(std::time::Duration::from_millis(10), std::time::Duration::from_secs(60));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            let cutoff = crate::store::millis(time::OffsetDateTime::now_utc() - retention);
            match store.prune(cutoff).await {
                Ok(0) => {}
                Ok(removed) => tracing::info!(removed, "pruned records older than the retention"),
                Err(error) => tracing::error!("pruning failed: {error}"),
            }
        }
    })
}

/// Runs the server on `listener` until `shutdown` completes, then flushes storage.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let mut state = AppState::open(config).await?;
    state.start_sources();
    tracing::info!(
        address = %listener.local_addr()?,
        storage = %state.store.describe(),
        connectors = state.connectors.list().len(),
        webhooks = state.webhooks.index().len(),
        "wasmhook is serving"
    );
    let store = state.store.clone();
    let grace = state.config.delivery.attempt_timeout + std::time::Duration::from_secs(1);
    // Deliveries (plugins included) run on threads of their own: whatever a plugin does,
    // ingest and the API keep theirs. Half the cores: each delivery is a few short steps with
    // waits between them, and on a VM a thread switch costs as much as a step; a second
    // delivery thread on 2 cores only added switches (server CPU per event 0.24 → 0.21 ms).
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    let delivery_threads = crate::threads::Threads::start("wasmhook-delivery", (cores / 2).max(1), None)?;
    let engine_context = state.engine_context();
    let engine = delivery_threads
        .handle()
        .spawn(async move { crate::delivery::engine::spawn(engine_context) })
        .await
        .map_err(|e| ServeError::Http(std::io::Error::other(e)))?;
    spawn_retention(state.store.clone(), state.config.retention);
    let follow = tokio::spawn(crate::service::sync::follow(
        state.store.clone(),
        state.webhooks.clone(),
        state.connector_service.clone(),
        state.changes,
    ));
    // First stop taking events, then let attempts in flight finish, then flush.
    let http = state.config.http.clone();
    crate::http_server::run(listener, crate::api::router(state), http, shutdown).await?;
    engine.shutdown(grace).await;
    follow.abort();
    store.close().await.map_err(|source| ServeError::Storage { location: store.describe(), source })?;
    tracing::info!("stopped; storage flushed");
    Ok(())
}
