//! The alarm definitions, read from the one shared definition: the SAM nested
//! stack `infra/scaling.yaml` (its `AWS::CloudWatch::Alarm` resources, whose
//! numbers are `!Ref` parameters with defaults). No number is copied here.

use std::collections::BTreeMap;

use anyhow::{bail, Context};
use serde_json::Value;

use crate::cfn::{arn_of, of_type, resolve_number, resolve_text};
use crate::eval::{Comparison, MissingData, Rule, Statistic};

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

/// Every alarm of a CloudFormation YAML template file (e.g. `infra/scaling.yaml`),
/// decoded by [`crate::cfn::decode_file`].
pub fn load_file(path: &std::path::Path) -> anyhow::Result<Vec<AlarmDef>> {
    alarms(&crate::cfn::decode_file(path)?)
}

/// Every `AWS::CloudWatch::Alarm` of a decoded template, sorted by name.
pub fn alarms(t: &Value) -> anyhow::Result<Vec<AlarmDef>> {
    anyhow::ensure!(t["Resources"].is_object(), "template has no Resources");
    let mut out = Vec::new();
    for (id, res) in of_type(t, "AWS::CloudWatch::Alarm") {
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
    let id = arn_of(action)
        .with_context(|| format!("alarm action {action} is not !GetAtt <Function>.Arn"))?;
    let f = &t["Resources"][&id];
    f["Metadata"]["BuildProperties"]["Binary"]
        .as_str()
        .map(str::to_string)
        .with_context(|| format!("{id} has no Metadata.BuildProperties.Binary"))
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
    use crate::cfn::resolve_number;
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

    /// The real file: the alarms of infra/README.md's table exist, with the actions and the
    /// numbers of the template's own parameter defaults.
    #[test]
    fn reads_the_real_scaling_template() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../infra/scaling.yaml");
        let t = crate::cfn::decode_file(&path).expect("decode infra/scaling.yaml");
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
