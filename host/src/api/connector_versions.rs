//! `/v1/connectors/{name}/versions`, `…/promote`, `…/rollback`, `…/shadow`: every upload of a
//! connector kept as a version; operators make one live, roll back, and let a candidate
//! shadow the live version on real deliveries (run and compared, never sent).

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::require;
use super::error::ApiError;
use super::json::ApiJson;
use super::openapi::ConnectorName;
use crate::access::Caller;
use crate::domain::connector_version::{ConnectorHead, ConnectorVersion, ShadowRun};
use crate::server::AppState;
use crate::service::connectors::ConnectorError;

/// A connector's versions and which is in which role.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Versions {
    /// What webhooks following `latest` run (0: the built-in).
    live: u32,
    /// The versions live before, the most recent last: where a roll back goes.
    previous: Vec<u32>,
    /// The candidate shadowing the live version, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    shadow: Option<u32>,
    /// Every kept upload, oldest first.
    versions: Vec<VersionView>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VersionView {
    #[serde(flatten)]
    version: ConnectorVersion,
    /// Webhooks pinned to it.
    pinned_by: usize,
}

impl From<ConnectorError> for ApiError {
    fn from(error: ConnectorError) -> Self {
        match error {
            ConnectorError::Invalid(e) => ApiError::new(StatusCode::BAD_REQUEST, e.code(), e.to_string()),
            ConnectorError::Store(e) => e.into(),
            ConnectorError::NotFound(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", error.to_string())
            }
            ConnectorError::NoVersion { .. } => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", error.to_string())
            }
            ConnectorError::Conflict(_) => ApiError::new(StatusCode::CONFLICT, "conflict", error.to_string()),
        }
    }
}

async fn versions_view(
    state: &AppState,
    name: &str,
    head: Option<ConnectorHead>,
) -> Result<Versions, ApiError> {
    let (versions, stored_head) = state.connector_service.versions(name).await?;
    let head = head.unwrap_or(stored_head);
    let index = state.webhooks.index();
    let pinned_by = |version: u32| {
        index.webhooks().filter(|w| w.connector.name == name && w.connector.version == Some(version)).count()
    };
    let versions = versions
        .into_iter()
        .map(|version| VersionView { pinned_by: pinned_by(version.version), version })
        .collect();
    Ok(Versions { live: head.live, previous: head.previous, shadow: head.shadow, versions })
}

#[utoipa::path(get, path = "/v1/connectors/{name}/versions", tag = "connectors", params(("name" = ConnectorName, Path)),
    responses((status = 200, body = Versions), (status = 404, description = "no connector of that name")))]
pub async fn list(
    State(state): State<AppState>,
    _caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Versions>, ApiError> {
    Ok(Json(versions_view(&state, &name, None).await?))
}

/// Which version.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VersionChoice {
    /// For a promotion: absent means the candidate shadowing the live version.
    #[serde(default, deserialize_with = "super::webhooks::whole_number")]
    #[schema(value_type = Option<u64>, minimum = 0, maximum = 4_294_967_295_u64)]
    version: Option<u32>,
}

#[utoipa::path(post, path = "/v1/connectors/{name}/promote", tag = "connectors", params(("name" = ConnectorName, Path)),
    request_body = VersionChoice,
    responses((status = 200, description = "that version is live; the one before is kept for a roll back", body = Versions),
        (status = 400, description = "an invalid body"), (status = 403, description = "operators only"),
        (status = 404, description = "no connector of that name, or no such version of it"),
        (status = 409, description = "no version named and none shadowing"),
        (status = 415, description = "a body that is not `application/json`"),
        (status = 503, description = "storage cannot take more; see Retry-After")))]
pub async fn promote(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiJson(choice): ApiJson<VersionChoice>,
) -> Result<Json<Versions>, ApiError> {
    require(&caller, &[], "promoting connector versions")?;
    let head = state.connector_service.promote(&name, choice.version).await?;
    tracing::info!(connector = %name, live = head.live, "connector version promoted");
    Ok(Json(versions_view(&state, &name, Some(head)).await?))
}

#[utoipa::path(post, path = "/v1/connectors/{name}/rollback", tag = "connectors", params(("name" = ConnectorName, Path)),
    responses((status = 200, description = "the version live before is live again", body = Versions),
        (status = 403, description = "operators only"), (status = 404, description = "no connector of that name"),
        (status = 409, description = "no earlier live version"),
        (status = 503, description = "storage cannot take more; see Retry-After")))]
pub async fn roll_back(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Versions>, ApiError> {
    require(&caller, &[], "rolling connectors back")?;
    let head = state.connector_service.roll_back(&name).await?;
    tracing::info!(connector = %name, live = head.live, "connector rolled back");
    Ok(Json(versions_view(&state, &name, Some(head)).await?))
}

/// The candidate to run beside the live version.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShadowChoice {
    #[serde(deserialize_with = "super::webhooks::whole_number")]
    #[schema(value_type = u64, minimum = 0, maximum = 4_294_967_295_u64)]
    version: Option<u32>,
}

#[utoipa::path(post, path = "/v1/connectors/{name}/shadow", tag = "connectors", params(("name" = ConnectorName, Path)),
    request_body = ShadowChoice,
    responses((status = 200, description = "the version runs beside the live one on real deliveries, never sent", body = Versions),
        (status = 400, description = "an invalid body"), (status = 403, description = "operators only"),
        (status = 404, description = "no connector of that name, or no such version of it"),
        (status = 409, description = "that version is the live one"),
        (status = 415, description = "a body that is not `application/json`"),
        (status = 503, description = "storage cannot take more; see Retry-After")))]
pub async fn start_shadow(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiJson(choice): ApiJson<ShadowChoice>,
) -> Result<Json<Versions>, ApiError> {
    require(&caller, &[], "shadowing connector versions")?;
    let version =
        choice.version.ok_or_else(|| ApiError::bad_request("version: a version number is required"))?;
    let head = state.connector_service.shadow(&name, Some(version)).await?;
    Ok(Json(versions_view(&state, &name, Some(head)).await?))
}

#[utoipa::path(delete, path = "/v1/connectors/{name}/shadow", tag = "connectors", params(("name" = ConnectorName, Path)),
    responses((status = 200, description = "no version shadows the live one any more", body = Versions),
        (status = 403, description = "operators only"), (status = 404, description = "no connector of that name"),
        (status = 503, description = "storage cannot take more; see Retry-After")))]
pub async fn stop_shadow(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Versions>, ApiError> {
    require(&caller, &[], "shadowing connector versions")?;
    let head = state.connector_service.shadow(&name, None).await?;
    Ok(Json(versions_view(&state, &name, Some(head)).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ShadowQuery {
    /// Only runs older than this one (the cursor).
    #[param(value_type = String, required = false)]
    before: Option<String>,
    /// At most this many (1–100, default 50).
    #[param(value_type = usize, required = false, minimum = 1, maximum = 100)]
    limit: Option<usize>,
}

/// What shadowing candidates did beside the live version.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShadowReport {
    /// The candidate shadowing now, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    candidate: Option<u32>,
    live: u32,
    /// Of the runs on this page, how many asked for other requests than the live version.
    differing: usize,
    /// Newest first.
    runs: Vec<ShadowRun>,
    /// The cursor for the next page, when there may be one.
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
}

#[utoipa::path(get, path = "/v1/connectors/{name}/shadow", tag = "connectors", params(("name" = ConnectorName, Path), ShadowQuery),
    responses((status = 200, body = ShadowReport), (status = 400, description = "invalid query"),
        (status = 403, description = "operators only (runs name other owners' deliveries)"),
        (status = 404, description = "no connector of that name")))]
pub async fn shadow_report(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    query: Result<Query<ShadowQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<ShadowReport>, ApiError> {
    require(&caller, &[], "reading shadow runs")?;
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let limit = query.limit.unwrap_or(50);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::bad_request("limit: must be between 1 and 100"));
    }
    let (_, head) = state.connector_service.versions(&name).await?;
    let runs = state.store.shadow_runs(&name, query.before.as_deref(), limit).await?;
    let next = (runs.len() == limit).then(|| runs.last().map(|run| run.id.clone())).flatten();
    let differing = runs.iter().filter(|run| !run.same).count();
    Ok(Json(ShadowReport { candidate: head.shadow, live: head.live, differing, runs, next }))
}
