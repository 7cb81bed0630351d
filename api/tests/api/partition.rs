//! A database connection that goes silent mid-statement: every round trip is bounded on the
//! client side, the silent connections are thrown away, and writes come back within seconds
//! through new connections, with nothing acknowledged lost.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::faults::{outcome, pg_addr, Load, Proxy};
use crate::helpers::{fresh_db, spawn_app_on};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_database_connections_are_dropped_and_writes_recover() {
    let db = tokio::task::spawn_blocking(fresh_db).await.unwrap();
    let proxy = Proxy::start(pg_addr(&db)).await;
    // The default bounds: DB_QUERY_TIMEOUT_MS 3000, DB_ACQUIRE_TIMEOUT_MS 1500.
    let app = spawn_app_on(&proxy.url_for(&db), &[]).await;
    assert_eq!(
        app.post_visit(Some("{}")).await.status(),
        StatusCode::CREATED
    );

    let load = Load::start(&app.base, 32, Duration::from_secs(40));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cut = load.now();
    proxy.partition();
    // Bounded: until 201s come back from requests sent after the cut, or 25 s.
    let deadline = std::time::Instant::now() + Duration::from_secs(25);
    while std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let metrics: Value = app.get("/api/metrics").await.json().await.unwrap();
        if load.now() > cut + Duration::from_secs(1) && metrics["writes"]["can_write"] == true {
            let after = app.post_visit(Some("{}")).await.status();
            if after == StatusCode::CREATED && metrics["writes"]["failed_rows"].as_u64() > Some(0) {
                break;
            }
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let answers = load.finish().await;
    // Read the table directly, not through the proxy.
    let direct = sqlx::PgPool::connect(&db).await.unwrap();
    let o = outcome(&answers, &direct, cut).await;
    let metrics: Value = app.get("/api/metrics").await.json().await.unwrap();
    eprintln!("partition: {o:?}\nmetrics: {metrics}");

    assert_eq!(o.missing, 0, "an acknowledged visit is missing");
    assert!(o.errors_503 > 0, "the partition never showed: {o:?}");
    let recovery = o.recovery.expect("no write succeeded after the partition");
    // Query bound 3 s + acquire 1.5 s; generous for a loaded machine.
    assert!(
        recovery < Duration::from_secs(12),
        "writes took {recovery:?} to come back"
    );
    assert!(
        o.max_503 < Duration::from_secs(10),
        "a 503 took {:?}",
        o.max_503
    );
    let totals = &metrics["writes"];
    assert!(totals["failed_rows"].as_u64().unwrap() > 0, "{metrics}");
    // Rows committed but answered 503 are among those the task reported as uncertain.
    assert!(
        o.unacknowledged_rows
            <= totals["uncertain_rows"].as_i64().unwrap()
                + totals["committed_unanswered_rows"].as_i64().unwrap(),
        "{o:?} vs {metrics}"
    );
}
