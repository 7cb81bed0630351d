//! `ECS Task State Change` and `ECS Service Action` details (only the fields notify reads).

use serde::Deserialize;

/// A task's state change; notify cares about `lastStatus == STOPPED`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskChange {
    pub task_arn: String,
    pub cluster_arn: String,
    pub last_status: String,
    /// `service:<name>` for a service's tasks.
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub stop_code: Option<String>,
    #[serde(default)]
    pub stopped_reason: Option<String>,
    #[serde(default)]
    pub task_definition_arn: Option<String>,
    #[serde(default)]
    pub availability_zone: Option<String>,
    #[serde(default)]
    pub containers: Vec<Container>,
}

/// One container of the task at the time of the change.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    pub name: String,
    #[serde(default)]
    pub exit_code: Option<i64>,
    /// e.g. `OutOfMemoryError: Container killed due to memory usage`.
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub last_status: Option<String>,
}

impl TaskChange {
    /// The short task id (last ARN segment) for subjects and links.
    pub fn task_id(&self) -> &str {
        last_segment(&self.task_arn)
    }

    /// The cluster name (last ARN segment).
    pub fn cluster_name(&self) -> &str {
        last_segment(&self.cluster_arn)
    }

    /// The service name from `group`, when the task belongs to a service.
    pub fn service_name(&self) -> Option<&str> {
        self.group.as_deref()?.strip_prefix("service:")
    }
}

/// An ECS service event such as `SERVICE_TASK_PLACEMENT_FAILURE`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAction {
    /// INFO, WARN or ERROR.
    pub event_type: String,
    pub event_name: String,
    pub cluster_arn: String,
    /// e.g. `RESOURCE:MEMORY` for a placement failure.
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub capacity_provider_arns: Vec<String>,
}

impl ServiceAction {
    /// The cluster name (last ARN segment).
    pub fn cluster_name(&self) -> &str {
        last_segment(&self.cluster_arn)
    }
}

/// Last `/`-separated segment of an ARN (`.../cluster/visits` -> `visits`).
pub fn last_segment(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}
