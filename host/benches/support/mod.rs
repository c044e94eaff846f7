//! What the end-to-end benches share: the real binary started on a free port, a receiver
//! that records when each event arrives, sample events, percentiles.

#![allow(dead_code)] // each bench uses its own part

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

pub struct Arrivals {
    pub at: Mutex<HashMap<String, Instant>>,
    pub count: std::sync::atomic::AtomicUsize,
}

/// What the receiver reads of a delivered body.
#[derive(serde::Deserialize)]
struct Delivered<'a> {
    #[serde(borrow)]
    id: std::borrow::Cow<'a, str>,
}

/// A receiver recording each delivery's arrival; with `WASMHOOK_BENCH_RECEIVER_MS=<ms>` it
/// answers that long after (a slow receiver: the webhook's concurrency cap then bounds it).
pub async fn receiver() -> (String, Arc<Arrivals>) {
    let arrivals = Arc::new(Arrivals { at: Mutex::default(), count: Default::default() });
    let seen = arrivals.clone();
    let answer_after = std::env::var("WASMHOOK_BENCH_RECEIVER_MS").ok().and_then(|ms| ms.parse().ok());
    let app = axum::Router::new().fallback(move |body: axum::body::Bytes| {
        let seen = seen.clone();
        async move {
            let now = Instant::now();
            // Only the id is read: the receiver's own cost is not the server's.
            if let Ok(Delivered { id }) = serde_json::from_slice::<Delivered>(&body) {
                seen.at.lock().unwrap().entry(id.into_owned()).or_insert(now);
            }
            seen.count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if let Some(ms) = answer_after {
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            "ok"
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, arrivals)
}

pub fn start_server(data: &std::path::Path, extra: &[&str]) -> (Child, String) {
    use std::io::BufRead;
    // `WASMHOOK_BENCH_SERVER_LOG=<filter>` shows the server's log at that level (its address
    // line is always logged, and read below).
    let log = std::env::var("WASMHOOK_BENCH_SERVER_LOG").ok();
    let filter = format!("{},wasmhook::server=info", log.as_deref().unwrap_or("warn"));
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
        .env("RUST_LOG", filter)
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
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if log.is_some() {
                eprintln!("server: {line}");
            }
        }
    });
    (child, format!("http://{address}"))
}

pub fn event(id: &str, project: &str) -> serde_json::Value {
    json!({"id": id, "event": "TODO_CREATED", "companyId": "c", "projectId": project, "userId": "u",
           "currentValue": {"title": "Draft the launch announcement", "done": false, "position": 3}})
}

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

pub async fn wait_for(arrivals: &Arrivals, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(600);
    while arrivals.at.lock().unwrap().len() < n {
        assert!(Instant::now() < deadline, "deliveries stopped arriving");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Sends `rate` events/s for `seconds` (ids `<prefix><n>`, project `project`) and returns
/// each one's time from sending to arriving at the receiver, sorted.
pub async fn steady_latencies(
    client: &reqwest::Client,
    base: &str,
    arrivals: &Arrivals,
    rate: u64,
    seconds: u64,
    project: &str,
    prefix: &str,
) -> Vec<Duration> {
    steady_latencies_over(client, &[base], arrivals, rate, seconds, project, prefix).await
}

/// As [`steady_latencies`], the events sent to each of `bases` (hosts) in turn.
pub async fn steady_latencies_over(
    client: &reqwest::Client,
    bases: &[&str],
    arrivals: &Arrivals,
    rate: u64,
    seconds: u64,
    project: &str,
    prefix: &str,
) -> Vec<Duration> {
    let mut sent_at = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
    let mut tasks = Vec::new();
    for i in 0..rate * seconds {
        tick.tick().await;
        let id = format!("{prefix}{i}");
        sent_at.insert(id.clone(), Instant::now());
        let base = bases[i as usize % bases.len()];
        let (client, url, project) = (client.clone(), format!("{base}/v1/events"), project.to_owned());
        tasks.push(tokio::spawn(async move {
            let response =
                client.post(url).bearer_auth("op").json(&event(&id, &project)).send().await.unwrap();
            assert_eq!(response.status(), 202);
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(600);
    while sent_at.keys().any(|id| !arrivals.at.lock().unwrap().contains_key(id)) {
        assert!(Instant::now() < deadline, "deliveries stopped arriving");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let at = arrivals.at.lock().unwrap();
    if std::env::var_os("WASMHOOK_BENCH_TIMELINE").is_some() {
        print_slow(&sent_at, &at, seconds);
    }
    let mut latencies: Vec<Duration> =
        sent_at.iter().map(|(id, sent)| at[id].duration_since(*sent)).collect();
    latencies.sort();
    latencies
}

/// How many events took over 20 ms, per second of sending (where a latency tail comes from).
fn print_slow(sent_at: &HashMap<String, Instant>, at: &HashMap<String, Instant>, seconds: u64) {
    let Some(start) = sent_at.values().min() else { return };
    let mut slow = vec![0usize; seconds as usize + 1];
    for (id, sent) in sent_at {
        if at[id].duration_since(*sent) > Duration::from_millis(20) {
            let second = sent.duration_since(*start).as_secs() as usize;
            slow[second.min(seconds as usize)] += 1;
        }
    }
    println!("events over 20 ms, per second sent: {slow:?}");
}

/// The resident memory of process `pid`, in MiB.
pub fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

/// CPU time (user + system) process `pid` has used so far.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command (which may hold spaces) start after its closing parenthesis.
    let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the whole line; clock ticks are 1/100 s on Linux.
    (ticks(11) + ticks(12)) / 100.0
}

/// CPU seconds of every PostgreSQL process on this machine (the benches' database runs here).
pub fn postgres_cpu_seconds() -> f64 {
    let Ok(entries) = std::fs::read_dir("/proc") else { return 0.0 };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "postgres")
        })
        .map(cpu_seconds)
        .sum()
}

/// An event whose record carries about 2 KB of data, as the targets measure.
pub fn event_2kb(id: &str, project: &str) -> serde_json::Value {
    let mut event = event(id, project);
    event["currentValue"]["description"] = json!("Launch plan: ".repeat(150));
    event
}

/// Requests in flight when sending single events (the targets' 64 senders).
pub const IN_FLIGHT: usize = 64;

/// What a run of single events measured.
pub struct SingleEvents {
    pub total: usize,
    pub accepted_per_s: f64,
    pub delivered_per_s: f64,
    /// The servers' CPU time per delivered event, and in cores over the run.
    pub server_cpu_ms: f64,
    pub server_cores: f64,
    pub database_cpu_ms: f64,
    pub database_cores: f64,
    /// This process's (load generator and receiver) CPU time per event.
    pub bench_cpu_ms: f64,
}

/// Deliveries per half second from `start`, and when the last event was accepted: shows
/// whether delivery keeps up while events come in or catches up after.
fn print_timeline(arrivals: &Arrivals, start: Instant, accepted: Duration, delivered: Duration) {
    const STEP_MS: u128 = 500;
    let mut steps = vec![0usize; (delivered.as_millis() / STEP_MS) as usize + 1];
    let last = steps.len() - 1;
    for at in arrivals.at.lock().unwrap().values() {
        if let Some(after) = at.checked_duration_since(start) {
            steps[((after.as_millis() / STEP_MS) as usize).min(last)] += 1;
        }
    }
    println!(
        "deliveries per {STEP_MS} ms (the last event accepted at {:.1} s): {steps:?}",
        accepted.as_secs_f64()
    );
}

/// Sends `total` events of about 2 KB (project `single`), one per `POST /v1/events`, with
/// [`IN_FLIGHT`] requests in flight spread round-robin over `bases`, and waits until all have
/// arrived.
pub async fn single_events(
    client: &reqwest::Client,
    bases: &[String],
    arrivals: &Arrivals,
    pids: &[u32],
    total: usize,
) -> SingleEvents {
    let before = arrivals.at.lock().unwrap().len();
    let server_cpu = || pids.iter().map(|pid| cpu_seconds(*pid)).sum::<f64>();
    let (cpu_before, database_cpu_before) = (server_cpu(), postgres_cpu_seconds());
    let bench_cpu_before = cpu_seconds(std::process::id());
    // Bodies encoded before the clock starts: the load generator's own cost is not the server's.
    let bodies: Arc<Vec<bytes::Bytes>> = Arc::new(
        (0..total)
            .map(|i| serde_json::to_vec(&event_2kb(&format!("single{i}"), "single")).unwrap().into())
            .collect(),
    );
    let start = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let senders: Vec<_> = (0..IN_FLIGHT)
        .map(|_| {
            let urls: Vec<String> = bases.iter().map(|base| format!("{base}/v1/events")).collect();
            let (client, next, bodies) = (client.clone(), next.clone(), bodies.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= total {
                        break;
                    }
                    let url = &urls[i % urls.len()];
                    let response = client
                        .post(url)
                        .bearer_auth("op")
                        .header("content-type", "application/json")
                        .body(bodies[i].clone())
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(response.status(), 202);
                }
            })
        })
        .collect();
    for sender in senders {
        sender.await.unwrap();
    }
    let accepted = start.elapsed();
    wait_for(arrivals, before + total).await;
    let delivered = start.elapsed();
    if std::env::var_os("WASMHOOK_BENCH_TIMELINE").is_some() {
        print_timeline(arrivals, start, accepted, delivered);
    }
    let cpu = server_cpu() - cpu_before;
    let database_cpu = postgres_cpu_seconds() - database_cpu_before;
    let bench_cpu = cpu_seconds(std::process::id()) - bench_cpu_before;
    SingleEvents {
        total,
        accepted_per_s: total as f64 / accepted.as_secs_f64(),
        delivered_per_s: total as f64 / delivered.as_secs_f64(),
        server_cpu_ms: cpu * 1e3 / total as f64,
        server_cores: cpu / delivered.as_secs_f64(),
        database_cpu_ms: database_cpu * 1e3 / total as f64,
        database_cores: database_cpu / delivered.as_secs_f64(),
        bench_cpu_ms: bench_cpu * 1e3 / total as f64,
    }
}
