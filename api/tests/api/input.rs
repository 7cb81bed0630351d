//! Hostile input: every error is JSON (413, 414, 431 included, also past hyper's own limits),
//! the trace header is bounded, visit posts must be JSON objects, the client address comes from
//! the entry our load balancer added, visitors are masked without the admin token, and the
//! bearer scheme is case-insensitive.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{assert_json_error, spawn_app, ADMIN_TOKEN, STRESS_TOKEN};
use crate::slow_clients::{addr_of, read_until_closed, send_raw};

/// The raw answer to `request`, with its status line and JSON body checked.
async fn raw_json_error(app: &crate::helpers::TestApp, request: &[u8], status: &str, code: &str) {
    let mut s = send_raw(addr_of(app), request).await;
    let (got, _) = read_until_closed(&mut s, std::time::Duration::from_secs(15)).await;
    assert!(
        got.starts_with(&format!("HTTP/1.1 {status} ")),
        "{}",
        &got[..got.len().min(300)]
    );
    assert!(
        got.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{got}"
    );
    let body = got.split("\r\n\r\n").nth(1).unwrap_or_default();
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {got}"));
    assert_eq!(v["error"], code, "{got}");
}

#[tokio::test]
async fn oversized_heads_and_bodies_get_json_errors() {
    let app = spawn_app().await;
    // Over the API's limits: the middleware answers.
    let long_uri = format!(
        "GET /health?{} HTTP/1.1\r\nHost: x\r\n\r\n",
        "a".repeat(10_000)
    );
    raw_json_error(&app, long_uri.as_bytes(), "414", "uri_too_long").await;
    let big_header = format!(
        "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "b".repeat(20_000)
    );
    raw_json_error(&app, big_header.as_bytes(), "431", "headers_too_large").await;
    let many: String = (0..80).map(|i| format!("X-H{i}: v\r\n")).collect();
    let many = format!("GET /health HTTP/1.1\r\nHost: x\r\n{many}\r\n");
    raw_json_error(&app, many.as_bytes(), "431", "headers_too_large").await;
    // Past hyper's own parser limits: hyper answers, in JSON all the same.
    let huge = format!(
        "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "c".repeat(100_000)
    );
    raw_json_error(&app, huge.as_bytes(), "431", "headers_too_large").await;
    raw_json_error(&app, b"NOT HTTP AT ALL\r\n\r\n", "400", "bad_request").await;
    // The stress endpoint's body cap.
    let resp = app
        .client
        .post(app.url("/api/stress"))
        .bearer_auth(STRESS_TOKEN)
        .header("content-type", "application/json")
        .body(format!(r#"{{"duration_s":1,"x":"{}"}}"#, "d".repeat(8000)))
        .send()
        .await
        .unwrap();
    assert_json_error(resp, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
}

#[tokio::test]
async fn the_trace_header_is_bounded_and_checked() {
    let app = spawn_app().await;
    let good = "Root=1-67891233-abcdef012345678912345678;Sampled=1";
    let resp = app
        .client
        .get(app.url("/health"))
        .header("x-amzn-trace-id", good)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], good);
    // 60 KB: over the header limit altogether.
    let resp = app
        .client
        .get(app.url("/health"))
        .header(
            "x-amzn-trace-id",
            format!("Root=1-67891233-{}", "a".repeat(60_000)),
        )
        .send()
        .await
        .unwrap();
    assert_json_error(
        resp,
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "headers_too_large",
    )
    .await;
    for bad in [
        format!(
            "Root=1-67891233-abcdef012345678912345678;Self={}",
            "a".repeat(300)
        ),
        "Root=1-6789-xyz".to_string(),
        "Root=1-67891233-abcdef012345678912345678;Note=<script>".to_string(),
        "hello".to_string(),
    ] {
        let resp = app
            .client
            .get(app.url("/health"))
            .header("x-amzn-trace-id", &bad)
            .send()
            .await
            .unwrap();
        let id = resp.headers()["x-request-id"].to_str().unwrap().to_string();
        assert!(id.len() < 64 && id != bad, "echoed {} bytes", id.len());
    }
}

#[tokio::test]
async fn visit_posts_must_be_json_objects() {
    let app = spawn_app().await;
    for ct in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let mut req = app
            .client
            .post(app.url("/api/visit"))
            .body(r#"{"page":"/x"}"#);
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        assert_json_error(
            req.send().await.unwrap(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        )
        .await;
    }
    assert_json_error(
        app.post_visit(Some(r#"["/x"]"#)).await,
        StatusCode::BAD_REQUEST,
        "bad_request",
    )
    .await;
    assert_eq!(app.row_count().await, 0);
}

#[tokio::test]
async fn the_client_is_the_entry_our_load_balancer_added_and_is_masked_for_others() {
    let app = spawn_app().await;
    let resp = app
        .client
        .post(app.url("/api/visit"))
        .header("x-forwarded-for", "6.6.6.6, 203.0.113.9")
        .header("user-agent", "secret-agent/1.0")
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let row: Value = resp.json().await.unwrap();
    assert_eq!(row["client_ip"], "203.0.113.9", "the client-sent entry won");

    let public = app.visits().await;
    assert_eq!(public["recent"][0]["client_ip"], "203.0.113.0");
    assert!(public["recent"][0]["user_agent"].is_null(), "{public}");
    // Lower-case scheme: RFC 9110 makes it case-insensitive.
    let full = app
        .get_json_as("/api/visits", &format!("bearer {ADMIN_TOKEN}"))
        .await;
    assert_eq!(full["recent"][0]["client_ip"], "203.0.113.9");
    assert_eq!(full["recent"][0]["user_agent"], "secret-agent/1.0");
    let wrong = app.get_json_as("/api/visits", "Bearer not-the-token").await;
    assert!(wrong["recent"][0]["user_agent"].is_null());
}
