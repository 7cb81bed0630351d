//! Lambda destination records: what the scaling functions' OnSuccess / OnFailure
//! destinations deliver (directly, or wrapped in an EventBridge event when the
//! destination is an event bus).

use scaling::report::Report;
use serde::Deserialize;
use serde_json::Value;

/// The record Lambda writes for one asynchronous invocation.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DestinationRecord {
    pub request_context: RequestContext,
    #[serde(default)]
    pub request_payload: Value,
    #[serde(default)]
    pub response_context: Option<ResponseContext>,
    #[serde(default)]
    pub response_payload: Value,
    #[serde(default)]
    pub timestamp: Option<String>,
}

/// Which invocation, of which function, and how it ended.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestContext {
    pub request_id: String,
    pub function_arn: String,
    /// `Success`, `RetriesExhausted` or `EventAgeExceeded`.
    pub condition: String,
    #[serde(default)]
    pub approximate_invoke_count: Option<u32>,
}

/// The runtime's view of the last attempt.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResponseContext {
    #[serde(default)]
    pub status_code: Option<u16>,
    #[serde(default)]
    pub function_error: Option<String>,
}

/// The error a failed invocation returned (`lambda_runtime` Diagnostic).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct FunctionError {
    #[serde(default)]
    pub error_type: Option<String>,
    #[serde(default)]
    pub error_message: Option<String>,
}

/// A destination record, decoded by condition.
#[derive(Debug, Clone)]
pub enum Destination {
    /// OnSuccess: the function returned an episode report.
    Success {
        context: RequestContext,
        report: Box<Report>,
    },
    /// OnFailure: retries exhausted or the event got too old.
    Failure {
        context: RequestContext,
        error: FunctionError,
        /// The event the function was invoked with.
        request: Value,
    },
}

impl RequestContext {
    /// Function name from the ARN (`...:function:visits-scale-down:$LATEST` -> `visits-scale-down`).
    pub fn function_name(&self) -> &str {
        let mut parts = self.function_arn.split(':');
        let name = parts
            .position(|p| p == "function")
            .and_then(|_| parts.next());
        name.unwrap_or(&self.function_arn)
    }

    /// Region and account from the function ARN (`arn:aws:lambda:REGION:ACCOUNT:...`).
    pub fn region_account(&self) -> (Option<&str>, Option<&str>) {
        let mut parts = self.function_arn.split(':').skip(3);
        let region = parts.next().filter(|s| !s.is_empty());
        let account = parts.next().filter(|s| !s.is_empty());
        (region, account)
    }
}
