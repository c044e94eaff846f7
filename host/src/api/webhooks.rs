//! `/v1/webhooks`: create, list, read, update and delete webhooks.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

use super::auth::require;
use super::deliveries::scrubber;
use super::error::ApiError;
use super::error::FieldError;
use super::json::ApiJson;
use crate::access::{Caller, Companies, Scope};
use crate::domain::delivery::DeliveryStatus;
use crate::domain::policy::{EffectivePolicy, WebhookLimits};
use crate::domain::webhook::{ConnectorRef, Origin, Subscription, Webhook, WebhookStatus, new_webhook_id};
use crate::matching::filter::Filter;
use crate::secret::Secret;
use crate::server::AppState;
use crate::store::DeliveryQuery;

use super::openapi::{ConnectorChoice, DestinationUrl, FilterSchema, SecretText, WebhookName};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateWebhook {
    #[schema(value_type = WebhookName)]
    pub(super) name: String,
    #[schema(value_type = DestinationUrl)]
    pub(super) url: String,
    /// Generated when absent.
    #[schema(value_type = Option<SecretText>)]
    pub(super) secret: Option<String>,
    /// Default true.
    pub(super) enabled: Option<bool>,
    pub(super) metadata: Subscription,
    #[schema(value_type = Option<FilterSchema>)]
    pub(super) filter: Option<Value>,
    /// Default: the `json` connector with config `{}`.
    #[schema(value_type = Option<ConnectorChoice>)]
    pub(super) connector: Option<ConnectorRef>,
    /// Messages per second at most; absent for no limit.
    #[serde(default, deserialize_with = "whole_number")]
    #[schema(value_type = Option<u64>, minimum = 1, maximum = 4_294_967_295_u64)]
    pub(super) rate_limit: Option<u32>,
    /// Deliver one message at a time, in ingest order (default false).
    pub(super) ordered: Option<bool>,
}

/// Fields to change; a `filter` of `null` removes the filter.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateWebhook {
    #[schema(value_type = Option<WebhookName>)]
    name: Option<String>,
    #[schema(value_type = Option<DestinationUrl>)]
    url: Option<String>,
    /// Re-enabling sends a `WEBHOOK_HEALTH_CHECK` event first.
    enabled: Option<bool>,
    metadata: Option<Subscription>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<FilterSchema>)]
    filter: Option<Value>,
    /// Write-only config members left out keep their stored values (views never show them).
    #[schema(value_type = Option<ConnectorChoice>)]
    connector: Option<ConnectorRef>,
    /// `null` removes the limit.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u64>, minimum = 1, maximum = 4_294_967_295_u64)]
    rate_limit: Option<Value>,
    ordered: Option<bool>,
}

/// A whole number that fits a `u32`, or null. JSON (and its Schema) count `2.0` as an
/// integer, so this does too.
pub(super) fn whole_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    Option::<Value>::deserialize(d)?.as_ref().map_or(Ok(None), |value| {
        as_whole_u32(value).map(Some).ok_or_else(|| {
            serde::de::Error::custom(format!("expected a whole number from 0 to {}, not {value}", u32::MAX))
        })
    })
}

fn as_whole_u32(value: &Value) -> Option<u32> {
    match value.as_u64() {
        Some(n) => u32::try_from(n).ok(),
        None => value
            .as_f64()
            .filter(|f| f.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(f))
            .map(|f| f as u32),
    }
}

/// Distinguishes an explicit `null` (Some(Null)) from an absent field (None).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// A webhook as the API shows it: never its secret.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookView {
    id: String,
    name: String,
    url: String,
    status: WebhookStatus,
    enabled: bool,
    #[schema(value_type = SubscriptionView)]
    metadata: Subscription,
    #[schema(value_type = Option<Object>)]
    filter: Option<Value>,
    connector: ConnectorRef,
    rate_limit: Option<u32>,
    ordered: bool,
    /// What its deliveries follow: its own settings over its connector's declared policy.
    policy: EffectivePolicy,
    origin: Origin,
    created_by_id: String,
    /// The companies whose events it can match: its owner's, as they stand now.
    companies: Companies,
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "time::serde::rfc3339")]
    updated_at: OffsetDateTime,
    /// Its newest delivery, in lists and single reads (not in the answers to changes); absent
    /// when it has none.
    #[serde(skip_serializing_if = "Option::is_none")]
    last_delivery: Option<LastDelivery>,
}

/// A webhook's newest delivery, in a few words.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LastDelivery {
    id: String,
    event_type: String,
    status: DeliveryStatus,
    /// Why it failed, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
}

impl WebhookView {
    /// The view with its newest delivery (its error scrubbed of write-only config values).
    async fn with_last_delivery(state: &AppState, w: &Webhook) -> Result<Self, ApiError> {
        let query = DeliveryQuery { before: None, statuses: &[], since: None, limit: 1 };
        let newest = state.store.deliveries_of(&w.id, &query).await?.into_iter().next();
        let mut view = WebhookView::new(state, w);
        view.last_delivery = newest.map(|delivery| LastDelivery {
            error: delivery.error.map(|mut error| {
                scrubber(state, w).scrub(&mut error);
                error
            }),
            id: delivery.id,
            event_type: delivery.event_type,
            status: delivery.status,
            created_at: delivery.created_at,
        });
        Ok(view)
    }

    /// The view of `w`: its connector config without write-only members (without any config
    /// at all when its connector is no longer installed, as nobody can say what is secret).
    pub(super) fn new(state: &AppState, w: &Webhook) -> Self {
        let plugin = state.connectors.get(&w.connector.name);
        let config = match &plugin {
            Some(plugin) => plugin.schema().hide(&w.connector.config),
            None => Value::Object(Default::default()),
        };
        let attempts = crate::delivery::retry::attempts(&state.config.retry_schedule);
        let limits = WebhookLimits::of(w, state.config.delivery.per_webhook, attempts);
        let policy = EffectivePolicy::new(plugin.as_ref().and_then(|p| p.info().policy.as_ref()), limits);
        WebhookView {
            id: w.id.clone(),
            name: w.name.clone(),
            url: w.url.clone(),
            status: w.status,
            enabled: w.enabled,
            metadata: w.metadata.clone(),
            filter: w.filter.clone(),
            connector: ConnectorRef { name: w.connector.name.clone(), config, version: w.connector.version },
            rate_limit: w.rate_limit,
            ordered: w.ordered,
            policy,
            origin: w.origin,
            created_by_id: w.created_by_id.clone(),
            companies: state.webhooks.index().companies_of(&w.created_by_id),
            created_at: w.created_at,
            updated_at: w.updated_at,
            last_delivery: None,
        }
    }
}

/// Which events reach a webhook, as stored: an event type the operator has since taken out
/// of the catalog stays listed.
#[derive(ToSchema)]
#[schema(as = SubscriptionView)]
#[allow(dead_code)] // documents `WebhookView::metadata`
#[serde(rename_all = "camelCase")]
struct SubscriptionView {
    events: Vec<String>,
    project_ids: Vec<String>,
}

/// The answer to a create: the webhook and, this once, its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedWebhook {
    #[serde(flatten)]
    webhook: WebhookView,
    /// Shown only now; store it to verify signatures.
    secret: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Page size, 1–200 (default 50).
    #[param(value_type = usize, required = false, minimum = 1, maximum = 200)]
    limit: Option<usize>,
    /// `nextCursor` of the previous page.
    #[param(value_type = String, required = false)]
    cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookPage {
    data: Vec<WebhookView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    next_cursor: Option<String>,
}

#[utoipa::path(post, path = "/v1/webhooks", request_body = CreateWebhook, tag = "webhooks",
    responses((status = 201, body = CreatedWebhook), (status = 400, description = "invalid webhook"),
        (status = 403, description = "not a user or operator token"),
        (status = 413, description = "body over 64 KiB"), (status = 415, description = "not JSON"),
        (status = 503, description = "storage cannot take more; see Retry-After")))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateWebhook>,
) -> Result<(StatusCode, Json<CreatedWebhook>), ApiError> {
    let (webhook, secret) = insert(&state, &caller, body, Origin::Api).await?;
    let created =
        CreatedWebhook { webhook: WebhookView::new(&state, &webhook), secret: secret.expose().to_owned() };
    Ok((StatusCode::CREATED, Json(created)))
}

/// Validates and stores a new webhook for `caller`; returns it and its secret.
pub(super) async fn insert(
    state: &AppState,
    caller: &Caller,
    body: CreateWebhook,
    origin: Origin,
) -> Result<(Webhook, Secret), ApiError> {
    require(caller, &[Scope::User], "creating webhooks")?;
    let secret = match &body.secret {
        Some(text) => Secret::parse(text).map_err(|e| ApiError::bad_request(format!("secret: {e}")))?,
        None => Secret::generate(),
    };
    let now = OffsetDateTime::now_utc();
    let mut webhook = Webhook {
        id: new_webhook_id(),
        name: body.name,
        url: String::new(),
        status: WebhookStatus::Healthy,
        enabled: body.enabled.unwrap_or(true),
        metadata: body.metadata,
        filter: body.filter,
        connector: body.connector.unwrap_or_default(),
        rate_limit: body.rate_limit,
        ordered: body.ordered.unwrap_or(false),
        created_by_id: caller.user_id.clone(),
        created_at: now,
        updated_at: now,
        sealed_secret: state.secrets.seal(&secret),
        previous_secrets: Vec::new(),
        sealed_config: None,
        sealed_url: None,
        revision: 0,
        origin,
    };
    webhook.set_url(body.url, &state.secrets);
    if !webhook.enabled {
        webhook.status = WebhookStatus::Disabled;
    }
    check_pin(state, &webhook.connector).await?;
    validate(state, &mut webhook)?;
    seal_config(state, &mut webhook);
    state.webhooks.create(&webhook).await?;
    tracing::info!(webhook_id = %webhook.id, owner = %webhook.created_by_id, ?origin, "webhook created");
    Ok((webhook, secret))
}

#[utoipa::path(get, path = "/v1/webhooks", params(ListQuery), tag = "webhooks",
    responses((status = 200, body = WebhookPage), (status = 400, description = "invalid query"),
        (status = 403, description = "not a user or operator token")))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<WebhookPage>, ApiError> {
    require(&caller, &[Scope::User], "listing webhooks")?;
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let limit = query.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::bad_request("limit must be between 1 and 200"));
    }
    let owner = (!caller.is_operator()).then_some(caller.user_id.as_str());
    // `cursor=` (empty) is the first page, as no cursor is.
    let cursor = query.cursor.as_deref().filter(|c| !c.is_empty());
    let mut page = state.store.webhooks_page(owner, cursor, limit + 1).await?;
    let next_cursor = (page.len() > limit).then(|| {
        page.truncate(limit);
        page[limit - 1].id.clone()
    });
    let mut data = Vec::with_capacity(page.len());
    for webhook in &page {
        data.push(WebhookView::with_last_delivery(&state, webhook).await?);
    }
    Ok(Json(WebhookPage { data, next_cursor }))
}

#[utoipa::path(get, path = "/v1/webhooks/{id}", tag = "webhooks", params(("id" = String, Path, description = "the webhook's id (`wh_…`)")),
    responses((status = 200, body = WebhookView), (status = 403, description = "not a user or operator token"),
        (status = 404, description = "no such webhook (or another user's)")))]
pub async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<WebhookView>, ApiError> {
    let webhook = owned(&state, &caller, &id).await?;
    Ok(Json(WebhookView::with_last_delivery(&state, &webhook).await?))
}

#[utoipa::path(patch, path = "/v1/webhooks/{id}", request_body = UpdateWebhook, tag = "webhooks", params(("id" = String, Path, description = "the webhook's id (`wh_…`)")),
    responses((status = 200, body = WebhookView), (status = 400, description = "invalid change"),
        (status = 403, description = "not a user or operator token"),
        (status = 404, description = "no such webhook (or another user's)"),
        (status = 413, description = "body over 64 KiB"), (status = 415, description = "not JSON"),
        (status = 503, description = "storage cannot take more; see Retry-After")))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateWebhook>,
) -> Result<Json<WebhookView>, ApiError> {
    owned(&state, &caller, &id).await?;
    if let Some(connector) = &body.connector {
        check_pin(&state, connector).await?;
    }
    let mut re_enabled = false;
    // Applied to the record as it stands at the write (compare-and-swap): a change the engine
    // made meanwhile (a disable) is kept unless this request sets that very field.
    let updated = state.webhooks.update(&id, |webhook| {
        re_enabled = !webhook.enabled && body.enabled == Some(true);
        webhook.open_config(&state.secrets);
        apply(&state, &body, webhook)?;
        validate(&state, webhook)?;
        seal_config(&state, webhook);
        webhook.updated_at = OffsetDateTime::now_utc();
        Ok::<_, ApiError>(true)
    });
    let webhook = updated.await?.ok_or_else(|| ApiError::not_found("webhook"))?;
    if re_enabled {
        // Before anything else goes out again, one health check tells the receiver we are back.
        super::deliveries::send_direct(&state, &webhook, crate::domain::catalog::HEALTH_CHECK, None).await?;
    }
    Ok(Json(WebhookView::new(&state, &webhook)))
}

/// Applies the fields an update sets to `webhook`.
fn apply(state: &AppState, body: &UpdateWebhook, webhook: &mut Webhook) -> Result<(), ApiError> {
    if let Some(name) = body.name.clone() {
        webhook.name = name;
    }
    if let Some(url) = body.url.clone() {
        webhook.set_url(url, &state.secrets);
    }
    if let Some(metadata) = body.metadata.clone() {
        webhook.metadata = metadata;
    }
    if let Some(filter) = body.filter.clone() {
        webhook.filter = (!filter.is_null()).then_some(filter);
    }
    if let Some(mut connector) = body.connector.clone() {
        if connector.name == webhook.connector.name
            && let Some(plugin) = state.connectors.get(&connector.name)
        {
            plugin.schema().keep_write_only(&mut connector.config, &webhook.connector.config);
        }
        webhook.connector = connector;
    }
    if let Some(rate_limit) = body.rate_limit.clone() {
        webhook.rate_limit = match rate_limit {
            Value::Null => None,
            other => Some(as_whole_u32(&other).ok_or_else(|| {
                ApiError::bad_request("rateLimit: expected a whole number of messages per second, or null")
            })?),
        };
    }
    if let Some(ordered) = body.ordered {
        webhook.ordered = ordered;
    }
    if let Some(enabled) = body.enabled.filter(|enabled| *enabled != webhook.enabled) {
        webhook.enabled = enabled;
        // Re-enabled, it is healthy only once the health check that goes first succeeds.
        webhook.status = if enabled { WebhookStatus::Pending } else { WebhookStatus::Disabled };
    }
    Ok(())
}

#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "webhooks", params(("id" = String, Path, description = "the webhook's id (`wh_…`)")),
    responses((status = 204, description = "deleted"), (status = 403, description = "not a user or operator token"),
        (status = 404, description = "no such webhook (or another user's)"),
        (status = 503, description = "storage cannot take more; see Retry-After")))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    owned(&state, &caller, &id).await?;
    remove(&state, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes a webhook for good: stored, durable, gone from matching.
pub(super) async fn remove(state: &AppState, id: &str) -> Result<(), ApiError> {
    state.webhooks.remove(id).await?;
    Ok(())
}

/// The webhook if the caller may see it: another user's is a 404, so ids do not leak.
pub(super) async fn owned(state: &AppState, caller: &Caller, id: &str) -> Result<Webhook, ApiError> {
    require(caller, &[Scope::User], "managing webhooks")?;
    match state.store.webhook(id).await? {
        Some(webhook) if caller.owns(&webhook.created_by_id) => Ok(webhook),
        _ => Err(ApiError::not_found("webhook")),
    }
}

/// Seals the write-only members of the webhook's connector config (its connector is known:
/// [`validate`] checked it).
fn seal_config(state: &AppState, webhook: &mut Webhook) {
    let write_only = state.connectors.get(&webhook.connector.name).map(|p| p.schema().write_only().to_vec());
    webhook.seal_config(&write_only.unwrap_or_default(), &state.secrets);
}

/// A pinned connector version must exist (a read from storage, so not in [`validate`]).
async fn check_pin(state: &AppState, connector: &ConnectorRef) -> Result<(), ApiError> {
    let Some(version) = connector.version else { return Ok(()) };
    if state.connector_service.has_version(&connector.name, version).await? {
        return Ok(());
    }
    Err(ApiError::invalid_fields(vec![FieldError::new(
        "connector.version",
        format!(
            "connector {:?} has no version {version}; GET /v1/connectors/{}/versions lists them",
            connector.name, connector.name
        ),
    )]))
}

/// Checks every field a user controls, normalising lists; a 400 names every field at fault.
fn validate(state: &AppState, webhook: &mut Webhook) -> Result<(), ApiError> {
    let mut errors = Vec::new();
    webhook.name = webhook.name.trim().to_owned();
    if let Err(e) = crate::domain::webhook::check_name(&webhook.name) {
        errors.push(FieldError::new("name", e));
    }
    // The URL whole: credentials are checked too, and never echoed back.
    let url = webhook.destination(&state.secrets).unwrap_or_default();
    let url =
        crate::destination::check_url(&url, &state.config.destinations()).and_then(|_| check_url_text(&url));
    if let Err(e) = url {
        errors.push(FieldError::new("url", e));
    }
    let metadata = &mut webhook.metadata;
    // Like the project ids of events: one that no event can carry would never match.
    // (Checked before sorting, so that the index is the caller's.)
    for (i, project) in metadata.project_ids.iter().enumerate() {
        if let Err(e) = crate::domain::event::check_id(project) {
            errors.push(FieldError::new(format!("metadata.projectIds[{i}]"), e));
        }
    }
    for list in [&mut metadata.events, &mut metadata.project_ids] {
        list.sort();
        list.dedup();
    }
    let operator = webhook.created_by_id == crate::access::OPERATOR_ID;
    if let Err(e) = state.catalog.check(&metadata.events, operator) {
        errors.push(FieldError::new("metadata.events", e));
    }
    if let Some(filter) = &webhook.filter
        && let Err(e) = Filter::parse(filter)
    {
        errors.push(FieldError::new(e.at, e.message));
    }
    match state.connectors.get(&webhook.connector.name) {
        None => {
            let known: Vec<String> = state.connectors.list().into_iter().map(|(name, _)| name).collect();
            let names = known.join(", ");
            errors.push(FieldError::new(
                "connector.name",
                format!("no connector named {:?}; installed: {names}", webhook.connector.name),
            ));
        }
        Some(_) if !webhook.connector.config.is_object() => {
            errors.push(FieldError::new("connector.config", "must be a JSON object"));
        }
        Some(plugin) => {
            let problems = plugin.schema().problems(&webhook.connector.config);
            errors.extend(problems.into_iter().map(|(field, message)| FieldError::new(field, message)));
        }
    }
    if webhook.rate_limit == Some(0) {
        errors.push(FieldError::new(
            "rateLimit",
            "must be at least 1 message per second (or absent for no limit)",
        ));
    }
    match errors.is_empty() {
        true => Ok(()),
        false => Err(ApiError::invalid_fields(errors)),
    }
}

/// Refuses URL text that only a browser's error recovery makes a URL of (`https:///x`,
/// spaces, backslashes, raw non-ASCII): a destination is written as RFC 3986 says, as
/// `scheme://host…` — the `format: uri` and pattern the API document gives it.
pub(super) fn check_url_text(text: &str) -> Result<(), String> {
    let shown = crate::destination::redacted_text(text);
    let rfc3986 = |c: char| c.is_ascii_alphanumeric() || "-._~:/?#[]@!$&'()*+,;=%".contains(c);
    if let Some(bad) = text.chars().find(|&c| !rfc3986(c)) {
        return Err(format!(
            "{shown:?} has {bad:?}, which a URL carries percent-encoded (and a host in punycode)"
        ));
    }
    let bytes = text.as_bytes();
    let escapes_ok = bytes
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'%')
        .all(|(i, _)| bytes.get(i + 1..i + 3).is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit)));
    if !escapes_ok {
        return Err(format!("{shown:?} has a % that is not followed by two hex digits"));
    }
    let (scheme, after_scheme) = text.split_once("://").unwrap_or_default();
    let authority = after_scheme.split(['/', '?', '#']).next().unwrap_or_default();
    // Only a broker's URL may carry a login: an HTTP receiver authenticates by the signature.
    let http = scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https");
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    if host.is_empty() || (http && authority.contains('@')) {
        return Err(format!("{shown:?} must be scheme://host…, without credentials for http(s)"));
    }
    Ok(())
}

/// A new secret, shown once.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RotatedSecret {
    secret: String,
    /// Until when the previous secret still signs `webhook-signature` as well.
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "time::serde::rfc3339")]
    previous_valid_until: OffsetDateTime,
}

#[utoipa::path(post, path = "/v1/webhooks/{id}/rotate-secret", tag = "webhooks", params(("id" = String, Path, description = "the webhook's id (`wh_…`)")),
    responses((status = 200, body = RotatedSecret), (status = 403, description = "not a user or operator token"),
        (status = 404, description = "no such webhook (or another user's)"),
        (status = 503, description = "storage cannot take more; see Retry-After")))]
pub async fn rotate_secret(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<RotatedSecret>, ApiError> {
    owned(&state, &caller, &id).await?;
    let secret = Secret::generate();
    let sealed = state.secrets.seal(&secret);
    let now = OffsetDateTime::now_utc();
    let until = now + state.config.rotation_grace;
    let rotated = state.webhooks.update(&id, |webhook| {
        webhook.previous_secrets.retain(|old| old.until > now);
        let old = std::mem::replace(&mut webhook.sealed_secret, sealed.clone());
        webhook.previous_secrets.push(crate::domain::webhook::RetiredSecret { sealed: old, until });
        webhook.updated_at = now;
        Ok::<_, ApiError>(true)
    });
    if rotated.await?.is_none() {
        return Err(ApiError::not_found("webhook"));
    }
    tracing::info!(webhook_id = %id, "secret rotated");
    Ok(Json(RotatedSecret { secret: secret.expose().to_owned(), previous_valid_until: until }))
}
