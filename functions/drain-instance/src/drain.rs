//! One instance's drain: DRAINING, a bounded wait for its tasks to leave,
//! then CompleteLifecycleAction CONTINUE (or a heartbeat and "still draining").

use crate::error::FnError;
use crate::Deps;
use chrono::{DateTime, Utc};
use scaling::aws::autoscaling::LifecycleAction;
use scaling::aws::instances::ContainerInstanceInfo;
use scaling::error::{AwsError, AwsErrorKind};
use scaling::report::{Outcome, Step};
use std::time::Duration;
use tokio::time::Instant;

/// How one instance's drain ended in this invocation.
#[derive(Debug, Clone, PartialEq)]
pub struct Drained {
    pub outcome: Outcome,
    pub reason: String,
    pub steps: Vec<Step>,
    /// Tasks that were still on the instance when the hook ran out of time.
    pub operator_checks: Vec<String>,
}

/// Bounds of the wait.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// This invocation's deadline less the reserve for the heartbeat and the report.
    pub deadline: Instant,
    /// When the hook's global timeout ends the wait (heartbeats cannot extend it),
    /// less a margin; None when the hook's start is unknown (schedule resumes).
    pub cut_off: Option<DateTime<Utc>>,
    pub poll: Duration,
}

/// Statuses in which the instance can still hold tasks.
fn in_cluster(ci: &ContainerInstanceInfo) -> bool {
    matches!(ci.status.as_str(), "ACTIVE" | "DRAINING" | "REGISTERING")
}

async fn timed<T>(
    steps: &mut Vec<Step>,
    name: &str,
    fut: impl std::future::Future<Output = Result<T, AwsError>>,
) -> Result<T, AwsError> {
    let (r, step) = scaling::aws::timed(name, fut).await;
    steps.push(step);
    r
}

/// Drains the container instance on `action.instance_id` and completes its
/// lifecycle action once it is empty. Every step is idempotent, so a retried
/// event or the schedule may run it again at any point.
pub async fn drain(
    deps: &Deps,
    cluster: &str,
    action: &LifecycleAction,
    b: Bounds,
) -> Result<Drained, FnError> {
    let mut steps = Vec::new();
    let id = &action.instance_id;
    let ci = timed(
        &mut steps,
        "find_container_instance",
        deps.ecs.container_instance_on(cluster, id),
    )
    .await?;
    let Some(ci) = ci.filter(in_cluster) else {
        let why = format!(
            "{id} is not a container instance of cluster {cluster} (not ours, or already \
             deregistered)"
        );
        return complete(deps, action, steps, why).await;
    };
    if ci.status == "DRAINING" {
        steps.push(Step {
            name: "set_draining".into(),
            ok: true,
            duration_ms: 0,
            detail: "already DRAINING (resumed)".into(),
        });
    } else {
        timed(
            &mut steps,
            "set_draining",
            deps.ecs.set_draining(cluster, &ci.arn),
        )
        .await?;
    }
    let t0 = Instant::now();
    loop {
        let now = timed(
            &mut Vec::new(),
            "describe",
            deps.ecs.container_instance_on(cluster, id),
        )
        .await?;
        let Some(ci) = now.filter(in_cluster).filter(|ci| !ci.is_empty()) else {
            steps.push(wait_step(t0, "no task left on the instance".into()));
            return complete(deps, action, steps, format!("{id} drained (no task left)")).await;
        };
        if b.cut_off.is_some_and(|c| Utc::now() >= c) {
            let why = StopWaiting::GlobalTimeout;
            return stop_waiting(deps, cluster, action, &ci, steps, t0, why).await;
        }
        if Instant::now() + b.poll >= b.deadline {
            let why = StopWaiting::Deadline;
            return stop_waiting(deps, cluster, action, &ci, steps, t0, why).await;
        }
        tokio::time::sleep(b.poll).await;
    }
}

/// CompleteLifecycleAction CONTINUE: the instance may go.
async fn complete(
    deps: &Deps,
    action: &LifecycleAction,
    mut steps: Vec<Step>,
    why: String,
) -> Result<Drained, FnError> {
    let done = deps.asg.complete_continue(action);
    timed(&mut steps, "complete_lifecycle_action", done).await?;
    Ok(Drained {
        outcome: Outcome::Completed,
        reason: format!("{why}: lifecycle action completed with CONTINUE"),
        steps,
        operator_checks: Vec::new(),
    })
}

fn wait_step(t0: Instant, detail: String) -> Step {
    Step {
        name: "wait_empty".into(),
        ok: true,
        duration_ms: t0.elapsed().as_millis() as u64,
        detail,
    }
}

fn remaining(ci: &ContainerInstanceInfo, ids: &[String]) -> String {
    format!(
        "{} running + {} pending task(s): {}",
        ci.running,
        ci.pending,
        if ids.is_empty() {
            "ids unknown".to_string()
        } else {
            ids.join(", ")
        }
    )
}

/// Why the wait ends with tasks still on the instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StopWaiting {
    /// The hook's global timeout is near: heartbeats cannot help any more.
    GlobalTimeout,
    /// This invocation's deadline: heartbeat and let the next one resume.
    Deadline,
}

/// Names the tasks still there, then either lets the termination go on
/// (global timeout: CONTINUE now rather than at the timeout, so the report says
/// exactly what was cut off) or heartbeats and says "still draining" (the next
/// invocation, the schedule or the retried event, resumes the wait).
async fn stop_waiting(
    deps: &Deps,
    cluster: &str,
    action: &LifecycleAction,
    ci: &ContainerInstanceInfo,
    mut steps: Vec<Step>,
    t0: Instant,
    why: StopWaiting,
) -> Result<Drained, FnError> {
    let ids = timed(
        &mut steps,
        "list_tasks",
        deps.ecs.task_ids_on(cluster, &ci.arn),
    )
    .await?;
    let left = remaining(ci, &ids);
    let instance = &action.instance_id;
    steps.push(Step {
        name: "wait_empty".into(),
        ok: false,
        duration_ms: t0.elapsed().as_millis() as u64,
        detail: match why {
            StopWaiting::GlobalTimeout => format!("global timeout near: {left}"),
            StopWaiting::Deadline => format!("function deadline: {left}"),
        },
    });
    let cut = |what: &str| -> Vec<String> {
        ids.iter()
            .map(|t| format!("task {t} {what} on {instance}"))
            .collect()
    };
    if why == StopWaiting::GlobalTimeout {
        timed(
            &mut steps,
            "complete_lifecycle_action",
            deps.asg.complete_continue(action),
        )
        .await?;
        return Ok(Drained {
            outcome: Outcome::Failed,
            reason: format!(
                "{instance}: the lifecycle hook's global timeout is near and {left} are still \
                 on it; termination continues"
            ),
            operator_checks: cut("was still running when it was terminated"),
            steps,
        });
    }
    match timed(&mut steps, "record_heartbeat", deps.asg.heartbeat(action)).await {
        Ok(()) => Ok(Drained {
            outcome: Outcome::InProgress,
            reason: format!(
                "{instance} still draining ({left}); heartbeat sent, the next invocation resumes"
            ),
            steps,
            operator_checks: Vec::new(),
        }),
        // No lifecycle action any more: the hook timed out and the group went on.
        Err(e) if e.kind == AwsErrorKind::InvalidRequest => Ok(Drained {
            outcome: Outcome::Failed,
            reason: format!(
                "{instance}: the lifecycle action is gone (hook timed out?) with {left} still on \
                 the instance"
            ),
            operator_checks: cut("may have been cut off"),
            steps,
        }),
        Err(e) => Err(e.into()),
    }
}
