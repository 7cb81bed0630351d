//! State shared by every handler.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::http::HeaderMap;
use sqlx::PgPool;
use tokio::sync::Semaphore;

use crate::config::Config;
use crate::db::DbGuard;
use crate::drain::Drain;
use crate::error::ApiError;
use crate::identity::TaskIdentity;
use crate::metrics::Metrics;
use crate::store::Store;

/// Cheap to clone: everything inside is shared.
#[derive(Clone)]
pub struct AppState {
    /// For the health check; writes and reads go through `store`.
    pub pool: PgPool,
    /// Bounds the health check's round trip like every other.
    pub db: DbGuard,
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
    /// Drain mode (scale-down or SIGTERM): see `drain`.
    pub drain: Arc<Drain>,
    shutting_down: Arc<AtomicBool>,
}

impl AppState {
    /// Assembles the state; the store's tasks must already run.
    pub fn new(
        (pool, db): (PgPool, DbGuard),
        store: Store,
        metrics: Arc<Metrics>,
        identity: TaskIdentity,
        config: Config,
    ) -> Self {
        AppState {
            pool,
            db,
            store,
            metrics,
            identity: Arc::new(identity),
            stress_slots: Arc::new(Semaphore::new(config.stress_max_concurrent)),
            drain: Arc::new(Drain::new(config.drain_idle_close)),
            config: Arc::new(config),
            shutting_down: Arc::default(),
        }
    }

    /// True while the task is in drain mode (scale-down or shutdown).
    pub fn draining(&self) -> bool {
        self.drain.is_draining()
    }

    /// SIGTERM: drain; in-flight work (CPU burns included) may still finish within the grace.
    pub fn begin_shutdown(&self) {
        self.drain.begin_shutdown();
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
    // RFC 9110 §11.1: the scheme name is case-insensitive ("bearer", "BEARER").
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token)
        .ok_or(ApiError::Unauthorized)?;
    if constant_time_eq(given.trim().as_bytes(), expected.as_bytes()) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
}

/// Compares in time that depends on the given token's length only, never on where it differs
/// from the expected one or on the expected one's length: every byte of `given` is compared
/// (with the expected bytes repeated cyclically), and the length difference is folded in.
fn constant_time_eq(given: &[u8], expected: &[u8]) -> bool {
    if expected.is_empty() {
        return false;
    }
    let mut diff = (given.len() ^ expected.len()) as u64;
    for (i, g) in given.iter().enumerate() {
        diff |= u64::from(g ^ expected[i % expected.len()]);
    }
    std::hint::black_box(diff) == 0
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
        for scheme in ["bearer", "BEARER", "BeArEr"] {
            h.insert("authorization", format!("{scheme} t").parse().unwrap());
            assert!(require_bearer(&h, Some("t"), "off").is_ok(), "{scheme}");
        }
        h.insert("authorization", "Basic t".parse().unwrap());
        assert!(require_bearer(&h, Some("t"), "off").is_err());
    }

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secre", b"secret"));
        assert!(
            !constant_time_eq(b"secretsecret", b"secret"),
            "a repeat is not the token"
        );
        assert!(!constant_time_eq(b"", b"secret"));
        assert!(!constant_time_eq(b"", b""));
        assert!(!constant_time_eq(b"secreT", b"secret"));
    }
}
