//! Ingest (`POST /v1/events`, `POST /v1/events/batch`) and the catalog (`GET /v1/event-types`).
//!
//! An event is validated, matched, and stored with its deliveries in one transaction; the
//! 202 goes out only once a group commit has made it durable. A repeated event id (per
//! company) or `Idempotency-Key` (per token) gets the first answer again, with
//! `"duplicate": true` and a 200; a key reused with another body or endpoint is a 409.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Digest as _;
use utoipa::ToSchema;

use super::auth::require;
use super::error::ApiError;
use super::json::{ApiJson, JsonBody};
use crate::access::{Caller, Scope};
use crate::domain::catalog::EventType;
use crate::domain::event::IncomingEvent;
use crate::matching::Explanation;
use crate::server::AppState;
use crate::store::{IdempotencyKey, Outcome, Stored};

pub use crate::service::ingest::IngestResult;

/// Events sent together: all are stored, or none. At most the server's batch bound (1,000
/// by default); each is checked like a single event.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    // Parsed one by one, so that an error names the event at fault (`events[3].event: …`).
    #[schema(value_type = Vec<IncomingEvent>, min_items = 1)]
    events: Vec<Value>,
}

/// `POST /v1/events`'s query.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct IngestQuery {
    /// Add `explain` to the answer: why the event matched each webhook the token may know
    /// of, or not (walks every webhook: for trying things out, not for every event).
    #[serde(default)]
    explain: bool,
}

/// What ingest answers for one event; `explain` only with `?explain=true`.
#[derive(Debug, Serialize, ToSchema)]
#[allow(dead_code)] // documents the answer's shape in the OpenAPI spec
pub struct ExplainedResult {
    #[serde(flatten)]
    result: IngestResult,
    explain: Option<Explanation>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[allow(dead_code)] // documents the batch answer's shape in the OpenAPI spec
pub struct BatchResult {
    events: Vec<IngestResult>,
}

#[utoipa::path(get, path = "/v1/event-types", tag = "events",
    responses((status = 200, description = "the events webhooks may subscribe to; for operators also the host's \
        own reports (`operatorOnly`)", body = Vec<EventType>)))]
pub async fn event_types(State(state): State<AppState>, caller: Caller) -> Json<Vec<EventType>> {
    let mut types = state.catalog.list();
    types.retain(|t| caller.is_operator() || !t.operator_only);
    Json(types)
}

#[utoipa::path(post, path = "/v1/events", tag = "events", request_body = IncomingEvent,
    params(("Idempotency-Key" = Option<super::openapi::IdempotencyKey>, Header, nullable = false,
        description = "dedupes like an event id (per token; the same key with another body is a 409)"),
        IngestQuery),
    responses((status = 202, description = "durable, with its deliveries", body = ExplainedResult),
        (status = 200, description = "a duplicate: the first answer", body = ExplainedResult),
        (status = 400, description = "invalid event or query, or a company this token may not send for"),
        (status = 403, description = "not an ingest or operator token"),
        (status = 409, description = "the Idempotency-Key was used with another body or endpoint"),
        (status = 413, description = "over the event size bound (1 MiB by default)"),
        (status = 415, description = "not `Content-Type: application/json`"),
        (status = 429, description = "over the token's ingest rate; see Retry-After"),
        (status = 503, description = "storage cannot take more; see Retry-After")))]
pub async fn ingest(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    query: Result<Query<IngestQuery>, axum::extract::rejection::QueryRejection>,
    JsonBody(body): JsonBody,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    // Parsed straight into the event: a `Value` first would build the event's tree twice.
    let event: IncomingEvent = super::json::parse(&body)?;
    require(&caller, &[Scope::Ingest], "sending events")?;
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    state.check_ingest_rate(&caller, 1)?;
    let key = idempotency_key(&caller, &headers, "POST /v1/events", || {
        serde_json::from_slice(&body).expect("the body parsed as an event")
    })?;
    let event = check_event(&state, &caller, event).map_err(ApiError::bad_request)?;
    let (accept, explanation) = state.ingest.prepare(event, query.explain.then_some(&caller.companies));
    let (status, outcome) = match state.ingest.commit(vec![accept], key.as_ref(), "http").await? {
        Stored::Accepted(outcomes) => {
            let status = if outcomes[0].duplicate { StatusCode::OK } else { StatusCode::ACCEPTED };
            (status, outcomes[0].clone())
        }
        Stored::Replay(first) => (StatusCode::OK, Outcome { duplicate: true, ..first[0].clone() }),
        Stored::KeyConflict(why) => return Err(key_conflict(why)),
    };
    let mut answer = answer(outcome);
    if let Some(explanation) = explanation {
        answer["explain"] = serde_json::to_value(explanation).expect("plain data");
    }
    Ok((status, Json(answer)))
}

#[utoipa::path(post, path = "/v1/events/batch", request_body = Batch, tag = "events",
    params(("Idempotency-Key" = Option<super::openapi::IdempotencyKey>, Header, nullable = false, description = "dedupes the whole batch")),
    responses((status = 202, description = "all durable; one answer per event, in order", body = BatchResult),
        (status = 200, description = "a replay of an Idempotency-Key: the first answer", body = BatchResult),
        (status = 400, description = "an invalid event: nothing was stored"),
        (status = 403, description = "not an ingest or operator token"),
        (status = 409, description = "the Idempotency-Key was used with another body or endpoint"),
        (status = 413, description = "over the batch size bound"),
        (status = 415, description = "not `Content-Type: application/json`"),
        (status = 429, description = "over the token's ingest rate; see Retry-After"),
        (status = 503, description = "storage cannot take more; see Retry-After")))]
pub async fn ingest_batch(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(batch): ApiJson<Batch>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    require(&caller, &[Scope::Ingest], "sending events")?;
    let max = state.config.limits.batch_events;
    if batch.events.is_empty() || batch.events.len() > max {
        return Err(ApiError::bad_request(format!(
            "a batch carries 1 to {max} events, this one {}",
            batch.events.len()
        )));
    }
    state.check_ingest_rate(&caller, batch.events.len() as u32)?;
    let key =
        idempotency_key(&caller, &headers, "POST /v1/events/batch", || Value::from(batch.events.clone()))?;
    // Validate everything before storing anything: all or nothing.
    let mut accepts = Vec::with_capacity(batch.events.len());
    for (i, body) in batch.events.into_iter().enumerate() {
        let event = super::json::from_value(body)
            .and_then(|event| check_event(&state, &caller, event))
            .map_err(|e| ApiError::bad_request(format!("events[{i}]: {e}")))?;
        accepts.push(state.ingest.prepare(event, None).0);
    }
    let (status, outcomes) = match state.ingest.commit(accepts, key.as_ref(), "http").await? {
        Stored::Accepted(outcomes) => (StatusCode::ACCEPTED, outcomes),
        Stored::Replay(first) => (StatusCode::OK, first),
        Stored::KeyConflict(why) => return Err(key_conflict(why)),
    };
    let events: Vec<Value> = outcomes.into_iter().map(answer).collect();
    Ok((status, Json(serde_json::json!({ "events": events }))))
}

/// The request's `Idempotency-Key`, scoped to the caller's token and bound to this endpoint
/// and body (its JSON value, so that spacing and the order of members do not matter).
fn idempotency_key(
    caller: &Caller,
    headers: &HeaderMap,
    endpoint: &'static str,
    body: impl FnOnce() -> Value,
) -> Result<Option<IdempotencyKey>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else { return Ok(None) };
    let text = match value.to_str() {
        Ok(key) if !key.is_empty() && key.len() <= 255 => key.to_owned(),
        _ => return Err(ApiError::bad_request("Idempotency-Key must be 1 to 255 visible ASCII characters")),
    };
    let body_hash = hex::encode(sha2::Sha256::digest(serde_json::to_vec(&body()).expect("plain data")));
    Ok(Some(IdempotencyKey { scoped: format!("{}\0{text}", caller.token_id), endpoint, body_hash }))
}

fn key_conflict(why: String) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, "idempotency_key_reused", why)
}

/// An event's answer: the first one again, marked, for a duplicate.
fn answer(outcome: Outcome) -> Value {
    let mut response = outcome.response;
    if outcome.duplicate {
        response["duplicate"] = Value::Bool(true);
    }
    response
}

/// Checks one event's type, ids, nesting and company; the message names the field.
fn check_event(state: &AppState, caller: &Caller, event: IncomingEvent) -> Result<IncomingEvent, String> {
    state.ingest.check(&event)?;
    if !caller.companies.allows(&event.company_id) {
        return Err(format!("companyId: this token may not send events for company {:?}", event.company_id));
    }
    Ok(event)
}
