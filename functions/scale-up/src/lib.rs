//! Scale-up: a CloudWatch alarm goes to ALARM and, within milliseconds, the
//! service has more tasks (and, in EC2 mode, more instances on the way).
//!
//! Hot path: parse (no call) → DescribeServices with tags (state and episode
//! state in one round trip; the DB metric read beside it when configured) →
//! decide (pure) → TagResource (record the intent: idempotency key, target,
//! cooldown) → UpdateService. The cancel hook, EC2 capacity and the episode
//! metric follow the scale-out, so they never delay it.
//!
//! The re-evaluation schedule (EventBridge `Scheduled Event`, [`reevaluate`])
//! keeps desired at least `MIN_TASKS` and scales out again while a scale-out
//! alarm stays in ALARM: CloudWatch invokes the alarm action only on a state
//! change (docs/scale-up.md).
//!
//! Once a day, the forecast review ([`review`]) reports the last day's forecast
//! against what happened; it changes nothing.

mod capacity;
mod cause;
mod dbcap;
mod error;
pub mod reevaluate;
pub mod review;

pub use dbcap::cap as db_cap;
pub use error::ScaleUpError;

use aws_config::SdkConfig;
use chrono::{DateTime, Utc};
use scaling::aws::autoscaling::AutoScaling;
use scaling::aws::cloudwatch::{CloudWatch, EpisodeMetrics};
use scaling::aws::ecs::{Ecs, ServiceInfo};
use scaling::aws::timed;
use scaling::config::Config;
use scaling::episode::{self, EpisodeState};
use scaling::error::AwsError;
use scaling::policy::{self, Decision, History, ServiceState};
use scaling::report::{
    Counts, DecisionSummary, FunctionKind, Outcome, Report, RollbackSummary, ServiceRef, Step,
    TriggerSummary,
};
use scaling::trigger::{self, Trigger};
use serde_json::Value;
use std::time::Instant;

/// Everything the handler needs, built once in `main`.
#[derive(Debug, Clone)]
pub struct Deps {
    pub config: Config,
    pub ecs: Ecs,
    pub autoscaling: AutoScaling,
    pub cloudwatch: CloudWatch,
    /// For the report (the SDK config's region).
    pub region: Option<String>,
}

impl Deps {
    /// Builds every client from one SDK config.
    pub fn new(config: Config, sdk: &SdkConfig) -> Self {
        Deps {
            config,
            ecs: Ecs::new(sdk),
            autoscaling: AutoScaling::new(sdk),
            cloudwatch: CloudWatch::new(sdk),
            region: sdk.region().map(|r| r.to_string()),
        }
    }
}

/// Handles one event at the current time. A scheduled re-evaluation that finds
/// the cooldown ending within its period waits for it (bounded by
/// `SCALE_OUT_REEVALUATE_S`) and evaluates once more.
pub async fn handle(event: Value, deps: &Deps) -> Result<Report, ScaleUpError> {
    if let Some(scheduled) = scaling::review::parse_input(&event) {
        return Box::pin(review::run(deps, scheduled?, Utc::now())).await;
    }
    match trigger::parse(&event)? {
        // Boxed: the re-evaluation's future inside the runtime's would pass rustc's
        // query depth limit (like scaling::aws::instances' listing).
        Trigger::Schedule { time, .. } => Box::pin(reevaluate::run(deps, time)).await,
        Trigger::Alarm(_) | Trigger::Window(_) => {
            Box::pin(handle_at(event, deps, Utc::now())).await
        }
    }
}

/// Handles one event as if at `now` (tests drive cooldowns with it); a
/// scheduled re-evaluation evaluates once, without waiting.
pub async fn handle_at(
    event: Value,
    deps: &Deps,
    now: DateTime<Utc>,
) -> Result<Report, ScaleUpError> {
    let clock = Instant::now();
    let c = &deps.config;
    // "Bad input changes nothing" (docs/invariants.md): a bad event is rejected
    // before any AWS call.
    if let Some(scheduled) = scaling::review::parse_input(&event) {
        return Box::pin(review::run(deps, scheduled?, now)).await;
    }
    if let Trigger::Schedule { time, .. } = trigger::parse(&event)? {
        return Box::pin(reevaluate::evaluate(deps, time, now))
            .await
            .map(|(r, _)| r);
    }
    // An alarm change or a scheduled window's start.
    let cause = cause::Cause::parse(&event, c)?;
    let key = cause.key();
    // The floor and ceiling in force now: the window is an input to the policy.
    let bounds = c.windows.bounds_at_utc(now);
    let mut ep = ScaleOut::new(deps, format!("out-{key}"), cause.summary(), now);
    ep.clock = clock;
    ep.account = cause.account();
    if let Some(reason) = cause.early_skip(&bounds) {
        return Ok(ep.report(
            DecisionSummary::skip(&reason),
            None,
            Outcome::Skipped,
            reason,
        ));
    }

    let (service, cap, state) = match ready(&mut ep).await? {
        Ready::Go(service, cap, state) => (service, cap, state),
        Ready::Done(report) => return Ok(report),
    };

    // "One action per alarm change": this alarm change already acted. Finish it if
    // the crash came between recording and UpdateService; else a duplicate.
    let (target, decision, resumed) =
        match prior(&mut ep, &service, &state, &key, cause.what()).await {
            Some(Ok((target, d))) => (target, d, true),
            Some(Err(report)) => return Ok(report),
            None => {
                let decision = cause.decide(
                    &service_state(&service),
                    c,
                    &bounds,
                    &History::from_state(&state),
                    cap.as_ref(),
                    now,
                );
                match decision {
                    Decision::ScaleTo { target, .. } => (target, decision.summary(), false),
                    Decision::Skip(ref skip) => {
                        let reason = skip.reason();
                        let before = ep.before;
                        return Ok(ep.report(decision.summary(), before, Outcome::Skipped, reason));
                    }
                }
            }
        };

    act(
        &mut ep, &service, &state, &key, target, decision, resumed, now,
    )
    .await
}

/// The service as the policy sees it.
pub(crate) fn service_state(service: &ServiceInfo) -> ServiceState {
    ServiceState {
        desired: service.desired,
        running: service.running,
        pending: service.pending,
        deployment_in_progress: service.deployment_in_progress(),
    }
}

/// After reading the service: go on, or the report that ends the invocation.
// Built once per invocation and matched at once: boxing the larger variant would buy nothing.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Ready {
    Go(ServiceInfo, Option<policy::Cap>, EpisodeState),
    Done(Report),
}

/// Reads the service (and the DB cap) and sets the report's "before" counts;
/// a paused service or one that is not ACTIVE ends the invocation (skipped).
pub(crate) async fn ready(ep: &mut ScaleOut<'_>) -> Result<Ready, ScaleUpError> {
    let (service, cap) = read_state(ep).await?;
    let state = EpisodeState::from_tags(&service.tags);
    let before = Counts {
        desired: service.desired,
        running: service.running,
        pending: service.pending,
        asg_desired: None,
    };
    ep.before = Some(before);
    if state.paused {
        let skip = policy::Skip::Paused;
        return Ok(Ready::Done(ep.report(
            skip_summary(&skip),
            Some(before),
            Outcome::Skipped,
            skip.reason(),
        )));
    }
    if service.status != "ACTIVE" {
        let reason = format!("service status is {}, not ACTIVE", service.status);
        return Ok(Ready::Done(ep.report(
            DecisionSummary::skip(&reason),
            Some(before),
            Outcome::Skipped,
            reason,
        )));
    }
    Ok(Ready::Go(service, cap, state))
}

/// What an earlier invocation under the same idempotency `key` did: a recorded
/// scale-out that did not land is finished (`Ok`: target and decision); one that
/// landed makes this a duplicate (`Err`: the skipped report). None: first time.
pub(crate) async fn prior(
    ep: &mut ScaleOut<'_>,
    service: &ServiceInfo,
    state: &EpisodeState,
    key: &str,
    what: &str,
) -> Option<Result<(i32, DecisionSummary), Report>> {
    let done = state.scale_out_done(key)?;
    let max = ep.deps.config.windows.bounds_at_utc(ep.started_at).max;
    if service.desired < done.target && done.target <= max {
        return Some(Ok((
            done.target,
            DecisionSummary {
                action: "resume".into(),
                target: Some(done.target),
                reason: format!(
                    "{what} recorded a scale-out to {} that did not land: finishing it",
                    done.target
                ),
            },
        )));
    }
    let reason = format!(
        "duplicate delivery: {what} already scaled out to {}",
        done.target
    );
    let cancelled = cancel_hook(ep, service, state).await;
    let before = ep.before;
    let mut report = ep.report(
        DecisionSummary::skip(&reason),
        before,
        Outcome::Skipped,
        reason,
    );
    note_cancel(&mut report, cancelled);
    Some(Err(report))
}

/// Carries out a decided scale-out to `target`: record the intent under `key`,
/// UpdateService, then the cancel hook, EC2 capacity and the episode metric.
/// Shared by the alarm action and the scheduled re-evaluation.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn act(
    ep: &mut ScaleOut<'_>,
    service: &ServiceInfo,
    state: &EpisodeState,
    key: &str,
    target: i32,
    decision: DecisionSummary,
    resumed: bool,
    now: DateTime<Utc>,
) -> Result<Report, ScaleUpError> {
    let deps = ep.deps;
    let c = &deps.config;
    let before = ep.before.unwrap_or_default();
    if c.dry_run {
        let reason = format!("dry run: would scale {} -> {target}", service.desired);
        return Ok(ep.report(decision, Some(before), Outcome::Skipped, reason));
    }

    // Record the intent first: a crash after this is finished by the redelivery.
    let intent = state.record_scale_out(key, target, now);
    let (res, step) = timed("record_intent", deps.ecs.tag(&service.arn, &intent)).await;
    ep.steps.push(step);
    if let Err(e) = res {
        return Err(ep.fail(e, decision, Outcome::Failed, None));
    }
    let (res, step) = timed(
        "update_service",
        deps.ecs.update_desired(&c.cluster, &c.service, target),
    )
    .await;
    ep.steps.push(step);
    if let Err(e) = res {
        let rollback = if resumed {
            None
        } else {
            Some(undo_intent(ep, service).await)
        };
        let outcome = match &rollback {
            Some(r) if r.operator_checks.is_empty() => Outcome::RolledBack,
            _ => Outcome::Failed,
        };
        return Err(ep.fail(e, decision, outcome, rollback));
    }

    // After the scale-out: keep a draining task, add capacity, publish the metric.
    let cancelled = cancel_hook(ep, service, state).await;
    let added = target - service.desired;
    let asg = match &c.capacity_asg_name {
        Some(asg) => capacity::ensure(ep, asg, service, added).await,
        None => None,
    };
    let mut values = vec![("ScaleOutTasks", f64::from(added))];
    if let Some(a) = &asg {
        values.push(("AsgScaleOut", f64::from(a.after - a.before)));
    }
    let metrics = EpisodeMetrics {
        namespace: &c.metrics_namespace,
        cluster: &c.cluster,
        service: &c.service,
        values,
    };
    let (_, step) = timed(
        "put_metric_data",
        deps.cloudwatch.put_episode_metrics(&metrics),
    )
    .await;
    ep.steps.push(step);

    let after = Counts {
        desired: target,
        running: service.running,
        pending: service.pending + added.max(0),
        asg_desired: asg.as_ref().map(|a| a.after),
    };
    if let Some(before) = ep.before.as_mut() {
        before.asg_desired = asg.as_ref().map(|a| a.before);
    }
    let mut reason = format!("scaled out {} -> {target}", service.desired);
    if let Some(a) = &asg {
        reason.push_str(&format!("; {}", a.note));
    }
    let mut report = ep.report(decision, Some(after), Outcome::Completed, reason);
    note_cancel(&mut report, cancelled);
    Ok(report)
}

/// The service (with its tags) and, when configured, the DB cap, in parallel.
pub(crate) async fn read_state(
    ep: &mut ScaleOut<'_>,
) -> Result<(ServiceInfo, Option<policy::Cap>), ScaleUpError> {
    let deps = ep.deps;
    let c = &deps.config;
    let ((svc, svc_step), db) = tokio::join!(
        timed(
            "describe_service",
            deps.ecs.describe_service(&c.cluster, &c.service)
        ),
        dbcap::read_connections(deps),
    );
    ep.steps.push(svc_step);
    let service = match svc {
        Ok(s) => s,
        Err(e) => {
            return Err(ep.fail(
                e,
                DecisionSummary::skip("could not read the service"),
                Outcome::Failed,
                None,
            ));
        }
    };
    let cap = c.db_cap.as_ref().map(|cap| {
        let (connections, step) = db;
        if let Some(step) = step {
            ep.steps.push(step);
        }
        dbcap::cap(cap, service.desired, connections)
    });
    Ok((service, cap))
}

/// The hook of "one episode at a time": ask an active, cancellable scale-in episode to stop.
/// A failure is recorded as a failed step; the scale-out itself stands.
/// Returns the note for the report.
///
/// The marker was read before our UpdateService; scale-down may have moved
/// past its last cancel check since. So the marker is read again after the
/// cancel is written, and the note says what the cancel can still do.
async fn cancel_hook(
    ep: &mut ScaleOut<'_>,
    service: &ServiceInfo,
    state: &EpisodeState,
) -> Option<String> {
    state.cancellable_episode()?;
    let (res, step) = timed(
        "request_cancel",
        episode::request_cancel(&ep.deps.ecs, &service.arn, state),
    )
    .await;
    ep.steps.push(step);
    let id = res.ok().flatten()?;
    let c = &ep.deps.config;
    let reread = ep.deps.ecs.describe_service(&c.cluster, &c.service);
    let (now, step) = timed("reread_marker", reread).await;
    ep.steps.push(step);
    let asked = format!("asked scale-in episode {id} to cancel");
    let phase = now.map(|s| EpisodeState::from_tags(&s.tags).scale_in);
    let note = match phase {
        Ok(Some(e)) if e.id == id && e.phase.is_cancellable() => {
            format!("{asked} and keep its task")
        }
        Ok(Some(e)) if e.id == id => format!(
            "{asked}, but it had already reached {}: it keeps its task only if its \
             victim has not stopped yet (it rolls back when it sees desired raised)",
            e.phase
        ),
        Ok(_) => format!("{asked}, but it had already ended"),
        Err(e) => format!("{asked} (could not read its marker again: {e})"),
    };
    Some(note)
}

fn note_cancel(report: &mut Report, note: Option<String>) {
    if let Some(note) = note {
        report.outcome_reason.push_str(&format!("; {note}"));
    }
}

/// UpdateService failed after the intent was recorded: restore the tags, so the
/// retried event decides afresh and no cooldown blocks it.
async fn undo_intent(ep: &mut ScaleOut<'_>, service: &ServiceInfo) -> RollbackSummary {
    let mut restore = Vec::new();
    let mut remove = Vec::new();
    for key in [episode::LAST_SCALE_OUT, episode::SCALE_OUT_KEYS] {
        match service.tags.get(key) {
            Some(v) => restore.push((key.to_string(), v.clone())),
            None => remove.push(key.to_string()),
        }
    }
    let ecs = &ep.deps.ecs;
    let ((r1, s1), (r2, s2)) = tokio::join!(
        timed("rollback_tags", ecs.tag(&service.arn, &restore)),
        timed("rollback_untag", ecs.untag(&service.arn, &remove)),
    );
    ep.steps.extend([s1, s2]);
    let mut summary = RollbackSummary {
        reason: "UpdateService failed after the intent was recorded".into(),
        actions: Vec::new(),
        operator_checks: Vec::new(),
    };
    match (r1, r2) {
        (Ok(()), Ok(())) => summary
            .actions
            .push("restored autoscaler:last-scale-out and autoscaler:scale-out-keys".into()),
        (a, b) => {
            summary.operator_checks.push(format!(
            "service tags autoscaler:last-scale-out / autoscaler:scale-out-keys may still record \
             the failed scale-out ({})",
            a.err().or(b.err()).map(|e| e.to_string()).unwrap_or_default()
        ))
        }
    }
    summary
}

pub(crate) fn skip_summary(skip: &policy::Skip) -> DecisionSummary {
    Decision::Skip(skip.clone()).summary()
}

/// One scale-out as it runs, in one invocation: the steps so far and what the report needs.
/// (Scale-in's episode spans invocations and is scale-down's step machine; what the two
/// share, the state in the service's tags and the report, is `scaling`'s.)
pub(crate) struct ScaleOut<'a> {
    pub(crate) deps: &'a Deps,
    pub(crate) clock: Instant,
    pub(crate) started_at: DateTime<Utc>,
    pub(crate) id: String,
    pub(crate) trigger: TriggerSummary,
    pub(crate) account: Option<String>,
    pub(crate) steps: Vec<Step>,
    pub(crate) before: Option<Counts>,
}

impl<'a> ScaleOut<'a> {
    /// A scale-out started at `started_at` by `trigger`, with nothing read yet.
    pub(crate) fn new(
        deps: &'a Deps,
        id: String,
        trigger: TriggerSummary,
        started_at: DateTime<Utc>,
    ) -> Self {
        Self {
            deps,
            clock: Instant::now(),
            started_at,
            id,
            trigger,
            account: None,
            steps: Vec::new(),
            before: None,
        }
    }

    pub(crate) fn report(
        &mut self,
        decision: DecisionSummary,
        after: Option<Counts>,
        outcome: Outcome,
        reason: String,
    ) -> Report {
        let c = &self.deps.config;
        Report {
            episode_id: self.id.clone(),
            region: self.deps.region.clone(),
            account: self.account.clone(),
            decision,
            before: self.before,
            after,
            steps: std::mem::take(&mut self.steps),
            outcome,
            outcome_reason: reason,
            duration_ms: self.clock.elapsed().as_millis() as u64,
            dry_run: c.dry_run,
            bounds: Some(c.windows.bounds_at_utc(self.started_at)),
            ..Report::new(
                FunctionKind::ScaleUp,
                ServiceRef::new(&c.cluster, &c.service),
                self.trigger.clone(),
                self.started_at,
            )
        }
    }

    pub(crate) fn fail(
        &mut self,
        source: AwsError,
        decision: DecisionSummary,
        outcome: Outcome,
        rollback: Option<RollbackSummary>,
    ) -> ScaleUpError {
        let reason = format!("{source}");
        let before = self.before;
        let mut report = self.report(decision, before, outcome, reason);
        report.rollback = rollback;
        ScaleUpError::Aws {
            source,
            report: Box::new(report),
        }
    }
}
