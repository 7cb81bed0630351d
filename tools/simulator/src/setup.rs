//! The autoscaler's configuration as the template deploys it, read from
//! `infra/scaling.yaml`: the alarms (`alarm_model::template`), the functions'
//! environment (Globals, parameters at their defaults) parsed by the functions'
//! own `scaling::config::Config`, and the schedules that invoke them. Overrides
//! (`--set NAME=VALUE`) change a template parameter (`CpuHighThreshold=60`), a
//! function variable (`SCALE_OUT_STEP=2`) or a model parameter
//! ([`crate::params`]).

use crate::baselines::Bounds;
use crate::params::Params;
use alarm_model::cfn::{arn_of, decode_file, of_type, resolve_text};
use alarm_model::template::{alarms, AlarmDef};
use anyhow::{bail, Context};
use scaling::config::Config;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Everything the project's autoscaler needs from the template.
#[derive(Debug, Clone)]
pub struct Setup {
    pub template: PathBuf,
    pub alarms: Vec<AlarmDef>,
    /// The functions' environment after overrides.
    pub env: BTreeMap<String, String>,
    /// Parsed by the functions' own config reader.
    pub config: Config,
    /// The reconcile schedule of scale-down, seconds (None: no schedule).
    pub scale_down_schedule_s: Option<i64>,
    /// The re-evaluation schedule of scale-up, seconds (None: no schedule).
    pub scale_up_schedule_s: Option<i64>,
    /// Overrides applied, as given (for the report).
    pub overrides: Vec<(String, String)>,
}

/// The repository's `infra/scaling.yaml` (found from this crate's folder).
pub fn default_template() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../infra/scaling.yaml")
}

impl Setup {
    /// Reads `template`, applies `overrides` (model parameters go to `params`).
    pub fn load(
        template: &Path,
        overrides: &[(String, String)],
        params: &mut Params,
    ) -> anyhow::Result<Setup> {
        let mut t = decode_file(template)?;
        let mut env_overrides = Vec::new();
        for (k, v) in overrides {
            if Params::knows(k) {
                params.set(k, v)?;
            } else if t["Parameters"].get(k).is_some() {
                set_parameter(&mut t, k, v)?;
            } else {
                env_overrides.push((k.clone(), v.clone()));
            }
        }
        let mut env = function_env(&t)?;
        for (k, v) in env_overrides {
            if !env.contains_key(&k) && !known_variable(&k) {
                bail!(
                    "--set {k}: not a model parameter (TASK_CAPACITY_RPS, ...), a parameter of {} \
                     (CpuHighThreshold, ...) or a function variable (SCALE_OUT_STEP, ...)",
                    template.display()
                );
            }
            env.insert(k, v);
        }
        // The load balancer's names come with the deployment; predictive scaling reads
        // the simulated request count instead.
        for (k, v) in [
            ("PREDICTIVE_LOAD_BALANCER", "app/simulated/0"),
            ("PREDICTIVE_TARGET_GROUP", "targetgroup/simulated/0"),
        ] {
            if env.get(k).is_none_or(|x| x.is_empty()) {
                env.insert(k.into(), v.into());
            }
        }
        let map: HashMap<String, String> = env.clone().into_iter().collect();
        let config = Config::from_map(&map).context("the functions' configuration")?;
        let alarms = alarms(&t)?;
        let scale_down_schedule_s = schedule_of(&t, "scale-down")?;
        let scale_up_schedule_s = schedule_of(&t, "scale-up")?;
        Ok(Setup {
            template: template.to_path_buf(),
            alarms,
            env,
            config,
            scale_down_schedule_s,
            scale_up_schedule_s,
            overrides: overrides.to_vec(),
        })
    }

    /// Min and max tasks.
    pub fn bounds(&self) -> Bounds {
        Bounds {
            min: self.config.min_tasks,
            max: self.config.max_tasks,
        }
    }
}

/// Variables the functions read that the template may leave unset.
fn known_variable(k: &str) -> bool {
    [
        "SCALE_OUT_MODE",
        "SCALE_OUT_MAX_STEP",
        "SCALE_IN_ALARMS",
        "DB_MAX_CONNECTIONS",
        "DB_POOL_PER_TASK",
        "DB_INSTANCE_ID",
        "SCHEDULE_WINDOWS",
        "PREDICTIVE_MODE",
        "PREDICTIVE_STEP_S",
    ]
    .contains(&k)
}

fn set_parameter(t: &mut Value, k: &str, v: &str) -> anyhow::Result<()> {
    let p = &mut t["Parameters"][k];
    let number = p["Type"] == "Number";
    p["Default"] = if number {
        let n: f64 = v
            .parse()
            .with_context(|| format!("--set {k}={v}: the parameter is a Number"))?;
        // Whole numbers stay integers: the functions parse "10", not "10.0".
        if n.fract() == 0.0 && n.abs() < 1e15 {
            serde_json::json!(n as i64)
        } else {
            serde_json::json!(n)
        }
    } else {
        Value::String(v.to_string())
    };
    if let Some(allowed) = p["AllowedValues"].as_array() {
        let ok = allowed
            .iter()
            .any(|a| a == &p["Default"] || a.as_str() == Some(v) || a.as_f64() == v.parse().ok());
        if !ok {
            bail!(
                "--set {k}={v}: the template allows only {}",
                p["AllowedValues"]
            );
        }
    }
    Ok(())
}

/// The Globals environment of every function, parameters at their defaults.
/// Variables that name a resource (a topic ARN) have no value before
/// deployment and are left out; they steer no decision.
fn function_env(t: &Value) -> anyhow::Result<BTreeMap<String, String>> {
    let vars = t["Globals"]["Function"]["Environment"]["Variables"]
        .as_object()
        .context("no Globals.Function.Environment.Variables in the template")?;
    let mut env = BTreeMap::new();
    for (k, v) in vars {
        // A resource, or a parameter that only a deployment fills (the load balancer's name).
        let is_resource = v.get("Ref").and_then(Value::as_str).is_some_and(|r| {
            t["Resources"].get(r).is_some()
                || t["Parameters"]
                    .get(r)
                    .is_some_and(|p| p.get("Default").is_none())
        });
        if is_resource {
            continue;
        }
        let s = resolve_text(t, v).with_context(|| format!("function variable {k}"))?;
        env.insert(k.clone(), s);
    }
    Ok(env)
}

/// The `rate(...)` of the EventBridge schedule that invokes `binary`, seconds.
fn schedule_of(t: &Value, binary: &str) -> anyhow::Result<Option<i64>> {
    for (id, rule) in of_type(t, "AWS::Events::Rule") {
        let Some(expr) = rule["Properties"]["ScheduleExpression"].as_str() else {
            continue;
        };
        let targets = rule["Properties"]["Targets"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let ours = targets.iter().any(|target| {
            arn_of(&target["Arn"]).is_some_and(|f| {
                t["Resources"][&f]["Metadata"]["BuildProperties"]["Binary"] == binary
            })
        });
        if ours {
            return rate_seconds(expr)
                .with_context(|| format!("{id}: ScheduleExpression {expr:?}"))
                .map(Some);
        }
    }
    Ok(None)
}

/// `rate(2 minutes)` -> 120.
pub fn rate_seconds(expr: &str) -> anyhow::Result<i64> {
    let inner = expr
        .strip_prefix("rate(")
        .and_then(|s| s.strip_suffix(')'))
        .context("only rate(N unit) schedules are modelled")?;
    let (n, unit) = inner
        .trim()
        .split_once(' ')
        .context("expected rate(N unit)")?;
    let n: i64 = n.parse().context("N is not a whole number")?;
    let per = match unit.trim() {
        "minute" | "minutes" => 60,
        "hour" | "hours" => 3600,
        "day" | "days" => 86400,
        other => bail!("unknown rate unit {other:?}"),
    };
    Ok(n * per)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(overrides: &[(&str, &str)]) -> anyhow::Result<(Setup, Params)> {
        let mut p = Params::default();
        let o: Vec<_> = overrides
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Setup::load(&default_template(), &o, &mut p).map(|s| (s, p))
    }

    #[test]
    fn reads_the_template_as_deployed() {
        let (s, _) = load(&[]).unwrap();
        assert!(s.alarms.iter().any(|a| a.name == "visits-api-cpu-high"));
        assert_eq!(s.config.service, "visits-api");
        assert!(s.config.min_tasks >= 1 && s.config.max_tasks > s.config.min_tasks);
        assert_eq!(s.scale_down_schedule_s, Some(120), "rate(2 minutes)");
        assert_eq!(
            s.config.scale_in_alarms,
            vec!["visits-api-cpu-low".to_string()]
        );
    }

    #[test]
    fn overrides_reach_parameters_variables_and_the_model() {
        let (s, p) = load(&[
            ("SCALE_OUT_STEP", "2"),
            ("CpuHighThreshold", "60"),
            ("TASK_START_S", "30"),
        ])
        .unwrap();
        assert_eq!(s.config.scale_out_step, 2);
        let hi = s
            .alarms
            .iter()
            .find(|a| a.name == "visits-api-cpu-high")
            .unwrap();
        assert_eq!(hi.rule.threshold, 60.0);
        assert_eq!(p.task_start_s, 30.0);
        let (s, _) = load(&[("MaxTasks", "10")]).unwrap();
        assert_eq!(
            s.config.max_tasks, 10,
            "a Number parameter reaches the functions as 10"
        );
        for (bad, why) in [
            (("NOPE", "1"), "--set NOPE"),
            (("SCALE_OUT_STEP", "0"), "SCALE_OUT_STEP"),
            (("CpuHighPeriodSeconds", "7"), "allows only"),
            (("CpuHighThreshold", "high"), "Number"),
        ] {
            let e = format!("{:#}", load(&[bad]).unwrap_err());
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }

    #[test]
    fn rates() {
        assert_eq!(rate_seconds("rate(2 minutes)").unwrap(), 120);
        assert_eq!(rate_seconds("rate(1 hour)").unwrap(), 3600);
        assert!(rate_seconds("cron(0 * * * ? *)").is_err());
    }
}
