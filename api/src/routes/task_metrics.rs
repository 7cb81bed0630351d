//! `GET /api/metrics`: this task's own view of its load.

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use crate::state::AppState;

/// CPU, memory, in-flight requests, request rate, uptime, identity, whether writes reach the
/// database (and rows answered 503 that may have committed), and dropped log lines.
pub async fn metrics(State(state): State<AppState>) -> Json<Value> {
    let (res, rate) = state.metrics.latest();
    Json(json!({
        "task_id": state.identity.task_id,
        "availability_zone": state.identity.availability_zone,
        "cpu_percent": (res.cpu_percent * 100.0).round() / 100.0,
        "memory_bytes": res.memory_bytes,
        "memory_percent": (res.memory_percent * 100.0).round() / 100.0,
        "in_flight": state.metrics.in_flight(),
        "request_rate": (rate * 100.0).round() / 100.0,
        "uptime_s": state.metrics.uptime().as_secs(),
        "draining": state.draining(),
        "writes": state.metrics.writes.totals(),
        "log_lines_dropped": crate::telemetry::dropped_lines(),
    }))
}
