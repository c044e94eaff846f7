//! A connector that misbehaves on demand, to prove the host survives it. Test-only.
//!
//! The connector config picks the behaviour: `{"mode": "loop"}` and so on (see `transform`).

use std::hint::black_box;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use wasmhook_plugin_sdk::{Config, Error, Event, Info, Plugin, Request, export_plugin, json, log};

/// Counts invocations of this instance: shows whether guest state survives between calls.
static INVOCATIONS: AtomicU64 = AtomicU64::new(0);

/// What `hoard` keeps between calls.
static HOARD: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct Hostile;

#[derive(serde::Deserialize)]
struct Mode {
    mode: String,
    /// A write-only secret, for the modes that leak it.
    #[serde(default)]
    key: String,
}

impl Plugin for Hostile {
    fn describe() -> Info {
        Info::new("hostile", "0.0.1", "Misbehaves on demand (tests only).").config_schema(
            json!({"type": "object", "properties": {
                "mode": {"type": "string"},
                "key": {"type": "string", "writeOnly": true},
            }}),
        )
    }

    fn transform(event: Event, config: Config) -> Result<Vec<Request>, Error> {
        let count = INVOCATIONS.fetch_add(1, Ordering::Relaxed) + 1;
        let Mode { mode, key } = config.parse()?;
        match mode.as_str() {
            "ok" => Ok(vec![Request::new(event.raw()).header("content-type", "application/json")]),
            "count" => Ok(vec![Request::new(count.to_string())]),
            "log" => {
                log::info("an info line");
                log::warn("a warning");
                println!("from stdout");
                eprintln!("from stderr");
                Ok(vec![])
            }
            "loop" => loop {
                black_box(count);
            },
            "sleep" => {
                std::thread::sleep(std::time::Duration::from_secs(60));
                Ok(vec![])
            }
            "alloc" => {
                let mut hoard = Vec::new();
                loop {
                    hoard.push(black_box(vec![1u8; 1 << 20]));
                }
            }
            "trap" => panic!("deliberate panic in transform"),
            "exit" => std::process::exit(1),
            "recurse" => Ok(vec![Request::new(recurse(count).to_string())]),
            "invalid" => Ok(vec![Request::new("{}").header("bad header", "x")]),
            "forbidden-header" => Ok(vec![Request::new("{}").header("Webhook-Signature", "v1,forged")]),
            "big" => Ok(vec![Request::new("x".repeat(6 << 20))]),
            "alias" => Ok(aliased_bodies(64 << 10, 2_000)),
            "flood-log" => loop {
                log::info(&"flood ".repeat(100));
            },
            "flood-stdout" => loop {
                println!("{}", "flood ".repeat(100));
            },
            "sandbox" => Ok(vec![Request::json(&sandbox_report())]),
            // Half a second of host work per call if the host lets a plugin ask for this much.
            "random" => {
                let bytes = wasip2::random::random::get_random_bytes(60 << 20);
                Ok(vec![Request::new(bytes.len().to_string())])
            }
            "resources" => loop {
                std::mem::forget(wasip2::clocks::monotonic_clock::subscribe_duration(1));
            },
            "long-error" => Err(Error::failed("x".repeat(4 << 20))),
            "hoard" => {
                let mut hoard = HOARD.lock().unwrap_or_else(|p| p.into_inner());
                if hoard.is_empty() {
                    *hoard = vec![1u8; 60 << 20];
                }
                Ok(vec![Request::new(hoard.len().to_string())])
            }
            // The write-only key, JSON-escaped in the body and plain in a header.
            "leak-key" => Ok(vec![
                Request::json(&json!({"leaked": key})).header("authorization", format!("Bearer {key}")),
            ]),
            "private-url" => Ok(vec![Request::new("{}").url("http://10.0.0.1/internal")]),
            other => Err(Error::invalid_config(format!("unknown mode {other:?}"))),
        }
    }
}

#[allow(unconditional_recursion)] // the point of the exercise
fn recurse(depth: u64) -> u64 {
    let frame = black_box([depth; 64]);
    recurse(depth + 1) + frame[0]
}

/// Many requests whose bodies all point at the same guest bytes: tiny in guest memory, huge
/// once the host copies each body out.
fn aliased_bodies(size: usize, count: usize) -> Vec<Request> {
    let shared: &'static mut [u8] = Box::leak(vec![b'a'; size].into_boxed_slice());
    let ptr = shared.as_mut_ptr();
    (0..count)
        .map(|_| {
            // SAFETY: deliberately aliased and never freed (the buffer is leaked); the host is
            // expected to stop copying before any of these is dropped by post-return.
            let body = unsafe { String::from_raw_parts(ptr, size, size) };
            Request::new(body)
        })
        .collect()
}

/// What the sandbox let through: every probe should come back empty or refused.
fn sandbox_report() -> wasmhook_plugin_sdk::Value {
    let env: Vec<String> = std::env::vars().map(|(k, _)| k).collect();
    let args: Vec<String> = std::env::args().collect();
    let file = std::fs::read_to_string("/etc/passwd").map(|s| s.len()).map_err(|e| e.to_string());
    let dir = std::fs::read_dir(".").map(|d| d.count()).map_err(|e| e.to_string());
    let tcp = std::net::TcpStream::connect("127.0.0.1:80").map(|_| ()).map_err(|e| e.to_string());
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").map(|_| ()).map_err(|e| e.to_string());
    let dns = std::net::ToSocketAddrs::to_socket_addrs("localhost:80")
        .map(|a| a.count())
        .map_err(|e| e.to_string());
    json!({
        "env": env,
        "args": args,
        "file": file.is_ok(),
        "dir": dir.is_ok(),
        "tcp": tcp.is_ok(),
        "udp": udp.is_ok(),
        "dns": dns.is_ok(),
        "errors": [file.err(), dir.err(), tcp.err(), udp.err(), dns.err()],
    })
}

export_plugin!(Hostile);
