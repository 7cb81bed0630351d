//! `CloudWatch Alarm State Change`.

use super::fmt::{metric_value, short_alarm, when};
use super::{Place, Verdict};
use crate::event::alarm::AlarmChange;
use crate::event::Envelope;
use crate::links;
use crate::notice::{AlarmKey, Notice, Section, Severity};
use crate::settings::Settings;
use scaling::trigger::AlarmState;

pub fn classify(envelope: &Envelope, change: &AlarmChange, settings: &Settings) -> Verdict {
    // Same rule as the scaling functions: an alarm on another service is not ours, and
    // neither is one that names no service of ours (a composite, metric-math or foreign
    // metric alarm) unless it bears this service's name prefix, as the template's do.
    let mut named = false;
    if let Some(dims) = change.dimensions() {
        for (key, ours) in [
            ("ServiceName", &settings.service),
            ("ClusterName", &settings.cluster),
        ] {
            match dims.get(key) {
                Some(theirs) if theirs != ours => {
                    return Verdict::ignore(format!(
                        "alarm {} watches {key}={theirs}, not {ours}",
                        change.alarm_name
                    ));
                }
                Some(_) => named = true,
                None => {}
            }
        }
    }
    if !named
        && !change
            .alarm_name
            .starts_with(&format!("{}-", settings.service))
    {
        return Verdict::ignore(format!(
            "alarm {} names no dimension of {} and is not one of its alarms ({}-*)",
            change.alarm_name, settings.service, settings.service
        ));
    }
    let state = change.state.value;
    let prev = change.previous_state.as_ref();
    let from_creation = prev.is_none_or(|p| p.is_unchecked());
    if from_creation && state != AlarmState::Alarm {
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
    let data = change.state.reason_data();
    let metric_name = change
        .configuration
        .as_ref()
        .and_then(|c| c.metrics.iter().find_map(|m| m.metric_stat.as_ref()))
        .map(|s| s.metric.name.clone());
    let unit = metric_name.as_deref();
    let value = data
        .as_ref()
        .and_then(|d| d.recent_datapoints.last().copied());
    let threshold = data.as_ref().and_then(|d| d.threshold);
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
    let prev_value = prev.map_or("(none)", |p| p.value.as_str());
    let summary = match state {
        AlarmState::Alarm | AlarmState::Ok => format!(
            "The alarm {name} went from {prev_value} to {state} at {}.",
            when(&change.state.timestamp)
        ),
        AlarmState::InsufficientData => format!(
            "The alarm {name} went from {prev_value} to INSUFFICIENT_DATA at {}: its metric \
             stopped arriving.{}",
            when(&change.state.timestamp),
            if scaling {
                " It is a scaling alarm, so the autoscaler cannot react to this metric until \
                 data returns."
            } else {
                ""
            }
        ),
    };
    let mut why = Vec::new();
    if let Some(d) = change
        .configuration
        .as_ref()
        .and_then(|c| c.description.as_deref())
        .filter(|d| !d.is_empty())
    {
        why.push(format!("alarm: {d}"));
    }
    if let Some(m) = change.metric_label() {
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
    if !change.state.reason.is_empty() {
        why.push(format!("reason: {}", change.state.reason));
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
            state_time: change.state.timestamp,
        }),
    }))
}
