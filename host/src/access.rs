//! Who may do what: bearer tokens, their scopes and the companies they may see.
//!
//! Operators (tokens from configuration, or generated into the data directory) may do
//! everything. Operators mint user tokens — one user, the companies that user may see —
//! and ingest tokens for the sending application. Only a SHA-256 of each token is stored.
//!
//! Companies belong to the *user*, not to a token: minting a token sets its user's
//! companies, and every check (matching, ingest) reads the user's current ones, so narrowing
//! a user narrows every webhook and token of theirs at once.

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
    /// Whether a company could be in both.
    pub fn overlaps(&self, other: &Companies) -> bool {
        match (self, other) {
            (Companies::All, _) | (_, Companies::All) => true,
            (Companies::Only(mine), Companies::Only(theirs)) => !mine.is_disjoint(theirs),
        }
    }

    pub fn allows(&self, company: &str) -> bool {
        match self {
            Companies::All => true,
            Companies::Only(companies) => companies.contains(company),
        }
    }
}

/// A user (or a sending application, for ingest tokens) and the companies they may see.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: String,
    pub companies: Companies,
}

/// The identity operators act as; no user may take it (nor the other reserved names).
pub const OPERATOR_ID: &str = "operator";

/// User ids that name the host's own identities.
const RESERVED_USER_IDS: &[&str] = &[OPERATOR_ID, "wasmhook", "system", "admin", "root"];

/// Checks a user id an operator gives; the error says what is wrong.
pub fn check_user_id(id: &str) -> Result<(), String> {
    let chars = id.chars().count();
    if chars == 0 || chars > 200 {
        return Err(format!("must be 1 to 200 characters, this one has {chars}"));
    }
    if id.trim() != id || id.chars().any(char::is_control) {
        return Err("must not start or end with spaces or contain control characters".into());
    }
    if RESERVED_USER_IDS.iter().any(|reserved| reserved.eq_ignore_ascii_case(id)) {
        return Err(format!("{id:?} is reserved for the host itself; choose another user id"));
    }
    Ok(())
}

/// A stored token: everything but the token itself. Its user's companies live on the user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Token {
    pub id: String,
    pub scope: Scope,
    pub user_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's id (`operator` for operator tokens): what `Idempotency-Key`s are scoped by.
    pub token_id: String,
    pub scope: Scope,
    pub user_id: String,
    /// The user's companies as they stand now.
    pub companies: Companies,
}

impl Caller {
    pub fn operator() -> Self {
        Caller {
            token_id: OPERATOR_ID.into(),
            scope: Scope::Operator,
            user_id: OPERATOR_ID.into(),
            companies: Companies::All,
        }
    }

    /// The caller a stored token speaks for, with its user's current companies (none when
    /// the user has no record).
    pub fn new(token: &Token, user: Option<User>) -> Self {
        Caller {
            token_id: token.id.clone(),
            scope: token.scope,
            user_id: token.user_id.clone(),
            companies: user.map_or_else(|| Companies::Only(Default::default()), |u| u.companies),
        }
    }

    pub fn is_operator(&self) -> bool {
        self.scope == Scope::Operator
    }

    /// Whether this caller may see and change a webhook created by `owner`.
    pub fn owns(&self, owner: &str) -> bool {
        self.is_operator() || (self.scope == Scope::User && self.user_id == owner)
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
        let alice = Caller {
            token_id: "tok_1".into(),
            scope: Scope::User,
            user_id: "alice".into(),
            companies: Companies::All,
        };
        assert!(alice.owns("alice") && !alice.owns("bob"));
        let ingest = Caller { scope: Scope::Ingest, ..alice.clone() };
        assert!(!ingest.owns("alice"), "ingest tokens manage no webhooks");
        assert!(Caller::operator().owns("bob"));
    }

    #[test]
    fn reserved_and_malformed_user_ids_are_refused() {
        for bad in ["operator", "Operator", "wasmhook", "", " alice", "al\u{0}ice"] {
            assert!(check_user_id(bad).is_err(), "{bad:?} accepted");
        }
        assert!(check_user_id("alice").is_ok());
        assert!(check_user_id(&"é".repeat(200)).is_ok(), "limits count characters, not bytes");
    }

    #[test]
    fn tokens_are_random_and_hash_stably() {
        let (a, b) = (new_token_text(), new_token_text());
        assert!(a.starts_with("whk_") && a != b);
        assert_eq!(token_hash(&a), token_hash(&a));
        assert_ne!(token_hash(&a), token_hash(&b));
    }
}
