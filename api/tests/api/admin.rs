//! Drain control: auth, drain/undrain, health while draining, `Connection: close`, in_flight.
//! What drain mode does to connections is in `drain.rs`.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{
    assert_json_error, spawn_app, spawn_app_with, start_slow_request, ADMIN_TOKEN,
};

#[tokio::test]
async fn admin_needs_the_token() {
    let app = spawn_app().await;
    for (method, path) in [
        ("POST", "/admin/drain"),
        ("GET", "/admin/drain"),
        ("POST", "/admin/undrain"),
    ] {
        assert_json_error(
            app.admin(method, path, None).await,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        )
        .await;
        let wrong = app.admin(method, path, Some("wrong")).await;
        assert_eq!(wrong.headers()["www-authenticate"], "Bearer");
        assert_json_error(wrong, StatusCode::UNAUTHORIZED, "unauthorized").await;
    }
    // Nothing changed.
    assert_eq!(app.health().await.status(), StatusCode::OK);
}

#[tokio::test]
async fn admin_is_disabled_without_a_configured_token() {
    let app = spawn_app_with(&[("ADMIN_TOKEN", "")]).await;
    assert_json_error(
        app.admin("POST", "/admin/drain", Some("anything")).await,
        StatusCode::FORBIDDEN,
        "disabled",
    )
    .await;
    assert_eq!(app.health().await.status(), StatusCode::OK);
}

#[tokio::test]
async fn drain_and_undrain() {
    let app = spawn_app().await;
    let status = app.drain_status().await;
    assert_eq!(
        status,
        serde_json::json!({"draining": false, "in_flight": 0, "expires_in_s": null})
    );

    let resp = app.admin("POST", "/admin/drain", Some(ADMIN_TOKEN)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.json::<Value>().await.unwrap()["draining"], true);

    // A draining task is healthy, just leaving: the load balancer's check must not fail, or
    // ECS replaces it. Readiness says it drains.
    let health = app.health().await;
    assert_eq!(health.status(), StatusCode::OK);
    assert_eq!(health.headers()["connection"], "close");
    let body = health.json::<Value>().await.unwrap();
    assert_eq!(body["status"], "draining");
    assert_eq!(body["draining"], true);
    assert_eq!(
        app.get("/ready").await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    // Requests are still served while draining, each telling the client to go away after.
    let visit = app.post_visit(None).await;
    assert_eq!(visit.status(), StatusCode::CREATED);
    assert_eq!(visit.headers()["connection"], "close");

    let resp = app.admin("POST", "/admin/undrain", Some(ADMIN_TOKEN)).await;
    assert_eq!(resp.json::<Value>().await.unwrap()["draining"], false);
    assert_eq!(app.get("/ready").await.status(), StatusCode::OK);
    let health = app.health().await;
    assert_eq!(health.status(), StatusCode::OK);
    assert!(health
        .headers()
        .get("connection")
        .is_none_or(|v| v != "close"));
}

#[tokio::test]
async fn in_flight_counts_requests_but_not_admin_ones() {
    let app = spawn_app().await;
    let slow = start_slow_request(&app.client, &app.base, 2).await;
    assert_eq!(slow.await.unwrap().unwrap().status(), StatusCode::OK);
    let s: Value = app
        .admin("POST", "/admin/drain", Some(ADMIN_TOKEN))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(s["draining"], true);
    assert_eq!(s["in_flight"], 0);
    assert_eq!(
        s["expires_in_s"], 299,
        "the default expiry, 300 s, just started"
    );
}
