//! The simulator's decisions for a scripted alarm sequence equal the
//! functions' decisions for the same sequence.
//!
//! Scale-up: the real handler (`scale_up::handle_at`) over the real SDK client
//! against aws-smithy-mocks that keep one service (desired count and tags,
//! which TagResource and UpdateService change), beside the simulator's
//! [`scale_up_decision`] with its own copy of the same state. Every event of
//! the script is a payload CloudWatch would send (`alarm_model::payload`).
//!
//! Scale-down needs no twin: the simulator calls the real step machine itself
//! (`scale_down::handle` behind `simulator::port`); `known_cases::step_load`
//! checks its decisions (the schedule's re-read, the scale-in cooldown).

use alarm_model::eval::{Datapoint, State, Transition};
use alarm_model::payload::{alarm_action_event, state_record, StateRecord};
use alarm_model::template::AlarmDef;
use aws_sdk_cloudwatch::operation::put_metric_data::PutMetricDataOutput;
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
use simulator::project::scale_up_decision;
use simulator::service::Service;
use simulator::setup::{default_template, Setup};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

#[derive(Debug, Default)]
struct World {
    desired: i32,
    tags: BTreeMap<String, String>,
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
fn deps(config: Config, world: Arc<Mutex<World>>) -> Deps {
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
    let w4 = world;
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
    let cw = mock_client!(aws_sdk_cloudwatch, RuleMode::MatchAny, [&put]);
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

fn compare(overrides: &[(&str, &str)]) {
    let mut p = Params::default();
    let o: Vec<_> = overrides
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let setup = Setup::load(&default_template(), &o, &mut p).unwrap();
    let min = setup.config.min_tasks;
    let world = Arc::new(Mutex::new(World {
        desired: min,
        tags: BTreeMap::new(),
    }));
    let deps = deps(setup.config.clone(), world.clone());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut sim_tags = BTreeMap::new();
    let mut sim_desired = min;
    let mut acted = 0;
    for (t, ev) in script(&setup) {
        let svc = Service::new(sim_desired, &p, 1);
        let (sim, why) = scale_up_decision(&ev, &setup.config, &svc, t, &mut sim_tags);
        let now = chrono::DateTime::from_timestamp_millis(EPOCH_MS + t * 1000).unwrap();
        let report = rt
            .block_on(scale_up::handle_at(ev.clone(), &deps, now))
            .unwrap_or_else(|e| panic!("t={t}: {e}"));
        let real = (report.decision.action == "scale_to" || report.decision.action == "resume")
            .then_some(report.decision.target)
            .flatten();
        assert_eq!(
            sim, real,
            "t={t}: simulator {sim:?} ({why}), handler {real:?} ({})",
            report.outcome_reason
        );
        if let Some(target) = sim {
            sim_desired = target;
            acted += 1;
        }
        let w = world.lock().unwrap();
        assert_eq!(w.desired, sim_desired, "t={t}: desired");
        assert_eq!(w.tags, sim_tags, "t={t}: episode tags");
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
