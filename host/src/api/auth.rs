//! Bearer tokens on every `/v1` route: who is calling.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use super::error::ApiError;
use crate::access::{Caller, Scope, User, check_user_id, token_hash};
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
            .and_then(bearer_token)
            .ok_or_else(|| ApiError::unauthorized("the Authorization header must be `Bearer <token>`"))?;
        let hash = token_hash(token);
        if state.operator_hashes.contains(&hash) {
            return Ok(Caller::operator());
        }
        match state.store.token_by_hash(&hash).await? {
            // Tokens minted for a reserved id before ids were checked speak for nobody.
            Some(token) if check_user_id(&token.user_id).is_ok() => {
                let companies = state.webhooks.index().companies_of(&token.user_id);
                let user = User { id: token.user_id.clone(), companies };
                Ok(Caller::new(&token, Some(user)))
            }
            _ => Err(ApiError::unauthorized("unknown or revoked token")),
        }
    }
}

/// The token of an `Authorization: Bearer <token>` value; the scheme is case-insensitive
/// (RFC 9110).
fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Refuses callers without one of `scopes` (operators may always).
pub fn require(caller: &Caller, scopes: &[Scope], what: &str) -> Result<(), ApiError> {
    if caller.is_operator() || scopes.contains(&caller.scope) {
        return Ok(());
    }
    let needed = match scopes {
        [] => "an operator token".to_owned(),
        scopes => {
            let names: Vec<String> = scopes.iter().map(|s| format!("{s:?}").to_lowercase()).collect();
            format!("a {} or operator token", names.join(" or "))
        }
    };
    Err(ApiError::forbidden(format!(
        "{what} needs {needed}; this one is a {} token",
        format!("{:?}", caller.scope).to_lowercase()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for header in ["Bearer t1", "bearer t1", "BEARER t1", "bEaReR  t1 "] {
            assert_eq!(bearer_token(header), Some("t1"), "{header:?}");
        }
        for header in ["Basic t1", "Bearer", "Bearer ", "Bearert1"] {
            assert_eq!(bearer_token(header), None, "{header:?}");
        }
    }

    #[test]
    fn operator_only_routes_say_so() {
        let user = Caller { scope: Scope::User, ..Caller::operator() };
        let message = format!("{:?}", require(&user, &[], "minting tokens").unwrap_err());
        assert!(message.contains("needs an operator token; this one is a user token"), "{message}");
    }
}
