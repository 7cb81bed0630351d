//! One ECS service provisioned in the emulator, the way every test that needs
//! one sets it up: a cluster, a Fargate task definition, optionally a target
//! group the service sits behind, and the service at its desired count.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use test_support::emulated_ecs::{EmulatedEcs, TargetGroup};
//! let world = EmulatedEcs::builder()
//!     .cluster("sd-example")
//!     .tasks(3)
//!     .target_group(TargetGroup::named("sd-example").deregistration_delay_s(5))
//!     .build()
//!     .await?;
//! assert_eq!(world.desired().await?, 3);
//! # Ok(()) }
//! ```
//!
//! The shape follows the project's template (infra/service.yaml): awsvpc
//! network mode, Fargate launch type, task-level CPU and memory, one container
//! `api`, IP targets. The emulator starts no task for a service: tests start
//! them with `run_task` (in the default VPC's subnets, where awsvpc works) or
//! set the service's counts with [`EmulatedEcsBuilder::all_running`].

use anyhow::Context;
use aws_sdk_ecs::types::{
    AwsVpcConfiguration, Compatibility, ContainerDefinition, DeploymentController,
    DeploymentControllerType, LaunchType, LoadBalancer, NetworkConfiguration, NetworkMode,
    PortMapping, Tag,
};
use aws_sdk_elasticloadbalancingv2::types::{ProtocolEnum, TargetGroupAttribute, TargetTypeEnum};

use crate::moto::Moto;

/// The service as provisioned, with clients on the emulator.
#[derive(Debug, Clone)]
pub struct EmulatedEcs {
    /// The cluster's name.
    pub cluster: String,
    /// The service's name.
    pub service: String,
    /// The task definition's family (`run_task` accepts it as the definition).
    pub family: String,
    /// The task definition's ARN.
    pub task_definition: String,
    /// The container's port, which is also the target group's.
    pub port: u16,
    /// The service's target group ARN, when the builder was given one.
    pub target_group: Option<String>,
    /// The service's awsvpc configuration: the default VPC's first subnet and
    /// its default security group (`run_task` fails in subnets made in moto).
    pub network: NetworkConfiguration,
    /// SDK config on the emulator, for any other client a test needs.
    pub sdk: aws_config::SdkConfig,
    /// ECS client on the emulator.
    pub ecs: aws_sdk_ecs::Client,
    /// ELBv2 client on the emulator.
    pub elb: aws_sdk_elasticloadbalancingv2::Client,
}

/// The target group a service sits behind: IP targets on the container's port
/// in the default VPC.
#[derive(Debug, Clone)]
pub struct TargetGroup {
    name: String,
    deregistration_delay_s: Option<u32>,
    health_check_path: Option<String>,
    alb_draining: bool,
}

impl TargetGroup {
    /// A target group called `name` (unique in the emulator's region).
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            deregistration_delay_s: None,
            health_check_path: None,
            alb_draining: false,
        }
    }

    /// The `deregistration_delay.timeout_seconds` attribute (AWS's default: 300).
    pub fn deregistration_delay_s(mut self, seconds: u32) -> Self {
        self.deregistration_delay_s = Some(seconds);
        self
    }

    /// The health check's path.
    pub fn health_check(mut self, path: impl Into<String>) -> Self {
        self.health_check_path = Some(path.into());
        self
    }

    /// Deregistered targets stay `draining` as on an ALB (see
    /// [`Moto::enable_alb_draining`]); moto alone drops them at once.
    pub fn alb_draining(mut self) -> Self {
        self.alb_draining = true;
        self
    }
}

/// Builds an [`EmulatedEcs`]; every setting has the local stack's default.
#[derive(Debug, Clone)]
pub struct EmulatedEcsBuilder<'a> {
    moto: Option<&'a Moto>,
    cluster: String,
    service: String,
    family: Option<String>,
    tasks: i32,
    cpu: String,
    memory: String,
    port: u16,
    target_group: Option<TargetGroup>,
    all_running: bool,
    external_deployments: bool,
    tags: Vec<(String, String)>,
}

impl EmulatedEcs {
    /// Cluster `visits`, service `visits-api` at one task, task definition
    /// `<cluster>-api` (256 CPU units, 512 MiB, container `api` on port 8080),
    /// no target group, in the shared emulator ([`crate::moto::shared`]).
    pub fn builder<'a>() -> EmulatedEcsBuilder<'a> {
        EmulatedEcsBuilder {
            moto: None,
            cluster: "visits".into(),
            service: "visits-api".into(),
            family: None,
            tasks: 1,
            cpu: "256".into(),
            memory: "512".into(),
            port: 8080,
            target_group: None,
            all_running: false,
            external_deployments: false,
            tags: Vec::new(),
        }
    }

    /// The target group's ARN. Panics when the builder was given none: that is
    /// a mistake in the test.
    pub fn target_group_arn(&self) -> &str {
        self.target_group
            .as_deref()
            .expect("the emulated service was built without a target group")
    }

    /// The service's desired count, read from the emulator.
    pub async fn desired(&self) -> anyhow::Result<i32> {
        let out = self
            .ecs
            .describe_services()
            .cluster(&self.cluster)
            .services(&self.service)
            .send()
            .await
            .context("describe_services")?;
        let service = out
            .services()
            .first()
            .with_context(|| format!("service {} is gone", self.service))?;
        Ok(service.desired_count())
    }
}

impl<'a> EmulatedEcsBuilder<'a> {
    /// Provision in this emulator rather than the shared one.
    pub fn on(mut self, moto: &'a Moto) -> Self {
        self.moto = Some(moto);
        self
    }

    /// The cluster's name: tests sharing an emulator use one each.
    pub fn cluster(mut self, name: impl Into<String>) -> Self {
        self.cluster = name.into();
        self
    }

    /// The task definition's family (default `<cluster>-api`).
    pub fn family(mut self, family: impl Into<String>) -> Self {
        self.family = Some(family.into());
        self
    }

    /// The service's desired count.
    pub fn tasks(mut self, desired: i32) -> Self {
        self.tasks = desired;
        self
    }

    /// The task size: CPU units and MiB, as Fargate's task-level `cpu` and
    /// `memory` (what the capacity check reads).
    pub fn task_size(mut self, cpu: u32, memory_mib: u32) -> Self {
        self.cpu = cpu.to_string();
        self.memory = memory_mib.to_string();
        self
    }

    /// The container's port, also the target group's (default 8080).
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Puts the service behind this target group.
    pub fn target_group(mut self, target_group: TargetGroup) -> Self {
        self.target_group = Some(target_group);
        self
    }

    /// Every desired task counts as running, as once ECS has finished the
    /// service's first deployment (moto leaves them all pending and the
    /// rollout in progress: see [`Moto::set_service_counts`]).
    pub fn all_running(mut self) -> Self {
        self.all_running = true;
        self
    }

    /// An EXTERNAL deployment controller: the emulator then lists no
    /// deployment, as a settled service looks. Its own (ECS) controller's
    /// deployment stays IN_PROGRESS whatever the counts, which scale-down
    /// rightly takes for a rollout.
    pub fn external_deployments(mut self) -> Self {
        self.external_deployments = true;
        self
    }

    /// A tag on the service.
    pub fn tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.tags.push((key.into(), value.into()));
        self
    }

    /// Creates the cluster, the task definition, the target group (if any)
    /// and the service, in that order.
    pub async fn build(self) -> anyhow::Result<EmulatedEcs> {
        let moto = match self.moto {
            Some(moto) => moto,
            None => crate::moto::shared(),
        };
        let sdk = moto.sdk_config().await;
        let ecs = aws_sdk_ecs::Client::new(&sdk);
        let elb = aws_sdk_elasticloadbalancingv2::Client::new(&sdk);
        let net = moto.default_network()?;
        anyhow::ensure!(!net.subnets.is_empty(), "moto has no default subnets");
        let network = NetworkConfiguration::builder()
            .awsvpc_configuration(
                AwsVpcConfiguration::builder()
                    // One subnet: the tests have one address space anyway.
                    .set_subnets(Some(net.subnets[..1].to_vec()))
                    .set_security_groups(Some(net.security_groups.clone()))
                    .build()?,
            )
            .build();
        let family = self
            .family
            .clone()
            .unwrap_or_else(|| format!("{}-api", self.cluster));

        ecs.create_cluster()
            .cluster_name(&self.cluster)
            .send()
            .await
            .with_context(|| format!("create cluster {}", self.cluster))?;
        let container = ContainerDefinition::builder()
            .name("api")
            .image("visits-api:latest")
            .essential(true)
            .port_mappings(
                PortMapping::builder()
                    .container_port(i32::from(self.port))
                    .build(),
            )
            .build();
        let td = ecs
            .register_task_definition()
            .family(&family)
            .network_mode(NetworkMode::Awsvpc)
            .requires_compatibilities(Compatibility::Fargate)
            .cpu(&self.cpu)
            .memory(&self.memory)
            .container_definitions(container)
            .send()
            .await
            .with_context(|| format!("register task definition {family}"))?;
        let task_definition = td
            .task_definition()
            .and_then(|t| t.task_definition_arn())
            .context("register_task_definition returned no ARN")?
            .to_string();
        let target_group = match &self.target_group {
            Some(tg) => Some(create_target_group(moto, &elb, tg, self.port, &net.vpc_id).await?),
            None => None,
        };

        let mut service = ecs
            .create_service()
            .cluster(&self.cluster)
            .service_name(&self.service)
            .task_definition(&task_definition)
            .desired_count(self.tasks)
            .launch_type(LaunchType::Fargate)
            .network_configuration(network.clone())
            .set_tags(if self.tags.is_empty() {
                None
            } else {
                Some(
                    self.tags
                        .iter()
                        .map(|(k, v)| Tag::builder().key(k).value(v).build())
                        .collect(),
                )
            });
        if let Some(arn) = &target_group {
            service = service.load_balancers(
                LoadBalancer::builder()
                    .target_group_arn(arn)
                    .container_name("api")
                    .container_port(i32::from(self.port))
                    .build(),
            );
        }
        if self.external_deployments {
            service = service.deployment_controller(
                DeploymentController::builder()
                    .r#type(DeploymentControllerType::External)
                    .build()?,
            );
        }
        service
            .send()
            .await
            .with_context(|| format!("create service {}", self.service))?;
        if self.all_running {
            moto.set_service_counts(&self.cluster, &self.service, self.tasks.max(0) as usize, 0)?;
        }
        Ok(EmulatedEcs {
            cluster: self.cluster,
            service: self.service,
            family,
            task_definition,
            port: self.port,
            target_group,
            network,
            sdk,
            ecs,
            elb,
        })
    }
}

async fn create_target_group(
    moto: &Moto,
    elb: &aws_sdk_elasticloadbalancingv2::Client,
    tg: &TargetGroup,
    port: u16,
    vpc_id: &str,
) -> anyhow::Result<String> {
    let out = elb
        .create_target_group()
        .name(&tg.name)
        .protocol(ProtocolEnum::Http)
        .port(i32::from(port))
        .vpc_id(vpc_id)
        .target_type(TargetTypeEnum::Ip)
        .set_health_check_path(tg.health_check_path.clone())
        .send()
        .await
        .with_context(|| format!("create target group {}", tg.name))?;
    let arn = out
        .target_groups()
        .first()
        .and_then(|t| t.target_group_arn())
        .context("create_target_group returned no ARN")?
        .to_string();
    if let Some(delay) = tg.deregistration_delay_s {
        elb.modify_target_group_attributes()
            .target_group_arn(&arn)
            .attributes(
                TargetGroupAttribute::builder()
                    .key("deregistration_delay.timeout_seconds")
                    .value(delay.to_string())
                    .build(),
            )
            .send()
            .await
            .context("set the deregistration delay")?;
    }
    if tg.alb_draining {
        moto.enable_alb_draining(&arn)?;
    }
    Ok(arn)
}
