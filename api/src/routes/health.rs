//! `GET /health`: what the ALB health check asks.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;

use crate::state::AppState;

/// 200 when the database answers and the task is not draining; 503 otherwise, so the load
/// balancer stops sending traffic.
pub async fn health(State(state): State<AppState>) -> impl IntoResponse {
    let db_ok = state
        .db
        .ping(&state.pool, state.config.health_db_timeout)
        .await;
    let draining = state.draining();
    let (code, status) = match (db_ok, draining) {
        (_, true) => (StatusCode::SERVICE_UNAVAILABLE, "draining"),
        (false, false) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        (true, false) => (StatusCode::OK, "ok"),
    };
    let body = json!({
        "status": status,
        "database": if db_ok { "ok" } else { "unreachable" },
        "task_id": state.identity.task_id,
        "version": env!("CARGO_PKG_VERSION"),
    });
    (code, Json(body))
}
