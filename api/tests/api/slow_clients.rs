//! Slow and idle clients on raw sockets, in bounded numbers and times: a half-sent head is
//! closed at the header bound, an unfinished body gets 408 and never counts in flight, an idle
//! keep-alive connection is closed at the idle bound (not the shorter header bound).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{spawn_app_with, TestApp};

pub fn addr_of(app: &TestApp) -> SocketAddr {
    app.base.trim_start_matches("http://").parse().unwrap()
}

/// Connects and sends `bytes` (maybe an incomplete request).
pub async fn send_raw(addr: SocketAddr, bytes: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(bytes).await.expect("send");
    s
}

/// Reads until the server closes or `within` passes: (what came, closed by the server).
pub async fn read_until_closed(s: &mut TcpStream, within: Duration) -> (String, bool) {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return (String::from_utf8_lossy(&got).into_owned(), false),
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&got).into_owned(), true),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

async fn in_flight(app: &TestApp) -> u64 {
    app.drain_status().await["in_flight"].as_u64().unwrap()
}

#[tokio::test]
async fn a_half_sent_head_is_closed_at_the_header_bound() {
    let app = spawn_app_with(&[("HEADER_READ_TIMEOUT_MS", "500")]).await;
    let started = Instant::now();
    let mut s = send_raw(addr_of(&app), b"GET /health HTTP/1.1\r\nHost: x\r\n").await;
    let (got, closed) = read_until_closed(&mut s, Duration::from_secs(15)).await;
    assert!(closed, "still open after 15 s");
    assert!(got.is_empty(), "{got}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn unfinished_bodies_get_408_and_are_never_in_flight() {
    let app = spawn_app_with(&[("BODY_READ_TIMEOUT_MS", "1500")]).await;
    let head = b"POST /api/visit HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"page\"";
    let mut slow = Vec::new();
    for _ in 0..50 {
        slow.push(send_raw(addr_of(&app), head).await);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(in_flight(&app).await, 0, "slow uploads counted in flight");
    for s in &mut slow {
        let (got, closed) = read_until_closed(s, Duration::from_secs(15)).await;
        assert!(got.starts_with("HTTP/1.1 408 "), "{got}");
        assert!(got.contains(r#""error":"request_timeout""#), "{got}");
        assert!(closed, "the connection stays open after 408");
    }
    assert_eq!(app.row_count().await, 0);
}

#[tokio::test]
async fn idle_keep_alive_connections_close_at_the_idle_bound_only() {
    let app = spawn_app_with(&[("HEADER_READ_TIMEOUT_MS", "300"), ("IDLE_TIMEOUT_S", "2")]).await;
    let req = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut s = send_raw(addr_of(&app), req).await;
    let mut buf = [0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200 "));
    // Idle for longer than the header bound: still open, and serves the next request.
    tokio::time::sleep(Duration::from_millis(800)).await;
    s.write_all(req).await.unwrap();
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200 "),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    let idle_from = Instant::now();
    let (_, closed) = read_until_closed(&mut s, Duration::from_secs(15)).await;
    assert!(closed, "an idle connection stays open");
    let idle = idle_from.elapsed();
    assert!(
        idle >= Duration::from_millis(1500) && idle < Duration::from_secs(10),
        "closed after {idle:?} idle (bound 2 s)"
    );
}
