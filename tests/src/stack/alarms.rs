//! The alarm driver: the local stand-in for CloudWatch, which the emulator
//! lacks (moto stores alarms but never evaluates them, and `SetAlarmState`
//! runs no action). It does what CloudWatch would:
//! - reads the alarms from the one shared definition, `infra/scaling.yaml`
//!   ([`template`]): metric, statistic, comparison, threshold, period, M of N,
//!   missing-data treatment, and which function each alarm action invokes;
//! - reads the tasks' EMF records from their logs ([`emf`]), as the awslogs
//!   driver would, and aggregates them across tasks per period ([`eval`]);
//! - publishes those records' values to the emulator (`PutMetricData`, one
//!   datum per task and record, as EMF does), so `GetMetricStatistics` answers
//!   the way CloudWatch would (scale-up's re-evaluation reads it);
//! - on a state change, moves the alarm in the emulator (`SetAlarmState`) and
//!   invokes the action's function with the direct alarm-action payload
//!   ([`payload`]), exactly the shape of `events/scale-up-cpu-high-alarm.json`.
//!   Only on a change: an alarm that stays in ALARM invokes nothing more ("Alarm
//!   actions": actions run on state transitions,
//!   <https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/AlarmThatSendsEmail.html#alarms-and-actions>).
//!
//! Where the metrics come from locally: the template's `VisitsApi` alarms
//! watch EMF metrics, read as they are. `AWS/ECS` CPUUtilization and
//! MemoryUtilization come from the ECS agent on AWS; here each API process
//! reports its own in the same EMF record (same name), which stands in for
//! it. The ALB's `HTTPCode_Target_5XX_Count` is stood in by the EMF
//! `Http5xxCount`. `UnHealthyHostCount` has no local source: that alarm is
//! not evaluated.
//!
//! Time scale: the template's CPU alarms use 60 s periods, 5 of 5, which is
//! five minutes to alarm. With [`DriverOpts::time_scale`] = 10 each period is
//! evaluated as a tenth of itself (60 s -> 6 s, 10 s -> 1 s), floored at the
//! tasks' EMF interval. Thresholds, statistics and M of N stay the template's.

pub mod cloudwatch;
pub mod emf;
pub mod template;
// The evaluation and the payload are shared with the scaling simulator.
pub use alarm_model::{eval, payload};

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::mpsc::UnboundedSender;

use emf::{EmfRecord, EmfTail};
use eval::{Evaluator, State};
use payload::StateRecord;
use template::AlarmDef;

/// The future an invoker returns: the function's JSON result, or its error.
pub type InvokeFuture = Pin<Box<dyn Future<Output = anyhow::Result<Value>> + Send>>;
/// Invokes a function (by binary name, e.g. `scale-up`) with a payload. The
/// local stack runs the real binaries under the harness's Lambda Runtime API.
pub type Invoker = Arc<dyn Fn(String, Value) -> InvokeFuture + Send + Sync>;

/// How the driver runs.
#[derive(Debug, Clone)]
pub struct DriverOpts {
    /// Template periods are divided by this (1 = real time).
    pub time_scale: f64,
    /// No period shorter than this: the tasks' EMF interval.
    pub min_period: Duration,
    /// How often logs are read and alarms evaluated.
    pub tick: Duration,
    /// Account and region in alarm ARNs and payloads.
    pub account: String,
    pub region: String,
}

impl Default for DriverOpts {
    fn default() -> Self {
        Self {
            time_scale: 1.0,
            min_period: Duration::from_secs(10),
            tick: Duration::from_millis(250),
            account: test_support::moto::ACCOUNT_ID.into(),
            region: test_support::moto::REGION.into(),
        }
    }
}

impl DriverOpts {
    /// The period an alarm is evaluated with locally.
    pub fn local_period(&self, def: &AlarmDef) -> Duration {
        let scaled = f64::from(def.rule.period_s) / self.time_scale.max(1e-3);
        Duration::from_secs_f64(scaled).max(self.min_period)
    }
}

/// What the driver saw and did, for timelines and tests.
#[derive(Debug, Clone)]
pub enum DriverEvent {
    /// New EMF records from the tasks' logs.
    Records(Vec<EmfRecord>),
    /// An alarm changed state (already set in the emulator).
    StateChange {
        alarm: String,
        from: State,
        to: State,
        reason: String,
    },
    /// An alarm action is being invoked with `payload`.
    Invoking {
        alarm: String,
        function: String,
        payload: Value,
        at: Instant,
    },
    /// The function answered (Ok: its result; Err: its error).
    Invoked {
        alarm: String,
        function: String,
        /// The payload it was invoked with (a destination record carries it).
        payload: Value,
        result: Result<Value, String>,
        took: Duration,
    },
    /// Something failed in the driver itself (e.g. SetAlarmState).
    Error(String),
}

/// Which EMF field stands in for an alarm's metric (None: no local source).
pub fn local_field(def: &AlarmDef) -> Option<&str> {
    match (def.namespace.as_str(), def.metric.as_str()) {
        ("AWS/ECS", m @ ("CPUUtilization" | "MemoryUtilization")) => Some(m),
        ("AWS/ApplicationELB", "HTTPCode_Target_5XX_Count") => Some("Http5xxCount"),
        (ns, _) if ns.starts_with("AWS/") => None,
        (_, m) => Some(m),
    }
}

/// True when `rec` carries the metric that `def` watches locally.
fn matches(def: &AlarmDef, rec: &EmfRecord) -> bool {
    if !def.namespace.starts_with("AWS/") && def.namespace != rec.namespace {
        return false;
    }
    // The record's dimensions must agree with the alarm's where both name one.
    def.dimensions
        .iter()
        .all(|(k, v)| rec.dimensions.get(k).is_none_or(|got| got == v))
}

struct Watched {
    def: AlarmDef,
    field: String,
    eval: Evaluator,
    last: StateRecord,
}

/// The running driver; dropping it stops it.
pub struct AlarmDriver {
    task: tokio::task::JoinHandle<()>,
    /// Alarms evaluated locally, with their local period.
    pub evaluated: Vec<(String, Duration)>,
    /// Alarms without a local metric source (not evaluated).
    pub not_evaluated: Vec<String>,
}

impl Drop for AlarmDriver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl AlarmDriver {
    /// Creates the alarms in the emulator (`PutMetricAlarm`, as the template
    /// does), then follows the `*.log` files of `log_dir` and evaluates every
    /// `opts.tick`, sending what happens to `events`.
    pub async fn start(
        defs: Vec<AlarmDef>,
        log_dir: PathBuf,
        cw: aws_sdk_cloudwatch::Client,
        invoke: Invoker,
        opts: DriverOpts,
        events: UnboundedSender<DriverEvent>,
    ) -> anyhow::Result<Self> {
        let now = now_ms();
        let mut watched = Vec::new();
        let mut not_evaluated = Vec::new();
        for def in defs {
            let actions: Vec<String> = def
                .actions
                .iter()
                .map(|f| {
                    format!(
                        "arn:aws:lambda:{}:{}:function:{f}",
                        opts.region, opts.account
                    )
                })
                .collect();
            cloudwatch::put_metric_alarm(&cw, &def, &actions).await?;
            match local_field(&def) {
                Some(field) => {
                    let period = opts.local_period(&def);
                    watched.push(Watched {
                        field: field.to_string(),
                        eval: Evaluator::new(def.rule, period.as_millis() as i64),
                        def,
                        last: StateRecord::created(now),
                    });
                }
                None => not_evaluated.push(def.name),
            }
        }
        let evaluated = watched
            .iter()
            .map(|w| {
                (
                    w.def.name.clone(),
                    Duration::from_millis(w.eval.period_ms() as u64),
                )
            })
            .collect();
        let mut tail = EmfTail::new(&log_dir);
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(opts.tick);
            loop {
                tick.tick().await;
                let records = tail.poll();
                let data = cloudwatch::datapoints(
                    watched.iter().map(|w| (&w.def, w.field.as_str())),
                    &records,
                );
                if let Err(e) = cloudwatch::put_datapoints(&cw, data).await {
                    let _ = events.send(DriverEvent::Error(format!("{e:#}")));
                }
                for rec in &records {
                    for w in watched.iter_mut().filter(|w| matches(&w.def, rec)) {
                        if let Some(v) = rec.values.get(&w.field) {
                            w.eval.add(rec.t_ms, *v);
                        }
                    }
                }
                if !records.is_empty() {
                    let _ = events.send(DriverEvent::Records(records));
                }
                for w in &mut watched {
                    evaluate(w, &cw, &invoke, &opts, &events).await;
                }
            }
        });
        Ok(Self {
            task,
            evaluated,
            not_evaluated,
        })
    }
}

async fn evaluate(
    w: &mut Watched,
    cw: &aws_sdk_cloudwatch::Client,
    invoke: &Invoker,
    opts: &DriverOpts,
    events: &UnboundedSender<DriverEvent>,
) {
    let Some(tr) = w.eval.evaluate(now_ms()) else {
        return;
    };
    let note = if opts.time_scale == 1.0 {
        String::new()
    } else {
        format!(
            "[local stand-in for CloudWatch: {} s periods evaluated every {:.1} s]",
            w.def.rule.period_s,
            w.eval.period_ms() as f64 / 1000.0
        )
    };
    let state = payload::state_record(&w.def, &tr, &note);
    let previous = std::mem::replace(&mut w.last, state.clone());
    let set = cloudwatch::set_alarm_state(
        cw,
        &w.def.name,
        state.state,
        &state.reason,
        &state.reason_data,
    )
    .await;
    if let Err(e) = set {
        let _ = events.send(DriverEvent::Error(format!("{e:#}")));
    }
    let _ = events.send(DriverEvent::StateChange {
        alarm: w.def.name.clone(),
        from: tr.from,
        to: tr.to,
        reason: state.reason.clone(),
    });
    // Alarm actions run on entering ALARM (the template sets no OK actions).
    if tr.to != State::Alarm {
        return;
    }
    let event = payload::alarm_action_event(&w.def, &opts.account, &opts.region, &state, &previous);
    for function in w.def.actions.clone() {
        let (alarm, payload, events, invoke) = (
            w.def.name.clone(),
            event.clone(),
            events.clone(),
            invoke.clone(),
        );
        // CloudWatch invokes asynchronously: evaluation goes on meanwhile.
        tokio::spawn(async move {
            let at = Instant::now();
            let _ = events.send(DriverEvent::Invoking {
                alarm: alarm.clone(),
                function: function.clone(),
                payload: payload.clone(),
                at,
            });
            let result = invoke(function.clone(), payload.clone())
                .await
                .map_err(|e| format!("{e:#}"));
            let _ = events.send(DriverEvent::Invoked {
                alarm,
                function,
                payload,
                result,
                took: at.elapsed(),
            });
        });
    }
}

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The latest value per task of one EMF field, from a batch of records.
pub fn latest_by_task(records: &[EmfRecord], field: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for r in records {
        if let Some(v) = r.values.get(field) {
            out.insert(r.task_id.clone(), *v);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use eval::MissingData;

    fn def(ns: &str, metric: &str) -> AlarmDef {
        AlarmDef {
            logical_id: "X".into(),
            name: "x".into(),
            namespace: ns.into(),
            metric: metric.into(),
            dimensions: [("ServiceName".to_string(), "visits-api".to_string())].into(),
            rule: eval::Rule {
                comparison: eval::Comparison::Greater,
                threshold: 1.0,
                statistic: eval::Statistic::Average,
                period_s: 60,
                evaluation_periods: 1,
                datapoints_to_alarm: 1,
                missing: eval::MissingData::Missing,
            },
            actions: vec![],
        }
    }

    #[test]
    fn local_sources_of_the_template_metrics() {
        assert_eq!(
            local_field(&def("AWS/ECS", "CPUUtilization")),
            Some("CPUUtilization")
        );
        assert_eq!(local_field(&def("VisitsApi", "InFlight")), Some("InFlight"));
        assert_eq!(
            local_field(&def("AWS/ApplicationELB", "HTTPCode_Target_5XX_Count")),
            Some("Http5xxCount")
        );
        assert_eq!(
            local_field(&def("AWS/ApplicationELB", "UnHealthyHostCount")),
            None
        );
    }

    #[test]
    fn records_match_on_namespace_and_dimensions() {
        let rec = emf::EmfRecord {
            t_ms: 0,
            namespace: "VisitsApi".into(),
            dimensions: [("ServiceName".to_string(), "visits-api".to_string())].into(),
            task_id: "t".into(),
            values: BTreeMap::new(),
        };
        assert!(matches(&def("VisitsApi", "InFlight"), &rec));
        assert!(matches(&def("AWS/ECS", "CPUUtilization"), &rec));
        assert!(!matches(&def("OtherNs", "InFlight"), &rec));
        let mut other = def("VisitsApi", "InFlight");
        other
            .dimensions
            .insert("ServiceName".into(), "another".into());
        assert!(!matches(&other, &rec));
    }

    #[test]
    fn time_scale_shortens_periods_down_to_the_emf_interval() {
        let opts = DriverOpts {
            time_scale: 10.0,
            min_period: Duration::from_secs(1),
            ..DriverOpts::default()
        };
        let mut d = def("AWS/ECS", "CPUUtilization");
        assert_eq!(opts.local_period(&d), Duration::from_secs(6));
        d.rule.period_s = 5;
        assert_eq!(opts.local_period(&d), Duration::from_secs(1));
        assert_eq!(MissingData::NotBreaching.as_str(), "notBreaching");
    }
}
