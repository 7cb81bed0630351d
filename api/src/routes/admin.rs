//! Drain control for the scale-down function: `POST /admin/drain`, `GET /admin/drain`,
//! `POST /admin/undrain` (rollback), all behind `ADMIN_TOKEN`.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::state::{require_bearer, AppState};

const DISABLED: &str = "admin endpoints disabled: ADMIN_TOKEN is not configured";

fn answer(state: &AppState) -> Json<Value> {
    Json(json!({ "draining": state.draining(), "in_flight": state.metrics.in_flight() }))
}

/// Enters drain mode: `/health` answers 503 and responses carry `Connection: close`.
pub async fn drain(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    require_bearer(&headers, state.config.admin_token.as_deref(), DISABLED)?;
    state.set_draining(true);
    Ok(answer(&state))
}

/// Drain state and requests still being served (this one not included).
pub async fn status(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    require_bearer(&headers, state.config.admin_token.as_deref(), DISABLED)?;
    Ok(answer(&state))
}

/// Leaves drain mode, for a scale-down that is rolled back or cancelled.
pub async fn undrain(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    require_bearer(&headers, state.config.admin_token.as_deref(), DISABLED)?;
    state.set_draining(false);
    Ok(answer(&state))
}
