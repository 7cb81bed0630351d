//! Auto Scaling: the capacity ASG of EC2 mode.

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
}
