//! Scheduled capacity, from the template to the function: the root template's window
//! parameters, the SCHEDULE_WINDOWS it builds for the functions, the EventBridge Scheduler
//! schedules of `infra/schedule.yaml` (which function each edge invokes, with what input),
//! and the real scale-up handler invoked with that input against the AWS emulator.

use e2e::template::{default_of, of_type, referenced_id};
use scale_up::{handle_at, Deps};
use scaling::config::Config;
use scaling::report::{Outcome, TriggerSummary};
use scaling::window::{Bounds, Windows};
use serde_json::Value;
use std::collections::HashMap;
use test_support::emulated_ecs::EmulatedEcs;

use e2e::template::infra as template;

/// `!Sub` text with `${Param}` from `values`, else the template's default.
fn sub(t: &Value, v: &Value, values: &HashMap<&str, &str>) -> String {
    let mut rest = v["Fn::Sub"]
        .as_str()
        .unwrap_or_else(|| panic!("not a !Sub: {v}"));
    let mut out = String::new();
    while let Some(start) = rest.find("${") {
        let end = rest[start..].find('}').unwrap() + start;
        let param = &rest[start + 2..end];
        out.push_str(&rest[..start]);
        match values.get(param) {
            Some(v) => out.push_str(v),
            None => out.push_str(default_of(t, param).unwrap().as_str().unwrap()),
        }
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

fn business_hours() -> HashMap<&'static str, &'static str> {
    HashMap::from([
        ("Window1Name", "business-hours"),
        ("Window1Start", "cron(0 8 ? * MON-FRI *)"),
        ("Window1End", "cron(0 18 ? * MON-FRI *)"),
        ("Window1Timezone", "Europe/Madrid"),
        ("Window1Min", "4"),
        ("Window1Max", "12"),
    ])
}

/// SCHEDULE_WINDOWS as the root template builds it from `values`.
fn schedule_windows(values: &HashMap<&str, &str>) -> String {
    let root = template("template.yaml");
    let sub_v = &root["Resources"]["ScalingStack"]["Properties"]["Parameters"]["ScheduleWindows"];
    sub(root, sub_v, values)
}

fn now() -> chrono::DateTime<chrono::Utc> {
    "2026-12-01T06:00:00Z".parse().unwrap()
}

#[test]
fn the_root_builds_schedule_windows_that_the_functions_parse() {
    let w = Windows::parse(&schedule_windows(&HashMap::new()), 1, 6, now()).unwrap();
    assert!(w.windows.is_empty(), "the defaults declare no window");
    let w = Windows::parse(&schedule_windows(&business_hours()), 1, 6, now()).unwrap();
    assert_eq!(w.windows.len(), 1);
    let b = w.bounds_at_utc("2026-12-01T09:00:00Z".parse().unwrap());
    assert_eq!((b.min, b.max), (4, 12));
    // The scaling stack hands it to every function.
    let scaling = template("scaling.yaml");
    let env = &scaling["Globals"]["Function"]["Environment"]["Variables"]["SCHEDULE_WINDOWS"];
    assert_eq!(
        referenced_id(env).as_deref(),
        Some("ScheduleWindows"),
        "{env}"
    );
}

#[test]
fn window_parameters_refuse_bad_expressions_at_deploy_time() {
    let root = template("template.yaml");
    for slot in ["Window1", "Window2"] {
        for edge in ["Start", "End"] {
            let p = &root["Parameters"][format!("{slot}{edge}")];
            let re = regex_lite::Regex::new(p["AllowedPattern"].as_str().unwrap()).unwrap();
            for ok in [
                "",
                "cron(0 8 ? * MON-FRI *)",
                "cron(0/15 9-17 1,15 * ? 2026)",
                "at(2026-12-24T08:00:00)",
            ] {
                assert!(re.is_match(ok), "{slot}{edge} refuses {ok:?}");
            }
            for bad in [
                "cron(0 8 ? * MON-FRI)",
                "rate(5 minutes)",
                "cron(0 8 ? * MON-FRI *) ",
                "at(2026-12-24 08:00)",
                "0 8 * * *",
            ] {
                assert!(!re.is_match(bad), "{slot}{edge} accepts {bad:?}");
            }
        }
        for bound in ["Min", "Max"] {
            let p = &root["Parameters"][format!("{slot}{bound}")];
            let re = regex_lite::Regex::new(p["AllowedPattern"].as_str().unwrap()).unwrap();
            assert!(
                re.is_match("")
                    && re.is_match("12")
                    && !re.is_match("-1")
                    && !re.is_match("4 tasks")
            );
        }
        // Rules: a start needs an end, a name and a bound.
        let rule = &root["Rules"][format!("{slot}IsComplete")];
        assert!(
            rule["Assertions"].as_array().map(Vec::len).unwrap_or(0) >= 3,
            "{rule}"
        );
    }
}

#[test]
fn start_edges_invoke_scale_up_and_end_edges_scale_down_with_the_input_they_parse() {
    let t = template("schedule.yaml");
    let schedules = of_type(t, "AWS::Scheduler::Schedule");
    assert_eq!(schedules.len(), 4, "two slots, two edges each");
    let values = HashMap::from([("Window1Name", "business-hours"), ("Window2Name", "nights")]);
    for (id, r) in schedules {
        let p = &r["Properties"];
        let slot = &id[..7];
        let edge = if id.contains("Start") { "start" } else { "end" };
        let input = sub(t, &p["Target"]["Input"], &values)
            .replace("<aws.scheduler.scheduled-time>", "2026-12-01T07:00:00Z");
        let event: Value = serde_json::from_str(&input).unwrap_or_else(|e| panic!("{id}: {e}"));
        let parsed = scaling::trigger::parse(&event).unwrap_or_else(|e| panic!("{id}: {e}"));
        let TriggerSummary::Window { edge: got, .. } = parsed.summary() else {
            panic!("{id}: not a window edge")
        };
        assert_eq!(got, edge, "{id}");
        let function = if edge == "start" {
            "ScaleUpFunctionArn"
        } else {
            "ScaleDownFunctionArn"
        };
        assert_eq!(
            referenced_id(&p["Target"]["Arn"]).as_deref(),
            Some(function),
            "{id}"
        );
        assert_eq!(
            referenced_id(&p["ScheduleExpression"]).as_deref(),
            Some(format!("{slot}{}", if edge == "start" { "Start" } else { "End" }).as_str()),
            "{id}"
        );
        assert_eq!(
            referenced_id(&p["ScheduleExpressionTimezone"]).as_deref(),
            Some(format!("{slot}Timezone").as_str()),
            "{id}"
        );
        assert_eq!(
            p["FlexibleTimeWindow"]["Mode"], "OFF",
            "{id}: edges fire on time"
        );
        assert_eq!(r["Condition"], format!("Has{slot}"), "{id}");
    }
    // The role may invoke the two scaling functions and nothing else.
    let role = &t["Resources"]["SchedulerRole"]["Properties"];
    let statements = role["Policies"][0]["PolicyDocument"]["Statement"]
        .as_array()
        .unwrap();
    assert_eq!(statements.len(), 1);
    assert_eq!(statements[0]["Action"], "lambda:InvokeFunction");
    let targets: Vec<String> = statements[0]["Resource"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(referenced_id)
        .collect();
    assert_eq!(targets, ["ScaleUpFunctionArn", "ScaleDownFunctionArn"]);
    // The root passes every slot's edges down, and the function ARNs from the scaling stack.
    let root = template("template.yaml");
    let stack = &root["Resources"]["ScheduleStack"];
    assert_eq!(stack["Condition"], "HasWindows");
    for (param, _) in t["Parameters"].as_object().unwrap() {
        assert!(
            !stack["Properties"]["Parameters"][param].is_null(),
            "the root does not pass {param} to schedule.yaml"
        );
    }
    let outputs = template("scaling.yaml")["Outputs"].as_object().unwrap();
    assert!(
        outputs.contains_key("ScaleUpFunctionArn") && outputs.contains_key("ScaleDownFunctionArn")
    );
}

/// A cluster with service `visits-api` at `desired` tasks, and scale-up's deps with the
/// business-hours window as the root template builds it (plain limits 1..6).
async fn stack(cluster: &str, desired: i32) -> (EmulatedEcs, Deps) {
    let world = EmulatedEcs::builder()
        .cluster(cluster)
        .tasks(desired)
        .build()
        .await
        .expect("the emulated service");
    let env: HashMap<String, String> = [
        ("CLUSTER_NAME", cluster.to_string()),
        ("SERVICE_NAME", "visits-api".into()),
        ("MIN_TASKS", "1".into()),
        ("MAX_TASKS", "6".into()),
        ("SCHEDULE_WINDOWS", schedule_windows(&business_hours())),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let config = Config::from_map(&env).expect("config with the window");
    let deps = Deps::new(config, &world.sdk);
    (world, deps)
}

/// The input the start schedule sends (infra/schedule.yaml), due at `due`.
fn start_input(due: &str) -> Value {
    let t = template("schedule.yaml");
    let input = sub(
        t,
        &t["Resources"]["Window1StartSchedule"]["Properties"]["Target"]["Input"],
        &business_hours(),
    )
    .replace("<aws.scheduler.scheduled-time>", due);
    serde_json::from_str(&input).unwrap()
}

#[tokio::test]
async fn a_window_start_raises_the_service_to_its_floor_once() {
    let cluster = "window-start";
    let (world, deps) = stack(cluster, 1).await;
    // Tuesday 2026-12-01 08:00 CET = 07:00 UTC; the function runs a few seconds later.
    let due = "2026-12-01T07:00:00Z";
    let at = "2026-12-01T07:00:03Z".parse().unwrap();
    let r = handle_at(start_input(due), &deps, at).await.unwrap();
    assert_eq!(r.outcome, Outcome::Completed, "{r:#?}");
    assert_eq!(r.decision.target, Some(4));
    assert!(
        r.decision.reason.contains("window floor: 1 -> 4"),
        "{:?}",
        r.decision
    );
    let window = Bounds {
        min: 4,
        max: 12,
        window: Some("business-hours".into()),
    };
    assert_eq!(
        r.bounds.as_ref(),
        Some(&window),
        "the report shows the bounds in force"
    );
    assert!(
        matches!(&r.trigger, TriggerSummary::Window { window, edge, .. }
        if window == "business-hours" && edge == "start")
    );
    assert_eq!(world.desired().await.unwrap(), 4);

    // Scheduler retries the same edge: one action (the key is the window and its due time).
    let r = handle_at(start_input(due), &deps, at).await.unwrap();
    assert_eq!(r.outcome, Outcome::Skipped, "{r:#?}");
    assert!(
        r.outcome_reason.contains("duplicate"),
        "{}",
        r.outcome_reason
    );
    assert_eq!(world.desired().await.unwrap(), 4);

    // In the window, an alarm scales out past the plain max (6) up to the window's 12.
    world
        .ecs
        .update_service()
        .cluster(cluster)
        .service("visits-api")
        .desired_count(6)
        .send()
        .await
        .unwrap();
    let mut alarm: Value = serde_json::from_str(
        &std::fs::read_to_string(
            e2e::template::infra_dir().join("../events/scale-up-cpu-high-alarm.json"),
        )
        .unwrap(),
    )
    .unwrap();
    alarm["alarmData"]["configuration"]["metrics"][0]["metricStat"]["metric"]["dimensions"]
        ["ClusterName"] = Value::String(cluster.into());
    alarm["alarmData"]["state"]["timestamp"] = Value::String("2026-12-01T09:00:00.000+0000".into());
    let r = handle_at(alarm, &deps, "2026-12-01T09:00:01Z".parse().unwrap())
        .await
        .unwrap();
    assert_eq!(r.outcome, Outcome::Completed, "{r:#?}");
    assert_eq!(world.desired().await.unwrap(), 7);
}

#[tokio::test]
async fn a_start_delivered_after_its_window_closed_changes_nothing() {
    let cluster = "window-late";
    let (world, deps) = stack(cluster, 1).await;
    // Saturday: the window is not in force, whatever the event says.
    let r = handle_at(
        start_input("2026-12-04T07:00:00Z"),
        &deps,
        "2026-12-05T10:00:00Z".parse().unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(r.outcome, Outcome::Skipped, "{r:#?}");
    assert!(
        r.outcome_reason.contains("not in force"),
        "{}",
        r.outcome_reason
    );
    assert_eq!(r.bounds.as_ref().map(|b| (b.min, b.max)), Some((1, 6)));
    assert_eq!(world.desired().await.unwrap(), 1);
    // A window the config does not declare: a bad event, non-retryable, nothing read.
    let mut ev = start_input("2026-12-01T07:00:00Z");
    ev["window"] = Value::String("nights".into());
    let err = handle_at(ev, &deps, "2026-12-01T07:00:03Z".parse().unwrap())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not declared"), "{err}");
}
