//! `wasmhook deliveries`, `wasmhook recover` and `wasmhook retry`: a webhook's delivery log,
//! and putting deliveries back in the queue.

use clap::Args;
use reqwest::Method;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::Failure;
use super::output::{cell, items, print_json, print_table};
use super::remote::{Body, ServerArgs};

/// A webhook's delivery log, newest first.
#[derive(Args)]
pub struct DeliveriesArgs {
    /// The webhook's id (`wh_…`).
    webhook: String,
    /// Only deliveries in this state.
    #[arg(long, value_parser = ["pending", "paused", "succeeded", "filtered", "failed", "plugin_error"])]
    status: Option<String>,
    /// Only deliveries created since then: a time (RFC 3339) or how long ago (`30m`, `2h`).
    #[arg(long, value_parser = since)]
    since: Option<OffsetDateTime>,
    /// How many at most (1–200).
    #[arg(long, default_value_t = 20)]
    limit: usize,
    /// Print the API's JSON, every attempt included, instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    server: ServerArgs,
}

/// Re-queue a webhook's failed and paused deliveries (enable it first).
#[derive(Args)]
pub struct RecoverArgs {
    /// The webhook's id (`wh_…`).
    webhook: String,
    /// Those created since then: a time (RFC 3339) or how long ago (`30m`, `2h`).
    #[arg(long, value_parser = since)]
    since: OffsetDateTime,
    #[command(flatten)]
    server: ServerArgs,
}

/// Send one delivery again (a finished one: succeeded, failed or filtered).
#[derive(Args)]
pub struct RetryArgs {
    /// The delivery's id (`dlv_…`, from `wasmhook deliveries`).
    delivery: String,
    #[command(flatten)]
    server: ServerArgs,
}

pub async fn log(args: DeliveriesArgs) -> Result<(), Failure> {
    let mut query = format!("limit={}", args.limit);
    if let Some(status) = &args.status {
        query.push_str(&format!("&status={status}"));
    }
    if let Some(since) = args.since {
        query.push_str(&format!("&since={}", rfc3339(since)));
    }
    let page = args.server.get(&format!("/v1/webhooks/{}/deliveries?{query}", args.webhook)).await?;
    if args.json {
        print_json(&page);
        return Ok(());
    }
    let deliveries = items(&page["data"]);
    if deliveries.is_empty() {
        println!(
            "no deliveries{}",
            if args.status.is_some() || args.since.is_some() { " match" } else { " yet" }
        );
        return Ok(());
    }
    let rows: Vec<Vec<String>> = deliveries.iter().map(row).collect();
    print_table(&["DELIVERY", "EVENT", "STATUS", "CREATED", "ATTEMPTS", "LAST ATTEMPT"], &rows);
    if page["nextCursor"].is_string() {
        println!("(more: raise --limit, or page with the API)");
    }
    Ok(())
}

pub async fn recover(args: RecoverArgs) -> Result<(), Failure> {
    let body = json!({"since": rfc3339(args.since)});
    let path = format!("/v1/webhooks/{}/recover", args.webhook);
    let recovered = args.server.call(Method::POST, &path, Some(Body::Json(body))).await?.unwrap_or_default();
    println!(
        "re-queued {} deliveries of {} created since {}",
        recovered["requeued"],
        args.webhook,
        rfc3339(args.since)
    );
    Ok(())
}

pub async fn retry(args: RetryArgs) -> Result<(), Failure> {
    let path = format!("/v1/deliveries/{}/retry", args.delivery);
    args.server.call(Method::POST, &path, None).await?;
    println!("re-queued {}", args.delivery);
    Ok(())
}

/// `--since`: a time, or a duration before now.
fn since(text: &str) -> Result<OffsetDateTime, String> {
    if let Ok(time) = OffsetDateTime::parse(text, &Rfc3339) {
        return Ok(time);
    }
    match crate::config::parse_schedule(text)?[..] {
        [ago] => Ok(OffsetDateTime::now_utc() - ago),
        _ => Err("expected a time (2026-11-30T09:00:00Z) or how long ago (30m, 2h)".into()),
    }
}

fn rfc3339(time: OffsetDateTime) -> String {
    time.format(&Rfc3339).expect("a time in range formats")
}

/// A delivery as one line of the log: its last attempt in a few words.
fn row(delivery: &Value) -> Vec<String> {
    let attempts = items(&delivery["attempts"]);
    let last = attempts.last().map_or_else(
        || cell(delivery, "error"),
        |attempt| {
            let outcome = match (&attempt["statusCode"], &attempt["error"]) {
                (Value::Number(code), _) => format!("HTTP {code}"),
                (_, Value::String(error)) => error.clone(),
                _ => "-".to_owned(),
            };
            format!("{outcome} in {} ms", attempt["latencyMs"])
        },
    );
    vec![
        cell(delivery, "id"),
        cell(delivery, "eventType"),
        cell(delivery, "status"),
        cell(delivery, "createdAt"),
        attempts.len().to_string(),
        last,
    ]
}
