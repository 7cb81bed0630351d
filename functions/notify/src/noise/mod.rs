//! Noise control that needs memory beyond one event.
//!
//! Where the state lives, and why (bounded, survives a cold start, no new store):
//! - **Flapping** (`flap`): CloudWatch's own alarm history (DescribeAlarmHistory) is
//!   the source of truth. It already records every transition, for 30 days, per
//!   alarm; notify keeps nothing, so nothing can drift, fill up or be lost on a
//!   cold start, and concurrent invocations agree. Counting is anchored at the
//!   event's own state timestamp, so a redelivery gets the same answer.
//! - **Replays** (`replay`): a ring of short event-id fingerprints in the tags of
//!   the SNS topic notify publishes to. The topic is notify's own resource, so this
//!   needs no DynamoDB, and notify never writes to the ECS service whose
//!   `autoscaler:*` tags steer scaling (least privilege: a notify bug cannot pause
//!   scaling or eat into the service's 50-tag budget). Bounded at
//!   `SLOTS + 1` tags of at most 256 characters (152 fingerprints); oldest evicted first.
//!
//! The creation-transition and scaling-alarm rules need no state: see `classify::alarm`.

pub mod flap;
pub mod replay;
