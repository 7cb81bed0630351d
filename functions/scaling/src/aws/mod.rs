//! Thin adapters over the AWS clients, one type per client.
//!
//! Each adapter owns its SDK client (cheap to clone: the client is an `Arc`),
//! is built once in `main` from one [`SdkConfig`], and turns SDK errors into
//! classified [`crate::error::AwsError`]s. Tests build them from
//! aws-smithy-mocks clients (`from_client`) or from an `SdkConfig` pointed at
//! the emulator.

pub mod autoscaling;
pub mod cloudwatch;
pub mod ecs;
pub mod elb;
pub mod instances;
pub mod protection;
pub mod secret;

use crate::report::Step;
use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use std::future::Future;
use std::time::Instant;

/// Loads the shared SDK config once: region and credentials from the Lambda
/// environment, `AWS_ENDPOINT_URL` (the emulator, locally) honoured by aws-config
/// itself, and the SDK's standard retry mode (3 attempts, exponential backoff
/// with jitter, throttling errors retried).
pub async fn load_sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .retry_config(RetryConfig::standard())
        .load()
        .await
}

/// Runs one AWS call (or wait) and measures it for the report's `steps`.
/// Returns the result and the step, so two calls can run under `tokio::join!`.
pub async fn timed<T, E: std::fmt::Display>(
    name: &str,
    fut: impl Future<Output = Result<T, E>>,
) -> (Result<T, E>, Step) {
    let start = Instant::now();
    let result = fut.await;
    let step = Step {
        name: name.to_string(),
        ok: result.is_ok(),
        duration_ms: start.elapsed().as_millis() as u64,
        detail: match &result {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        },
    };
    (result, step)
}
