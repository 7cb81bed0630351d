//! CloudWatch Embedded Metric Format: one JSON line on stdout per interval, which the awslogs
//! driver turns into high-resolution metrics for the alarms (no sidecar, no API calls).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::metrics::{quantile_ms, Metrics, Window};
use crate::stats::{Sample, Sampler};
use crate::write_health::WriteWindow;

/// Names and dimensions every record carries.
#[derive(Clone, Debug)]
pub struct EmfTarget {
    /// CloudWatch namespace (`METRICS_NAMESPACE`).
    pub namespace: String,
    /// `ClusterName` dimension.
    pub cluster: String,
    /// `ServiceName` dimension.
    pub service: String,
    /// Carried as a property (not a dimension) so a record can be traced to its task.
    pub task_id: String,
}

/// What the task says about itself besides requests: writes and dropped log lines.
#[derive(Clone, Copy, Debug, Default)]
pub struct Health {
    /// The interval's write outcomes.
    pub writes: WriteWindow,
    /// Log lines dropped since start (stdout not read).
    pub log_dropped: u64,
}

/// Builds one record. Latency metrics are only declared when the interval had requests: a
/// made-up 0 would pull the p95 alarm's statistic down. `CanWrite` (1/0, alarm on its Minimum)
/// and `WriteFailures` say when this task cannot write, `WriteUncertain` how many rows were
/// answered 503 although they may have committed.
pub fn record(
    target: &EmfTarget,
    window: &Window,
    in_flight: u64,
    res: Sample,
    health: Health,
    now_ms: i64,
) -> Value {
    let mut metrics = vec![
        (
            "CanWrite",
            "Count",
            json!(u8::from(health.writes.can_write)),
        ),
        ("WriteFailures", "Count", json!(health.writes.failed)),
        ("WriteUncertain", "Count", json!(health.writes.uncertain)),
        ("LogLinesDropped", "Count", json!(health.log_dropped)),
        ("RequestCount", "Count", json!(window.requests)),
        ("InFlight", "Count", json!(in_flight)),
        ("Http5xxCount", "Count", json!(window.errors_5xx)),
        ("CPUUtilization", "Percent", json!(round2(res.cpu_percent))),
        (
            "MemoryUtilization",
            "Percent",
            json!(round2(res.memory_percent)),
        ),
    ];
    for (name, q) in [
        ("LatencyP50", 0.50),
        ("LatencyP95", 0.95),
        ("LatencyP99", 0.99),
    ] {
        if let Some(ms) = quantile_ms(&window.latency, q) {
            metrics.push((name, "Milliseconds", json!(round2(ms))));
        }
    }
    let mut doc = Map::new();
    doc.insert(
        "_aws".into(),
        json!({
            "Timestamp": now_ms,
            "CloudWatchMetrics": [{
                "Namespace": target.namespace,
                "Dimensions": [["ClusterName", "ServiceName"]],
                "Metrics": metrics.iter().map(|(n, u, _)| json!({"Name": n, "Unit": u, "StorageResolution": 1})).collect::<Vec<_>>(),
            }],
        }),
    );
    doc.insert("ClusterName".into(), json!(target.cluster));
    doc.insert("ServiceName".into(), json!(target.service));
    doc.insert("TaskId".into(), json!(target.task_id));
    for (name, _, value) in metrics {
        doc.insert(name.into(), value);
    }
    Value::Object(doc)
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Writes a record every `interval` until the task is aborted.
pub async fn run(metrics: Arc<Metrics>, target: EmfTarget, interval: Duration) {
    let mut sampler = Sampler::new();
    sampler.sample();
    metrics.take_window();
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    loop {
        tick.tick().await;
        let rec = record(
            &target,
            &metrics.take_window(),
            metrics.in_flight(),
            sampler.sample(),
            Health {
                writes: metrics.writes.take_window(),
                log_dropped: crate::telemetry::dropped_lines(),
            },
            chrono::Utc::now().timestamp_millis(),
        );
        // One line, through the log buffer: a stuck stdout must not stop this task.
        let mut line = rec.to_string();
        line.push('\n');
        crate::telemetry::write_line(line.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_declares_what_it_carries() {
        let target = EmfTarget {
            namespace: "VisitsApi".into(),
            cluster: "visits".into(),
            service: "visits-api".into(),
            task_id: "t1".into(),
        };
        let h = crate::metrics::Histogram::default();
        h.record(Duration::from_millis(3));
        let w = Window {
            requests: 1,
            errors_5xx: 0,
            latency: h.take(),
        };
        let rec = record(
            &target,
            &w,
            2,
            Sample::default(),
            Health::default(),
            1_700_000_000_000,
        );
        let decl = &rec["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(decl["Namespace"], "VisitsApi");
        assert_eq!(decl["Dimensions"], json!([["ClusterName", "ServiceName"]]));
        for m in decl["Metrics"].as_array().unwrap() {
            assert_eq!(m["StorageResolution"], 1);
            let name = m["Name"].as_str().unwrap();
            assert!(rec.get(name).is_some(), "{name} declared but missing");
        }
        assert_eq!(rec["InFlight"], 2);
        assert!(!rec.to_string().contains('\n'));

        let idle = record(
            &target,
            &Window {
                requests: 0,
                errors_5xx: 0,
                latency: vec![0; 256],
            },
            0,
            Sample::default(),
            Health::default(),
            0,
        );
        assert!(idle.get("LatencyP95").is_none());
    }
}
