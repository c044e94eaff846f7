//! End-to-end load: the real `wasmhook` binary (release), a local receiver, the `json`
//! connector in the path. Everything runs on this machine's 2 cores: the load generator and
//! the receiver compete with the server.
//!
//! - single events (what users send, the headline): 30,000 events of about 2 KB, one per
//!   `POST /v1/events`, 64 requests in flight, to one webhook; deliveries/s at the receiver
//!   and the server's CPU time per delivered event.
//! - latency: events at a steady 1,000/s for 10 s; for each, the time from sending
//!   `POST /v1/events` to the signed delivery arriving at the receiver (p50, p99).
//! - batches (a friendlier workload): 100,000 events over 4 webhooks, sent in batches of 100
//!   as fast as the server takes them; deliveries/s at the receiver.
//! - soak (`WASMHOOK_SOAK_SECS`, default 0 = skipped): steady load (1,000 events/s) with a
//!   30 s retention, printing the database's size every 10 s (on PostgreSQL, with its
//!   busiest tables').
//!
//! Run: `cargo bench -p wasmhook --bench e2e` (the embedded database). With
//! `WASMHOOK_BENCH_DATABASE=postgres://…/postgres` it runs on a fresh database made on that
//! server (and dropped after), and `WASMHOOK_BENCH_HOSTS=N` starts N hosts on it, the single
//! events spread over them round-robin (with N > 1 only that workload runs).
//! `WASMHOOK_BENCH_SINGLE_ONLY=1` runs only the single events on one host too (comparing one
//! host with several, alternately, takes a third of the time); `WASMHOOK_BENCH_LATENCY_ONLY=1`
//! only the latency at 1,000 events/s, on a fresh database (with N hosts, sent to each in
//! turn). `WASMHOOK_BENCH_PINNED=1` sends the single events to the first host only, the
//! others running (a sender pinned to one host); `WASMHOOK_BENCH_RECEIVER_MS=<ms>` makes the
//! receiver answer that long after each delivery. With N > 1, each workload is warmed up first
//! (events sent to its hosts for 8 s, to the pinned one for 15 s: a host delivers its share of
//! a webhook once its demand is established). `WASMHOOK_BENCH_COLD_WEBHOOK=1` warms the
//! latency's hosts up with another webhook's events instead: the hosts start taking the
//! measured webhook's events with the run.
//! `WASMHOOK_BENCH_SERVER_LOG=<filter>` (e.g. `info`) shows the servers' logs;
//! `WASMHOOK_BENCH_TIMELINE=1` prints the single events' deliveries per half second, and
//! the latency's events over 20 ms per second sent.

#![allow(clippy::unwrap_used)]

#[path = "support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use serde_json::json;

#[path = "../src/store/postgres/testing.rs"]
mod pg_testing;

use support::{Arrivals, event, percentile, receiver, start_server, steady_latencies_over, wait_for};

async fn latency(client: &reqwest::Client, bases: &[String], arrivals: &Arrivals) {
    let (rate, seconds) = (1_000, 10);
    let bases: Vec<&str> = bases.iter().map(String::as_str).collect();
    let latencies = steady_latencies_over(client, &bases, arrivals, rate, seconds, "p", "lat").await;
    println!(
        "latency at {rate} events/s for {seconds} s, {} host(s): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms \
         (send → delivered)",
        bases.len(),
        percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().unwrap().as_secs_f64() * 1e3
    );
}

/// Other hosts learn of a change within a second.
async fn changes_spread(hosts: usize) {
    if hosts > 1 {
        tokio::time::sleep(Duration::from_millis(1_500)).await;
    }
}

/// With several hosts, each delivers its share of a webhook once its demand for it is
/// established, 4–5 s after its first event of it (see `store/postgres/lanes/demand.rs`): as
/// in a deployment in service, events of `project` go to the `senders` in turn for `seconds`
/// first. Called only when several hosts run.
async fn warm_up(
    client: &reqwest::Client,
    senders: &[String],
    arrivals: &Arrivals,
    project: &str,
    seconds: u64,
) {
    let senders: Vec<&str> = senders.iter().map(String::as_str).collect();
    steady_latencies_over(client, &senders, arrivals, 100, seconds, project, &format!("warm-{project}"))
        .await;
}

/// Events sent to every host in turn: 6 s proved too close, a run could start before the last
/// host's demand was established.
const WARM_UP_SECS: u64 = 8;

/// A sender pinned to one host: until its demand is established, the lane's host delivers
/// what it takes, and holds demand of its own for `linger` (5 s) after; the pinned host runs
/// the whole cap once the others have read that demand's end, a beat or two later.
const PINNED_WARM_UP_SECS: u64 = 15;

async fn single_events(client: &reqwest::Client, bases: &[String], arrivals: &Arrivals, pids: &[u32]) {
    let run = support::single_events(client, bases, arrivals, pids, 30_000).await;
    println!(
        "single events: {} events of ~2 KB, {} in flight, 1 webhook, {} host(s): accepted {:.0}/s, \
         {:.0} deliveries/s, server CPU {:.3} ms per event ({:.2} cores); PostgreSQL CPU {:.3} ms per event \
         ({:.2} cores); load generator and receiver CPU {:.3} ms per event",
        run.total,
        support::IN_FLIGHT,
        bases.len(),
        run.accepted_per_s,
        run.delivered_per_s,
        run.server_cpu_ms,
        run.server_cores,
        run.database_cpu_ms,
        run.database_cores,
        run.bench_cpu_ms
    );
}

/// Throughput spreads events over this many webhooks (one project each): one webhook's
/// concurrency cap (8 in flight by default) would otherwise bound the figure by the receiver's
/// round trip rather than by the server's work.
const WEBHOOKS: usize = 4;

async fn throughput(client: &reqwest::Client, base: &str, arrivals: &Arrivals) {
    // A high-volume producer sends batches: the delivery side is what this measures.
    let (total, batch, in_flight) = (100_000usize, 100usize, 8usize);
    let before = arrivals.count.load(std::sync::atomic::Ordering::Relaxed);
    let start = Instant::now();
    let tasks: Vec<_> = (0..in_flight)
        .map(|worker| {
            let (client, url) = (client.clone(), format!("{base}/v1/events/batch"));
            tokio::spawn(async move {
                for first in (worker * batch..total).step_by(in_flight * batch) {
                    let events: Vec<_> = (first..first + batch)
                        .map(|i| event(&format!("tp{i}"), &format!("t{}", i % WEBHOOKS)))
                        .collect();
                    let response = client
                        .post(&url)
                        .bearer_auth("op")
                        .json(&json!({"events": events}))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(response.status(), 202);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let accepted = start.elapsed();
    wait_for(arrivals, before + total).await;
    let delivered = start.elapsed();
    println!(
        "throughput: {total} events in batches of {batch} accepted in {:.2} s ({:.0}/s), all delivered in {:.2} s ({:.0} deliveries/s)",
        accepted.as_secs_f64(),
        total as f64 / accepted.as_secs_f64(),
        delivered.as_secs_f64(),
        total as f64 / delivered.as_secs_f64()
    );
}

async fn soak(
    client: &reqwest::Client,
    base: &str,
    data: &std::path::Path,
    database: Option<&str>,
    seconds: u64,
) {
    let start = Instant::now();
    let mut i = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    let mut report = Instant::now();
    while start.elapsed() < Duration::from_secs(seconds) {
        tick.tick().await;
        let (client, url) = (client.clone(), format!("{base}/v1/events"));
        let id = format!("soak{i}");
        tokio::spawn(async move { client.post(url).bearer_auth("op").json(&event(&id, "p")).send().await });
        i += 1;
        if report.elapsed() >= Duration::from_secs(10) {
            report = Instant::now();
            let size = match database {
                Some(url) => database_sizes(url).await,
                None => {
                    format!("db on disk {:.1} MiB", fs_size(&data.join("data/db")) as f64 / (1 << 20) as f64)
                }
            };
            println!("soak t={:>4}s events={i:>8} {size}", start.elapsed().as_secs());
        }
    }
}

/// The PostgreSQL database's size, and its busiest tables' (with their indexes and TOAST).
async fn database_sizes(url: &str) -> String {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let mib = |bytes: i64| bytes as f64 / (1 << 20) as f64;
    let total: i64 =
        client.query_one("SELECT pg_database_size(current_database())", &[]).await.unwrap().get(0);
    let mut text = format!("database {:.1} MiB:", mib(total));
    for table in ["events", "deliveries", "attempts", "queue"] {
        let row =
            client.query_one("SELECT pg_total_relation_size($1::text::regclass)", &[&table]).await.unwrap();
        text.push_str(&format!(" {table} {:.1}", mib(row.get(0))));
    }
    text
}

fn fs_size(path: &std::path::Path) -> u64 {
    std::fs::read_dir(path)
        .map(|dir| {
            dir.flatten()
                .map(|e| {
                    if e.path().is_dir() {
                        fs_size(&e.path())
                    } else {
                        e.metadata().map(|m| m.len()).unwrap_or(0)
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let data = tempfile::tempdir().unwrap();
        let soak_secs: u64 =
            std::env::var("WASMHOOK_SOAK_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(0);
        let hosts: usize = std::env::var("WASMHOOK_BENCH_HOSTS").ok().and_then(|s| s.parse().ok()).unwrap_or(1);
        // On PostgreSQL: a fresh database, dropped when the bench ends; hosts share it and a key.
        let database = match std::env::var("WASMHOOK_BENCH_DATABASE") {
            Ok(server) => {
                // SAFETY: set before any thread of this process reads the environment.
                unsafe { std::env::set_var("WASMHOOK_TEST_DATABASE_URL", server) };
                Some(pg_testing::TestDb::create().await.expect("the bench's PostgreSQL answers"))
            }
            Err(_) => None,
        };
        let shared = data.path().join("shared.toml");
        std::fs::write(&shared, "secret-key = \"BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\"\n").unwrap();
        let mut storage = vec!["--config".to_owned(), shared.display().to_string()];
        if let Some(database) = &database {
            storage.extend(["--database".to_owned(), database.url.clone(), "--migrate".to_owned()]);
        }
        let storage: Vec<&str> = storage.iter().map(String::as_str).collect();
        let mut servers: Vec<(std::process::Child, String)> = (0..hosts)
            .map(|i| start_server(&data.path().join(format!("host{i}")), &storage))
            .collect();
        let bases: Vec<String> = servers.iter().map(|(_, base)| base.clone()).collect();
        let pids: Vec<u32> = servers.iter().map(|(child, _)| child.id()).collect();
        let base = bases[0].clone();
        let (url, arrivals) = receiver().await;
        let client = reqwest::Client::new();
        let hook = |project: &str| {
            json!({"name": "load", "url": url, "metadata": {"events": [], "projectIds": [project]}})
        };
        let create = |hook: serde_json::Value| {
            let request = client.post(format!("{base}/v1/webhooks")).bearer_auth("op").json(&hook);
            async move { assert_eq!(request.send().await.unwrap().status(), 201) }
        };
        create(hook("single")).await;
        changes_spread(hosts).await;
        let latency_only = std::env::var_os("WASMHOOK_BENCH_LATENCY_ONLY").is_some();
        if !latency_only {
            // A sender pinned to the first host (a TCP load balancer keeping its connections).
            let (senders, seconds) = match std::env::var_os("WASMHOOK_BENCH_PINNED") {
                Some(_) => (&bases[..1], PINNED_WARM_UP_SECS),
                None => (&bases[..], WARM_UP_SECS),
            };
            if hosts > 1 {
                warm_up(&client, senders, &arrivals, "single", seconds).await;
            }
            single_events(&client, senders, &arrivals, &pids).await;
        }
        if latency_only {
            create(hook("p")).await;
            changes_spread(hosts).await;
            let cold = std::env::var_os("WASMHOOK_BENCH_COLD_WEBHOOK").is_some();
            if hosts > 1 {
                warm_up(&client, &bases, &arrivals, if cold { "single" } else { "p" }, WARM_UP_SECS).await;
            }
            latency(&client, &bases, &arrivals).await;
        }
        if latency_only || hosts > 1 || std::env::var_os("WASMHOOK_BENCH_SINGLE_ONLY").is_some() {
            for (mut child, _) in servers {
                child.kill().unwrap();
            }
            return;
        }
        create(hook("p")).await;
        latency(&client, &bases, &arrivals).await;
        for i in 0..WEBHOOKS {
            create(hook(&format!("t{i}"))).await;
        }
        throughput(&client, &base, &arrivals).await;
        servers[0].0.kill().unwrap();
        if soak_secs > 0 {
            let data = tempfile::tempdir().unwrap();
            std::fs::write(data.path().join("soak.toml"), "retention = \"30s\"\n").unwrap();
            let config = data.path().join("soak.toml");
            let mut args = vec!["--config".to_owned(), config.display().to_string()];
            let soak_database = match &database {
                Some(_) => Some(pg_testing::TestDb::create().await.expect("the bench's PostgreSQL answers")),
                None => None,
            };
            if let Some(db) = &soak_database {
                args.extend(["--database".to_owned(), db.url.clone(), "--migrate".to_owned()]);
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let (mut child, base) = start_server(data.path(), &args);
            let response = client
                .post(format!("{base}/v1/webhooks"))
                .bearer_auth("op")
                .json(&hook("p"))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 201);
            let url = soak_database.as_ref().map(|db| db.url.as_str());
            soak(&client, &base, data.path(), url, soak_secs).await;
            child.kill().unwrap();
        }
    });
}
