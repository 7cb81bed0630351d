//! The errors scale-down returns to Lambda, and whether Lambda should retry them.

use crate::machine::NotStarted;
use crate::trigger::TriggerError;
use lambda_runtime::Diagnostic;

/// Why an invocation produced no report.
#[derive(Debug, thiserror::Error)]
pub enum FnError {
    /// The event is not one scale-down understands (no AWS call was made).
    #[error(transparent)]
    Trigger(#[from] TriggerError),
    /// Reading the service failed before anything changed; a retry may succeed.
    #[error(transparent)]
    NotStarted(#[from] NotStarted),
}

impl FnError {
    /// The Lambda error type: `BadEvent` / `NotOurs` never succeed on retry.
    pub fn error_type(&self) -> &'static str {
        match self {
            FnError::Trigger(TriggerError::BadEvent(_)) => "BadEvent",
            FnError::Trigger(TriggerError::NotOurs(_)) => "NotOurs",
            FnError::NotStarted(e) if e.0.retryable => "Aws.Retryable",
            FnError::NotStarted(_) => "Aws.Fatal",
        }
    }

    /// True when Lambda's retry can help.
    pub fn is_retryable(&self) -> bool {
        self.error_type().starts_with("Aws.Retryable")
    }
}

impl From<FnError> for Diagnostic {
    fn from(e: FnError) -> Self {
        Diagnostic {
            error_type: e.error_type().to_string(),
            error_message: e.to_string(),
        }
    }
}
