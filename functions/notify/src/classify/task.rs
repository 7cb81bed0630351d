//! `ECS Task State Change`: only unexpected stops of the service's tasks email.
//!
//! Expected stops are the scheduler's own: a scale-in (ours: desired − 1 makes ECS
//! stop the one unprotected task, stop code `ServiceSchedulerInitiated`) or a
//! deployment. `EssentialContainerExited` means the container ended by itself,
//! which a scale-in never causes, so it is always unexpected.

use super::{Place, Verdict};
use crate::event::ecs::TaskChange;
use crate::event::Envelope;
use crate::links;
use crate::notice::{Notice, Section, Severity};
use crate::settings::Settings;

/// Why a task stopped, most specific first.
enum Cause {
    Oom { exit: Option<i64> },
    HealthCheck { elb: bool },
    FailedToStart,
    Crashed { exit: i64 },
    ExitedCleanly,
    Interrupted,
}

fn cause(task: &TaskChange) -> Option<Cause> {
    let reason = task.stopped_reason.as_deref().unwrap_or("");
    let code = task.stop_code.as_deref().unwrap_or("");
    let exit = task
        .containers
        .iter()
        .find_map(|c| c.exit_code.filter(|e| *e != 0));
    let oom = reason.contains("OutOfMemory")
        || task.containers.iter().any(|c| {
            c.reason
                .as_deref()
                .is_some_and(|r| r.contains("OutOfMemory"))
        });
    if oom {
        return Some(Cause::Oom {
            exit: exit.or_else(|| task.containers.iter().find_map(|c| c.exit_code)),
        });
    }
    let lower = reason.to_ascii_lowercase();
    if lower.contains("health check") {
        return Some(Cause::HealthCheck {
            elb: lower.contains("elb"),
        });
    }
    match code {
        "TaskFailedToStart" => Some(Cause::FailedToStart),
        "EssentialContainerExited" => Some(match exit {
            Some(e) => Cause::Crashed { exit: e },
            None => Cause::ExitedCleanly,
        }),
        "SpotInterruption" | "TerminationNotice" => Some(Cause::Interrupted),
        // ServiceSchedulerInitiated (scale-in, deployment) and UserInitiated
        // (StopTask by a person or tool): somebody meant it.
        _ => None,
    }
}

pub fn classify(envelope: &Envelope, task: &TaskChange, settings: &Settings) -> Verdict {
    if task.last_status != "STOPPED" {
        return Verdict::ignore(format!("task {} is {}", task.task_id(), task.last_status));
    }
    if task.service_name() != Some(settings.service.as_str())
        || task.cluster_name() != settings.cluster
    {
        return Verdict::ignore(format!(
            "task {} belongs to {:?} in {}",
            task.task_id(),
            task.group,
            task.cluster_name()
        ));
    }
    let Some(cause) = cause(task) else {
        return Verdict::drop(format!(
            "task {} stopped as intended ({}): {}",
            task.task_id(),
            task.stop_code.as_deref().unwrap_or("no stop code"),
            task.stopped_reason.as_deref().unwrap_or("")
        ));
    };
    let exit_text = |e: Option<i64>| e.map(|e| format!("exit {e}"));
    let (severity, outcome, detail, checks): (_, _, _, Vec<&str>) = match cause {
        Cause::Oom { exit } => (
            Severity::Critical,
            "task crashed: OOM".to_string(),
            exit_text(exit),
            vec![
                "- the task definition's memory limit against MemoryUtilization before the crash",
                "- the task's logs just before it stopped (Task link): which requests were running",
            ],
        ),
        Cause::HealthCheck { elb } => (
            Severity::Warning,
            "task replaced: failed health checks".to_string(),
            Some(if elb { "ELB" } else { "container" }.to_string()),
            vec![
                "- GET /health on the other tasks, and the database they depend on",
                "- the target group's health check path, interval and thresholds",
                "- the task's logs before it stopped (Task link)",
            ],
        ),
        Cause::FailedToStart => (
            Severity::Critical,
            "task failed to start".to_string(),
            task.stopped_reason.clone(),
            vec![
                "- the stopped reason above: image pull, secrets, ENI or capacity",
                "- the service's events (Service link)",
            ],
        ),
        Cause::Crashed { exit } => (
            Severity::Critical,
            "task crashed".to_string(),
            exit_text(Some(exit)),
            vec!["- the task's logs (Task link) for the panic or error before exit"],
        ),
        Cause::ExitedCleanly => (
            Severity::Warning,
            "task exited unexpectedly".to_string(),
            Some("exit 0".into()),
            vec!["- the task's logs (Task link): the server should never exit on its own"],
        ),
        Cause::Interrupted => (
            Severity::Warning,
            "task interrupted".to_string(),
            task.stop_code.clone(),
            vec!["- that ECS started a replacement (Service link)"],
        ),
    };
    let place = Place::of(envelope, settings);
    let id = task.task_id();
    let summary = format!(
        "Task {id} of {} stopped unexpectedly: {}. ECS starts a replacement on its own.",
        settings.service,
        task.stopped_reason.as_deref().unwrap_or("no reason given")
    );
    let mut facts = vec![
        format!(
            "stop code: {}",
            task.stop_code.as_deref().unwrap_or("(none)")
        ),
        format!(
            "stopped reason: {}",
            task.stopped_reason.as_deref().unwrap_or("(none)")
        ),
    ];
    if let Some(td) = &task.task_definition_arn {
        facts.push(format!(
            "task definition: {}",
            td.rsplit('/').next().unwrap_or(td)
        ));
    }
    if let Some(az) = &task.availability_zone {
        facts.push(format!("availability zone: {az}"));
    }
    let containers = task
        .containers
        .iter()
        .map(|c| {
            let exit = c
                .exit_code
                .map(|e| format!("exit {e}"))
                .unwrap_or_else(|| "no exit code".into());
            match &c.reason {
                Some(r) => format!("{}: {exit}, {r}", c.name),
                None => format!("{}: {exit}", c.name),
            }
        })
        .collect::<Vec<_>>();
    let mut sections = vec![Section::new("Why", facts)];
    if !containers.is_empty() {
        sections.push(Section::new("Containers", containers));
    }
    sections.push(Section::new(
        "What to check",
        checks.into_iter().map(String::from).collect(),
    ));
    Verdict::Notify(Box::new(Notice {
        severity,
        kind: "task",
        service: settings.service.clone(),
        outcome,
        detail,
        summary,
        sections,
        links: vec![
            ("Task", links::task(&place.region, task.cluster_name(), id)),
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
