//! The events drain-instance accepts: the capacity ASG's `EC2 Instance-terminate
//! Lifecycle Action` (EventBridge), and a `Scheduled Event` that resumes every
//! drain an earlier invocation left waiting.

use crate::error::FnError;
use chrono::{DateTime, Utc};
use scaling::aws::autoscaling::{LifecycleAction, TERMINATING};
use serde::Deserialize;
use serde_json::Value;

/// A parsed, validated event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DrainEvent {
    /// One instance waits in the terminate hook.
    Lifecycle {
        action: LifecycleAction,
        /// When the hook started (the event's time): the global timeout counts from here.
        time: DateTime<Utc>,
        /// The instance goes back to the group's warm pool (`Destination: WarmPool`) instead of
        /// being terminated ("Warm pool instance lifecycle", EC2 Auto Scaling user guide). Its
        /// tasks stop all the same, so it is drained the same way; the report says where it goes.
        to_warm_pool: bool,
    },
    /// The periodic resume of drains that outlasted an invocation.
    Schedule { time: DateTime<Utc> },
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "detail-type")]
    detail_type: String,
    source: String,
    /// Checked only for the kinds accepted: another kind is refused for what it is.
    #[serde(default)]
    time: Option<DateTime<Utc>>,
    #[serde(default)]
    detail: Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct LifecycleDetail {
    lifecycle_action_token: String,
    auto_scaling_group_name: String,
    lifecycle_hook_name: String,
    #[serde(rename = "EC2InstanceId")]
    ec2_instance_id: String,
    lifecycle_transition: String,
    #[serde(default)]
    destination: Option<String>,
}

/// The EventBridge detail-type of the terminate hook's event.
pub const DETAIL_TYPE: &str = "EC2 Instance-terminate Lifecycle Action";

/// Parses `event`; `asg` is CAPACITY_ASG_NAME (a hook of another group is not ours).
/// Makes no AWS call.
pub fn parse(event: &Value, asg: Option<&str>) -> Result<DrainEvent, FnError> {
    let env: Envelope = serde_json::from_value(event.clone())
        .map_err(|e| FnError::BadEvent(format!("not an EventBridge event: {e}")))?;
    match (env.source.as_str(), env.detail_type.as_str()) {
        ("aws.events", "Scheduled Event") => Ok(DrainEvent::Schedule {
            time: env
                .time
                .ok_or_else(|| FnError::BadEvent("scheduled event has no time".into()))?,
        }),
        ("aws.autoscaling", DETAIL_TYPE) => {
            let d: LifecycleDetail = serde_json::from_value(env.detail)
                .map_err(|e| FnError::BadEvent(format!("lifecycle action detail: {e}")))?;
            if d.lifecycle_transition != TERMINATING {
                return Err(FnError::BadEvent(format!(
                    "transition {} is not {TERMINATING}",
                    d.lifecycle_transition
                )));
            }
            let valid_id = d.ec2_instance_id.starts_with("i-")
                && d.ec2_instance_id.len() > 2
                && d.ec2_instance_id[2..]
                    .chars()
                    .all(|c| c.is_ascii_hexdigit());
            if !valid_id {
                return Err(FnError::BadEvent(format!(
                    "EC2InstanceId {:?} is not an instance id",
                    d.ec2_instance_id
                )));
            }
            for (name, v) in [
                ("LifecycleActionToken", &d.lifecycle_action_token),
                ("AutoScalingGroupName", &d.auto_scaling_group_name),
                ("LifecycleHookName", &d.lifecycle_hook_name),
            ] {
                if v.trim().is_empty() {
                    return Err(FnError::BadEvent(format!("{name} is empty")));
                }
            }
            if let Some(ours) = asg {
                if d.auto_scaling_group_name != ours {
                    return Err(FnError::NotOurs(format!(
                        "Auto Scaling group {} (this function drains {ours})",
                        d.auto_scaling_group_name
                    )));
                }
            }
            Ok(DrainEvent::Lifecycle {
                action: LifecycleAction {
                    group: d.auto_scaling_group_name,
                    hook: d.lifecycle_hook_name,
                    instance_id: d.ec2_instance_id,
                    token: Some(d.lifecycle_action_token),
                },
                time: env.time.ok_or_else(|| {
                    FnError::BadEvent("lifecycle action event has no time".into())
                })?,
                to_warm_pool: d.destination.as_deref() == Some("WarmPool"),
            })
        }
        (source, detail_type) => Err(FnError::BadEvent(format!(
            "unexpected event {detail_type:?} from {source:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lifecycle() -> Value {
        json!({
            "version": "0", "id": "x", "detail-type": DETAIL_TYPE,
            "source": "aws.autoscaling", "account": "123456789012",
            "time": "2026-11-23T18:00:00Z", "region": "us-east-1", "resources": [],
            "detail": {
                "LifecycleActionToken": "tok", "AutoScalingGroupName": "visits-capacity",
                "LifecycleHookName": "drain-before-terminate",
                "EC2InstanceId": "i-0123456789abcdef0",
                "LifecycleTransition": TERMINATING
            }
        })
    }

    #[test]
    fn a_terminate_action_parses() {
        let DrainEvent::Lifecycle { action, .. } =
            parse(&lifecycle(), Some("visits-capacity")).unwrap()
        else {
            panic!("not a lifecycle event")
        };
        assert_eq!(action.instance_id, "i-0123456789abcdef0");
        assert_eq!(action.token.as_deref(), Some("tok"));
    }

    #[test]
    fn another_group_is_not_ours_and_bad_shapes_are_bad_events() {
        assert!(matches!(
            parse(&lifecycle(), Some("other")),
            Err(FnError::NotOurs(_))
        ));
        for (path, value) in [
            (
                "LifecycleTransition",
                json!("autoscaling:EC2_INSTANCE_LAUNCHING"),
            ),
            ("EC2InstanceId", json!("i-../../etc")),
            ("LifecycleActionToken", json!(" ")),
            ("AutoScalingGroupName", json!(7)),
        ] {
            let mut e = lifecycle();
            e["detail"][path] = value;
            assert!(
                matches!(parse(&e, None), Err(FnError::BadEvent(_))),
                "{path}"
            );
        }
        assert!(matches!(parse(&json!([]), None), Err(FnError::BadEvent(_))));
        let mut e = lifecycle();
        e["detail-type"] = json!("EC2 Instance Terminate Successful");
        assert!(matches!(parse(&e, None), Err(FnError::BadEvent(_))));
    }
}
