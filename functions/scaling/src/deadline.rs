//! The invocation's deadline as a monotonic instant, for the functions' bounded waits.

use std::time::SystemTime;

/// Lambda gives the deadline in wall-clock time; the waits compare against
/// `tokio::time::Instant` so a clock step (NTP) can't stretch or cut them, and so
/// tests with a paused clock drive them. A deadline already past gives "now".
pub fn monotonic(ctx: &lambda_runtime::Context) -> tokio::time::Instant {
    let left = ctx
        .deadline()
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    tokio::time::Instant::now() + left
}
