//! The scale-up re-evaluation: an EventBridge schedule invokes scale-up every
//! `SCALE_OUT_REEVALUATE_S` (the template: every minute).
//!
//! CloudWatch runs a Lambda alarm action only when the alarm changes state
//! ("the actions happen only on state transitions, and are not performed again
//! if the condition persists for hours or days": CloudWatch user guide, "Alarm
//! actions", <https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/AlarmThatSendsEmail.html#alarms-and-actions>).
//! So a load that stays above the threshold after the first step, or an alarm
//! whose one invocation fell inside the cooldown, would never scale out again.
//! Each scheduled run therefore:
//! 1. raises desired to `MIN_TASKS` when it is below (the template sets no
//!    `DesiredCount`, so a release never resets it; this keeps the floor);
//! 2. re-reads `SCALE_OUT_ALARMS` (DescribeAlarms) and, for each in ALARM, the
//!    newest datapoint of its metric (GetMetricStatistics with the alarm's
//!    statistic and period), and runs the same policy as the alarm action with
//!    that fresh evidence; the alarm that asks for most tasks drives one step;
//! 3. when the only obstacle is a cooldown ending within the schedule's period,
//!    waits for it inside the invocation and evaluates once more, so steps under
//!    a sustained breach are one cooldown apart, not a cooldown plus a period.
//!
//! The alarm action and the schedule never add two steps for one breach: both
//! record `autoscaler:last-scale-out`, both pass the cooldown, and evidence
//! measured at or before the last scale-out is stale (policy `Skip::Stale`).
//! A run that changes nothing reports `skipped`, which notify does not email.
//!
//! Predictive pre-scaling (`PREDICTIVE_MODE`, `scaling::predictive`) runs between
//! the floor and the alarms: the load balancer's request count over the last
//! `PREDICTIVE_HISTORY_DAYS` (GetMetricData), the forecast of the next hour, and
//! the tasks its peak within the lead needs. `on` raises desired to them (never
//! lowers); `forecast-only` records what it would do in the report's
//! `forecast` step and changes nothing; `off` reads nothing. A failed read is
//! a failed step in the report: the alarms are re-evaluated all the same.

use crate::{act, prior, ready, service_state, Deps, Ready, ScaleOut};
use crate::{ScaleUpError, ScaleUpError::Scaling};
use chrono::{DateTime, SecondsFormat, Utc};
use scaling::aws::cloudwatch::{Datapoint, MetricAlarm};
use scaling::aws::timed;
use scaling::config::ConfigError;
use scaling::episode;
use scaling::error::ScalingError;
use scaling::policy::{self, AlarmInput, Cap, Decision, History, Limits, ServiceState};
use scaling::predictive::{self, Outlook, PredictiveMode};
use scaling::report::{DecisionSummary, Outcome, Report, Step, TriggerSummary};
use scaling::trigger::AlarmState;
use std::time::{Duration, Instant, SystemTime};

/// One scheduled run at the current time: evaluates, and when a cooldown ending
/// within the schedule's period is all that stops a step, waits for it and
/// evaluates once more.
pub async fn run(deps: &Deps, schedule_time: DateTime<Utc>) -> Result<Report, ScaleUpError> {
    let (first, wait) = evaluate(deps, schedule_time, Utc::now()).await?;
    let Some(wait) = wait else {
        return Ok(first);
    };
    // The cooldown tag has whole seconds: a little slack so the second look is past it.
    let wait = wait + Duration::from_millis(250);
    tracing::info!(
        wait_ms = wait.as_millis() as u64,
        "re-evaluation: waiting for the scale-out cooldown to end"
    );
    let started = Instant::now();
    tokio::time::sleep(wait).await;
    let (mut second, _) = evaluate(deps, schedule_time, Utc::now()).await?;
    second.steps.insert(
        0,
        Step {
            name: "wait_cooldown".into(),
            ok: true,
            duration_ms: started.elapsed().as_millis() as u64,
            detail: "the scale-out cooldown ended within the schedule's period".into(),
        },
    );
    Ok(second)
}

/// One evaluation as if at `now`: the report, and how long to wait before a
/// second look when a cooldown ending within `SCALE_OUT_REEVALUATE_S` is all
/// that stopped a step.
pub async fn evaluate(
    deps: &Deps,
    schedule_time: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(Report, Option<Duration>), ScaleUpError> {
    let c = &deps.config;
    // The floor and ceiling in force (a scheduled window's, or MIN_TASKS/MAX_TASKS).
    let bounds = c.windows.bounds_at_utc(now);
    let id = format!(
        "reevaluate-{}",
        schedule_time.to_rfc3339_opts(SecondsFormat::Secs, true)
    );
    let trigger = TriggerSummary::Schedule {
        time: schedule_time,
    };
    let mut ep = ScaleOut::new(deps, id, trigger, now);
    let (service, cap, state) = match ready(&mut ep).await? {
        Ready::Go(service, cap, state) => (service, cap, state),
        Ready::Done(report) => return Ok((report, None)),
    };
    let history = History::from_state(&state);

    // 1. The floor, whatever the alarms say; else what the forecast asks for.
    let limits = Limits::from_config(c).within(&bounds);
    let mut raise =
        policy::decide_floor(&service_state(&service), &limits, &history).map(|d| ("floor", d));
    if raise.is_none() && c.predictive.mode != PredictiveMode::Off {
        let s = service_state(&service);
        let (outlook, step) = forecast(deps, &s, &limits, &history, cap.as_ref(), now).await;
        ep.steps.push(step);
        if c.predictive.mode == PredictiveMode::On {
            raise = outlook
                .and_then(|o| predictive::decide(&s, &limits, &history, &o, cap.as_ref()))
                .map(|d| ("forecast", d));
        }
    }
    // The floor and the forecast only ever raise; a skip from either would fall through to
    // the alarms below.
    if let Some((name, floor @ Decision::ScaleTo { target, .. })) = &raise {
        let key = episode::alarm_key(name, schedule_time);
        ep.id = format!("out-{key}");
        let (target, decision, resumed) =
            match prior(&mut ep, &service, &state, &key, "this schedule run").await {
                Some(Ok((target, d))) => (target, d, true),
                Some(Err(report)) => return Ok((report, None)),
                None => (*target, floor.summary(), false),
            };
        let report = act(
            &mut ep, &service, &state, &key, target, decision, resumed, now,
        )
        .await?;
        return Ok((report, None));
    }

    // 2. The scale-out alarms, with fresh evidence.
    if c.scale_out_alarms.is_empty() {
        let reason =
            "re-evaluation: no SCALE_OUT_ALARMS configured, and desired is at least MIN_TASKS";
        return Ok((quiet(&mut ep, reason), None));
    }
    let (found, step) = timed(
        "describe_alarms",
        deps.cloudwatch.describe_metric_alarms(&c.scale_out_alarms),
    )
    .await;
    ep.steps.push(step);
    let found = match found {
        Ok(found) => found,
        Err(e) => {
            return Err(ep.fail(
                e,
                DecisionSummary::skip("could not read the scale-out alarms"),
                Outcome::Failed,
                None,
            ))
        }
    };
    let in_alarm = alarms_in_alarm(&c.scale_out_alarms, &found)?;
    if in_alarm.is_empty() {
        let reason = format!(
            "re-evaluation: no scale-out alarm in ALARM ({})",
            c.scale_out_alarms.join(", ")
        );
        return Ok((quiet(&mut ep, &reason), None));
    }
    let wall = SystemTime::now();
    let mut decisions = Vec::with_capacity(in_alarm.len());
    let mut evidence = Vec::with_capacity(in_alarm.len());
    for alarm in &in_alarm {
        let (point, step) = timed(
            "get_metric_statistics",
            deps.cloudwatch.newest_datapoint(alarm, wall),
        )
        .await;
        ep.steps.push(step);
        // Without a datapoint the alarm's own change is the evidence (and the
        // proportional step falls back to the fixed one).
        let point = point.ok().flatten();
        let input = alarm_input(alarm, point);
        decisions.push(policy::decide_scale_out(
            &service_state(&service),
            &Limits::for_alarm(c, &alarm.name).within(&bounds),
            &history,
            &input,
            cap.as_ref(),
            now,
        ));
        evidence.push(point);
    }
    let i = policy::pick_largest(&decisions).unwrap_or(0);
    let (alarm, decision) = (&in_alarm[i], &decisions[i]);
    ep.trigger = trigger_summary(alarm, evidence[i], schedule_time);
    match decision {
        Decision::Skip(skip) => {
            let wait = policy::reevaluation_wait(decision, c.scale_out_reevaluate);
            let before = ep.before;
            let report = ep.report(decision.summary(), before, Outcome::Skipped, skip.reason());
            Ok((report, wait))
        }
        Decision::ScaleTo { target, .. } => {
            let key = episode::alarm_key(&format!("schedule:{}", alarm.name), schedule_time);
            ep.id = format!("out-{key}");
            let (target, summary, resumed) =
                match prior(&mut ep, &service, &state, &key, "this schedule run").await {
                    Some(Ok((target, d))) => (target, d, true),
                    Some(Err(report)) => return Ok((report, None)),
                    None => (*target, decision.summary(), false),
                };
            let report = act(
                &mut ep, &service, &state, &key, target, summary, resumed, now,
            )
            .await?;
            Ok((report, None))
        }
    }
}

/// The request-count history ending at the last whole step a minute ago (the load
/// balancer publishes per minute), the forecast from it, and the report's `forecast` step:
/// what it saw and, in `forecast-only`, what it would do. None when the read failed.
async fn forecast(
    deps: &Deps,
    s: &ServiceState,
    limits: &Limits,
    history: &History,
    cap: Option<&Cap>,
    now: DateTime<Utc>,
) -> (Option<Outlook>, Step) {
    let p = &deps.config.predictive;
    let end = p.last_published_step(now);
    let from = end - chrono::Duration::seconds(p.history.as_secs() as i64);
    let (read, mut step) = timed(
        "forecast",
        deps.cloudwatch
            .request_counts(&p.load_balancer, &p.target_group, p.step, from, end),
    )
    .await;
    let series = match read {
        Ok(series) => series,
        Err(e) => {
            tracing::warn!(error = %e, "forecast: could not read the request count history");
            return (None, step);
        }
    };
    let o = predictive::outlook(p, &series, end, now);
    step.detail = match (p.mode, predictive::decide(s, limits, history, &o, cap)) {
        (PredictiveMode::ForecastOnly, Some(Decision::ScaleTo { target, .. })) => format!(
            "forecast-only: would raise desired {} -> {target}; {}",
            s.desired,
            o.describe()
        ),
        (PredictiveMode::ForecastOnly, _) => {
            format!("forecast-only: no change; {}", o.describe())
        }
        _ => o.describe(),
    };
    tracing::info!(mode = p.mode.as_str(), detail = %step.detail, "forecast");
    (Some(o), step)
}

/// A run that changes nothing: reported (and logged), never emailed.
fn quiet(ep: &mut ScaleOut<'_>, reason: &str) -> Report {
    tracing::info!(reason, "re-evaluation: nothing to do");
    let before = ep.before;
    ep.report(
        DecisionSummary::skip(reason),
        before,
        Outcome::Skipped,
        reason.to_string(),
    )
}

/// The configured alarms that are in ALARM, in configured order. A configured
/// name CloudWatch does not know would silently disable the re-evaluation for it:
/// a non-retryable configuration error naming it.
pub fn alarms_in_alarm(
    names: &[String],
    found: &[MetricAlarm],
) -> Result<Vec<MetricAlarm>, ScaleUpError> {
    let mut out = Vec::new();
    for name in names {
        match found.iter().find(|a| &a.name == name) {
            None => {
                return Err(Scaling(ScalingError::Config(ConfigError::Invalid {
                    var: "SCALE_OUT_ALARMS",
                    value: names.join(","),
                    why: format!("names {name}, which CloudWatch does not know"),
                })))
            }
            Some(a) if a.state == AlarmState::Alarm.as_str() => out.push(a.clone()),
            Some(_) => {}
        }
    }
    Ok(out)
}

/// The policy's view of an alarm still in ALARM: the newest datapoint, measured
/// at the start of its period; without one, the alarm's own change.
pub fn alarm_input(alarm: &MetricAlarm, point: Option<Datapoint>) -> AlarmInput {
    AlarmInput {
        state: Some(AlarmState::Alarm),
        value: point.map(|p| p.value),
        threshold: alarm.threshold,
        measured_at: Some(point.map_or(alarm.since, |p| p.at)),
    }
}

/// The report's trigger: the alarm that drove the decision, and that it was the
/// schedule's re-evaluation (the email says both).
pub fn trigger_summary(
    alarm: &MetricAlarm,
    point: Option<Datapoint>,
    schedule_time: DateTime<Utc>,
) -> TriggerSummary {
    let secs = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
    let evidence = match point {
        Some(p) => format!("newest datapoint {} at {}", p.value, secs(p.at)),
        None => "no datapoint in the last three periods".into(),
    };
    TriggerSummary::Alarm {
        alarm_name: alarm.name.clone(),
        alarm_arn: alarm.arn.clone(),
        state: alarm.state.clone(),
        previous_state: None,
        reason: format!(
            "re-evaluation by the schedule at {}: {} still in ALARM since {}; {evidence}",
            secs(schedule_time),
            alarm.name,
            secs(alarm.since)
        ),
        timestamp: alarm.since,
        metric: alarm.metric.clone(),
        threshold: alarm.threshold,
        comparison: alarm.comparison.clone(),
        value: point.map(|p| p.value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alarm(name: &str, state: &str) -> MetricAlarm {
        MetricAlarm {
            name: name.into(),
            arn: None,
            state: state.into(),
            since: DateTime::from_timestamp(1_795_000_000, 0).unwrap(),
            threshold: Some(50.0),
            comparison: Some("GreaterThanThreshold".into()),
            metric: None,
            statistic: Some("Average".into()),
            period_s: Some(10),
        }
    }

    #[test]
    fn alarms_in_alarm_keep_the_configured_order_and_refuse_unknown_names() {
        let names = vec!["a".to_string(), "b".to_string(), "c".to_string()];
        let found = [alarm("c", "ALARM"), alarm("a", "OK"), alarm("b", "ALARM")];
        let got: Vec<String> = alarms_in_alarm(&names, &found)
            .unwrap()
            .into_iter()
            .map(|a| a.name)
            .collect();
        assert_eq!(got, ["b", "c"]);
        let e = alarms_in_alarm(&["a".into(), "typo".into()], &found).unwrap_err();
        assert!(e.to_string().contains("typo"), "{e}");
        assert!(!scaling::error::Classify::retryable(&e));
    }

    #[test]
    fn the_evidence_is_the_datapoint_else_the_alarm_change() {
        let a = alarm("x", "ALARM");
        let p = Datapoint {
            at: a.since + chrono::Duration::seconds(300),
            value: 72.0,
        };
        let input = alarm_input(&a, Some(p));
        assert_eq!((input.value, input.measured_at), (Some(72.0), Some(p.at)));
        let input = alarm_input(&a, None);
        assert_eq!((input.value, input.measured_at), (None, Some(a.since)));
    }

    #[test]
    fn the_trigger_names_the_alarm_and_the_reevaluation() {
        let a = alarm("visits-api-inflight-high", "ALARM");
        let at = a.since + chrono::Duration::seconds(120);
        let TriggerSummary::Alarm { reason, value, .. } =
            trigger_summary(&a, Some(Datapoint { at, value: 80.0 }), at)
        else {
            panic!("an alarm trigger")
        };
        assert_eq!(value, Some(80.0));
        assert!(
            reason.starts_with("re-evaluation by the schedule at 2026-"),
            "{reason}"
        );
        assert!(
            reason.contains("visits-api-inflight-high still in ALARM since"),
            "{reason}"
        );
    }
}
