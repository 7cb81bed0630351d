//! The real binary under process-level faults: a stdout nobody reads, a half-sent request at
//! SIGTERM, and running out of file descriptors.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::helpers::{fresh_db, test_env, ApiProcess};

/// Waits for the process to exit (bounded) off the runtime's threads.
async fn exit_within(api: ApiProcess, bound: Duration) -> Option<std::process::ExitStatus> {
    tokio::task::spawn_blocking(move || {
        let mut api = api;
        api.wait_exit(bound)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_stdout_costs_log_lines_not_answers_or_sigterm() {
    let db = tokio::task::spawn_blocking(fresh_db).await.unwrap();
    let api = ApiProcess::start(&test_env(&db, &[]));
    api.stdout_paused
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    // One log line (~200 bytes) per request: 8,000 of them fill the 64 KiB pipe and the
    // 1 MiB buffer behind it.
    let url = api.url("/health");
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move {
                let mut failed = 0;
                for _ in 0..1000 {
                    match client.get(&url).send().await {
                        Ok(r) if r.status() == StatusCode::OK => {}
                        _ => failed += 1,
                    }
                }
                failed
            })
        })
        .collect();
    let mut failed = 0;
    for w in workers {
        failed += w.await.unwrap();
    }
    assert_eq!(failed, 0, "requests failed while stdout was stuck");
    let m: Value = client
        .get(api.url("/api/metrics"))
        .send()
        .await
        .expect("the server still answers")
        .json()
        .await
        .unwrap();
    assert!(m["log_lines_dropped"].as_u64().unwrap() > 0, "{m}");
    // SIGTERM still ends it, stdout still stuck: the exit flush is bounded.
    api.signal(Signal::SIGTERM);
    let status = exit_within(api, Duration::from_secs(20)).await;
    assert_eq!(status.expect("exited within 20 s").code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_sent_request_does_not_hold_shutdown() {
    let db = tokio::task::spawn_blocking(fresh_db).await.unwrap();
    let api = ApiProcess::start(&test_env(&db, &[("SHUTDOWN_GRACE_S", "20")]));
    let mut half = TcpStream::connect(api.addr).await.unwrap();
    half.write_all(b"POST /api/visit HTTP/1.1\r\nHost: x\r\nContent-Le")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t = Instant::now();
    api.signal(Signal::SIGTERM);
    let status = exit_within(api, Duration::from_secs(30)).await;
    assert_eq!(status.expect("exited").code(), Some(0));
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "shutdown waited {:?} for a half-sent request",
        t.elapsed()
    );
}

/// CPU seconds the process has used (user + system), from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split(' ').collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_file_descriptors_sheds_idle_connections_without_spinning() {
    let db = tokio::task::spawn_blocking(fresh_db).await.unwrap();
    let env = test_env(&db, &[("HEADER_READ_TIMEOUT_MS", "4000")]);
    let api = ApiProcess::start_wrapped(&env, &["prlimit", "--nofile=64:64"]);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();

    // 1. 100 idle connections: more than the limit. The API closes idle ones to accept more.
    let mut idle = Vec::new();
    for _ in 0..100 {
        idle.push(TcpStream::connect(api.addr).await.unwrap());
    }
    let mut healthy = false;
    for _ in 0..20 {
        if let Ok(r) = client.get(api.url("/health")).send().await {
            healthy = r.status() == StatusCode::OK;
            if healthy {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(healthy, "/health never answered past 100 idle connections");
    drop(idle);

    // 2. Connections that are not idle (half-sent heads) hold every descriptor until the header
    //    bound: accept keeps failing with EMFILE meanwhile, and the loop must not spin.
    let mut heads = Vec::new();
    for _ in 0..100 {
        let mut s = TcpStream::connect(api.addr).await.unwrap();
        let _ = s.write_all(b"GET /health HTTP/1.1\r\nHo").await;
        heads.push(s);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pid = api.child.id();
    let (cpu0, t0) = (cpu_seconds(pid), Instant::now());
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let share = (cpu_seconds(pid) - cpu0) / t0.elapsed().as_secs_f64();
    assert!(share < 0.5, "the accept loop used {share:.2} of a core");
    // Past the header bound the heads are closed and the API serves again.
    let recovered = {
        let mut ok = false;
        for _ in 0..50 {
            if let Ok(r) = client.get(api.url("/health")).send().await {
                if r.status() == StatusCode::OK {
                    ok = true;
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        ok
    };
    assert!(recovered, "/health never answered after the header bound");
    drop(heads);
}
