//! Bearer tokens on every `/v1` route: who is calling.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use super::error::ApiError;
use crate::access::{Caller, Scope, token_hash};
use crate::server::AppState;

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .ok_or_else(|| ApiError::unauthorized("missing `Authorization: Bearer <token>` header"))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::unauthorized("the Authorization header must be `Bearer <token>`"))?;
        let hash = token_hash(token);
        if state.operator_hashes.contains(&hash) {
            return Ok(Caller::operator());
        }
        match state.store.token_by_hash(&hash)? {
            Some(token) => Ok(Caller::from(&token)),
            None => Err(ApiError::unauthorized("unknown or revoked token")),
        }
    }
}

/// Refuses callers without one of `scopes` (operators may always).
pub fn require(caller: &Caller, scopes: &[Scope], what: &str) -> Result<(), ApiError> {
    if caller.is_operator() || scopes.contains(&caller.scope) {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "{what} needs a token of scope {scopes:?}, this one is {:?}",
            caller.scope
        )))
    }
}
