//! The total stays exact under concurrency (group-committed POSTs racing direct SQL writes),
//! and every 201 names a committed row.

use std::collections::HashSet;

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::spawn_app;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn total_is_exact_under_concurrent_inserts() {
    let app = spawn_app().await;
    const CLIENTS: usize = 24;
    const EACH: usize = 20;
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let (client, url) = (app.client.clone(), app.url("/api/visit"));
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..EACH {
                let resp = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(format!(r#"{{"page":"/c{c}/{i}"}}"#))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), StatusCode::CREATED);
                ids.push(resp.json::<Value>().await.unwrap()["id"].as_i64().unwrap());
            }
            ids
        }));
    }
    // Other writers at the same time: multi-row inserts and a delete, outside the API.
    let pool = app.pool.clone();
    let sql = tokio::spawn(async move {
        for _ in 0..10 {
            sqlx::query("INSERT INTO visits (task_id) SELECT 'sql' FROM generate_series(1, 7)")
                .execute(&pool)
                .await
                .unwrap();
            sqlx::query("DELETE FROM visits WHERE id IN (SELECT id FROM visits WHERE task_id = 'sql' LIMIT 2)")
                .execute(&pool)
                .await
                .unwrap();
        }
    });
    // Readers too, so summaries coalesce while batches commit.
    for _ in 0..20 {
        let body = app.visits().await;
        assert!(body["total"].as_i64().unwrap() >= 0);
    }
    let mut ids = HashSet::new();
    for t in tasks {
        for id in t.await.unwrap() {
            assert!(ids.insert(id), "id {id} answered twice");
        }
    }
    sql.await.unwrap();

    let api_rows = (CLIENTS * EACH) as i64;
    let total = app.visits().await["total"].as_i64().unwrap();
    assert_eq!(
        total,
        app.row_count().await,
        "counter drifted from COUNT(*)"
    );
    assert_eq!(total, api_rows + 10 * 5);
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM visits WHERE id = ANY($1)")
        .bind(ids.iter().copied().collect::<Vec<i64>>())
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(stored, api_rows, "every 201 names a stored row");
    // Each row went to the request that sent its page.
    let mismatched: i64 =
        sqlx::query_scalar("SELECT count(*) FROM visits WHERE task_id <> 'sql' AND page IS NULL")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(mismatched, 0);
}

/// A database created before the counter was sharded keeps its total through the migration,
/// and stays exact afterwards.
#[tokio::test]
async fn sharding_the_counter_keeps_an_existing_total() {
    let url = tokio::task::spawn_blocking(crate::helpers::fresh_db)
        .await
        .unwrap();
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    // The schema as it was: only the first migration.
    let dir = std::env::temp_dir().join(format!("visits-first-migration-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let first = "20261123000001_visits.sql";
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    std::fs::copy(src.join(first), dir.join(first)).unwrap();
    let old = sqlx::migrate::Migrator::new(dir.as_path()).await.unwrap();
    old.run(&pool).await.unwrap();
    std::fs::remove_dir_all(&dir).ok();
    sqlx::query("INSERT INTO visits (task_id) SELECT 'old' FROM generate_series(1, 7)")
        .execute(&pool)
        .await
        .unwrap();

    visits_api::db::MIGRATOR.run(&pool).await.unwrap();
    let total = || async {
        sqlx::query_scalar::<_, i64>("SELECT total FROM visit_totals")
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    assert_eq!(total().await, 7);
    sqlx::query("INSERT INTO visits (task_id) SELECT 'new' FROM generate_series(1, 5)")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("DELETE FROM visits WHERE id IN (SELECT id FROM visits LIMIT 3)")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(total().await, 9);
    sqlx::query("TRUNCATE visits").execute(&pool).await.unwrap();
    assert_eq!(total().await, 0);
}
