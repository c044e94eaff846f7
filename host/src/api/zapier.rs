//! Zapier REST hooks: Zapier subscribes a Zap's trigger to wasmhook and unsubscribes it.
//!
//! `POST /hooks/zapier {targetUrl, events, projectIds?}` makes a webhook owned by the token's
//! user, delivering through the `zapier` connector to the Zap's `targetUrl`, and answers its
//! id, which Zapier keeps for `DELETE /hooks/zapier/{id}`. When Zapier answers a delivery with
//! `410 Gone` (the Zap was turned off or deleted) the delivery engine deletes such a webhook.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::ApiError;
use super::json::ApiJson;
use super::webhooks::{CreateWebhook, insert, owned, remove};
use crate::access::Caller;
use crate::domain::webhook::{ConnectorRef, Origin, Subscription};
use crate::server::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Subscribe {
    /// Where Zapier wants the events (the Zap's REST-hook URL).
    #[schema(value_type = crate::api::openapi::DestinationUrl)]
    target_url: String,
    /// Event types; empty means every event.
    #[schema(value_type = Vec<crate::api::openapi::EventName>)]
    events: Vec<String>,
    /// Project ids; empty (the default) means every project of the user's companies.
    #[serde(default)]
    #[schema(value_type = Vec<crate::api::openapi::Id>)]
    project_ids: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Subscribed {
    /// The webhook's id: pass it to `DELETE /hooks/zapier/{id}`.
    id: String,
}

#[utoipa::path(post, path = "/hooks/zapier", request_body = Subscribe, tag = "zapier",
    responses((status = 201, body = Subscribed), (status = 400, description = "invalid subscription"),
        (status = 403, description = "not a user or operator token"),
        (status = 413, description = "body over 64 KiB"), (status = 415, description = "not JSON"),
        (status = 503, description = "storage cannot take more; see Retry-After")))]
pub async fn subscribe(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<Subscribe>,
) -> Result<(StatusCode, Json<Subscribed>), ApiError> {
    let name = match body.events.as_slice() {
        [] => "Zapier: every event".to_owned(),
        events => format!("Zapier: {}", events.join(", ")),
    };
    let request = CreateWebhook {
        name: name.chars().take(200).collect(),
        url: body.target_url,
        secret: None,
        enabled: Some(true),
        metadata: Subscription { events: body.events, project_ids: body.project_ids },
        filter: None,
        connector: Some(ConnectorRef { name: "zapier".into(), config: serde_json::json!({}), version: None }),
        rate_limit: None,
        ordered: None,
    };
    let (webhook, _secret) = insert(&state, &caller, request, Origin::Zapier).await.map_err(|e| {
        // Name the fields as this caller sent them.
        e.rename_field("url", "targetUrl")
            .rename_field("metadata.events", "events")
            .rename_field("metadata.projectIds", "projectIds")
    })?;
    Ok((StatusCode::CREATED, Json(Subscribed { id: webhook.id })))
}

#[utoipa::path(delete, path = "/hooks/zapier/{id}", tag = "zapier",
    params(("id" = String, Path, description = "the id `POST /hooks/zapier` answered")),
    responses((status = 204, description = "unsubscribed"), (status = 403, description = "not a user or operator token"),
        (status = 404, description = "no such Zapier subscription"),
        (status = 503, description = "storage cannot take more; see Retry-After")))]
pub async fn unsubscribe(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let webhook = owned(&state, &caller, &id).await?;
    if webhook.origin != Origin::Zapier {
        return Err(ApiError::not_found("Zapier subscription"));
    }
    remove(&state, &id).await?;
    tracing::info!(webhook_id = %id, "Zapier unsubscribed");
    Ok(StatusCode::NO_CONTENT)
}
