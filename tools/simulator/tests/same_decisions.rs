//! The simulator's decisions for a scripted alarm sequence equal the
//! functions' decisions for the same sequence.
//!
//! Scale-up: the real handler (`scale_up::handle_at`) over the real SDK client
//! against aws-smithy-mocks that keep one service (desired count and tags,
//! which TagResource and UpdateService change), beside the simulator's
//! [`scale_up_decision`] with its own copy of the same state. Every event of
//! the script is a payload CloudWatch would send (`alarm_model::payload`).
//!
//! Scale-up's scheduled re-evaluation: the real `scale_up::reevaluate::evaluate`
//! beside the simulator's [`scale_up_reevaluation`], which restates its steps. The
//! mocks also keep the scale-out alarms (DescribeAlarms) and their newest datapoints
//! (GetMetricStatistics); the simulator is given what the real adapter reads from them.
//!
//! Scale-down needs no twin: the simulator calls the real step machine itself
//! (`scale_down::handle` behind `simulator::port`); `known_cases::step_load`
//! checks its decisions (the schedule's re-read, the scale-in cooldown).

use alarm_model::eval::{Datapoint, State, Transition};
use alarm_model::payload::{alarm_action_event, state_record, StateRecord};
use alarm_model::template::AlarmDef;
use aws_sdk_cloudwatch::operation::describe_alarms::DescribeAlarmsOutput;
use aws_sdk_cloudwatch::operation::get_metric_statistics::GetMetricStatisticsOutput;
use aws_sdk_cloudwatch::operation::put_metric_data::PutMetricDataOutput;
use aws_sdk_cloudwatch::types::{
    ComparisonOperator, Datapoint as CwDatapoint, Dimension, MetricAlarm as CwMetricAlarm,
    StateValue, Statistic as CwStatistic,
};
use aws_sdk_ecs::operation::describe_services::DescribeServicesOutput;
use aws_sdk_ecs::operation::tag_resource::TagResourceOutput;
use aws_sdk_ecs::operation::untag_resource::UntagResourceOutput;
use aws_sdk_ecs::operation::update_service::UpdateServiceOutput;
use aws_sdk_ecs::types::{Service as EcsService, Tag};
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use scale_up::Deps;
use scaling::aws::{autoscaling::AutoScaling, cloudwatch::CloudWatch, ecs::Ecs};
use scaling::config::Config;
use serde_json::Value;
use simulator::metrics::EPOCH_MS;
use simulator::params::Params;
use simulator::project::{scale_up_decision, scale_up_reevaluation};
use simulator::service::Service;
use simulator::setup::{default_template, Setup};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

#[derive(Debug, Default)]
struct World {
    desired: i32,
    tags: BTreeMap<String, String>,
    /// Scale-out alarms by name: (state, since, newest value), times in script seconds.
    alarms: BTreeMap<String, (&'static str, i64, f64)>,
    /// The script's clock (seconds): the newest datapoint is 10 s before it.
    now: i64,
}

fn smithy_time(t: i64) -> aws_sdk_cloudwatch::primitives::DateTime {
    aws_sdk_cloudwatch::primitives::DateTime::from_millis(EPOCH_MS + t * 1000)
}

/// DescribeAlarms as CloudWatch answers it for the alarms the world keeps, with each
/// alarm's metric, statistic and period from the template.
fn describe_alarms(w: &World, defs: &[AlarmDef]) -> DescribeAlarmsOutput {
    let mut out = DescribeAlarmsOutput::builder();
    for (name, (state, since, _)) in &w.alarms {
        let d = defs
            .iter()
            .find(|d| &d.name == name)
            .expect("a template alarm");
        let mut a = CwMetricAlarm::builder()
            .alarm_name(name)
            .state_value(StateValue::from(*state))
            .state_transitioned_timestamp(smithy_time(*since))
            .threshold(d.rule.threshold)
            .comparison_operator(ComparisonOperator::from(d.rule.comparison.as_str()))
            .namespace(&d.namespace)
            .metric_name(&d.metric)
            .statistic(CwStatistic::from(d.rule.statistic.as_str()))
            .period(d.rule.period_s as i32);
        for (k, v) in &d.dimensions {
            a = a.dimensions(Dimension::builder().name(k).value(v).build());
        }
        out = out.metric_alarms(a.build());
    }
    out.build()
}

fn describe(w: &World) -> DescribeServicesOutput {
    let mut s = EcsService::builder()
        .service_arn("arn:aws:ecs:us-east-1:123456789012:service/visits/visits-api")
        .service_name("visits-api")
        .status("ACTIVE")
        .desired_count(w.desired)
        .running_count(w.desired)
        .pending_count(0);
    for (k, v) in &w.tags {
        s = s.tags(Tag::builder().key(k).value(v).build());
    }
    DescribeServicesOutput::builder()
        .services(s.build())
        .build()
}

/// The real handler's Deps over mocks that keep `world`.
fn deps(config: Config, world: Arc<Mutex<World>>, defs: Vec<AlarmDef>) -> Deps {
    let w1 = world.clone();
    let describe = mock!(aws_sdk_ecs::Client::describe_services)
        .sequence()
        .output(move || describe(&w1.lock().unwrap()))
        .repeatedly()
        .build();
    let w2 = world.clone();
    let tag = mock!(aws_sdk_ecs::Client::tag_resource)
        .match_requests(move |r| {
            let mut w = w2.lock().unwrap();
            for t in r.tags() {
                w.tags.insert(
                    t.key().unwrap_or_default().to_string(),
                    t.value().unwrap_or_default().to_string(),
                );
            }
            true
        })
        .sequence()
        .output(|| TagResourceOutput::builder().build())
        .repeatedly()
        .build();
    let w3 = world.clone();
    let untag = mock!(aws_sdk_ecs::Client::untag_resource)
        .match_requests(move |r| {
            let mut w = w3.lock().unwrap();
            for k in r.tag_keys() {
                w.tags.remove(k);
            }
            true
        })
        .sequence()
        .output(|| UntagResourceOutput::builder().build())
        .repeatedly()
        .build();
    let w4 = world.clone();
    let update = mock!(aws_sdk_ecs::Client::update_service)
        .match_requests(move |r| {
            if let Some(d) = r.desired_count() {
                w4.lock().unwrap().desired = d;
            }
            true
        })
        .sequence()
        .output(|| UpdateServiceOutput::builder().build())
        .repeatedly()
        .build();
    let ecs = mock_client!(
        aws_sdk_ecs,
        RuleMode::MatchAny,
        [&describe, &tag, &untag, &update]
    );
    let put = mock!(aws_sdk_cloudwatch::Client::put_metric_data)
        .sequence()
        .output(|| PutMetricDataOutput::builder().build())
        .repeatedly()
        .build();
    let w5 = world.clone();
    let alarms = mock!(aws_sdk_cloudwatch::Client::describe_alarms)
        .sequence()
        .output(move || describe_alarms(&w5.lock().unwrap(), &defs))
        .repeatedly()
        .build();
    let asked = Arc::new(Mutex::new(String::new()));
    let asked_by = asked.clone();
    let w6 = world.clone();
    let newest = mock!(aws_sdk_cloudwatch::Client::get_metric_statistics)
        .match_requests(move |r| {
            *asked_by.lock().unwrap() = r.metric_name().unwrap_or_default().to_string();
            true
        })
        .sequence()
        .output(move || {
            let w = w6.lock().unwrap();
            let metric = asked.lock().unwrap().clone();
            let mut out = GetMetricStatisticsOutput::builder();
            for (name, (_, _, value)) in &w.alarms {
                if name.ends_with(&metric_suffix(&metric)) {
                    out = out.datapoints(
                        CwDatapoint::builder()
                            .timestamp(smithy_time(w.now - 10))
                            .average(*value)
                            .maximum(*value)
                            .minimum(*value)
                            .sum(*value)
                            .build(),
                    );
                }
            }
            out.build()
        })
        .repeatedly()
        .build();
    let cw = mock_client!(
        aws_sdk_cloudwatch,
        RuleMode::MatchAny,
        [&put, &alarms, &newest]
    );
    let asg_rule = mock!(aws_sdk_autoscaling::Client::describe_auto_scaling_groups)
        .then_output(|| unreachable!("Fargate mode: no ASG call"));
    let asg = mock_client!(aws_sdk_autoscaling, RuleMode::MatchAny, [&asg_rule]);
    Deps {
        config,
        ecs: Ecs::from_client(ecs),
        autoscaling: AutoScaling::from_client(asg),
        cloudwatch: CloudWatch::from_client(cw),
        region: Some("us-east-1".into()),
    }
}

/// The desired count the handler set (or resumed), if it scaled.
fn target(report: &scaling::report::Report) -> Option<i32> {
    matches!(report.decision.action.as_str(), "scale_to" | "resume")
        .then_some(report.decision.target)
        .flatten()
}

/// The alarm-name suffix of the template's alarm on `metric`.
fn metric_suffix(metric: &str) -> String {
    match metric {
        "InFlight" => "-inflight-high",
        "CPUUtilization" => "-cpu-high",
        "MemoryUtilization" => "-memory-high",
        "LatencyP95" => "-latency-p95-high",
        other => panic!("no scale-out alarm watches {other}"),
    }
    .to_string()
}

fn def(setup: &Setup, name: &str) -> AlarmDef {
    setup
        .alarms
        .iter()
        .find(|a| a.name == name)
        .unwrap_or_else(|| panic!("{name} in infra/scaling.yaml"))
        .clone()
}

/// The payload of `def` entering `to` at second `t`, newest datapoint `value`.
fn event(def: &AlarmDef, to: State, t: i64, value: f64) -> Value {
    let at = EPOCH_MS + t * 1000;
    let p = i64::from(def.rule.period_s) * 1000;
    let tr = Transition {
        from: if to == State::Alarm {
            State::Ok
        } else {
            State::Alarm
        },
        to,
        datapoints: (1..=i64::from(def.rule.evaluation_periods))
            .map(|k| {
                Some(Datapoint {
                    start_ms: at - k * p,
                    value,
                    sample_count: 1,
                })
            })
            .collect(),
        breaching: def.rule.evaluation_periods as usize,
        at_ms: at,
    };
    let state = state_record(def, &tr, "");
    alarm_action_event(
        def,
        "123456789012",
        "us-east-1",
        &state,
        &StateRecord::created(at - 600_000),
    )
}

fn script(setup: &Setup) -> Vec<(i64, Value)> {
    let cpu = def(setup, "visits-api-cpu-high");
    let inflight = def(setup, "visits-api-inflight-high");
    let p95 = def(setup, "visits-api-latency-p95-high");
    let first = event(&inflight, State::Alarm, 1000, 120.0);
    vec![
        (1000, first.clone()),
        (1001, first), // redelivered: one change, one action
        (1020, event(&p95, State::Alarm, 1020, 900.0)), // inside the scale-out cooldown
        (1100, event(&cpu, State::Ok, 1100, 20.0)),
        (1200, event(&cpu, State::Alarm, 1200, 95.0)),
        (1300, event(&inflight, State::Alarm, 1300, 400.0)),
        (1400, event(&p95, State::Alarm, 1400, 900.0)),
        (1500, event(&cpu, State::Alarm, 1500, 99.0)),
        (1600, event(&inflight, State::Alarm, 1600, 80.0)), // at max by now
    ]
}

/// The template with `overrides`, the handler's mocked world at MIN_TASKS, and a runtime.
struct Bench {
    p: Params,
    setup: Setup,
    world: Arc<Mutex<World>>,
    deps: Deps,
    rt: tokio::runtime::Runtime,
}

impl Bench {
    fn new(overrides: &[(&str, &str)]) -> Self {
        let mut p = Params::default();
        let o: Vec<_> = overrides
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let setup = Setup::load(&default_template(), &o, &mut p).unwrap();
        let world = Arc::new(Mutex::new(World {
            desired: setup.config.min_tasks,
            ..World::default()
        }));
        let deps = deps(setup.config.clone(), world.clone(), setup.alarms.clone());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        Self {
            p,
            setup,
            world,
            deps,
            rt,
        }
    }

    /// After step `t`: the handler's world holds what the simulator's copy holds.
    fn same_world(&self, t: i64, desired: i32, tags: &BTreeMap<String, String>) {
        let w = self.world.lock().unwrap();
        assert_eq!(w.desired, desired, "t={t}: desired");
        assert_eq!(&w.tags, tags, "t={t}: episode tags");
    }
}

fn compare(overrides: &[(&str, &str)]) {
    let b = Bench::new(overrides);
    let mut sim_tags = BTreeMap::new();
    let mut sim_desired = b.setup.config.min_tasks;
    let mut acted = 0;
    for (t, ev) in script(&b.setup) {
        let svc = Service::new(sim_desired, &b.p, 1);
        let (sim, why) = scale_up_decision(&ev, &b.setup.config, &svc, t, &mut sim_tags);
        let now = chrono::DateTime::from_timestamp_millis(EPOCH_MS + t * 1000).unwrap();
        let report =
            b.rt.block_on(scale_up::handle_at(ev.clone(), &b.deps, now))
                .unwrap_or_else(|e| panic!("t={t}: {e}"));
        let real = target(&report);
        assert_eq!(
            sim, real,
            "t={t}: simulator {sim:?} ({why}), handler {real:?} ({})",
            report.outcome_reason
        );
        if let Some(target) = sim {
            sim_desired = target;
            acted += 1;
        }
        b.same_world(t, sim_desired, &sim_tags);
    }
    assert!(acted >= 2, "the script scales out more than once ({acted})");
}

#[test]
fn scale_up_decisions_match_the_handler_as_configured() {
    compare(&[]);
}

#[test]
fn scale_up_decisions_match_the_handler_in_proportional_mode() {
    compare(&[("SCALE_OUT_MODE", "proportional"), ("MaxTasks", "10")]);
}

/// A sustained overload as the re-evaluation schedule sees it, one run a minute (and one
/// redelivered run): (run at, the alarms in ALARM with their newest values).
fn reevaluation_script() -> Vec<(i64, Vec<(&'static str, f64)>)> {
    let inflight = "visits-api-inflight-high";
    let cpu = "visits-api-cpu-high";
    vec![
        (1000, vec![]),
        (1060, vec![(inflight, 120.0)]),
        (1060, vec![(inflight, 120.0)]), // the same run redelivered
        (1090, vec![(inflight, 130.0)]), // inside the scale-out cooldown
        (1180, vec![(inflight, 130.0)]),
        (1240, vec![(inflight, 90.0), (cpu, 95.0)]),
        (1300, vec![]),
        (1360, vec![(inflight, 400.0)]),
        (1420, vec![(inflight, 400.0), (cpu, 99.0)]),
    ]
}

fn compare_reevaluation(overrides: &[(&str, &str)]) {
    // The forecast reads GetMetricData, which these mocks do not keep.
    let b = Bench::new(&[overrides, &[("PREDICTIVE_MODE", "off")]].concat());
    let (c, deps, rt, world) = (&b.setup.config, &b.deps, &b.rt, &b.world);
    assert!(
        !c.scale_out_alarms.is_empty(),
        "the template sets SCALE_OUT_ALARMS"
    );
    let mut sim_tags = BTreeMap::new();
    let mut sim_desired = c.min_tasks;
    let mut acted = 0;
    for (t, in_alarm) in reevaluation_script() {
        {
            let mut w = world.lock().unwrap();
            w.now = t;
            for name in &c.scale_out_alarms {
                let firing = in_alarm.iter().find(|(n, _)| n == name);
                let (state, since, _) = w.alarms.get(name).copied().unwrap_or(("OK", 0, 0.0));
                let next = if firing.is_some() { "ALARM" } else { "OK" };
                let since = if state == next { since } else { t - 5 };
                let value = firing.map_or(10.0, |(_, v)| *v);
                w.alarms.insert(name.clone(), (next, since, value));
            }
        }
        // What the real adapter reads from the mocks is the simulator's input.
        let found = rt
            .block_on(deps.cloudwatch.describe_metric_alarms(&c.scale_out_alarms))
            .unwrap();
        let alarms: Vec<_> = found
            .into_iter()
            .map(|a| {
                let point = rt
                    .block_on(
                        deps.cloudwatch
                            .newest_datapoint(&a, std::time::SystemTime::now()),
                    )
                    .unwrap();
                (a, point)
            })
            .collect();
        let svc = Service::new(sim_desired, &b.p, 1);
        let (sim, sim_wait, why) =
            scale_up_reevaluation(c, &svc, t, t, &alarms, None, &mut sim_tags);
        let at = chrono::DateTime::from_timestamp_millis(EPOCH_MS + t * 1000).unwrap();
        let (report, wait) = rt
            .block_on(scale_up::reevaluate::evaluate(deps, at, at))
            .unwrap_or_else(|e| panic!("t={t}: {e}"));
        let real = target(&report);
        assert_eq!(
            (sim, sim_wait),
            (real, wait),
            "t={t}: simulator {sim:?} ({why}), handler {real:?} ({})",
            report.outcome_reason
        );
        println!("t={t}: {sim:?}, wait {sim_wait:?}: {why}");
        if let Some(target) = sim {
            sim_desired = target;
            acted += 1;
        }
        b.same_world(t, sim_desired, &sim_tags);
    }
    assert!(
        acted >= 2,
        "the overload is scaled out more than once ({acted})"
    );
}

#[test]
fn scale_up_reevaluations_match_the_handler_as_configured() {
    compare_reevaluation(&[("MaxTasks", "20")]);
}

#[test]
fn scale_up_reevaluations_match_the_handler_with_fixed_steps() {
    compare_reevaluation(&[("SCALE_OUT_MODE", "fixed"), ("MaxTasks", "20")]);
}
