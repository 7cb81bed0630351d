//! Typed configuration, read once from the function's environment.
//!
//! Every function reads the same `Config`; a function ignores what it does not
//! use. A missing or malformed variable is a [`ConfigError`] naming the variable,
//! so a bad deployment fails at init with a message an operator can act on,
//! instead of deep inside a handler.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `CLUSTER_NAME` | required | ECS cluster of the scaled service |
//! | `SERVICE_NAME` | required | ECS service to scale |
//! | `MIN_TASKS` / `MAX_TASKS` | required | desired count stays within these (min ≤ max) |
//! | `SCALE_OUT_STEP` | 1 | tasks added per scale-out in `fixed` mode |
//! | `SCALE_OUT_MODE` | `fixed` | `fixed` or `proportional` (HPA-style `ceil(running × value / threshold)`) |
//! | `SCALE_OUT_MAX_STEP` | 4 | cap on tasks added by one proportional scale-out |
//! | `SCALE_OUT_COOLDOWN_S` | 60 | seconds after a scale-out before the next one |
//! | `SCALE_IN_COOLDOWN_S` | 300 | seconds after any scaling before a scale-in |
//! | `CAPACITY_ASG_NAME` | unset | EC2 capacity mode: the ASG that hosts the cluster's instances |
//! | `TASKS_PER_INSTANCE` | unset | EC2 capacity mode: awsvpc tasks one instance hosts (its network interfaces − 1) |
//! | `TOPIC_ARN` | unset | SNS topic for operator notifications (notify) |
//! | `DRY_RUN` | false | decide and report, but change nothing |
//! | `METRICS_NAMESPACE` | `VisitsApi` | namespace for the episode metric (PutMetricData) |
//! | `DB_MAX_CONNECTIONS` | unset | database cap: the database's max connections |
//! | `DB_POOL_PER_TASK` | unset | database cap: connections one task's pool may open |
//! | `DB_INSTANCE_ID` | unset | database cap: RDS instance whose `DatabaseConnections` is read |
//! | `VICTIM_STRATEGY` | `fewest-in-flight` | scale-in: how the task to remove is chosen |
//! | `ADMIN_TOKEN` | unset | bearer token for the tasks' `/admin/drain` |
//! | `ADMIN_TOKEN_SECRET_ARN` | unset | scale-down on AWS: the secret the admin token is read from at init |
//! | `TASK_PORT` | unset | port of the tasks' HTTP server (unset: from the task definition) |
//! | `DRAIN_MARGIN_S` | 5 | scale-in: seconds kept in reserve before the function's deadline |
//! | `PROTECTION_EXPIRY_MIN` | 15 | scale-in: task protection expiry, so a crash never leaves it forever |
//! | `POLL_INTERVAL_MS` | 1000 | scale-in: pause between polls of ECS (and the task) while waiting for STOPPED; keep ≥ 1000 on AWS |
//! | `DRAIN_TTL_S` | 300 | scale-in: the victim's drain mode ends by itself after this long unless the episode renews it |
//! | `EARLY_DEREGISTER` | false | scale-in: also DeregisterTargets the victim before lowering desired (a head start; never relied upon) |
//! | `TASK_IP_PREFIX_REWRITE` | unset | `FROM=TO` rewrite of task IPs before HTTP calls (local stack only) |
//! | `SCALE_IN_ALARMS` | unset | scale-down: comma-separated alarm names the reconcile schedule re-reads (DescribeAlarms); one still in ALARM scales in as if it had just fired |
//! | `SCALE_IN_ALARM_PERIOD_S`, `SCALE_IN_ALARM_EVALUATION_PERIODS` | 0, 1 | the scale-in alarm's window (their product): no scale-in until this long after the last scale-out |
//! | `SCALE_OUT_ALARMS` | unset | scale-up: comma-separated alarm names its re-evaluation schedule re-reads; one still in ALARM scales out again once the cooldown is over. scale-down: no scale-in while one is in ALARM or would be pushed over (`scaling::headroom`) |
//! | `SCALE_OUT_PROPORTIONAL_ALARMS` | unset | with `SCALE_OUT_MODE=proportional`, the alarms sized proportionally (unset: every alarm); the others take the fixed step. scale-down projects these (per-task loads) to one fewer task |
//! | `SCALE_OUT_REEVALUATE_S` | 60 | the re-evaluation schedule's period: a scheduled run waits (inside the invocation) for a cooldown that ends within it |
//! | `SCHEDULE_WINDOWS` | unset | scheduled capacity: JSON array of windows `{name, start, end, timezone, min, max}` (see [`crate::window`]); refused when invalid or overlapping |
//!
//! `AWS_REGION` and `AWS_ENDPOINT_URL` are read by the SDK itself (see [`crate::aws`]).
//! docs/configuration.md lists these with what the template sets, beside notify's and the
//! API's variables.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

/// A missing or malformed environment variable; the message names it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A required variable is unset or empty.
    #[error("environment variable {0} is required but not set")]
    Missing(&'static str),
    /// A variable is set but its value cannot be used.
    #[error("environment variable {var}={value:?} is invalid: {why}")]
    Invalid {
        var: &'static str,
        value: String,
        why: String,
    },
}

impl ConfigError {
    /// The variable at fault.
    pub fn var(&self) -> &'static str {
        match self {
            ConfigError::Missing(var) | ConfigError::Invalid { var, .. } => var,
        }
    }
}

/// How a scale-out sizes its step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScaleOutMode {
    /// Add `SCALE_OUT_STEP` tasks.
    Fixed,
    /// `ceil(desired × value / threshold)`, at most `SCALE_OUT_MAX_STEP` more; falls
    /// back to the fixed step when the alarm carries no datapoint.
    Proportional,
}

/// How scale-in chooses the task to remove (implemented by scale-down).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VictimStrategy {
    /// The task with the fewest in-flight requests: the quickest drain.
    FewestInFlight,
    /// The most recently started task: warm caches stay.
    Newest,
    /// A task from the availability zone with the most tasks: zones stay balanced.
    AzBalanced,
}

impl VictimStrategy {
    /// The name used in `VICTIM_STRATEGY` and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            VictimStrategy::FewestInFlight => "fewest-in-flight",
            VictimStrategy::Newest => "newest",
            VictimStrategy::AzBalanced => "az-balanced",
        }
    }
}

/// The optional database connection cap: scale-out never adds tasks past the
/// connections the database has left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbCap {
    /// The database's `max_connections` (less what admin tools need).
    pub max_connections: u32,
    /// Connections one task's pool may open.
    pub pool_per_task: u32,
    /// RDS instance identifier for the CloudWatch `DatabaseConnections` metric;
    /// without it the cap is the static `max_connections / pool_per_task`.
    pub instance_id: Option<String>,
}

/// `TASK_IP_PREFIX_REWRITE`: the local stack maps emulated task IPs to loopback twins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpRewrite {
    /// Prefix to replace, e.g. `172.31.`.
    pub from: String,
    /// Replacement, e.g. `127.31.`.
    pub to: String,
}

impl IpRewrite {
    /// Applies the rewrite to an IP (unchanged when the prefix does not match).
    pub fn apply(&self, ip: &str) -> String {
        match ip.strip_prefix(self.from.as_str()) {
            Some(rest) => format!("{}{}", self.to, rest),
            None => ip.to_string(),
        }
    }
}

/// Everything the scaling functions read from their environment.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub cluster: String,
    pub service: String,
    /// Floor of the desired count ("within bounds", docs/invariants.md).
    pub min_tasks: i32,
    /// Ceiling of the desired count ("within bounds").
    pub max_tasks: i32,
    /// Tasks added by a fixed-step scale-out.
    pub scale_out_step: i32,
    pub scale_out_mode: ScaleOutMode,
    /// Cap on one proportional scale-out.
    pub scale_out_max_step: i32,
    pub scale_out_cooldown: Duration,
    pub scale_in_cooldown: Duration,
    /// EC2 capacity mode when set.
    pub capacity_asg_name: Option<String>,
    /// `TASKS_PER_INSTANCE` (EC2 mode): awsvpc tasks one instance can host, its network
    /// interfaces less the primary one (t4g.medium: 3 ENIs, 2 tasks), whatever its CPU and
    /// memory say. Unset: CPU and memory alone decide.
    pub tasks_per_instance: Option<i32>,
    pub topic_arn: Option<String>,
    /// Decide and report, change nothing.
    pub dry_run: bool,
    pub metrics_namespace: String,
    pub db_cap: Option<DbCap>,
    pub victim_strategy: VictimStrategy,
    /// `ADMIN_TOKEN`: the tasks' /admin bearer token, given plainly (local stack), or read at
    /// init from `ADMIN_TOKEN_SECRET_ARN` (`aws::secret::resolve_admin_token`) on AWS.
    pub admin_token: Option<String>,
    /// `ADMIN_TOKEN_SECRET_ARN`: the Secrets Manager secret holding the admin token.
    pub admin_token_secret_arn: Option<String>,
    pub task_port: Option<u16>,
    pub drain_margin: Duration,
    pub protection_expiry_min: i32,
    /// `POLL_INTERVAL_MS`: the scale-in's wait polls no faster (ECS API rate limits on AWS).
    pub poll_interval: Duration,
    /// `DRAIN_TTL_S`: the expiry sent with each `POST /admin/drain` (renewed while waiting).
    pub drain_ttl: Duration,
    /// `EARLY_DEREGISTER`: deregister the victim before lowering desired, as a head start.
    pub early_deregister: bool,
    pub ip_rewrite: Option<IpRewrite>,
    /// `SCALE_IN_ALARMS`: CloudWatch invokes an alarm action only on a state change, so
    /// scale-down's reconcile schedule re-reads these alarms and scales in while one stays
    /// in ALARM (one action per scale-in cooldown). Empty: the schedule only reconciles.
    pub scale_in_alarms: Vec<String>,
    /// `SCALE_IN_ALARM_PERIOD_S` × `SCALE_IN_ALARM_EVALUATION_PERIODS`: the scale-in
    /// alarm's evaluation window; no scale-in
    /// until this long after the last scale-out.
    pub scale_in_window: Duration,
    /// `SCALE_OUT_ALARMS`: CloudWatch invokes an alarm action only on a state change,
    /// so scale-up's re-evaluation schedule re-reads these and scales out again while
    /// one stays in ALARM (one step per cooldown). Empty: the schedule only keeps
    /// desired at least `MIN_TASKS`.
    pub scale_out_alarms: Vec<String>,
    /// `SCALE_OUT_PROPORTIONAL_ALARMS`: in proportional mode, the alarms sized
    /// proportionally; empty: every alarm.
    pub scale_out_proportional_alarms: Vec<String>,
    /// `SCALE_OUT_REEVALUATE_S`: the re-evaluation schedule's period (the longest a
    /// scheduled run waits for the cooldown to end).
    pub scale_out_reevaluate: Duration,
    /// `SCHEDULE_WINDOWS`: the floor and ceiling by time of day; none: the plain
    /// `MIN_TASKS`/`MAX_TASKS` always.
    pub windows: crate::window::Windows,
    /// Predictive pre-scaling (`PREDICTIVE_*`; off when `PREDICTIVE_MODE` is unset).
    pub predictive: crate::predictive::Predictive,
}

impl Config {
    /// Reads the process environment. Call once, in `main`.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads from a map: tests and tools build configs without touching the process env.
    pub fn from_map(map: &HashMap<String, String>) -> Result<Self, ConfigError> {
        Self::from_lookup(|k| map.get(k).cloned())
    }

    /// Reads through any lookup; empty values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env(&lookup);
        let min_tasks: i32 = env.required_parse("MIN_TASKS")?;
        let max_tasks: i32 = env.required_parse("MAX_TASKS")?;
        if min_tasks < 0 {
            return Err(env.invalid("MIN_TASKS", "must be 0 or more"));
        }
        if max_tasks < min_tasks || max_tasks < 1 {
            return Err(env.invalid("MAX_TASKS", "must be at least 1 and at least MIN_TASKS"));
        }
        let scale_out_step: i32 = env.parse_or("SCALE_OUT_STEP", 1)?;
        if scale_out_step < 1 {
            return Err(env.invalid("SCALE_OUT_STEP", "must be 1 or more"));
        }
        let scale_out_max_step: i32 = env.parse_or("SCALE_OUT_MAX_STEP", 4)?;
        if scale_out_max_step < 1 {
            return Err(env.invalid("SCALE_OUT_MAX_STEP", "must be 1 or more"));
        }
        let scale_out_mode = match env.get("SCALE_OUT_MODE").as_deref() {
            None | Some("fixed") => ScaleOutMode::Fixed,
            Some("proportional") => ScaleOutMode::Proportional,
            Some(_) => return Err(env.invalid("SCALE_OUT_MODE", "expected fixed or proportional")),
        };
        let victim_strategy = match env.get("VICTIM_STRATEGY").as_deref() {
            None | Some("fewest-in-flight") => VictimStrategy::FewestInFlight,
            Some("newest") => VictimStrategy::Newest,
            Some("az-balanced") => VictimStrategy::AzBalanced,
            Some(_) => {
                return Err(env.invalid(
                    "VICTIM_STRATEGY",
                    "expected fewest-in-flight, newest or az-balanced",
                ))
            }
        };
        let db_cap = match (env.get("DB_MAX_CONNECTIONS"), env.get("DB_POOL_PER_TASK")) {
            (None, None) => None,
            (Some(_), Some(_)) => {
                let pool_per_task: u32 = env.required_parse("DB_POOL_PER_TASK")?;
                if pool_per_task == 0 {
                    return Err(env.invalid("DB_POOL_PER_TASK", "must be 1 or more"));
                }
                Some(DbCap {
                    max_connections: env.required_parse("DB_MAX_CONNECTIONS")?,
                    pool_per_task,
                    instance_id: env.get("DB_INSTANCE_ID"),
                })
            }
            (None, Some(_)) => return Err(ConfigError::Missing("DB_MAX_CONNECTIONS")),
            (Some(_), None) => return Err(ConfigError::Missing("DB_POOL_PER_TASK")),
        };
        let ip_rewrite = match env.get("TASK_IP_PREFIX_REWRITE") {
            None => None,
            Some(v) => match v.split_once('=') {
                Some((from, to)) if !from.is_empty() => Some(IpRewrite {
                    from: from.to_string(),
                    to: to.to_string(),
                }),
                _ => return Err(env.invalid("TASK_IP_PREFIX_REWRITE", "expected FROM=TO")),
            },
        };
        let scale_in_alarms = env.alarm_names("SCALE_IN_ALARMS")?;
        let scale_out_alarms = env.alarm_names("SCALE_OUT_ALARMS")?;
        let scale_out_proportional_alarms = env.alarm_names("SCALE_OUT_PROPORTIONAL_ALARMS")?;
        let scale_out_reevaluate: u64 = env.parse_or("SCALE_OUT_REEVALUATE_S", 60)?;
        let in_period: u64 = env.parse_or("SCALE_IN_ALARM_PERIOD_S", 0)?;
        let in_periods: u64 = env.parse_or("SCALE_IN_ALARM_EVALUATION_PERIODS", 1)?;
        if scale_out_reevaluate == 0 {
            return Err(env.invalid("SCALE_OUT_REEVALUATE_S", "must be 1 or more"));
        }
        // The overlap check looks a year ahead from start-up: the clock is read here,
        // in config, never in the policy.
        let windows = match env.get("SCHEDULE_WINDOWS") {
            None => crate::window::Windows::none(min_tasks, max_tasks),
            Some(text) => {
                crate::window::Windows::parse(&text, min_tasks, max_tasks, chrono::Utc::now())
                    .map_err(|why| env.invalid("SCHEDULE_WINDOWS", &why))?
            }
        };
        let predictive = predictive(&env)?;
        Ok(Config {
            cluster: env.required("CLUSTER_NAME")?,
            service: env.required("SERVICE_NAME")?,
            min_tasks,
            max_tasks,
            scale_out_step,
            scale_out_mode,
            scale_out_max_step,
            scale_out_cooldown: Duration::from_secs(env.parse_or("SCALE_OUT_COOLDOWN_S", 60)?),
            scale_in_cooldown: Duration::from_secs(env.parse_or("SCALE_IN_COOLDOWN_S", 300)?),
            capacity_asg_name: env.get("CAPACITY_ASG_NAME"),
            tasks_per_instance: match env.parse_opt::<i32>("TASKS_PER_INSTANCE")? {
                Some(n) if n < 1 => {
                    return Err(env.invalid("TASKS_PER_INSTANCE", "must be at least 1"))
                }
                n => n,
            },
            topic_arn: env.get("TOPIC_ARN"),
            dry_run: env.bool_or("DRY_RUN", false)?,
            metrics_namespace: env
                .get("METRICS_NAMESPACE")
                .unwrap_or_else(|| "VisitsApi".to_string()),
            db_cap,
            victim_strategy,
            admin_token: env.get("ADMIN_TOKEN"),
            admin_token_secret_arn: env.get("ADMIN_TOKEN_SECRET_ARN"),
            task_port: env.parse_opt("TASK_PORT")?,
            drain_margin: Duration::from_secs(env.parse_or("DRAIN_MARGIN_S", 5)?),
            protection_expiry_min: env.parse_or("PROTECTION_EXPIRY_MIN", 15)?,
            poll_interval: Duration::from_millis(env.parse_or("POLL_INTERVAL_MS", 1000)?.max(10)),
            drain_ttl: Duration::from_secs(env.parse_or("DRAIN_TTL_S", 300)?.clamp(30, 3600)),
            early_deregister: env.bool_or("EARLY_DEREGISTER", false)?,
            ip_rewrite,
            scale_in_alarms,
            scale_in_window: Duration::from_secs(in_period.saturating_mul(in_periods)),
            scale_out_alarms,
            scale_out_proportional_alarms,
            scale_out_reevaluate: Duration::from_secs(scale_out_reevaluate),
            windows,
            predictive,
        })
    }
}

fn predictive<F: Fn(&str) -> Option<String>>(
    env: &Env<'_, F>,
) -> Result<crate::predictive::Predictive, ConfigError> {
    use crate::predictive::{Predictive, PredictiveMode};
    let d = Predictive::off();
    let mode = match env.get("PREDICTIVE_MODE") {
        None => PredictiveMode::Off,
        Some(m) => PredictiveMode::parse(&m)
            .ok_or_else(|| env.invalid("PREDICTIVE_MODE", "expected off, forecast-only or on"))?,
    };
    let task_rps: f64 = env.parse_or("PREDICTIVE_TASK_RPS", d.task_rps)?;
    if !(task_rps.is_finite() && task_rps > 0.0) {
        return Err(env.invalid("PREDICTIVE_TASK_RPS", "must be above 0"));
    }
    // GetMetricData periods are whole minutes; the forecaster's hour and day must be whole steps.
    let step: u64 = env.parse_or("PREDICTIVE_STEP_S", d.step.as_secs())?;
    if !(60..=900).contains(&step) || !step.is_multiple_of(60) || !3600u64.is_multiple_of(step) {
        return Err(env.invalid(
            "PREDICTIVE_STEP_S",
            "must be whole minutes from 60 to 900 that divide an hour",
        ));
    }
    let days: u64 = env.parse_or("PREDICTIVE_HISTORY_DAYS", d.history.as_secs() / 86_400)?;
    if !(2..=14).contains(&days) {
        return Err(env.invalid("PREDICTIVE_HISTORY_DAYS", "must be 2 to 14"));
    }
    let load_balancer = env.get("PREDICTIVE_LOAD_BALANCER").unwrap_or_default();
    let target_group = env.get("PREDICTIVE_TARGET_GROUP").unwrap_or_default();
    if mode != PredictiveMode::Off {
        for (var, v) in [
            ("PREDICTIVE_LOAD_BALANCER", &load_balancer),
            ("PREDICTIVE_TARGET_GROUP", &target_group),
        ] {
            if v.is_empty() {
                return Err(ConfigError::Missing(var));
            }
        }
    }
    Ok(Predictive {
        mode,
        task_rps,
        lead: Duration::from_secs(env.parse_or("PREDICTIVE_LEAD_S", d.lead.as_secs())?),
        step: Duration::from_secs(step),
        history: Duration::from_secs(days * 86_400),
        load_balancer,
        target_group,
    })
}

/// The one environment reader: every function reads its variables through it, so an
/// absent, empty or unparsable value is the same [`ConfigError`] naming the variable,
/// whichever function reads it. `Config` reads the scaling variables; notify reads its own.
pub struct Env<'a, F: Fn(&str) -> Option<String>>(pub &'a F);

impl<F: Fn(&str) -> Option<String>> Env<'_, F> {
    /// The trimmed value; empty counts as unset.
    pub fn get(&self, var: &str) -> Option<String> {
        (self.0)(var)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    pub fn required(&self, var: &'static str) -> Result<String, ConfigError> {
        self.get(var).ok_or(ConfigError::Missing(var))
    }

    pub fn invalid(&self, var: &'static str, why: &str) -> ConfigError {
        ConfigError::Invalid {
            var,
            value: self.get(var).unwrap_or_default(),
            why: why.to_string(),
        }
    }

    pub fn parse_opt<T: FromStr>(&self, var: &'static str) -> Result<Option<T>, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        match self.get(var) {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|e: T::Err| ConfigError::Invalid {
                    var,
                    value: v,
                    why: e.to_string(),
                }),
        }
    }

    pub fn required_parse<T: FromStr>(&self, var: &'static str) -> Result<T, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        self.parse_opt(var)?.ok_or(ConfigError::Missing(var))
    }

    pub fn parse_or<T: FromStr>(&self, var: &'static str, default: T) -> Result<T, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        Ok(self.parse_opt(var)?.unwrap_or(default))
    }

    /// A comma-separated list of CloudWatch alarm names (1..=255 characters each);
    /// unset: empty.
    pub fn alarm_names(&self, var: &'static str) -> Result<Vec<String>, ConfigError> {
        let Some(v) = self.get(var) else {
            return Ok(Vec::new());
        };
        let names: Vec<String> = v.split(',').map(|n| n.trim().to_string()).collect();
        if names.iter().any(|n| n.is_empty() || n.len() > 255) {
            return Err(self.invalid(
                var,
                "expected comma-separated alarm names (1 to 255 characters each)",
            ));
        }
        Ok(names)
    }

    pub fn bool_or(&self, var: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.get(var).map(|v| v.to_ascii_lowercase()).as_deref() {
            None => Ok(default),
            Some("true" | "1" | "yes") => Ok(true),
            Some("false" | "0" | "no") => Ok(false),
            Some(_) => Err(self.invalid(var, "expected true or false")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> HashMap<String, String> {
        [
            ("CLUSTER_NAME", "visits"),
            ("SERVICE_NAME", "visits-api"),
            ("MIN_TASKS", "1"),
            ("MAX_TASKS", "4"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn defaults_apply() {
        let c = Config::from_map(&base()).unwrap();
        assert_eq!(c.scale_out_step, 1);
        assert_eq!(c.scale_out_cooldown, Duration::from_secs(60));
        assert_eq!(c.scale_in_cooldown, Duration::from_secs(300));
        assert_eq!(c.scale_out_mode, ScaleOutMode::Fixed);
        assert!(!c.dry_run);
        assert_eq!(c.metrics_namespace, "VisitsApi");
        assert_eq!(c.db_cap, None);
    }

    #[test]
    fn predictive_is_off_unless_set_and_needs_its_metric_when_on() {
        use crate::predictive::PredictiveMode;
        assert_eq!(
            Config::from_map(&base()).unwrap().predictive.mode,
            PredictiveMode::Off
        );
        let mut m = base();
        m.insert("PREDICTIVE_MODE".into(), "forecast-only".into());
        let e = Config::from_map(&m).unwrap_err().to_string();
        assert!(e.contains("PREDICTIVE_LOAD_BALANCER"), "{e}");
        m.insert("PREDICTIVE_LOAD_BALANCER".into(), "app/visits/abc".into());
        m.insert(
            "PREDICTIVE_TARGET_GROUP".into(),
            "targetgroup/visits/def".into(),
        );
        m.insert("PREDICTIVE_LEAD_S".into(), "240".into());
        let p = Config::from_map(&m).unwrap().predictive;
        assert_eq!(p.mode, PredictiveMode::ForecastOnly);
        assert_eq!(p.lead, Duration::from_secs(240));
        assert_eq!(p.step, Duration::from_secs(300));
        for (var, bad) in [
            ("PREDICTIVE_MODE", "sometimes"),
            ("PREDICTIVE_STEP_S", "420"),
            ("PREDICTIVE_STEP_S", "90"),
            ("PREDICTIVE_HISTORY_DAYS", "1"),
            ("PREDICTIVE_TASK_RPS", "0"),
        ] {
            let mut m = m.clone();
            m.insert(var.into(), bad.into());
            let e = Config::from_map(&m).unwrap_err().to_string();
            assert!(e.contains(var), "{var}={bad}: {e}");
        }
    }

    #[test]
    fn scale_in_alarms_are_a_trimmed_list_and_empty_names_are_refused() {
        assert!(Config::from_map(&base())
            .unwrap()
            .scale_in_alarms
            .is_empty());
        let mut m = base();
        m.insert(
            "SCALE_IN_ALARMS".into(),
            " visits-api-cpu-low , other-low".into(),
        );
        let c = Config::from_map(&m).unwrap();
        assert_eq!(c.scale_in_alarms, ["visits-api-cpu-low", "other-low"]);
        for var in [
            "SCALE_IN_ALARMS",
            "SCALE_OUT_ALARMS",
            "SCALE_OUT_PROPORTIONAL_ALARMS",
        ] {
            let mut m = base();
            for bad in ["a,,b", "a,", &"x".repeat(256)] {
                m.insert(var.into(), bad.to_string());
                let e = Config::from_map(&m).unwrap_err().to_string();
                assert!(e.contains(var), "{bad}: {e}");
            }
        }
    }

    #[test]
    fn scale_out_reevaluation_settings() {
        let c = Config::from_map(&base()).unwrap();
        assert!(c.scale_out_alarms.is_empty());
        assert_eq!(c.scale_out_reevaluate, Duration::from_secs(60));
        assert_eq!(c.scale_in_window, Duration::ZERO);
        let mut m = base();
        m.insert("SCALE_OUT_ALARMS".into(), "a-high,b-high".into());
        m.insert("SCALE_IN_ALARM_PERIOD_S".into(), "60".into());
        m.insert("SCALE_IN_ALARM_EVALUATION_PERIODS".into(), "5".into());
        m.insert("SCALE_OUT_REEVALUATE_S".into(), "30".into());
        let c = Config::from_map(&m).unwrap();
        assert_eq!(c.scale_out_alarms, ["a-high", "b-high"]);
        assert_eq!(c.scale_in_window, Duration::from_secs(300));
        assert_eq!(c.scale_out_reevaluate, Duration::from_secs(30));
        m.insert("SCALE_OUT_REEVALUATE_S".into(), "0".into());
        let e = Config::from_map(&m).unwrap_err().to_string();
        assert!(e.contains("SCALE_OUT_REEVALUATE_S"), "{e}");
    }

    #[test]
    fn tasks_per_instance_is_a_positive_count() {
        assert_eq!(Config::from_map(&base()).unwrap().tasks_per_instance, None);
        let mut m = base();
        m.insert("TASKS_PER_INSTANCE".into(), "2".into());
        assert_eq!(Config::from_map(&m).unwrap().tasks_per_instance, Some(2));
        for bad in ["0", "-1", "two"] {
            m.insert("TASKS_PER_INSTANCE".into(), bad.into());
            let e = Config::from_map(&m).unwrap_err().to_string();
            assert!(e.contains("TASKS_PER_INSTANCE"), "{bad}: {e}");
        }
    }

    #[test]
    fn schedule_windows_are_read_and_a_bad_one_fails_with_its_name() {
        assert!(Config::from_map(&base())
            .unwrap()
            .windows
            .windows
            .is_empty());
        let mut m = base();
        m.insert(
            "SCHEDULE_WINDOWS".into(),
            r#"[{"name":"day","start":"cron(0 8 * * ? *)","end":"cron(0 18 * * ? *)","timezone":"Europe/Madrid","min":2,"max":""}]"#.into(),
        );
        let c = Config::from_map(&m).unwrap();
        assert_eq!(c.windows.windows[0].floor, Some(2));
        // Floor above MAX_TASKS (4): refused, naming the variable and why.
        m.insert(
            "SCHEDULE_WINDOWS".into(),
            r#"[{"name":"day","start":"cron(0 8 * * ? *)","end":"cron(0 18 * * ? *)","min":5}]"#
                .into(),
        );
        let e = Config::from_map(&m).unwrap_err().to_string();
        assert!(
            e.contains("SCHEDULE_WINDOWS") && e.contains("floor 5"),
            "{e}"
        );
    }

    #[test]
    fn missing_variable_is_named() {
        let mut m = base();
        m.remove("SERVICE_NAME");
        let e = Config::from_map(&m).unwrap_err();
        assert_eq!(e, ConfigError::Missing("SERVICE_NAME"));
        assert!(e.to_string().contains("SERVICE_NAME"));
    }

    #[test]
    fn bad_number_is_named() {
        let mut m = base();
        m.insert("SCALE_OUT_COOLDOWN_S".into(), "soon".into());
        let e = Config::from_map(&m).unwrap_err().to_string();
        assert!(
            e.contains("SCALE_OUT_COOLDOWN_S") && e.contains("soon"),
            "{e}"
        );
    }

    #[test]
    fn max_below_min_is_rejected() {
        let mut m = base();
        m.insert("MIN_TASKS".into(), "5".into());
        let e = Config::from_map(&m).unwrap_err().to_string();
        assert!(e.contains("MAX_TASKS"), "{e}");
    }

    #[test]
    fn db_cap_needs_both_halves() {
        let mut m = base();
        m.insert("DB_MAX_CONNECTIONS".into(), "100".into());
        assert_eq!(
            Config::from_map(&m).unwrap_err(),
            ConfigError::Missing("DB_POOL_PER_TASK")
        );
        m.insert("DB_POOL_PER_TASK".into(), "10".into());
        let cap = Config::from_map(&m).unwrap().db_cap.unwrap();
        assert_eq!((cap.max_connections, cap.pool_per_task), (100, 10));
    }

    #[test]
    fn ip_rewrite_parses_and_applies() {
        let mut m = base();
        m.insert("TASK_IP_PREFIX_REWRITE".into(), "172.31.=127.31.".into());
        let r = Config::from_map(&m).unwrap().ip_rewrite.unwrap();
        assert_eq!(r.apply("172.31.4.5"), "127.31.4.5");
        assert_eq!(r.apply("10.0.0.1"), "10.0.0.1");
    }

    #[test]
    fn dry_run_and_mode_parse() {
        let mut m = base();
        m.insert("DRY_RUN".into(), "TRUE".into());
        m.insert("SCALE_OUT_MODE".into(), "proportional".into());
        let c = Config::from_map(&m).unwrap();
        assert!(c.dry_run);
        assert_eq!(c.scale_out_mode, ScaleOutMode::Proportional);
        m.insert("DRY_RUN".into(), "maybe".into());
        assert!(Config::from_map(&m)
            .unwrap_err()
            .to_string()
            .contains("DRY_RUN"));
    }
}
