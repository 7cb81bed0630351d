//! The errors drain-instance returns to Lambda, and whether a retry can help.

use scaling::error::{AwsError, Classify};

/// Why an invocation produced no report.
#[derive(Debug, thiserror::Error)]
pub enum FnError {
    /// Not a terminate lifecycle action (or schedule) this function understands; no AWS call was made.
    #[error("bad event: {0}")]
    BadEvent(String),
    /// A lifecycle action of another Auto Scaling group; no AWS call was made.
    #[error("not ours: {0}")]
    NotOurs(String),
    /// An AWS call failed; every step is idempotent, so the retried event resumes.
    #[error(transparent)]
    Aws(#[from] AwsError),
}

impl Classify for FnError {
    fn kind(&self) -> String {
        match self {
            FnError::BadEvent(_) => "BadEvent".into(),
            FnError::NotOurs(_) => "NotOurs".into(),
            FnError::Aws(e) => format!("Aws.{}", e.kind.as_str()),
        }
    }

    fn retryable(&self) -> bool {
        match self {
            FnError::Aws(e) => e.kind.retryable(),
            FnError::BadEvent(_) | FnError::NotOurs(_) => false,
        }
    }
}

impl From<FnError> for lambda_runtime::Diagnostic {
    fn from(e: FnError) -> Self {
        scaling::error::diagnostic(&e)
    }
}
