//! `/v1/sources`: operators see the broker sources this host consumes (`serve --source`), and
//! each source's dead letters — the messages it could not take as events, with the reason.

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::require;
use super::error::ApiError;
use crate::access::Caller;
use crate::domain::dead_letter::DeadLetter;
use crate::server::AppState;
use crate::source::SourceView;

#[utoipa::path(get, path = "/v1/sources", tag = "sources",
    responses((status = 200, body = Vec<SourceView>), (status = 403, description = "operators only")))]
pub async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<Vec<SourceView>>, ApiError> {
    require(&caller, &[], "listing sources")?;
    Ok(Json(state.sources.list()))
}

/// `GET /v1/sources/{name}/dead-letters`' query.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterQuery {
    /// Page size, 1–200 (default 50).
    #[param(value_type = usize, required = false, minimum = 1, maximum = 200)]
    limit: Option<usize>,
    /// `nextCursor` of the previous page.
    #[param(value_type = String, required = false)]
    cursor: Option<String>,
}

/// Dead letters, newest first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterPage {
    data: Vec<DeadLetter>,
    next_cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/sources/{name}/dead-letters", tag = "sources",
    params(("name" = String, Path, description = "the source's name"), DeadLetterQuery),
    responses((status = 200, body = DeadLetterPage), (status = 400, description = "invalid query"),
        (status = 403, description = "operators only"),
        (status = 404, description = "no source of that name on this host")))]
pub async fn dead_letters(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    query: Result<Query<DeadLetterQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<DeadLetterPage>, ApiError> {
    require(&caller, &[], "reading dead letters")?;
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    if state.sources.get(&name).is_none() {
        return Err(ApiError::not_found("source"));
    }
    let limit = query.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::bad_request("limit must be between 1 and 200"));
    }
    let cursor = query.cursor.as_deref().filter(|c| !c.is_empty());
    let mut data = state.store.dead_letters(&name, cursor, limit + 1).await?;
    let next_cursor = (data.len() > limit).then(|| {
        data.truncate(limit);
        data[limit - 1].id.clone()
    });
    Ok(Json(DeadLetterPage { data, next_cursor }))
}
