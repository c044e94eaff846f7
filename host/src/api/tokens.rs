//! `/v1/tokens`: operators mint and revoke user and ingest tokens. Minting a token sets its
//! user's companies: they belong to the user, so this narrows (or widens) every webhook and
//! token of that user at once.

use std::collections::BTreeSet;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::auth::require;
use super::error::ApiError;
use super::json::ApiJson;
use super::openapi::CreateTokenSchema;
use crate::access::{Caller, Companies, Scope, Token, User, check_user_id, new_token_text, token_hash};
use crate::server::AppState;

/// What `POST /v1/tokens` takes; its schema, which can say "companies or all of them", is
/// [`CreateTokenSchema`].
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateToken {
    /// 1–200 characters; `operator` and the host's other reserved names are refused.
    user_id: String,
    /// The companies the user may see from now on (for all their tokens and webhooks);
    /// required unless `allCompanies` is true.
    #[serde(default)]
    companies: Vec<String>,
    /// Every company, said explicitly.
    #[serde(default)]
    all_companies: bool,
    /// `user` (default) or `ingest`.
    scope: Option<Scope>,
    description: Option<String>,
}

/// A token as listed: never the token itself; its user's companies as they stand now.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenView {
    #[serde(flatten)]
    info: Token,
    companies: Companies,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedToken {
    #[serde(flatten)]
    info: TokenView,
    /// The bearer token: shown only now.
    token: String,
}

#[utoipa::path(post, path = "/v1/tokens", request_body = CreateTokenSchema, tag = "tokens",
    responses((status = 201, body = CreatedToken), (status = 400, description = "invalid request"),
        (status = 403, description = "operators only"),
        (status = 413, description = "body over 64 KiB"), (status = 415, description = "not JSON"),
        (status = 503, description = "storage cannot take more; see Retry-After")))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateToken>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    require(&caller, &[], "minting tokens")?;
    check_user_id(&body.user_id).map_err(|e| ApiError::bad_request(format!("userId: {e}")))?;
    let companies = match (body.all_companies, body.companies.is_empty()) {
        (true, true) => Companies::All,
        (false, false) => {
            Companies::Only(body.companies.iter().map(|c| c.trim().to_owned()).collect::<BTreeSet<_>>())
        }
        (true, false) => {
            return Err(ApiError::bad_request("give either companies or allCompanies: true, not both"));
        }
        (false, true) => {
            return Err(ApiError::bad_request(
                "companies: name the companies this user may see, or set allCompanies: true",
            ));
        }
    };
    if let Companies::Only(list) = &companies
        && let Some(bad) =
            list.iter().find(|c| c.is_empty() || c.chars().count() > 255 || c.chars().any(char::is_control))
    {
        // As long as an event's companyId may be: a longer one would never match.
        return Err(ApiError::bad_request(format!(
            "companies: company ids must be 1 to 255 characters without control characters, not {bad:?}"
        )));
    }
    let scope = body.scope.unwrap_or(Scope::User);
    if scope == Scope::Operator {
        return Err(ApiError::bad_request(
            "scope: operator tokens come from configuration; mint user or ingest tokens",
        ));
    }
    let text = new_token_text();
    let token = Token {
        id: format!("tok_{}", uuid::Uuid::now_v7().simple()),
        scope,
        user_id: body.user_id,
        description: body.description,
        created_at: OffsetDateTime::now_utc(),
    };
    let user = User { id: token.user_id.clone(), companies };
    state.store.put_user(&user).await?;
    state.store.put_token(&token_hash(&text), &token).await?;
    state.webhooks.companies_changed(&user);
    tracing::info!(token_id = %token.id, user = %token.user_id, scope = ?token.scope, "token minted");
    let info = TokenView { info: token, companies: user.companies };
    Ok((StatusCode::CREATED, Json(CreatedToken { info, token: text })))
}

#[utoipa::path(get, path = "/v1/tokens", tag = "tokens",
    responses((status = 200, body = Vec<TokenView>), (status = 403, description = "operators only")))]
pub async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<Vec<TokenView>>, ApiError> {
    require(&caller, &[], "listing tokens")?;
    let tokens = state.store.tokens().await?;
    let index = state.webhooks.index();
    let views = tokens
        .into_iter()
        .map(|info| TokenView { companies: index.companies_of(&info.user_id), info })
        .collect();
    Ok(Json(views))
}

#[utoipa::path(delete, path = "/v1/tokens/{id}", tag = "tokens",
    params(("id" = String, Path, description = "the token's id (`tok_…`), not the token itself")),
    responses((status = 204, description = "revoked"), (status = 403, description = "operators only"),
        (status = 404, description = "no such token"),
        (status = 503, description = "storage cannot take more; see Retry-After")))]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    require(&caller, &[], "revoking tokens")?;
    if !state.store.delete_token(&id).await? {
        return Err(ApiError::not_found("token"));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Who a token speaks for: what the web app shows and which pages it offers.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Me {
    user_id: String,
    scope: Scope,
    companies: Companies,
}

#[utoipa::path(get, path = "/v1/me", tag = "tokens", responses((status = 200, body = Me)))]
pub async fn me(caller: Caller) -> Json<Me> {
    Json(Me { user_id: caller.user_id, scope: caller.scope, companies: caller.companies })
}
