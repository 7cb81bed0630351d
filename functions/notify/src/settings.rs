//! Notify's configuration, read once at start from the environment.

use crate::notice::Severity;
use scaling::config::{ConfigError, Env};
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

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads through `get` (tests pass a map), with the reader every function shares.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env(&get);
        let topic_arn = env.required("TOPIC_ARN")?;
        // arn:aws:sns:REGION:ACCOUNT:NAME
        let parts: Vec<&str> = topic_arn.split(':').collect();
        if parts.len() < 6 || parts[2] != "sns" {
            return Err(env.invalid("TOPIC_ARN", "not an SNS topic ARN"));
        }
        let (region, account) = (parts[3].to_string(), parts[4].to_string());
        let window_min: u32 = env.parse_or("FLAP_WINDOW_MIN", 30)?;
        let max_transitions: u32 = env.parse_or("FLAP_MAX_TRANSITIONS", 4)?;
        Ok(Settings {
            cluster: env.required("CLUSTER_NAME")?,
            service: env.required("SERVICE_NAME")?,
            capacity_asg: env.get("CAPACITY_ASG_NAME"),
            // Lenient on purpose: a stray comma must not stop the emails.
            scaling_alarms: env
                .get("SCALING_ALARM_NAMES")
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect(),
            flap: FlapPolicy {
                max_transitions: max_transitions.max(1),
                window: Duration::from_secs(u64::from(window_min.max(1)) * 60),
            },
            min_severity: env.parse_or("NOTIFY_MIN_SEVERITY", Severity::Info)?,
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
        assert_eq!(e.var(), "FLAP_WINDOW_MIN");
        let e = Settings::from_lookup(env(&[("TOPIC_ARN", "nope")])).unwrap_err();
        assert_eq!(e.var(), "TOPIC_ARN");
    }

    #[test]
    fn errors_are_the_ones_every_function_gives() {
        let e = Settings::from_lookup(env(&BASE[1..])).unwrap_err();
        assert_eq!(e, ConfigError::Missing("CLUSTER_NAME"));
        let mut pairs = BASE.to_vec();
        pairs.push(("NOTIFY_MIN_SEVERITY", " Warning "));
        let s = Settings::from_lookup(env(&pairs)).unwrap();
        assert_eq!(s.min_severity, Severity::Warning);
        pairs.push(("NOTIFY_MIN_SEVERITY", "loud"));
        let e = Settings::from_lookup(env(&pairs)).unwrap_err();
        assert_eq!(e.var(), "NOTIFY_MIN_SEVERITY");
        assert!(e.to_string().contains("\"loud\""), "{e}");
    }
}
