//! `ECS Service Action`: WARN and ERROR events of the service.

use super::{Place, Verdict};
use crate::event::ecs::{last_segment, ServiceAction};
use crate::event::Envelope;
use crate::links;
use crate::notice::{Notice, Section, Severity};
use crate::settings::Settings;

pub fn classify(envelope: &Envelope, action: &ServiceAction, settings: &Settings) -> Verdict {
    let ours = action.cluster_name() == settings.cluster
        && envelope
            .resources
            .iter()
            .any(|r| last_segment(r) == settings.service);
    if !ours {
        return Verdict::ignore(format!(
            "service action {} is about {:?}",
            action.event_name, envelope.resources
        ));
    }
    let severity = match action.event_type.as_str() {
        "ERROR" => Severity::Critical,
        "WARN" => Severity::Warning,
        // SERVICE_STEADY_STATE and friends: the normal course of things.
        _ => return Verdict::drop(format!("informational service event {}", action.event_name)),
    };
    let (outcome, checks): (String, Vec<&str>) = match action.event_name.as_str() {
        "SERVICE_TASK_PLACEMENT_FAILURE" => (
            "cannot place tasks".into(),
            vec![
                "- RESOURCE:CPU / RESOURCE:MEMORY: no capacity has room; in EC2 mode check the \
                 capacity group's instances and max size (a scale-out may be waiting on them)",
                "- Fargate: account quotas and subnet IP addresses",
                "- the service's events (Service link)",
            ],
        ),
        "SERVICE_TASK_START_IMPAIRED" => (
            "tasks fail to start".into(),
            vec!["- the stopped tasks' reasons in the service's events (Service link)"],
        ),
        "SERVICE_TASK_CONFIGURATION_FAILURE" => (
            "task configuration failure".into(),
            vec!["- the task definition, its image and secrets"],
        ),
        other => (
            other.to_ascii_lowercase().replace('_', " "),
            vec!["- the service's events (Service link)"],
        ),
    };
    let place = Place::of(envelope, settings);
    let reason = action.reason.clone();
    let mut why = vec![format!(
        "event: {} ({})",
        action.event_name, action.event_type
    )];
    if let Some(r) = &reason {
        why.push(format!("reason: {r}"));
    }
    for cp in &action.capacity_provider_arns {
        why.push(format!("capacity provider: {}", last_segment(cp)));
    }
    Verdict::Notify(Box::new(Notice {
        severity,
        kind: "service",
        service: settings.service.clone(),
        summary: format!(
            "ECS reported {} for {}{}.",
            action.event_name,
            settings.service,
            reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        ),
        outcome,
        detail: reason,
        sections: vec![
            Section::new("Why", why),
            Section::new(
                "What to check",
                checks.into_iter().map(String::from).collect(),
            ),
        ],
        links: vec![(
            "Service",
            links::service(&place.region, &settings.cluster, &settings.service),
        )],
        footer: place.footer(),
        dedup_key: envelope.id.clone(),
        alarm: None,
    }))
}
