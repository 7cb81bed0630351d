//! Drain control for the scale-down function: `POST /admin/drain`, `GET /admin/drain`,
//! `POST /admin/undrain` (rollback), all behind `ADMIN_TOKEN`. What drain mode does is in
//! `crate::drain`.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use serde_json::{json, Value};

use crate::drain::{DEFAULT_TTL, MAX_TTL};
use crate::error::ApiError;
use crate::state::{require_bearer, AppState};

const DISABLED: &str = "admin endpoints disabled: ADMIN_TOKEN is not configured";

fn answer(state: &AppState) -> Json<Value> {
    Json(json!({
        "draining": state.draining(),
        "in_flight": state.metrics.in_flight(),
        "expires_in_s": state.drain.expires_in().map(|d| d.as_secs()),
    }))
}

/// The optional body of `POST /admin/drain`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct DrainRequest {
    /// Seconds until drain mode ends by itself unless renewed (1..=3600, default 300).
    ttl_s: Option<u64>,
}

fn ttl_of(body: &[u8]) -> Result<Duration, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(DEFAULT_TTL);
    }
    let req: DrainRequest = serde_json::from_slice(body)
        .map_err(|_| ApiError::BadRequest("body must be {\"ttl_s\": 1..3600} or empty".into()))?;
    match req.ttl_s {
        None => Ok(DEFAULT_TTL),
        Some(s) if (1..=MAX_TTL.as_secs()).contains(&s) => Ok(Duration::from_secs(s)),
        Some(_) => Err(ApiError::BadRequest("ttl_s must be 1..3600".into())),
    }
}

/// Enters (or renews) drain mode for `ttl_s`: `/health` stays 200, responses carry
/// `Connection: close`, idle keep-alive connections close once no request comes.
pub async fn drain(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    require_bearer(&headers, state.config.admin_token.as_deref(), DISABLED)?;
    let ttl = ttl_of(&body)?;
    if state.drain.start(ttl) {
        tracing::info!(
            in_flight = state.metrics.in_flight(),
            ttl_s = ttl.as_secs(),
            "drain mode on"
        );
    }
    Ok(answer(&state))
}

/// Drain state, requests still being served (this one not included) and the time left.
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
    if state.drain.expires_in().is_some() {
        tracing::info!(in_flight = state.metrics.in_flight(), "drain mode off");
    }
    state.drain.stop();
    Ok(answer(&state))
}
