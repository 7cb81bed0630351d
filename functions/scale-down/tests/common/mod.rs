//! An in-memory ECS service + target group + tasks behind the [`Port`] trait,
//! with fault injection, crashes and a concurrent scale-up, for the episode
//! tests and the interleaving proptest. It plays ECS's part faithfully where the
//! rules of docs/invariants.md depend on it: lowering desired stops an unprotected task only, the
//! way ECS does (deregister its target, let the load balancer drain it, then stop
//! it), raising desired starts tasks, and with `ecs_reregisters` a running
//! task's target that someone else deregistered is registered again.
#![allow(dead_code)]

use scale_down::port::*;
use scale_down::Settings;
use scaling::episode::{self, EpisodeState};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

pub const TG: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/visits/abc";

#[derive(Debug, Clone)]
pub struct FakeTask {
    pub id: String,
    pub running: bool,
    /// ECS is stopping it (desired STOPPED): deregistered, draining, then STOPPED.
    pub stopping: bool,
    pub protected: bool,
    pub draining: bool,
    pub in_flight: u64,
    pub reachable: bool,
    pub started: i64,
    pub az: String,
}

#[derive(Debug, Default)]
pub struct State {
    pub min: i32,
    pub max: i32,
    pub desired: i32,
    pub tasks: Vec<FakeTask>,
    /// Task ids whose target is registered (the target id is the task's IP).
    pub registered: BTreeSet<String>,
    /// Deregistered but not yet drained targets.
    pub deregistering: BTreeSet<String>,
    pub tags: BTreeMap<String, String>,
    pub calls: usize,
    /// The call with this index fails (once).
    pub fail_at: Option<usize>,
    /// Every call from this index on fails: the invocation "crashed".
    pub crash_at: Option<usize>,
    /// A scale-up runs right before the call with this index.
    pub scale_up_at: Option<usize>,
    /// Probability (per mille) that any call fails, with a seeded generator.
    pub fail_per_mille: u32,
    pub rng: u64,
    pub deployment_blocked: bool,
    pub next_id: u32,
    pub violations: Vec<String>,
    pub log: Vec<String>,
    /// What DescribeAlarms answers (the reconcile schedule's SCALE_IN_ALARMS).
    pub alarms: Vec<scale_down::port::AlarmView>,
    /// ECS registers again a running service task's target that someone else
    /// deregistered (reported by users: aws/containers-roadmap#251).
    pub ecs_reregisters: bool,
    /// Targets ECS registered again, for the tests to see it happened.
    pub reregistered: usize,
}

pub struct World {
    pub state: Mutex<State>,
    epoch: tokio::time::Instant,
}

fn ip(id: &str) -> String {
    format!("10.0.0.{}", id.trim_start_matches('t'))
}

impl World {
    /// `n` running, registered tasks; desired = n.
    pub fn new(n: usize, min: i32, max: i32) -> Self {
        let mut s = State {
            min,
            max,
            rng: 0x9e37_79b9_7f4a_7c15,
            ..State::default()
        };
        for _ in 0..n {
            s.start_task(0);
        }
        s.desired = n as i32;
        World {
            state: Mutex::new(s),
            epoch: tokio::time::Instant::now(),
        }
    }

    pub fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().unwrap())
    }

    fn now(&self) -> i64 {
        1_763_900_000 + self.epoch.elapsed().as_secs() as i64
    }

    /// Counts the call, runs a scheduled scale-up, then decides whether it fails.
    fn gate(&self, op: &str) -> Result<(), PortError> {
        let mut s = self.state.lock().unwrap();
        let n = s.calls;
        s.calls += 1;
        s.log.push(format!("{n}:{op}"));
        if s.scale_up_at == Some(n) {
            s.scale_up();
        }
        if s.crash_at.is_some_and(|c| n >= c) || s.fail_at == Some(n) || s.random_failure() {
            return Err(PortError::retryable(op, "injected fault"));
        }
        Ok(())
    }

    pub fn calls(&self) -> usize {
        self.with(|s| s.calls)
    }

    /// "Nothing half-done" and "within bounds" (docs/invariants.md), once every
    /// episode has ended.
    pub fn check_settled(&self) -> Result<(), String> {
        self.with(|s| {
            let mut errs = s.violations.clone();
            if s.tags.contains_key(episode::EPISODE) {
                errs.push(format!("marker left: {}", s.tags[episode::EPISODE]));
            }
            for t in s.tasks.iter().filter(|t| t.running && !t.stopping) {
                if t.protected {
                    errs.push(format!("protection left on {}", t.id));
                }
                if !s.registered.contains(&t.id) {
                    errs.push(format!("{} runs but is not registered", t.id));
                }
                if t.draining {
                    errs.push(format!("{} runs in drain mode", t.id));
                }
            }
            if s.kept() as i32 != s.desired {
                errs.push(format!("running {} != desired {}", s.kept(), s.desired));
            }
            if s.desired < s.min || s.desired > s.max {
                errs.push(format!(
                    "desired {} outside [{}, {}]",
                    s.desired, s.min, s.max
                ));
            }
            if errs.is_empty() {
                Ok(())
            } else {
                Err(errs.join("; "))
            }
        })
    }
}

impl State {
    fn random_failure(&mut self) -> bool {
        if self.fail_per_mille == 0 {
            return false;
        }
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng % 1000) < u64::from(self.fail_per_mille)
    }

    pub fn running(&self) -> usize {
        self.tasks.iter().filter(|t| t.running).count()
    }

    fn start_task(&mut self, now: i64) {
        self.next_id += 1;
        let id = format!("t{}", self.next_id);
        self.registered.insert(id.clone());
        self.tasks.push(FakeTask {
            id,
            running: true,
            stopping: false,
            protected: false,
            draining: false,
            in_flight: 0,
            reachable: true,
            started: now + i64::from(self.next_id),
            az: if self.next_id.is_multiple_of(2) {
                "us-east-1a".into()
            } else {
                "us-east-1b".into()
            },
        });
    }

    /// Tasks ECS keeps (desired status RUNNING).
    pub fn kept(&self) -> usize {
        self.tasks
            .iter()
            .filter(|t| t.running && !t.stopping)
            .count()
    }

    /// ECS's service scheduler: converge the kept tasks on desired, never
    /// choosing a protected task; a task it stops is deregistered first and
    /// stops once drained (see `advance`).
    fn reconcile(&mut self) {
        while (self.kept() as i32) < self.desired {
            self.start_task(0);
        }
        while (self.kept() as i32) > self.desired {
            let Some(t) = self
                .tasks
                .iter_mut()
                .find(|t| t.running && !t.stopping && !t.protected)
            else {
                break;
            };
            t.stopping = true;
            let id = t.id.clone();
            if self.registered.remove(&id) {
                self.deregistering.insert(id);
            }
        }
        if self.ecs_reregisters {
            let lost: Vec<String> = self
                .tasks
                .iter()
                .filter(|t| t.running && !t.stopping && !self.registered.contains(&t.id))
                .map(|t| t.id.clone())
                .collect();
            for id in lost {
                self.deregistering.remove(&id);
                self.registered.insert(id);
                self.reregistered += 1;
            }
        }
    }

    /// Time passing for stopping tasks, one step per DescribeTasks (the wait's
    /// poll): requests finish one at a time; a task
    /// with none left has no connection either (drain mode), so the load
    /// balancer completes its deregistration and ECS stops it.
    fn advance(&mut self) {
        for t in self.tasks.iter_mut().filter(|t| t.running && t.stopping) {
            if t.in_flight > 0 {
                t.in_flight -= 1;
                continue;
            }
            if self.registered.contains(&t.id) {
                self.violations
                    .push(format!("ECS stopped {} while still registered", t.id));
            }
            t.running = false;
            t.stopping = false;
            t.protected = false;
            t.draining = false;
            self.deregistering.remove(&t.id);
        }
    }

    /// The scale-up function's part in the interleavings: cancel a cancellable
    /// scale-in episode (keeping the task), otherwise add one task up to max.
    pub fn scale_up(&mut self) {
        // As scale-up does: raise desired, then ask a cancellable episode to stop.
        let state = EpisodeState::from_tags(&self.tags);
        if state.scale_in_active() && state.cancellable_episode().is_none() {
            return; // desired is being lowered right now: scale-up skips.
        }
        if self.desired < self.max {
            self.desired += 1;
            self.reconcile();
        }
        if let Some(ep) = state.cancellable_episode() {
            self.tags.insert(episode::CANCEL.into(), ep.id.clone());
        }
    }

    fn view(&self, t: &FakeTask) -> TaskView {
        TaskView {
            arn: format!("arn:aws:ecs:us-east-1:123456789012:task/visits/{}", t.id),
            id: t.id.clone(),
            last_status: if t.running { "RUNNING" } else { "STOPPED" }.into(),
            desired_status: if t.running && !t.stopping {
                "RUNNING"
            } else {
                "STOPPED"
            }
            .into(),
            private_ip: Some(ip(&t.id)),
            availability_zone: Some(t.az.clone()),
            started_at: Some(t.started),
            ..TaskView::default()
        }
    }

    fn task_by_ip(&mut self, ip_: &str) -> Option<&mut FakeTask> {
        self.tasks.iter_mut().find(|t| ip(&t.id) == ip_)
    }
}

fn id_of(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

impl Port for World {
    async fn service(&self) -> Result<ServiceView, PortError> {
        self.gate("DescribeServices")?;
        Ok(self.with(|s| {
            s.reconcile();
            ServiceView {
                desired: s.desired,
                running: s.kept() as i32,
                pending: 0,
                deployments: vec![DeploymentView {
                    status: "PRIMARY".into(),
                    rollout_state: Some("COMPLETED".into()),
                }],
                tags: s.tags.clone(),
                load_balancers: vec![LbBinding {
                    target_group_arn: TG.into(),
                    container_name: "api".into(),
                    container_port: 8080,
                }],
            }
        }))
    }

    async fn tasks(&self) -> Result<Vec<TaskView>, PortError> {
        self.gate("ListTasks")?;
        Ok(self.with(|s| {
            s.reconcile();
            s.tasks
                .iter()
                .filter(|t| t.running && !t.stopping)
                .map(|t| s.view(t))
                .collect()
        }))
    }

    async fn task(&self, id: &str) -> Result<Option<TaskView>, PortError> {
        self.gate("DescribeTasks")?;
        Ok(self.with(|s| {
            s.reconcile();
            s.advance();
            s.tasks.iter().find(|t| t.id == id).map(|t| s.view(t))
        }))
    }

    async fn put_tags(&self, tags: &[(String, String)]) -> Result<(), PortError> {
        self.gate("TagResource")?;
        self.with(|s| s.tags.extend(tags.iter().cloned()));
        Ok(())
    }

    async fn remove_tags(&self, keys: &[String]) -> Result<(), PortError> {
        self.gate("UntagResource")?;
        self.with(|s| {
            keys.iter().for_each(|k| {
                s.tags.remove(k);
            })
        });
        Ok(())
    }

    async fn set_protection(
        &self,
        arns: &[String],
        enabled: bool,
    ) -> Result<ProtectOutcome, PortError> {
        self.gate("UpdateTaskProtection")?;
        Ok(self.with(|s| {
            let mut out = ProtectOutcome::default();
            for arn in arns {
                if enabled && s.deployment_blocked {
                    out.deployment_blocked.push(arn.clone());
                    continue;
                }
                if let Some(t) = s.tasks.iter_mut().find(|t| t.id == id_of(arn) && t.running) {
                    t.protected = enabled;
                }
            }
            out
        }))
    }

    async fn deregister(&self, t: &Target) -> Result<(), PortError> {
        self.gate("DeregisterTargets")?;
        self.with(|s| {
            if let Some(id) = s.task_by_ip(&t.id).map(|t| t.id.clone()) {
                if s.registered.remove(&id) {
                    s.deregistering.insert(id);
                }
            }
        });
        Ok(())
    }

    async fn register(&self, t: &Target) -> Result<(), PortError> {
        self.gate("RegisterTargets")?;
        self.with(|s| {
            if let Some((id, running)) = s.task_by_ip(&t.id).map(|t| (t.id.clone(), t.running)) {
                if !running {
                    s.violations.push(format!("registered stopped task {id}"));
                }
                s.deregistering.remove(&id);
                s.registered.insert(id);
            }
        });
        Ok(())
    }

    async fn target_state(&self, t: &Target) -> Result<TargetState, PortError> {
        self.gate("DescribeTargetHealth")?;
        Ok(self.with(|s| {
            let Some(task) = s.task_by_ip(&t.id).cloned() else {
                return TargetState::Absent;
            };
            if s.registered.contains(&task.id) {
                TargetState::Registered
            } else if s.deregistering.contains(&task.id) && task.in_flight > 0 && task.running {
                TargetState::Draining
            } else {
                TargetState::Absent
            }
        }))
    }

    async fn deregistration_delay(&self, _tg: &str) -> Result<Duration, PortError> {
        self.gate("DescribeTargetGroupAttributes")?;
        Ok(Duration::from_secs(30))
    }

    async fn drain(&self, task: &TaskView, _ttl: Duration) -> Result<DrainStatus, PortError> {
        self.gate("POST /admin/drain")?;
        self.with(|s| {
            let t = s
                .tasks
                .iter_mut()
                .find(|t| t.id == task.id)
                .filter(|t| t.reachable && t.running);
            let t = t.ok_or_else(|| PortError::retryable("POST /admin/drain", "unreachable"))?;
            t.draining = true;
            Ok(DrainStatus {
                draining: true,
                in_flight: t.in_flight,
            })
        })
    }

    async fn drain_status(&self, task: &TaskView) -> Result<DrainStatus, PortError> {
        self.gate("GET /admin/drain")?;
        self.with(|s| {
            let t = s
                .tasks
                .iter_mut()
                .find(|t| t.id == task.id)
                .filter(|t| t.reachable && t.running);
            let t = t.ok_or_else(|| PortError::retryable("GET /admin/drain", "unreachable"))?;
            let status = DrainStatus {
                draining: t.draining,
                in_flight: t.in_flight,
            };
            // Requests finish over time while the task drains (once ECS stops it,
            // time passes in `advance`).
            if t.draining && t.in_flight > 0 && !t.stopping {
                t.in_flight -= 1;
            }
            Ok(status)
        })
    }

    async fn undrain(&self, task: &TaskView) -> Result<(), PortError> {
        self.gate("POST /admin/undrain")?;
        self.with(|s| {
            if let Some(t) = s.tasks.iter_mut().find(|t| t.id == task.id) {
                t.draining = false;
            }
        });
        Ok(())
    }

    async fn set_desired(&self, desired: i32) -> Result<(), PortError> {
        self.gate("UpdateService")?;
        self.with(|s| {
            if desired < s.min || desired > s.max {
                s.violations.push(format!(
                    "desired set to {desired}, outside [{}, {}]",
                    s.min, s.max
                ));
            }
            s.desired = desired;
            s.reconcile();
        });
        Ok(())
    }

    async fn alarms(
        &self,
        names: &[String],
    ) -> Result<Vec<scale_down::port::AlarmView>, PortError> {
        self.gate("DescribeAlarms")?;
        Ok(self.with(|s| {
            s.alarms
                .iter()
                .filter(|a| names.contains(&a.name))
                .cloned()
                .collect()
        }))
    }

    fn now_unix(&self) -> i64 {
        self.now()
    }
}

/// The low alarm's direct alarm action; `n` makes the state timestamp unique.
pub fn alarm(state: &str, n: u32) -> Value {
    json!({
        "source": "aws.cloudwatch",
        "alarmArn": "arn:aws:cloudwatch:us-east-1:123456789012:alarm:visits-api-cpu-low",
        "accountId": "123456789012",
        "time": "2026-11-23T15:00:00.000+0000",
        "region": "us-east-1",
        "alarmData": {
            "alarmName": "visits-api-cpu-low",
            "state": {"value": state, "reason": "test", "timestamp": format!("2026-11-23T15:{:02}:{:02}.000+0000", (n / 60) % 60, n % 60)},
            "previousState": {"value": "OK", "reason": "test", "timestamp": "2026-11-23T14:00:00.000+0000"},
            "configuration": {"metrics": [{"id": "m1", "metricStat": {"metric": {
                "namespace": "AWS/ECS", "name": "CPUUtilization",
                "dimensions": {"ClusterName": "visits", "ServiceName": "visits-api"}},
                "period": 60, "stat": "Average"}, "returnData": true}]}
        }
    })
}

/// The reconcile schedule's event.
pub fn schedule() -> Value {
    json!({
        "version": "0", "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
        "detail-type": "Scheduled Event", "source": "aws.events",
        "account": "123456789012", "time": "2026-11-23T15:02:00Z", "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/visits-api-scale-down-reconcile"],
        "detail": {}
    })
}

/// Settings for the fake world: no cooldown, quick polls.
pub fn settings(min: i32, max: i32) -> Settings {
    let mut s = Settings::new("visits", "visits-api", min, max);
    s.scale_in_cooldown = Duration::ZERO;
    s.poll_interval = Duration::from_millis(200);
    s
}

/// A generous Lambda deadline from now.
pub fn deadline() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(600)
}

/// The production port with only CloudWatch real (`cw`); ECS and the ELB answer nothing.
pub fn aws_port(cw: aws_sdk_cloudwatch::Client) -> scale_down::aws_port::AwsPort {
    use aws_smithy_mocks::mock_client;
    use scale_down::admin::AdminClient;
    use scaling::aws::{ecs::Ecs, elb::Elb, protection::Protection};
    let ecs = mock_client!(aws_sdk_ecs, []);
    scale_down::aws_port::AwsPort::new(
        Ecs::from_client(ecs.clone()),
        Elb::from_client(mock_client!(aws_sdk_elasticloadbalancingv2, [])),
        Protection::new(ecs, "visits", 15),
        AdminClient::new(None, None, Duration::from_millis(100)),
        "visits",
        "visits-api",
        None,
    )
    .with_alarms(cw)
}
