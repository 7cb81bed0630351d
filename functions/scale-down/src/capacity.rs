//! Capacity scale-in (EC2 mode): after a task left, give back an instance that
//! is now empty, by terminating exactly that instance and lowering the ASG's
//! desired capacity with it. The terminate hook (drain-instance) then finds it
//! already empty.

use scaling::aws::autoscaling::AsgInfo;
use scaling::aws::instances::ContainerInstanceInfo;

/// What the capacity step did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CapacityOutcome {
    /// Fargate mode (no CAPACITY_ASG_NAME): nothing to do.
    NotEc2,
    /// This EC2 instance was terminated (desired capacity - 1).
    Terminated(String),
    /// No instance was terminated, and why.
    Kept(String),
}

/// Picks the instance to give back: an ACTIVE container instance with no task
/// running or pending, InService in the group, registered at least `min_age_s`
/// ago (a fresh instance may be about to receive the tasks it was launched
/// for), and only while the group is above its minimum. Lowest id first, so
/// the choice is deterministic.
pub fn choose_empty(
    asg: &AsgInfo,
    in_service: &[String],
    instances: &[ContainerInstanceInfo],
    now: i64,
    min_age_s: i64,
) -> Result<String, String> {
    if asg.desired <= asg.min {
        return Err(format!(
            "capacity group at its minimum ({} <= {})",
            asg.desired, asg.min
        ));
    }
    let mut empty: Vec<&ContainerInstanceInfo> = instances
        .iter()
        .filter(|ci| ci.status == "ACTIVE" && ci.is_empty())
        .filter(|ci| in_service.contains(&ci.ec2_instance_id))
        .collect();
    if empty.is_empty() {
        return Err("no empty instance: every instance still has tasks".into());
    }
    empty.retain(|ci| ci.registered_at.is_some_and(|t| now - t >= min_age_s));
    empty.sort_by(|a, b| a.ec2_instance_id.cmp(&b.ec2_instance_id));
    empty
        .first()
        .map(|ci| ci.ec2_instance_id.clone())
        .ok_or_else(|| format!("the empty instances registered less than {min_age_s} s ago"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ci(id: &str, status: &str, running: i32, pending: i32, at: i64) -> ContainerInstanceInfo {
        ContainerInstanceInfo {
            arn: format!("arn:ci/{id}"),
            ec2_instance_id: id.into(),
            status: status.into(),
            running,
            pending,
            registered_at: Some(at),
        }
    }

    fn asg(desired: i32, min: i32) -> AsgInfo {
        AsgInfo {
            desired,
            min,
            max: 10,
            instances: desired,
        }
    }

    #[test]
    fn never_an_instance_with_tasks_and_never_below_the_minimum() {
        let ids = vec!["i-a".to_string(), "i-b".to_string(), "i-c".to_string()];
        let cis = [
            ci("i-a", "ACTIVE", 1, 0, 0),
            ci("i-b", "ACTIVE", 0, 1, 0),
            ci("i-c", "ACTIVE", 0, 0, 0),
        ];
        assert_eq!(
            choose_empty(&asg(3, 1), &ids, &cis, 1000, 300),
            Ok("i-c".into())
        );
        assert!(choose_empty(&asg(1, 1), &ids, &cis, 1000, 300).is_err());
        let busy = [ci("i-a", "ACTIVE", 1, 0, 0), ci("i-b", "ACTIVE", 0, 1, 0)];
        assert!(choose_empty(&asg(3, 1), &ids, &busy, 1000, 300).is_err());
    }

    #[test]
    fn skips_draining_fresh_and_foreign_instances() {
        let ids = vec!["i-a".to_string(), "i-b".to_string()];
        let cis = [
            ci("i-a", "DRAINING", 0, 0, 0),
            ci("i-b", "ACTIVE", 0, 0, 900),
            ci("i-z", "ACTIVE", 0, 0, 0),
        ];
        let why = choose_empty(&asg(3, 1), &ids, &cis, 1000, 300).unwrap_err();
        assert!(why.contains("less than"), "{why}");
        assert_eq!(
            choose_empty(&asg(3, 1), &ids, &cis, 1300, 300),
            Ok("i-b".into())
        );
    }
}
