//! Auto Scaling: the capacity ASG of EC2 mode: its size, its instances, and
//! the terminate lifecycle hook that drain-instance answers.

use crate::error::{AwsError, AwsErrorKind};
use aws_config::SdkConfig;
use aws_sdk_autoscaling::Client;

/// The capacity numbers of an Auto Scaling group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AsgInfo {
    pub desired: i32,
    pub min: i32,
    pub max: i32,
    /// Instances currently in the group (any lifecycle state).
    pub instances: i32,
}

/// Auto Scaling adapter.
#[derive(Debug, Clone)]
pub struct AutoScaling {
    client: Client,
}

impl AutoScaling {
    /// Builds the client from the shared SDK config.
    pub fn new(conf: &SdkConfig) -> Self {
        Self::from_client(Client::new(conf))
    }

    /// Wraps an existing client (tests: aws-smithy-mocks).
    pub fn from_client(client: Client) -> Self {
        AutoScaling { client }
    }

    /// The raw client, for calls no method covers yet (drain-instance's lifecycle calls).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// DescribeAutoScalingGroups for one group; a missing group is `NotFound`.
    pub async fn describe(&self, name: &str) -> Result<AsgInfo, AwsError> {
        const OP: &str = "autoscaling:DescribeAutoScalingGroups";
        let out = self
            .client
            .describe_auto_scaling_groups()
            .auto_scaling_group_names(name)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(OP, e))?;
        let g = out.auto_scaling_groups().first().ok_or_else(|| AwsError {
            op: OP,
            kind: AwsErrorKind::NotFound,
            code: None,
            message: format!("Auto Scaling group {name} not found"),
        })?;
        Ok(AsgInfo {
            desired: g.desired_capacity().unwrap_or(0),
            min: g.min_size().unwrap_or(0),
            max: g.max_size().unwrap_or(0),
            instances: g.instances().len() as i32,
        })
    }

    /// SetDesiredCapacity, ignoring the group's cooldown: the autoscaler has its own.
    pub async fn set_desired(&self, name: &str, desired: i32) -> Result<(), AwsError> {
        self.client
            .set_desired_capacity()
            .auto_scaling_group_name(name)
            .desired_capacity(desired)
            .honor_cooldown(false)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("autoscaling:SetDesiredCapacity", e))?;
        Ok(())
    }

    /// The ids of the instances in the group that are InService (the ones a
    /// capacity scale-in may pick).
    pub async fn in_service_instances(&self, name: &str) -> Result<Vec<String>, AwsError> {
        let out = self
            .client
            .describe_auto_scaling_groups()
            .auto_scaling_group_names(name)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("autoscaling:DescribeAutoScalingGroups", e))?;
        Ok(out
            .auto_scaling_groups()
            .iter()
            .flat_map(|g| g.instances())
            .filter(|i| i.lifecycle_state().map(|s| s.as_str()) == Some("InService"))
            .filter_map(|i| i.instance_id().map(str::to_string))
            .collect())
    }

    /// TerminateInstanceInAutoScalingGroup with the desired capacity lowered
    /// by one: the group removes exactly this instance and starts no replacement.
    pub async fn terminate_instance(&self, instance_id: &str) -> Result<(), AwsError> {
        self.client
            .terminate_instance_in_auto_scaling_group()
            .instance_id(instance_id)
            .should_decrement_desired_capacity(true)
            .send()
            .await
            .map_err(|e| {
                AwsError::from_sdk("autoscaling:TerminateInstanceInAutoScalingGroup", e)
            })?;
        Ok(())
    }

    /// The group and lifecycle state (`InService`, `Terminating:Wait`...) of
    /// each of `instance_ids` the service knows (50 per call).
    pub async fn lifecycle_states(
        &self,
        instance_ids: &[String],
    ) -> Result<Vec<InstanceLifecycle>, AwsError> {
        let mut all = Vec::with_capacity(instance_ids.len());
        for chunk in instance_ids.chunks(50) {
            let out = self
                .client
                .describe_auto_scaling_instances()
                .set_instance_ids(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("autoscaling:DescribeAutoScalingInstances", e))?;
            all.extend(
                out.auto_scaling_instances()
                    .iter()
                    .map(|i| InstanceLifecycle {
                        instance_id: i.instance_id().unwrap_or_default().to_string(),
                        group: i.auto_scaling_group_name().unwrap_or_default().to_string(),
                        state: i.lifecycle_state().unwrap_or_default().to_string(),
                    }),
            );
        }
        Ok(all)
    }

    /// The group's hook for the terminating transition: its name and timeouts.
    /// None when the group has no such hook.
    pub async fn terminate_hook(&self, group: &str) -> Result<Option<LifecycleHook>, AwsError> {
        let out = self
            .client
            .describe_lifecycle_hooks()
            .auto_scaling_group_name(group)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("autoscaling:DescribeLifecycleHooks", e))?;
        Ok(out
            .lifecycle_hooks()
            .iter()
            .find(|h| h.lifecycle_transition() == Some(TERMINATING))
            .map(|h| {
                let heartbeat = h.heartbeat_timeout().unwrap_or(DEFAULT_HEARTBEAT_S);
                LifecycleHook {
                    name: h.lifecycle_hook_name().unwrap_or_default().to_string(),
                    heartbeat_timeout_s: heartbeat,
                    global_timeout_s: h
                        .global_timeout()
                        .unwrap_or((100 * heartbeat).min(MAX_GLOBAL_TIMEOUT_S)),
                }
            }))
    }

    /// RecordLifecycleActionHeartbeat: restarts the hook's heartbeat timer
    /// (it cannot extend the hook past its global timeout).
    pub async fn heartbeat(&self, action: &LifecycleAction) -> Result<(), AwsError> {
        self.client
            .record_lifecycle_action_heartbeat()
            .auto_scaling_group_name(&action.group)
            .lifecycle_hook_name(&action.hook)
            .instance_id(&action.instance_id)
            .set_lifecycle_action_token(action.token.clone())
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("autoscaling:RecordLifecycleActionHeartbeat", e))?;
        Ok(())
    }

    /// CompleteLifecycleAction with CONTINUE: the group goes on terminating.
    pub async fn complete_continue(&self, action: &LifecycleAction) -> Result<(), AwsError> {
        self.client
            .complete_lifecycle_action()
            .auto_scaling_group_name(&action.group)
            .lifecycle_hook_name(&action.hook)
            .instance_id(&action.instance_id)
            .set_lifecycle_action_token(action.token.clone())
            .lifecycle_action_result("CONTINUE")
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("autoscaling:CompleteLifecycleAction", e))?;
        Ok(())
    }
}

/// The lifecycle transition drain-instance answers.
pub const TERMINATING: &str = "autoscaling:EC2_INSTANCE_TERMINATING";
/// The heartbeat timeout of a hook that sets none (AWS default, 1 h).
pub const DEFAULT_HEARTBEAT_S: i32 = 3600;
/// A hook's global timeout is at most 48 h (and 100 heartbeat timeouts).
pub const MAX_GLOBAL_TIMEOUT_S: i32 = 172_800;

/// One instance's place in Auto Scaling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceLifecycle {
    pub instance_id: String,
    pub group: String,
    /// `InService`, `Terminating:Wait`, `Terminating:Proceed`...
    pub state: String,
}

/// A lifecycle hook's name and timeouts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecycleHook {
    pub name: String,
    pub heartbeat_timeout_s: i32,
    /// Heartbeats cannot keep the instance waiting longer than this from the hook's start.
    pub global_timeout_s: i32,
}

/// One pending lifecycle action: which instance of which group waits in which hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecycleAction {
    pub group: String,
    pub hook: String,
    pub instance_id: String,
    /// The event's token; without it the action is named by the instance id alone.
    pub token: Option<String>,
}
