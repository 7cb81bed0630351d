//! Per-request bookkeeping: request id, in-flight count, one JSON log line, metrics, and
//! `Connection: close` while draining (so clients and the load balancer move elsewhere).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

use crate::state::AppState;

/// Keeps the in-flight count right even when the client goes away mid-request (the future is
/// dropped then, and so is this).
struct InFlight<'a>(&'a AppState);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.metrics.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Header that carries the request id back to the client.
pub const REQUEST_ID: &str = "x-request-id";

fn request_id(req: &Request) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    req.headers()
        .get("x-amzn-trace-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .unwrap_or_else(|| {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            format!("{:x}-{n:x}", std::process::id())
        })
}

/// The middleware itself; wraps every route and the fallback.
pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let id = request_id(&req);
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "<unmatched>".to_owned(), |p| p.as_str().to_owned());
    // The drain waits for in_flight to reach 0; the admin requests that ask must not count.
    let guard = (!route.starts_with("/admin/")).then(|| {
        state.metrics.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(&state)
    });
    let mut resp = next.run(req).await;
    drop(guard);
    let latency = start.elapsed();
    let status = resp.status().as_u16();
    state.metrics.finish(status, latency);
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(REQUEST_ID, v);
    }
    if state.draining() {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    tracing::info!(
        target: "request",
        method = %method,
        route = %route,
        status,
        latency_ms = latency.as_secs_f64() * 1000.0,
        request_id = %id,
    );
    resp
}
