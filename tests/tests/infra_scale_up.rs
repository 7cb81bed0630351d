//! Template cross-checks for scale-up's re-evaluation (docs/scale-up.md): the
//! schedule that re-reads the scale-out alarms, its permissions, and that every
//! alarm whose action invokes scale-up is one the schedule re-reads.

use e2e::template::{of_type, referenced_id, resolve_number, resolve_text};
use serde_json::{json, Value};
use std::collections::BTreeSet;

fn scaling() -> &'static Value {
    e2e::template::infra("scaling.yaml")
}

fn global_var(name: &str) -> &'static Value {
    let v = &scaling()["Globals"]["Function"]["Environment"]["Variables"][name];
    assert!(!v.is_null(), "Globals set no {name}");
    v
}

fn names(v: &Value) -> BTreeSet<String> {
    resolve_text(scaling(), v)
        .expect("resolve the list")
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Alarm resources whose `AlarmActions` invoke `function`: (name, properties).
fn alarms_invoking(function: &str) -> Vec<(String, &'static Value)> {
    let t = scaling();
    e2e::template::alarms_invoking(t, &[function])
        .into_iter()
        .map(|(_, a)| {
            let name = resolve_text(t, &a["Properties"]["AlarmName"]).expect("alarm name");
            (name, &a["Properties"])
        })
        .collect()
}

#[test]
fn every_scale_out_alarm_is_re_read_by_the_schedule() {
    let listed = names(global_var("SCALE_OUT_ALARMS"));
    let invoking: BTreeSet<String> = alarms_invoking("ScaleUpFunction")
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert!(!invoking.is_empty());
    assert_eq!(
        listed, invoking,
        "SCALE_OUT_ALARMS vs the alarms whose action invokes ScaleUpFunction: an alarm left out \
         adds one step per state change only"
    );
}

#[test]
fn proportional_sizing_is_for_load_metrics_only() {
    let t = scaling();
    assert_eq!(
        resolve_text(t, global_var("SCALE_OUT_MODE")).unwrap(),
        "proportional"
    );
    let proportional = names(global_var("SCALE_OUT_PROPORTIONAL_ALARMS"));
    let alarms = alarms_invoking("ScaleUpFunction");
    for name in &proportional {
        let (_, props) = alarms
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("{name} is not a scale-out alarm"));
        // A per-task average that falls as tasks are added: tasks × value / threshold holds.
        let metric = props["MetricName"].as_str().unwrap_or_default();
        assert!(
            ["InFlight", "CPUUtilization"].contains(&metric),
            "{name} watches {metric}: not proportional to the number of tasks"
        );
        assert_eq!(props["Statistic"], "Average", "{name}");
    }
    assert_eq!(proportional.len(), 2, "{proportional:?}");
}

#[test]
fn the_reevaluation_schedule_invokes_scale_up_every_period() {
    let t = scaling();
    let rule = &t["Resources"]["ScaleUpReevaluateRule"]["Properties"];
    assert_eq!(rule["ScheduleExpression"], "rate(1 minute)");
    let period = resolve_number(t, global_var("SCALE_OUT_REEVALUATE_S")).unwrap();
    assert_eq!(period, 60.0, "SCALE_OUT_REEVALUATE_S is the rule's period");
    let targets: Vec<String> = rule["Targets"]
        .as_array()
        .expect("targets")
        .iter()
        .filter_map(|x| referenced_id(&x["Arn"]))
        .collect();
    assert_eq!(targets, ["ScaleUpFunction"]);
    let permission = of_type(t, "AWS::Lambda::Permission")
        .into_iter()
        .find(|(_, p)| {
            referenced_id(&p["Properties"]["SourceArn"]).as_deref() == Some("ScaleUpReevaluateRule")
        })
        .expect("a permission for the rule");
    let p = &permission.1["Properties"];
    assert_eq!(p["Principal"], "events.amazonaws.com");
    assert_eq!(
        referenced_id(&p["FunctionName"]).as_deref(),
        Some("ScaleUpFunction")
    );
    assert_eq!(p["Action"], "lambda:InvokeFunction");
    // A run may wait one period for the cooldown, then act: the timeout leaves room.
    let timeout = t["Resources"]["ScaleUpFunction"]["Properties"]["Timeout"]
        .as_f64()
        .expect("ScaleUpFunction sets its Timeout");
    assert!(
        timeout >= period + 20.0,
        "Timeout {timeout} s < {period} s wait + 20 s"
    );
}

#[test]
fn scale_up_reads_alarms_and_changes_none() {
    let t = scaling();
    let mut actions = BTreeSet::new();
    for policy in t["Resources"]["ScaleUpRole"]["Properties"]["Policies"]
        .as_array()
        .expect("inline policies")
    {
        for st in policy["PolicyDocument"]["Statement"]
            .as_array()
            .expect("statements")
        {
            // Conditional statements (EC2 mode) are `Fn::If [cond, statement, NoValue]`.
            let st = st.get("Fn::If").map_or(st, |f| &f[1]);
            match &st["Action"] {
                Value::String(a) => {
                    actions.insert(a.clone());
                }
                Value::Array(a) => {
                    actions.extend(a.iter().filter_map(|x| x.as_str().map(String::from)))
                }
                other => panic!("Action {other}"),
            }
            if st["Action"] == json!("cloudwatch:DescribeAlarms") {
                assert_eq!(st["Resource"], "*", "DescribeAlarms on the alarms it reads");
            }
        }
    }
    let cloudwatch: BTreeSet<&str> = actions
        .iter()
        .map(String::as_str)
        .filter(|a| a.starts_with("cloudwatch:"))
        .collect();
    // Read-only: never SetAlarmState, PutMetricAlarm or DeleteAlarms (PutMetricData and
    // GetMetricStatistics come from EpisodeStatePolicy).
    assert_eq!(cloudwatch, BTreeSet::from(["cloudwatch:DescribeAlarms"]));
    let shared = &t["Resources"]["EpisodeStatePolicy"]["Properties"]["PolicyDocument"]["Statement"];
    assert!(
        shared
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["Action"] == "cloudwatch:GetMetricStatistics"),
        "the newest datapoint needs GetMetricStatistics"
    );
}

#[test]
fn scale_in_waits_for_the_low_alarms_whole_window() {
    let low = names(global_var("SCALE_IN_ALARMS"));
    let alarms = alarms_invoking("ScaleDownFunction");
    assert_eq!(low.len(), 1, "{low:?}");
    let (_, props) = alarms
        .iter()
        .find(|(n, _)| low.contains(n))
        .expect("the scale-in alarm");
    assert_eq!(
        global_var("SCALE_IN_ALARM_PERIOD_S"),
        &props["Period"],
        "the window's period is the low alarm's"
    );
    assert_eq!(
        global_var("SCALE_IN_ALARM_EVALUATION_PERIODS"),
        &props["EvaluationPeriods"],
        "the window's length is the low alarm's"
    );
}

#[test]
fn the_cpu_thresholds_are_far_enough_apart_not_to_flap() {
    let t = scaling();
    let n = |p: &str| resolve_number(t, &json!({ "Ref": p })).unwrap();
    let (low, high) = (n("CpuLowThreshold"), n("CpuHighThreshold"));
    // The root template passes MinTasks down; its default is the smallest fleet.
    let min = n("MinTasks") as i32;
    assert!(
        scaling::policy::scale_in_keeps_below(low, high, min),
        "a scale-in from {} tasks at {low}% would reach {}% > {high}%",
        min + 1,
        low * f64::from(min + 1) / f64::from(min)
    );
}
