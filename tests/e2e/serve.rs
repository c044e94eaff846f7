//! `wasmhook serve` as a user starts it: the real binary, a real port, SIGTERM to stop.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use crate::support::binary;

struct Server {
    child: Child,
    address: String,
}

/// Starts the binary on a free port and waits for its "serving" line.
fn start(data_dir: &std::path::Path, cache_dir: &std::path::Path) -> Server {
    let mut child = Command::new(binary())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .arg("--cache-dir")
        .arg(cache_dir)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .spawn()
        .expect("wasmhook starts");
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let address = loop {
        let line = lines.next().expect("server printed its address").unwrap();
        if let Some(rest) = line.split("address=").nth(1) {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    // Keep draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Server { child, address }
}

impl Server {
    fn stop(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        self.child.wait().unwrap()
    }
}

#[tokio::test]
async fn serves_health_with_builtins_and_stops_cleanly_on_sigterm() {
    let data = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let server = start(data.path(), cache.path());
    let health: serde_json::Value =
        reqwest::get(format!("http://{}/healthz", server.address)).await.unwrap().json().await.unwrap();
    assert_eq!(health, serde_json::json!({"status": "ok", "connectors": ["json"]}));
    assert!(server.stop().success());
    assert!(data.path().join("db").is_dir(), "the database lives in the data directory");

    // A restart uses the compiled connectors from the cache instead of compiling again.
    let cached: Vec<_> = std::fs::read_dir(cache.path()).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(cached.len(), 1);
    let written = std::fs::metadata(&cached[0]).unwrap().modified().unwrap();
    let server = start(data.path(), cache.path());
    assert!(server.stop().success());
    assert_eq!(std::fs::metadata(&cached[0]).unwrap().modified().unwrap(), written);
}
