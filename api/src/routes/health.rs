//! `GET /health` (liveness: what the ALB's target group checks) and `GET /ready` (readiness,
//! for people and monitors).
//!
//! The two are split on purpose. ECS replaces a task whose target fails the load balancer's
//! health check (Amazon ECS developer guide, "Health checks for Amazon ECS services",
//! <https://docs.aws.amazon.com/AmazonECS/latest/developerguide/healthcheck.html>). If the
//! target group's check failed when PostgreSQL is slow or failing over, every task would fail
//! at once and ECS would replace all of them, which cures nothing and drops the requests in
//! flight. Likewise a draining task is leaving, not sick. So `/health` answers 200 whenever
//! this process serves, and says in its body how the database is and whether it drains;
//! requests that need the database fail fast with 503 on their own.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Value};

use crate::state::AppState;

/// Pings the database within `HEALTH_DB_TIMEOUT_MS` (through the database guard).
async fn database_ok(state: &AppState) -> bool {
    state
        .db
        .ping(&state.pool, state.config.health_db_timeout)
        .await
}

fn body(state: &AppState, db_ok: bool) -> Value {
    let draining = state.draining();
    let status = match (db_ok, draining) {
        (_, true) => "draining",
        (false, false) => "degraded",
        (true, false) => "ok",
    };
    json!({
        "status": status,
        "database": if db_ok { "ok" } else { "unreachable" },
        "draining": draining,
        "task_id": state.identity.task_id,
        "version": env!("CARGO_PKG_VERSION"),
    })
}

/// Liveness, the load balancer's check: 200 whenever the process serves, whatever the
/// database or drain state (both reported in the body).
pub async fn health(State(state): State<AppState>) -> impl IntoResponse {
    let db_ok = database_ok(&state).await;
    (StatusCode::OK, Json(body(&state, db_ok)))
}

/// Readiness: 200 when this task can serve every endpoint (database answers, not draining),
/// else 503 with the same body as `/health`. Never the target group's health check path.
pub async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    let db_ok = database_ok(&state).await;
    let code = if db_ok && !state.draining() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body(&state, db_ok)))
}
