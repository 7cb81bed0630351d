//! Database outage: requests fail fast with 503 while it is down, and the API recovers by
//! itself once it is back.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{assert_json_error, eventually, private_cluster, spawn_app_on};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_fails_fast_then_recovers() {
    let cluster = tokio::task::spawn_blocking(private_cluster).await.unwrap();
    let db_url = cluster.fresh_database("outage").unwrap();
    let app = spawn_app_on(
        &db_url,
        &[
            ("DB_ACQUIRE_TIMEOUT_MS", "1000"),
            ("HEALTH_DB_TIMEOUT_MS", "1000"),
        ],
    )
    .await;
    assert_eq!(app.post_visit(None).await.status(), StatusCode::CREATED);
    app.pool.close().await;

    let cluster = tokio::task::spawn_blocking(move || {
        cluster.stop().unwrap();
        cluster
    })
    .await
    .unwrap();

    // Fast: bounded by the acquire timeout, not by TCP or statement timeouts. The bound here is
    // loose for a loaded machine; the point is that nothing hangs.
    for _ in 0..3 {
        let started = Instant::now();
        assert_json_error(
            app.post_visit(None).await,
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
        )
        .await;
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "POST took {:?}",
            started.elapsed()
        );
        let started = Instant::now();
        let visits = app.get("/api/visits").await;
        assert_json_error(visits, StatusCode::SERVICE_UNAVAILABLE, "unavailable").await;
        assert!(started.elapsed() < Duration::from_secs(10));
        let health = app.health().await;
        assert_eq!(health.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            health.json::<Value>().await.unwrap()["database"],
            "unreachable"
        );
    }

    let cluster = tokio::task::spawn_blocking(move || {
        cluster.start().unwrap();
        cluster
    })
    .await
    .unwrap();
    let back = Instant::now();
    let recovered = eventually(Duration::from_secs(5), || async {
        app.post_visit(None).await.status() == StatusCode::CREATED
    })
    .await;
    assert!(
        recovered,
        "no 201 within 5 s of the database accepting connections"
    );
    assert_eq!(app.health().await.status(), StatusCode::OK);
    eprintln!(
        "recovered {:?} after the database came back",
        back.elapsed()
    );
    drop(cluster);
}
