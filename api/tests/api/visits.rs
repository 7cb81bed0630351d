//! `/health`, `POST /api/visit`, `GET /api/visits`, `/api/metrics` and the JSON 404/405.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{assert_json_error, spawn_app};

#[tokio::test]
async fn health_reports_database_and_identity() {
    let app = spawn_app().await;
    let resp = app.health().await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["database"], "ok");
    assert!(!body["task_id"].as_str().unwrap().is_empty());
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
}

#[tokio::test]
async fn visit_is_stored_and_returned() {
    let app = spawn_app().await;
    let long_ua = "x".repeat(1000);
    let resp = app
        .client
        .post(app.url("/api/visit"))
        .header("x-forwarded-for", "198.51.100.1, 203.0.113.9")
        .header("user-agent", &long_ua)
        .header("content-type", "application/json")
        .body(r#"{"page":"/pricing"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let row: Value = resp.json().await.unwrap();
    assert_eq!(row["page"], "/pricing");
    assert_eq!(row["client_ip"], "203.0.113.9");
    assert_eq!(row["user_agent"].as_str().unwrap().len(), 256);
    assert!(row["visited_at"].is_string());

    let id = row["id"].as_i64().unwrap();
    let stored: (String, Option<String>) =
        sqlx::query_as("SELECT task_id, page FROM visits WHERE id = $1")
            .bind(id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(stored.0, row["task_id"].as_str().unwrap());
    assert_eq!(stored.1.as_deref(), Some("/pricing"));
}

#[tokio::test]
async fn visit_without_body_uses_the_peer_address() {
    let app = spawn_app().await;
    let resp = app.post_visit(None).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let row: Value = resp.json().await.unwrap();
    assert_eq!(row["client_ip"], "127.0.0.1");
    assert!(row["page"].is_null());
}

#[tokio::test]
async fn bad_visit_bodies_get_4xx_and_write_nothing() {
    let app = spawn_app().await;
    for body in [
        "{",
        "[]",
        r#"{"page": 7}"#,
        r#"{"page": ""}"#,
        r#"{"unknown": "field"}"#,
        r#"{"page": "a\u0000b"}"#,
    ] {
        assert_json_error(
            app.post_visit(Some(body)).await,
            StatusCode::BAD_REQUEST,
            "bad_request",
        )
        .await;
    }
    let long_page = format!(r#"{{"page":"/{}"}}"#, "p".repeat(600));
    assert_json_error(
        app.post_visit(Some(&long_page)).await,
        StatusCode::BAD_REQUEST,
        "bad_request",
    )
    .await;
    let huge = format!(r#"{{"page":"/{}"}}"#, "p".repeat(5000));
    assert_json_error(
        app.post_visit(Some(&huge)).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    )
    .await;
    assert_eq!(app.row_count().await, 0);
    assert_eq!(app.visits().await["total"], 0);
}

#[tokio::test]
async fn visits_returns_exact_total_and_ten_newest() {
    let app = spawn_app().await;
    assert_eq!(
        app.visits().await,
        serde_json::json!({"total": 0, "recent": []})
    );
    let mut ids = Vec::new();
    for i in 0..12 {
        let resp = app
            .post_visit(Some(&format!(r#"{{"page":"/p{i}"}}"#)))
            .await;
        assert_eq!(resp.status(), StatusCode::CREATED);
        ids.push(resp.json::<Value>().await.unwrap()["id"].as_i64().unwrap());
    }
    let body = app.visits().await;
    assert_eq!(body["total"], 12);
    let recent: Vec<i64> = body["recent"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    let mut newest: Vec<i64> = ids.iter().rev().take(10).copied().collect();
    newest.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(recent, newest);
    assert_eq!(body["recent"][0]["page"], "/p11");
}

#[tokio::test]
async fn metrics_describe_this_task() {
    let app = spawn_app().await;
    app.post_visit(None).await;
    let resp = app.get("/api/metrics").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let m: Value = resp.json().await.unwrap();
    for key in [
        "cpu_percent",
        "memory_bytes",
        "memory_percent",
        "in_flight",
        "request_rate",
        "uptime_s",
    ] {
        assert!(m[key].is_number(), "{key} in {m}");
    }
    assert!(
        m["in_flight"].as_u64().unwrap() >= 1,
        "the metrics request itself is in flight"
    );
    assert!(m["task_id"].is_string());
}

#[tokio::test]
async fn unknown_routes_and_methods_get_json_errors() {
    let app = spawn_app().await;
    assert_json_error(app.get("/nope").await, StatusCode::NOT_FOUND, "not_found").await;
    assert_json_error(
        app.get("/api/visit").await,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    )
    .await;
    let resp = app
        .client
        .delete(app.url("/api/visits"))
        .send()
        .await
        .unwrap();
    assert_json_error(resp, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
}
