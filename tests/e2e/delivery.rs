//! The delivery engine against real receivers on 127.0.0.1: signatures, retries, health.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Sha256;
use wasmhook::domain::delivery::DeliveryStatus;

use crate::support::{OPERATOR, Receiver, TestServer, eventually};

fn hook(url: &str) -> Value {
    json!({"name": "receiver", "url": url, "metadata": {"events": [], "projectIds": []}})
}

fn event(id: &str) -> Value {
    json!({"id": id, "event": "TODO_CREATED", "companyId": "c1", "projectId": "p1", "currentValue": {"title": "Launch"}})
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

async fn delivery_status(
    server: &TestServer,
    id: &str,
    wanted: DeliveryStatus,
) -> wasmhook::domain::delivery::Delivery {
    eventually(&format!("delivery {id} to be {wanted:?}"), async || {
        server.state.store.delivery(id).await.unwrap().filter(|d| d.status == wanted)
    })
    .await
}

async fn webhook_status(server: &TestServer, id: &str) -> Value {
    server.call(OPERATOR, Method::GET, &format!("/v1/webhooks/{id}"), None).await.1
}

#[tokio::test]
async fn delivers_the_payload_with_both_signatures() {
    let server = TestServer::delivering("10ms").await;
    let receiver = Receiver::start().await;
    let created = server.webhook(OPERATOR, hook(&receiver.url)).await;
    let secret = created["secret"].as_str().unwrap();
    let accepted = server.send_event(OPERATOR, event("e1")).await;

    let got = receiver.wait_for(1).await;
    let request = &got[0];
    let body: Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(body["id"], "e1");
    assert_eq!(body["webhook"]["id"], created["id"]);
    assert_eq!(request.headers["content-type"], "application/json");
    assert_eq!(request.path, "/hook");

    // The reference product's scheme: hex HMAC keyed with the secret's text.
    let expected = hex::encode(hmac(secret.as_bytes(), &request.body));
    assert_eq!(request.headers["x-wasmhook-signature"], expected.as_str());

    // Standard Webhooks: base64 HMAC over "id.timestamp.body", keyed with the decoded secret.
    let id = request.headers["webhook-id"].to_str().unwrap();
    let timestamp = request.headers["webhook-timestamp"].to_str().unwrap();
    let key = STANDARD.decode(secret.strip_prefix("whsec_").unwrap()).unwrap();
    let signed = [id.as_bytes(), b".", timestamp.as_bytes(), b".", &request.body].concat();
    let expected = format!("v1,{}", STANDARD.encode(hmac(&key, &signed)));
    assert_eq!(request.headers["webhook-signature"], expected.as_str());
    assert!(id.starts_with("msg_"));

    let delivery_id = accepted["deliveries"][0].as_str().unwrap();
    let delivery = delivery_status(&server, delivery_id, DeliveryStatus::Succeeded).await;
    assert_eq!(delivery.messages[0].id, id);
    let attempts = server.state.store.attempts(delivery_id).await.unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].status_code, Some(200));
    assert_eq!(attempts[0].response.as_deref(), Some("ok"));
    assert_eq!(webhook_status(&server, created["id"].as_str().unwrap()).await["status"], "HEALTHY");
}

#[tokio::test]
async fn a_receiver_that_fails_twice_gets_the_same_bytes_three_times() {
    let server = TestServer::delivering("10ms,10ms,10ms,10ms").await;
    let receiver = Receiver::start().await;
    receiver.script(&[500, 503]);
    let created = server.webhook(OPERATOR, hook(&receiver.url)).await;
    let accepted = server.send_event(OPERATOR, event("e2")).await;

    let got = receiver.wait_for(3).await;
    for retry in &got[1..] {
        assert_eq!(retry.body, got[0].body, "every retry sends the same bytes");
        assert_eq!(retry.headers["webhook-id"], got[0].headers["webhook-id"], "webhook-id is stable");
    }
    let delivery_id = accepted["deliveries"][0].as_str().unwrap();
    delivery_status(&server, delivery_id, DeliveryStatus::Succeeded).await;
    let codes: Vec<_> =
        server.state.store.attempts(delivery_id).await.unwrap().iter().map(|a| a.status_code).collect();
    assert_eq!(codes, [Some(500), Some(503), Some(200)]);
    let webhook = eventually("the webhook to be healthy again", async || {
        let w = webhook_status(&server, created["id"].as_str().unwrap()).await;
        (w["status"] == "HEALTHY").then_some(w)
    })
    .await;
    assert_eq!(webhook["enabled"], true);
    assert_eq!(receiver.received().len(), 3, "one delivery, three attempts");
}

#[tokio::test]
async fn a_dead_receiver_disables_the_webhook_after_five_attempts() {
    let server = TestServer::delivering("10ms,10ms,10ms,10ms").await;
    let receiver = Receiver::start().await;
    receiver.script(&[500; 5]);
    let created = server.webhook(OPERATOR, hook(&receiver.url)).await;
    let id = created["id"].as_str().unwrap();
    let accepted = server.send_event(OPERATOR, event("e3")).await;

    let delivery =
        delivery_status(&server, accepted["deliveries"][0].as_str().unwrap(), DeliveryStatus::Failed).await;
    assert_eq!(delivery.messages[0].attempts, 5);
    assert!(delivery.error.unwrap().contains("all 5 attempts"));
    // Health is recorded right after the delivery's outcome.
    let webhook = eventually("the webhook to be disabled", async || {
        let w = webhook_status(&server, id).await;
        (w["status"] == "DISABLED").then_some(w)
    })
    .await;
    assert_eq!(webhook["enabled"], false);
    assert_eq!(receiver.received().len(), 5);

    // Nothing is lost while disabled: the next event's delivery waits, paused.
    let later = server.send_event(OPERATOR, event("e4")).await;
    let paused =
        server.state.store.delivery(later["deliveries"][0].as_str().unwrap()).await.unwrap().unwrap();
    assert_eq!(paused.status, DeliveryStatus::Paused);
}

#[tokio::test]
async fn gone_disables_at_once() {
    let server = TestServer::delivering("10ms,10ms,10ms,10ms").await;
    let receiver = Receiver::start().await;
    receiver.script(&[410]);
    let created = server.webhook(OPERATOR, hook(&receiver.url)).await;
    let accepted = server.send_event(OPERATOR, event("e5")).await;
    let delivery =
        delivery_status(&server, accepted["deliveries"][0].as_str().unwrap(), DeliveryStatus::Failed).await;
    assert!(delivery.error.unwrap().contains("410"));
    let webhook = eventually("the webhook to be disabled", async || {
        let w = webhook_status(&server, created["id"].as_str().unwrap()).await;
        (w["status"] == "DISABLED").then_some(w)
    })
    .await;
    assert_eq!(webhook["enabled"], false);
    assert_eq!(receiver.received().len(), 1, "no retry after 410");
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let server = TestServer::delivering("10ms").await;
    let receiver = Receiver::start().await;
    receiver.script_with_headers(429, &[("retry-after", "1")]);
    server.webhook(OPERATOR, hook(&receiver.url)).await;
    server.send_event(OPERATOR, event("e6")).await;
    let got = receiver.wait_for(2).await;
    let waited = got[1].at - got[0].at;
    assert!(
        waited >= std::time::Duration::from_millis(950),
        "retried after {waited:?}, not after Retry-After: 1"
    );
}

#[tokio::test]
async fn a_plugin_error_fails_the_delivery_and_leaves_the_webhook_healthy() {
    let server = TestServer::delivering("10ms").await;
    let receiver = Receiver::start().await;
    let hostile = crate::support::hostile(&server.state.runtime, wasmhook::runtime::Policy::Pooled).await;
    server.state.connectors.insert("hostile", 1, hostile);
    let mut body = hook(&receiver.url);
    body["connector"] = json!({"name": "hostile", "config": {"mode": "trap"}});
    let created = server.webhook(OPERATOR, body).await;
    let accepted = server.send_event(OPERATOR, event("e7")).await;

    let delivery =
        delivery_status(&server, accepted["deliveries"][0].as_str().unwrap(), DeliveryStatus::PluginError)
            .await;
    assert!(delivery.error.as_deref().unwrap().starts_with("[trap]"), "{:?}", delivery.error);
    assert!(delivery.plugin_log.iter().any(|l| l.message.contains("deliberate panic")));
    assert_eq!(webhook_status(&server, created["id"].as_str().unwrap()).await["status"], "HEALTHY");
    assert!(receiver.received().is_empty(), "the receiver was never contacted");

    let mut body = hook(&receiver.url);
    body["connector"] = json!({"name": "hostile", "config": {"mode": "log"}});
    server.webhook(OPERATOR, body).await;
    let accepted = server
        .send_event(
            OPERATOR,
            json!({"id": "e8", "event": "TAG_CREATED", "companyId": "c1", "projectId": "p1"}),
        )
        .await;
    let filtered = eventually("a filtered delivery", async || {
        for id in accepted["deliveries"].as_array().unwrap() {
            let delivery = server.state.store.delivery(id.as_str().unwrap()).await.unwrap();
            if let Some(delivery) = delivery.filter(|d| d.status == DeliveryStatus::Filtered) {
                return Some(delivery);
            }
        }
        None
    })
    .await;
    assert!(filtered.messages.is_empty(), "zero requests: filtered");
}

#[tokio::test]
async fn a_slow_receiver_does_not_hold_up_another_webhook() {
    let server = TestServer::delivering("10ms").await;
    let slow = Receiver::start().await;
    slow.delay(std::time::Duration::from_secs(2));
    let fast = Receiver::start().await;
    let mut slow_hook = hook(&slow.url);
    slow_hook["metadata"]["events"] = json!(["TODO_CREATED"]);
    let mut fast_hook = hook(&fast.url);
    fast_hook["metadata"]["events"] = json!(["COMMENT_CREATED"]);
    server.webhook(OPERATOR, slow_hook).await;
    server.webhook(OPERATOR, fast_hook).await;

    for i in 0..30 {
        server.send_event(OPERATOR, event(&format!("slow{i}"))).await;
    }
    slow.wait_for(1).await;
    server
        .send_event(
            OPERATOR,
            json!({"id": "fast", "event": "COMMENT_CREATED", "companyId": "c1", "projectId": "p1"}),
        )
        .await;
    fast.wait_for(1).await;
    let held = slow.received().len();
    assert!(held < 30, "the fast receiver waited for the slow one ({held} slow requests first)");
    assert!(held <= 8, "the slow webhook held at most its per-webhook share of workers ({held})");
}

#[tokio::test]
async fn the_delivery_log_shows_every_attempt_and_filters() {
    let server = TestServer::delivering("10ms,10ms").await;
    let receiver = Receiver::start().await;
    receiver.script(&[500]);
    let created = server.webhook(OPERATOR, hook(&receiver.url)).await;
    let id = created["id"].as_str().unwrap();
    let first = server.send_event(OPERATOR, event("log1")).await;
    delivery_status(&server, first["deliveries"][0].as_str().unwrap(), DeliveryStatus::Succeeded).await;
    let second = server.send_event(OPERATOR, event("log2")).await;
    delivery_status(&server, second["deliveries"][0].as_str().unwrap(), DeliveryStatus::Succeeded).await;

    let (status, log) =
        server.call(OPERATOR, Method::GET, &format!("/v1/webhooks/{id}/deliveries"), None).await;
    assert_eq!(status, 200, "{log}");
    let data = log["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert_eq!(data[0]["id"], second["deliveries"][0], "newest first");
    let attempts = data[1]["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0]["statusCode"], 500);
    assert_eq!(attempts[1]["statusCode"], 200);
    assert_eq!(attempts[1]["response"], "ok");
    assert!(attempts[1]["latencyMs"].is_u64() && attempts[1]["at"].is_string());
    assert_eq!(data[1]["messages"][0]["request"]["method"], "POST");

    let (_, page) =
        server.call(OPERATOR, Method::GET, &format!("/v1/webhooks/{id}/deliveries?limit=1"), None).await;
    let cursor = page["nextCursor"].as_str().unwrap();
    let (_, rest) = server
        .call(OPERATOR, Method::GET, &format!("/v1/webhooks/{id}/deliveries?limit=1&cursor={cursor}"), None)
        .await;
    assert_eq!(rest["data"][0]["id"], first["deliveries"][0]);
    assert_eq!(rest["nextCursor"], Value::Null);
    let (_, none) = server
        .call(OPERATOR, Method::GET, &format!("/v1/webhooks/{id}/deliveries?status=failed"), None)
        .await;
    assert_eq!(none["data"], json!([]));
    let (_, future) = server
        .call(
            OPERATOR,
            Method::GET,
            &format!("/v1/webhooks/{id}/deliveries?since=2999-01-01T00:00:00Z"),
            None,
        )
        .await;
    assert_eq!(future["data"], json!([]));
    let (status, _) =
        server.call(OPERATOR, Method::GET, &format!("/v1/webhooks/{id}/deliveries?status=bogus"), None).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn re_enabling_sends_a_health_check_first_and_recover_sends_what_waited() {
    let server = TestServer::delivering("10ms").await;
    let receiver = Receiver::start().await;
    let created = server.webhook(OPERATOR, hook(&receiver.url)).await;
    let id = created["id"].as_str().unwrap();
    let path = format!("/v1/webhooks/{id}");
    server.call(OPERATOR, Method::PATCH, &path, Some(json!({"enabled": false}))).await;
    let since =
        time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap();
    for i in 0..3 {
        let accepted = server.send_event(OPERATOR, event(&format!("wait{i}"))).await;
        let waiting =
            server.state.store.delivery(accepted["deliveries"][0].as_str().unwrap()).await.unwrap().unwrap();
        assert_eq!(waiting.status, DeliveryStatus::Paused);
    }
    assert!(receiver.received().is_empty());

    let (status, _) = server.call(OPERATOR, Method::PATCH, &path, Some(json!({"enabled": true}))).await;
    assert_eq!(status, 200);
    let got = receiver.wait_for(1).await;
    let body: Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(body["event"], "WEBHOOK_HEALTH_CHECK");

    let (status, recovered) =
        server.call(OPERATOR, Method::POST, &format!("{path}/recover"), Some(json!({"since": since}))).await;
    assert_eq!((status, recovered["requeued"].as_u64()), (202, Some(3)));
    let got = receiver.wait_for(4).await;
    let mut ids: Vec<String> = got[1..]
        .iter()
        .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap()["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    assert_eq!(ids, ["wait0", "wait1", "wait2"]);
}

#[tokio::test]
async fn a_failed_delivery_can_be_retried_with_the_same_message() {
    let server = TestServer::delivering("10ms").await;
    let receiver = Receiver::start().await;
    receiver.script(&[500, 500]);
    let created = server.webhook(OPERATOR, hook(&receiver.url)).await;
    let path = format!("/v1/webhooks/{}", created["id"].as_str().unwrap());
    let accepted = server.send_event(OPERATOR, event("again")).await;
    let delivery_id = accepted["deliveries"][0].as_str().unwrap();
    delivery_status(&server, delivery_id, DeliveryStatus::Failed).await;
    // Health is recorded right after the delivery's outcome.
    eventually("the webhook to be disabled", async || {
        (webhook_status(&server, created["id"].as_str().unwrap()).await["status"] == "DISABLED").then_some(())
    })
    .await;

    let (status, error) =
        server.call(OPERATOR, Method::POST, &format!("/v1/deliveries/{delivery_id}/retry"), None).await;
    assert_eq!((status, error["error"]["code"].as_str()), (409, Some("webhook_disabled")));
    server.call(OPERATOR, Method::PATCH, &path, Some(json!({"enabled": true}))).await;
    let (status, _) =
        server.call(OPERATOR, Method::POST, &format!("/v1/deliveries/{delivery_id}/retry"), None).await;
    assert_eq!(status, 202);
    delivery_status(&server, delivery_id, DeliveryStatus::Succeeded).await;
    let got = receiver.received();
    let retried: Vec<_> = got.iter().filter(|r| r.body == got[0].body).collect();
    assert_eq!(retried.len(), 3, "two failures, then the manual retry with the same bytes");
    assert!(retried.iter().all(|r| r.headers["webhook-id"] == got[0].headers["webhook-id"]));

    let (status, _) = server.call(OPERATOR, Method::POST, "/v1/deliveries/dlv_nope/retry", None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_test_event_goes_through_the_whole_pipeline() {
    let server = TestServer::delivering("10ms").await;
    let receiver = Receiver::start().await;
    let created = server.webhook(OPERATOR, hook(&receiver.url)).await;
    let (status, queued) = server
        .call(OPERATOR, Method::POST, &format!("/v1/webhooks/{}/test", created["id"].as_str().unwrap()), None)
        .await;
    assert_eq!(status, 202, "{queued}");
    let got = receiver.wait_for(1).await;
    let body: Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(body["id"], queued["eventId"]);
    assert_eq!(body["currentValue"]["title"], "A test event from wasmhook");
    assert!(got[0].headers.contains_key("webhook-signature"));
}

#[tokio::test]
async fn during_rotation_both_secrets_sign() {
    let server = TestServer::delivering("10ms").await;
    let receiver = Receiver::start().await;
    let created = server.webhook(OPERATOR, hook(&receiver.url)).await;
    let old = created["secret"].as_str().unwrap().to_owned();
    let (status, rotated) = server
        .call(
            OPERATOR,
            Method::POST,
            &format!("/v1/webhooks/{}/rotate-secret", created["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(status, 200, "{rotated}");
    let new = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    assert!(rotated["previousValidUntil"].is_string());

    server.send_event(OPERATOR, event("rot")).await;
    let request = receiver.wait_for(1).await.remove(0);
    let id = request.headers["webhook-id"].to_str().unwrap();
    let timestamp = request.headers["webhook-timestamp"].to_str().unwrap();
    let signed = [id.as_bytes(), b".", timestamp.as_bytes(), b".", &request.body].concat();
    let sign = |secret: &str| {
        let key = STANDARD.decode(secret.strip_prefix("whsec_").unwrap()).unwrap();
        format!("v1,{}", STANDARD.encode(hmac(&key, &signed)))
    };
    let signatures: Vec<&str> = request.headers["webhook-signature"].to_str().unwrap().split(' ').collect();
    assert_eq!(signatures, [sign(&new), sign(&old)], "new first, then the old one during the grace period");
    assert_eq!(
        request.headers["x-wasmhook-signature"].to_str().unwrap(),
        hex::encode(hmac(new.as_bytes(), &request.body)),
        "X-Wasmhook-Signature uses the new secret only"
    );
    let (_, shown) = server
        .call(OPERATOR, Method::GET, &format!("/v1/webhooks/{}", created["id"].as_str().unwrap()), None)
        .await;
    assert!(!shown.to_string().contains("previous") && !shown.to_string().contains(&new));
}

/// A name whose DNS answer is a private address is refused when connecting: the stub
/// resolver answers 127.0.0.1, where a real receiver listens and must hear nothing.
#[tokio::test]
async fn a_name_resolving_to_a_private_address_is_refused_at_connect_time() {
    use std::sync::Arc;
    use wasmhook::delivery::transport::{Transports, Verdict, http::Lookup};
    use wasmhook::destination::Allow;

    let receiver = Receiver::start().await;
    let port = receiver.url.split(':').nth(2).unwrap().split('/').next().unwrap().to_owned();
    let stub: Lookup = Arc::new(|_host: String| {
        Box::pin(async {
            Ok(Box::new(vec!["127.0.0.1:0".parse().unwrap()].into_iter()) as reqwest::dns::Addrs)
        })
    });
    let request = wasmhook::runtime::Request {
        url: None,
        method: "POST".into(),
        headers: vec![],
        body: "{}".into(),
        ordering_key: None,
    };
    let secret = wasmhook::secret::Secret::generate();
    let url = format!("http://rebinding.example:{port}/hook");
    let timeout = std::time::Duration::from_secs(5);

    let guarded = Transports::with_lookup(timeout, Allow::private(false), stub.clone());
    let sent = guarded.send("msg_1", &request, &url, &[&secret], false).await;
    let error = sent.attempt.error.unwrap();
    assert!(error.contains("resolves to non-public addresses only (127.0.0.1)"), "{error}");
    assert_eq!(sent.attempt.status_code, None);
    assert_eq!(sent.verdict, Verdict::Retry(None));
    assert!(receiver.received().is_empty(), "no connection reached the receiver");

    // A host the operator allowed by name is reached at its private address.
    let allowed = Allow { private: false, hosts: vec!["rebinding.example".parse().unwrap()] };
    let sent = Transports::with_lookup(timeout, allowed, stub)
        .send("msg_1", &request, &url, &[&secret], false)
        .await;
    assert_eq!(sent.attempt.status_code, Some(200), "{:?}", sent.attempt.error);

    // With private destinations allowed, loopback receivers are delivered to.
    let sent = Transports::new(timeout, Allow::private(true))
        .send("msg_1", &request, &receiver.url, &[&secret], false)
        .await;
    assert_eq!((sent.attempt.status_code, sent.verdict), (Some(200), Verdict::Delivered));
}

#[tokio::test]
async fn retention_prunes_old_events_deliveries_and_attempts_but_not_queued_work() {
    let server = TestServer::delivering("10ms").await;
    let receiver = Receiver::start().await;
    let created = server.webhook(OPERATOR, hook(&receiver.url)).await;
    let done = server.send_event(OPERATOR, event("old")).await;
    let done_id = done["deliveries"][0].as_str().unwrap();
    delivery_status(&server, done_id, DeliveryStatus::Succeeded).await;

    // A delivery still waiting (its webhook disabled, then re-enabled: queued again) stays.
    server
        .call(
            OPERATOR,
            Method::PATCH,
            &format!("/v1/webhooks/{}", created["id"].as_str().unwrap()),
            Some(json!({"enabled": false})),
        )
        .await;
    let paused = server.send_event(OPERATOR, event("waiting")).await;
    let paused_id = paused["deliveries"][0].as_str().unwrap();

    let store = &server.state.store;
    let future =
        u64::try_from((time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) + 60_000).unwrap();
    assert_eq!(store.prune(0).await.unwrap(), 0, "nothing is older than the epoch");
    let removed = store.prune(future).await.unwrap();
    assert!(removed >= 4, "event, delivery, attempt, second event: {removed}");
    assert!(store.delivery(done_id).await.unwrap().is_none());
    assert!(store.attempts(done_id).await.unwrap().is_empty());
    assert!(store.event("c1", "old").await.unwrap().is_none());
    assert!(store.delivery(paused_id).await.unwrap().is_none(), "paused deliveries age out too");

    // Queued work is never pruned.
    server
        .call(
            OPERATOR,
            Method::PATCH,
            &format!("/v1/webhooks/{}", created["id"].as_str().unwrap()),
            Some(json!({"enabled": true})),
        )
        .await;
    receiver.delay(std::time::Duration::from_secs(5));
    let queued = server.send_event(OPERATOR, event("queued")).await;
    let queued_id = queued["deliveries"][0].as_str().unwrap();
    receiver.wait_for(3).await; // the health check and this one are in flight
    store.prune(future).await.unwrap();
    assert!(store.delivery(queued_id).await.unwrap().is_some());
}

#[tokio::test]
async fn a_rate_limited_webhook_is_never_flooded() {
    let server = TestServer::delivering("10ms").await;
    let receiver = Receiver::start().await;
    let mut body = hook(&receiver.url);
    body["rateLimit"] = json!(10);
    server.webhook(OPERATOR, body).await;
    for i in 0..8 {
        server.send_event(OPERATOR, event(&format!("rl{i}"))).await;
    }
    let got = receiver.wait_for(8).await;
    let mut arrivals: Vec<_> = got.iter().map(|r| r.at).collect();
    arrivals.sort();
    // Unpaced, eight deliveries arrive within a few milliseconds; at 10/s they span 700 ms
    // (less whatever the network jitter between the first and the last).
    let span = *arrivals.last().unwrap() - arrivals[0];
    assert!(span >= std::time::Duration::from_millis(600), "8 messages within {span:?} at 10/s");
}

#[tokio::test]
async fn stats_count_the_last_24_hours_by_outcome() {
    let server = TestServer::delivering("10ms").await;
    let receiver = Receiver::start().await;
    receiver.script(&[500]);
    let created = server.webhook(OPERATOR, hook(&receiver.url)).await;
    let one = server.send_event(OPERATOR, event("s1")).await;
    delivery_status(&server, one["deliveries"][0].as_str().unwrap(), DeliveryStatus::Succeeded).await;
    let two = server.send_event(OPERATOR, event("s2")).await;
    delivery_status(&server, two["deliveries"][0].as_str().unwrap(), DeliveryStatus::Succeeded).await;

    let (status, stats) = server
        .call(OPERATOR, Method::GET, &format!("/v1/webhooks/{}/stats", created["id"].as_str().unwrap()), None)
        .await;
    assert_eq!(status, 200, "{stats}");
    let hours = stats["hours"].as_array().unwrap();
    assert_eq!(hours.len(), 24);
    // All in the last hour or two (the test may straddle the top of an hour).
    let succeeded: u64 = hours.iter().filter_map(|h| h["outcomes"]["succeeded"].as_u64()).sum();
    let attempts: u64 = hours.iter().map(|h| h["attempts"].as_u64().unwrap()).sum();
    assert_eq!((succeeded, attempts), (2, 3), "two deliveries: one failure, then two successes");
    assert!(hours[23]["latencyP50Ms"].is_u64() || hours[22]["latencyP50Ms"].is_u64());
    assert!(hours[..22].iter().all(|h| h["attempts"] == 0 && h["outcomes"] == json!({})));
}

#[tokio::test]
async fn metrics_count_deliveries_attempts_plugins_and_the_queue() {
    let server = TestServer::delivering("10ms").await;
    let receiver = Receiver::start().await;
    server.webhook(OPERATOR, hook(&receiver.url)).await;
    let accepted = server.send_event(OPERATOR, event("m1")).await;
    delivery_status(&server, accepted["deliveries"][0].as_str().unwrap(), DeliveryStatus::Succeeded).await;

    let text =
        server.client.get(format!("{}/metrics", server.base)).send().await.unwrap().text().await.unwrap();
    for line in [
        "wasmhook_deliveries_total{outcome=\"succeeded\"} 1",
        "wasmhook_attempt_duration_seconds_count 1",
        "wasmhook_plugin_invocations_total{connector=\"json\",version=\"0\"} 1",
        "wasmhook_queue_depth 0",
        "wasmhook_disabled_webhooks 0",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in:\n{text}");
    }
}

#[tokio::test]
async fn an_ordered_webhook_gets_one_message_at_a_time_in_ingest_order() {
    let server = TestServer::delivering("20ms,20ms,20ms,20ms").await;
    let receiver = Receiver::start().await;
    receiver.script(&[500, 500]);
    let mut body = hook(&receiver.url);
    body["ordered"] = json!(true);
    server.webhook(OPERATOR, body).await;
    for i in 0..5 {
        server.send_event(OPERATOR, event(&format!("o{i}"))).await;
    }
    let got = receiver.wait_for(7).await;
    let order: Vec<String> = got
        .iter()
        .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap()["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(order, ["o0", "o0", "o0", "o1", "o2", "o3", "o4"], "the failing head blocked the rest");
}
