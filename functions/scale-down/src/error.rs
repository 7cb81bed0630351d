//! The errors scale-down returns to Lambda, and whether Lambda should retry them.
//! The error types follow every function's `Retryable.<kind>` / `NonRetryable.<kind>`
//! form ([`scaling::error::Classify`]), so one alarm on `NonRetryable.*` covers them all.

use crate::machine::NotStarted;
use lambda_runtime::Diagnostic;
use scaling::error::{Classify, ScalingError};

/// Why an invocation produced no report.
#[derive(Debug, thiserror::Error)]
pub enum FnError {
    /// The event is not one scale-down understands, or not about this service
    /// (`BadEvent`, `NotOurs`; no AWS call was made).
    #[error(transparent)]
    Trigger(#[from] ScalingError),
    /// Reading the service failed before anything changed; a retry may succeed.
    #[error(transparent)]
    NotStarted(#[from] NotStarted),
}

impl Classify for FnError {
    fn kind(&self) -> String {
        match self {
            FnError::Trigger(e) => e.kind(),
            FnError::NotStarted(e) => format!("Aws.{}", e.0.op),
        }
    }

    fn retryable(&self) -> bool {
        match self {
            FnError::Trigger(e) => e.retryable(),
            FnError::NotStarted(e) => e.0.retryable,
        }
    }
}

impl FnError {
    /// The Lambda error type, e.g. `NonRetryable.BadEvent` or `Retryable.Aws.DescribeServices`.
    pub fn error_type(&self) -> String {
        scaling::error::error_type(self)
    }

    /// True when Lambda's retry can help.
    pub fn is_retryable(&self) -> bool {
        self.retryable()
    }
}

impl From<FnError> for Diagnostic {
    fn from(e: FnError) -> Self {
        scaling::error::diagnostic(&e)
    }
}
