//! Calling a running server's API for the commands that manage it: where it is, which token,
//! and its answers (errors included) worded for a person at a terminal.

use clap::Args;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::Failure;

/// Where the running server is, and who is asking.
#[derive(Args)]
pub struct ServerArgs {
    /// The running server's base URL.
    #[arg(long, env = "WASMHOOK_SERVER", default_value = "http://127.0.0.1:8080")]
    server: String,
    /// A bearer token: an operator's (from `wasmhook-data/operator-token` by default), or a
    /// user's for their own webhooks.
    #[arg(long, env = "WASMHOOK_TOKEN", hide_env_values = true)]
    token: String,
}

/// A request body.
pub enum Body {
    Json(Value),
    Wasm(Vec<u8>),
}

impl ServerArgs {
    /// Calls `method path`; the answer's JSON (`None` for an empty answer such as a 204).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Body>,
    ) -> Result<Option<Value>, Failure> {
        let url = format!("{}{path}", self.server.trim_end_matches('/'));
        let mut request = reqwest::Client::new().request(method, &url).bearer_auth(&self.token);
        match body {
            Some(Body::Json(json)) => request = request.json(&json),
            Some(Body::Wasm(bytes)) => {
                request = request.header("content-type", "application/wasm").body(bytes)
            }
            None => {}
        }
        let response = request.send().await.map_err(|e| {
            Failure(format!(
                "cannot reach the server at {}: {}. Is `wasmhook serve` running there? Point \
                 --server (or WASMHOOK_SERVER) at its address",
                self.server,
                root_cause(&e)
            ))
        })?;
        let status = response.status();
        let text = response.text().await.map_err(|e| Failure(format!("{url}: the answer broke off: {e}")))?;
        let json =
            (!text.is_empty()).then(|| serde_json::from_str::<Value>(&text)).transpose().map_err(|_| {
                Failure(format!("{url} answered {status} with something other than JSON: {text}"))
            })?;
        if status.is_success() {
            return Ok(json);
        }
        let error = json.as_ref().map(|json| &json["error"]);
        let message = error.and_then(|e| e["message"].as_str()).map_or_else(|| text.clone(), str::to_owned);
        let code =
            error.and_then(|e| e["code"].as_str()).map(|code| format!(" ({code})")).unwrap_or_default();
        Err(Failure(match status {
            StatusCode::UNAUTHORIZED => format!(
                "the server refused the token ({status}): {message}. Pass --token (or set \
                 WASMHOOK_TOKEN); operators find theirs in wasmhook-data/operator-token"
            ),
            _ => format!("{status}{code}: {message}"),
        }))
    }

    pub async fn get(&self, path: &str) -> Result<Value, Failure> {
        Ok(self.call(Method::GET, path, None).await?.unwrap_or_default())
    }

    /// Every item of a paged list (`data` and `nextCursor`), following the cursors.
    pub async fn get_all(&self, path: &str) -> Result<Vec<Value>, Failure> {
        let separator = if path.contains('?') { '&' } else { '?' };
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = match &cursor {
                None => self.get(&format!("{path}{separator}limit=200")).await?,
                Some(cursor) => self.get(&format!("{path}{separator}limit=200&cursor={cursor}")).await?,
            };
            if let Some(data) = page["data"].as_array() {
                items.extend(data.iter().cloned());
            }
            match page["nextCursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => return Ok(items),
            }
        }
    }
}

/// The innermost error: reqwest's own text ("error sending request") says nothing useful.
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}
