//! State shared by every handler.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::http::HeaderMap;
use sqlx::PgPool;
use tokio::sync::Semaphore;

use crate::config::Config;
use crate::error::ApiError;
use crate::identity::TaskIdentity;
use crate::metrics::Metrics;
use crate::store::Store;

/// Cheap to clone: everything inside is shared.
#[derive(Clone)]
pub struct AppState {
    /// For the health check; writes and reads go through `store`.
    pub pool: PgPool,
    /// Group-commit writer and coalescing reader.
    pub store: Store,
    /// Counters for `/api/metrics` and EMF.
    pub metrics: Arc<Metrics>,
    /// Who this task is.
    pub identity: Arc<TaskIdentity>,
    /// The configuration the process started with.
    pub config: Arc<Config>,
    /// Bounds concurrent CPU burns.
    pub stress_slots: Arc<Semaphore>,
    draining: Arc<AtomicBool>,
    shutting_down: Arc<AtomicBool>,
}

impl AppState {
    /// Assembles the state; the store's tasks must already run.
    pub fn new(pool: PgPool, store: Store, identity: TaskIdentity, config: Config) -> Self {
        AppState {
            pool,
            store,
            metrics: Arc::new(Metrics::default()),
            identity: Arc::new(identity),
            stress_slots: Arc::new(Semaphore::new(config.stress_max_concurrent)),
            config: Arc::new(config),
            draining: Arc::default(),
            shutting_down: Arc::default(),
        }
    }

    /// True while the task is in drain mode (scale-down or shutdown).
    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Enters or leaves drain mode.
    pub fn set_draining(&self, on: bool) {
        if self.draining.swap(on, Ordering::Relaxed) != on {
            tracing::info!(
                draining = on,
                in_flight = self.metrics.in_flight(),
                "drain mode changed"
            );
        }
    }

    /// SIGTERM: drain; in-flight work (CPU burns included) may still finish within the grace.
    pub fn begin_shutdown(&self) {
        self.set_draining(true);
    }

    /// The grace period is over (or the server has stopped): long-running work ends now.
    pub fn stop_work(&self) {
        self.shutting_down.store(true, Ordering::Relaxed);
    }

    /// Shared flag that long-running work polls.
    pub fn shutdown_flag(&self) -> Arc<AtomicBool> {
        self.shutting_down.clone()
    }
}

/// Checks `Authorization: Bearer <token>` against the configured token; an unset token means
/// the endpoint is disabled.
pub fn require_bearer(
    headers: &HeaderMap,
    expected: Option<&str>,
    disabled: &'static str,
) -> Result<(), ApiError> {
    let expected = expected.ok_or(ApiError::Disabled(disabled))?;
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or(ApiError::Unauthorized)?;
    if constant_time_eq(given.trim().as_bytes(), expected.as_bytes()) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
}

/// Compares without an early exit, so response time says nothing about the token.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_checks() {
        let mut h = HeaderMap::new();
        assert!(matches!(
            require_bearer(&h, None, "off"),
            Err(ApiError::Disabled(_))
        ));
        assert!(matches!(
            require_bearer(&h, Some("t"), "off"),
            Err(ApiError::Unauthorized)
        ));
        h.insert("authorization", "Bearer nope".parse().unwrap());
        assert!(matches!(
            require_bearer(&h, Some("t"), "off"),
            Err(ApiError::Unauthorized)
        ));
        h.insert("authorization", "Bearer t".parse().unwrap());
        assert!(require_bearer(&h, Some("t"), "off").is_ok());
    }
}
