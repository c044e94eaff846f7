//! `wasmhook receive`: a local receiver for trying webhooks out. It prints every request it
//! gets, checks its signatures when given the webhook's secret, and answers with a chosen
//! status (answer 500 to watch retries and disabling).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use clap::Args;

use super::Failure;
use crate::delivery::signature::{standard_signature, wasmhook_signature};
use crate::secret::Secret;

#[derive(Args)]
pub struct ReceiveArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9000")]
    listen: SocketAddr,
    /// The webhook's signing secret (`whsec_…`): every request's signatures are checked
    /// against it, and one that does not verify is answered 401.
    #[arg(long, env = "WASMHOOK_RECEIVE_SECRET", hide_env_values = true)]
    secret: Option<String>,
    /// The status to answer (with verified or unchecked requests).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u16).range(200..600))]
    status: u16,
}

struct Receiver {
    secret: Option<Secret>,
    status: StatusCode,
}

pub async fn run(args: ReceiveArgs) -> Result<(), Failure> {
    let secret = args
        .secret
        .as_deref()
        .map(Secret::parse)
        .transpose()
        .map_err(|e| Failure(format!("--secret: {e}")))?;
    let status = StatusCode::from_u16(args.status).map_err(|e| Failure(format!("--status: {e}")))?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| Failure(format!("cannot listen on {}: {e}", args.listen)))?;
    println!(
        "receiving on http://{} (answering {status}{}); ctrl-c stops",
        args.listen,
        if secret.is_some() { ", checking signatures" } else { "" }
    );
    let app = Router::new().fallback(receive).with_state(Arc::new(Receiver { secret, status }));
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| Failure(format!("the receiver stopped: {e}")))
}

async fn receive(
    State(receiver): State<Arc<Receiver>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("-").to_owned();
    let verdict = match &receiver.secret {
        None => "signature not checked (no --secret)".to_owned(),
        Some(secret) => match verify(secret, &headers, &body) {
            Ok(()) => "signatures verified".to_owned(),
            Err(why) => format!("SIGNATURE REFUSED: {why}"),
        },
    };
    let refused = verdict.starts_with("SIGNATURE REFUSED");
    let event = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|json| json["event"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "-".to_owned());
    println!("{method} {uri}  event {event}  webhook-id {}  {verdict}", header("webhook-id"));
    println!("{}", String::from_utf8_lossy(&body[..body.len().min(4096)]));
    if refused { StatusCode::UNAUTHORIZED } else { receiver.status }
}

/// Checks both signature schemes, as `docs/receiving.md` tells receivers to (a local tool:
/// plain comparison is fine here; a receiver in production compares in constant time).
fn verify(secret: &Secret, headers: &HeaderMap, body: &[u8]) -> Result<(), String> {
    let header = |name: &str| {
        headers.get(name).and_then(|v| v.to_str().ok()).ok_or_else(|| format!("no {name} header"))
    };
    if header("x-wasmhook-signature")? != wasmhook_signature(secret, body) {
        return Err("X-Wasmhook-Signature does not match the body".into());
    }
    let timestamp: i64 =
        header("webhook-timestamp")?.parse().map_err(|_| "webhook-timestamp is not a number".to_owned())?;
    let expected = standard_signature(&[secret], header("webhook-id")?, timestamp, body);
    if !header("webhook-signature")?.split(' ').any(|signature| signature == expected) {
        return Err("webhook-signature does not match".into());
    }
    Ok(())
}
