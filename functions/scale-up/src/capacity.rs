//! EC2 capacity mode: when the new tasks cannot be placed, raise the capacity
//! ASG's desired capacity (within its max).
//!
//! Tasks cannot be placed when the cluster's free CPU or memory (sum of the
//! ACTIVE container instances' `remainingResources`) is below what the pending
//! and the new tasks need (from the task definition). Tasks already pending
//! count, since they are waiting for the same room. The instances to add are
//! the shortfall divided by what one instance registers (the largest seen); with
//! no instance to learn from, one per call.
//!
//! Network interfaces bound it too: in awsvpc mode every task takes an ENI of its
//! instance, and an instance keeps its primary one ("Amazon ECS task networking
//! options for EC2", ECS developer guide), so an instance hosts at most
//! `TASKS_PER_INSTANCE` tasks (t4g.medium: 3 ENIs, 2 tasks) however much CPU and
//! memory it has left. Trunking would raise that, but t4g types do not support it.

use crate::ScaleOut;
use scaling::aws::ecs::{ClusterCapacity, ServiceInfo, TaskResources};
use scaling::aws::timed;

/// What the capacity step did to the ASG.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AsgChange {
    pub before: i32,
    pub after: i32,
    /// One line for the report.
    pub note: String,
}

/// Instances needed to host `tasks` more tasks, given the cluster's capacity and,
/// when known, how many tasks one instance's network interfaces allow.
pub(crate) fn instances_needed(
    need: TaskResources,
    tasks: i32,
    cap: &ClusterCapacity,
    tasks_per_instance: Option<i32>,
) -> i32 {
    let want = TaskResources {
        cpu: need.cpu * i64::from(tasks),
        memory: need.memory * i64::from(tasks),
    };
    let short_cpu = (want.cpu - cap.free.cpu).max(0);
    let short_mem = (want.memory - cap.free.memory).max(0);
    let by_enis = tasks_per_instance.map_or(0, |per| {
        let free_slots = (cap.instances * per - cap.tasks).max(0);
        let short = (tasks - free_slots).max(0);
        (short + per - 1) / per
    });
    if short_cpu == 0 && short_mem == 0 {
        return by_enis;
    }
    let per = |short: i64, inst: i64| {
        if inst > 0 {
            (short + inst - 1) / inst
        } else {
            1
        }
    };
    (per(short_cpu, cap.per_instance.cpu)
        .max(per(short_mem, cap.per_instance.memory))
        .max(1) as i32)
        .max(by_enis)
}

/// Raises the ASG when the cluster lacks room. Failures are recorded as failed
/// steps and in the note: the ECS scale-out already happened and stands.
pub(crate) async fn ensure(
    ep: &mut ScaleOut<'_>,
    asg_name: &str,
    service: &ServiceInfo,
    added: i32,
) -> Option<AsgChange> {
    let deps = ep.deps;
    let c = &deps.config;
    let ((need, s1), (cap, s2), (asg, s3)) = tokio::join!(
        timed(
            "describe_task_definition",
            deps.ecs.task_resources(&service.task_definition)
        ),
        timed("cluster_capacity", deps.ecs.cluster_capacity(&c.cluster)),
        timed("describe_asg", deps.autoscaling.describe(asg_name)),
    );
    ep.steps.extend([s1, s2, s3]);
    let (Ok(need), Ok(cap), Ok(asg)) = (need, cap, asg) else {
        return Some(AsgChange {
            before: 0,
            after: 0,
            note: "EC2 capacity not checked: a read failed (see steps)".into(),
        });
    };
    let tasks = added + service.pending;
    let more = instances_needed(need, tasks, &cap, c.tasks_per_instance);
    let unchanged = |note: String| AsgChange {
        before: asg.desired,
        after: asg.desired,
        note,
    };
    if more == 0 {
        return Some(unchanged(format!(
            "cluster has room for {tasks} more task(s): ASG {asg_name} unchanged"
        )));
    }
    let target = (asg.desired + more).min(asg.max);
    if target <= asg.desired {
        return Some(unchanged(format!(
            "tasks need {more} more instance(s) but ASG {asg_name} is at its max of {}",
            asg.max
        )));
    }
    let (res, step) = timed(
        "set_asg_desired",
        deps.autoscaling.set_desired(asg_name, target),
    )
    .await;
    ep.steps.push(step);
    Some(match res {
        Ok(()) => {
            let mut note = format!(
                "ASG {asg_name} raised {} -> {target} for {tasks} unplaced task(s)",
                asg.desired
            );
            if target < asg.desired + more {
                note.push_str(&format!(" (capped at its max of {})", asg.max));
            }
            AsgChange {
                before: asg.desired,
                after: target,
                note,
            }
        }
        Err(e) => unchanged(format!("ASG {asg_name} not raised: {e}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(cpu: i64, memory: i64) -> TaskResources {
        TaskResources { cpu, memory }
    }

    #[test]
    fn room_means_no_instance() {
        let cap = ClusterCapacity {
            instances: 1,
            free: res(2048, 4096),
            per_instance: res(2048, 4096),
            tasks: 0,
        };
        assert_eq!(instances_needed(res(512, 1024), 2, &cap, None), 0);
    }

    #[test]
    fn shortfall_rounds_up_by_the_tighter_resource() {
        let cap = ClusterCapacity {
            instances: 1,
            free: res(256, 8192),
            per_instance: res(1024, 8192),
            tasks: 0,
        };
        // 4 × 512 CPU = 2048 needed, 256 free: 1792 short -> 2 instances of 1024.
        assert_eq!(instances_needed(res(512, 512), 4, &cap, None), 2);
    }

    #[test]
    fn unknown_instance_size_adds_one() {
        assert_eq!(
            instances_needed(res(256, 512), 3, &ClusterCapacity::default(), None),
            1
        );
    }

    /// A t4g.medium registers 2048 CPU and ~3.8 GiB: by CPU and memory alone it holds four
    /// 512/1024 tasks, but with 3 ENIs (one primary) only two fit. The old math (ENIs ignored)
    /// saw room for the third and fourth task and added no instance.
    #[test]
    fn network_interfaces_bound_a_t4g_medium_to_two_tasks() {
        let cap = ClusterCapacity {
            instances: 1,
            free: res(1024, 1850),
            per_instance: res(2048, 3874),
            tasks: 2,
        };
        assert_eq!(
            instances_needed(res(512, 1024), 1, &cap, None),
            0,
            "CPU/memory alone"
        );
        assert_eq!(instances_needed(res(512, 1024), 1, &cap, Some(2)), 1);
        assert_eq!(instances_needed(res(512, 1024), 3, &cap, Some(2)), 2);
        let half = ClusterCapacity { tasks: 1, ..cap };
        assert_eq!(
            instances_needed(res(512, 1024), 1, &half, Some(2)),
            0,
            "one slot left"
        );
        assert_eq!(instances_needed(res(512, 1024), 2, &half, Some(2)), 1);
    }
}
