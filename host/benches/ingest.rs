//! Front half of the pipeline: matching cost as webhooks grow, and durable ingest rate.
//!
//! - matching: one event against an index of 10, 1,000 and 100,000 webhooks, where the
//!   event always reaches the same 4 webhooks (the rest watch other projects and
//!   companies). Cost should not grow with the index.
//! - ingest: events/s through `POST /v1/events` on the real router over loopback HTTP,
//!   each answered only after its write is durable (group commit), 64 requests in flight.
//!
//! Run: `cargo bench -p wasmhook --bench ingest`.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use serde_json::json;
use wasmhook::access::Companies;
use wasmhook::matching::{MatchIndex, Probe};
use wasmhook::tryout::sample_webhook;

fn index_of(n: usize) -> MatchIndex {
    let mut index = MatchIndex::default();
    // Each company's webhooks belong to one user who may see that company.
    let mut add = |id: String, events: Vec<&str>, projects: Vec<String>, company: String| {
        let mut w = sample_webhook("TODO_CREATED", "p", None, time::OffsetDateTime::UNIX_EPOCH);
        w.id = id;
        w.metadata.events = events.into_iter().map(Into::into).collect();
        w.metadata.project_ids = projects;
        w.created_by_id = format!("user_of_{company}");
        if !matches!(index.companies_of(&w.created_by_id), Companies::Only(ref c) if c.contains(&company)) {
            index.set_companies(&w.created_by_id, Companies::Only([company].into()));
        }
        index.upsert(&w);
    };
    // The 4 that match: exact, any event on the project, company-wide, filtered in.
    add("m1".into(), vec!["TODO_CREATED"], vec!["p0".into()], "c0".into());
    add("m2".into(), vec![], vec!["p0".into()], "c0".into());
    add("m3".into(), vec!["TODO_CREATED", "COMMENT_CREATED"], vec![], "c0".into());
    add("m4".into(), vec![], vec![], "c0".into());
    for i in 4..n {
        let company = format!("c{}", 1 + i % 5_000);
        let project = format!("p{}", 1 + i % 50_000);
        let events = if i % 3 == 0 { vec![] } else { vec!["TODO_CREATED", "TODO_DELETED"] };
        let projects = if i % 4 == 0 { vec![] } else { vec![project] };
        add(format!("w{i}"), events, projects, company);
    }
    index
}

fn bench_matching() {
    let payload = json!({"event": "TODO_CREATED", "currentValue": {"title": "Launch"}});
    let probe = Probe::with_payload("TODO_CREATED", "c0", "p0", &payload);
    let mut baseline = None;
    println!("{:>9} {:>12} {:>8}", "webhooks", "per event", "vs 10");
    for n in [10, 1_000, 100_000] {
        let index = index_of(n);
        assert_eq!(index.matches(&probe).routes.len(), 4);
        let per_batch = 20_000u32;
        let mut samples: Vec<Duration> = (0..15)
            .map(|_| {
                let start = Instant::now();
                for _ in 0..per_batch {
                    std::hint::black_box(index.matches(std::hint::black_box(&probe)));
                }
                start.elapsed() / per_batch
            })
            .collect();
        samples.sort();
        let median = samples[samples.len() / 2];
        let base = *baseline.get_or_insert(median);
        println!(
            "{n:>9} {:>9.0} ns {:>7.2}x",
            median.as_secs_f64() * 1e9,
            median.as_secs_f64() / base.as_secs_f64()
        );
    }
}

fn bench_ingest() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let data = tempfile::tempdir().unwrap();
        let config = wasmhook::Config {
            data_dir: data.path().to_owned(),
            cache_dir: data.path().join("cache"),
            operator_tokens: vec!["op".into()],
            allow_private_destinations: true,
            ..Default::default()
        };
        let state = wasmhook::AppState::open(config).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let http = state.config.http.clone();
        let router = wasmhook::api::router(state);
        tokio::spawn(wasmhook::http_server::run(listener, router, http, std::future::pending()));
        let client = reqwest::Client::new();
        let hook = json!({"name": "h", "url": "http://127.0.0.1:9/", "metadata": {"events": [], "projectIds": []}});
        client.post(format!("{base}/v1/webhooks")).bearer_auth("op").json(&hook).send().await.unwrap();

        let total = 20_000usize;
        let in_flight = 64usize;
        let start = Instant::now();
        let mut tasks = Vec::new();
        for worker in 0..in_flight {
            let (client, base) = (client.clone(), base.clone());
            tasks.push(tokio::spawn(async move {
                for i in (worker..total).step_by(in_flight) {
                    let event = json!({"id": format!("e{i}"), "event": "TODO_CREATED", "companyId": "c", "projectId": "p",
                        "currentValue": {"title": "Draft the launch announcement", "position": i}});
                    let response = client.post(format!("{base}/v1/events")).bearer_auth("op").json(&event).send().await.unwrap();
                    assert_eq!(response.status(), 202);
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let elapsed = start.elapsed();
        println!(
            "ingest: {total} durable events (1 matching webhook each) in {:.2} s = {:.0} events/s, {in_flight} in flight",
            elapsed.as_secs_f64(),
            total as f64 / elapsed.as_secs_f64()
        );
    });
}

fn main() {
    bench_matching();
    bench_ingest();
}
