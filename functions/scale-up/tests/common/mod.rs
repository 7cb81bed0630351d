//! Shared helpers for scale-up's tests: config, sample events, deps.
#![allow(dead_code)]

use scale_up::Deps;
use scaling::aws::autoscaling::AutoScaling;
use scaling::aws::cloudwatch::CloudWatch;
use scaling::aws::ecs::Ecs;
use scaling::config::Config;
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;

/// The repository's `events/` folder.
pub fn events_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../events")
}

/// One sample event by file stem (`scale-up-cpu-high-alarm`).
pub fn event(stem: &str) -> Value {
    let path = events_dir().join(format!("{stem}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every `events/scale-up-*.json`, by stem, sorted.
pub fn all_events() -> Vec<(String, Value)> {
    let mut out: Vec<(String, Value)> = std::fs::read_dir(events_dir())
        .expect("events/ exists")
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            let stem = name
                .strip_prefix("scale-up-")?
                .strip_suffix(".json")?
                .to_string();
            Some(format!("scale-up-{stem}"))
        })
        .map(|stem| (stem.clone(), event(&stem)))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(
        out.len() >= 6,
        "expected the scale-up sample events, found {}",
        out.len()
    );
    out
}

/// Config for cluster `visits`, service `visits-api`, min 1 max 4, plus overrides.
pub fn config(extra: &[(&str, &str)]) -> Config {
    let mut m: HashMap<String, String> = [
        ("CLUSTER_NAME", "visits"),
        ("SERVICE_NAME", "visits-api"),
        ("MIN_TASKS", "1"),
        ("MAX_TASKS", "4"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in extra {
        m.insert(k.to_string(), v.to_string());
    }
    Config::from_map(&m).expect("test config")
}

/// Deps over the given clients.
pub fn deps(
    config: Config,
    ecs: aws_sdk_ecs::Client,
    asg: aws_sdk_autoscaling::Client,
    cw: aws_sdk_cloudwatch::Client,
) -> Deps {
    Deps {
        config,
        ecs: Ecs::from_client(ecs),
        autoscaling: AutoScaling::from_client(asg),
        cloudwatch: CloudWatch::from_client(cw),
        region: Some("us-east-1".into()),
    }
}
