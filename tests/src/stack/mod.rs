//! The local stack: the emulated service (cluster, task definition, service,
//! target group in moto, as the template declares them) and a task runner that
//! plays the ECS agent with real visits-api processes ([`runner`]).
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let moto = test_support::moto::shared();
//! let stack = e2e::stack::Stack::provision(moto, 1).await?;
//! let runner = stack.start_runner(moto).await?;
//! let tasks = runner.wait_for_tasks(1, std::time::Duration::from_secs(90)).await?;
//! # let _ = tasks; Ok(()) }
//! ```

pub mod alarms;
pub mod demo;
pub mod demo_load;
pub mod lambda;
pub mod metadata;
pub mod proxy;
pub mod runner;
pub mod runtime_api;
pub mod timeline;

use anyhow::Context;
use test_support::emulated_ecs::{EmulatedEcs, TargetGroup};
use test_support::moto::Moto;

pub use lambda::Lambdas;
pub use proxy::Proxy;
pub use runner::{LiveTask, Runner, RunnerOptions};

/// Cluster name (the template's default `ClusterName` in infra/scaling.yaml).
pub const CLUSTER: &str = "visits";
/// Service name (the template's default `ServiceName` in infra/scaling.yaml).
pub const SERVICE: &str = "visits-api";
/// The tasks' HTTP port (the task definition's container port).
pub const TASK_PORT: u16 = 8080;
/// The admin token every local task is started with.
pub const ADMIN_TOKEN: &str = "local-stack-admin-token";
/// The emulator gives awsvpc tasks 10.x.y.z addresses; each API process binds
/// the loopback twin 127.x.y.z (all of 127/8 is loopback on Linux). The
/// functions get the same rewrite as `TASK_IP_PREFIX_REWRITE`.
pub const IP_REWRITE: (&str, &str) = ("10.", "127.");
/// The target group's deregistration delay here (the template's is 30 s): how
/// long a deregistered target may stay `draining` (the proxy usually ends it
/// sooner, once it holds no connection to the target), and with scale-down's
/// margin the bound of its drain wait.
pub const DEREGISTRATION_DELAY_S: u32 = 20;
/// The SNS topic notify publishes to (the template's OpsTopic).
pub const TOPIC: &str = "visits-autoscaler";

/// The emulated service, provisioned in moto.
#[derive(Debug, Clone)]
pub struct Stack {
    /// The cluster, task definition, target group and service, with clients.
    pub world: EmulatedEcs,
    /// The service's target group ARN.
    pub target_group: String,
    /// The operators' SNS topic ARN (`TOPIC_ARN` for notify).
    pub topic_arn: String,
    /// The emulator's endpoint, for its `/moto-ext/` harness calls.
    pub endpoint: String,
}

impl Stack {
    /// The service target group's targets as DescribeTargetHealth lists them: each
    /// `(ip, port, draining)`, where `draining` means deregistered but not yet gone.
    pub async fn target_health(&self) -> anyhow::Result<Vec<(String, i32, bool)>> {
        use aws_sdk_elasticloadbalancingv2::types::TargetHealthStateEnum;
        let out = self
            .world
            .elb
            .describe_target_health()
            .target_group_arn(&self.target_group)
            .send()
            .await
            .context("describe_target_health")?;
        Ok(out
            .target_health_descriptions()
            .iter()
            .filter_map(|d| {
                let t = d.target()?;
                let draining = d.target_health().and_then(|h| h.state())
                    == Some(&TargetHealthStateEnum::Draining);
                Some((t.id()?.to_string(), t.port()?, draining))
            })
            .collect())
    }

    /// Creates cluster `visits`, task definition `visits-api` (awsvpc, port
    /// 8080, Fargate cpu/memory at task level as in infra/service.yaml),
    /// target group `visits-api` (IP targets, deregistration delay
    /// [`DEREGISTRATION_DELAY_S`], draining like an ALB's: see
    /// [`Moto::enable_alb_draining`]), service `visits-api` at `desired` tasks
    /// behind that target group, and SNS topic [`TOPIC`]. The emulator starts
    /// no task: the runner does.
    pub async fn provision(moto: &Moto, desired: i32) -> anyhow::Result<Self> {
        let world = EmulatedEcs::builder()
            .on(moto)
            .cluster(CLUSTER)
            .family(SERVICE)
            .tasks(desired)
            .port(TASK_PORT)
            .target_group(
                TargetGroup::named(SERVICE)
                    .health_check("/health")
                    .deregistration_delay_s(DEREGISTRATION_DELAY_S)
                    // Deregistered targets drain as on the ALB, ended by the proxy (see proxy.rs).
                    .alb_draining(),
            )
            .build()
            .await?;
        let sns = aws_sdk_sns::Client::new(&world.sdk);
        let topic = sns.create_topic().name(TOPIC).send().await?;
        let topic_arn = topic
            .topic_arn()
            .context("create_topic returned no ARN")?
            .to_string();
        Ok(Self {
            target_group: world.target_group_arn().to_string(),
            world,
            topic_arn,
            endpoint: moto.endpoint(),
        })
    }

    /// The service's desired count in the emulator.
    pub async fn desired(&self) -> anyhow::Result<i32> {
        self.world.desired().await
    }

    /// Starts the task runner (see [`runner`]).
    pub async fn start_runner(&self, moto: &'static Moto) -> anyhow::Result<Runner> {
        Runner::start(self.clone(), moto).await
    }
}

/// A debug binary of the workspace whose package has the same name, built on
/// first use (see [`test_support::paths::workspace_binary`]).
pub fn workspace_binary(name: &str) -> anyhow::Result<std::path::PathBuf> {
    test_support::paths::workspace_binary(name, name)
}

/// The loopback twin of an emulated task IP (`10.0.1.7` -> `127.0.1.7`).
pub fn loopback_twin(ip: &str) -> Option<String> {
    ip.strip_prefix(IP_REWRITE.0)
        .map(|rest| format!("{}{rest}", IP_REWRITE.1))
}

#[cfg(test)]
mod tests {
    #[test]
    fn twin_rewrites_only_the_prefix() {
        assert_eq!(
            super::loopback_twin("10.0.1.7").as_deref(),
            Some("127.0.1.7")
        );
        assert_eq!(super::loopback_twin("172.31.0.9"), None);
    }
}
