//! The production [`Port`]: ECS, ELBv2 and task protection through the shared
//! library's adapters, and the tasks' drain control over HTTP.

use crate::admin::AdminClient;
use crate::capacity::{choose_empty, CapacityOutcome};
use crate::port::{
    AlarmView, DeploymentView, DrainStatus, LbBinding, Port, PortError, ProtectOutcome,
    ServiceView, Target, TargetState, TaskView,
};
use scaling::aws::autoscaling::AutoScaling;
use scaling::aws::ecs::{Ecs, ServiceInfo, TaskInfo};
use scaling::aws::elb::Elb;
use scaling::aws::protection::Protection;
use scaling::error::AwsError;
use std::sync::Mutex;
use std::time::Duration;

/// The real world, built once in `main` (or against the emulator in tests).
pub struct AwsPort {
    pub ecs: Ecs,
    pub elb: Elb,
    pub protection: Protection,
    pub admin: AdminClient,
    pub cluster: String,
    pub service: String,
    /// TASK_PORT; when unset, the service's first load balancer container port.
    pub task_port: Option<i32>,
    /// EC2 capacity mode: the group whose empty instances a scale-in gives back.
    pub capacity: Option<Capacity>,
    /// CloudWatch, for the reconcile schedule's DescribeAlarms (SCALE_IN_ALARMS).
    pub cloudwatch: Option<scaling::aws::cloudwatch::CloudWatch>,
    service_arn: Mutex<Option<String>>,
    lb_port: Mutex<Option<i32>>,
}

/// The capacity ASG of EC2 mode, for the capacity scale-in after a task scale-in.
pub struct Capacity {
    pub asg: AutoScaling,
    /// CAPACITY_ASG_NAME.
    pub group: String,
    /// An instance registered more recently than this may be about to get the
    /// tasks it was launched for: never given back.
    pub min_age_s: i64,
}

/// The default [`Capacity::min_age_s`].
pub const MIN_INSTANCE_AGE_S: i64 = 300;

fn port_err(e: AwsError) -> PortError {
    PortError {
        op: e.op.to_string(),
        message: e.to_string(),
        retryable: e.kind.retryable(),
    }
}

impl AwsPort {
    /// Joins the adapters for one service.
    pub fn new(
        ecs: Ecs,
        elb: Elb,
        protection: Protection,
        admin: AdminClient,
        cluster: &str,
        service: &str,
        task_port: Option<i32>,
    ) -> Self {
        Self {
            ecs,
            elb,
            protection,
            admin,
            cluster: cluster.to_string(),
            service: service.to_string(),
            task_port,
            capacity: None,
            cloudwatch: None,
            service_arn: Mutex::new(None),
            lb_port: Mutex::new(None),
        }
    }

    /// EC2 capacity mode: give back instances of `group` left empty by a scale-in.
    pub fn with_capacity(mut self, asg: AutoScaling, group: &str, min_age_s: i64) -> Self {
        self.capacity = Some(Capacity {
            asg,
            group: group.to_string(),
            min_age_s,
        });
        self
    }

    /// The reconcile schedule reads the scale-in alarms, and the headroom check the
    /// scale-out alarms, through `client`.
    pub fn with_alarms(mut self, client: aws_sdk_cloudwatch::Client) -> Self {
        self.cloudwatch = Some(scaling::aws::cloudwatch::CloudWatch::from_client(client));
        self
    }

    fn cloudwatch(&self) -> Result<&scaling::aws::cloudwatch::CloudWatch, PortError> {
        self.cloudwatch.as_ref().ok_or_else(|| {
            PortError::fatal(
                "cloudwatch:DescribeAlarms",
                "no CloudWatch client (AwsPort::with_alarms)",
            )
        })
    }

    async fn service_arn(&self) -> Result<String, PortError> {
        if let Some(arn) = self.service_arn.lock().expect("not poisoned").clone() {
            return Ok(arn);
        }
        Ok(self.describe().await?.arn)
    }

    async fn describe(&self) -> Result<ServiceInfo, PortError> {
        let info = self
            .ecs
            .describe_service(&self.cluster, &self.service)
            .await
            .map_err(port_err)?;
        *self.service_arn.lock().expect("not poisoned") = Some(info.arn.clone());
        *self.lb_port.lock().expect("not poisoned") =
            info.load_balancers.iter().find_map(|lb| lb.container_port);
        Ok(info)
    }

    /// Where the task's admin endpoints listen (None: no address known).
    fn base_url(&self, task: &TaskView) -> Result<String, PortError> {
        let ip = task
            .private_ip
            .as_deref()
            .or(task.host_ip.as_deref())
            .ok_or_else(|| PortError::retryable("/admin/drain", "task has no known IP"))?;
        let port =
            match (self.task_port, task.private_ip.is_some()) {
                (Some(p), true) => p,
                (_, false) => {
                    task.host_ports.first().map(|(_, _, h)| *h).ok_or_else(|| {
                        PortError::retryable("/admin/drain", "no host port binding")
                    })?
                }
                (None, true) => self.lb_port.lock().expect("not poisoned").ok_or_else(|| {
                    PortError::fatal("/admin/drain", "no TASK_PORT and no LB port")
                })?,
            };
        Ok(self.admin.base_url(ip, port))
    }
}

fn task_view(t: TaskInfo) -> TaskView {
    TaskView {
        id: t.id().to_string(),
        arn: t.arn,
        last_status: t.last_status,
        desired_status: t.desired_status,
        private_ip: t.private_ip,
        availability_zone: t.availability_zone,
        started_at: t.started_at.or(t.created_at).map(|d| d.timestamp()),
        ..TaskView::default()
    }
}

impl Port for AwsPort {
    async fn service(&self) -> Result<ServiceView, PortError> {
        let s = self.describe().await?;
        Ok(ServiceView {
            desired: s.desired,
            running: s.running,
            pending: s.pending,
            deployments: s
                .deployments
                .into_iter()
                .map(|d| DeploymentView {
                    status: d.status,
                    rollout_state: d.rollout_state,
                })
                .collect(),
            tags: s.tags,
            load_balancers: s
                .load_balancers
                .into_iter()
                .filter_map(|lb| {
                    Some(LbBinding {
                        target_group_arn: lb.target_group_arn,
                        container_name: lb.container_name.unwrap_or_default(),
                        container_port: lb.container_port?,
                    })
                })
                .collect(),
        })
    }

    async fn tasks(&self) -> Result<Vec<TaskView>, PortError> {
        let tasks = self
            .ecs
            .list_service_tasks(&self.cluster, &self.service)
            .await
            .map_err(port_err)?;
        Ok(tasks
            .into_iter()
            .filter(|t| t.desired_status == "RUNNING")
            .map(task_view)
            .collect())
    }

    async fn task(&self, id: &str) -> Result<Option<TaskView>, PortError> {
        let out = self
            .ecs
            .client()
            .describe_tasks()
            .cluster(&self.cluster)
            .tasks(id)
            .send()
            .await
            .map_err(|e| port_err(AwsError::from_sdk("ecs:DescribeTasks", e)))?;
        let Some(t) = out.tasks().first() else {
            return Ok(None);
        };
        let mut view = TaskView {
            arn: t.task_arn().unwrap_or_default().to_string(),
            id: id.rsplit('/').next().unwrap_or(id).to_string(),
            last_status: t.last_status().unwrap_or_default().to_string(),
            desired_status: t.desired_status().unwrap_or_default().to_string(),
            private_ip: t
                .attachments()
                .iter()
                .flat_map(|a| a.details())
                .find(|d| d.name() == Some("privateIPv4Address"))
                .and_then(|d| d.value())
                .map(str::to_string),
            availability_zone: t.availability_zone().map(str::to_string),
            started_at: t.started_at().map(|d| d.secs()),
            host_ports: t
                .containers()
                .iter()
                .flat_map(|c| {
                    let name = c.name().unwrap_or_default().to_string();
                    c.network_bindings().iter().filter_map(move |b| {
                        Some((name.clone(), b.container_port()?, b.host_port()?))
                    })
                })
                .collect(),
            ..TaskView::default()
        };
        // Bridge mode: the target is the EC2 instance.
        if let (None, Some(ci)) = (&view.private_ip, t.container_instance_arn()) {
            let out = self
                .ecs
                .client()
                .describe_container_instances()
                .cluster(&self.cluster)
                .container_instances(ci)
                .send()
                .await
                .map_err(|e| port_err(AwsError::from_sdk("ecs:DescribeContainerInstances", e)))?;
            view.ec2_instance_id = out
                .container_instances()
                .first()
                .and_then(|c| c.ec2_instance_id())
                .map(str::to_string);
        }
        Ok(Some(view))
    }

    async fn put_tags(&self, tags: &[(String, String)]) -> Result<(), PortError> {
        let arn = self.service_arn().await?;
        self.ecs.tag(&arn, tags).await.map_err(port_err)
    }

    async fn remove_tags(&self, keys: &[String]) -> Result<(), PortError> {
        let arn = self.service_arn().await?;
        self.ecs.untag(&arn, keys).await.map_err(port_err)
    }

    async fn set_protection(
        &self,
        task_arns: &[String],
        enabled: bool,
    ) -> Result<ProtectOutcome, PortError> {
        self.protection
            .set(task_arns, enabled)
            .await
            .map_err(port_err)
    }

    async fn deregister(&self, t: &Target) -> Result<(), PortError> {
        self.elb
            .deregister(&t.target_group_arn, &t.id, t.port)
            .await
            .map_err(port_err)
    }

    async fn register(&self, t: &Target) -> Result<(), PortError> {
        self.elb
            .register(&t.target_group_arn, &t.id, t.port)
            .await
            .map_err(port_err)
    }

    async fn target_state(&self, t: &Target) -> Result<TargetState, PortError> {
        self.elb
            .target_state(&t.target_group_arn, &t.id, t.port)
            .await
            .map_err(port_err)
    }

    async fn deregistration_delay(&self, tg: &str) -> Result<Duration, PortError> {
        self.elb.deregistration_delay(tg).await.map_err(port_err)
    }

    async fn drain(&self, task: &TaskView, ttl: Duration) -> Result<DrainStatus, PortError> {
        self.admin.drain(&self.base_url(task)?, ttl).await
    }

    async fn drain_status(&self, task: &TaskView) -> Result<DrainStatus, PortError> {
        self.admin.drain_status(&self.base_url(task)?).await
    }

    async fn undrain(&self, task: &TaskView) -> Result<(), PortError> {
        self.admin.undrain(&self.base_url(task)?).await
    }

    async fn set_desired(&self, desired: i32) -> Result<(), PortError> {
        self.ecs
            .update_desired(&self.cluster, &self.service, desired)
            .await
            .map_err(port_err)
    }

    async fn alarms(&self, names: &[String]) -> Result<Vec<AlarmView>, PortError> {
        crate::alarms::describe(self.cloudwatch()?, names, false)
            .await
            .map_err(port_err)
    }

    async fn scale_out_alarms(&self, names: &[String]) -> Result<Vec<AlarmView>, PortError> {
        crate::alarms::describe(self.cloudwatch()?, names, true)
            .await
            .map_err(port_err)
    }

    async fn terminate_empty_instance(&self) -> Result<CapacityOutcome, PortError> {
        let Some(c) = &self.capacity else {
            return Ok(CapacityOutcome::NotEc2);
        };
        let asg = c.asg.describe(&c.group).await.map_err(port_err)?;
        let in_service = c
            .asg
            .in_service_instances(&c.group)
            .await
            .map_err(port_err)?;
        let active = Some(aws_sdk_ecs::types::ContainerInstanceStatus::Active);
        let instances = self
            .ecs
            .container_instances(&self.cluster, active, None)
            .await
            .map_err(port_err)?;
        let now = self.now_unix();
        match choose_empty(&asg, &in_service, &instances, now, c.min_age_s) {
            Err(why) => Ok(CapacityOutcome::Kept(why)),
            Ok(id) => {
                // Narrow the window in which ECS could place a task on it.
                let now = self
                    .ecs
                    .container_instance_on(&self.cluster, &id)
                    .await
                    .map_err(port_err)?;
                if !now.is_some_and(|ci| ci.status == "ACTIVE" && ci.is_empty()) {
                    return Ok(CapacityOutcome::Kept(format!(
                        "{id} got a task (or left ACTIVE) meanwhile"
                    )));
                }
                c.asg.terminate_instance(&id).await.map_err(port_err)?;
                Ok(CapacityOutcome::Terminated(id))
            }
        }
    }
}
