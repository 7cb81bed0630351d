//! Helpers shared by notify's integration tests.
#![allow(dead_code)]

use notify::settings::Settings;
use std::collections::HashMap;
use std::path::PathBuf;

/// The scaling alarms of the shared contract (scale-up and scale-down act on these).
pub const SCALING_ALARMS: &str = "visits-api-cpu-high,visits-api-cpu-low,visits-api-memory-high,\
visits-api-inflight-high,visits-api-latency-p95-high";

/// Settings as the SAM template sets them for the sample service.
pub fn settings_with(topic_arn: &str) -> Settings {
    let env: HashMap<&str, String> = HashMap::from([
        ("CLUSTER_NAME", "visits".to_string()),
        ("SERVICE_NAME", "visits-api".to_string()),
        ("TOPIC_ARN", topic_arn.to_string()),
        ("CAPACITY_ASG_NAME", "visits-capacity".to_string()),
        ("SCALING_ALARM_NAMES", SCALING_ALARMS.to_string()),
        ("FLAP_MAX_TRANSITIONS", "3".to_string()),
        ("FLAP_WINDOW_MIN", "10".to_string()),
    ]);
    Settings::from_lookup(|k| env.get(k).cloned()).expect("test settings")
}

/// Settings with the sample topic ARN.
pub fn settings() -> Settings {
    settings_with("arn:aws:sns:us-east-1:123456789012:visits-ops")
}

/// The repository's `events/` folder.
pub fn events_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../events")
}

/// Every `events/notify-*.json`, sorted, as (stem, JSON).
pub fn notify_events() -> Vec<(String, serde_json::Value)> {
    let mut out: Vec<(String, serde_json::Value)> = std::fs::read_dir(events_dir())
        .expect("events/ exists")
        .filter_map(|e| {
            let path = e.ok()?.path();
            let name = path.file_name()?.to_str()?.to_string();
            let stem = name
                .strip_prefix("notify-")?
                .strip_suffix(".json")?
                .to_string();
            let text = std::fs::read_to_string(&path).expect("readable event");
            let json = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{name} is not valid JSON: {e}"));
            Some((stem, json))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(!out.is_empty(), "no events/notify-*.json found");
    out
}

/// One sample event by stem (`alarm-5xx` for `events/notify-alarm-5xx.json`).
pub fn event(stem: &str) -> serde_json::Value {
    notify_events()
        .into_iter()
        .find(|(s, _)| s == stem)
        .unwrap_or_else(|| panic!("no events/notify-{stem}.json"))
        .1
}
