//! `GET /v1/webhooks/{id}/stats`: the last 24 hours of a webhook, hour by hour.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;
use time::{Duration, OffsetDateTime};
use utoipa::ToSchema;

use super::error::ApiError;
use super::webhooks::owned;
use crate::access::Caller;
use crate::domain::delivery::DeliveryStatus;
use crate::server::AppState;
use crate::store::DeliveryQuery;

/// One hour of a webhook's deliveries (by the hour they were created) and attempts.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Hour {
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "time::serde::rfc3339")]
    hour: OffsetDateTime,
    /// Deliveries by outcome: succeeded, failed, filtered, plugin_error, pending, paused.
    outcomes: BTreeMap<String, u64>,
    attempts: u64,
    latency_p50_ms: Option<u64>,
    latency_p99_ms: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Stats {
    /// The last 24 hours, oldest first.
    hours: Vec<Hour>,
}

#[utoipa::path(get, path = "/v1/webhooks/{id}/stats", tag = "deliveries", params(("id" = String, Path, description = "the webhook's id (`wh_…`)")),
    responses((status = 200, body = Stats), (status = 403, description = "not a user or operator token"),
        (status = 404, description = "no such webhook (or another user's)")))]
pub async fn stats(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Stats>, ApiError> {
    owned(&state, &caller, &id).await?;
    let now = OffsetDateTime::now_utc();
    let current =
        now.replace_minute(0).and_then(|t| t.replace_second(0)).and_then(|t| t.replace_nanosecond(0));
    let current = current.expect("zero minutes, seconds and nanoseconds are valid");
    let first = current - Duration::hours(23);
    let mut hours: Vec<Hour> = (0..24)
        .map(|h| Hour {
            hour: first + Duration::hours(h),
            outcomes: BTreeMap::new(),
            attempts: 0,
            latency_p50_ms: None,
            latency_p99_ms: None,
        })
        .collect();
    let slot = |at: OffsetDateTime| usize::try_from((at - first).whole_hours()).ok().filter(|h| *h < 24);
    let mut latencies: Vec<Vec<u64>> = vec![Vec::new(); 24];

    let query = DeliveryQuery { since: Some(first), limit: usize::MAX, ..DeliveryQuery::default() };
    let recent = state.store.deliveries_of(&id, &query).await?;
    let ids: Vec<String> = recent.iter().map(|d| d.id.clone()).collect();
    let attempts = state.store.attempts_of(&ids).await?;
    for (delivery, attempts) in recent.into_iter().zip(attempts) {
        if let Some(h) = slot(delivery.created_at) {
            *hours[h].outcomes.entry(outcome(delivery.status).to_owned()).or_default() += 1;
        }
        for attempt in attempts {
            if let Some(h) = slot(attempt.at) {
                hours[h].attempts += 1;
                latencies[h].push(attempt.latency_ms);
            }
        }
    }
    for (hour, mut latency) in hours.iter_mut().zip(latencies) {
        latency.sort_unstable();
        let at = |p: f64| {
            latency.get(((latency.len() as f64 * p) as usize).min(latency.len().saturating_sub(1))).copied()
        };
        hour.latency_p50_ms = at(0.50);
        hour.latency_p99_ms = at(0.99);
    }
    Ok(Json(Stats { hours }))
}

fn outcome(status: DeliveryStatus) -> &'static str {
    match status {
        DeliveryStatus::Pending => "pending",
        DeliveryStatus::Paused => "paused",
        DeliveryStatus::Succeeded => "succeeded",
        DeliveryStatus::Filtered => "filtered",
        DeliveryStatus::Failed => "failed",
        DeliveryStatus::PluginError => "plugin_error",
    }
}
