//! Several hosts on one PostgreSQL database: three real `wasmhook serve` processes sharing
//! the database, the secret key and the operator token. Run in the suite's PostgreSQL pass
//! (they need PostgreSQL whatever the backend under test, so the sled pass leaves them out).

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::serve::{Server, start_with};
use crate::support::{Received, Receiver, TestDb, binary, eventually, on_postgres, shared_cache_dir};

/// The key every host seals and opens webhook secrets with.
const SECRET_KEY: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";

/// A deployment: hosts sharing one database, each with a data directory of its own. The
/// database is dropped with it (declare the hosts after it, so they stop first).
struct Deployment {
    url: String,
    dirs: Vec<tempfile::TempDir>,
    /// More of every host's config file.
    config: String,
    database: TestDb,
}

impl Deployment {
    async fn new() -> Deployment {
        let database = TestDb::create().await.expect("a PostgreSQL server for the suite");
        Deployment { url: database.url.clone(), dirs: Vec::new(), config: String::new(), database }
    }

    /// Starts one more host (`--migrate`: whichever starts first applies the schema).
    fn start(&mut self) -> Server {
        let dir = tempfile::tempdir().unwrap();
        self.prepare(dir.path());
        let config = dir.path().join("shared.toml");
        let host = start_with(
            dir.path(),
            &shared_cache_dir(),
            &[
                "--operator-token",
                "op",
                "--allow-private-destinations",
                "--retry-schedule",
                "200ms,200ms,200ms,200ms",
                "--config",
                config.to_str().unwrap(),
            ],
        );
        self.dirs.push(dir);
        host
    }

    /// The shared configuration, and the database the suite's helpers should hand the host.
    fn prepare(&self, dir: &Path) {
        let config = format!("secret-key = \"{SECRET_KEY}\"\n{}", self.config);
        std::fs::write(dir.join("shared.toml"), config).unwrap();
        std::fs::write(dir.join("test-database-url"), &self.url).unwrap();
    }
}

fn hook(url: &str, project: &str, extra: Value) -> Value {
    let mut hook = json!({"name": project, "url": url, "metadata": {"events": [], "projectIds": [project]}});
    hook.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    hook
}

fn event(id: &str, project: &str, seq: usize) -> Value {
    json!({"id": id, "event": "TODO_CREATED", "companyId": "c", "projectId": project,
        "currentValue": {"seq": seq}})
}

/// Unordered webhooks in the kill test.
const UNORDERED: usize = 12;

/// Changes reach every host within a second: waits a little longer than that.
async fn changes_spread() {
    tokio::time::sleep(Duration::from_millis(1_500)).await;
}

/// Each delivered event's id and `seq`, in order of arrival.
fn arrivals(receiver: &Receiver) -> Vec<(String, u64)> {
    receiver
        .received()
        .iter()
        .map(|r| {
            let body: Value = serde_json::from_slice(&r.body).unwrap();
            (
                body["id"].as_str().unwrap_or_default().to_owned(),
                body["currentValue"]["seq"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

/// Sends `n` events of `project` (ids `<project><i>`), to each host in turn.
async fn send_to_each_in_turn(hosts: &[Server], project: &str, n: usize) {
    for i in 0..n {
        let event = event(&format!("{project}{i}"), project, i);
        let (status, _) = hosts[i % hosts.len()].call("op", Method::POST, "/v1/events", Some(event)).await;
        assert_eq!(status, 202);
    }
}

/// The most deliveries that arrived within any `window`.
fn busiest(received: &[Received], window: Duration) -> usize {
    let times: Vec<Instant> = received.iter().map(|r| r.at).collect();
    let within = |i: usize| times[i..].iter().take_while(|t| **t < times[i] + window).count();
    (0..times.len()).map(within).max().unwrap_or(0)
}

/// Waits (at most `limit`) until every id in `expected` arrived.
async fn all_arrive(receiver: &Receiver, expected: &HashSet<String>, limit: Duration) -> Vec<(String, u64)> {
    let start = Instant::now();
    loop {
        let got = arrivals(receiver);
        let seen: HashSet<&String> = got.iter().map(|(id, _)| id).collect();
        let missing = expected.iter().filter(|id| !seen.contains(id)).count();
        if missing == 0 {
            return got;
        }
        assert!(start.elapsed() < limit, "{missing} of {} accepted events never arrived", expected.len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn three_hosts_lose_nothing_when_one_is_killed_and_keep_an_ordered_webhook_in_order() {
    if !on_postgres() {
        return;
    }
    let mut deployment = Deployment::new().await;
    let mut hosts = vec![deployment.start(), deployment.start(), deployment.start()];
    let receiver = Receiver::start().await;
    // Enough webhooks that every host owns some lanes, the killed one included.
    for project in 0..UNORDERED {
        let unordered = hook(&receiver.url, &format!("p{project}"), json!({}));
        assert_eq!(hosts[project % 3].call("op", Method::POST, "/v1/webhooks", Some(unordered)).await.0, 201);
    }
    let ordered = hook(&receiver.url, "o", json!({"ordered": true}));
    assert_eq!(hosts[1].call("op", Method::POST, "/v1/webhooks", Some(ordered)).await.0, 201);
    changes_spread().await;

    let mut accepted = HashSet::new();
    let mut killed = false;
    for i in 0..300 {
        if i == 150 {
            // Mid-stream: whatever the host held (claimed, in flight) must be taken over.
            hosts.remove(1).kill();
            killed = true;
        }
        let host = &hosts[i % hosts.len()];
        // Unordered events go to every host; the ordered ones one after another, so that their
        // ingest order is the order they were sent in.
        let (id, project) = match i % 2 {
            0 => (format!("p{i}"), format!("p{}", i / 2 % UNORDERED)),
            _ => (format!("o{i}"), "o".to_owned()),
        };
        let (status, answer) =
            host.call("op", Method::POST, "/v1/events", Some(event(&id, &project, i))).await;
        assert_eq!((status, answer["matched"].as_u64()), (202, Some(1)), "{answer}");
        accepted.insert(id);
        if project == "o" {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    assert!(killed);

    // The killed host's lanes come free when their leases run out.
    let got = all_arrive(&receiver, &accepted, Duration::from_secs(60)).await;
    let duplicates = got.len() - accepted.len();
    println!("{} events accepted, {} deliveries, {duplicates} duplicates", accepted.len(), got.len());
    // An ordered webhook: a redelivery may repeat what was sent, but nothing arrives before an
    // event sent earlier than it.
    let mut first_seen = Vec::new();
    let mut seen = HashSet::new();
    for (id, seq) in got.iter().filter(|(id, _)| id.starts_with('o')) {
        if seen.insert(id.clone()) {
            first_seen.push(*seq);
        }
    }
    assert!(first_seen.windows(2).all(|w| w[0] < w[1]), "out of order: {first_seen:?}");
}

/// A claim waits on the database (here on a lock, under load on a busy server): the
/// deliveries the host holds already go on meanwhile. (What a host ingests for a lane it
/// holds needs no claim: the event that waits is for a webhook new to the host.)
#[tokio::test]
async fn deliveries_held_go_on_while_a_claim_waits_on_the_database() {
    if !on_postgres() {
        return;
    }
    let mut deployment = Deployment::new().await;
    let host = deployment.start();
    let receiver = Receiver::start().await;
    receiver.delay(Duration::from_millis(200));
    for project in ["w", "new"] {
        let webhook = hook(&receiver.url, project, json!({}));
        assert_eq!(host.call("op", Method::POST, "/v1/webhooks", Some(webhook)).await.0, 201);
    }
    // One batch, one claim: 40 deliveries held, 8 at a time at the receiver (5 rounds).
    let batch: Vec<Value> = (0..40).map(|i| event(&format!("held{i}"), "w", i)).collect();
    let (status, answer) =
        host.call("op", Method::POST, "/v1/events/batch", Some(json!({"events": batch}))).await;
    assert_eq!(status, 202, "{answer}");
    receiver.wait_for(1).await;

    // The next claim waits for the lanes, locked here until the end.
    let (mut client, connection) =
        tokio_postgres::connect(&deployment.url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let lock = client.transaction().await.unwrap();
    lock.batch_execute("LOCK TABLE lanes IN ACCESS EXCLUSIVE MODE").await.unwrap();
    let (status, _) = host.call("op", Method::POST, "/v1/events", Some(event("later", "new", 40))).await;
    assert_eq!(status, 202);
    let (watch, connection) = tokio_postgres::connect(&deployment.url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    // The claim, or the heartbeat it then waits behind.
    eventually("the host waiting for the lanes", async || {
        let waiting: i64 = watch
            .query_one(
                "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'lanes'::regclass",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        (waiting > 0).then_some(())
    })
    .await;

    let held: HashSet<String> = (0..40).map(|i| format!("held{i}")).collect();
    all_arrive(&receiver, &held, Duration::from_secs(20)).await;
    assert!(
        !arrivals(&receiver).iter().any(|(id, _)| id == "later"),
        "the event after the lock waits for its claim"
    );
    lock.rollback().await.unwrap();
    all_arrive(&receiver, &HashSet::from(["later".to_owned()]), Duration::from_secs(20)).await;
}

#[tokio::test]
async fn a_rate_limit_holds_for_all_hosts_together() {
    if !on_postgres() {
        return;
    }
    let mut deployment = Deployment::new().await;
    let hosts = [deployment.start(), deployment.start(), deployment.start()];
    let receiver = Receiver::start().await;
    let limited = hook(&receiver.url, "r", json!({"rateLimit": 50}));
    assert_eq!(hosts[0].call("op", Method::POST, "/v1/webhooks", Some(limited)).await.0, 201);
    changes_spread().await;
    send_to_each_in_turn(&hosts, "r", 200).await;
    let busiest = busiest(&receiver.wait_for(200).await, Duration::from_secs(1));
    println!("at most {busiest} deliveries in any second");
    assert!(busiest <= 55, "{busiest} deliveries in one second under a limit of 50/s");
}

/// Every host works the webhook (each delivers what it ingests, see
/// `store/postgres/lanes/demand.rs`), within its share of the webhook's 8 places: the cap
/// holds for all of them together.
#[tokio::test]
async fn a_concurrency_cap_holds_for_all_hosts_together() {
    if !on_postgres() {
        return;
    }
    let busiest = most_at_the_receiver_at_once(Deployment::new().await, "cap", 3, Duration::ZERO).await;
    assert!(busiest <= 8, "{busiest} deliveries at once under a cap of 8");
    assert!(busiest > 3, "the webhook's places were used ({busiest} at once), or this proves nothing");
}

/// A sender pinned to one host (a load balancer keeping its connections): once that host's
/// demand is established and the lane's owner holds nothing of the webhook, it runs the
/// webhook's whole cap — not a share split with hosts that deliver none of it.
#[tokio::test]
async fn events_sent_to_one_host_get_the_whole_cap() {
    if !on_postgres() {
        return;
    }
    // 16 s: its demand established (4 s), then the owner's lingering out (5 s after it last
    // held any of the first events), with a few seconds to spare.
    let steady = Duration::from_secs(16);
    let busiest = most_at_the_receiver_at_once(Deployment::new().await, "pinned", 1, steady).await;
    assert!(busiest <= 8, "{busiest} deliveries at once under a cap of 8");
    assert!(busiest > 4, "{busiest} at once: no more than a share of the cap split between two hosts");
}

/// Senders pinned to one host, with hosts told not to share: the webhook's lane host runs
/// its whole cap, not one host's share of it.
#[tokio::test]
async fn without_sharing_events_sent_to_one_host_get_the_whole_cap() {
    if !on_postgres() {
        return;
    }
    let mut deployment = Deployment::new().await;
    deployment.config = "[delivery]\nshare-webhooks = false\n".into();
    let busiest = most_at_the_receiver_at_once(deployment, "pinned", 1, Duration::ZERO).await;
    assert!(busiest <= 8, "{busiest} deliveries at once under a cap of 8");
    assert!(busiest > 3, "{busiest} at once: no more than one host's share of the cap");
}

/// Three hosts and a webhook of `project` whose receiver takes 400 ms: for `steady`, an event
/// every 250 ms, then 64 at once, sent to the first `senders` hosts in turn; how many
/// deliveries were at the receiver at most at once.
async fn most_at_the_receiver_at_once(
    mut deployment: Deployment,
    project: &str,
    senders: usize,
    steady: Duration,
) -> usize {
    let hosts = [deployment.start(), deployment.start(), deployment.start()];
    let receiver = Receiver::start().await;
    let slow = Duration::from_millis(400);
    receiver.delay(slow);
    let webhook = hook(&receiver.url, project, json!({}));
    assert_eq!(hosts[0].call("op", Method::POST, "/v1/webhooks", Some(webhook)).await.0, 201);
    changes_spread().await;
    let every = Duration::from_millis(250);
    let steadily = (steady.as_millis() / every.as_millis()) as usize;
    for i in 0..steadily {
        let event = event(&format!("{project}-steady{i}"), project, i);
        let (status, _) = hosts[i % senders].call("op", Method::POST, "/v1/events", Some(event)).await;
        assert_eq!(status, 202);
        tokio::time::sleep(every).await;
    }
    send_to_each_in_turn(&hosts[..senders], project, 64).await;
    // Each delivery holds its place for the receiver's 400 ms: those that arrive within less
    // than that were at the receiver together.
    let busiest = busiest(&receiver.wait_for(steadily + 64).await, slow - Duration::from_millis(50));
    println!("at most {busiest} deliveries at the receiver at once");
    busiest
}

#[tokio::test]
async fn a_disable_on_one_host_stops_deliveries_on_all() {
    if !on_postgres() {
        return;
    }
    let mut deployment = Deployment::new().await;
    let hosts = [deployment.start(), deployment.start(), deployment.start()];
    let receiver = Receiver::start().await;
    let (_, created) =
        hosts[0].call("op", Method::POST, "/v1/webhooks", Some(hook(&receiver.url, "d", json!({})))).await;
    let id = created["id"].as_str().unwrap().to_owned();
    changes_spread().await;
    let (status, _) = hosts[1]
        .call("op", Method::PATCH, &format!("/v1/webhooks/{id}"), Some(json!({"enabled": false})))
        .await;
    assert_eq!(status, 200);
    changes_spread().await;
    let mut paused = Vec::new();
    for (i, host) in hosts.iter().enumerate() {
        let (status, answer) =
            host.call("op", Method::POST, "/v1/events", Some(event(&format!("d{i}"), "d", i))).await;
        assert_eq!(status, 202, "{answer}");
        paused.push(answer["deliveries"][0].as_str().unwrap().to_owned());
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(receiver.received().is_empty(), "nothing goes out while disabled");
    let (_, log) = hosts[2].call("op", Method::GET, &format!("/v1/webhooks/{id}/deliveries"), None).await;
    let statuses: BTreeMap<String, String> = log["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["id"].as_str().unwrap().to_owned(), d["status"].as_str().unwrap().to_owned()))
        .collect();
    for id in &paused {
        assert_eq!(statuses.get(id).map(String::as_str), Some("paused"), "{statuses:?}");
    }
}

#[tokio::test]
async fn a_connector_uploaded_on_one_host_runs_on_another_within_a_second() {
    if !on_postgres() {
        return;
    }
    let mut deployment = Deployment::new().await;
    let hosts = [deployment.start(), deployment.start()];
    let receiver = Receiver::start().await;
    let slack = wasmhook::builtins::component("slack").unwrap().to_vec();
    assert_eq!(hosts[0].upload_connector("op", "announce", slack).await, 200);
    let uploaded_at = Instant::now();
    // The other host knows it once the change reached it: creating a webhook with it works.
    let body = hook(&receiver.url, "a", json!({"connector": {"name": "announce", "config": {}}}));
    loop {
        let (status, answer) = hosts[1].call("op", Method::POST, "/v1/webhooks", Some(body.clone())).await;
        if status == 201 {
            break;
        }
        assert!(uploaded_at.elapsed() < Duration::from_secs(2), "not known after 2 s: {answer}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("known on the other host after {:?}", uploaded_at.elapsed());
    let (status, _) = hosts[1].call("op", Method::POST, "/v1/events", Some(event("a1", "a", 1))).await;
    assert_eq!(status, 202);
    let got = receiver.wait_for(1).await;
    let body: Value = serde_json::from_slice(&got[0].body).unwrap();
    assert!(body["text"].is_string(), "made by the uploaded (Slack) connector: {body}");
}

#[tokio::test]
async fn migrations_started_by_three_hosts_at_once_apply_once() {
    if !on_postgres() {
        return;
    }
    let deployment = Deployment::new().await;
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let starts: Vec<_> = dirs
        .iter()
        .map(|dir| {
            deployment.prepare(dir.path());
            let dir = dir.path().to_owned();
            std::thread::spawn(move || {
                let config = dir.join("shared.toml");
                start_with(
                    &dir,
                    &shared_cache_dir(),
                    &["--operator-token", "op", "--config", config.to_str().unwrap()],
                )
            })
        })
        .collect();
    let hosts: Vec<Server> = starts.into_iter().map(|start| start.join().unwrap()).collect();
    for host in &hosts {
        let (status, _) = host.call("op", Method::GET, "/v1/webhooks", None).await;
        assert_eq!(status, 200);
    }
    let (client, connection) = tokio_postgres::connect(&deployment.url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let rows =
        client.query("SELECT version, count(*) FROM schema_migrations GROUP BY version", &[]).await.unwrap();
    assert!(!rows.is_empty());
    for row in rows {
        assert_eq!(row.get::<_, i64>(1), 1, "migration {} applied once", row.get::<_, i32>(0));
    }
}

/// As a user would point hosts at a managed database: `sslmode=verify-full` with the
/// authority to trust (here the test server's own certificate, a self-signed leaf).
#[tokio::test]
async fn hosts_reach_the_database_over_verified_tls_and_refuse_what_they_cannot_verify() {
    if !on_postgres() {
        return;
    }
    let mut deployment = Deployment::new().await;
    let Some(server) = deployment.database.server_tls().await else {
        eprintln!("skipped: the test server does not offer TLS");
        return;
    };
    let Some(name) = &server.name else {
        eprintln!("skipped: the test server's certificate names no host");
        return;
    };
    let verify_full = [("sslmode", "verify-full"), ("sslrootcert", server.root.as_str())];
    deployment.url = deployment.database.url_named(name, &verify_full).await;
    let hosts = [deployment.start(), deployment.start()];
    let receiver = Receiver::start().await;
    let (status, _) =
        hosts[0].call("op", Method::POST, "/v1/webhooks", Some(hook(&receiver.url, "tls", json!({})))).await;
    assert_eq!(status, 201);
    changes_spread().await;
    send_to_each_in_turn(&hosts, "tls", 6).await;
    let expected: HashSet<String> = (0..6).map(|i| format!("tls{i}")).collect();
    all_arrive(&receiver, &expected, Duration::from_secs(10)).await;
    let (encrypted, plain) = deployment.database.wasmhook_connections().await;
    assert!(encrypted >= 4 && plain == 0, "{encrypted} encrypted connections, {plain} plain");

    // A host told to verify, with nothing to verify against, stops before serving, saying why
    // (and never the password).
    let mut url = url::Url::parse(&deployment.url).unwrap();
    url.set_password(Some("hunter2")).unwrap();
    url.set_query(Some("sslmode=verify-full"));
    let data = tempfile::tempdir().unwrap();
    let run = tokio::process::Command::new(binary())
        .args(["serve", "--listen", "127.0.0.1:0", "--database", url.as_str(), "--data-dir"])
        .arg(data.path())
        .env("NO_COLOR", "1")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(30), run).await.expect("it stops").unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("sslrootcert") && !stderr.contains("hunter2"), "{stderr}");
}
