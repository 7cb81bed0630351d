//! The simulated world behind scale-down's `Port` trait, so that the real step
//! machine (`scale_down::machine`) decides every scale-in of the simulation.
//!
//! The world answers at once: a deregistered target is gone, a drained task has
//! nothing in flight, the victim is STOPPED as soon as desired is lowered. The
//! drain and stop take time in [`crate::service`] instead (the victim leaves the
//! target group when the episode runs and is billed through `DRAIN_S` +
//! `STOP_S`). So one invocation runs an episode from start to end; a scale-out
//! during a drain (the cancel path) is not modelled.

use crate::metrics::EPOCH_MS;
use crate::service::Service;
use alarm_model::eval::{Rule, State};
use scale_down::port::*;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const TG: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/visits-api/0";

/// A scale-in alarm as DescribeAlarms would show it: name, state, since (second), rule.
pub type AlarmNow = (String, State, i64, Rule);

struct World {
    desired: i32,
    /// (task id, serving, ready second)
    tasks: Vec<(u32, bool, i64)>,
    tags: BTreeMap<String, String>,
    deregistered: BTreeSet<String>,
    protected: BTreeSet<String>,
    victim: Option<u32>,
}

/// One invocation's view of the simulated service.
pub struct SimPort {
    now: i64,
    alarms: Vec<AlarmNow>,
    w: RefCell<World>,
}

fn task_id(id: u32) -> String {
    format!("sim{id:08}")
}

fn arn(id: &str) -> String {
    format!("arn:aws:ecs:us-east-1:123456789012:task/visits/{id}")
}

fn ip(id: u32) -> String {
    format!("10.0.{}.{}", id / 250, id % 250 + 1)
}

impl SimPort {
    /// The service at second `now`, with the episode tags and the alarms.
    pub fn new(
        svc: &Service,
        now: i64,
        tags: BTreeMap<String, String>,
        alarms: Vec<AlarmNow>,
    ) -> Self {
        let tasks = svc
            .tasks
            .iter()
            .filter(|k| k.live())
            .map(|k| (k.id, k.serving(now), k.ready))
            .collect();
        SimPort {
            now,
            alarms,
            w: RefCell::new(World {
                desired: svc.desired,
                tasks,
                tags,
                deregistered: BTreeSet::new(),
                protected: BTreeSet::new(),
                victim: None,
            }),
        }
    }

    /// The episode tags after the invocation, and the task it stopped.
    pub fn finish(self) -> (BTreeMap<String, String>, Option<u32>) {
        let w = self.w.into_inner();
        (w.tags, w.victim)
    }

    fn unix(&self, t: i64) -> i64 {
        EPOCH_MS / 1000 + t
    }

    fn view(&self, id: u32, serving: bool, ready: i64) -> TaskView {
        let w = self.w.borrow();
        let stopped = w.victim == Some(id);
        let status = if stopped {
            "STOPPED"
        } else if serving {
            "RUNNING"
        } else {
            "PROVISIONING"
        };
        let name = task_id(id);
        TaskView {
            arn: arn(&name),
            id: name,
            last_status: status.into(),
            desired_status: if stopped { "STOPPED" } else { "RUNNING" }.into(),
            private_ip: Some(ip(id)),
            availability_zone: Some(["us-east-1a", "us-east-1b"][id as usize % 2].into()),
            started_at: Some(self.unix(ready)),
            ..TaskView::default()
        }
    }
}

impl Port for SimPort {
    async fn service(&self) -> Result<ServiceView, PortError> {
        let w = self.w.borrow();
        let live: Vec<_> = w.tasks.iter().filter(|t| w.victim != Some(t.0)).collect();
        Ok(ServiceView {
            desired: w.desired,
            running: live.iter().filter(|t| t.1).count() as i32,
            pending: live.iter().filter(|t| !t.1).count() as i32,
            deployments: vec![DeploymentView {
                status: "PRIMARY".into(),
                rollout_state: Some("COMPLETED".into()),
            }],
            tags: w.tags.clone(),
            load_balancers: vec![LbBinding {
                target_group_arn: TG.into(),
                container_name: "api".into(),
                container_port: 8080,
            }],
        })
    }

    async fn tasks(&self) -> Result<Vec<TaskView>, PortError> {
        let tasks = self.w.borrow().tasks.clone();
        let victim = self.w.borrow().victim;
        Ok(tasks
            .into_iter()
            .filter(|t| victim != Some(t.0))
            .map(|(id, serving, ready)| self.view(id, serving, ready))
            .collect())
    }

    async fn task(&self, id: &str) -> Result<Option<TaskView>, PortError> {
        let tasks = self.w.borrow().tasks.clone();
        Ok(tasks
            .into_iter()
            .find(|t| task_id(t.0) == id)
            .map(|(id, serving, ready)| self.view(id, serving, ready)))
    }

    async fn put_tags(&self, tags: &[(String, String)]) -> Result<(), PortError> {
        self.w.borrow_mut().tags.extend(tags.iter().cloned());
        Ok(())
    }

    async fn remove_tags(&self, keys: &[String]) -> Result<(), PortError> {
        let mut w = self.w.borrow_mut();
        for k in keys {
            w.tags.remove(k);
        }
        Ok(())
    }

    async fn set_protection(
        &self,
        task_arns: &[String],
        enabled: bool,
    ) -> Result<ProtectOutcome, PortError> {
        let mut w = self.w.borrow_mut();
        for a in task_arns {
            if enabled {
                w.protected.insert(a.clone());
            } else {
                w.protected.remove(a);
            }
        }
        Ok(ProtectOutcome::default())
    }

    async fn deregister(&self, target: &Target) -> Result<(), PortError> {
        self.w.borrow_mut().deregistered.insert(target.id.clone());
        Ok(())
    }

    async fn register(&self, target: &Target) -> Result<(), PortError> {
        self.w.borrow_mut().deregistered.remove(&target.id);
        Ok(())
    }

    async fn target_state(&self, target: &Target) -> Result<TargetState, PortError> {
        Ok(if self.w.borrow().deregistered.contains(&target.id) {
            TargetState::Absent
        } else {
            TargetState::Registered
        })
    }

    async fn deregistration_delay(&self, _tg: &str) -> Result<Duration, PortError> {
        Ok(Duration::from_secs(30))
    }

    async fn drain(&self, _task: &TaskView, _ttl: Duration) -> Result<DrainStatus, PortError> {
        Ok(DrainStatus {
            draining: true,
            in_flight: 0,
        })
    }

    async fn drain_status(&self, _task: &TaskView) -> Result<DrainStatus, PortError> {
        Ok(DrainStatus {
            draining: false,
            in_flight: 0,
        })
    }

    async fn undrain(&self, _task: &TaskView) -> Result<(), PortError> {
        Ok(())
    }

    async fn set_desired(&self, desired: i32) -> Result<(), PortError> {
        let mut w = self.w.borrow_mut();
        if desired < w.desired {
            // ECS stops an unprotected task: the one the episode left unprotected.
            let protected = w.protected.clone();
            let victim = w
                .tasks
                .iter()
                .find(|t| t.1 && !protected.contains(&arn(&task_id(t.0))))
                .map(|t| t.0);
            w.victim = victim;
        }
        w.desired = desired;
        Ok(())
    }

    async fn alarms(&self, names: &[String]) -> Result<Vec<AlarmView>, PortError> {
        Ok(self
            .alarms
            .iter()
            .filter(|a| names.contains(&a.0))
            .map(|(name, state, since, rule)| AlarmView {
                name: name.clone(),
                arn: Some(format!(
                    "arn:aws:cloudwatch:us-east-1:123456789012:alarm:{name}"
                )),
                state: state.as_str().into(),
                since: chrono::DateTime::from_timestamp(self.unix(*since), 0).unwrap_or_default(),
                threshold: Some(rule.threshold),
                comparison: None,
                latest: None,
            })
            .collect())
    }

    fn now_unix(&self) -> i64 {
        self.unix(self.now)
    }
}
