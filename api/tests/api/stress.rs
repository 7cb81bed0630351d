//! `POST /api/stress`: auth, validation, the concurrency bound, and a free runtime meanwhile.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{
    assert_json_error, spawn_app, spawn_app_with, start_slow_request, STRESS_TOKEN,
};

#[tokio::test]
async fn stress_is_disabled_without_a_token() {
    let app = spawn_app_with(&[("STRESS_TOKEN", "")]).await;
    let resp = app.stress(r#"{"duration_s":1}"#, Some("x")).await;
    assert_json_error(resp, StatusCode::FORBIDDEN, "disabled").await;
}

#[tokio::test]
async fn stress_checks_token_and_input() {
    let app = spawn_app().await;
    assert_json_error(
        app.stress(r#"{"duration_s":1}"#, None).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    assert_json_error(
        app.stress(r#"{"duration_s":1}"#, Some("no")).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    for body in [
        "",
        "{",
        r#"{"duration_s":0}"#,
        r#"{"duration_s":61}"#,
        r#"{"duration_s":-1}"#,
        r#"{"duration_s":"5"}"#,
        r#"{"duration":1,"duration_s":1}"#,
        r#"{"duration":1,"intensity":0}"#,
        r#"{"duration":1,"intensity":10000001}"#,
        r#"{"duration":61}"#,
        r#"{"intensity":5}"#,
    ] {
        assert_json_error(
            app.stress(body, Some(STRESS_TOKEN)).await,
            StatusCode::BAD_REQUEST,
            "bad_request",
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stress_burns_off_the_runtime_and_is_bounded() {
    let app = spawn_app_with(&[("STRESS_MAX_CONCURRENT", "1")]).await;
    let burn = start_slow_request(&app.client, &app.base, 3).await;
    // The slot is taken: a second burn is refused, and other requests are still served.
    assert_json_error(
        app.stress(r#"{"duration_s":1}"#, Some(STRESS_TOKEN)).await,
        StatusCode::TOO_MANY_REQUESTS,
        "busy",
    )
    .await;
    assert_eq!(app.health().await.status(), StatusCode::OK);
    let done = burn.await.unwrap().unwrap();
    assert_eq!(done.status(), StatusCode::OK);
    let body: Value = done.json().await.unwrap();
    assert!(body["burned_s"].as_f64().unwrap() >= 2.9, "{body}");
}

/// The original design's locust body, with a lower-case `bearer` scheme.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_original_load_test_body_is_accepted() {
    let app = spawn_app().await;
    let resp = app
        .client
        .post(app.url("/api/stress"))
        .header("authorization", format!("bearer {STRESS_TOKEN}"))
        .header("content-type", "application/json")
        .body(r#"{"duration": 1, "intensity": 1000000}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert!(body["burned_s"].as_f64().unwrap() >= 0.9, "{body}");
}

/// A client that hangs up stops its burn: the slot comes back long before the 30 s asked for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burn_stops_when_its_client_hangs_up() {
    let app = spawn_app_with(&[("STRESS_MAX_CONCURRENT", "1")]).await;
    let body = r#"{"duration_s":30}"#;
    let request = format!(
        "POST /api/stress HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {STRESS_TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let conn =
        crate::slow_clients::send_raw(crate::slow_clients::addr_of(&app), request.as_bytes()).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(
        app.stress(r#"{"duration_s":1}"#, Some(STRESS_TOKEN))
            .await
            .status(),
        StatusCode::TOO_MANY_REQUESTS,
        "the first burn holds the slot"
    );
    drop(conn);
    let freed = crate::helpers::eventually(std::time::Duration::from_secs(15), || async {
        app.stress(r#"{"duration_s":1}"#, Some(STRESS_TOKEN))
            .await
            .status()
            == StatusCode::OK
    })
    .await;
    assert!(freed, "the slot was not freed after the client hung up");
}
