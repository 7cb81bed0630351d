//! ECS: the scaled service, its tasks, its tags (episode state) and the
//! capacity its tasks need.

use crate::error::{AwsError, AwsErrorKind};
use aws_config::SdkConfig;
use aws_sdk_ecs::types::{ContainerInstanceStatus, ServiceField, Tag};
use aws_sdk_ecs::Client;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

/// DescribeTasks and DescribeContainerInstances take at most 100 ARNs a call.
const DESCRIBE_BATCH: usize = 100;

/// One deployment of the service (PRIMARY, ACTIVE...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentInfo {
    pub id: String,
    /// `PRIMARY` (the newest), `ACTIVE` (older, being replaced) or `INACTIVE`.
    pub status: String,
    /// `IN_PROGRESS`, `COMPLETED`, `FAILED` when the deployment reports one.
    pub rollout_state: Option<String>,
    pub desired: i32,
    pub running: i32,
    pub pending: i32,
}

/// A target group the service registers its tasks in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadBalancerRef {
    pub target_group_arn: String,
    pub container_name: Option<String>,
    pub container_port: Option<i32>,
}

/// What DescribeServices (with tags) says about the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceInfo {
    pub arn: String,
    pub name: String,
    /// `ACTIVE`, `DRAINING` or `INACTIVE`.
    pub status: String,
    pub desired: i32,
    /// ECS's own counters; accurate on AWS. The emulator never starts tasks, so
    /// there they only echo `desired` (scale-down counts tasks instead, see
    /// [`count_tasks`]).
    pub running: i32,
    pub pending: i32,
    pub deployments: Vec<DeploymentInfo>,
    pub task_definition: String,
    pub load_balancers: Vec<LoadBalancerRef>,
    /// All the service's tags: the `autoscaler:*` ones hold episode state.
    pub tags: BTreeMap<String, String>,
}

impl ServiceInfo {
    /// A deployment is in progress while an older deployment still exists beside
    /// the PRIMARY one (a rolling update or a rollback), or while the PRIMARY's
    /// rollout is not `COMPLETED` (the definition scale-down's skip rule applies).
    /// Changing only the desired count never starts one. Only scale-in skips on it:
    /// a scale-out during a rollout is what ECS handles anyway. (The local stack's
    /// task runner completes rollouts as the ECS scheduler does; bare moto never does.)
    pub fn deployment_in_progress(&self) -> bool {
        self.deployments.len() > 1
            || self.deployments.iter().any(|d| {
                d.status == "ACTIVE" || d.rollout_state.as_deref().is_some_and(|r| r != "COMPLETED")
            })
    }
}

/// One task of the service, with what scale-down needs to reach and choose it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskInfo {
    pub arn: String,
    /// `service:<name>` for service tasks.
    pub group: Option<String>,
    /// `PROVISIONING`, `PENDING`, `ACTIVATING`, `RUNNING`, `DEACTIVATING`, `STOPPING`,
    /// `DEPROVISIONING`, `STOPPED`.
    pub last_status: String,
    pub desired_status: String,
    pub health_status: Option<String>,
    pub private_ip: Option<String>,
    pub availability_zone: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub created_at: Option<DateTime<Utc>>,
    pub container_instance_arn: Option<String>,
    pub task_definition_arn: Option<String>,
}

impl TaskInfo {
    /// The task id (last segment of the ARN).
    pub fn id(&self) -> &str {
        self.arn.rsplit('/').next().unwrap_or(&self.arn)
    }
}

/// Running and pending tasks counted from the tasks themselves, for when the
/// service's counters cannot be trusted (the emulator). Tasks on their way out
/// (desired STOPPED) count as neither.
pub fn count_tasks(tasks: &[TaskInfo]) -> (i32, i32) {
    let live = tasks.iter().filter(|t| t.desired_status != "STOPPED");
    let (mut running, mut pending) = (0, 0);
    for t in live {
        match t.last_status.as_str() {
            "RUNNING" => running += 1,
            "PROVISIONING" | "PENDING" | "ACTIVATING" => pending += 1,
            _ => {}
        }
    }
    (running, pending)
}

/// CPU units and MiB one task needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TaskResources {
    pub cpu: i64,
    pub memory: i64,
}

/// Free and total capacity of the cluster's ACTIVE container instances (EC2 mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClusterCapacity {
    pub instances: i32,
    pub free: TaskResources,
    /// The largest instance's registered resources: how much one more instance adds.
    pub per_instance: TaskResources,
    /// Tasks running or pending on those instances: in awsvpc mode each holds one of its
    /// instance's network interfaces.
    pub tasks: i32,
}

/// ECS adapter.
#[derive(Debug, Clone)]
pub struct Ecs {
    client: Client,
}

impl Ecs {
    /// Builds the client from the shared SDK config.
    pub fn new(conf: &SdkConfig) -> Self {
        Self::from_client(Client::new(conf))
    }

    /// Wraps an existing client (tests: aws-smithy-mocks).
    pub fn from_client(client: Client) -> Self {
        Ecs { client }
    }

    /// The raw client, for calls no method covers yet.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The service with its tags, in one DescribeServices call (`include=TAGS`).
    pub async fn describe_service(
        &self,
        cluster: &str,
        service: &str,
    ) -> Result<ServiceInfo, AwsError> {
        const OP: &str = "ecs:DescribeServices";
        let out = self
            .client
            .describe_services()
            .cluster(cluster)
            .services(service)
            .include(ServiceField::Tags)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(OP, e))?;
        // A missing service is a `failures[]` entry, not an error response.
        let Some(s) = out.services().first() else {
            let reason = out
                .failures()
                .first()
                .and_then(|f| f.reason())
                .unwrap_or("no such service");
            return Err(AwsError {
                op: OP,
                kind: AwsErrorKind::NotFound,
                code: Some("ServiceNotFoundException".into()),
                message: format!("service {service} in cluster {cluster}: {reason}"),
            });
        };
        Ok(ServiceInfo {
            arn: s.service_arn().unwrap_or_default().to_string(),
            name: s.service_name().unwrap_or(service).to_string(),
            status: s.status().unwrap_or_default().to_string(),
            desired: s.desired_count(),
            running: s.running_count(),
            pending: s.pending_count(),
            deployments: s
                .deployments()
                .iter()
                .map(|d| DeploymentInfo {
                    id: d.id().unwrap_or_default().to_string(),
                    status: d.status().unwrap_or_default().to_string(),
                    rollout_state: d.rollout_state().map(|r| r.as_str().to_string()),
                    desired: d.desired_count(),
                    running: d.running_count(),
                    pending: d.pending_count(),
                })
                .collect(),
            task_definition: s.task_definition().unwrap_or_default().to_string(),
            load_balancers: s
                .load_balancers()
                .iter()
                .filter_map(|lb| {
                    Some(LoadBalancerRef {
                        target_group_arn: lb.target_group_arn()?.to_string(),
                        container_name: lb.container_name().map(str::to_string),
                        container_port: lb.container_port(),
                    })
                })
                .collect(),
            tags: tag_map(s.tags()),
        })
    }

    /// Every task of the service: ListTasks (paginated) then DescribeTasks in
    /// batches of 100, keeping only tasks whose `group` is `service:<service>`
    /// (the emulator ignores ListTasks' service filter; on AWS this is a no-op).
    pub async fn list_service_tasks(
        &self,
        cluster: &str,
        service: &str,
    ) -> Result<Vec<TaskInfo>, AwsError> {
        let mut arns = Vec::new();
        let mut pages = self
            .client
            .list_tasks()
            .cluster(cluster)
            .service_name(service)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| AwsError::from_sdk("ecs:ListTasks", e))?;
            arns.extend(page.task_arns().iter().cloned());
        }
        let group = format!("service:{service}");
        let mut tasks = Vec::with_capacity(arns.len());
        for chunk in arns.chunks(DESCRIBE_BATCH) {
            let out = self
                .client
                .describe_tasks()
                .cluster(cluster)
                .set_tasks(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("ecs:DescribeTasks", e))?;
            tasks.extend(
                out.tasks()
                    .iter()
                    .filter(|t| t.group() == Some(group.as_str()))
                    .map(task_info),
            );
        }
        Ok(tasks)
    }

    /// Sets the service's desired count (UpdateService).
    pub async fn update_desired(
        &self,
        cluster: &str,
        service: &str,
        desired: i32,
    ) -> Result<(), AwsError> {
        self.client
            .update_service()
            .cluster(cluster)
            .service(service)
            .desired_count(desired)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ecs:UpdateService", e))?;
        Ok(())
    }

    /// Adds or overwrites tags on a resource (the service ARN); one call, so
    /// the tags land together.
    pub async fn tag(&self, arn: &str, tags: &[(String, String)]) -> Result<(), AwsError> {
        if tags.is_empty() {
            return Ok(());
        }
        let tags = tags
            .iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect();
        self.client
            .tag_resource()
            .resource_arn(arn)
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ecs:TagResource", e))?;
        Ok(())
    }

    /// Removes tags from a resource.
    pub async fn untag(&self, arn: &str, keys: &[String]) -> Result<(), AwsError> {
        if keys.is_empty() {
            return Ok(());
        }
        self.client
            .untag_resource()
            .resource_arn(arn)
            .set_tag_keys(Some(keys.to_vec()))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ecs:UntagResource", e))?;
        Ok(())
    }

    /// A resource's tags (ListTagsForResource), for re-reading state mid-episode.
    pub async fn tags(&self, arn: &str) -> Result<BTreeMap<String, String>, AwsError> {
        let out = self
            .client
            .list_tags_for_resource()
            .resource_arn(arn)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ecs:ListTagsForResource", e))?;
        Ok(tag_map(out.tags()))
    }

    /// CPU units and MiB one task of this task definition needs: the task-level
    /// `cpu`/`memory` when set (always on Fargate), else the containers' sums.
    pub async fn task_resources(&self, task_definition: &str) -> Result<TaskResources, AwsError> {
        let out = self
            .client
            .describe_task_definition()
            .task_definition(task_definition)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ecs:DescribeTaskDefinition", e))?;
        let Some(td) = out.task_definition() else {
            return Ok(TaskResources::default());
        };
        let containers = td.container_definitions();
        let cpu = td
            .cpu()
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| containers.iter().map(|c| i64::from(c.cpu())).sum());
        let memory = td.memory().and_then(|m| m.parse().ok()).unwrap_or_else(|| {
            containers
                .iter()
                .map(|c| i64::from(c.memory().or(c.memory_reservation()).unwrap_or(0)))
                .sum()
        });
        Ok(TaskResources { cpu, memory })
    }

    /// Free CPU and memory over the cluster's ACTIVE container instances
    /// (`remainingResources`), and what one instance brings (`registeredResources`).
    pub async fn cluster_capacity(&self, cluster: &str) -> Result<ClusterCapacity, AwsError> {
        let mut cap = ClusterCapacity::default();
        let active = Some(ContainerInstanceStatus::Active);
        for ci in self
            .describe_container_instances(cluster, active, None)
            .await?
        {
            cap.instances += 1;
            let free = resources(ci.remaining_resources());
            let reg = resources(ci.registered_resources());
            cap.free.cpu += free.cpu;
            cap.free.memory += free.memory;
            cap.per_instance.cpu = cap.per_instance.cpu.max(reg.cpu);
            cap.per_instance.memory = cap.per_instance.memory.max(reg.memory);
            cap.tasks += ci.running_tasks_count() + ci.pending_tasks_count();
        }
        Ok(cap)
    }
}

fn resources(list: &[aws_sdk_ecs::types::Resource]) -> TaskResources {
    let get = |name: &str| {
        list.iter()
            .find(|r| r.name() == Some(name))
            .map(|r| i64::from(r.integer_value()))
            .unwrap_or(0)
    };
    TaskResources {
        cpu: get("CPU"),
        memory: get("MEMORY"),
    }
}

fn tag_map(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or("").to_string())))
        .collect()
}

fn to_utc(t: Option<&aws_smithy_types::DateTime>) -> Option<DateTime<Utc>> {
    let t = t?;
    DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}

fn task_info(t: &aws_sdk_ecs::types::Task) -> TaskInfo {
    // awsvpc tasks carry their IP in the ENI attachment; bridge/host tasks in
    // the containers' network interfaces (when any).
    let eni_ip = t
        .attachments()
        .iter()
        .flat_map(|a| a.details())
        .find(|d| d.name() == Some("privateIPv4Address"))
        .and_then(|d| d.value())
        .map(str::to_string);
    let container_ip = t
        .containers()
        .iter()
        .flat_map(|c| c.network_interfaces())
        .find_map(|n| n.private_ipv4_address())
        .map(str::to_string);
    TaskInfo {
        arn: t.task_arn().unwrap_or_default().to_string(),
        group: t.group().map(str::to_string),
        last_status: t.last_status().unwrap_or_default().to_string(),
        desired_status: t.desired_status().unwrap_or_default().to_string(),
        health_status: t.health_status().map(|h| h.as_str().to_string()),
        private_ip: eni_ip.or(container_ip),
        availability_zone: t.availability_zone().map(str::to_string),
        started_at: to_utc(t.started_at()),
        created_at: to_utc(t.created_at()),
        container_instance_arn: t.container_instance_arn().map(str::to_string),
        task_definition_arn: t.task_definition_arn().map(str::to_string),
    }
}
