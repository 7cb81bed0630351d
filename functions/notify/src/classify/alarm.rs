//! `CloudWatch Alarm State Change`.

use super::fmt::{metric_value, short_alarm, when};
use super::{Place, Verdict};
use crate::event::Envelope;
use crate::links;
use crate::notice::{AlarmKey, Notice, Section, Severity};
use crate::settings::Settings;
use scaling::error::ScalingError;
use scaling::trigger::{AlarmChange, AlarmState};

pub fn classify(envelope: &Envelope, change: &AlarmChange, settings: &Settings) -> Verdict {
    // The scaling functions' own rule: an alarm on another service is not ours, and
    // neither is one that names no service of ours (a composite, metric-math or foreign
    // metric alarm) unless it bears this service's name prefix, as the template's do.
    if let Err(e) = change.check_ours(&settings.cluster, &settings.service) {
        return Verdict::ignore(match e {
            ScalingError::NotOurs(why) => why,
            other => other.to_string(),
        });
    }
    let state = change.state;
    if change.leaves_creation() && state != AlarmState::Alarm {
        return Verdict::drop(format!(
            "alarm {} left its creation state for {state}: a deploy artefact",
            change.alarm_name
        ));
    }
    let scaling = settings.scaling_alarms.contains(&change.alarm_name);
    if scaling && state != AlarmState::InsufficientData {
        return Verdict::drop(format!(
            "scaling alarm {} -> {state}: the episode report is the email",
            change.alarm_name
        ));
    }

    let service = &settings.service;
    let name = &change.alarm_name;
    let short = short_alarm(name, service);
    let unit = change.metric.as_ref().map(|m| m.name.as_str());
    let value = change.latest_value();
    let threshold = change.threshold;
    let (severity, outcome, detail) = match state {
        AlarmState::Alarm => (
            Severity::Critical,
            format!("ALARM {short}"),
            match (value, threshold) {
                (Some(v), Some(t)) => Some(format!(
                    "{} vs threshold {}",
                    metric_value(v, unit),
                    metric_value(t, unit)
                )),
                (Some(v), None) => Some(metric_value(v, unit)),
                _ => None,
            },
        ),
        AlarmState::Ok => (
            Severity::Info,
            format!("OK {short}: recovered"),
            value.map(|v| metric_value(v, unit)),
        ),
        AlarmState::InsufficientData => (
            Severity::Warning,
            format!("no data: {short}"),
            Some(if scaling {
                "autoscaler cannot see this metric".to_string()
            } else {
                "alarm cannot evaluate".to_string()
            }),
        ),
    };
    let place = Place::of(envelope, settings);
    let prev_value = change.previous_state.map_or("(none)", AlarmState::as_str);
    let summary = match state {
        AlarmState::Alarm | AlarmState::Ok => format!(
            "The alarm {name} went from {prev_value} to {state} at {}.",
            when(&change.timestamp)
        ),
        AlarmState::InsufficientData => format!(
            "The alarm {name} went from {prev_value} to INSUFFICIENT_DATA at {}: its metric \
             stopped arriving.{}",
            when(&change.timestamp),
            if scaling {
                " It is a scaling alarm, so the autoscaler cannot react to this metric until \
                 data returns."
            } else {
                ""
            }
        ),
    };
    let mut why = Vec::new();
    if let Some(d) = &change.description {
        why.push(format!("alarm: {d}"));
    }
    if let Some(m) = metric_label(change) {
        why.push(format!("metric: {m}"));
    }
    match (value, threshold) {
        (Some(v), Some(t)) => why.push(format!(
            "value: {} against threshold {}",
            metric_value(v, unit),
            metric_value(t, unit)
        )),
        (None, Some(t)) => why.push(format!("threshold: {}", metric_value(t, unit))),
        _ => {}
    }
    if !change.reason.is_empty() {
        why.push(format!("reason: {}", change.reason));
    }
    let checks = match state {
        AlarmState::Alarm => vec![
            "- the service's recent events and task health (Service link)".to_string(),
            "- the alarm's graph and history (Alarm link)".to_string(),
        ],
        AlarmState::Ok => vec![],
        AlarmState::InsufficientData => vec![
            "- that tasks are running and emitting metrics (EMF lines in the task logs)"
                .to_string(),
            "- the alarm's metric name, namespace and dimensions".to_string(),
        ],
    };
    let mut sections = vec![Section::new("Why", why)];
    if !checks.is_empty() {
        sections.push(Section::new("What to check", checks));
    }
    Verdict::Notify(Box::new(Notice {
        severity,
        kind: "alarm",
        service: service.clone(),
        outcome,
        detail,
        summary,
        sections,
        links: vec![
            ("Alarm", links::alarm(&place.region, name)),
            (
                "Service",
                links::service(&place.region, &settings.cluster, service),
            ),
        ],
        footer: place.footer(),
        dedup_key: envelope.id.clone(),
        alarm: Some(AlarmKey {
            name: name.clone(),
            state_time: change.timestamp,
        }),
    }))
}

/// `Namespace/Name (statistic)` of the watched metric, for the body.
fn metric_label(change: &AlarmChange) -> Option<String> {
    let m = change.metric.as_ref()?;
    Some(match &change.statistic {
        Some(s) => format!("{}/{} ({s})", m.namespace, m.name),
        None => format!("{}/{}", m.namespace, m.name),
    })
}
