//! The load generator against a tiny local HTTP server: counts, error kinds,
//! bounds, and the loopback rule.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use e2e::loadgen::{run, Config, Mode, Scenario};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Serves `status` to every request on a loopback port; counts requests.
async fn server(status: u16) -> (String, Arc<AtomicU64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicU64::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut seen = Vec::new();
                loop {
                    let Ok(n) = sock.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    seen.extend_from_slice(&buf[..n]);
                    // One small request per connection read: headers + tiny body.
                    while let Some(end) = find_request_end(&seen) {
                        seen.drain(..end);
                        counter.fetch_add(1, Ordering::SeqCst);
                        let reply = format!("HTTP/1.1 {status} X\r\ncontent-length: 2\r\n\r\nok");
                        if sock.write_all(reply.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (url, hits)
}

/// End of the first request in `buf` (headers plus content-length body).
fn find_request_end(buf: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(buf).ok()?;
    let head_end = text.find("\r\n\r\n")? + 4;
    let len = text[..head_end]
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
        })
        .unwrap_or(0);
    (buf.len() >= head_end + len).then_some(head_end + len)
}

fn config(url: &str, mode: Mode, max_requests: u64) -> Config {
    Config {
        base_url: url.to_string(),
        scenario: Scenario::Mix,
        mode,
        duration: Duration::from_secs(20),
        max_requests,
        timeout: Duration::from_secs(10),
        progress: false,
    }
}

#[tokio::test]
async fn closed_loop_counts_every_request_and_stops_at_the_budget() {
    let (url, hits) = server(200).await;
    let summary = run(config(&url, Mode::Concurrency(4), 200)).await.unwrap();
    assert_eq!(summary.requests, 200);
    assert_eq!(summary.ok, 200);
    assert_eq!(summary.failed, 0);
    assert_eq!(hits.load(Ordering::SeqCst), 200);
    assert!(summary.latency_ms["max"] >= summary.latency_ms["p50"]);
}

#[tokio::test]
async fn open_loop_reports_errors_by_kind() {
    let (url, _) = server(503).await;
    let summary = run(config(&url, Mode::Rate(200.0), 50)).await.unwrap();
    assert_eq!(summary.requests, 50);
    assert_eq!(summary.failed, 50);
    assert_eq!(summary.errors.get("status_5xx"), Some(&50));

    // Nothing listens on a just-freed port: connection errors.
    let port = test_support::free_port().unwrap();
    let summary = run(config(
        &format!("http://127.0.0.1:{port}"),
        Mode::Rate(100.0),
        10,
    ))
    .await
    .unwrap();
    assert_eq!(summary.errors.get("connect"), Some(&10));
}

#[tokio::test]
async fn refuses_non_loopback_targets() {
    let err = run(config("http://172.31.0.10:8080", Mode::Rate(1.0), 1))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("non-loopback"), "{err}");
}
