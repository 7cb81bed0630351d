//! The alarm definitions, read from the one shared definition: the SAM nested
//! stack `infra/scaling.yaml` (its `AWS::CloudWatch::Alarm` resources, whose
//! numbers are `!Ref` parameters with defaults). No number is copied here.
//!
//! The template is decoded by cfn-lint's CloudFormation YAML decoder from the
//! project venv (it understands `!Ref`, `!Sub`, `!GetAtt`), the same decoder
//! that `tests/tests/infra_crosscheck.rs` uses.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context};
use serde_json::Value;

use super::eval::{Comparison, MissingData, Rule, Statistic};

/// One alarm of the template, with its parameters resolved to their defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmDef {
    /// The template's logical ID, e.g. `CpuHighAlarm`.
    pub logical_id: String,
    /// `AlarmName`, e.g. `visits-api-cpu-high`.
    pub name: String,
    /// Metric namespace, e.g. `AWS/ECS` or `VisitsApi`.
    pub namespace: String,
    /// Metric name, e.g. `CPUUtilization`.
    pub metric: String,
    /// Metric dimensions; a parameter without a default keeps its `<Name>`.
    pub dimensions: BTreeMap<String, String>,
    /// Threshold, comparison, statistic, period and M of N.
    pub rule: Rule,
    /// The function binaries its `AlarmActions` invoke (e.g. `scale-up`).
    pub actions: Vec<String>,
}

/// The scaling template's path in the repository.
pub fn scaling_template() -> std::path::PathBuf {
    test_support::paths::repo_root().join("infra/scaling.yaml")
}

/// Decodes a CloudFormation YAML template to JSON with the venv's cfn-lint.
pub fn decode(path: &Path) -> anyhow::Result<Value> {
    let python = test_support::paths::venv_bin()?.join("python");
    let script = "import json, sys\n\
        from cfnlint.decode import decode\n\
        t, errs = decode(sys.argv[1])\n\
        if errs or t is None:\n\
        \x20   sys.exit('; '.join(str(e) for e in errs))\n\
        json.dump(t, sys.stdout)\n";
    let out = Command::new(&python)
        .arg("-c")
        .arg(script)
        .arg(path)
        .output()
        .with_context(|| format!("run {} (run `make setup`)", python.display()))?;
    if !out.status.success() {
        bail!(
            "decoding {} failed (is cfn-lint in the venv? run `make setup`): {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    serde_json::from_slice(&out.stdout).context("the decoder printed no JSON")
}

/// Every alarm of the scaling template (`infra/scaling.yaml`).
pub fn load() -> anyhow::Result<Vec<AlarmDef>> {
    alarms(&decode(&scaling_template())?)
}

/// Every `AWS::CloudWatch::Alarm` of a decoded template, sorted by name.
pub fn alarms(t: &Value) -> anyhow::Result<Vec<AlarmDef>> {
    let resources = t["Resources"]
        .as_object()
        .context("template has no Resources")?;
    let mut out = Vec::new();
    for (id, res) in resources {
        if res["Type"] != "AWS::CloudWatch::Alarm" {
            continue;
        }
        out.push(alarm(t, id, &res["Properties"]).with_context(|| format!("alarm {id}"))?);
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

fn alarm(t: &Value, id: &str, p: &Value) -> anyhow::Result<AlarmDef> {
    let text = |key: &str| -> anyhow::Result<String> {
        resolve_text(t, &p[key]).with_context(|| format!("{key} is {}", p[key]))
    };
    let number = |key: &str| -> anyhow::Result<f64> {
        resolve_number(t, &p[key]).with_context(|| format!("{key} is {}", p[key]))
    };
    let count = |key: &str| -> anyhow::Result<u32> {
        let n = number(key)?;
        anyhow::ensure!(n >= 1.0 && n.fract() == 0.0, "{key} = {n} is not a count");
        Ok(n as u32)
    };
    let mut dimensions = BTreeMap::new();
    for d in p["Dimensions"].as_array().into_iter().flatten() {
        let name = d["Name"].as_str().context("dimension without Name")?;
        let value = resolve_text(t, &d["Value"]).unwrap_or_else(|_| format!("<{name}>"));
        dimensions.insert(name.to_string(), value);
    }
    let evaluation_periods = count("EvaluationPeriods")?;
    let datapoints_to_alarm = if p["DatapointsToAlarm"].is_null() {
        evaluation_periods // CloudWatch's default: N of N
    } else {
        count("DatapointsToAlarm")?
    };
    let missing = if p["TreatMissingData"].is_null() {
        MissingData::Missing
    } else {
        text("TreatMissingData")?.parse()?
    };
    let rule = Rule {
        comparison: text("ComparisonOperator")?.parse()?,
        threshold: number("Threshold")?,
        statistic: text("Statistic")?.parse()?,
        period_s: count("Period")?,
        evaluation_periods,
        datapoints_to_alarm,
        missing,
    };
    let mut actions = Vec::new();
    for a in p["AlarmActions"].as_array().into_iter().flatten() {
        actions.push(function_binary(t, a)?);
    }
    Ok(AlarmDef {
        logical_id: id.to_string(),
        name: text("AlarmName")?,
        namespace: text("Namespace")?,
        metric: text("MetricName")?,
        dimensions,
        rule,
        actions,
    })
}

/// `!GetAtt ScaleUpFunction.Arn` -> the function's binary (`BuildProperties.Binary`).
fn function_binary(t: &Value, action: &Value) -> anyhow::Result<String> {
    let id = match &action["Fn::GetAtt"] {
        Value::Array(a) if a.len() == 2 && a[1] == "Arn" => a[0].as_str(),
        Value::String(s) => s.strip_suffix(".Arn"),
        _ => None,
    }
    .with_context(|| format!("alarm action {action} is not !GetAtt <Function>.Arn"))?;
    let f = &t["Resources"][id];
    f["Metadata"]["BuildProperties"]["Binary"]
        .as_str()
        .map(str::to_string)
        .with_context(|| format!("{id} has no Metadata.BuildProperties.Binary"))
}

/// A parameter's default, or an error naming it.
fn default_of<'a>(t: &'a Value, param: &str) -> anyhow::Result<&'a Value> {
    let d = &t["Parameters"][param]["Default"];
    anyhow::ensure!(!d.is_null(), "parameter {param} has no Default");
    Ok(d)
}

/// A literal, `!Ref Param` (its default) or `!Sub "..${Param}.."` (defaults substituted).
fn resolve_text(t: &Value, v: &Value) -> anyhow::Result<String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        _ if v.get("Ref").is_some() => {
            let param = v["Ref"].as_str().context("Ref is not a name")?;
            resolve_text(t, default_of(t, param)?)
        }
        _ if v.get("Fn::Sub").is_some() => {
            let mut s = v["Fn::Sub"]
                .as_str()
                .context("only string !Sub")?
                .to_string();
            while let Some(start) = s.find("${") {
                let end = s[start..].find('}').context("unclosed ${")? + start;
                let param = s[start + 2..end].to_string();
                let value = resolve_text(t, default_of(t, &param)?)?;
                s.replace_range(start..=end, &value);
            }
            Ok(s)
        }
        other => bail!("cannot resolve {other}"),
    }
}

fn resolve_number(t: &Value, v: &Value) -> anyhow::Result<f64> {
    if let Some(n) = v.as_f64() {
        return Ok(n);
    }
    let s = resolve_text(t, v)?;
    s.trim()
        .parse()
        .with_context(|| format!("{s:?} is not a number"))
}

impl std::str::FromStr for Statistic {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        Ok(match s {
            "Average" => Self::Average,
            "Sum" => Self::Sum,
            "Minimum" => Self::Minimum,
            "Maximum" => Self::Maximum,
            "SampleCount" => Self::SampleCount,
            other => bail!("unsupported statistic {other:?}"),
        })
    }
}

impl std::str::FromStr for Comparison {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        Ok(match s {
            "GreaterThanThreshold" => Self::Greater,
            "GreaterThanOrEqualToThreshold" => Self::GreaterOrEqual,
            "LessThanThreshold" => Self::Less,
            "LessThanOrEqualToThreshold" => Self::LessOrEqual,
            other => bail!("unsupported comparison {other:?}"),
        })
    }
}

impl std::str::FromStr for MissingData {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        Ok(match s {
            "missing" => Self::Missing,
            "ignore" => Self::Ignore,
            "breaching" => Self::Breaching,
            "notBreaching" => Self::NotBreaching,
            other => bail!("unknown TreatMissingData {other:?}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A small template in decoded form, to pin the resolution rules.
    fn sample() -> Value {
        json!({
            "Parameters": {
                "ServiceName": {"Type": "String", "Default": "svc"},
                "Hi": {"Type": "Number", "Default": 70},
                "Periods": {"Type": "Number", "Default": "3"},
                "Lb": {"Type": "String"}
            },
            "Resources": {
                "UpFunction": {"Type": "AWS::Serverless::Function",
                    "Metadata": {"BuildProperties": {"Binary": "scale-up"}}},
                "HighAlarm": {"Type": "AWS::CloudWatch::Alarm", "Properties": {
                    "AlarmName": {"Fn::Sub": "${ServiceName}-high"},
                    "Namespace": "AWS/ECS", "MetricName": "CPUUtilization",
                    "Statistic": "Average",
                    "Dimensions": [{"Name": "ServiceName", "Value": {"Ref": "ServiceName"}},
                                   {"Name": "LoadBalancer", "Value": {"Ref": "Lb"}}],
                    "ComparisonOperator": "GreaterThanThreshold",
                    "Threshold": {"Ref": "Hi"}, "Period": 60,
                    "EvaluationPeriods": {"Ref": "Periods"},
                    "AlarmActions": [{"Fn::GetAtt": ["UpFunction", "Arn"]}]
                }}
            }
        })
    }

    #[test]
    fn resolves_refs_subs_and_defaults() {
        let a = &alarms(&sample()).unwrap()[0];
        assert_eq!(a.name, "svc-high");
        assert_eq!(a.rule.threshold, 70.0);
        assert_eq!(a.rule.evaluation_periods, 3);
        assert_eq!(a.rule.datapoints_to_alarm, 3, "N of N when omitted");
        assert_eq!(a.rule.missing, MissingData::Missing, "CloudWatch's default");
        assert_eq!(a.rule.comparison, Comparison::Greater);
        assert_eq!(a.dimensions["ServiceName"], "svc");
        assert_eq!(a.dimensions["LoadBalancer"], "<LoadBalancer>");
        assert_eq!(a.actions, vec!["scale-up".to_string()]);
    }

    #[test]
    fn a_number_parameter_without_default_is_an_error() {
        let mut t = sample();
        t["Parameters"]["Hi"] = json!({"Type": "Number"});
        let err = alarms(&t).unwrap_err();
        assert!(format!("{err:#}").contains("Hi has no Default"), "{err:#}");
    }

    /// The real file: the contract's alarms exist, with the actions and the
    /// numbers of the template's own parameter defaults.
    #[test]
    fn reads_the_real_scaling_template() {
        let t = decode(&scaling_template()).expect("decode infra/scaling.yaml");
        let defs = alarms(&t).expect("alarms of infra/scaling.yaml");
        let by_name = |n: &str| {
            defs.iter()
                .find(|a| a.name == n)
                .unwrap_or_else(|| panic!("{n} missing from {defs:#?}"))
        };
        let default = |p: &str| resolve_number(&t, &t["Parameters"][p]["Default"]).unwrap();
        let cpu_high = by_name("visits-api-cpu-high");
        assert_eq!(cpu_high.actions, ["scale-up"]);
        assert_eq!(cpu_high.rule.threshold, default("CpuHighThreshold"));
        assert_eq!(
            f64::from(cpu_high.rule.period_s),
            default("CpuHighPeriodSeconds")
        );
        assert_eq!(
            f64::from(cpu_high.rule.datapoints_to_alarm),
            default("CpuHighDatapointsToAlarm")
        );
        assert_eq!(cpu_high.dimensions["ClusterName"], "visits");
        assert_eq!(cpu_high.dimensions["ServiceName"], "visits-api");
        let cpu_low = by_name("visits-api-cpu-low");
        assert_eq!(cpu_low.actions, ["scale-down"]);
        assert!(matches!(
            cpu_low.rule.comparison,
            Comparison::Less | Comparison::LessOrEqual
        ));
        for n in [
            "visits-api-memory-high",
            "visits-api-inflight-high",
            "visits-api-latency-p95-high",
        ] {
            assert_eq!(by_name(n).actions, ["scale-up"], "{n}");
        }
        for n in ["visits-api-5xx", "visits-api-unhealthy-hosts"] {
            assert!(by_name(n).actions.is_empty(), "{n} only notifies");
        }
    }
}
