//! End-to-end load: the real `wasmhook` binary (release), a local receiver, the `json`
//! connector in the path. Everything runs on this machine's 2 cores: the load generator and
//! the receiver compete with the server.
//!
//! - latency: events at a steady 1,000/s for 10 s; for each, the time from sending
//!   `POST /v1/events` to the signed delivery arriving at the receiver (p50, p99).
//! - throughput: 100,000 events over 4 webhooks, sent in batches of 100 as fast as the server
//!   takes them; deliveries/s at the receiver.
//! - soak (`WASMHOOK_SOAK_SECS`, default 0 = skipped): steady load with a short retention,
//!   printing the database's size on disk every 10 s.
//!
//! Run: `cargo bench -p wasmhook --bench e2e`.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

struct Arrivals {
    at: Mutex<HashMap<String, Instant>>,
    count: std::sync::atomic::AtomicUsize,
}

async fn receiver() -> (String, Arc<Arrivals>) {
    let arrivals = Arc::new(Arrivals { at: Mutex::default(), count: Default::default() });
    let seen = arrivals.clone();
    let app = axum::Router::new().fallback(move |body: axum::body::Bytes| {
        let seen = seen.clone();
        async move {
            let now = Instant::now();
            let id = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["id"].as_str().map(str::to_owned));
            if let Some(id) = id {
                seen.at.lock().unwrap().entry(id).or_insert(now);
            }
            seen.count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            "ok"
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, arrivals)
}

fn start_server(data: &std::path::Path, extra: &[&str]) -> (Child, String) {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_wasmhook"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--operator-token",
            "op",
            "--allow-private-destinations",
            "--data-dir",
        ])
        .arg(data.join("data"))
        .arg("--cache-dir")
        .arg(data.join("cache"))
        .args(extra)
        .env("RUST_LOG", "warn,wasmhook::server=info")
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let address = loop {
        let line = lines.next().unwrap().unwrap();
        if let Some(rest) = line.split("address=").nth(1) {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (child, format!("http://{address}"))
}

fn event(id: &str, project: &str) -> serde_json::Value {
    json!({"id": id, "event": "TODO_CREATED", "companyId": "c", "projectId": project, "userId": "u",
           "currentValue": {"title": "Draft the launch announcement", "done": false, "position": 3}})
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

async fn latency(client: &reqwest::Client, base: &str, arrivals: &Arrivals) {
    let rate = 1_000u64;
    let seconds = 10u64;
    let mut sent_at = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
    let mut tasks = Vec::new();
    for i in 0..rate * seconds {
        tick.tick().await;
        let id = format!("lat{i}");
        sent_at.insert(id.clone(), Instant::now());
        let (client, url) = (client.clone(), format!("{base}/v1/events"));
        tasks.push(tokio::spawn(async move {
            let response = client.post(url).bearer_auth("op").json(&event(&id, "p")).send().await.unwrap();
            assert_eq!(response.status(), 202);
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    wait_for(arrivals, sent_at.len()).await;
    let at = arrivals.at.lock().unwrap();
    let mut latencies: Vec<Duration> =
        sent_at.iter().map(|(id, sent)| at[id].duration_since(*sent)).collect();
    latencies.sort();
    println!(
        "latency at {rate} events/s for {seconds} s: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (send → delivered)",
        percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().unwrap().as_secs_f64() * 1e3
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

async fn wait_for(arrivals: &Arrivals, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(600);
    while arrivals.at.lock().unwrap().len() < n {
        assert!(Instant::now() < deadline, "deliveries stopped arriving");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn soak(client: &reqwest::Client, base: &str, data: &std::path::Path, seconds: u64) {
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
            let bytes = fs_size(&data.join("data/db"));
            println!(
                "soak t={:>4}s events={i:>8} db on disk {:.1} MiB",
                start.elapsed().as_secs(),
                bytes as f64 / (1 << 20) as f64
            );
        }
    }
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
        let (mut child, base) = start_server(data.path(), &[]);
        let (url, arrivals) = receiver().await;
        let client = reqwest::Client::new();
        let hook = |project: &str| {
            json!({"name": "load", "url": url, "metadata": {"events": [], "projectIds": [project]}})
        };
        let create = |hook: serde_json::Value| {
            let request = client.post(format!("{base}/v1/webhooks")).bearer_auth("op").json(&hook);
            async move { assert_eq!(request.send().await.unwrap().status(), 201) }
        };
        create(hook("p")).await;
        latency(&client, &base, &arrivals).await;
        for i in 0..WEBHOOKS {
            create(hook(&format!("t{i}"))).await;
        }
        throughput(&client, &base, &arrivals).await;
        child.kill().unwrap();
        if soak_secs > 0 {
            let data = tempfile::tempdir().unwrap();
            std::fs::write(data.path().join("soak.toml"), "retention = \"30s\"\n").unwrap();
            let config = data.path().join("soak.toml");
            let (mut child, base) = start_server(data.path(), &["--config", config.to_str().unwrap()]);
            let response = client
                .post(format!("{base}/v1/webhooks"))
                .bearer_auth("op")
                .json(&hook("p"))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 201);
            soak(&client, &base, data.path(), soak_secs).await;
            child.kill().unwrap();
        }
    });
}
