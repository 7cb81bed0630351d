//! The real binary: config errors, SIGTERM drain, kill -9 mid-burst, concurrent startups and
//! the EMF records on stdout.

use std::collections::HashMap;
use std::net::TcpStream;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;
use reqwest::StatusCode;
use serde_json::Value;
use sqlx::PgPool;

use crate::helpers::{fresh_db, start_slow_request, test_env, ApiProcess, ADMIN_TOKEN};

fn run_to_exit(env: &[(&str, &str)]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_visits-api"))
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

#[test]
fn bad_config_stops_with_one_line_naming_the_variable() {
    let out = run_to_exit(&[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("DATABASE_URL"), "{err}");

    let out = run_to_exit(&[
        ("DATABASE_URL", "postgres://u@127.0.0.1:1/db"),
        ("SHUTDOWN_GRACE_S", "soon"),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("SHUTDOWN_GRACE_S"));
}

#[test]
fn unreachable_database_gives_up_after_the_bound() {
    let port = test_support::free_port().unwrap().to_string();
    let url = format!("postgres://u@127.0.0.1:{port}/db");
    let out = run_to_exit(&[
        ("DATABASE_URL", &url),
        ("DB_STARTUP_TIMEOUT_S", "1"),
        ("PORT", "0"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("DB_STARTUP_TIMEOUT_S") && err.trim().lines().count() == 1,
        "{err}"
    );
}

fn env_for(db: &str, extra: &[(&str, &str)]) -> HashMap<String, String> {
    test_env(db, extra)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_requests_then_exits() {
    let db = tokio::task::spawn_blocking(fresh_db).await.unwrap();
    let mut api = ApiProcess::start(&env_for(&db, &[("SHUTDOWN_GRACE_S", "20")]));
    let client = reqwest::Client::new();
    let slow = start_slow_request(&client, &api.base, 2).await;
    api.signal(Signal::SIGTERM);

    let resp = slow
        .await
        .unwrap()
        .expect("the in-flight request completes");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["connection"], "close");
    let body: Value = resp.json().await.unwrap();
    assert!(body["burned_s"].as_f64().unwrap() >= 1.9, "{body}");

    let addr = api.addr;
    let status = tokio::task::spawn_blocking(move || {
        let s = api.wait_exit(Duration::from_secs(30));
        (s, api)
    })
    .await
    .unwrap();
    assert_eq!(status.0.expect("exited").code(), Some(0));
    assert!(
        TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err(),
        "new connections refused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_grace_period_bounds_the_wait() {
    let db = tokio::task::spawn_blocking(fresh_db).await.unwrap();
    let mut api = ApiProcess::start(&env_for(&db, &[("SHUTDOWN_GRACE_S", "1")]));
    let client = reqwest::Client::new();
    let slow = start_slow_request(&client, &api.base, 60).await;
    api.signal(Signal::SIGTERM);
    let (status, _api) =
        tokio::task::spawn_blocking(move || (api.wait_exit(Duration::from_secs(30)), api))
            .await
            .unwrap();
    // Exits well before the 60 s burn would end, and cleanly.
    assert_eq!(
        status
            .expect("exited within 30 s despite a 60 s request")
            .code(),
        Some(0)
    );
    // Past the grace period the burn is stopped and answers 503: never a success, and never a
    // dropped connection.
    let resp = slow
        .await
        .unwrap()
        .expect("an answer, not a dropped connection");
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "unavailable", "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_post_burst_loses_no_acknowledged_row() {
    let db = tokio::task::spawn_blocking(fresh_db).await.unwrap();
    let api = ApiProcess::start(&env_for(&db, &[]));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..16 {
        let (client, url, stop) = (client.clone(), api.url("/api/visit"), stop.clone());
        workers.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            // Bounded: stops at the kill (errors) or after 2000 requests.
            for _ in 0..2000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let post = client.post(&url).header("content-type", "application/json");
                match post.send().await {
                    Ok(r) if r.status() == StatusCode::CREATED => match r.json::<Value>().await {
                        Ok(v) => acked.push(v["id"].as_i64().unwrap()),
                        Err(_) => break,
                    },
                    _ => break,
                }
            }
            acked
        }));
    }
    let pool = PgPool::connect(&db).await.unwrap();
    let enough = crate::helpers::eventually(Duration::from_secs(60), || async {
        sqlx::query_scalar::<_, i64>("SELECT total FROM visit_totals")
            .fetch_one(&pool)
            .await
            .unwrap()
            >= 300
    })
    .await;
    assert!(enough, "the burst did not get going");
    api.signal(Signal::SIGKILL);
    stop.store(true, Ordering::Relaxed);
    let mut acked = Vec::new();
    for w in workers {
        acked.extend(w.await.unwrap());
    }
    assert!(acked.len() >= 100, "only {} acknowledged", acked.len());
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM visits WHERE id = ANY($1)")
        .bind(&acked)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        stored,
        acked.len() as i64,
        "an acknowledged visit is missing"
    );
    let (total, rows): (i64, i64) =
        sqlx::query_as("SELECT (SELECT total FROM visit_totals), (SELECT count(*) FROM visits)")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(total, rows);
    drop(api);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_startups_migrate_once() {
    let db = tokio::task::spawn_blocking(fresh_db).await.unwrap();
    let env = env_for(&db, &[]);
    let starts: Vec<_> = (0..4)
        .map(|_| {
            let env = env.clone();
            std::thread::spawn(move || ApiProcess::start(&env))
        })
        .collect();
    let apis: Vec<ApiProcess> = starts
        .into_iter()
        .map(|h| h.join().expect("every start succeeds"))
        .collect();
    let client = reqwest::Client::new();
    for api in &apis {
        assert_eq!(
            client
                .get(api.url("/health"))
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::OK
        );
        assert_eq!(
            client
                .post(api.url("/api/visit"))
                .header("content-type", "application/json")
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::CREATED
        );
    }
    let pool = PgPool::connect(&db).await.unwrap();
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(applied as usize, visits_api::db::MIGRATOR.iter().count());
    let total: i64 = sqlx::query_scalar("SELECT total FROM visit_totals")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(total, 4);
}

#[test]
fn emf_records_go_to_stdout_one_line_each() {
    let db = fresh_db();
    let api = ApiProcess::start(&env_for(
        &db,
        &[
            ("METRICS_INTERVAL_S", "1"),
            ("METRICS_NAMESPACE", "VisitsTest"),
            ("SERVICE_NAME", "visits-api"),
        ],
    ));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let record = loop {
        let line = api
            .lines
            .recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
            .expect("an EMF line within 30 s");
        if let Ok(v) = serde_json::from_str::<Value>(&line) {
            if v.get("_aws").is_some() {
                break v;
            }
        }
    };
    let decl = &record["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(decl["Namespace"], "VisitsTest");
    assert_eq!(record["ClusterName"], "visits");
    assert_eq!(record["ServiceName"], "visits-api");
    for m in [
        "RequestCount",
        "InFlight",
        "Http5xxCount",
        "CPUUtilization",
        "MemoryUtilization",
    ] {
        assert!(record[m].is_number(), "{m} missing in {record}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthcheck_subcommand_reports_liveness_even_while_draining() {
    let db = tokio::task::spawn_blocking(fresh_db).await.unwrap();
    let api = ApiProcess::start(&env_for(&db, &[]));
    let check = |port: u16| {
        Command::new(env!("CARGO_BIN_EXE_visits-api"))
            .arg("healthcheck")
            .env_clear()
            .env("PORT", port.to_string())
            .status()
            .unwrap()
            .code()
    };
    assert_eq!(check(api.addr.port()), Some(0));
    let drained = reqwest::Client::new()
        .post(api.url("/admin/drain"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(drained.status(), StatusCode::OK);
    assert_eq!(check(api.addr.port()), Some(0), "draining is still alive");
    drop(api);
    let free = test_support::free_port().unwrap();
    assert_eq!(check(free), Some(1));
}
