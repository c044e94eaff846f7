//! The delivery log and what can be done with it: read it, retry one delivery, recover a
//! webhook's failed and paused deliveries, send a test event.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

use super::error::ApiError;
use super::json::ApiJson;
use super::webhooks::owned;
use crate::access::Caller;
use crate::connector_config::Scrubber;
use crate::domain::delivery::{Attempt, Delivery, DeliveryStatus, Message};
use crate::server::AppState;
use crate::store::{DeliveryQuery, now_ms};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    /// Only deliveries in this state.
    #[param(value_type = DeliveryStatus, required = false)]
    status: Option<DeliveryStatus>,
    /// Only deliveries created at or after this time (RFC 3339).
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[param(value_type = String, format = DateTime, required = false)]
    since: Option<OffsetDateTime>,
    /// Page size, 1–200 (default 50).
    #[param(value_type = usize, required = false, minimum = 1, maximum = 200)]
    limit: Option<usize>,
    /// `nextCursor` of the previous page.
    #[param(value_type = String, required = false)]
    cursor: Option<String>,
}

/// A delivery with every attempt of its messages. In a page, a message body longer than
/// [`LISTED_BODY_BYTES`] is cut there (`bodyTruncated`, `bodyBytes` say so); the whole
/// message is at `GET /v1/deliveries/{id}/messages/{messageId}`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoggedDelivery {
    #[serde(flatten)]
    delivery: Delivery,
    attempts: Vec<Attempt>,
    /// Ids of the messages whose body is cut short here, with their whole size in bytes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<Object>)]
    truncated_bodies: Vec<TruncatedBody>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct TruncatedBody {
    message_id: String,
    body_bytes: usize,
}

/// Bytes of each message body a delivery-log page shows.
pub const LISTED_BODY_BYTES: usize = 4 << 10;

/// A page stops growing past this many bytes (it always holds at least one delivery).
const PAGE_BYTES: usize = 2 << 20;

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryPage {
    data: Vec<LoggedDelivery>,
    next_cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", params(("id" = String, Path, description = "the webhook's id (`wh_…`)"), LogQuery), tag = "deliveries",
    responses((status = 200, body = DeliveryPage), (status = 400, description = "invalid query"),
        (status = 403, description = "not a user or operator token"),
        (status = 404, description = "no such webhook (or another user's)")))]
pub async fn log(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    query: Result<Query<LogQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<DeliveryPage>, ApiError> {
    let webhook = owned(&state, &caller, &id).await?;
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let limit = query.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::bad_request("limit must be between 1 and 200"));
    }
    let cursor = query.cursor.as_deref().filter(|c| !c.is_empty());
    let statuses: Vec<DeliveryStatus> = query.status.into_iter().collect();
    let wanted = DeliveryQuery { before: cursor, statuses: &statuses, since: query.since, limit: limit + 1 };
    let mut page = state.store.deliveries_of(&id, &wanted).await?;
    let next_cursor = (page.len() > limit).then(|| {
        page.truncate(limit);
        page[limit - 1].id.clone()
    });
    let scrubber = scrubber(&state, &webhook);
    let (mut data, mut bytes) = (Vec::new(), 0);
    let mut next_cursor = next_cursor;
    let ids: Vec<String> = page.iter().map(|d| d.id.clone()).collect();
    let attempts = state.store.attempts_of(&ids).await?;
    for (mut delivery, mut attempts) in page.into_iter().zip(attempts) {
        if bytes > PAGE_BYTES {
            // The rest comes with the next page.
            next_cursor = data.last().map(|d: &LoggedDelivery| d.delivery.id.clone());
            break;
        }
        delivery.scrub(&scrubber);
        attempts.iter_mut().for_each(|a| a.scrub(&scrubber));
        let truncated_bodies = truncate_bodies(&mut delivery);
        let logged = LoggedDelivery { attempts, delivery, truncated_bodies };
        bytes += serde_json::to_vec(&logged).map_or(0, |v| v.len());
        data.push(logged);
    }
    Ok(Json(DeliveryPage { data, next_cursor }))
}

/// Cuts message bodies to [`LISTED_BODY_BYTES`] (at a character boundary), saying which.
fn truncate_bodies(delivery: &mut Delivery) -> Vec<TruncatedBody> {
    let mut truncated = Vec::new();
    for message in &mut delivery.messages {
        let body = &mut message.request.body;
        if body.len() > LISTED_BODY_BYTES {
            truncated.push(TruncatedBody { message_id: message.id.clone(), body_bytes: body.len() });
            body.truncate(body.floor_char_boundary(LISTED_BODY_BYTES));
        }
    }
    truncated
}

#[utoipa::path(get, path = "/v1/deliveries/{id}/messages/{message_id}", tag = "deliveries",
    params(("id" = String, Path, description = "the delivery (`dlv_…`)"), ("message_id" = String, Path, description = "the message (`webhook-id`)")),
    responses((status = 200, body = Message), (status = 403, description = "not a user or operator token"),
        (status = 404, description = "no such delivery (or another user's) or message")))]
pub async fn message(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, message_id)): Path<(String, String)>,
) -> Result<Json<Message>, ApiError> {
    let delivery = state.store.delivery(&id).await?.ok_or_else(|| ApiError::not_found("delivery"))?;
    let webhook =
        owned(&state, &caller, &delivery.webhook_id).await.map_err(|_| ApiError::not_found("delivery"))?;
    let mut delivery = delivery;
    delivery.scrub(&scrubber(&state, &webhook));
    let message = delivery
        .messages
        .into_iter()
        .find(|m| m.id == message_id)
        .ok_or_else(|| ApiError::not_found("message in this delivery"))?;
    Ok(Json(message))
}

#[utoipa::path(post, path = "/v1/deliveries/{id}/retry", tag = "deliveries",
    params(("id" = String, Path, description = "the delivery (`dlv_…`)")),
    responses((status = 202, body = Delivery), (status = 403, description = "not a user or operator token"),
        (status = 404, description = "no such delivery (or another user's)"),
        (status = 409, description = "already queued, or the webhook is disabled"),
        (status = 503, description = "the queue or storage cannot take more; see Retry-After")))]
pub async fn retry(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Delivery>), ApiError> {
    let delivery = state.store.delivery(&id).await?.ok_or_else(|| ApiError::not_found("delivery"))?;
    let webhook =
        owned(&state, &caller, &delivery.webhook_id).await.map_err(|_| ApiError::not_found("delivery"))?;
    if !webhook.enabled {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "webhook_disabled",
            "the webhook is disabled: enable it (PATCH enabled: true) before retrying",
        ));
    }
    state.check_queue_room(1)?;
    let Some(mut shown) = state.deliveries.retry(delivery).await? else {
        return Err(ApiError::new(StatusCode::CONFLICT, "already_queued", "this delivery is already queued"));
    };
    shown.scrub(&scrubber(&state, &webhook));
    Ok((StatusCode::ACCEPTED, Json(shown)))
}

/// What hides `webhook`'s write-only connector config from its delivery log.
pub(super) fn scrubber(state: &AppState, webhook: &crate::domain::webhook::Webhook) -> Scrubber {
    let config = webhook.connector_config(&state.secrets);
    match state.connectors.get(&webhook.connector.name) {
        Some(plugin) => plugin.schema().scrubber(&config),
        // Its connector is gone, and with it the word on what is secret: hide every value.
        None => Scrubber::every_value(&config),
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Recover {
    /// Re-queue failed and paused deliveries created at or after this time (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    since: OffsetDateTime,
}

/// How many deliveries a recover re-queued.
#[derive(Debug, Serialize, ToSchema)]
pub struct Recovered {
    requeued: usize,
}

#[utoipa::path(post, path = "/v1/webhooks/{id}/recover", request_body = Recover, tag = "deliveries", params(("id" = String, Path, description = "the webhook's id (`wh_…`)")),
    responses((status = 202, body = Recovered), (status = 400, description = "invalid request"),
        (status = 403, description = "not a user or operator token"),
        (status = 404, description = "no such webhook (or another user's)"),
        (status = 409, description = "the webhook is disabled"),
        (status = 413, description = "body over 64 KiB"), (status = 415, description = "not JSON"),
        (status = 503, description = "the queue or storage cannot take more; see Retry-After")))]
pub async fn recover(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Recover>,
) -> Result<(StatusCode, Json<Recovered>), ApiError> {
    let webhook = owned(&state, &caller, &id).await?;
    if !webhook.enabled {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "webhook_disabled",
            "enable the webhook before recovering its deliveries",
        ));
    }
    let stuck = state.deliveries.stuck(&id, body.since).await?;
    // All or nothing against the queue's bound, like ingest.
    state.check_queue_room(stuck.len() as u64)?;
    let requeued = state.deliveries.recover(stuck).await?;
    Ok((StatusCode::ACCEPTED, Json(Recovered { requeued })))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Queued {
    event_id: String,
    delivery_id: String,
}

#[utoipa::path(post, path = "/v1/webhooks/{id}/test", tag = "deliveries", params(("id" = String, Path, description = "the webhook's id (`wh_…`)")),
    responses((status = 202, body = Queued), (status = 403, description = "not a user or operator token"),
        (status = 404, description = "no such webhook (or another user's)"),
        (status = 503, description = "the queue or storage cannot take more; see Retry-After")))]
pub async fn test(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Queued>), ApiError> {
    let webhook = owned(&state, &caller, &id).await?;
    let event_type = webhook.metadata.events.first().map_or("TODO_CREATED", String::as_str);
    let sample = json!({"id": "todo_sample", "title": "A test event from wasmhook", "done": false});
    let queued = send_direct(&state, &webhook, event_type, Some(sample)).await?;
    Ok((StatusCode::ACCEPTED, Json(queued)))
}

/// Queues an event for one webhook only, bypassing matching: test events and the health
/// check sent when a webhook is re-enabled.
pub(super) async fn send_direct(
    state: &AppState,
    webhook: &crate::domain::webhook::Webhook,
    event_type: &str,
    current_value: Option<serde_json::Value>,
) -> Result<Queued, ApiError> {
    let now = OffsetDateTime::now_utc();
    let event = crate::domain::event::Event {
        id: crate::domain::event::new_event_id(),
        event: event_type.to_owned(),
        company_id: "wasmhook".into(),
        project_id: webhook.metadata.project_ids.first().cloned().unwrap_or_else(|| "wasmhook".into()),
        user_id: Some(webhook.created_by_id.clone()),
        current_value,
        previous_value: None,
        occurred_at: now,
    };
    state.check_queue_room(1)?;
    let delivery = Delivery::new(&event, &webhook.id, webhook.enabled, now);
    let queued = Queued { event_id: event.id.clone(), delivery_id: delivery.id.clone() };
    let unordered = if webhook.ordered { Vec::new() } else { vec![webhook.id.clone()] };
    let event = std::sync::Arc::new(event);
    let accept = crate::store::Accept { event, deliveries: vec![delivery], response: json!(null), unordered };
    // A millisecond early: queued ahead of anything recovered right after it.
    let due = now_ms().saturating_sub(1);
    state.store.accept(std::slice::from_ref(&accept), None, due).await?;
    Ok(queued)
}
