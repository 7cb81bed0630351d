//! How many of the service's tasks one Spot interruption hit.
//!
//! Fargate Spot reclaims capacity in waves: several tasks get the two-minute warning together
//! and stop with `stopCode: SpotInterruption` (AWS Knowledge Center, "How do I handle Spot
//! termination notices in AWS Fargate Spot tasks?"). Each stop is its own event, so the email
//! about one of them says how many of the service's tasks stopped that way in the minutes
//! before it: ECS itself keeps the stopped tasks (ListTasks `desiredStatus=STOPPED`, then
//! DescribeTasks in batches of 100), so notify keeps no state for it.

use aws_sdk_ecs::types::DesiredStatus;
use chrono::{DateTime, Duration, Utc};

/// Stopped tasks of one service with a Spot stop code, in a window ending at `at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wave {
    /// Tasks stopped by a Spot interruption in the window (the event's own included).
    pub tasks: usize,
    /// Their availability zones, for the email.
    pub zones: Vec<String>,
}

/// How far back one interruption wave is counted.
pub const WAVE: Duration = Duration::minutes(10);

/// Stop codes of a reclaimed Spot task (`TerminationNotice` is the EC2 Spot one).
pub fn is_spot_stop(code: Option<&str>) -> bool {
    matches!(code, Some("SpotInterruption" | "TerminationNotice"))
}

/// Counts the service's tasks stopped by a Spot interruption in the [`WAVE`] up to `at`.
pub async fn wave(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
    service: &str,
    at: DateTime<Utc>,
) -> Result<Wave, aws_sdk_ecs::Error> {
    let mut arns = Vec::new();
    let mut pages = ecs
        .list_tasks()
        .cluster(cluster)
        .service_name(service)
        .desired_status(DesiredStatus::Stopped)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        arns.extend(page?.task_arns().iter().cloned());
    }
    let from = at - WAVE;
    let mut hit = Wave {
        tasks: 0,
        zones: Vec::new(),
    };
    for chunk in arns.chunks(100) {
        let out = ecs
            .describe_tasks()
            .cluster(cluster)
            .set_tasks(Some(chunk.to_vec()))
            .send()
            .await?;
        for t in out.tasks() {
            if !is_spot_stop(t.stop_code().map(|c| c.as_str())) {
                continue;
            }
            // The warning's time (stoppingAt) or the stop's, whichever ECS has.
            let when = t
                .stopping_at()
                .or(t.stopped_at())
                .and_then(|d| DateTime::from_timestamp(d.secs(), 0));
            if when.is_some_and(|w| w >= from && w <= at + Duration::minutes(1)) {
                hit.tasks += 1;
                if let Some(az) = t.availability_zone() {
                    if !hit.zones.iter().any(|z| z == az) {
                        hit.zones.push(az.to_string());
                    }
                }
            }
        }
    }
    Ok(hit)
}

/// The email line for a wave (or for a count that could not be read).
pub fn line(result: &Result<Wave, String>, service: &str) -> String {
    match result {
        Ok(w) => format!(
            "Spot interruptions: {} task{} of {service} stopped by Spot in the {} minutes to this one \
             (this one included){}",
            w.tasks,
            if w.tasks == 1 { "" } else { "s" },
            WAVE.num_minutes(),
            if w.zones.is_empty() {
                String::new()
            } else {
                format!(", in {}", w.zones.join(", "))
            }
        ),
        Err(e) => format!("Spot interruptions: how many tasks were hit could not be read ({e})"),
    }
}
