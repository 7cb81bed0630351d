//! The scale-up function's error, as Lambda records it.

use scaling::error::{diagnostic, AwsError, Classify, ScalingError};
use scaling::report::Report;

/// Why an invocation failed. AWS failures carry the episode report built so far
/// (outcome `failed` or `rolled_back`), so tests and logs see every step.
#[derive(Debug, thiserror::Error)]
pub enum ScaleUpError {
    /// Bad event, not ours, bad config: nothing was called.
    #[error(transparent)]
    Scaling(#[from] ScalingError),
    /// An AWS call failed mid-episode.
    #[error("{source}; episode {} {}", report.episode_id, report.outcome_reason)]
    Aws {
        source: AwsError,
        report: Box<Report>,
    },
}

impl ScaleUpError {
    /// The report of a failed episode (None when the event was rejected before any call).
    pub fn report(&self) -> Option<&Report> {
        match self {
            ScaleUpError::Aws { report, .. } => Some(report),
            ScaleUpError::Scaling(_) => None,
        }
    }
}

impl Classify for ScaleUpError {
    fn kind(&self) -> String {
        match self {
            ScaleUpError::Scaling(e) => e.kind(),
            ScaleUpError::Aws { source, .. } => format!("Aws.{}", source.kind.as_str()),
        }
    }

    fn retryable(&self) -> bool {
        match self {
            ScaleUpError::Scaling(e) => e.retryable(),
            ScaleUpError::Aws { source, .. } => source.kind.retryable(),
        }
    }
}

impl From<ScaleUpError> for lambda_runtime::Diagnostic {
    fn from(err: ScaleUpError) -> Self {
        diagnostic(&err)
    }
}
