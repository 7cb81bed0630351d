//! Errors shared by the functions, classified retryable or not, and their
//! conversion into the `Diagnostic` Lambda records.
//!
//! Lambda's async invocation retries any failed invocation (twice by default) and
//! then sends it to the OnFailure destination, whatever the error. The
//! classification tells the operator (and notify) whether a retry can help:
//! `error_type` is `Retryable.<Kind>` or `NonRetryable.<Kind>`, e.g.
//! `NonRetryable.BadEvent` or `Retryable.Aws.Throttling`.

use crate::config::ConfigError;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::Response as HttpResponse;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use lambda_runtime::Diagnostic;

/// What kind of AWS failure a call ended in; decides retryability.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AwsErrorKind {
    /// Rate limited after the SDK's own retries: a later retry can succeed.
    Throttling,
    /// The function's role lacks a permission: needs a person.
    AccessDenied,
    /// The cluster, service, ASG... does not exist: needs a person.
    NotFound,
    /// The request was rejected as invalid (bad parameter, limit exceeded).
    InvalidRequest,
    /// Timeout, connection failure or 5xx after the SDK's retries: may pass.
    Transient,
    /// Anything else the service answered.
    Other,
}

impl AwsErrorKind {
    /// Short name used in `error_type` (`Aws.<name>`).
    pub fn as_str(self) -> &'static str {
        match self {
            AwsErrorKind::Throttling => "Throttling",
            AwsErrorKind::AccessDenied => "AccessDenied",
            AwsErrorKind::NotFound => "NotFound",
            AwsErrorKind::InvalidRequest => "InvalidRequest",
            AwsErrorKind::Transient => "Transient",
            AwsErrorKind::Other => "Other",
        }
    }

    /// Whether retrying the invocation later can help.
    pub fn retryable(self) -> bool {
        matches!(self, AwsErrorKind::Throttling | AwsErrorKind::Transient)
    }

    /// Classifies an AWS error code (the `__type`/`Code` of the response).
    pub fn from_code(code: &str) -> Self {
        match code {
            "ThrottlingException"
            | "Throttling"
            | "TooManyRequestsException"
            | "RequestLimitExceeded"
            | "ThrottledException"
            | "LimitExceededException" => AwsErrorKind::Throttling,
            "AccessDeniedException"
            | "AccessDenied"
            | "UnauthorizedOperation"
            | "UnrecognizedClientException"
            | "InvalidClientTokenId"
            | "ExpiredToken"
            | "ExpiredTokenException" => AwsErrorKind::AccessDenied,
            "ServiceNotFoundException"
            | "ClusterNotFoundException"
            | "ServiceNotActiveException"
            | "ResourceNotFoundException"
            | "TargetGroupNotFound"
            | "NotFound" => AwsErrorKind::NotFound,
            "ServerException" | "InternalFailure" | "ServiceUnavailable" | "InternalError" => {
                AwsErrorKind::Transient
            }
            "InvalidParameterException"
            | "ValidationError"
            | "ValidationException"
            | "ClientException"
            | "InvalidParameterValue"
            | "ScalingActivityInProgress"
            | "ResourceContention" => AwsErrorKind::InvalidRequest,
            _ => AwsErrorKind::Other,
        }
    }
}

/// A failed AWS call: which operation, what kind, and the service's own words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("AWS {op} failed ({}): {message}", kind.as_str())]
pub struct AwsError {
    /// The SDK operation, e.g. `ecs:UpdateService`.
    pub op: &'static str,
    pub kind: AwsErrorKind,
    /// The service's error code, when it answered one.
    pub code: Option<String>,
    pub message: String,
}

impl AwsError {
    /// Classifies an SDK error from any of the AWS clients.
    pub fn from_sdk<E>(op: &'static str, err: SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let code = err.code().map(str::to_string);
        let kind = match (&err, code.as_deref()) {
            (_, Some(code)) => match AwsErrorKind::from_code(code) {
                AwsErrorKind::Other if server_error(&err) => AwsErrorKind::Transient,
                kind => kind,
            },
            (SdkError::TimeoutError(_) | SdkError::DispatchFailure(_), None) => {
                AwsErrorKind::Transient
            }
            _ if server_error(&err) => AwsErrorKind::Transient,
            _ => AwsErrorKind::Other,
        };
        let message = match err.message() {
            Some(m) => m.to_string(),
            None => DisplayErrorContext(&err).to_string(),
        };
        AwsError {
            op,
            kind,
            code,
            message,
        }
    }
}

fn server_error<E>(err: &SdkError<E, HttpResponse>) -> bool {
    err.raw_response()
        .is_some_and(|r| r.status().is_server_error())
}

/// Errors of the shared library. Each function wraps these in its own enum.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScalingError {
    /// The event is malformed or of a shape no function accepts. No AWS call was made.
    #[error("bad event: {0}")]
    BadEvent(String),
    /// The event is well formed but concerns another cluster or service. No AWS call was made.
    #[error("not ours: {0}")]
    NotOurs(String),
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Aws(#[from] AwsError),
    /// The service is not in a state the function can act on (e.g. not ACTIVE).
    #[error("service state: {0}")]
    ServiceState(String),
}

/// What every function error can say about itself; implement it for a function's
/// own error enum and use [`diagnostic`] in the `Into<Diagnostic>` impl.
pub trait Classify: std::fmt::Display {
    /// Kind name without the retryable prefix, e.g. `BadEvent`, `Aws.Throttling`.
    fn kind(&self) -> String;
    /// Whether retrying the same event later can succeed.
    fn retryable(&self) -> bool;
}

impl Classify for ScalingError {
    fn kind(&self) -> String {
        match self {
            ScalingError::BadEvent(_) => "BadEvent".into(),
            ScalingError::NotOurs(_) => "NotOurs".into(),
            ScalingError::Config(_) => "Config".into(),
            ScalingError::Aws(e) => format!("Aws.{}", e.kind.as_str()),
            ScalingError::ServiceState(_) => "ServiceState".into(),
        }
    }

    fn retryable(&self) -> bool {
        match self {
            ScalingError::Aws(e) => e.kind.retryable(),
            // A deployment or a not-yet-active service may settle by the retry.
            ScalingError::ServiceState(_) => true,
            ScalingError::BadEvent(_) | ScalingError::NotOurs(_) | ScalingError::Config(_) => false,
        }
    }
}

/// `error_type` for a classified error: `Retryable.<kind>` or `NonRetryable.<kind>`.
pub fn error_type(err: &impl Classify) -> String {
    let prefix = if err.retryable() {
        "Retryable"
    } else {
        "NonRetryable"
    };
    format!("{prefix}.{}", err.kind())
}

/// The Lambda `Diagnostic` for a classified error.
pub fn diagnostic(err: &impl Classify) -> Diagnostic {
    Diagnostic {
        error_type: error_type(err),
        error_message: err.to_string(),
    }
}

impl From<ScalingError> for Diagnostic {
    fn from(err: ScalingError) -> Self {
        diagnostic(&err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_classify() {
        assert_eq!(
            AwsErrorKind::from_code("ThrottlingException"),
            AwsErrorKind::Throttling
        );
        assert_eq!(
            AwsErrorKind::from_code("AccessDeniedException"),
            AwsErrorKind::AccessDenied
        );
        assert_eq!(
            AwsErrorKind::from_code("ServiceNotFoundException"),
            AwsErrorKind::NotFound
        );
        assert!(AwsErrorKind::Throttling.retryable());
        assert!(!AwsErrorKind::AccessDenied.retryable());
    }

    #[test]
    fn diagnostic_says_retryable_or_not() {
        let d = diagnostic(&ScalingError::BadEvent("no alarmData".into()));
        assert_eq!(d.error_type, "NonRetryable.BadEvent");
        assert!(d.error_message.contains("no alarmData"));
        let d: Diagnostic = ScalingError::Aws(AwsError {
            op: "ecs:UpdateService",
            kind: AwsErrorKind::Throttling,
            code: Some("ThrottlingException".into()),
            message: "Rate exceeded".into(),
        })
        .into();
        assert_eq!(d.error_type, "Retryable.Aws.Throttling");
        assert!(d.error_message.contains("ecs:UpdateService"));
    }
}
