//! `POST /api/stress`: burns CPU on this task so that the CPU alarm can be exercised.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::state::{require_bearer, AppState};

const DISABLED: &str = "stress endpoint disabled: STRESS_TOKEN is not configured";
const MAX_S: u64 = 60;
/// `intensity`: multiply-add rounds between two looks at the clock and the shutdown flag.
const INTENSITY_DEFAULT: u64 = 10_000;
/// About 10 ms of work on one core: the burn still notices shutdown promptly.
const INTENSITY_MAX: u64 = 10_000_000;

/// Sets its flag when dropped: the request's future was dropped before the burn ended.
#[derive(Default)]
struct HangUp(Arc<AtomicBool>);

impl Drop for HangUp {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// `{"duration_s": 10}`, or the original load test's `{"duration": 10, "intensity": 1000000}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StressBody {
    duration_s: Option<u64>,
    /// Seconds, as `duration_s` (the original design's name).
    duration: Option<u64>,
    intensity: Option<u64>,
}

impl StressBody {
    fn parse(body: &[u8]) -> Result<(Duration, u64), ApiError> {
        let req: StressBody = serde_json::from_slice(body)
            .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?;
        let secs = match (req.duration_s, req.duration) {
            (Some(s), None) | (None, Some(s)) => s,
            (Some(_), Some(_)) => {
                return Err(ApiError::BadRequest(
                    "give duration_s or duration, not both".into(),
                ))
            }
            (None, None) => {
                return Err(ApiError::BadRequest(
                    "duration_s (or duration) is required".into(),
                ))
            }
        };
        if !(1..=MAX_S).contains(&secs) {
            return Err(ApiError::BadRequest(format!(
                "duration_s must be between 1 and {MAX_S}"
            )));
        }
        let intensity = req.intensity.unwrap_or(INTENSITY_DEFAULT);
        if !(1..=INTENSITY_MAX).contains(&intensity) {
            return Err(ApiError::BadRequest(format!(
                "intensity must be between 1 and {INTENSITY_MAX}"
            )));
        }
        Ok((Duration::from_secs(secs), intensity))
    }
}

/// Burns one core for `duration_s` (or `duration`, 1..=60) seconds on a blocking thread, then
/// answers. `intensity` (1..=10,000,000, default 10,000) is the work between two looks at the
/// clock: it changes neither the length nor the cores used (always one), only how finely the
/// burn notices its end. At most `STRESS_MAX_CONCURRENT` burns run at once; more get 429.
pub async fn stress(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    require_bearer(&headers, state.config.stress_token.as_deref(), DISABLED)?;
    let (duration, intensity) = StressBody::parse(&body)?;
    let permit = state
        .stress_slots
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError::Busy("too many CPU burns already running"))?;
    let stop = state.shutdown_flag();
    // Set when this handler is dropped (the client hung up): the burn stops too. The slot is
    // freed only when the thread ends, so the bound on concurrent burns still holds.
    let hung_up = HangUp::default();
    let gone = hung_up.0.clone();
    // A blocking-pool thread, so the async workers keep serving requests meanwhile. The permit
    // moves along: a client that hangs up does not free the slot before the burn ends.
    let burned = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let start = Instant::now();
        let mut x = 0u64;
        while start.elapsed() < duration
            && !stop.load(Ordering::Relaxed)
            && !gone.load(Ordering::Relaxed)
        {
            for i in 0..intensity {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(i));
            }
        }
        start.elapsed()
    })
    .await
    .map_err(|e| ApiError::Internal(format!("stress thread: {e}")))?;
    drop(hung_up);
    // Cut short by shutdown past the grace period: the burn asked for did not happen,
    // so the client must not read success (a 200 here raced the exit in tests).
    if burned < duration {
        return Err(ApiError::Unavailable(format!(
            "shutting down: burn stopped after {:.2} of {} s",
            burned.as_secs_f64(),
            duration.as_secs()
        )));
    }
    Ok(Json(json!({
        "burned_s": (burned.as_secs_f64() * 100.0).round() / 100.0,
        "task_id": state.identity.task_id,
    })))
}
