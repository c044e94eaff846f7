//! Serving the API over HTTP/1.1 with a bound on how long a connection may hold the server
//! without sending a request, which `axum::serve` lacks (slowloris, idle keep-alive).
//!
//! hyper's header read timeout does both jobs: its timer starts when a connection opens and
//! again when a kept-alive connection finishes a response (hyperium/hyper#3828, in the locked
//! hyper 1.12), and stops once a complete request head is in. So one timeout bounds unfinished
//! headers and idle keep-alive alike (a test below holds hyper to it); a request in flight is
//! never cut by it.
//!
//! HTTP/2 is not offered: the server spoke only HTTP/1.1 before, and hyper's timeout covers
//! HTTP/1 only — h2 would need its own keep-alive and idle handling.

use std::future::Future;
use std::io;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

use crate::config::HttpConfig;

/// Serves `app` on `listener` until `shutdown` completes; then stops accepting, lets the
/// requests in flight finish and returns.
pub async fn run(
    listener: TcpListener,
    app: Router,
    config: HttpConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(config.header_read_timeout);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) => {
                accept_failed(error).await;
                continue;
            }
        };
        // Small JSON answers go out at once instead of waiting on Nagle's algorithm.
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!("cannot set TCP_NODELAY: {error}");
        }
        let connection =
            builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // Timeouts and resets end up here; they concern one client, not the server.
            if let Err(error) = connection.await {
                tracing::debug!("connection ended: {error}");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// As `axum::serve`: a connection reset before it was accepted is the client's business;
/// anything else (out of file descriptors) is logged and retried after a pause, not spun on.
async fn accept_failed(error: io::Error) {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if !matches!(error.kind(), ConnectionAborted | ConnectionRefused | ConnectionReset) {
        tracing::error!("accept failed: {error}");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::Arc;

    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio::sync::{Notify, oneshot};
    use tokio::task::JoinHandle;
    use tokio::time::timeout;

    use super::*;

    /// Far beyond any timeout under test: only a hang reaches it.
    const PATIENCE: Duration = Duration::from_secs(5);
    const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";

    struct Server {
        addr: SocketAddr,
        stop: oneshot::Sender<()>,
        task: JoinHandle<io::Result<()>>,
    }

    async fn start(app: Router, header_read_timeout: Duration) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let config = HttpConfig { header_read_timeout };
        let task = tokio::spawn(run(listener, app, config, async {
            let _ = stopped.await;
        }));
        Server { addr, stop, task }
    }

    fn hello() -> Router {
        Router::new().route("/", get(|| async { "hello" }))
    }

    /// Reads until the server closes the connection (EOF or reset) and returns what came.
    async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
        let mut seen = Vec::new();
        let mut buf = [0; 1024];
        loop {
            match timeout(PATIENCE, stream.read(&mut buf)).await.expect("the server closes the connection") {
                Ok(0) | Err(_) => return seen,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    }

    /// Reads one response whose body is `hello`, leaving the connection open.
    async fn read_hello(stream: &mut TcpStream) -> String {
        let mut seen = Vec::new();
        let mut buf = [0; 1024];
        while !seen.ends_with(b"\r\n\r\nhello") {
            let n = timeout(PATIENCE, stream.read(&mut buf)).await.expect("a response").unwrap();
            assert_ne!(n, 0, "closed before the response: {}", String::from_utf8_lossy(&seen));
            seen.extend_from_slice(&buf[..n]);
        }
        String::from_utf8(seen).unwrap()
    }

    #[tokio::test]
    async fn unfinished_headers_and_silent_connections_are_closed() {
        let server = start(hello(), Duration::from_millis(200)).await;
        let mut slow = TcpStream::connect(server.addr).await.unwrap();
        slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        let mut silent = TcpStream::connect(server.addr).await.unwrap();
        assert!(read_until_closed(&mut slow).await.is_empty(), "no response to a request never finished");
        assert!(read_until_closed(&mut silent).await.is_empty());
    }

    #[tokio::test]
    async fn an_idle_keep_alive_connection_is_closed() {
        let server = start(hello(), Duration::from_millis(200)).await;
        let mut client = TcpStream::connect(server.addr).await.unwrap();
        client.write_all(GET).await.unwrap();
        assert!(read_hello(&mut client).await.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(read_until_closed(&mut client).await.is_empty());
    }

    #[tokio::test]
    async fn a_kept_alive_connection_serves_a_second_request() {
        let server = start(hello(), PATIENCE).await;
        let mut client = TcpStream::connect(server.addr).await.unwrap();
        for _ in 0..2 {
            client.write_all(GET).await.unwrap();
            assert!(read_hello(&mut client).await.starts_with("HTTP/1.1 200 OK\r\n"));
        }
    }

    #[tokio::test]
    async fn shutdown_stops_accepting_and_waits_for_requests_in_flight() {
        let (entered, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        let app = Router::new().route(
            "/",
            get({
                let (entered, release) = (entered.clone(), release.clone());
                move || async move {
                    entered.notify_one();
                    release.notified().await;
                    "hello"
                }
            }),
        );
        let server = start(app, PATIENCE).await;
        let mut client = TcpStream::connect(server.addr).await.unwrap();
        client.write_all(GET).await.unwrap();
        timeout(PATIENCE, entered.notified()).await.expect("the handler runs");

        server.stop.send(()).unwrap();
        // Once the listener is gone connecting is refused: shutdown has begun.
        timeout(PATIENCE, async {
            while TcpStream::connect(server.addr).await.is_ok() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the server stops accepting");
        assert!(!server.task.is_finished(), "a request is still in flight");

        release.notify_one();
        let response = String::from_utf8(read_until_closed(&mut client).await).unwrap();
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n") && response.ends_with("hello"), "{response}");
        timeout(PATIENCE, server.task).await.expect("the server returns").unwrap().unwrap();
    }
}
