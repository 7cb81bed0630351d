//! Auto Scaling launch and terminate results of the capacity group (EC2 mode).

use super::{Place, Verdict};
use crate::event::asg::{AsgAction, AsgActivity};
use crate::event::Envelope;
use crate::links;
use crate::notice::{Notice, Section, Severity};
use crate::settings::Settings;

pub fn classify(
    envelope: &Envelope,
    action: AsgAction,
    successful: bool,
    a: &AsgActivity,
    settings: &Settings,
) -> Verdict {
    if settings.capacity_asg.as_deref() != Some(a.auto_scaling_group_name.as_str()) {
        return Verdict::ignore(format!(
            "Auto Scaling group {} is not the capacity group ({:?})",
            a.auto_scaling_group_name, settings.capacity_asg
        ));
    }
    let instance = a.ec2_instance_id.clone().filter(|i| !i.is_empty());
    let (severity, outcome, checks): (_, &str, Vec<&str>) = match (action, successful) {
        (AsgAction::Launch, true) => (Severity::Info, "instance launched", vec![]),
        (AsgAction::Terminate, true) => (Severity::Info, "instance terminated", vec![]),
        // No new instance: tasks waiting for capacity stay PENDING.
        (AsgAction::Launch, false) => (
            Severity::Critical,
            "instance launch failed",
            vec![
                "- the status message: capacity in the zone, quotas, launch template, subnet IPs",
                "- PENDING tasks in the service (Service link): they wait for this capacity",
            ],
        ),
        (AsgAction::Terminate, false) => (
            Severity::Warning,
            "instance terminate failed",
            vec![
                "- the group's activity history (Group link)",
                "- the drain-instance function's reports: a lifecycle hook may still be waiting",
            ],
        ),
    };
    let place = Place::of(envelope, settings);
    let group = &a.auto_scaling_group_name;
    let mut why = Vec::new();
    for (label, v) in [
        ("description", &a.description),
        ("cause", &a.cause),
        ("status", &a.status_code),
        ("status message", &a.status_message),
    ] {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            why.push(format!("{label}: {v}"));
        }
    }
    if let Some(d) = &a.details {
        if let Some(az) = &d.availability_zone {
            why.push(format!("availability zone: {az}"));
        }
        if let Some(s) = &d.subnet_id {
            why.push(format!("subnet: {s}"));
        }
    }
    let mut sections = vec![Section::new("Why", why)];
    if !checks.is_empty() {
        sections.push(Section::new(
            "What to check",
            checks.into_iter().map(String::from).collect(),
        ));
    }
    Verdict::Notify(Box::new(Notice {
        severity,
        kind: "capacity",
        service: settings.service.clone(),
        outcome: outcome.to_string(),
        summary: format!(
            "Auto Scaling group {group}: {outcome}{}.",
            instance
                .as_deref()
                .map(|i| format!(" ({i})"))
                .unwrap_or_default()
        ),
        detail: instance,
        sections,
        links: vec![
            ("Group", links::asg(&place.region, group)),
            (
                "Service",
                links::service(&place.region, &settings.cluster, &settings.service),
            ),
        ],
        footer: place.footer(),
        dedup_key: envelope.id.clone(),
        alarm: None,
    }))
}
