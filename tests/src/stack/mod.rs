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
use aws_sdk_ecs::types::{
    AwsVpcConfiguration, ContainerDefinition, LaunchType, LoadBalancer, NetworkConfiguration,
    NetworkMode, PortMapping,
};
use aws_sdk_elasticloadbalancingv2::types::{ProtocolEnum, TargetGroupAttribute, TargetTypeEnum};
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
    /// ECS client on the emulator.
    pub ecs: aws_sdk_ecs::Client,
    /// ELBv2 client on the emulator.
    pub elb: aws_sdk_elasticloadbalancingv2::Client,
    /// The task definition's ARN.
    pub task_definition: String,
    /// The service's target group ARN.
    pub target_group: String,
    /// Default-VPC subnets (awsvpc `run_task` only works there in moto).
    pub subnets: Vec<String>,
    /// The default security group.
    pub security_groups: Vec<String>,
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
        let sdk = moto.sdk_config().await;
        let ecs = aws_sdk_ecs::Client::new(&sdk);
        let elb = aws_sdk_elasticloadbalancingv2::Client::new(&sdk);
        let net = moto.default_network()?;
        anyhow::ensure!(!net.subnets.is_empty(), "moto has no default subnets");
        ecs.create_cluster().cluster_name(CLUSTER).send().await?;
        let container = ContainerDefinition::builder()
            .name("api")
            .image("visits-api:latest")
            .essential(true)
            .port_mappings(
                PortMapping::builder()
                    .container_port(i32::from(TASK_PORT))
                    .build(),
            )
            .build();
        let td = ecs
            .register_task_definition()
            .family(SERVICE)
            .network_mode(NetworkMode::Awsvpc)
            .requires_compatibilities(aws_sdk_ecs::types::Compatibility::Fargate)
            .cpu("256")
            .memory("512")
            .container_definitions(container)
            .send()
            .await?;
        let task_definition = td
            .task_definition()
            .and_then(|t| t.task_definition_arn())
            .context("register_task_definition returned no ARN")?
            .to_string();
        let tg = elb
            .create_target_group()
            .name(SERVICE)
            .protocol(ProtocolEnum::Http)
            .port(i32::from(TASK_PORT))
            .vpc_id(&net.vpc_id)
            .target_type(TargetTypeEnum::Ip)
            .health_check_path("/health")
            .send()
            .await?;
        let target_group = tg
            .target_groups()
            .first()
            .and_then(|t| t.target_group_arn())
            .context("create_target_group returned no ARN")?
            .to_string();
        elb.modify_target_group_attributes()
            .target_group_arn(&target_group)
            .attributes(
                TargetGroupAttribute::builder()
                    .key("deregistration_delay.timeout_seconds")
                    .value(DEREGISTRATION_DELAY_S.to_string())
                    .build(),
            )
            .send()
            .await
            .context("set the deregistration delay")?;
        // Deregistered targets drain as on the ALB, ended by the proxy (see proxy.rs).
        moto.enable_alb_draining(&target_group)?;
        let sns = aws_sdk_sns::Client::new(&sdk);
        let topic = sns.create_topic().name(TOPIC).send().await?;
        let topic_arn = topic
            .topic_arn()
            .context("create_topic returned no ARN")?
            .to_string();
        let stack = Self {
            ecs,
            elb,
            task_definition,
            target_group,
            subnets: net.subnets,
            security_groups: net.security_groups,
            topic_arn,
            endpoint: moto.endpoint(),
        };
        stack
            .ecs
            .create_service()
            .cluster(CLUSTER)
            .service_name(SERVICE)
            .task_definition(&stack.task_definition)
            .desired_count(desired)
            .launch_type(LaunchType::Fargate)
            .network_configuration(stack.network()?)
            .load_balancers(
                LoadBalancer::builder()
                    .target_group_arn(&stack.target_group)
                    .container_name("api")
                    .container_port(i32::from(TASK_PORT))
                    .build(),
            )
            .send()
            .await?;
        Ok(stack)
    }

    /// The service's awsvpc network configuration.
    pub fn network(&self) -> anyhow::Result<NetworkConfiguration> {
        let vpc = AwsVpcConfiguration::builder()
            // One subnet: the local stack has one address space anyway.
            .set_subnets(Some(self.subnets.iter().take(1).cloned().collect()))
            .set_security_groups(Some(self.security_groups.clone()))
            .build()?;
        Ok(NetworkConfiguration::builder()
            .awsvpc_configuration(vpc)
            .build())
    }

    /// The service's desired count in the emulator.
    pub async fn desired(&self) -> anyhow::Result<i32> {
        let out = self
            .ecs
            .describe_services()
            .cluster(CLUSTER)
            .services(SERVICE)
            .send()
            .await?;
        let svc = out.services().first().context("service visits-api gone")?;
        Ok(svc.desired_count())
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
