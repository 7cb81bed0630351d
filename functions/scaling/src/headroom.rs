//! Scale-in headroom: a scale-in must not trip a scale-out alarm of another metric.
//!
//! The low alarm watches one metric (CPU), the scale-out alarms several (in-flight
//! requests per task, CPU, memory, p95 latency). A service can be quiet on CPU and
//! busy on in-flight requests at once. Without this check, the CPU-low scale-in
//! removes a task, the in-flight average on the others rises by `n / (n − 1)`,
//! the in-flight alarm fires, scale-up adds the task back, and the cycle repeats
//! every cooldown: each turn a drained task and a cold start for nothing.
//!
//! So a scale-in is refused while a scale-out alarm is in ALARM, and while the
//! newest datapoint of a per-task alarm (a load shared by the tasks: in-flight or
//! CPU average), scaled to one fewer task, would cross its threshold. Alarms whose
//! metric does not follow the task count (p95 latency) count only by their state.

/// One scale-out alarm as the check reads it (DescribeAlarms, and for per-task
/// alarms the newest datapoint of the metric).
#[derive(Debug, Clone, PartialEq)]
pub struct ScaleOutReading<'a> {
    pub name: &'a str,
    /// ALARM, OK or INSUFFICIENT_DATA.
    pub state: &'a str,
    /// `GreaterThanThreshold`, `GreaterThanOrEqualToThreshold`, ...
    pub comparison: Option<&'a str>,
    pub threshold: Option<f64>,
    /// The newest datapoint of the alarm's metric, with the alarm's statistic.
    pub latest: Option<f64>,
    /// The metric is a load shared by the tasks, so one fewer task scales it by
    /// `running / (running − 1)` (SCALE_OUT_PROPORTIONAL_ALARMS).
    pub per_task: bool,
}

/// Why removing one of `running` tasks now would trip `r`, or None.
///
/// Without a datapoint, a threshold or an upward comparison, only the state counts:
/// the check never invents evidence for blocking, and never blocks on a metric it
/// cannot project.
pub fn blocks_scale_in(r: &ScaleOutReading, running: usize) -> Option<String> {
    if r.state == "ALARM" {
        return Some(format!(
            "scale-out alarm {} is in ALARM: removing a task now would be undone",
            r.name
        ));
    }
    if !r.per_task || running < 2 {
        return None;
    }
    let (latest, threshold) = (r.latest?, r.threshold?);
    let projected = latest * running as f64 / (running as f64 - 1.0);
    let crosses = match r.comparison? {
        "GreaterThanThreshold" => projected > threshold,
        "GreaterThanOrEqualToThreshold" => projected >= threshold,
        _ => false,
    };
    crosses.then(|| {
        format!(
            "removing one of {running} tasks would put {} at {projected:.1} (now {latest:.1}, threshold {threshold}): a scale-out would follow",
            r.name
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn inflight(state: &'static str, latest: Option<f64>) -> ScaleOutReading<'static> {
        ScaleOutReading {
            name: "visits-api-inflight-high",
            state,
            comparison: Some("GreaterThanThreshold"),
            threshold: Some(10.0),
            latest,
            per_task: true,
        }
    }

    #[test]
    fn a_scale_out_alarm_in_alarm_blocks_whatever_its_data() {
        let why = blocks_scale_in(&inflight("ALARM", None), 5).unwrap();
        assert!(
            why.contains("visits-api-inflight-high is in ALARM"),
            "{why}"
        );
        let latency = ScaleOutReading {
            per_task: false,
            ..inflight("ALARM", Some(0.0))
        };
        assert!(blocks_scale_in(&latency, 5).is_some());
    }

    #[test]
    fn the_projection_is_the_per_task_load_on_one_fewer_task() {
        // 7 per task on 3 tasks is 10.5 on 2: over 10.
        let why = blocks_scale_in(&inflight("OK", Some(7.0)), 3).unwrap();
        assert!(why.contains("at 10.5 (now 7.0, threshold 10)"), "{why}");
        // 6 per task on 3 tasks is 9 on 2: room left.
        assert_eq!(blocks_scale_in(&inflight("OK", Some(6.0)), 3), None);
        // Exactly on the threshold: only >= trips.
        assert_eq!(blocks_scale_in(&inflight("OK", Some(5.0)), 2), None);
        let ge = ScaleOutReading {
            comparison: Some("GreaterThanOrEqualToThreshold"),
            ..inflight("OK", Some(5.0))
        };
        assert!(blocks_scale_in(&ge, 2).is_some());
    }

    #[test]
    fn no_evidence_never_blocks() {
        assert_eq!(blocks_scale_in(&inflight("OK", None), 3), None);
        assert_eq!(
            blocks_scale_in(&inflight("INSUFFICIENT_DATA", None), 3),
            None
        );
        let latency = ScaleOutReading {
            per_task: false,
            ..inflight("OK", Some(100.0))
        };
        assert_eq!(blocks_scale_in(&latency, 3), None);
        let downward = ScaleOutReading {
            comparison: Some("LessThanThreshold"),
            ..inflight("OK", Some(100.0))
        };
        assert_eq!(blocks_scale_in(&downward, 3), None);
    }

    proptest! {
        /// A scale-in the check allows never leaves the per-task metric over the
        /// threshold on the tasks that remain; one it refuses would.
        #[test]
        fn allowed_scale_ins_stay_under_the_threshold(
            latest in 0.0f64..200.0,
            threshold in 1.0f64..100.0,
            running in 2usize..50,
        ) {
            let r = ScaleOutReading {
                threshold: Some(threshold),
                ..inflight("OK", Some(latest))
            };
            let after = latest * running as f64 / (running as f64 - 1.0);
            match blocks_scale_in(&r, running) {
                None => prop_assert!(after <= threshold),
                Some(_) => prop_assert!(after > threshold),
            }
        }
    }
}
