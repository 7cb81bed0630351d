//! `make demo`: the whole loop on one machine, with a live timeline.
//!
//! Load rises (visits through HAProxy, plus CPU burns) -> the CPU-high alarm
//! fires in the local stand-in for CloudWatch -> the real scale-up function
//! raises desired -> the task runner starts a second API process, which the
//! proxy puts in service -> the burns stop, CPU falls -> the CPU-low alarm
//! fires -> the real scale-down function picks a task, deregisters it (the
//! proxy drains it), drains it and lowers desired -> the runner stops it.
//! Every report goes to the notify function, as the Lambda destinations
//! would send it, and the email it publishes is printed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use scaling::report::{FunctionKind, Outcome, Report};
use serde_json::{json, Value};
use test_support::moto::Moto;
use tokio::sync::mpsc;

use super::alarms::emf::EmfRecord;
use super::alarms::eval::State;
use super::alarms::{self, AlarmDriver, DriverEvent, DriverOpts, Invoker};
use super::demo_load::{self, Burner, Totals, Visits};
use super::runner::{METRICS_INTERVAL_S, STRESS_MAX_CONCURRENT, STRESS_TOKEN};
use super::timeline::{strip_runner_time, Source, Timeline};
use super::{Proxy, Runner, Stack};

/// How the demo runs.
#[derive(Debug, Clone)]
pub struct DemoOpts {
    /// Template periods are divided by this (see [`alarms`]).
    pub time_scale: f64,
    /// Visits per second through the proxy, throughout.
    pub rate: f64,
    /// Longest wait for each of scale-out and scale-in.
    pub phase_timeout: Duration,
    /// Print the timeline as it goes.
    pub echo: bool,
}

impl DemoOpts {
    /// `make demo`: the template's periods at a tenth.
    pub fn normal() -> Self {
        Self {
            time_scale: 10.0,
            rate: 40.0,
            phase_timeout: Duration::from_secs(180),
            echo: true,
        }
    }

    /// The smoke test's: periods at a twentieth (floored at the EMF interval).
    pub fn fast() -> Self {
        Self {
            time_scale: 20.0,
            ..Self::normal()
        }
    }

    /// The functions' settings that differ from the local stack's defaults
    /// (`lambda::function_env`, cooldowns 0): the scale-in cooldown scaled
    /// like the alarm periods but shorter than the CPU-low alarm's time to
    /// fire after a scale-out (otherwise its invocation would be skipped).
    pub fn function_overrides(&self) -> Vec<(&'static str, String)> {
        let scaled = |s: f64| ((s / self.time_scale).round() as u64).max(1).to_string();
        vec![
            // The template's default (ScaleOutCooldownSeconds), not scaled: it
            // must outlast the burst, whose other alarms (latency) fire too.
            ("SCALE_OUT_COOLDOWN_S", "60".into()),
            ("SCALE_IN_COOLDOWN_S", scaled(150.0)),
            ("DRAIN_MARGIN_S", "2".into()),
        ]
    }
}

/// CPU burns to hold in flight: past the template's in-flight alarm
/// threshold (a burn is one request in flight on its task for its duration),
/// within what one task accepts. The burns also drive its CPU up.
pub fn burners_for(defs: &[alarms::template::AlarmDef]) -> u32 {
    let threshold = defs
        .iter()
        .find(|d| d.metric == "InFlight" && d.actions.iter().any(|a| a == "scale-up"))
        .map_or(50.0, |d| d.rule.threshold);
    ((threshold.ceil() as u32) + 10).min(STRESS_MAX_CONCURRENT)
}

/// What the demo measured.
#[derive(Debug, Clone, Default)]
pub struct DemoSummary {
    /// The visits load through the proxy, the whole run.
    pub load: Totals,
    /// The part of it sent from the scale-out onwards: across the scale-in.
    pub load_scale_in: Totals,
    /// CPU burns sent and failed.
    pub burns: (u64, u64),
    /// The completed scale-up's invocation -> second task serving, s.
    pub scale_out_s: Option<f64>,
    /// The completed scale-down's invocation -> back to one task, s.
    pub scale_in_s: Option<f64>,
    /// Scale-up's report: time through its UpdateService call, ms.
    pub alarm_to_update_service_ms: Option<u64>,
    /// Scale-down's report: episode time beyond the drain, ms.
    pub scale_in_beyond_drain_ms: Option<u64>,
    /// Scale-down's report: the drain itself, ms.
    pub drain_ms: Option<u64>,
    /// Every report returned, in order.
    pub reports: Vec<Report>,
    /// Emails published by notify.
    pub emails: usize,
    /// Function errors, driver errors.
    pub errors: Vec<String>,
}

impl DemoSummary {
    /// The completed scale-out and scale-in, both.
    pub fn looped(&self) -> bool {
        let done = |k: FunctionKind| {
            self.reports
                .iter()
                .any(|r| r.function == k && r.outcome == Outcome::Completed)
        };
        done(FunctionKind::ScaleUp) && done(FunctionKind::ScaleDown)
    }

    /// The loop ran, no request failed across the scale-in, nothing else failed.
    pub fn passed(&self) -> bool {
        self.looped() && self.load_scale_in.failed == 0 && self.errors.is_empty()
    }

    /// The summary block printed at the end.
    pub fn render(&self) -> String {
        let s = |v: Option<f64>| v.map_or("—".into(), |v| format!("{v:.1} s"));
        let ms = |v: Option<u64>| v.map_or("—".into(), |v| format!("{v} ms"));
        let kinds = |t: &Totals| {
            if t.errors.is_empty() {
                String::new()
            } else {
                format!(" {:?}", t.errors)
            }
        };
        let verdict = |ok: bool| if ok { "ok" } else { "MISSED" };
        format!(
            "SUMMARY\n\
             requests sent (visits via the proxy)       {} ({} from the scale-out on)\n\
             failed while overloaded, before scale-out  {}{}\n\
             failed across the scale-in                 {}{}   (target 0: {})\n\
             worst p99 of a 5 s load segment            {:.1} ms\n\
             CPU burns sent / failed                    {} / {}\n\
             scale-out: invocation -> 2nd task serves   {}\n\
             scale-in: invocation -> task stopped       {}\n\
             alarm invocation -> UpdateService sent     {}   (function side, emulator calls included; target <= 50 ms: {})\n\
             scale-in episode beyond the drain          {}   (target <= 2 s: {}; the drain itself {})\n\
             reports / emails                           {} / {}\n\
             errors                                     {}",
            self.load.requests,
            self.load_scale_in.requests,
            self.load.failed - self.load_scale_in.failed,
            kinds(&self.load),
            self.load_scale_in.failed,
            kinds(&self.load_scale_in),
            verdict(self.load_scale_in.failed == 0),
            self.load.worst_p99_ms,
            self.burns.0,
            self.burns.1,
            s(self.scale_out_s),
            s(self.scale_in_s),
            ms(self.alarm_to_update_service_ms),
            verdict(self.alarm_to_update_service_ms.is_some_and(|v| v <= 50)),
            ms(self.scale_in_beyond_drain_ms),
            verdict(self.scale_in_beyond_drain_ms.is_some_and(|v| v <= 2_000)),
            ms(self.drain_ms),
            self.reports.len(),
            self.emails,
            if self.errors.is_empty() {
                "none".to_string()
            } else {
                self.errors.join("; ")
            },
        )
    }
}

/// The running pieces the scenario drives (owned by the caller, who tears
/// them down by dropping them).
pub struct DemoStack<'a> {
    pub moto: &'static Moto,
    pub stack: &'a Stack,
    pub runner: &'a Runner,
    pub proxy: &'a Proxy,
    /// Invokes the functions (`scale-up`, `scale-down`, `notify`) by name.
    pub invoke: Invoker,
}

/// Where the timeline is in the runner's and the proxy's event lists.
#[derive(Default)]
struct Seen {
    runner: usize,
    proxy: usize,
    last_metrics: Option<Instant>,
    latest: BTreeMap<String, EmfRecord>,
    /// The last no-op schedule line printed (repeats are not).
    last_noop: Option<String>,
    /// Each alarm's state and since when (for the give-up hint).
    alarm_states: BTreeMap<String, (State, Instant)>,
    /// Emails printed so far (notify runs in the background).
    emails: Arc<tokio::sync::Mutex<usize>>,
    notify_errors: Arc<std::sync::Mutex<Vec<String>>>,
    notifies: tokio::task::JoinSet<()>,
}

/// Phases of the scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    High,
    Low,
    Done,
}

/// Runs the scenario: load up until the scale-out has happened, load down
/// until the scale-in has, then stops the load and returns the figures.
pub async fn run(
    s: &DemoStack<'_>,
    opts: &DemoOpts,
    tl: Arc<Timeline>,
) -> anyhow::Result<DemoSummary> {
    let mut summary = DemoSummary::default();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let schedule_tx = tx.clone();
    let driver_opts = DriverOpts {
        time_scale: opts.time_scale,
        min_period: Duration::from_secs(u64::from(METRICS_INTERVAL_S)),
        ..DriverOpts::default()
    };
    let defs = tokio::task::spawn_blocking(alarms::template::load).await??;
    let burners = burners_for(&defs);
    let driver = AlarmDriver::start(
        defs,
        s.runner.log_dir().to_path_buf(),
        aws_sdk_cloudwatch::Client::new(&s.moto.sdk_config().await),
        s.invoke.clone(),
        driver_opts,
        tx,
    )
    .await?;
    for (name, period) in &driver.evaluated {
        tl.log(
            Source::CloudWatch,
            format!(
                "watching {name}: evaluated every {:.1} s",
                period.as_secs_f64()
            ),
        );
    }
    for name in &driver.not_evaluated {
        tl.log(
            Source::CloudWatch,
            format!("{name}: no local metric, not evaluated"),
        );
    }

    let url = s.proxy.url();
    tl.log(
        Source::Load,
        format!("visits: {} req/s through the proxy {url}", opts.rate),
    );
    let visits = Visits::start(url.clone(), opts.rate);
    tl.log(
        Source::Load,
        format!("load rises: {burners} CPU burns of 3 s kept in flight (POST /api/stress)"),
    );
    let mut burner = Some(Burner::start(&url, STRESS_TOKEN, burners, 3)?);

    let mut seen = Seen::default();
    let mut phase = Phase::High;
    let mut phase_started = Instant::now();
    let mut up_invoked: Option<Instant> = None;
    let mut down_invoked: Option<Instant> = None;
    let mut down_returned = false;
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let schedule_every = Duration::from_secs_f64(RECONCILE_RATE_S / opts.time_scale);
    let mut last_schedule = Instant::now();
    while phase != Phase::Done {
        tokio::select! {
            ev = rx.recv() => match ev {
                Some(ev) => on_driver_event(s, &tl, ev, &mut seen, &mut summary,
                    &mut up_invoked, &mut down_invoked, &mut down_returned),
                None => anyhow::bail!("the alarm driver stopped"),
            },
            _ = tick.tick() => {}
        }
        follow(s, &tl, &mut seen);
        let tasks = s.runner.tasks().len();
        match phase {
            Phase::High if tasks >= 2 && up_invoked.is_some() => {
                summary.scale_out_s = up_invoked.map(|t| t.elapsed().as_secs_f64());
                if let Some(b) = burner.take() {
                    summary.burns = b.stop();
                }
                visits.next_part();
                tl.log(Source::Load, "load falls: CPU burns stop (visits go on)");
                phase = Phase::Low;
                phase_started = Instant::now();
            }
            Phase::Low if last_schedule.elapsed() >= schedule_every => {
                last_schedule = Instant::now();
                reconcile(s, schedule_tx.clone());
            }
            Phase::Low if tasks == 1 && down_returned => {
                summary.scale_in_s = down_invoked.map(|t| t.elapsed().as_secs_f64());
                phase = Phase::Done;
            }
            _ if phase_started.elapsed() > opts.phase_timeout => {
                let what = if phase == Phase::High {
                    "scale-out"
                } else {
                    "scale-in"
                };
                summary.errors.push(format!(
                    "no {what} within {:?} (the timeline says why)",
                    opts.phase_timeout
                ));
                tl.log(Source::Demo, format!("gave up waiting for the {what}"));
                // An alarm already in ALARM before the load fell changes no
                // state when the load falls, and CloudWatch acts on changes only.
                for (alarm, (state, since)) in &seen.alarm_states {
                    if phase == Phase::Low && *state == State::Alarm && *since < phase_started {
                        tl.log(
                            Source::Demo,
                            format!(
                                "hint: {alarm} was in ALARM since before the load fell (the CPU \
                                 burns never lifted it on this busy machine), so it had no state \
                                 change to act on"
                            ),
                        );
                    }
                }
                break;
            }
            _ => {}
        }
    }
    if let Some(b) = burner.take() {
        summary.burns = b.stop();
    }
    tl.log(
        Source::Load,
        "stopping the visits (after the current 5 s segment)",
    );
    let parts = visits.stop().await?;
    summary.load = demo_load::sum(&parts);
    summary.load_scale_in = demo_load::sum(parts.get(1..).unwrap_or_default());
    // The last notifications (bounded: an emulator that hangs ends the wait).
    let _ = tokio::time::timeout(Duration::from_secs(60), async {
        while seen.notifies.join_next().await.is_some() {}
    })
    .await;
    summary.emails = *seen.emails.lock().await;
    summary
        .errors
        .extend(seen.notify_errors.lock().expect("notify errors").drain(..));
    follow(s, &tl, &mut seen);
    drop(driver);
    Ok(summary)
}

/// Prints what the runner and the proxy did since last time, and the
/// metrics line every few seconds.
fn follow(s: &DemoStack<'_>, tl: &Timeline, seen: &mut Seen) {
    let lines = s.runner.timeline();
    for line in lines.iter().skip(seen.runner) {
        tl.log(Source::Ecs, strip_runner_time(line));
    }
    seen.runner = lines.len();
    let events = s.proxy.events();
    for e in events.iter().skip(seen.proxy) {
        tl.log(Source::Proxy, &e.what);
    }
    seen.proxy = events.len();
    let due = seen
        .last_metrics
        .is_none_or(|t| t.elapsed() >= Duration::from_secs(3));
    if due && !seen.latest.is_empty() {
        seen.last_metrics = Some(Instant::now());
        // Only tasks still serving.
        let live: Vec<String> = s.runner.tasks().into_iter().map(|t| t.id).collect();
        seen.latest.retain(|id, _| live.contains(id));
        tl.log(Source::Metrics, metrics_line(&seen.latest));
    }
}

/// `2 tasks | 41 req/s | CPU avg 63% (abc 99%, def 27%) | in-flight 7`.
fn metrics_line(latest: &BTreeMap<String, EmfRecord>) -> String {
    let v = |r: &EmfRecord, k: &str| r.values.get(k).copied().unwrap_or(0.0);
    let n = latest.len().max(1) as f64;
    let rps: f64 =
        latest.values().map(|r| v(r, "RequestCount")).sum::<f64>() / f64::from(METRICS_INTERVAL_S);
    let cpu: f64 = latest.values().map(|r| v(r, "CPUUtilization")).sum::<f64>() / n;
    let in_flight: f64 = latest.values().map(|r| v(r, "InFlight")).sum();
    let per_task = latest
        .iter()
        .map(|(id, r)| format!("{} {:.0}%", &id[..id.len().min(8)], v(r, "CPUUtilization")))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "{} task(s) | {rps:.0} req/s | CPU avg {cpu:.0}% ({per_task}) | in-flight {in_flight:.0}",
        latest.len()
    )
}

#[allow(clippy::too_many_arguments)]
fn on_driver_event(
    s: &DemoStack<'_>,
    tl: &Arc<Timeline>,
    ev: DriverEvent,
    seen: &mut Seen,
    summary: &mut DemoSummary,
    up_invoked: &mut Option<Instant>,
    down_invoked: &mut Option<Instant>,
    down_returned: &mut bool,
) {
    match ev {
        DriverEvent::Records(records) => {
            for r in records {
                seen.latest.insert(r.task_id.clone(), r);
            }
        }
        DriverEvent::StateChange {
            alarm,
            from,
            to,
            reason,
        } => {
            seen.alarm_states
                .insert(alarm.clone(), (to, Instant::now()));
            let what = format!("{alarm}: {} -> {}", from.as_str(), to.as_str());
            if to == State::Alarm {
                tl.log(Source::CloudWatch, format!("{what}\n{reason}"));
            } else {
                tl.log(Source::CloudWatch, what);
            }
        }
        DriverEvent::Invoking {
            alarm, function, ..
        } => {
            tl.log(
                Source::Lambda,
                format!("invoke {function} (alarm action of {alarm})"),
            );
        }
        DriverEvent::Invoked {
            function,
            payload: request,
            result,
            took,
            alarm,
        } => match result {
            Ok(value) => {
                match serde_json::from_value::<Report>(value.clone()) {
                    Ok(report) if alarm == RECONCILE && report.outcome == Outcome::Skipped => {
                        // The schedule's no-op runs: one line (not repeated), no email.
                        let line = format!(
                            "{function} (reconcile schedule) -> Skipped: {}",
                            report.outcome_reason
                        );
                        if seen.last_noop.as_ref() != Some(&line) {
                            tl.log(Source::Lambda, &line);
                            seen.last_noop = Some(line);
                        }
                        return;
                    }
                    Ok(report) => {
                        tl.log(Source::Lambda, report_text(&function, &report, took));
                        record(summary, &report);
                        // The figures time the invocation that did the work.
                        if report.outcome == Outcome::Completed {
                            let started = Instant::now() - took;
                            match report.function {
                                FunctionKind::ScaleUp => {
                                    up_invoked.get_or_insert(started);
                                }
                                FunctionKind::ScaleDown => {
                                    down_invoked.get_or_insert(started);
                                    *down_returned = true;
                                }
                                FunctionKind::DrainInstance => {}
                            }
                        }
                        summary.reports.push(report);
                    }
                    Err(e) => tl.log(
                        Source::Lambda,
                        format!("{function} answered something else than a report ({e}): {value}"),
                    ),
                }
                notify(s, tl, seen, &function, request, Ok(value));
            }
            Err(e) => {
                tl.log(
                    Source::Lambda,
                    format!("{function} FAILED after {took:?}: {e}"),
                );
                summary.errors.push(format!("{function}: {e}"));
                notify(s, tl, seen, &function, request, Err(e));
            }
        },
        DriverEvent::Error(e) => {
            tl.log(Source::CloudWatch, format!("error: {e}"));
            summary.errors.push(e);
        }
    }
}

/// The template's reconcile schedule (`ReconcileScheduleRule`: rate(2
/// minutes)), scaled like the alarm periods.
const RECONCILE_RATE_S: f64 = 120.0;
/// The `alarm` of schedule invocations in driver events.
const RECONCILE: &str = "reconcile schedule";

/// Plays EventBridge's schedule rule: invokes scale-down with the sample
/// scheduled event (`events/scale-down-schedule.json`, with a new id and
/// time) in the background.
fn reconcile(s: &DemoStack<'_>, tx: mpsc::UnboundedSender<DriverEvent>) {
    let invoke = s.invoke.clone();
    tokio::spawn(async move {
        let path = test_support::paths::repo_root().join("events/scale-down-schedule.json");
        let mut payload: Value = match std::fs::read_to_string(&path)
            .map_err(anyhow::Error::from)
            .and_then(|t| Ok(serde_json::from_str(&t)?))
        {
            Ok(v) => v,
            Err(e) => {
                let _ = tx.send(DriverEvent::Error(format!("{}: {e:#}", path.display())));
                return;
            }
        };
        payload["time"] = json!(chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string());
        payload["id"] = json!(format!("local-{}", chrono::Utc::now().timestamp_micros()));
        let at = Instant::now();
        let result = invoke("scale-down".into(), payload.clone())
            .await
            .map_err(|e| format!("{e:#}"));
        let _ = tx.send(DriverEvent::Invoked {
            alarm: RECONCILE.into(),
            function: "scale-down".into(),
            payload,
            result,
            took: at.elapsed(),
        });
    });
}

/// Takes the summary's figures (scale-out and scale-in times, drain) from a report.
fn record(summary: &mut DemoSummary, r: &Report) {
    if r.outcome != Outcome::Completed {
        return;
    }
    match r.function {
        FunctionKind::ScaleUp if summary.alarm_to_update_service_ms.is_none() => {
            let mut total = 0;
            for step in &r.steps {
                total += step.duration_ms;
                if step.name == "update_service" {
                    summary.alarm_to_update_service_ms = Some(total);
                    break;
                }
            }
        }
        FunctionKind::ScaleDown if summary.drain_ms.is_none() => {
            if let Some(d) = &r.drain {
                summary.drain_ms = Some(d.drain_ms);
                summary.scale_in_beyond_drain_ms = Some(r.duration_ms.saturating_sub(d.drain_ms));
            }
        }
        _ => {}
    }
}

/// One report in a few lines: outcome, why, counts, steps, drain.
fn report_text(function: &str, r: &Report, took: Duration) -> String {
    let counts = |c: &Option<scaling::report::Counts>| {
        c.map_or("?".into(), |c| {
            format!("desired {} running {}", c.desired, c.running)
        })
    };
    let mut out = format!(
        "{function} -> {:?} in {} ms (invocation {:.0} ms): {}\n  decision {}: {}\n  before: {} | after: {}",
        r.outcome,
        r.duration_ms,
        took.as_secs_f64() * 1000.0,
        r.outcome_reason,
        r.decision.action,
        r.decision.reason,
        counts(&r.before),
        counts(&r.after),
    );
    if !r.steps.is_empty() {
        let steps = r
            .steps
            .iter()
            .map(|s| {
                format!(
                    "{}{} {} ms",
                    s.name,
                    if s.ok { "" } else { " FAILED" },
                    s.duration_ms
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        out.push_str(&format!("\n  steps: {steps}"));
    }
    if let Some(d) = &r.drain {
        out.push_str(&format!(
            "\n  drain: victim {} ({}), drained in {} ms, in flight at stop {:?}{}",
            super::metadata::task_id(&d.victim_task),
            d.strategy,
            d.drain_ms,
            d.in_flight_at_stop,
            if d.deadline_hit { ", DEADLINE HIT" } else { "" }
        ));
    }
    out
}

/// Sends the result to notify as the Lambda destination would (in the
/// background, like the destination), then prints the emails that appeared
/// in the topic since last time.
fn notify(
    s: &DemoStack<'_>,
    tl: &Arc<Timeline>,
    seen: &mut Seen,
    function: &str,
    request: Value,
    result: Result<Value, String>,
) {
    let record = destination_record(function, request, result);
    let (invoke, moto, tl) = (s.invoke.clone(), s.moto, tl.clone());
    let (emails, errors) = (seen.emails.clone(), seen.notify_errors.clone());
    seen.notifies.spawn(async move {
        if let Err(e) = invoke("notify".into(), record).await {
            tl.log(Source::Lambda, format!("notify FAILED: {e:#}"));
            errors
                .lock()
                .expect("notify errors")
                .push(format!("notify: {e:#}"));
        }
        // One reader at a time, so each email is printed once.
        let mut printed = emails.lock().await;
        let messages = tokio::task::spawn_blocking(move || moto.sns_messages())
            .await
            .map_err(anyhow::Error::from)
            .and_then(|r| r);
        match messages {
            Ok(messages) => {
                for m in messages.iter().skip(*printed) {
                    tl.log(
                        Source::Email,
                        format!(
                            "Subject: {}\n{}",
                            m["subject"].as_str().unwrap_or(""),
                            m["message"].as_str().unwrap_or("")
                        ),
                    );
                }
                *printed = messages.len();
            }
            Err(e) => {
                // The first line: moto's 500 carries a whole HTML page.
                let e = format!("{e:#}");
                let first = e.lines().next().unwrap_or_default();
                tl.log(Source::Email, format!("could not read the topic: {first}"))
            }
        }
    });
}

/// The record a Lambda destination sends (OnSuccess, or OnFailure after the
/// retries), the shape of `events/notify-destination-*.json`.
pub fn destination_record(function: &str, request: Value, result: Result<Value, String>) -> Value {
    let now = chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string();
    let arn = format!(
        "arn:aws:lambda:{}:{}:function:{function}:$LATEST",
        test_support::moto::REGION,
        test_support::moto::ACCOUNT_ID
    );
    let (condition, count, response_context, payload) = match result {
        Ok(v) => (
            "Success",
            1,
            json!({"statusCode": 200, "executedVersion": "$LATEST"}),
            v,
        ),
        Err(e) => (
            "RetriesExhausted",
            3,
            json!({"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"}),
            json!({"errorType": "Error", "errorMessage": e}),
        ),
    };
    json!({
        "version": "1.0",
        "timestamp": now,
        "requestContext": {
            "requestId": format!("local-{}", chrono::Utc::now().timestamp_micros()),
            "functionArn": arn,
            "condition": condition,
            "approximateInvokeCount": count,
        },
        "requestPayload": request,
        "responseContext": response_context,
        "responsePayload": payload,
    })
}

/// Waits for Ctrl-C (used by `KEEP=1` after the scenario).
pub async fn until_ctrl_c() -> anyhow::Result<()> {
    tokio::signal::ctrl_c().await.context("wait for Ctrl-C")
}
