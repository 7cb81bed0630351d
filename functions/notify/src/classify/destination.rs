//! Episode reports (OnSuccess) and function failures (OnFailure).

use super::fmt::{duration_ms, metric_value, short_alarm, task_id, when};
use super::{Place, Verdict};
use crate::event::destination::{Destination, FunctionError, RequestContext};
use crate::links;
use crate::notice::{Notice, Section, Severity};
use crate::settings::Settings;
use scaling::report::{Counts, FunctionKind, Outcome, Report, RollbackSummary, TriggerSummary};
use serde_json::Value;

pub fn classify(d: &Destination, settings: &Settings) -> Verdict {
    match d {
        Destination::Success { context, report } => match &report.forecast_review {
            Some(review) => super::review::classify(context, report, review, settings),
            None => episode(context, report, settings),
        },
        Destination::Failure {
            context,
            error,
            request,
        } => failure(context, error, request, settings),
    }
}

pub(super) fn place(
    context: &RequestContext,
    report: Option<&Report>,
    settings: &Settings,
) -> Place {
    let (region, account) = context.region_account();
    Place {
        region: report
            .and_then(|r| r.region.clone())
            .or(region.map(String::from))
            .unwrap_or_else(|| settings.region.clone()),
        account: report
            .and_then(|r| r.account.clone())
            .or(account.map(String::from))
            .unwrap_or_else(|| settings.account.clone()),
    }
}

pub(super) fn dedup_key(context: &RequestContext) -> String {
    format!("lambda:{}:{}", context.request_id, context.condition)
}

fn verb(kind: FunctionKind) -> (&'static str, &'static str) {
    match kind {
        FunctionKind::ScaleUp => ("scaled out", "scale-out"),
        FunctionKind::ScaleDown => ("scaled in", "scale-in"),
        FunctionKind::DrainInstance => ("instance drained", "instance drain"),
    }
}

/// How an episode that changed something (or tried to) ended: the outcomes that
/// are emailed. Skipped and in-progress reports never get this far.
#[derive(Clone, Copy)]
enum Ended {
    Completed,
    Cancelled,
    RolledBack,
    Failed,
}

fn episode(context: &RequestContext, r: &Report, settings: &Settings) -> Verdict {
    let ended = match r.outcome {
        Outcome::Completed => Ended::Completed,
        Outcome::Cancelled => Ended::Cancelled,
        Outcome::RolledBack => Ended::RolledBack,
        Outcome::Failed => Ended::Failed,
        // A skip changed nothing: cooldowns, limits, pauses and duplicate deliveries
        // are normal and frequent (the reconcile schedule skips most of the time).
        Outcome::Skipped => {
            return Verdict::drop(format!(
                "skipped episode, nothing changed: {}",
                first_non_empty(&r.outcome_reason, &r.decision.reason)
            ))
        }
        // Quiet on purpose: a drain that outlasts one invocation reports in_progress at
        // every heartbeat (each schedule tick or retry), so even one "low priority" notice per
        // report would repeat every 2 minutes, and a notice once per drain would need state
        // across invocations. Its end always reports: completed (info), or failed with the
        // tasks named when the hook's global timeout comes (critical). A drain that stays
        // in progress forever is caught by that timeout, so nothing is lost by waiting.
        Outcome::InProgress => {
            return Verdict::drop(format!(
                "still in progress, a later invocation goes on: {}",
                first_non_empty(&r.outcome_reason, &r.decision.reason)
            ))
        }
    };
    let place = place(context, Some(r), settings);
    let service = &r.service.service;
    let (severity, outcome) = headline(ended, r);
    let summary = summary(ended, r);
    let mut sections = vec![Section::new("Why", why_lines(r))];
    sections.extend(counts_section(r));
    sections.extend(steps_section(r));
    sections.extend(drain_section(r));
    let mut checks = Vec::new();
    if let Some(rb) = &r.rollback {
        sections.push(rollback_section(rb));
        checks.extend(rb.operator_checks.iter().map(|c| format!("- {c}")));
    }
    if checks.is_empty() && matches!(ended, Ended::Failed) {
        checks = failed_checks();
    }
    if !checks.is_empty() {
        sections.push(Section::new("What to check", checks));
    }
    let footer = report_footer("Episode", "started", context, r, &place);
    Verdict::Notify(Box::new(Notice {
        severity,
        kind: "episode",
        service: service.clone(),
        outcome,
        detail: trigger_detail(&r.trigger, service),
        summary,
        sections,
        links: episode_links(context, r, &place),
        footer,
        dedup_key: Some(dedup_key(context)),
        alarm: None,
    }))
}

/// The desired counts before and after, when the report has both ends.
fn desired_change(r: &Report) -> (Option<i32>, Option<i32>) {
    let from = r.before.map(|c| c.desired);
    let to = r.after.map(|c| c.desired).or(r.decision.target);
    (from, to)
}

/// The subject's severity and outcome line.
fn headline(ended: Ended, r: &Report) -> (Severity, String) {
    let (done, noun) = verb(r.function);
    let (from, to) = desired_change(r);
    let change = match (from, to) {
        (Some(a), Some(b)) => format!(" {a}->{b}"),
        _ => String::new(),
    };
    let (mut severity, mut outcome) = match ended {
        Ended::Completed => (Severity::Info, format!("{done}{change}")),
        Ended::Cancelled => (
            Severity::Info,
            format!(
                "{noun} cancelled{}",
                from.map(|n| format!(", kept {n}")).unwrap_or_default()
            ),
        ),
        Ended::RolledBack => (Severity::Warning, format!("{noun} rolled back")),
        Ended::Failed => (
            Severity::Critical,
            format!("{noun} failed, left for next run"),
        ),
    };
    if r.drain.as_ref().is_some_and(|d| d.deadline_hit) {
        severity = severity.max(Severity::Warning);
    }
    if r.dry_run {
        outcome = format!("dry run: {outcome}");
    }
    (severity, outcome)
}

/// The body's opening sentence.
fn summary(ended: Ended, r: &Report) -> String {
    let service = &r.service.service;
    let (done, noun) = verb(r.function);
    let summary = match ended {
        Ended::Completed => match desired_change(r) {
            (Some(a), Some(b)) => format!(
                "{service} {done} from {a} to {b} tasks in {}.",
                duration_ms(r.duration_ms)
            ),
            _ => format!(
                "{service}: {noun} completed in {}.",
                duration_ms(r.duration_ms)
            ),
        },
        Ended::Cancelled => format!(
            "The {noun} of {service} was cancelled and the task kept: {}",
            first_non_empty(&r.outcome_reason, "a scale-out arrived during the drain.")
        ),
        Ended::RolledBack => format!(
            "The {noun} of {service} failed and was rolled back: {}",
            first_non_empty(&r.outcome_reason, "see Rollback below.")
        ),
        Ended::Failed => format!(
            "The {noun} of {service} failed and could not be undone in this invocation: {} \
             The next invocation (any alarm or the reconcile schedule) finishes or rolls it back.",
            first_non_empty(&r.outcome_reason, "see Steps below.")
        ),
    };
    if r.dry_run {
        format!("DRY RUN (nothing was changed). {summary}")
    } else {
        summary
    }
}

fn counts_section(r: &Report) -> Option<Section> {
    let mut counts = Vec::new();
    if let Some(c) = r.before {
        counts.push(format!("before: {}", counts_line(&c)));
    }
    if let Some(c) = r.after {
        counts.push(format!("after:  {}", counts_line(&c)));
    }
    (!counts.is_empty()).then(|| Section::new("Counts", counts))
}

fn steps_section(r: &Report) -> Option<Section> {
    if r.steps.is_empty() {
        return None;
    }
    let width = r.steps.iter().map(|s| s.name.len()).max().unwrap_or(0);
    let lines = r
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let status = if s.ok { "ok    " } else { "FAILED" };
            let line = format!(
                "{:>2}. {:<width$}  {status}  {:>9}",
                i + 1,
                s.name,
                duration_ms(s.duration_ms)
            );
            if s.detail.is_empty() {
                line
            } else {
                format!("{line}  {}", s.detail)
            }
        })
        .collect();
    Some(Section::new("Steps", lines))
}

fn drain_section(r: &Report) -> Option<Section> {
    let d = r.drain.as_ref()?;
    let mut lines = vec![
        format!("victim task: {}", task_id(&d.victim_task)),
        format!("chosen by: {}", d.strategy),
    ];
    if let Some(f) = &d.fallback {
        lines.push(format!("fallback: {f}"));
    }
    lines.push(match d.in_flight_at_stop {
        Some(n) => format!("in flight at stop: {n}"),
        None => "in flight at stop: unknown (task unreachable)".into(),
    });
    lines.push(format!("drain took: {}", duration_ms(d.drain_ms)));
    if d.deadline_hit {
        lines.push(
            "DRAIN DEADLINE HIT: the task was stopped before it reported 0 in flight; \
             requests may have been cut."
                .into(),
        );
    }
    Some(Section::new("Drain", lines))
}

fn rollback_section(rb: &RollbackSummary) -> Section {
    let mut lines = vec![format!("reason: {}", rb.reason)];
    lines.extend(rb.actions.iter().map(|a| format!("- {a}")));
    if rb.actions.is_empty() {
        lines.push("- nothing had to be undone".into());
    }
    Section::new("Rollback", lines)
}

/// What to check after a failure that names no operator check of its own.
fn failed_checks() -> Vec<String> {
    vec![
        "- the next report for this service: it should say completed or rolled back".into(),
        "- the service's autoscaler:* tags: an episode left behind shows in autoscaler:episode"
            .into(),
        "- the function's logs (link below)".into(),
    ]
}

/// `<what> <id>, function <name>, <verb> <time>.` and where it ran: the footer of every
/// email made from a report.
pub(super) fn report_footer(
    what: &str,
    verb: &str,
    context: &RequestContext,
    r: &Report,
    place: &Place,
) -> String {
    format!(
        "{what} {}, function {}, {verb} {}. {}",
        r.episode_id,
        context.function_name(),
        when(&r.started_at),
        place.footer()
    )
}

/// The service, the alarm that started the report (if one did), and the function's logs.
pub(super) fn episode_links(
    context: &RequestContext,
    r: &Report,
    place: &Place,
) -> Vec<(&'static str, String)> {
    let mut links_list = vec![(
        "Service",
        links::service(&place.region, &r.service.cluster, &r.service.service),
    )];
    if let TriggerSummary::Alarm { alarm_name, .. } = &r.trigger {
        links_list.push(("Alarm", links::alarm(&place.region, alarm_name)));
    }
    links_list.push((
        "Logs",
        links::function_logs(&place.region, context.function_name()),
    ));
    links_list
}

fn first_non_empty<'a>(a: &'a str, b: &'a str) -> &'a str {
    if a.trim().is_empty() {
        b
    } else {
        a
    }
}

fn counts_line(c: &Counts) -> String {
    let mut s = format!(
        "desired {}, running {}, pending {}",
        c.desired, c.running, c.pending
    );
    if let Some(a) = c.asg_desired {
        s.push_str(&format!(", instances desired {a}"));
    }
    s
}

/// The subject's parenthesis: which alarm and its value, or what else started it.
fn trigger_detail(t: &TriggerSummary, service: &str) -> Option<String> {
    match t {
        TriggerSummary::Alarm {
            alarm_name,
            value,
            metric,
            ..
        } => {
            let short = short_alarm(alarm_name, service);
            Some(match value {
                Some(v) => format!(
                    "{short} {}",
                    metric_value(*v, metric.as_ref().map(|m| m.name.as_str()))
                ),
                None => short.to_string(),
            })
        }
        TriggerSummary::Schedule { .. } => Some("reconcile".into()),
        TriggerSummary::Window { window, edge, .. } => Some(format!("window {window} {edge}")),
        TriggerSummary::Lifecycle { instance_id, .. } => Some(instance_id.clone()),
    }
}

fn why_lines(r: &Report) -> Vec<String> {
    let mut lines = Vec::new();
    match &r.trigger {
        TriggerSummary::Alarm {
            alarm_name,
            state,
            previous_state,
            reason,
            timestamp,
            metric,
            threshold,
            comparison,
            value,
            ..
        } => {
            let prev = previous_state
                .as_deref()
                .map(|p| format!("{p} -> "))
                .unwrap_or_default();
            lines.push(format!(
                "alarm: {alarm_name} ({prev}{state} at {})",
                when(timestamp)
            ));
            if let Some(m) = metric {
                let dims: Vec<String> = m
                    .dimensions
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                lines.push(format!(
                    "metric: {}/{} [{}]",
                    m.namespace,
                    m.name,
                    dims.join(", ")
                ));
            }
            let unit = metric.as_ref().map(|m| m.name.as_str());
            match (value, threshold) {
                (Some(v), Some(t)) => lines.push(format!(
                    "value: {} against threshold {}{}",
                    metric_value(*v, unit),
                    metric_value(*t, unit),
                    comparison
                        .as_deref()
                        .map(|c| format!(" ({c})"))
                        .unwrap_or_default()
                )),
                (Some(v), None) => lines.push(format!("value: {}", metric_value(*v, unit))),
                (None, Some(t)) => lines.push(format!("threshold: {}", metric_value(*t, unit))),
                (None, None) => {}
            }
            if !reason.is_empty() {
                lines.push(format!("reason: {reason}"));
            }
        }
        TriggerSummary::Schedule { time } => {
            lines.push(format!("the reconcile schedule at {}", when(time)));
        }
        TriggerSummary::Window {
            window,
            edge,
            scheduled_time,
        } => {
            lines.push(format!(
                "scheduled window {window}: {edge} (due {})",
                when(scheduled_time)
            ));
        }
        TriggerSummary::Lifecycle {
            asg_name,
            instance_id,
            ..
        } => {
            lines.push(format!(
                "Auto Scaling terminates {instance_id} in group {asg_name}"
            ));
        }
    }
    let target = r
        .decision
        .target
        .map(|t| format!(" {t}"))
        .unwrap_or_default();
    lines.push(format!(
        "decision: {}{target}: {}",
        r.decision.action, r.decision.reason
    ));
    if let Some(b) = &r.bounds {
        lines.push(format!("limits in force: {}", b.describe()));
    }
    lines
}

fn failure(
    context: &RequestContext,
    error: &FunctionError,
    request: &Value,
    settings: &Settings,
) -> Verdict {
    let place = place(context, None, settings);
    let function = context.function_name();
    let error_type = error
        .error_type
        .as_deref()
        .unwrap_or(match context.condition.as_str() {
            "EventAgeExceeded" => "EventAgeExceeded",
            _ => "unknown error",
        });
    let attempts = context
        .approximate_invoke_count
        .map(|n| format!(" after {n} attempt{}", if n == 1 { "" } else { "s" }))
        .unwrap_or_default();
    let summary = format!(
        "{function} failed{attempts} ({}) and Lambda gave up on the event. \
         Whatever it was doing for {} was not finished by that invocation.",
        context.condition, settings.service
    );
    let mut why = vec![format!("error type: {error_type}")];
    if let Some(m) = &error.error_message {
        why.push(format!("message: {m}"));
    }
    why.push(format!("event: {}", describe_request(request)));
    why.push(format!("request id: {}", context.request_id));
    let checks = vec![
        "- the next report for this service: the next invocation (any alarm or the reconcile \
         schedule) finishes or rolls back an interrupted episode"
            .to_string(),
        "- the service's autoscaler:* tags: autoscaler:episode names an episode left behind, \
         autoscaler:paused=true stops every function"
            .to_string(),
        format!(
            "- the function's logs for request {} (link below)",
            context.request_id
        ),
        "- error types starting with Aws. are AWS-side (throttling, permissions); BadEvent and \
         NotOurs mean the event itself was wrong"
            .to_string(),
    ];
    Verdict::Notify(Box::new(Notice {
        severity: Severity::Critical,
        kind: "function-error",
        service: settings.service.clone(),
        outcome: format!("{function} failed"),
        detail: Some(error_type.to_string()),
        summary,
        sections: vec![
            Section::new("Why", why),
            Section::new("What to check", checks),
        ],
        links: vec![
            ("Logs", links::function_logs(&place.region, function)),
            (
                "Service",
                links::service(&place.region, &settings.cluster, &settings.service),
            ),
        ],
        footer: place.footer(),
        dedup_key: Some(dedup_key(context)),
        alarm: None,
    }))
}

/// One line about the event a failed function was given.
fn describe_request(v: &Value) -> String {
    let s = |p: &str| v.pointer(p).and_then(Value::as_str);
    if let Some(name) = s("/alarmData/alarmName") {
        return format!(
            "alarm action for {name} ({})",
            s("/alarmData/state/value").unwrap_or("?")
        );
    }
    if let Some(dt) = s("/detail-type") {
        return match s("/detail/LifecycleTransition").or(s("/detail/alarmName")) {
            Some(what) => format!("EventBridge {dt:?} ({what})"),
            None => format!("EventBridge {dt:?}"),
        };
    }
    "unrecognised payload (see the function's logs)".into()
}
