//! ELBv2 adapter for scale-in: take one task's target out of (and back into) a
//! target group, see whether it still draws traffic, and read how long the
//! target group lets a deregistered target drain.

use crate::error::AwsError;
use aws_config::SdkConfig;
use aws_sdk_elasticloadbalancingv2::types::{TargetDescription, TargetHealthStateEnum};
use aws_sdk_elasticloadbalancingv2::Client;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use std::time::Duration;

/// ALB's default `deregistration_delay.timeout_seconds`.
pub const DEFAULT_DEREGISTRATION_DELAY: Duration = Duration::from_secs(300);

/// Where a target stands in its target group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetState {
    /// initial, healthy, unhealthy, unavailable: it may receive new requests.
    Registered,
    /// Deregistered and finishing in-flight requests: no new ones.
    Draining,
    /// Not in the target group (`unused`, or unknown to it): no traffic at all.
    Absent,
}

/// The ELBv2 client with the few calls scale-in needs.
#[derive(Debug, Clone)]
pub struct Elb {
    client: Client,
}

fn target(id: &str, port: i32) -> TargetDescription {
    TargetDescription::builder().id(id).port(port).build()
}

impl Elb {
    /// From the shared SDK config (built once in `main`).
    pub fn new(conf: &SdkConfig) -> Self {
        Self::from_client(Client::new(conf))
    }

    /// From a ready client (aws-smithy-mocks in tests).
    pub fn from_client(client: Client) -> Self {
        Self { client }
    }

    /// DeregisterTargets: the ALB stops sending new requests to `id:port`.
    pub async fn deregister(&self, tg: &str, id: &str, port: i32) -> Result<(), AwsError> {
        self.client
            .deregister_targets()
            .target_group_arn(tg)
            .targets(target(id, port))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("elbv2:DeregisterTargets", e))?;
        Ok(())
    }

    /// RegisterTargets: puts `id:port` back (rollback).
    pub async fn register(&self, tg: &str, id: &str, port: i32) -> Result<(), AwsError> {
        self.client
            .register_targets()
            .target_group_arn(tg)
            .targets(target(id, port))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("elbv2:RegisterTargets", e))?;
        Ok(())
    }

    /// DescribeTargetHealth for one target.
    pub async fn target_state(
        &self,
        tg: &str,
        id: &str,
        port: i32,
    ) -> Result<TargetState, AwsError> {
        let out = self
            .client
            .describe_target_health()
            .target_group_arn(tg)
            .targets(target(id, port))
            .send()
            .await;
        let out = match out {
            Ok(out) => out,
            // Some endpoints answer InvalidTarget for a target that is gone.
            Err(e) if e.code() == Some("InvalidTarget") => return Ok(TargetState::Absent),
            Err(e) => return Err(AwsError::from_sdk("elbv2:DescribeTargetHealth", e)),
        };
        let mut state = TargetState::Absent;
        for d in out.target_health_descriptions() {
            let matches = d
                .target()
                .is_some_and(|t| t.id() == Some(id) && t.port().is_none_or(|p| p == port));
            if !matches {
                continue;
            }
            let this = match d.target_health().and_then(|h| h.state()) {
                None | Some(TargetHealthStateEnum::Unused) => TargetState::Absent,
                Some(TargetHealthStateEnum::Draining)
                | Some(TargetHealthStateEnum::UnhealthyDraining) => TargetState::Draining,
                Some(_) => TargetState::Registered,
            };
            state = match (state, this) {
                (TargetState::Registered, _) | (_, TargetState::Registered) => {
                    TargetState::Registered
                }
                (TargetState::Draining, _) | (_, TargetState::Draining) => TargetState::Draining,
                _ => TargetState::Absent,
            };
        }
        Ok(state)
    }

    /// The target group's `deregistration_delay.timeout_seconds` (ALB's 300 s
    /// default when the attribute is absent or unreadable as a number).
    pub async fn deregistration_delay(&self, tg: &str) -> Result<Duration, AwsError> {
        let out = self
            .client
            .describe_target_group_attributes()
            .target_group_arn(tg)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("elbv2:DescribeTargetGroupAttributes", e))?;
        Ok(out
            .attributes()
            .iter()
            .find(|a| a.key() == Some("deregistration_delay.timeout_seconds"))
            .and_then(|a| a.value()?.parse().ok())
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_DEREGISTRATION_DELAY))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_elasticloadbalancingv2::operation::describe_target_group_attributes::DescribeTargetGroupAttributesOutput;
    use aws_sdk_elasticloadbalancingv2::operation::describe_target_health::DescribeTargetHealthOutput;
    use aws_sdk_elasticloadbalancingv2::types::{
        TargetGroupAttribute, TargetHealth, TargetHealthDescription,
    };
    use aws_smithy_mocks::{mock, mock_client, RuleMode};

    fn health(state: TargetHealthStateEnum) -> DescribeTargetHealthOutput {
        DescribeTargetHealthOutput::builder()
            .target_health_descriptions(
                TargetHealthDescription::builder()
                    .target(target("10.0.1.5", 8080))
                    .target_health(TargetHealth::builder().state(state).build())
                    .build(),
            )
            .build()
    }

    #[tokio::test]
    async fn maps_every_health_state() {
        for (state, want) in [
            (TargetHealthStateEnum::Healthy, TargetState::Registered),
            (TargetHealthStateEnum::Initial, TargetState::Registered),
            (TargetHealthStateEnum::Unhealthy, TargetState::Registered),
            (TargetHealthStateEnum::Draining, TargetState::Draining),
            (
                TargetHealthStateEnum::UnhealthyDraining,
                TargetState::Draining,
            ),
            (TargetHealthStateEnum::Unused, TargetState::Absent),
        ] {
            let out = health(state.clone());
            let rule = mock!(Client::describe_target_health).then_output(move || out.clone());
            let elb = Elb::from_client(mock_client!(aws_sdk_elasticloadbalancingv2, [&rule]));
            assert_eq!(
                elb.target_state("tg", "10.0.1.5", 8080).await.unwrap(),
                want,
                "{state:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_target_not_listed_is_absent() {
        let rule = mock!(Client::describe_target_health)
            .then_output(|| DescribeTargetHealthOutput::builder().build());
        let elb = Elb::from_client(mock_client!(aws_sdk_elasticloadbalancingv2, [&rule]));
        assert_eq!(
            elb.target_state("tg", "10.0.1.5", 8080).await.unwrap(),
            TargetState::Absent
        );
    }

    #[tokio::test]
    async fn reads_the_deregistration_delay_or_defaults_to_alb() {
        let set = mock!(Client::describe_target_group_attributes).then_output(|| {
            DescribeTargetGroupAttributesOutput::builder()
                .attributes(
                    TargetGroupAttribute::builder()
                        .key("deregistration_delay.timeout_seconds")
                        .value("30")
                        .build(),
                )
                .build()
        });
        let unset = mock!(Client::describe_target_group_attributes)
            .then_output(|| DescribeTargetGroupAttributesOutput::builder().build());
        let elb = Elb::from_client(mock_client!(
            aws_sdk_elasticloadbalancingv2,
            RuleMode::Sequential,
            [&set, &unset]
        ));
        assert_eq!(
            elb.deregistration_delay("tg").await.unwrap(),
            Duration::from_secs(30)
        );
        assert_eq!(
            elb.deregistration_delay("tg").await.unwrap(),
            DEFAULT_DEREGISTRATION_DELAY
        );
    }
}
