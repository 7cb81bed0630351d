//! Notify's configuration, read once at start from the environment.

use crate::notice::Severity;
use std::collections::BTreeSet;
use std::time::Duration;

/// When an alarm counts as flapping (see `noise::flap`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlapPolicy {
    /// N: up to N transitions in the window are emailed one by one.
    pub max_transitions: u32,
    /// W: the window the transitions are counted in.
    pub window: Duration,
}

/// Everything notify reads from its environment.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// `CLUSTER_NAME`: events about other clusters are ignored.
    pub cluster: String,
    /// `SERVICE_NAME`: events about other services are ignored.
    pub service: String,
    /// `TOPIC_ARN`: where emails go; its tags also hold the replay ring (`noise::replay`).
    pub topic_arn: String,
    /// `CAPACITY_ASG_NAME` (EC2 mode): Auto Scaling events of other groups are ignored;
    /// unset (Fargate) ignores them all.
    pub capacity_asg: Option<String>,
    /// `SCALING_ALARM_NAMES` (comma-separated): alarms whose ALARM state starts a scaling
    /// episode. Their state changes send no email of their own: the episode report is
    /// the email. Unset means none, so every alarm emails (more mail, never less).
    pub scaling_alarms: BTreeSet<String>,
    /// `FLAP_MAX_TRANSITIONS` (N, default 4) and `FLAP_WINDOW_MIN` (W, default 30).
    pub flap: FlapPolicy,
    /// `NOTIFY_MIN_SEVERITY` (default `info`): notices below it are not published.
    /// Prefer SNS subscription filter policies on `severity`; this is for a topic
    /// whose subscribers cannot filter.
    pub min_severity: Severity,
    /// Region and account for console links when an event carries none: from `TOPIC_ARN`.
    pub region: String,
    pub account: String,
}

/// A variable that is missing or does not parse.
#[derive(Debug, Clone, thiserror::Error)]
#[error("environment variable {name}: {why}")]
pub struct SettingsError {
    pub name: &'static str,
    pub why: String,
}

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads through `get` (tests pass a map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let required = |name: &'static str| {
            get(name)
                .filter(|v| !v.trim().is_empty())
                .ok_or(SettingsError {
                    name,
                    why: "required".into(),
                })
        };
        let number = |name: &'static str, default: u32| -> Result<u32, SettingsError> {
            match get(name).filter(|v| !v.trim().is_empty()) {
                None => Ok(default),
                Some(v) => v.trim().parse().map_err(|e| SettingsError {
                    name,
                    why: format!("{v:?}: {e}"),
                }),
            }
        };
        let topic_arn = required("TOPIC_ARN")?;
        // arn:aws:sns:REGION:ACCOUNT:NAME
        let parts: Vec<&str> = topic_arn.split(':').collect();
        if parts.len() < 6 || parts[2] != "sns" {
            return Err(SettingsError {
                name: "TOPIC_ARN",
                why: format!("{topic_arn:?} is not an SNS topic ARN"),
            });
        }
        let (region, account) = (parts[3].to_string(), parts[4].to_string());
        let window_min = number("FLAP_WINDOW_MIN", 30)?;
        let min_severity = match get("NOTIFY_MIN_SEVERITY").filter(|v| !v.trim().is_empty()) {
            None => Severity::Info,
            Some(v) => v.parse().map_err(|why| SettingsError {
                name: "NOTIFY_MIN_SEVERITY",
                why,
            })?,
        };
        Ok(Settings {
            cluster: required("CLUSTER_NAME")?,
            service: required("SERVICE_NAME")?,
            capacity_asg: get("CAPACITY_ASG_NAME").filter(|v| !v.trim().is_empty()),
            scaling_alarms: get("SCALING_ALARM_NAMES")
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect(),
            flap: FlapPolicy {
                max_transitions: number("FLAP_MAX_TRANSITIONS", 4)?.max(1),
                window: Duration::from_secs(u64::from(window_min.max(1)) * 60),
            },
            min_severity,
            topic_arn,
            region,
            account,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    const BASE: &[(&str, &str)] = &[
        ("CLUSTER_NAME", "visits"),
        ("SERVICE_NAME", "visits-api"),
        ("TOPIC_ARN", "arn:aws:sns:us-east-1:123456789012:visits-ops"),
    ];

    #[test]
    fn defaults_and_region_from_topic() {
        let s = Settings::from_lookup(env(BASE)).unwrap();
        assert_eq!(s.region, "us-east-1");
        assert_eq!(s.account, "123456789012");
        assert_eq!(s.flap.max_transitions, 4);
        assert_eq!(s.flap.window, Duration::from_secs(1800));
        assert!(s.scaling_alarms.is_empty());
        assert_eq!(s.min_severity, Severity::Info);
    }

    #[test]
    fn lists_and_errors() {
        let mut pairs = BASE.to_vec();
        pairs.push(("SCALING_ALARM_NAMES", " a , b,,"));
        let s = Settings::from_lookup(env(&pairs)).unwrap();
        assert_eq!(s.scaling_alarms.len(), 2);
        pairs.push(("FLAP_WINDOW_MIN", "ten"));
        let e = Settings::from_lookup(env(&pairs)).unwrap_err();
        assert_eq!(e.name, "FLAP_WINDOW_MIN");
        let e = Settings::from_lookup(env(&[("TOPIC_ARN", "nope")])).unwrap_err();
        assert_eq!(e.name, "TOPIC_ARN");
    }
}
