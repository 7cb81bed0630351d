//! This project's autoscaler, as `infra/scaling.yaml` configures it, running
//! its own decision code:
//! - the alarms with actions, evaluated by `alarm_model::eval` (the local
//!   stack's alarm driver's evaluation) over the model's metrics; CloudWatch
//!   invokes an action only when the alarm enters ALARM (CloudWatch user
//!   guide, "Alarm actions": "the actions happen only on state transitions");
//! - the action's payload is the one CloudWatch sends (`alarm_model::payload`),
//!   parsed by the functions' own parser (`scaling::trigger`);
//! - scale-up: [`scale_up_decision`] runs the handler's decision steps with
//!   the shared library: idempotency key and episode tags (`scaling::episode`),
//!   `scaling::policy::decide_scale_out`, the DB cap (`scale_up::db_cap`);
//! - scale-down: the real step machine (`scale_down::handle`) against a
//!   simulated ECS/ELB/CloudWatch behind its `Port` trait ([`crate::port`]),
//!   both for the low alarm's action and for the reconcile schedule (which
//!   re-reads `SCALE_IN_ALARMS`), at the schedule's rate from the template.
//!
//! - ahead of the load (when the configuration asks for it): the scheduled
//!   windows of `SCHEDULE_WINDOWS` bound every decision as in the functions
//!   (`Windows::bounds_at_utc`, the simulated clock), and `PREDICTIVE_MODE`
//!   makes the re-evaluation forecast from the load balancer's request count
//!   ([`crate::ahead::LoadHistory`]) with `scaling::predictive`.
//!
//! Only AWS's timing is modelled: the Lambda invoke latency, and the service's
//! task start, drain and stop ([`crate::service`]).

use crate::ahead::LoadHistory;
use crate::baselines::Policy;
use crate::metrics::{AlarmFeed, Sample, EPOCH_MS};
use crate::params::Params;
use crate::port::SimPort;
use crate::service::Service;
use crate::setup::Setup;
use alarm_model::eval::State;
use alarm_model::payload::{self, StateRecord};
use alarm_model::template::AlarmDef;
use chrono::{DateTime, Utc};
use scaling::aws::cloudwatch::{Datapoint as CwDatapoint, MetricAlarm};
use scaling::config::Config;
use scaling::episode::{self, EpisodeState};
use scaling::policy::{self, AlarmInput, Decision, History, Limits, ServiceState};
use scaling::predictive::{self, Outlook, PredictiveMode};
use scaling::trigger::{self, AlarmState};
use serde_json::{json, Value};
use std::collections::BTreeMap;

const ACCOUNT: &str = "123456789012";
const REGION: &str = "us-east-1";

/// What one invocation decided, for the tests and the log.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    /// Simulated second.
    pub t: i64,
    /// `scale-up` or `scale-down`.
    pub function: String,
    /// The alarm, or `schedule`.
    pub trigger: String,
    /// `scale_to` or `skip` (scale-down: the report's outcome).
    pub action: String,
    /// Desired after the invocation.
    pub desired: i32,
    pub reason: String,
}

struct Watched {
    def: AlarmDef,
    feed: AlarmFeed,
    last: StateRecord,
    since: i64,
    /// The newest datapoint of the last evaluation (GetMetricStatistics' answer).
    newest: Option<alarm_model::eval::Datapoint>,
}

enum Due {
    Alarm {
        function: String,
        event: Value,
    },
    Schedule,
    /// Scale-up's re-evaluation run of the schedule tick at this second.
    Reevaluate {
        schedule_t: i64,
    },
}

/// The project's autoscaler over the simulated service.
pub struct Project {
    label: String,
    config: Config,
    /// The request-count history predictive scaling reads (None: `PREDICTIVE_MODE=off`).
    history: Option<LoadHistory>,
    watched: Vec<Watched>,
    latency: i64,
    schedule_s: Option<i64>,
    reevaluate_s: Option<i64>,
    queue: Vec<(i64, u64, Due)>,
    seq: u64,
    tags: BTreeMap<String, String>,
    runtime: tokio::runtime::Runtime,
    /// Every invocation and what it decided.
    pub log: Vec<Invocation>,
}

fn utc(t: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(EPOCH_MS + t * 1000).unwrap_or_default()
}

impl Project {
    /// The autoscaler of `setup` (template, overrides) with the model's timing.
    pub fn new(setup: &Setup, p: &Params) -> anyhow::Result<Self> {
        let mut watched = Vec::new();
        for def in setup.alarms.iter().filter(|d| !d.actions.is_empty()) {
            let (metric, delay) = crate::metrics::source(def, p)?;
            watched.push(Watched {
                feed: AlarmFeed::new(def.rule, metric, delay),
                last: StateRecord::created(EPOCH_MS),
                since: 0,
                newest: None,
                def: def.clone(),
            });
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()?;
        let pr = &setup.config.predictive;
        let history = (pr.mode != PredictiveMode::Off).then(|| {
            // The load balancer's metrics are per minute, like AWS/ECS's.
            LoadHistory::new(pr.step, pr.history, p.ecs_metric_delay_s.round() as i64)
        });
        Ok(Project {
            label: "this project".into(),
            history,
            config: setup.config.clone(),
            watched,
            latency: p.lambda_latency_s.round() as i64,
            schedule_s: setup.scale_down_schedule_s,
            reevaluate_s: setup.scale_up_schedule_s,
            queue: Vec::new(),
            seq: 0,
            tags: BTreeMap::new(),
            runtime,
            log: Vec::new(),
        })
    }

    /// The same autoscaler under another name in the table.
    pub fn labelled(mut self, label: &str) -> Self {
        self.label = label.into();
        self
    }

    /// The forecast at `now` (None: `PREDICTIVE_MODE=off`).
    fn outlook(&self, now: i64) -> Option<Outlook> {
        let h = self.history.as_ref()?;
        let (series, end) = h.visible(now);
        Some(predictive::outlook(
            &self.config.predictive,
            &series,
            utc(end),
            utc(now),
        ))
    }

    fn enqueue(&mut self, at: i64, due: Due) {
        self.seq += 1;
        self.queue.push((at, self.seq, due));
    }

    fn run(&mut self, now: i64, due: Due, svc: &mut Service) {
        match due {
            Due::Alarm { function, event } if function == "scale-up" => {
                let (d, reason) = scale_up_decision(&event, &self.config, svc, now, &mut self.tags);
                let action = match d {
                    Some(target) => {
                        svc.set_desired(target, now);
                        "scale_to"
                    }
                    None => "skip",
                };
                let alarm = event["alarmData"]["alarmName"].as_str().unwrap_or_default();
                self.log.push(Invocation {
                    t: now,
                    function,
                    trigger: alarm.to_string(),
                    action: action.into(),
                    desired: svc.desired,
                    reason,
                });
            }
            Due::Alarm { function, event } if function == "scale-down" => {
                let name = event["alarmData"]["alarmName"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                self.scale_down(now, event, name, svc);
            }
            Due::Alarm { function, .. } => {
                self.log.push(Invocation {
                    t: now,
                    function: function.clone(),
                    trigger: String::new(),
                    action: "skip".into(),
                    desired: svc.desired,
                    reason: format!("{function} is not modelled"),
                });
            }
            Due::Reevaluate { schedule_t } => {
                let alarms: Vec<(MetricAlarm, Option<CwDatapoint>)> =
                    self.watched.iter().map(metric_alarm).collect();
                let outlook = self.outlook(now);
                let acting = outlook
                    .as_ref()
                    .filter(|_| self.config.predictive.mode == PredictiveMode::On);
                let (d, wait, mut reason) = scale_up_reevaluation(
                    &self.config,
                    svc,
                    now,
                    schedule_t,
                    &alarms,
                    acting,
                    &mut self.tags,
                );
                if let (Some(o), None) = (&outlook, acting) {
                    reason = format!("{reason}; forecast-only: {}", o.describe());
                }
                let action = match d {
                    Some(target) => {
                        svc.set_desired(target, now);
                        "scale_to"
                    }
                    None => "skip",
                };
                // A cooldown ending within the schedule's period: the run waits
                // for it and looks once more (`scale_up::reevaluate::run`).
                if let Some(w) = wait {
                    let again = now + (w.as_secs_f64() + 0.25).ceil() as i64;
                    self.enqueue(again, Due::Reevaluate { schedule_t });
                }
                self.log.push(Invocation {
                    t: now,
                    function: "scale-up".into(),
                    trigger: "reevaluate".into(),
                    action: action.into(),
                    desired: svc.desired,
                    reason,
                });
            }
            Due::Schedule => {
                let event = json!({
                    "version": "0",
                    "id": format!("sim-{now}"),
                    "detail-type": "Scheduled Event",
                    "source": "aws.events",
                    "account": ACCOUNT,
                    "time": utc(now).to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    "region": REGION,
                    "resources": [format!("arn:aws:events:{REGION}:{ACCOUNT}:rule/reconcile")],
                    "detail": {}
                });
                self.scale_down(now, event, "schedule".into(), svc);
            }
        }
    }

    /// The real scale-down handler against the simulated world, as of `now`.
    fn scale_down(&mut self, now: i64, event: Value, trigger: String, svc: &mut Service) {
        let alarms = self
            .watched
            .iter()
            .map(|w| (w.def.name.clone(), w.feed.state(), w.since, w.def.rule))
            .collect();
        let port = SimPort::new(svc, now, std::mem::take(&mut self.tags), alarms);
        let mut settings = scale_down::Settings::from_config(&self.config);
        settings.poll_interval = std::time::Duration::from_millis(1);
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
        let result = self
            .runtime
            .block_on(scale_down::handle(event, &port, &settings, deadline));
        let (tags, victim) = port.finish();
        self.tags = tags;
        if let Some(id) = victim {
            svc.remove(id, now);
        }
        let (action, reason) = match result {
            Ok(r) => (format!("{:?}", r.outcome).to_lowercase(), r.outcome_reason),
            Err(e) => ("error".into(), e.to_string()),
        };
        self.log.push(Invocation {
            t: now,
            function: "scale-down".into(),
            trigger,
            action,
            desired: svc.desired,
            reason,
        });
    }
}

/// Scale-up's decision for one alarm-action event, with the service as the
/// simulation has it and the episode tags: the steps of
/// `scale_up::handle_at` in its order (parse, not-ALARM skip, pause,
/// idempotency key, policy, intent tags). Returns the new desired count (None:
/// skipped) and the reason; on a scale-out, `tags` get the intent.
pub fn scale_up_decision(
    event: &Value,
    c: &Config,
    svc: &Service,
    now: i64,
    tags: &mut BTreeMap<String, String>,
) -> (Option<i32>, String) {
    let alarm = match trigger::parse_alarm(event) {
        Ok(a) => a,
        Err(e) => return (None, e.to_string()),
    };
    if let Err(e) = alarm.check_ours(&c.cluster, &c.service) {
        return (None, e.to_string());
    }
    let key = episode::alarm_key(&alarm.alarm_name, alarm.timestamp);
    if alarm.state != AlarmState::Alarm {
        return (None, policy::Skip::NotAlarm(alarm.state).reason());
    }
    let state = EpisodeState::from_tags(tags);
    if state.paused {
        return (None, policy::Skip::Paused.reason());
    }
    let desired = svc.desired;
    let target = match state.scale_out_done(&key) {
        Some(done) if desired < done.target && done.target <= c.max_tasks => done.target,
        Some(done) => {
            return (
                None,
                format!("duplicate delivery: already scaled out to {}", done.target),
            )
        }
        None => {
            let t = now;
            let cap = c.db_cap.as_ref().map(|db| {
                let used = db
                    .instance_id
                    .as_ref()
                    .map(|_| f64::from(desired) * f64::from(db.pool_per_task));
                scale_up::db_cap(db, desired, used)
            });
            let d = policy::decide_scale_out(
                &ServiceState {
                    desired,
                    running: svc.serving(t),
                    pending: svc.pending(t),
                    deployment_in_progress: false,
                },
                &Limits::for_alarm(c, &alarm.alarm_name).within(&c.windows.bounds_at_utc(utc(now))),
                &History::from_state(&state),
                &AlarmInput::from_alarm(&alarm),
                cap.as_ref(),
                utc(now),
            );
            match d {
                Decision::ScaleTo { target, .. } => target,
                Decision::Skip(s) => return (None, s.reason()),
            }
        }
    };
    tags.extend(state.record_scale_out(&key, target, utc(now)));
    (Some(target), format!("scaled out {desired} -> {target}"))
}

/// An alarm as DescribeAlarms shows it, with the newest datapoint as
/// GetMetricStatistics would answer.
fn metric_alarm(w: &Watched) -> (MetricAlarm, Option<CwDatapoint>) {
    let a = MetricAlarm {
        name: w.def.name.clone(),
        arn: None,
        state: w.feed.state().as_str().to_string(),
        since: utc(w.since),
        threshold: Some(w.def.rule.threshold),
        comparison: None,
        metric: None,
        statistic: Some(format!("{:?}", w.def.rule.statistic)),
        period_s: Some(w.def.rule.period_s as i32),
    };
    let point = w.newest.map(|d| CwDatapoint {
        at: DateTime::from_timestamp_millis(d.start_ms).unwrap_or_default(),
        value: d.value,
    });
    (a, point)
}

/// A recorded action key: `Some(Ok(target))` finishes a scale-out that did
/// not land, `Some(Err(reason))` is a duplicate (scale-up's `prior`).
fn prior(c: &Config, state: &EpisodeState, key: &str, desired: i32) -> Option<Result<i32, String>> {
    let done = state.scale_out_done(key)?;
    if desired < done.target && done.target <= c.max_tasks {
        return Some(Ok(done.target));
    }
    Some(Err(format!(
        "duplicate delivery: already scaled out to {}",
        done.target
    )))
}

fn db_cap(c: &Config, desired: i32) -> Option<policy::Cap> {
    c.db_cap.as_ref().map(|db| {
        let used = db
            .instance_id
            .as_ref()
            .map(|_| f64::from(desired) * f64::from(db.pool_per_task));
        scale_up::db_cap(db, desired, used)
    })
}

fn service_state(svc: &Service, now: i64) -> ServiceState {
    ServiceState {
        desired: svc.desired,
        running: svc.serving(now),
        pending: svc.pending(now),
        deployment_in_progress: false,
    }
}

/// Scale-up's scheduled re-evaluation (`scale_up::reevaluate::evaluate`'s
/// steps, in its order): pause, the MIN_TASKS floor, then every
/// `SCALE_OUT_ALARMS` alarm in ALARM decided with its newest datapoint, the
/// largest decision driving one step under the schedule's key. Between the
/// floor and the alarms, when `forecast` is given (`PREDICTIVE_MODE=on`), the
/// forecast's raise (`scaling::predictive::decide`) under the key `forecast`.
/// Every limit is within the bounds in force (`SCHEDULE_WINDOWS`). Returns the new
/// desired count (None: skipped), the wait for a cooldown that ends within the
/// schedule's period, and the reason.
pub fn scale_up_reevaluation(
    c: &Config,
    svc: &Service,
    now: i64,
    schedule_t: i64,
    alarms: &[(MetricAlarm, Option<CwDatapoint>)],
    forecast: Option<&Outlook>,
    tags: &mut BTreeMap<String, String>,
) -> (Option<i32>, Option<std::time::Duration>, String) {
    let bounds = c.windows.bounds_at_utc(utc(now));
    let state = EpisodeState::from_tags(tags);
    if state.paused {
        return (None, None, policy::Skip::Paused.reason());
    }
    let history = History::from_state(&state);
    let s = service_state(svc, now);
    let record = |key: &str, target: i32, tags: &mut BTreeMap<String, String>| {
        tags.extend(state.record_scale_out(key, target, utc(now)));
        (
            Some(target),
            None,
            format!("scaled out {} -> {target}", s.desired),
        )
    };
    let limits = Limits::from_config(c).within(&bounds);
    let cap = db_cap(c, s.desired);
    let raise = policy::decide_floor(&s, &limits, &history)
        .map(|d| ("floor", d))
        .or_else(|| {
            forecast
                .and_then(|o| predictive::decide(&s, &limits, &history, o, cap.as_ref()))
                .map(|d| ("forecast", d))
        });
    if let Some((name, Decision::ScaleTo { target, .. })) = raise {
        let key = episode::alarm_key(name, utc(schedule_t));
        return match prior(c, &state, &key, s.desired) {
            Some(Ok(t)) => record(&key, t, tags),
            Some(Err(why)) => (None, None, why),
            None => record(&key, target, tags),
        };
    }
    let found: Vec<MetricAlarm> = alarms.iter().map(|(a, _)| a.clone()).collect();
    let in_alarm = match scale_up::reevaluate::alarms_in_alarm(&c.scale_out_alarms, &found) {
        Ok(a) => a,
        Err(e) => return (None, None, e.to_string()),
    };
    if in_alarm.is_empty() {
        return (
            None,
            None,
            "re-evaluation: no scale-out alarm in ALARM".into(),
        );
    }
    let decisions: Vec<Decision> = in_alarm
        .iter()
        .map(|a| {
            let point = alarms
                .iter()
                .find(|(x, _)| x.name == a.name)
                .and_then(|x| x.1);
            policy::decide_scale_out(
                &s,
                &Limits::for_alarm(c, &a.name).within(&bounds),
                &history,
                &scale_up::reevaluate::alarm_input(a, point),
                cap.as_ref(),
                utc(now),
            )
        })
        .collect();
    let i = policy::pick_largest(&decisions).unwrap_or(0);
    match &decisions[i] {
        Decision::Skip(skip) => (
            None,
            policy::reevaluation_wait(&decisions[i], c.scale_out_reevaluate),
            skip.reason(),
        ),
        Decision::ScaleTo { target, .. } => {
            let key =
                episode::alarm_key(&format!("schedule:{}", in_alarm[i].name), utc(schedule_t));
            match prior(c, &state, &key, s.desired) {
                Some(Ok(t)) => record(&key, t, tags),
                Some(Err(why)) => (None, None, why),
                None => record(&key, *target, tags),
            }
        }
    }
}

impl Policy for Project {
    fn name(&self) -> String {
        self.label.clone()
    }

    fn on_sample(&mut self, s: &Sample) {
        if let Some(h) = &mut self.history {
            h.add(s.start, s.len, s.mean.requests);
        }
        for w in &mut self.watched {
            w.feed.push(s);
        }
    }

    fn tick(&mut self, now: i64, svc: &mut Service) {
        let mut fired = Vec::new();
        for w in &mut self.watched {
            let Some(e) = w.feed.tick(now) else {
                continue;
            };
            w.newest = e.newest;
            let Some(tr) = e.change else {
                continue;
            };
            let state = payload::state_record(&w.def, &tr, "");
            let previous = std::mem::replace(&mut w.last, state.clone());
            w.since = now;
            // Alarm actions run on entering ALARM (the template sets no OK actions).
            if tr.to != State::Alarm {
                continue;
            }
            let event = payload::alarm_action_event(&w.def, ACCOUNT, REGION, &state, &previous);
            for f in &w.def.actions {
                fired.push(Due::Alarm {
                    function: f.clone(),
                    event: event.clone(),
                });
            }
        }
        for due in fired {
            self.enqueue(now + self.latency, due);
        }
        if let Some(every) = self.schedule_s {
            if now > 0 && now % every == 0 {
                self.enqueue(now + self.latency, Due::Schedule);
            }
        }
        if let Some(every) = self.reevaluate_s {
            if now > 0 && now % every == 0 {
                self.enqueue(now + self.latency, Due::Reevaluate { schedule_t: now });
            }
        }
        if self.queue.iter().any(|(at, ..)| *at <= now) {
            self.queue.sort_by_key(|(at, seq, _)| (*at, *seq));
            let ready: Vec<_> = {
                let split = self.queue.partition_point(|(at, ..)| *at <= now);
                self.queue.drain(..split).collect()
            };
            for (_, _, due) in ready {
                self.run(now, due, svc);
            }
        }
    }
}
