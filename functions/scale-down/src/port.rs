//! The adapter trait the scale-in step machine drives, and the views it reads.
//!
//! The machine (`machine.rs`) only talks to AWS and to the tasks through this
//! trait, so the same production code runs against the real SDK clients
//! (`aws_port.rs`), against moto, and against an in-memory world in the
//! interleaving proptest.

use std::collections::BTreeMap;
use std::time::Duration;

/// Why a port call failed. `retryable` drives the Lambda error type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{op}: {message}")]
pub struct PortError {
    /// The AWS operation or task call that failed (`UpdateService`, `GET /admin/drain`...).
    pub op: String,
    pub message: String,
    /// Throttling, 5xx and timeouts are retryable; validation errors are not.
    pub retryable: bool,
}

impl PortError {
    /// A retryable failure of `op`.
    pub fn retryable(op: &str, message: impl Into<String>) -> Self {
        Self {
            op: op.to_string(),
            message: message.into(),
            retryable: true,
        }
    }

    /// A failure that retrying will not fix.
    pub fn fatal(op: &str, message: impl Into<String>) -> Self {
        Self {
            op: op.to_string(),
            message: message.into(),
            retryable: false,
        }
    }
}

/// One deployment of the service, enough to tell whether a rollout is running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentView {
    /// PRIMARY, ACTIVE or INACTIVE.
    pub status: String,
    /// COMPLETED, IN_PROGRESS or FAILED (None on services without the circuit breaker data).
    pub rollout_state: Option<String>,
}

/// A load balancer entry of the service: which container port each target group serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LbBinding {
    pub target_group_arn: String,
    pub container_name: String,
    pub container_port: i32,
}

/// The service as the machine needs it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ServiceView {
    pub desired: i32,
    pub running: i32,
    pub pending: i32,
    pub deployments: Vec<DeploymentView>,
    /// Every tag of the service; episode state lives under `autoscaler:`.
    pub tags: BTreeMap<String, String>,
    pub load_balancers: Vec<LbBinding>,
}

/// A task of the service.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TaskView {
    pub arn: String,
    /// The last path segment of the ARN; what the episode marker records.
    pub id: String,
    /// PROVISIONING, PENDING, RUNNING, DEPROVISIONING, STOPPED...
    pub last_status: String,
    pub desired_status: String,
    /// awsvpc: the ENI's private IPv4. None in bridge mode.
    pub private_ip: Option<String>,
    pub availability_zone: Option<String>,
    /// Unix seconds; what "newest" compares.
    pub started_at: Option<i64>,
    /// Bridge mode: the EC2 instance the task runs on (the target id).
    pub ec2_instance_id: Option<String>,
    /// Bridge mode: (container name, container port) -> host port.
    pub host_ports: Vec<(String, i32, i32)>,
    /// Bridge mode: the instance's private IP, for the admin calls.
    pub host_ip: Option<String>,
}

impl TaskView {
    /// True while ECS counts the task as serving (not on its way out).
    pub fn is_running(&self) -> bool {
        self.last_status == "RUNNING" && self.desired_status == "RUNNING"
    }

    /// True once ECS is done with the task.
    pub fn is_stopped(&self) -> bool {
        self.last_status == "STOPPED"
    }
}

/// One load balancer registration of a task.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Target {
    pub target_group_arn: String,
    /// The task IP (awsvpc) or the EC2 instance id (bridge).
    pub id: String,
    pub port: i32,
}

pub use crate::capacity::CapacityOutcome;
pub use scaling::aws::elb::TargetState;
pub use scaling::aws::protection::ProtectOutcome;

/// A task's answer to `GET /admin/drain` (and `POST`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrainStatus {
    pub draining: bool,
    pub in_flight: u64,
}

/// An alarm's current state (DescribeAlarms): the scale-in alarms for the reconcile
/// schedule, the scale-out alarms for the headroom check.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmView {
    pub name: String,
    pub arn: Option<String>,
    /// ALARM, OK or INSUFFICIENT_DATA.
    pub state: String,
    /// When the alarm entered `state` (StateUpdatedTimestamp).
    pub since: chrono::DateTime<chrono::Utc>,
    pub threshold: Option<f64>,
    pub comparison: Option<String>,
    /// The newest datapoint of the alarm's metric, with its statistic and period: read
    /// only by [`Port::scale_out_alarms`], for an alarm in OK (None otherwise).
    pub latest: Option<f64>,
}

/// Everything the scale-in machine does to the outside world.
#[allow(async_fn_in_trait)]
pub trait Port {
    /// DescribeServices (with tags).
    async fn service(&self) -> Result<ServiceView, PortError>;
    /// The service's tasks that ECS still runs (RUNNING desired status), keeping only
    /// `group == service:<name>` (moto ignores the list filter).
    async fn tasks(&self) -> Result<Vec<TaskView>, PortError>;
    /// One task by id, whatever its state; None once ECS has forgotten it.
    async fn task(&self, id: &str) -> Result<Option<TaskView>, PortError>;
    /// TagResource on the service.
    async fn put_tags(&self, tags: &[(String, String)]) -> Result<(), PortError>;
    /// UntagResource on the service.
    async fn remove_tags(&self, keys: &[String]) -> Result<(), PortError>;
    /// UpdateTaskProtection (the adapter batches by 10 and bounds the expiry).
    async fn set_protection(
        &self,
        task_arns: &[String],
        enabled: bool,
    ) -> Result<ProtectOutcome, PortError>;
    /// DeregisterTargets.
    async fn deregister(&self, target: &Target) -> Result<(), PortError>;
    /// RegisterTargets.
    async fn register(&self, target: &Target) -> Result<(), PortError>;
    /// DescribeTargetHealth for one target.
    async fn target_state(&self, target: &Target) -> Result<TargetState, PortError>;
    /// The target group's `deregistration_delay.timeout_seconds`.
    async fn deregistration_delay(&self, target_group_arn: &str) -> Result<Duration, PortError>;
    /// `POST /admin/drain` on the task: enters, or renews, drain mode for `ttl`.
    async fn drain(&self, task: &TaskView, ttl: Duration) -> Result<DrainStatus, PortError>;
    /// `GET /admin/drain` on the task.
    async fn drain_status(&self, task: &TaskView) -> Result<DrainStatus, PortError>;
    /// `POST /admin/undrain` on the task.
    async fn undrain(&self, task: &TaskView) -> Result<(), PortError>;
    /// UpdateService desiredCount.
    async fn set_desired(&self, desired: i32) -> Result<(), PortError>;
    /// EC2 capacity mode: terminate one container instance the scale-in left
    /// empty (TerminateInstanceInAutoScalingGroup, desired capacity - 1). The
    /// default is Fargate mode, where there is no instance to give back.
    async fn terminate_empty_instance(&self) -> Result<CapacityOutcome, PortError> {
        Ok(CapacityOutcome::NotEc2)
    }
    /// DescribeAlarms for the `SCALE_IN_ALARMS` (only called when some are configured).
    /// The default is a world without CloudWatch: an error, never a silent "no alarm".
    async fn alarms(&self, names: &[String]) -> Result<Vec<AlarmView>, PortError> {
        let _ = names;
        Err(PortError::fatal(
            "cloudwatch:DescribeAlarms",
            "this port reads no alarms",
        ))
    }
    /// The scale-out alarms (SCALE_OUT_ALARMS) with the newest datapoint of each one in
    /// OK, for the scale-in headroom check (`scaling::headroom`).
    async fn scale_out_alarms(&self, names: &[String]) -> Result<Vec<AlarmView>, PortError> {
        self.alarms(names).await
    }
    /// Wall-clock unix seconds (the marker's timestamps); a fake world overrides it.
    fn now_unix(&self) -> i64 {
        chrono::Utc::now().timestamp()
    }
}
