//! The router: every route of the API in one place. Other modules add their own routers with
//! one `.merge(...)` line here (the web page at `/` does).

mod admin;
mod health;
mod stress;
mod task_metrics;
mod visits;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;

use crate::error::ApiError;
use crate::middleware::{admit, track};
use crate::state::AppState;

/// Cap on any request body; `/api/visit` has a smaller one of its own.
pub const BODY_LIMIT: usize = 4 * 1024;

/// Builds the full router with its state and middleware.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .route(
            "/api/visit",
            post(visits::record).layer(DefaultBodyLimit::max(visits::BODY_LIMIT)),
        )
        .route("/api/visits", get(visits::summary))
        .route("/api/stress", post(stress::stress))
        .route("/api/metrics", get(task_metrics::metrics))
        .route("/admin/drain", post(admin::drain).get(admin::status))
        .route("/admin/undrain", post(admin::undrain))
        .merge(crate::web::routes())
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn_with_state(state.clone(), track))
        .layer(axum::middleware::from_fn_with_state(state.clone(), admit))
        .with_state(state)
}
