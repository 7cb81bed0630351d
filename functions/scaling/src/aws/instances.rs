//! ECS container instances (EC2 capacity mode): find the one on an EC2
//! instance, set it DRAINING, count and name the tasks still on it, and find
//! the empty ones a capacity scale-in may terminate.

use crate::aws::ecs::Ecs;
use crate::error::AwsError;
use aws_sdk_ecs::types::{ContainerInstance, ContainerInstanceStatus, DesiredStatus};

/// DescribeContainerInstances / DescribeTasks take at most 100 ARNs a call.
const BATCH: usize = 100;

/// One container instance as drain-instance and capacity scale-in need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInstanceInfo {
    pub arn: String,
    pub ec2_instance_id: String,
    /// `ACTIVE`, `DRAINING`, `REGISTERING`, `DEREGISTERING`, `INACTIVE`...
    pub status: String,
    pub running: i32,
    pub pending: i32,
    /// Unix seconds the instance registered: a fresh one may be about to get tasks.
    pub registered_at: Option<i64>,
}

impl ContainerInstanceInfo {
    /// True when no task runs or waits to run on the instance.
    pub fn is_empty(&self) -> bool {
        self.running + self.pending == 0
    }
}

impl Ecs {
    /// The container instances of `cluster`, optionally only those in `status`
    /// and matching the cluster query `filter`.
    pub async fn container_instances(
        &self,
        cluster: &str,
        status: Option<ContainerInstanceStatus>,
        filter: Option<&str>,
    ) -> Result<Vec<ContainerInstanceInfo>, AwsError> {
        // Boxed: one more inline async layer pushes drain-instance's main
        // future past rustc's query depth limit.
        Ok(
            Box::pin(self.describe_container_instances(cluster, status, filter))
                .await?
                .iter()
                .map(|ci| ContainerInstanceInfo {
                    arn: ci.container_instance_arn().unwrap_or_default().to_string(),
                    ec2_instance_id: ci.ec2_instance_id().unwrap_or_default().to_string(),
                    status: ci.status().unwrap_or_default().to_string(),
                    running: ci.running_tasks_count(),
                    pending: ci.pending_tasks_count(),
                    registered_at: ci.registered_at().map(|t| t.secs()),
                })
                .collect(),
        )
    }

    /// The raw container instances of `cluster` (ListContainerInstances,
    /// paginated, then DescribeContainerInstances by 100): the one listing
    /// behind [`Ecs::container_instances`] and [`Ecs::cluster_capacity`].
    pub(crate) async fn describe_container_instances(
        &self,
        cluster: &str,
        status: Option<ContainerInstanceStatus>,
        filter: Option<&str>,
    ) -> Result<Vec<ContainerInstance>, AwsError> {
        let mut arns = Vec::new();
        let mut pages = self
            .client()
            .list_container_instances()
            .cluster(cluster)
            .set_status(status)
            .set_filter(filter.map(str::to_string))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| AwsError::from_sdk("ecs:ListContainerInstances", e))?;
            arns.extend(page.container_instance_arns().iter().cloned());
        }
        let mut all = Vec::with_capacity(arns.len());
        for chunk in arns.chunks(BATCH) {
            let out = self
                .client()
                .describe_container_instances()
                .cluster(cluster)
                .set_container_instances(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("ecs:DescribeContainerInstances", e))?;
            all.extend(out.container_instances().iter().cloned());
        }
        Ok(all)
    }

    /// The container instance on EC2 instance `ec2_id`, if it is in the
    /// cluster. The query filter narrows the listing on AWS; the id is checked
    /// again here because the emulator ignores the filter.
    pub async fn container_instance_on(
        &self,
        cluster: &str,
        ec2_id: &str,
    ) -> Result<Option<ContainerInstanceInfo>, AwsError> {
        let filter = format!("ec2InstanceId == {ec2_id}");
        Ok(self
            .container_instances(cluster, None, Some(&filter))
            .await?
            .into_iter()
            .find(|ci| ci.ec2_instance_id == ec2_id))
    }

    /// UpdateContainerInstancesState to DRAINING: ECS moves the service tasks
    /// elsewhere (respecting minimumHealthyPercent) and places no new ones.
    /// Idempotent: an instance already DRAINING stays so.
    pub async fn set_draining(&self, cluster: &str, arn: &str) -> Result<(), AwsError> {
        const OP: &str = "ecs:UpdateContainerInstancesState";
        let out = self
            .client()
            .update_container_instances_state()
            .cluster(cluster)
            .container_instances(arn)
            .status(ContainerInstanceStatus::Draining)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(OP, e))?;
        if let Some(f) = out.failures().first() {
            return Err(AwsError {
                op: OP,
                kind: crate::error::AwsErrorKind::NotFound,
                code: f.reason().map(str::to_string),
                message: format!("{arn}: {}", f.detail().or(f.reason()).unwrap_or("refused")),
            });
        }
        Ok(())
    }

    /// The ids of the tasks ECS still runs (desired RUNNING) on one container instance.
    pub async fn task_ids_on(
        &self,
        cluster: &str,
        container_instance_arn: &str,
    ) -> Result<Vec<String>, AwsError> {
        let mut ids = Vec::new();
        let mut pages = self
            .client()
            .list_tasks()
            .cluster(cluster)
            .container_instance(container_instance_arn)
            .desired_status(DesiredStatus::Running)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| AwsError::from_sdk("ecs:ListTasks", e))?;
            ids.extend(
                page.task_arns()
                    .iter()
                    .map(|a| a.rsplit('/').next().unwrap_or(a).to_string()),
            );
        }
        Ok(ids)
    }
}
