//! The REST API: one file per resource, one error shape, and an OpenAPI document that says
//! exactly what they accept ([`openapi`]).

mod auth;
mod connector_versions;
mod connectors;
mod deliveries;
mod error;
mod events;
mod json;
pub(crate) mod openapi;
mod sources;
mod stats;
mod tokens;
mod webhooks;
mod zapier;

use axum::Json;
use axum::extract::DefaultBodyLimit;
use axum::extract::State;
use axum::routing::{delete, get, post};
use axum::{Router, http::StatusCode};
use serde_json::{Value, json};

pub use self::error::ApiError;
pub use self::events::IngestResult;

use crate::server::AppState;

/// The OpenAPI document of the routes below, as this server accepts them.
pub fn openapi(state: &AppState) -> Value {
    openapi::document(state)
}

/// Every route of the server.
pub fn router(state: AppState) -> Router {
    let limits = &state.config.limits;
    let v1 = Router::new()
        .route("/event-types", get(events::event_types))
        .route("/events", post(events::ingest).layer(DefaultBodyLimit::max(limits.event_bytes)))
        .route("/events/batch", post(events::ingest_batch).layer(DefaultBodyLimit::max(limits.batch_bytes)))
        .route("/webhooks", post(webhooks::create).get(webhooks::list))
        .route("/webhooks/{id}", get(webhooks::read).patch(webhooks::update).delete(webhooks::delete))
        .route("/webhooks/{id}/rotate-secret", post(webhooks::rotate_secret))
        .route("/webhooks/{id}/deliveries", get(deliveries::log))
        .route("/webhooks/{id}/stats", get(stats::stats))
        .route("/webhooks/{id}/recover", post(deliveries::recover))
        .route("/webhooks/{id}/test", post(deliveries::test))
        .route("/deliveries/{id}/retry", post(deliveries::retry))
        .route("/deliveries/{id}/messages/{message_id}", get(deliveries::message))
        .route("/connectors", get(connectors::list))
        .route(
            "/connectors/{name}",
            axum::routing::put(connectors::upload)
                .delete(connectors::remove)
                .layer(DefaultBodyLimit::max(limits.plugin_bytes)),
        )
        .route(
            "/connectors/{name}/preview",
            post(connectors::preview).layer(DefaultBodyLimit::max(limits.event_bytes)),
        )
        .route("/connectors/{name}/versions", get(connector_versions::list))
        .route("/connectors/{name}/promote", post(connector_versions::promote))
        .route("/connectors/{name}/rollback", post(connector_versions::roll_back))
        .route(
            "/connectors/{name}/shadow",
            get(connector_versions::shadow_report)
                .post(connector_versions::start_shadow)
                .delete(connector_versions::stop_shadow),
        )
        .route("/sources", get(sources::list))
        .route("/sources/{name}/dead-letters", get(sources::dead_letters))
        .route("/tokens", post(tokens::create).get(tokens::list))
        .route("/tokens/{id}", delete(tokens::revoke))
        .route("/me", get(tokens::me))
        .layer(DefaultBodyLimit::max(64 << 10));
    Router::new()
        .nest("/v1", v1)
        .route("/hooks/zapier", post(zapier::subscribe).layer(DefaultBodyLimit::max(64 << 10)))
        .route("/hooks/zapier/{id}", delete(zapier::unsubscribe))
        .route("/", get(crate::web::index))
        .route("/app/{*path}", get(crate::web::asset))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(|State(state): State<AppState>| async move { Json(openapi(&state)) }))
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route; see /openapi.json")
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method",
            )
        })
        .with_state(state)
}

async fn healthz(State(state): State<AppState>) -> Json<Value> {
    let connectors: Vec<String> = state.connectors.list().into_iter().map(|(name, _)| name).collect();
    Json(json!({"status": "ok", "connectors": connectors, "queueDepth": state.store.queue_depth()}))
}

async fn metrics(State(state): State<AppState>) -> ([(axum::http::HeaderName, &'static str); 1], String) {
    let metrics = &state.metrics;
    metrics.queue_depth.set(i64::try_from(state.store.queue_depth()).unwrap_or(i64::MAX));
    let disabled = state.webhooks.index().disabled();
    metrics.disabled_webhooks.set(i64::try_from(disabled).unwrap_or(i64::MAX));
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], metrics.render())
}
