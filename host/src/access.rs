//! Who may do what: bearer tokens, their scopes and the companies they may see.
//!
//! Operators (tokens from configuration, or generated into the data directory) may do
//! everything. Operators mint user tokens — one user, the companies that user may see —
//! and ingest tokens for the sending application. Only a SHA-256 of each token is stored.

use std::collections::BTreeSet;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Everything, connectors and tokens included.
    Operator,
    /// Its user's own webhooks.
    User,
    /// Sending events.
    Ingest,
}

/// The companies a token may see; its webhooks match only their events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum Companies {
    /// Said explicitly (`--all-companies`): every company.
    All,
    Only(BTreeSet<String>),
}

impl Companies {
    pub fn allows(&self, company: &str) -> bool {
        match self {
            Companies::All => true,
            Companies::Only(companies) => companies.contains(company),
        }
    }
}

/// A stored token: everything but the token itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Token {
    pub id: String,
    pub scope: Scope,
    pub user_id: String,
    pub companies: Companies,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub scope: Scope,
    pub user_id: String,
    pub companies: Companies,
}

impl Caller {
    pub fn operator() -> Self {
        Caller { scope: Scope::Operator, user_id: "operator".into(), companies: Companies::All }
    }

    pub fn is_operator(&self) -> bool {
        self.scope == Scope::Operator
    }

    /// Whether this caller may see and change a webhook created by `owner`.
    pub fn owns(&self, owner: &str) -> bool {
        self.is_operator() || (self.scope == Scope::User && self.user_id == owner)
    }
}

impl From<&Token> for Caller {
    fn from(token: &Token) -> Self {
        Caller { scope: token.scope, user_id: token.user_id.clone(), companies: token.companies.clone() }
    }
}

/// A new bearer token's text: shown once, stored only as its hash.
pub fn new_token_text() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS random source is available");
    format!("whk_{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// The key a token is stored and looked up under.
pub fn token_hash(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn company_bounds() {
        let only = Companies::Only(["c1".to_string()].into());
        assert!(only.allows("c1") && !only.allows("c2"));
        assert!(Companies::All.allows("anything"));
    }

    #[test]
    fn users_own_only_their_webhooks() {
        let alice = Caller { scope: Scope::User, user_id: "alice".into(), companies: Companies::All };
        assert!(alice.owns("alice") && !alice.owns("bob"));
        let ingest = Caller { scope: Scope::Ingest, ..alice.clone() };
        assert!(!ingest.owns("alice"), "ingest tokens manage no webhooks");
        assert!(Caller::operator().owns("bob"));
    }

    #[test]
    fn tokens_are_random_and_hash_stably() {
        let (a, b) = (new_token_text(), new_token_text());
        assert!(a.starts_with("whk_") && a != b);
        assert_eq!(token_hash(&a), token_hash(&a));
        assert_ne!(token_hash(&a), token_hash(&b));
    }
}
