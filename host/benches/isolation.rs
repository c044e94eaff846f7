//! Tenants' plugins kept apart, measured on the real `wasmhook` binary (release) with its
//! receiver and load generator on the same 2 cores.
//!
//! - isolation: a healthy `json` webhook's send → delivered latency at 500 events/s for 20 s,
//!   first alone, then while a plugin that loops forever serves three other users' webhooks
//!   (100 events/s reach them).
//! - memory: the server's resident memory while a plugin that keeps 60 MiB between calls
//!   serves six owners, then once its instances have been idle past their TTL; then its peak
//!   during 48 concurrent previews of a plugin that allocates without end.
//!
//! Run: `cargo bench -p wasmhook --bench isolation`.

#![allow(clippy::unwrap_used)]

#[path = "support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use support::{percentile, receiver, rss_mib, start_server, steady_latencies};

const RATE: u64 = 500;
const SECONDS: u64 = 20;

async fn post(client: &reqwest::Client, token: &str, url: String, body: Value) -> (u16, Value) {
    let response = client.post(url).bearer_auth(token).json(&body).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
}

/// A user token with every company.
async fn user(client: &reqwest::Client, base: &str, name: &str) -> String {
    let body = json!({"userId": name, "allCompanies": true});
    let (status, created) = post(client, "op", format!("{base}/v1/tokens"), body).await;
    assert_eq!(status, 201, "{created}");
    created["token"].as_str().unwrap().to_owned()
}

async fn webhook(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    url: &str,
    project: &str,
    connector: Value,
) {
    let body = json!({"name": project, "url": url, "metadata": {"events": [], "projectIds": [project]},
        "connector": connector});
    let (status, created) = post(client, token, format!("{base}/v1/webhooks"), body).await;
    assert_eq!(status, 201, "{created}");
}

fn report(what: &str, latencies: &[Duration]) -> Duration {
    let p99 = percentile(latencies, 0.99);
    println!(
        "{what}: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} deliveries)",
        percentile(latencies, 0.50).as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        latencies.last().unwrap().as_secs_f64() * 1e3,
        latencies.len()
    );
    p99
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let data = tempfile::tempdir().unwrap();
        let (mut child, base) = start_server(data.path(), &[]);
        let pid = child.id();
        let (url, arrivals) = receiver().await;
        let client = reqwest::Client::new();
        let hostile = std::fs::read(wasmhook_test_components::HOSTILE).unwrap();
        let upload = client.put(format!("{base}/v1/connectors/hostile")).bearer_auth("op").body(hostile);
        assert_eq!(upload.send().await.unwrap().status(), 200);

        webhook(&client, &base, "op", &url, "healthy", json!({"name": "json"})).await;
        steady_latencies(&client, &base, &arrivals, RATE, 2, "healthy", "warm").await;
        let alone = steady_latencies(&client, &base, &arrivals, RATE, SECONDS, "healthy", "alone").await;
        let alone = report("healthy webhook alone", &alone);

        for i in 0..3 {
            let token = user(&client, &base, &format!("noisy{i}")).await;
            let looping = json!({"name": "hostile", "config": {"mode": "loop"}});
            webhook(&client, &base, &token, "http://127.0.0.1:9/never", "noisy", looping).await;
        }
        let noise = {
            let (client, base) = (client.clone(), base.clone());
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_millis(10));
                for i in 0..100 * (SECONDS + 4) {
                    tick.tick().await;
                    let (client, url) = (client.clone(), format!("{base}/v1/events"));
                    tokio::spawn(async move {
                        client.post(url).bearer_auth("op").json(&support::event(&format!("noise{i}"), "noisy")).send().await
                    });
                }
            })
        };
        tokio::time::sleep(Duration::from_secs(2)).await;
        let shared = steady_latencies(&client, &base, &arrivals, RATE, SECONDS, "healthy", "shared").await;
        let shared = report("healthy webhook, a looping plugin on 3 other users' webhooks", &shared);
        println!("p99 ratio (target ≤ 2×): {:.2}×", shared.as_secs_f64() / alone.as_secs_f64());
        noise.abort();

        println!("server memory before the hoarding plugin: {:.0} MiB", rss_mib(pid));
        let before = arrivals.count.load(std::sync::atomic::Ordering::Relaxed);
        for i in 0..6 {
            let token = user(&client, &base, &format!("hoarder{i}")).await;
            let hoarding = json!({"name": "hostile", "config": {"mode": "hoard"}});
            let project = format!("hoard{i}");
            webhook(&client, &base, &token, &url, &project, hoarding).await;
            let (status, _) =
                post(&client, "op", format!("{base}/v1/events"), support::event(&format!("h{i}"), &project)).await;
            assert_eq!(status, 202);
        }
        while arrivals.count.load(std::sync::atomic::Ordering::Relaxed) < before + 6 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        println!("server memory with 6 owners' hoarding instances idle: {:.0} MiB", rss_mib(pid));
        tokio::time::sleep(Duration::from_secs(75)).await;
        println!("server memory after they idled past their TTL (60 s): {:.0} MiB", rss_mib(pid));

        let mut tokens = Vec::new();
        for i in 0..8 {
            tokens.push(user(&client, &base, &format!("previewer{i}")).await);
        }
        let bomb = json!({"event": {"event": "TODO_CREATED", "companyId": "c", "projectId": "p"},
            "config": {"mode": "alloc"}});
        let started = Instant::now();
        let previews: Vec<_> = (0..48)
            .map(|i| {
                let (client, token) = (client.clone(), tokens[i % tokens.len()].clone());
                let url = format!("{base}/v1/connectors/hostile/preview");
                let bomb = bomb.clone();
                tokio::spawn(async move { post(&client, &token, url, bomb).await.0 })
            })
            .collect();
        let mut peak = 0f64;
        while !previews.iter().all(|p| p.is_finished()) {
            peak = peak.max(rss_mib(pid));
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut statuses = std::collections::BTreeMap::new();
        for preview in previews {
            *statuses.entry(preview.await.unwrap()).or_insert(0) += 1;
        }
        println!(
            "48 concurrent previews of a memory bomb: answers {statuses:?}, peak server memory {peak:.0} MiB, done in {:.2} s",
            started.elapsed().as_secs_f64()
        );
        child.kill().unwrap();
    });
}
