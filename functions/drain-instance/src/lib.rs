//! drain-instance: lets the capacity ASG terminate an EC2 container instance
//! only after ECS has moved its tasks away (EC2 capacity mode).
//!
//! The terminate lifecycle hook holds the instance in `Terminating:Wait`. This
//! function sets the container instance DRAINING (ECS reschedules the service's
//! tasks, respecting minimumHealthyPercent), waits bounded by the Lambda's
//! remaining time for it to be empty, then completes the lifecycle action with
//! CONTINUE. A drain longer than one invocation sends a heartbeat and is resumed
//! by the next invocation (the retried event, or the schedule, which picks up
//! every DRAINING instance still waiting in the hook). Near the hook's global
//! timeout the tasks still running are named in the report, never silently cut off.

pub mod drain;
pub mod error;
pub mod event;

pub use error::FnError;

use chrono::{DateTime, Utc};
use drain::{Bounds, Drained};
use event::DrainEvent;
use scaling::aws::autoscaling::{AutoScaling, LifecycleAction, LifecycleHook};
use scaling::aws::ecs::Ecs;
use scaling::report::{
    DecisionSummary, FunctionKind, Outcome, Report, RollbackSummary, ServiceRef, TriggerSummary,
};
use std::time::Duration;
use tokio::time::Instant;

/// The clients, built once in `main`.
pub struct Deps {
    pub ecs: Ecs,
    pub asg: AutoScaling,
}

/// What drain-instance reads from the shared config, plus its wait tuning.
#[derive(Debug, Clone)]
pub struct Settings {
    pub cluster: String,
    pub service: String,
    /// CAPACITY_ASG_NAME: lifecycle actions of other groups are refused; the
    /// schedule resumes drains of this group only.
    pub asg_name: Option<String>,
    /// Pause between looks at the instance's task count.
    pub poll: Duration,
    /// Kept back from the Lambda deadline for the heartbeat and the report.
    pub reserve: Duration,
    /// How long before the hook's global timeout the wait gives up and reports.
    pub global_margin: Duration,
    pub region: Option<String>,
    /// DRY_RUN: find the instance and report what would happen; change nothing.
    pub dry_run: bool,
}

impl Settings {
    /// From the shared typed config (`DRAIN_MARGIN_S` is the reserve).
    pub fn from_config(c: &scaling::config::Config) -> Self {
        Self {
            cluster: c.cluster.clone(),
            service: c.service.clone(),
            asg_name: c.capacity_asg_name.clone(),
            poll: Duration::from_secs(5),
            reserve: c.drain_margin,
            global_margin: Duration::from_secs(120),
            region: std::env::var("AWS_REGION").ok(),
            dry_run: c.dry_run,
        }
    }
}

/// Handles one event; `deadline` is the Lambda's. Malformed or foreign events
/// are refused before any AWS call.
pub async fn handle(
    event: serde_json::Value,
    deps: &Deps,
    s: &Settings,
    deadline: Instant,
) -> Result<Report, FnError> {
    let started = Instant::now();
    let parsed = event::parse(&event, s.asg_name.as_deref())?;
    let deadline = deadline - s.reserve;
    let report = match parsed {
        DrainEvent::Lifecycle { action, .. } if s.dry_run => {
            dry_run(deps, s, &action, started).await?
        }
        DrainEvent::Lifecycle {
            action,
            time,
            to_warm_pool,
        } => {
            let mut steps = Vec::new();
            let (hook, step) = scaling::aws::timed(
                "describe_lifecycle_hook",
                deps.asg.terminate_hook(&action.group),
            )
            .await;
            steps.push(step);
            let hook = hook?.filter(|h| h.name == action.hook);
            let cut_off = global_cut_off(hook.as_ref(), time, s.global_margin);
            let b = Bounds {
                deadline,
                cut_off: Some(cut_off),
                poll: s.poll,
            };
            let mut d = drain::drain(deps, &s.cluster, &action, b).await?;
            if to_warm_pool {
                d.reason
                    .push_str(" (it returns to the warm pool; it is not terminated)");
            }
            steps.append(&mut d.steps);
            d.steps = steps;
            let trigger = lifecycle_trigger(&action);
            report(
                s,
                trigger,
                &format!("di-{}", action.instance_id),
                d,
                started,
            )
        }
        DrainEvent::Schedule { time } => resume_all(deps, s, time, deadline, started).await?,
    };
    tracing::info!(
        episode = %report.episode_id,
        outcome = ?report.outcome,
        reason = %report.outcome_reason,
        "drain-instance finished"
    );
    Ok(report)
}

fn lifecycle_trigger(action: &LifecycleAction) -> TriggerSummary {
    TriggerSummary::Lifecycle {
        asg_name: action.group.clone(),
        instance_id: action.instance_id.clone(),
        lifecycle_action_token: action.token.clone().unwrap_or_default(),
    }
}

/// DRY_RUN: look the instance up and say what would happen; no change.
async fn dry_run(
    deps: &Deps,
    s: &Settings,
    action: &LifecycleAction,
    started: Instant,
) -> Result<Report, FnError> {
    let id = &action.instance_id;
    let find = deps.ecs.container_instance_on(&s.cluster, id);
    let (found, step) = scaling::aws::timed("find_container_instance", find).await;
    let reason = match found? {
        Some(ci) => format!(
            "dry run: would drain {id} ({}, {} running + {} pending task(s)) and complete the \
             lifecycle action once it is empty",
            ci.status, ci.running, ci.pending
        ),
        None => format!(
            "dry run: {id} is not in cluster {}: would complete the lifecycle action",
            s.cluster
        ),
    };
    let d = Drained {
        outcome: Outcome::Skipped,
        reason,
        steps: vec![step],
        operator_checks: Vec::new(),
    };
    let mut r = report(
        s,
        lifecycle_trigger(action),
        &format!("di-{id}"),
        d,
        started,
    );
    r.dry_run = true;
    Ok(r)
}

/// When the wait must stop: the hook's start plus its global timeout, less the margin.
fn global_cut_off(
    hook: Option<&LifecycleHook>,
    start: DateTime<Utc>,
    margin: Duration,
) -> DateTime<Utc> {
    use scaling::aws::autoscaling::{DEFAULT_HEARTBEAT_S, MAX_GLOBAL_TIMEOUT_S};
    let global = hook.map_or((100 * DEFAULT_HEARTBEAT_S).min(MAX_GLOBAL_TIMEOUT_S), |h| {
        h.global_timeout_s
    });
    start + chrono::Duration::seconds(i64::from(global))
        - chrono::Duration::from_std(margin).unwrap_or_default()
}

/// The schedule: every DRAINING container instance whose EC2 instance waits in
/// the capacity group's terminate hook is drained on (one after another).
async fn resume_all(
    deps: &Deps,
    s: &Settings,
    time: DateTime<Utc>,
    deadline: Instant,
    started: Instant,
) -> Result<Report, FnError> {
    let trigger = TriggerSummary::Schedule { time };
    let id = format!("di-resume-{}", time.timestamp());
    let skipped = |why: &str| Drained {
        outcome: Outcome::Skipped,
        reason: why.to_string(),
        steps: Vec::new(),
        operator_checks: Vec::new(),
    };
    let Some(group) = s.asg_name.as_deref() else {
        let d = skipped("no CAPACITY_ASG_NAME (Fargate mode): nothing to resume");
        return Ok(report(s, trigger, &id, d, started));
    };
    let mut steps = Vec::new();
    let draining = deps.ecs.container_instances(
        &s.cluster,
        Some(aws_sdk_ecs::types::ContainerInstanceStatus::Draining),
        None,
    );
    let (draining, step) = scaling::aws::timed("list_draining_instances", draining).await;
    steps.push(step);
    let ids: Vec<String> = draining?.into_iter().map(|ci| ci.ec2_instance_id).collect();
    let (states, step) = scaling::aws::timed("describe_instances_lifecycle", async {
        if ids.is_empty() {
            Ok(Vec::new())
        } else {
            deps.asg.lifecycle_states(&ids).await
        }
    })
    .await;
    steps.push(step);
    let waiting: Vec<String> = states?
        .into_iter()
        .filter(|i| i.group == group && i.state == "Terminating:Wait")
        .map(|i| i.instance_id)
        .collect();
    if waiting.is_empty() {
        let mut d = skipped("reconcile: no instance waits in the terminate hook");
        d.steps = steps;
        return Ok(report(s, trigger, &id, d, started));
    }
    let (hook, step) =
        scaling::aws::timed("describe_lifecycle_hook", deps.asg.terminate_hook(group)).await;
    steps.push(step);
    let Some(hook) = hook? else {
        let mut d = skipped("the capacity group has no terminate hook");
        d.steps = steps;
        return Ok(report(s, trigger, &id, d, started));
    };
    let mut all = Drained {
        outcome: Outcome::Completed,
        reason: String::new(),
        steps,
        operator_checks: Vec::new(),
    };
    let mut reasons = Vec::new();
    for instance in waiting {
        let action = LifecycleAction {
            group: group.to_string(),
            hook: hook.name.clone(),
            instance_id: instance,
            token: None,
        };
        let b = Bounds {
            deadline,
            cut_off: None,
            poll: s.poll,
        };
        let mut d = drain::drain(deps, &s.cluster, &action, b).await?;
        all.steps.append(&mut d.steps);
        all.operator_checks.append(&mut d.operator_checks);
        all.outcome = worst(all.outcome, d.outcome);
        reasons.push(d.reason);
    }
    all.reason = reasons.join("; ");
    Ok(report(s, trigger, &id, all, started))
}

/// The schedule's outcome over several instances: any failure, else any drain
/// still in progress, else completed.
fn worst(a: Outcome, b: Outcome) -> Outcome {
    let rank = |o: Outcome| match o {
        Outcome::Failed => 3,
        Outcome::InProgress => 2,
        Outcome::Completed => 0,
        _ => 1,
    };
    if rank(b) > rank(a) {
        b
    } else {
        a
    }
}

fn report(s: &Settings, trigger: TriggerSummary, id: &str, d: Drained, started: Instant) -> Report {
    let rollback = (!d.operator_checks.is_empty()).then(|| RollbackSummary {
        reason: d.reason.clone(),
        actions: Vec::new(),
        operator_checks: d.operator_checks,
    });
    let started_at = Utc::now() - chrono::Duration::from_std(started.elapsed()).unwrap_or_default();
    // Draining an instance decides no desired count: no bounds.
    Report {
        episode_id: id.to_string(),
        region: s.region.clone(),
        decision: DecisionSummary {
            action: if d.outcome == Outcome::Skipped {
                "skip".into()
            } else {
                "drain_instance".into()
            },
            target: None,
            reason: d.reason.clone(),
        },
        steps: d.steps,
        rollback,
        outcome: d.outcome,
        outcome_reason: d.reason,
        duration_ms: started.elapsed().as_millis() as u64,
        ..Report::new(
            FunctionKind::DrainInstance,
            ServiceRef::new(&s.cluster, &s.service),
            trigger,
            started_at,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_reports_the_worst_instance() {
        use Outcome::*;
        assert_eq!(worst(Completed, InProgress), InProgress);
        assert_eq!(worst(InProgress, Completed), InProgress);
        assert_eq!(worst(Failed, InProgress), Failed);
        assert_eq!(worst(InProgress, Failed), Failed);
        assert_eq!(worst(Completed, Completed), Completed);
    }
}
