//! Drain mode as the load balancer sees it: an expiry the scale-down renews, and no
//! connection left open once the last request is done (idle keep-alives closed after a quiet
//! period, busy ones closed after their response).

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{assert_json_error, eventually, spawn_app_with, TestApp, ADMIN_TOKEN};

async fn post_drain(app: &TestApp, body: &str) -> reqwest::Response {
    app.client
        .post(app.url("/admin/drain"))
        .bearer_auth(ADMIN_TOKEN)
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

async fn draining(app: &TestApp) -> bool {
    app.drain_status().await["draining"] == true
}

#[tokio::test]
async fn drain_mode_expires_unless_renewed() {
    let app = spawn_app_with(&[]).await;
    let v: Value = post_drain(&app, r#"{"ttl_s": 2}"#)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["draining"], true);
    assert_eq!(v["expires_in_s"], 1);
    // Renewed before it ends: still draining after the first expiry would have passed.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    post_drain(&app, r#"{"ttl_s": 2}"#).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(draining(&app).await, "renewed drain mode still on");
    // Not renewed: a lost undrain ends by itself.
    let ended = eventually(Duration::from_secs(5), || async { !draining(&app).await }).await;
    assert!(ended, "drain mode did not expire");
    let health = app.health().await;
    assert!(health
        .headers()
        .get("connection")
        .is_none_or(|v| v != "close"));
}

#[tokio::test]
async fn a_bad_drain_request_is_refused_and_changes_nothing() {
    let app = spawn_app_with(&[]).await;
    for body in [
        r#"{"ttl_s": 0}"#,
        r#"{"ttl_s": 3601}"#,
        r#"{"ttl": 5}"#,
        "nonsense",
    ] {
        assert_json_error(
            post_drain(&app, body).await,
            StatusCode::BAD_REQUEST,
            "bad_request",
        )
        .await;
        assert!(!draining(&app).await, "{body} changed the drain state");
    }
}

/// Sends one keep-alive request on `conn` and reads its whole answer (small, so one
/// `Content-Length` body); returns the head.
async fn request(conn: &mut TcpStream, path: &str) -> String {
    let req = format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n");
    conn.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut chunk))
            .await
            .expect("an answer within 10 s")
            .unwrap();
        assert!(
            n > 0,
            "closed before the answer: {}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let head = text[..end].to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            if buf.len() >= end + 4 + len {
                return head;
            }
        }
    }
}

/// Waits until the server closes `conn` (a read returns 0); how long that took.
async fn closed_by_server(conn: &mut TcpStream, within: Duration) -> Option<Duration> {
    let t0 = Instant::now();
    let mut b = [0u8; 64];
    match tokio::time::timeout(within, conn.read(&mut b)).await {
        Ok(Ok(0)) | Ok(Err(_)) => Some(t0.elapsed()),
        _ => None,
    }
}

#[tokio::test]
async fn idle_keep_alive_connections_close_after_the_quiet_period() {
    let app = spawn_app_with(&[("DRAIN_IDLE_CLOSE_MS", "1000")]).await;
    let addr = app.base.trim_start_matches("http://").to_string();
    let mut idle = TcpStream::connect(&addr).await.unwrap();
    let head = request(&mut idle, "/api/metrics").await;
    assert!(!head.contains("connection: close"), "{head}");
    let mut busy = TcpStream::connect(&addr).await.unwrap();
    request(&mut busy, "/api/metrics").await;
    // Not draining: idle keep-alives stay open.
    assert_eq!(
        closed_by_server(&mut idle, Duration::from_millis(1500)).await,
        None
    );

    post_drain(&app, "").await;
    // A connection in use gets `Connection: close` and is closed after that response.
    let head = request(&mut busy, "/api/metrics").await;
    assert!(head.contains("connection: close"), "{head}");
    assert!(closed_by_server(&mut busy, Duration::from_secs(2))
        .await
        .is_some());
    // While client requests keep coming (the target still gets traffic), idle connections
    // stay open: closing one as the load balancer picks it would fail that request.
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(app.get("/api/metrics").await.status(), StatusCode::OK);
    }
    assert_eq!(
        closed_by_server(&mut idle, Duration::from_millis(50)).await,
        None
    );
    // Then quiet: the idle connection is closed by the server.
    let waited = closed_by_server(&mut idle, Duration::from_secs(10))
        .await
        .expect("the idle keep-alive was closed");
    assert!(
        waited >= Duration::from_millis(500),
        "closed {waited:?} after the last request: before the quiet period"
    );
}
