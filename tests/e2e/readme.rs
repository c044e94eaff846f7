//! The README's "Try it" section, run as written against the real binary: its shell blocks in
//! order, in a fresh directory, with the server and the receiver started in the background
//! where it says to start them in terminals of their own. Only the ports change (free ones
//! of the test's own), so the README cannot drift from what the product does.

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{binary, shared_cache_dir, storage_args, workspace};

const SECTION: &str = "## Try it";

/// The ```sh blocks of the README's "Try it" section.
fn blocks() -> Vec<String> {
    let readme = std::fs::read_to_string(workspace().join("README.md")).unwrap();
    let start = readme.find(&format!("\n{SECTION}")).expect("the README has a Try it section");
    let section = &readme[start + 1..];
    let section =
        &section[..section[SECTION.len()..].find("\n## ").map_or(section.len(), |end| end + SECTION.len())];
    section.split("```sh\n").skip(1).map(|rest| rest.split("```").next().unwrap().to_owned()).collect()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A block as this test runs it: on its own ports.
fn localized(block: &str, ports: &[(&str, u16)]) -> String {
    ports.iter().fold(block.to_owned(), |text, (from, port)| text.replace(from, &format!("127.0.0.1:{port}")))
}

/// Runs `script` with bash in `dir`, output to `log`; in the background when `wait` is false.
fn bash(dir: &Path, env: &[(String, String)], script: &str, log: &Path) -> Child {
    let bin = Path::new(binary()).parent().unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let log = std::fs::File::create(log).unwrap();
    Command::new("bash")
        .args(["-c", script])
        .current_dir(dir)
        .env("PATH", path)
        .env("NO_COLOR", "1")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap()
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn read(path: &Path) -> String {
    let mut text = String::new();
    std::fs::File::open(path).unwrap().read_to_string(&mut text).unwrap();
    text
}

#[test]
fn the_readme_s_try_it_section_runs_as_written() {
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(workspace().join("plugins"), dir.path().join("plugins")).unwrap();
    let (api, receiver, nobody) = (free_port(), free_port(), free_port());
    let ports = [("127.0.0.1:8080", api), ("127.0.0.1:9000", receiver), ("127.0.0.1:9001", nobody)];
    // What the defaults say in the README (127.0.0.1:8080), on this test's port.
    let mut env = vec![
        ("WASMHOOK_LISTEN".to_owned(), format!("127.0.0.1:{api}")),
        ("WASMHOOK_SERVER".to_owned(), format!("http://127.0.0.1:{api}")),
        ("WASMHOOK_CACHE_DIR".to_owned(), shared_cache_dir().display().to_string()),
    ];
    if let [_, url, _] = &storage_args(&dir.path().join("wasmhook-data"))[..] {
        env.push(("WASMHOOK_DATABASE".to_owned(), url.clone()));
        env.push(("WASMHOOK_MIGRATE".to_owned(), "true".to_owned()));
    }

    let blocks: Vec<String> = blocks().iter().map(|block| localized(block, &ports)).collect();
    let (serve, rest): (Vec<&String>, Vec<&String>) =
        blocks.iter().partition(|block| block.starts_with("./scripts/serve"));
    let [serve] = serve[..] else { panic!("one block starts the server: {blocks:?}") };
    // The script builds the binary, then runs `wasmhook serve` with the same arguments.
    let serve = serve.trim().replace("./scripts/serve", "exec wasmhook serve");
    let server_log = dir.path().join("server.log");
    let _server = Killed(bash(dir.path(), &env, &serve, &server_log));
    let started = Instant::now();
    // Ready once it says where it serves.
    while !read(&server_log).contains("address=") {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the server did not start: {}",
            read(&server_log)
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let (receive, steps): (Vec<&String>, Vec<&String>) =
        rest.into_iter().partition(|block| block.contains("\nwasmhook receive"));
    let [receive] = receive[..] else { panic!("one block starts the receiver: {blocks:?}") };
    let received_log = dir.path().join("received.log");
    let _receiver = Killed(bash(dir.path(), &env, receive, &received_log));

    let script =
        format!("set -euo pipefail\n{}", steps.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n"));
    let script_log = dir.path().join("script.log");
    let status = bash(dir.path(), &env, &script, &script_log).wait().unwrap();
    let output = read(&script_log);
    assert!(
        status.success(),
        "the README's commands failed:\n{script}\n--- output:\n{output}\n--- server:\n{}",
        read(&server_log)
    );

    // What the README says happens.
    assert!(output.contains("\"duplicate\":true"), "the repeated event is a duplicate:\n{output}");
    assert!(output.contains("\"status\": \"DISABLED\""), "the broken webhook is disabled:\n{output}");
    assert!(output.contains("\"reason\":\"matched\""), "explain says what matched:\n{output}");
    let started = Instant::now();
    loop {
        let received = read(&received_log);
        let count = |what: &str| received.matches(what).count();
        // The first event, the second at the working webhook, then the broken webhook's
        // health check and its recovered event.
        if count("event TODO_CREATED") >= 3 && count("event WEBHOOK_HEALTH_CHECK") == 1 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "not received as the README says:\n{received}\n--- output:\n{output}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
