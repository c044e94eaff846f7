//! `/v1/tokens`: operators mint and revoke user and ingest tokens.

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
use crate::access::{Caller, Companies, Scope, Token, new_token_text, token_hash};
use crate::server::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateToken {
    user_id: String,
    /// The companies the user may see; required unless `allCompanies` is true.
    #[serde(default)]
    companies: Vec<String>,
    /// Every company, said explicitly.
    #[serde(default)]
    all_companies: bool,
    /// `user` (default) or `ingest`.
    scope: Option<Scope>,
    description: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedToken {
    #[serde(flatten)]
    info: Token,
    /// The bearer token: shown only now.
    token: String,
}

#[utoipa::path(post, path = "/v1/tokens", request_body = CreateToken, tag = "tokens",
    responses((status = 201, body = CreatedToken), (status = 400, description = "invalid request"), (status = 403, description = "operators only")))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateToken>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    require(&caller, &[], "minting tokens")?;
    if body.user_id.trim().is_empty() {
        return Err(ApiError::bad_request("userId: must not be empty"));
    }
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
        && list.iter().any(String::is_empty)
    {
        return Err(ApiError::bad_request("companies: company ids must not be empty"));
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
        user_id: body.user_id.trim().to_owned(),
        companies,
        description: body.description,
        created_at: OffsetDateTime::now_utc(),
    };
    state.store.put_token(&token_hash(&text), &token)?;
    state.store.durable().await?;
    tracing::info!(token_id = %token.id, user = %token.user_id, scope = ?token.scope, "token minted");
    Ok((StatusCode::CREATED, Json(CreatedToken { info: token, token: text })))
}

#[utoipa::path(get, path = "/v1/tokens", tag = "tokens", responses((status = 200, body = Vec<Token>)))]
pub async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<Vec<Token>>, ApiError> {
    require(&caller, &[], "listing tokens")?;
    Ok(Json(state.store.tokens()?))
}

#[utoipa::path(delete, path = "/v1/tokens/{id}", tag = "tokens",
    responses((status = 204, description = "revoked"), (status = 404, description = "no such token")))]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    require(&caller, &[], "revoking tokens")?;
    if !state.store.delete_token(&id)? {
        return Err(ApiError::not_found("token"));
    }
    state.store.durable().await?;
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
