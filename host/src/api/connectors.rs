//! `/v1/connectors`: the installed connectors; operators upload, replace and remove them at
//! runtime; anyone may preview what one would send for an event.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::auth::require;
use super::error::ApiError;
use super::json::ApiJson;
use super::openapi::{ConnectorName, WasmComponent};
use crate::access::{Caller, Scope};
use crate::builtins;
use crate::domain::connector_version::ConnectorVersion;
use crate::domain::event::IncomingEvent;
use crate::domain::policy::DeliveryPolicy;
use crate::runtime::{LogLine, Plugin, Request};
use crate::server::AppState;
use crate::service::connectors::ConnectorError;

/// An installed connector.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectorView {
    name: String,
    version: String,
    description: String,
    #[schema(value_type = Object)]
    config_schema: Value,
    /// Compiled into the binary (and not replaced by an upload).
    builtin: bool,
    /// SHA-256 of the component.
    hash: String,
    /// The contract version it implements: `0.1` or `0.2`.
    contract: String,
    /// Whether it judges receivers' answers itself (`on-response`, contract 0.2).
    on_response: bool,
    /// What its receivers want (contract 0.2); a webhook's own settings may only tighten it.
    #[serde(skip_serializing_if = "Option::is_none")]
    policy: Option<DeliveryPolicy>,
    /// The live version's number (`GET /v1/connectors/{name}/versions`; 0: the built-in).
    live_version: u32,
    /// In the answer to an upload: the version it was kept as.
    #[serde(skip_serializing_if = "Option::is_none")]
    uploaded: Option<ConnectorVersion>,
}

fn view(state: &AppState, name: &str, plugin: &Plugin) -> ConnectorView {
    let info = plugin.info();
    let builtin = builtins::component(name)
        .is_some_and(|bytes| crate::runtime::ContentHash::of(bytes) == plugin.hash());
    ConnectorView {
        name: name.to_owned(),
        version: info.version.clone(),
        description: info.description.clone(),
        config_schema: info.config_schema.clone(),
        builtin,
        hash: plugin.hash().to_string(),
        contract: info.contract.clone(),
        on_response: info.on_response,
        policy: info.policy.clone(),
        live_version: state.connectors.live_version(name).unwrap_or_default(),
        uploaded: None,
    }
}

#[utoipa::path(get, path = "/v1/connectors", tag = "connectors", responses((status = 200, body = Vec<ConnectorView>)))]
pub async fn list(State(state): State<AppState>, _caller: Caller) -> Json<Vec<ConnectorView>> {
    Json(state.connectors.list().iter().map(|(name, plugin)| view(&state, name, plugin)).collect())
}

#[utoipa::path(put, path = "/v1/connectors/{name}", tag = "connectors", params(("name" = ConnectorName, Path)),
    request_body(content = WasmComponent, content_type = "application/wasm",
        description = "A WebAssembly component implementing `wasmhook:plugin/connector@0.2.0` (or 0.1.0; a \
            `wasm32-wasip2` build of a plugin), at most 50 MiB by default. The bytes are checked by loading them: anything \
            else is a 400."),
    params(("name" = ConnectorName, Path), UploadQuery),
    responses((status = 200, description = "kept as the name's next version (live unless `?live=false`); \
            the view describes the uploaded component", body = ConnectorView),
        (status = 400, description = "an invalid name or query, or not a valid connector component; nothing stored"),
        (status = 403, description = "operators only"), (status = 413, description = "over the plugin size bound"),
        (status = 503, description = "storage cannot take more; see Retry-After")))]
pub async fn upload(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    query: Result<Query<UploadQuery>, axum::extract::rejection::QueryRejection>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<ConnectorView>, ApiError> {
    require(&caller, &[], "loading connectors")?;
    check_name(&name)?;
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let body = body.map_err(|e| ApiError::new(e.status(), "body_too_large", e.body_text()))?;
    let live = query.live.unwrap_or(true);
    let (plugin, uploaded) = state.connector_service.upload(&name, &body, live).await?;
    tracing::info!(connector = %name, version = uploaded.version, live, hash = %plugin.hash(), "connector uploaded");
    Ok(Json(ConnectorView { uploaded: Some(uploaded), ..view(&state, &name, &plugin) }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UploadQuery {
    /// `false` keeps it as a version without making it live (to shadow it first, say).
    live: Option<bool>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RemoveQuery {
    /// Remove it even though webhooks use it (their deliveries then fail as plugin errors).
    #[serde(default)]
    force: bool,
}

#[utoipa::path(delete, path = "/v1/connectors/{name}", params(("name" = ConnectorName, Path), RemoveQuery), tag = "connectors",
    responses((status = 204, description = "removed (a built-in it replaced is back)"), (status = 400, description = "invalid query"),
        (status = 403, description = "operators only"),
        (status = 404, description = "no uploaded connector of that name"),
        (status = 409, description = "webhooks use it"),
        (status = 503, description = "storage cannot take more; see Retry-After")))]
pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    query: Result<Query<RemoveQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<StatusCode, ApiError> {
    require(&caller, &[], "removing connectors")?;
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let builtin = builtins::component(&name);
    let uploaded = state.store.connectors().await?.into_iter().any(|(n, _)| n == name);
    if !uploaded {
        let why = if builtin.is_some() {
            "built-in connectors cannot be removed"
        } else {
            "no connector with that name"
        };
        return Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", why));
    }
    let users = state.store.webhooks().await?.into_iter().filter(|w| w.connector.name == name).count();
    if users > 0 && builtin.is_none() && !query.force {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "in_use",
            format!(
                "{users} webhook(s) use connector {name:?}; change them first, or remove it with ?force=true"
            ),
        ));
    }
    state.connector_service.remove(&name).await.map_err(|e| match e {
        // Only the built-in coming back is loaded: a failure there is the host's.
        ConnectorError::Invalid(e) => {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
        }
        other => other.into(),
    })?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Preview {
    /// An event as sent to `POST /v1/events` (any company).
    #[schema(value_type = IncomingEvent)]
    event: Value,
    /// The connector config to try (default `{}`). It is not checked against the connector's
    /// schema: what the plugin makes of it is the point of a preview.
    #[schema(value_type = Option<Object>)]
    config: Option<Value>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PreviewResult {
    /// What would be sent (absent when the plugin failed).
    #[schema(value_type = Option<Vec<Object>>)]
    requests: Option<Vec<Request>>,
    /// Why the plugin failed: `{code, message}`.
    #[schema(value_type = Option<Object>)]
    error: Option<Value>,
    #[schema(value_type = Vec<Object>)]
    log: Vec<LogLine>,
}

#[utoipa::path(post, path = "/v1/connectors/{name}/preview", request_body = Preview, tag = "connectors", params(("name" = ConnectorName, Path)),
    responses((status = 200, description = "what the plugin made of the event, or why it failed", body = PreviewResult),
        (status = 400, description = "invalid event or config"),
        (status = 403, description = "not a user or operator token"),
        (status = 404, description = "no such connector"),
        (status = 413, description = "over the event size bound"), (status = 415, description = "not JSON"),
        (status = 429, description = "too many previews at once; see Retry-After")))]
pub async fn preview(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<Preview>,
) -> Result<Json<PreviewResult>, ApiError> {
    require(&caller, &[Scope::User], "previewing connectors")?;
    let plugin = state.connectors.get(&name).ok_or_else(|| ApiError::not_found("connector"))?;
    let incoming: IncomingEvent =
        super::json::from_value(body.event).map_err(|e| ApiError::bad_request(format!("event.{e}")))?;
    state.ingest.check(&incoming).map_err(|e| ApiError::bad_request(format!("event.{e}")))?;
    let config = body.config.unwrap_or_else(|| Value::Object(Default::default()));
    if !config.is_object() {
        return Err(ApiError::bad_request("config: must be a JSON object"));
    }
    // The caller owns the sample webhook: its instances never serve anyone else.
    let (_, invocation) =
        crate::tryout::run_on_sample(&state.runtime, &plugin, incoming, &config, Some(&caller.user_id)).await;
    let (requests, error) = match invocation.result {
        Err(crate::runtime::PluginError::HostBusy(why)) => {
            return Err(ApiError::retry_later(StatusCode::TOO_MANY_REQUESTS, "too_many_previews", why, 1));
        }
        Ok(requests) => (Some(requests), None),
        Err(e) => (None, Some(serde_json::json!({"code": e.code(), "message": e.to_string()}))),
    };
    Ok(Json(PreviewResult { requests, error, log: invocation.log }))
}

fn check_name(name: &str) -> Result<(), ApiError> {
    if crate::connectors::valid_name(name) {
        Ok(())
    } else {
        Err(ApiError::bad_request("connector names are 1 to 64 characters: a-z, 0-9, - and _"))
    }
}
