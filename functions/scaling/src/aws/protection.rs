//! ECS task scale-in protection (UpdateTaskProtection / GetTaskProtection).
//!
//! Scale-in protects every task but the one that should leave, so that when
//! desired drops by one ECS can only stop that task. Protection always carries a
//! bounded expiry: if every later invocation failed, the protections would
//! still lapse on their own instead of pinning the service forever.

use crate::error::AwsError;
use aws_sdk_ecs::Client;

/// UpdateTaskProtection takes at most 10 tasks per call.
pub const BATCH: usize = 10;
/// The API's own bounds on `expiresInMinutes`.
pub const MAX_EXPIRY_MIN: i32 = 2880;

/// The ECS failure reason when a deployment is replacing the task.
pub const DEPLOYMENT_BLOCKED: &str = "DEPLOYMENT_BLOCKED";

/// What one UpdateTaskProtection run (all batches) could not do.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProtectOutcome {
    /// Task ARNs ECS refused with DEPLOYMENT_BLOCKED.
    pub deployment_blocked: Vec<String>,
    /// Other refusals (e.g. MISSING: the task is already gone), ARN and reason.
    pub other_failures: Vec<(String, String)>,
}

/// One task's protection as GetTaskProtection reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskProtection {
    pub task_arn: String,
    pub enabled: bool,
}

/// Task protection calls for one cluster, with the configured expiry.
#[derive(Debug, Clone)]
pub struct Protection {
    client: Client,
    cluster: String,
    expiry_min: i32,
}

impl Protection {
    /// `expiry_min` is clamped to the API's 1..=2880 minutes.
    pub fn new(client: Client, cluster: &str, expiry_min: i32) -> Self {
        Self {
            client,
            cluster: cluster.to_string(),
            expiry_min: expiry_min.clamp(1, MAX_EXPIRY_MIN),
        }
    }

    /// Protects (`enabled`) or releases `task_arns`, 10 per call. Refusals are
    /// returned, not errors: the caller decides (DEPLOYMENT_BLOCKED aborts a scale-in).
    pub async fn set(
        &self,
        task_arns: &[String],
        enabled: bool,
    ) -> Result<ProtectOutcome, AwsError> {
        let mut outcome = ProtectOutcome::default();
        for chunk in task_arns.chunks(BATCH) {
            let mut call = self
                .client
                .update_task_protection()
                .cluster(&self.cluster)
                .set_tasks(Some(chunk.to_vec()))
                .protection_enabled(enabled);
            if enabled {
                call = call.expires_in_minutes(self.expiry_min);
            }
            let out = call
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("ecs:UpdateTaskProtection", e))?;
            for f in out.failures() {
                let arn = f.arn().unwrap_or_default().to_string();
                match f.reason() {
                    Some(DEPLOYMENT_BLOCKED) => outcome.deployment_blocked.push(arn),
                    reason => outcome
                        .other_failures
                        .push((arn, reason.unwrap_or("unknown").to_string())),
                }
            }
        }
        Ok(outcome)
    }

    /// GetTaskProtection, 10 per call.
    pub async fn get(&self, task_arns: &[String]) -> Result<Vec<TaskProtection>, AwsError> {
        let mut all = Vec::with_capacity(task_arns.len());
        for chunk in task_arns.chunks(BATCH) {
            let out = self
                .client
                .get_task_protection()
                .cluster(&self.cluster)
                .set_tasks(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("ecs:GetTaskProtection", e))?;
            all.extend(out.protected_tasks().iter().map(|p| TaskProtection {
                task_arn: p.task_arn().unwrap_or_default().to_string(),
                enabled: p.protection_enabled(),
            }));
        }
        Ok(all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ecs::operation::update_task_protection::{
        UpdateTaskProtectionError, UpdateTaskProtectionOutput,
    };
    use aws_sdk_ecs::types::Failure;
    use aws_smithy_mocks::{mock, mock_client};

    fn arns(n: usize) -> Vec<String> {
        (0..n)
            .map(|i| format!("arn:aws:ecs:us-east-1:123456789012:task/visits/t{i}"))
            .collect()
    }

    #[tokio::test]
    async fn batches_by_ten_with_a_bounded_expiry() {
        let rule = mock!(Client::update_task_protection)
            .match_requests(|r| {
                r.tasks().len() <= BATCH
                    && r.protection_enabled() == Some(true)
                    && r.expires_in_minutes() == Some(MAX_EXPIRY_MIN)
            })
            .sequence()
            .output(|| UpdateTaskProtectionOutput::builder().build())
            .repeatedly()
            .build();
        let p = Protection::new(mock_client!(aws_sdk_ecs, [&rule]), "visits", 1_000_000);
        let out = p.set(&arns(23), true).await.unwrap();
        assert_eq!(rule.num_calls(), 3);
        assert_eq!(out, ProtectOutcome::default());
    }

    #[tokio::test]
    async fn release_sends_no_expiry() {
        let rule = mock!(Client::update_task_protection)
            .match_requests(|r| {
                r.protection_enabled() == Some(false) && r.expires_in_minutes().is_none()
            })
            .then_output(|| UpdateTaskProtectionOutput::builder().build());
        let p = Protection::new(mock_client!(aws_sdk_ecs, [&rule]), "visits", 15);
        p.set(&arns(2), false).await.unwrap();
        assert_eq!(rule.num_calls(), 1);
    }

    #[tokio::test]
    async fn deployment_blocked_is_reported_per_task() {
        let rule = mock!(Client::update_task_protection).then_output(|| {
            UpdateTaskProtectionOutput::builder()
                .failures(
                    Failure::builder()
                        .arn("t1")
                        .reason(DEPLOYMENT_BLOCKED)
                        .build(),
                )
                .failures(Failure::builder().arn("t2").reason("MISSING").build())
                .build()
        });
        let p = Protection::new(mock_client!(aws_sdk_ecs, [&rule]), "visits", 15);
        let out = p.set(&arns(2), true).await.unwrap();
        assert_eq!(out.deployment_blocked, vec!["t1".to_string()]);
        assert_eq!(
            out.other_failures,
            vec![("t2".to_string(), "MISSING".to_string())]
        );
    }

    #[tokio::test]
    async fn an_aws_error_is_classified() {
        let rule = mock!(Client::update_task_protection).then_error(|| {
            UpdateTaskProtectionError::AccessDeniedException(
                aws_sdk_ecs::types::error::AccessDeniedException::builder()
                    .message("no")
                    .build(),
            )
        });
        let p = Protection::new(mock_client!(aws_sdk_ecs, [&rule]), "visits", 15);
        let err = p.set(&arns(1), true).await.unwrap_err();
        assert_eq!(err.op, "ecs:UpdateTaskProtection");
    }
}
