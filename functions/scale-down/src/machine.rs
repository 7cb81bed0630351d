//! The scale-in step machine: protect others, deregister, drain, lower desired,
//! wait STOPPED, release, report, with every step written ahead into the
//! service's tags so that any later invocation completes or rolls it back.

use crate::alarms;
use crate::marker::{self, rank, Marker, Phase};
use crate::port::{
    AlarmView, CapacityOutcome, Port, PortError, ServiceView, Target, TargetState, TaskView,
};
use crate::settings::Settings;
use crate::victim::{self, Candidate};
use chrono::Utc;
use scaling::episode::{self as ep_state, EpisodeState};
use scaling::policy::{self, Decision};
use scaling::report::{
    Counts, DecisionSummary, DrainSummary, FunctionKind, Outcome, Report, RollbackSummary,
    ServiceRef, Step,
};
use scaling::trigger::{AlarmState, Trigger, WindowEdge};
use std::time::Duration;
use tokio::time::Instant;

/// Why the invocation could not even start an episode (nothing was changed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("before any change: {0}")]
pub struct NotStarted(pub PortError);

/// How an episode step ended when it did not simply go on.
enum Stop {
    /// Undo what was done, then report with this outcome and reason.
    Rollback(Outcome, String),
    /// Leave the marker for the next invocation: undo or the next step is impossible now.
    Leave(String),
    /// The function deadline came mid-wait: the marker stays and the next invocation
    /// (the schedule, or any alarm) resumes. Not a failure, so not an email.
    Resume(String),
}

impl From<PortError> for Stop {
    fn from(e: PortError) -> Self {
        Stop::Rollback(Outcome::RolledBack, e.to_string())
    }
}

/// What the end of an episode holds back before its marker goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hold {
    Nothing,
    /// Completed: the scale-in cooldown.
    Cooldown,
    /// Rolled back on a fault: the scale-in back-off.
    BackOff,
}

/// One invocation's work on the scale-in episode (which may span invocations: its marker
/// in the service's tags carries it over), collecting the report as it goes.
struct ScaleIn<'a, P: Port> {
    port: &'a P,
    s: &'a Settings,
    /// The Lambda's deadline less the reserve: no wait runs past it.
    deadline: Instant,
    marker: Marker,
    steps: Vec<Step>,
    drain: DrainSummary,
    rollback_actions: Vec<String>,
    operator_checks: Vec<String>,
}

/// Runs one invocation for `trigger` and returns its report.
///
/// `deadline` is when the Lambda will be cut off. `Err` only when nothing was
/// changed and the service could not be read (retryable by Lambda).
pub async fn run<P: Port>(
    port: &P,
    s: &Settings,
    trigger: &Trigger,
    deadline: Instant,
) -> Result<Report, NotStarted> {
    let started = Instant::now();
    // The floor and ceiling in force now (scheduled windows) replace min and max.
    let s = &s.in_force(port.now_unix());
    let mut report = empty_report(s, trigger);
    let svc = port.service().await.map_err(NotStarted)?;
    report.before = Some(counts(&svc));
    let state = EpisodeState::from_tags(&svc.tags);
    if state.paused {
        return Ok(skip(report, started, &policy::Skip::Paused.reason()));
    }
    if let Some(found) = marker::Marker::from_tags(&svc.tags) {
        let deadline = deadline - s.deadline_reserve;
        return Ok(match found {
            Ok(m) => resume(port, s, m, deadline, report, started).await,
            Err(why) => unreadable_marker(port, why, report, started).await,
        });
    }
    let (alarm, key) = match trigger {
        Trigger::Schedule { time, .. }
        | Trigger::Window(WindowEdge {
            scheduled_time: time,
            ..
        }) => {
            match still_in_alarm(port, s).await.map_err(NotStarted)? {
                // Above the ceiling in force (a window with a lower max began, or one with
                // a higher max ended): come down one task per cooldown, alarm or not.
                None if svc.desired > s.max_tasks => {
                    let key = alarms::schedule_key("ceiling", *time);
                    report.decision.reason = format!(
                        "desired {} is above the ceiling in force ({})",
                        svc.desired,
                        s.bounds.as_ref().map(|b| b.describe()).unwrap_or_default()
                    );
                    ("the ceiling in force".to_string(), key)
                }
                None => return Ok(skip(report, started, &idle_reason(s))),
                Some(a) => {
                    report.trigger = alarms::trigger_summary(&a);
                    let key = alarms::schedule_key(&a.name, *time);
                    (a.name, key)
                }
            }
        }
        Trigger::Alarm(a) if a.state != AlarmState::Alarm => {
            let why = format!("alarm state is {}: nothing to scale in", a.state);
            return Ok(skip(report, started, &why));
        }
        Trigger::Alarm(a) => (
            a.alarm_name.clone(),
            ep_state::alarm_key(&a.alarm_name, a.timestamp),
        ),
    };
    if state.scale_in_done(&key).is_some() {
        let why = format!("duplicate delivery of {alarm}: already acted on");
        return Ok(skip(report, started, &why));
    }
    if let Some(why) = skip_reason(&svc, &state, s, port.now_unix()) {
        return Ok(skip(report, started, &why));
    }
    let tasks = port.tasks().await.map_err(NotStarted)?;
    let running: Vec<&TaskView> = tasks.iter().filter(|t| t.is_running()).collect();
    if running.len() < 2 || (running.len() as i32) <= s.min_tasks {
        let why = format!("only {} running task(s): nothing to remove", running.len());
        return Ok(skip(report, started, &why));
    }
    if let Some(why) = scale_out_pressure(port, s, running.len())
        .await
        .map_err(NotStarted)?
    {
        return Ok(skip(report, started, &why));
    }
    let mut candidates = Vec::with_capacity(running.len());
    for t in &running {
        let in_flight = if s.strategy == victim::Strategy::FewestInFlight {
            port.drain_status(t).await.ok().map(|d| d.in_flight)
        } else {
            None
        };
        candidates.push(Candidate {
            id: t.id.clone(),
            started_at: t.started_at,
            az: t.availability_zone.clone(),
            in_flight,
        });
    }
    let choice = victim::choose(&candidates, s.strategy).expect("two or more candidates");
    let now = port.now_unix();
    let marker = Marker {
        episode_id: format!("sd-{now}-{}", &choice.id[..choice.id.len().min(8)]),
        phase: Phase::Protecting,
        victim: choice.id.clone(),
        from: svc.desired,
        started: now,
        drain_started: 0,
        lowered_at: 0,
    };
    report.episode_id = marker.episode_id.clone();
    report.decision = DecisionSummary {
        action: "scale_to".into(),
        target: Some(svc.desired - 1),
        reason: format!("{alarm} in ALARM: remove task {}", choice.id),
    };
    let drain = DrainSummary {
        victim_task: running
            .iter()
            .find(|t| t.id == choice.id)
            .map(|t| t.arn.clone())
            .unwrap_or_default(),
        strategy: choice.strategy.as_str().to_string(),
        fallback: choice.fallback.clone(),
        ..DrainSummary::default()
    };
    if s.dry_run {
        report.dry_run = true;
        report.drain = Some(drain);
        let why = format!("dry run: would remove task {}", choice.id);
        return Ok(skip(report, started, &why));
    }
    // Write-ahead: the marker (and the idempotency key) before the first change.
    let t0 = Instant::now();
    let mut tags = marker.to_tags();
    tags.extend(state.record_scale_in(&key, svc.desired - 1));
    let write = port.put_tags(&tags).await;
    report.steps.push(step("write_marker", t0, &write));
    write.map_err(NotStarted)?;
    let mut ep = ScaleIn::new(port, s, marker, deadline - s.deadline_reserve);
    ep.drain = drain;
    ep.steps = std::mem::take(&mut report.steps);
    let end = ep.forward().await;
    Ok(ep.finish(end, report, started).await)
}

/// The schedule with no episode to finish: the first `SCALE_IN_ALARMS` alarm that
/// is in ALARM now, if any (see `alarms`: CloudWatch acts only on state changes).
async fn still_in_alarm<P: Port>(port: &P, s: &Settings) -> Result<Option<AlarmView>, PortError> {
    if s.scale_in_alarms.is_empty() {
        return Ok(None);
    }
    let found = port.alarms(&s.scale_in_alarms).await?;
    alarms::first_in_alarm(&s.scale_in_alarms, &found)
}

/// Why the scale-out alarms forbid removing one of `running` tasks now, or None
/// (`scaling::headroom`: a scale-in that trips another metric's scale-out is flapping).
async fn scale_out_pressure<P: Port>(
    port: &P,
    s: &Settings,
    running: usize,
) -> Result<Option<String>, PortError> {
    if s.scale_out_alarms.is_empty() {
        return Ok(None);
    }
    let found = port.scale_out_alarms(&s.scale_out_alarms).await?;
    alarms::scale_out_pressure(&s.scale_out_alarms, &s.per_task_alarms, &found, running)
}

fn idle_reason(s: &Settings) -> String {
    if s.scale_in_alarms.is_empty() {
        "reconcile: no interrupted episode".into()
    } else {
        format!(
            "reconcile: no interrupted episode, and no scale-in alarm in ALARM ({})",
            s.scale_in_alarms.join(", ")
        )
    }
}

/// Scale-in's skip rules (desired at min, cooldown, deployment in progress),
/// decided by the shared policy; "paused" and "another episode" are handled
/// before this (a marker means resume, not skip).
pub fn skip_reason(
    svc: &ServiceView,
    state: &EpisodeState,
    s: &Settings,
    now: i64,
) -> Option<String> {
    let rolling = svc.deployments.len() > 1
        || svc
            .deployments
            .iter()
            .any(|d| d.rollout_state.as_deref().is_some_and(|r| r != "COMPLETED"));
    let service = policy::ServiceState {
        desired: svc.desired,
        running: svc.running,
        pending: svc.pending,
        deployment_in_progress: rolling,
    };
    let limits = policy::Limits {
        min: s.min_tasks,
        max: s.max_tasks,
        step: 1,
        mode: scaling::config::ScaleOutMode::Fixed,
        max_step: 1,
        out_cooldown: s.scale_in_cooldown,
        in_cooldown: s.scale_in_cooldown,
        in_window: s.scale_in_window,
    };
    let history = policy::History::from_state(state);
    let alarm = policy::AlarmInput::default();
    let now = chrono::DateTime::from_timestamp(now, 0).unwrap_or_default();
    match policy::decide_scale_in(&service, &limits, &history, &alarm, now) {
        Decision::Skip(skip) => Some(skip.reason()),
        Decision::ScaleTo { .. } => None,
    }
}

/// The service's tags, best effort (an unreadable marker's cleanup).
async fn port_tags<P: Port>(port: &P) -> std::collections::BTreeMap<String, String> {
    port.service().await.map(|s| s.tags).unwrap_or_default()
}

async fn resume<P: Port>(
    port: &P,
    s: &Settings,
    m: Marker,
    deadline: Instant,
    mut report: Report,
    started: Instant,
) -> Report {
    report.episode_id = m.episode_id.clone();
    report.decision = DecisionSummary {
        action: if m.phase == Phase::RollingBack {
            "rollback".into()
        } else {
            "resume".into()
        },
        target: Some(m.from - 1),
        reason: format!("episode {} was interrupted at {}", m.episode_id, m.phase),
    };
    let mut ep = ScaleIn::new(port, s, m, deadline);
    ep.drain.victim_task = ep.marker.victim.clone();
    let end = match ep.marker.phase {
        Phase::RollingBack => Err(Stop::Rollback(
            Outcome::RolledBack,
            "resumed an interrupted rollback".into(),
        )),
        _ => ep.forward().await,
    };
    ep.finish(end, report, started).await
}

/// A marker nobody can parse: the victim is unknown, so undo what can be undone
/// without it (protections, the marker) and ask a person to check the targets.
async fn unreadable_marker<P: Port>(
    port: &P,
    why: String,
    mut report: Report,
    started: Instant,
) -> Report {
    let mut rb = RollbackSummary {
        reason: why,
        ..RollbackSummary::default()
    };
    let released = release_all(port).await;
    let removed = port
        .remove_tags(&ep_state::episode_end_keys(&port_tags(port).await))
        .await;
    report.decision.action = "rollback".into();
    report.outcome = match (&released, &removed) {
        (Ok(n), Ok(())) => {
            rb.actions
                .push(format!("released protection on {n} task(s)"));
            rb.actions.push("removed the unreadable marker".into());
            rb.operator_checks
                .push("check that every running task is registered in its target groups".into());
            Outcome::RolledBack
        }
        _ => Outcome::Failed,
    };
    report.outcome_reason = rb.reason.clone();
    report.rollback = Some(rb);
    report.duration_ms = started.elapsed().as_millis() as u64;
    report
}

impl<'a, P: Port> ScaleIn<'a, P> {
    fn new(port: &'a P, s: &'a Settings, marker: Marker, deadline: Instant) -> Self {
        Self {
            port,
            s,
            deadline,
            marker,
            steps: Vec::new(),
            drain: DrainSummary::default(),
            rollback_actions: Vec::new(),
            operator_checks: Vec::new(),
        }
    }

    /// Runs `fut`, timing it as step `name`.
    async fn timed<T>(
        &mut self,
        name: &str,
        fut: impl std::future::Future<Output = Result<T, PortError>>,
    ) -> Result<T, PortError> {
        let t0 = Instant::now();
        let r = fut.await;
        self.steps.push(step(name, t0, &r));
        r
    }

    /// Writes the marker at `phase` (write-ahead of that phase's side effects).
    async fn enter(&mut self, phase: Phase) -> Result<(), PortError> {
        self.marker.phase = phase;
        let tags = self.marker.to_tags();
        let port = self.port;
        self.timed(&format!("enter_{phase}"), port.put_tags(&tags))
            .await
    }

    /// A cancel request from scale-up, checked between steps.
    async fn check_cancel(&mut self) -> Result<(), Stop> {
        let port = self.port;
        let svc = self.timed("check_cancel", port.service()).await?;
        if marker::cancel_requested(&svc.tags, &self.marker.episode_id) {
            return Err(Stop::Rollback(
                Outcome::Cancelled,
                "a scale-out arrived during the drain: the task is kept".into(),
            ));
        }
        Ok(())
    }

    /// The victim as ECS sees it now; a rollback if it is gone before desired was lowered.
    async fn victim(&mut self) -> Result<TaskView, Stop> {
        let port = self.port;
        let id = self.marker.victim.clone();
        match self.timed("describe_victim", port.task(&id)).await? {
            Some(t) if t.is_running() => {
                self.drain.victim_task = t.arn.clone();
                Ok(t)
            }
            Some(t) => Err(Stop::Rollback(
                Outcome::RolledBack,
                format!("victim {id} left RUNNING on its own ({})", t.last_status),
            )),
            None => Err(Stop::Rollback(
                Outcome::RolledBack,
                format!("victim {id} is gone"),
            )),
        }
    }

    /// From the marker's phase to the end (each phase is idempotent, so a replay
    /// repeats at most the one step that may have half-happened).
    ///
    /// ECS, not this function, takes the victim out of the load balancer: with
    /// every other task protected, lowering desired by one makes ECS stop the
    /// victim, and ECS deregisters a task it stops, waits for the target group's
    /// deregistration delay (which the ALB ends as soon as the target has no
    /// in-flight request and no connection) and only then sends SIGTERM. The
    /// victim's drain mode closes its connections so that the ALB's drain ends
    /// with its last request. See docs/scale-down.md for the sources.
    async fn forward(&mut self) -> Result<(), Stop> {
        if self.marker.phase.is_cancellable() {
            self.check_cancel().await?;
        }
        if rank(self.marker.phase) < rank(Phase::Lowering) {
            let victim = self.victim().await?;
            // Also refreshes the bounded expiry of an interrupted episode's protections.
            self.protect_others(&victim).await?;
            if self.marker.phase == Phase::Protecting {
                self.check_cancel().await?;
                self.marker.drain_started = self.port.now_unix();
                self.enter(Phase::Draining).await?;
            }
            // Deregistering is only found in markers written by the earlier design,
            // which deregistered first: resumed as Draining.
            self.start_drain(&victim).await;
            if self.s.early_deregister {
                self.deregister_early(&victim).await?;
            }
            self.check_cancel().await?;
            self.enter(Phase::Lowering).await?;
            // A cancel written just before our Lowering marker still wins.
            self.check_cancel().await?;
        }
        if self.marker.phase == Phase::Lowering {
            self.lower().await?;
        }
        if self.marker.phase == Phase::Verifying {
            self.wait_stopped().await?;
            self.enter(Phase::Releasing)
                .await
                .map_err(|e| Stop::Leave(e.to_string()))?;
        }
        let port = self.port;
        let n = self
            .timed("release_protection", release_all(port))
            .await
            .map_err(|e| Stop::Leave(e.to_string()))?;
        if let Some(last) = self.steps.last_mut() {
            last.detail = format!("{n} task(s)");
        }
        Ok(())
    }

    async fn protect_others(&mut self, victim: &TaskView) -> Result<(), Stop> {
        let port = self.port;
        let tasks = self.timed("list_tasks", port.tasks()).await?;
        let others: Vec<String> = tasks
            .iter()
            .filter(|t| t.id != victim.id && !t.is_stopped())
            .map(|t| t.arn.clone())
            .collect();
        let out = self
            .timed("protect_tasks", port.set_protection(&others, true))
            .await?;
        if !out.deployment_blocked.is_empty() {
            return Err(Stop::Rollback(
                Outcome::RolledBack,
                format!(
                    "DEPLOYMENT_BLOCKED: a deployment is replacing {} task(s)",
                    out.deployment_blocked.len()
                ),
            ));
        }
        Ok(())
    }

    /// `POST /admin/drain` (with the expiry) on the victim. A victim that does not take it
    /// is still removed safely, only slower: the ALB then waits for its idle connections
    /// until the deregistration delay. So it is an operator check, not a rollback.
    async fn start_drain(&mut self, victim: &TaskView) {
        let port = self.port;
        let sent = self
            .timed("post_admin_drain", port.drain(victim, self.s.drain_ttl))
            .await;
        match sent {
            Ok(d) => self.drain.in_flight_at_stop = Some(d.in_flight),
            Err(e) => self
                .operator_checks
                .push(format!("the victim did not take POST /admin/drain: {e}")),
        }
    }

    /// EARLY_DEREGISTER: DeregisterTargets now, so that the ALB starts draining before ECS
    /// gets to it. Only a head start: ECS owns a service's registrations and may register the
    /// target again (aws/containers-roadmap#251), and nothing here waits for it to stay out.
    async fn deregister_early(&mut self, victim: &TaskView) -> Result<(), Stop> {
        let port = self.port;
        let svc = self.timed("describe_service", port.service()).await?;
        for t in targets_of(victim, &svc) {
            self.timed("deregister_target", port.deregister(&t)).await?;
        }
        Ok(())
    }

    /// desired - 1, only from the desired the episode started at.
    async fn lower(&mut self) -> Result<(), Stop> {
        let port = self.port;
        let svc = self.timed("describe_service", port.service()).await?;
        let from = self.marker.from;
        if svc.desired == from {
            // Below the floor in force is refused (a window may have started since the
            // episode began). Above the ceiling is not: lowering from above it (a window's
            // ceiling took effect) only brings desired closer to the range.
            if from - 1 < self.s.min_tasks {
                return Err(Stop::Rollback(
                    Outcome::RolledBack,
                    format!(
                        "desired {} would leave [{}, {}]",
                        from - 1,
                        self.s.min_tasks,
                        self.s.max_tasks
                    ),
                ));
            }
            // Never lower while the victim is not the one task ECS may stop.
            let victim = self.victim().await?;
            self.protect_others(&victim).await?;
            if let Err(e) = self
                .timed("update_service", port.set_desired(from - 1))
                .await
            {
                // A timeout can hide an UpdateService that took effect, and ECS is
                // then already stopping the victim: read it back before undoing.
                match port.service().await {
                    Ok(now) if now.desired == from - 1 => {}
                    _ => return Err(e.into()),
                }
            }
        } else if svc.desired != from - 1 {
            return Err(Stop::Rollback(
                Outcome::Cancelled,
                format!(
                    "desired moved from {from} to {} during the episode: the task is kept",
                    svc.desired
                ),
            ));
        }
        self.marker.lowered_at = port.now_unix();
        // Desired is lowered: from here the episode can only go forward.
        self.enter(Phase::Verifying)
            .await
            .map_err(|e| Stop::Leave(e.to_string()))
    }

    /// Waits for ECS to stop the victim: it deregisters the target, the ALB drains it
    /// (ending early once the victim has no request in flight and no connection), ECS sends
    /// SIGTERM and the task exits. Polls DescribeTasks once per `poll_interval` (1 s on AWS),
    /// renews the victim's drain mode while it still runs, and reads its in-flight count
    /// (the task's own endpoint, not an AWS API) for the report's drain figures.
    async fn wait_stopped(&mut self) -> Result<(), Stop> {
        let port = self.port;
        let id = self.marker.victim.clone();
        // ECS waits up to the deregistration delay, then up to stopTimeout after SIGTERM.
        let delay = self.deregistration_delay().await;
        let give_up = self.marker.lowered_at
            + (delay + self.s.drain_margin + self.s.stop_timeout).as_secs() as i64;
        let t0 = Instant::now();
        let renew_every = (self.s.drain_ttl / 3).max(self.s.poll_interval);
        let mut renewed = Instant::now();
        let mut drained_at: Option<Duration> = None;
        let mut in_flight_seen = 0u64;
        loop {
            match port.task(&id).await {
                Ok(None) => break,
                Ok(Some(t)) if t.is_stopped() => break,
                Ok(Some(t)) => {
                    // Still serving: a scale-out that raised desired after we
                    // lowered it (it read the marker before Lowering) means ECS
                    // will never stop the victim. Keep it instead of timing out.
                    if t.is_running() {
                        self.check_raised().await?;
                    }
                    if renewed.elapsed() >= renew_every {
                        renewed = Instant::now();
                        // Best effort: a task that has begun to exit no longer answers.
                        let _ = port.drain(&t, self.s.drain_ttl).await;
                    }
                    if let Ok(d) = port.drain_status(&t).await {
                        self.drain.in_flight_at_stop = Some(d.in_flight);
                        in_flight_seen = in_flight_seen.max(d.in_flight);
                        match (d.in_flight, drained_at) {
                            (0, None) => drained_at = Some(t0.elapsed()),
                            (n, Some(_)) if n > 0 => drained_at = None,
                            _ => {}
                        }
                    }
                }
                Err(_) => {}
            }
            if port.now_unix() >= give_up {
                return Err(Stop::Rollback(
                    Outcome::RolledBack,
                    format!(
                        "victim {id} did not stop within {:?} of desired - 1",
                        delay + self.s.drain_margin + self.s.stop_timeout
                    ),
                ));
            }
            if Instant::now() + self.s.poll_interval >= self.deadline {
                return Err(Stop::Resume(
                    "the victim was still stopping at the function deadline; the next invocation resumes the wait".into(),
                ));
            }
            tokio::time::sleep(self.s.poll_interval).await;
        }
        let stopped = t0.elapsed();
        let drained = drained_at.unwrap_or(stopped);
        self.drain.drain_ms = drained.as_millis() as u64;
        self.drain.deadline_hit = stopped.as_secs() >= delay.as_secs() && delay > Duration::ZERO;
        self.steps.push(Step {
            name: "wait_stopped".into(),
            ok: true,
            duration_ms: stopped.as_millis() as u64,
            detail: format!(
                "in flight 0 after {} ms (at most {in_flight_seen} seen), STOPPED after {} ms",
                drained.as_millis(),
                stopped.as_millis()
            ),
        });
        Ok(())
    }

    /// The longest deregistration delay of the service's target groups (300 s, the ALB's
    /// default, when it cannot be read).
    async fn deregistration_delay(&mut self) -> Duration {
        let port = self.port;
        let Ok(svc) = port.service().await else {
            return Duration::from_secs(300);
        };
        let mut delay = Duration::ZERO;
        for lb in &svc.load_balancers {
            let d = port
                .deregistration_delay(&lb.target_group_arn)
                .await
                .unwrap_or(Duration::from_secs(300));
            delay = delay.max(d);
        }
        delay
    }

    /// During the wait for STOPPED, with the victim still RUNNING: desired
    /// above `from - 1` or a cancel request means a scale-out overtook the
    /// lowering, so roll back (the task is kept). Read errors just wait on.
    async fn check_raised(&mut self) -> Result<(), Stop> {
        let Ok(svc) = self.port.service().await else {
            return Ok(());
        };
        let lowered = self.marker.from - 1;
        if svc.desired > lowered || marker::cancel_requested(&svc.tags, &self.marker.episode_id) {
            return Err(Stop::Rollback(
                Outcome::Cancelled,
                format!(
                    "a scale-out raised desired to {} after it was lowered to {lowered}: the task is kept",
                    svc.desired
                ),
            ));
        }
        Ok(())
    }

    /// Undo: re-register the victim's targets (while it still runs), leave drain
    /// mode, release every protection, drop the marker. Any failure leaves the
    /// marker at RollingBack for the next invocation. `back_off` (a fault, not
    /// a cancel) starts the scale-in back-off before the marker goes.
    async fn roll_back(&mut self, back_off: bool) -> Result<(), String> {
        // Write-ahead here too: undoing anything before RollingBack is recorded
        // would let a crash leave a re-registered victim behind a marker that
        // still says Draining, and the next invocation would lower desired
        // with the victim back in service. Nothing undone yet: retry next time.
        self.enter(Phase::RollingBack)
            .await
            .map_err(|e| format!("could not record the rollback: {e}"))?;
        let port = self.port;
        let id = self.marker.victim.clone();
        let victim = self
            .timed("describe_victim", port.task(&id))
            .await
            .map_err(|e| e.to_string())?;
        if let Some(v) = victim.clone().filter(|t| t.is_running()) {
            let svc = self
                .timed("describe_service", port.service())
                .await
                .map_err(|e| e.to_string())?;
            // Only an early deregistration (EARLY_DEREGISTER) takes a target out before
            // desired is lowered; ECS registers its tasks itself otherwise.
            for t in targets_of(&v, &svc) {
                let state = self
                    .timed("describe_target_health", port.target_state(&t))
                    .await
                    .map_err(|e| e.to_string())?;
                if state == TargetState::Registered {
                    continue;
                }
                self.timed("register_target", port.register(&t))
                    .await
                    .map_err(|e| e.to_string())?;
                self.rollback_actions
                    .push(format!("re-registered target {}:{}", t.id, t.port));
            }
            // Drain mode would close the task's connections until it expires: retry next time.
            self.timed("post_admin_undrain", port.undrain(&v))
                .await
                .map_err(|e| format!("task {id} is still in drain mode: {e}"))?;
            self.rollback_actions.push("left drain mode".into());
        } else if let Some(v) = victim {
            // ECS is stopping it after all (e.g. it raced an earlier attempt of
            // this rollback): a target re-registered then must not outlive it.
            let svc = self
                .timed("describe_service", port.service())
                .await
                .map_err(|e| e.to_string())?;
            for t in targets_of(&v, &svc) {
                let state = port.target_state(&t).await.map_err(|e| e.to_string())?;
                if state != TargetState::Absent {
                    self.timed("deregister_target", port.deregister(&t))
                        .await
                        .map_err(|e| e.to_string())?;
                    self.rollback_actions.push(format!(
                        "deregistered stopping task's target {}:{}",
                        t.id, t.port
                    ));
                }
            }
        }
        let n = self
            .timed("release_protection", release_all(port))
            .await
            .map_err(|e| e.to_string())?;
        self.rollback_actions
            .push(format!("released protection on {n} task(s)"));
        self.clear_marker(if back_off {
            Hold::BackOff
        } else {
            Hold::Nothing
        })
        .await
    }

    /// Starts what `hold` says (the cooldown after a completed episode, the
    /// back-off after a fault's rollback), then removes the marker (and our
    /// cancel request).
    async fn clear_marker(&mut self, hold: Hold) -> Result<(), String> {
        let port = self.port;
        let now = chrono::DateTime::from_timestamp(port.now_unix(), 0).unwrap_or_default();
        let stamp = match hold {
            Hold::Nothing => None,
            Hold::Cooldown => Some(("start_cooldown", EpisodeState::record_scale_in_done(now))),
            Hold::BackOff => Some((
                "start_backoff",
                EpisodeState::record_scale_in_rolled_back(now),
            )),
        };
        if let Some((step, tags)) = stamp {
            self.timed(step, port.put_tags(&tags))
                .await
                .map_err(|e| e.to_string())?;
        }
        if hold == Hold::BackOff {
            self.rollback_actions.push(format!(
                "held further scale-ins for the {}s scale-in cooldown (back-off)",
                self.s.scale_in_cooldown.as_secs()
            ));
        }
        self.timed("clear_marker", port.remove_tags(&Marker::end_keys()))
            .await
            .map_err(|e| e.to_string())
    }

    /// EC2 mode, after a completed scale-in: give back an instance left empty.
    /// Its failure does not undo the task scale-in; it is a failed step and a
    /// note in the outcome reason. Returns that note.
    async fn capacity_scale_in(&mut self) -> String {
        let port = self.port;
        let out = self
            .timed("capacity_scale_in", port.terminate_empty_instance())
            .await;
        let note = match &out {
            Ok(CapacityOutcome::NotEc2) => {
                self.steps.pop();
                return String::new();
            }
            Ok(CapacityOutcome::Terminated(id)) => {
                format!("terminated empty instance {id} (capacity - 1)")
            }
            Ok(CapacityOutcome::Kept(why)) => format!("no instance given back: {why}"),
            Err(e) => format!("capacity scale-in failed: {e}"),
        };
        if let Some(last) = self.steps.last_mut() {
            last.detail = note.clone();
        }
        format!("; {note}")
    }

    /// Turns how `forward` ended into the report.
    async fn finish(
        mut self,
        end: Result<(), Stop>,
        mut report: Report,
        started: Instant,
    ) -> Report {
        let (outcome, reason) = match end {
            Ok(()) => match self.clear_marker(Hold::Cooldown).await {
                Ok(()) => (
                    Outcome::Completed,
                    format!(
                        "one task removed after draining{}",
                        self.capacity_scale_in().await
                    ),
                ),
                Err(e) => (Outcome::Failed, format!("could not clear the marker: {e}")),
            },
            Err(Stop::Leave(why)) => (Outcome::Failed, why),
            Err(Stop::Resume(why)) => (Outcome::InProgress, why),
            Err(Stop::Rollback(outcome, why)) => {
                match self.roll_back(outcome == Outcome::RolledBack).await {
                    Ok(()) => (outcome, why),
                    Err(e) => (
                        Outcome::Failed,
                        format!("{why}; rollback incomplete ({e}): the next invocation retries it"),
                    ),
                }
            }
        };
        if outcome != Outcome::Completed && outcome != Outcome::Failed
            || !self.rollback_actions.is_empty()
        {
            report.rollback = Some(RollbackSummary {
                reason: reason.clone(),
                actions: std::mem::take(&mut self.rollback_actions),
                operator_checks: std::mem::take(&mut self.operator_checks),
            });
        }
        report.outcome = outcome;
        report.outcome_reason = reason;
        report.steps = self.steps;
        report.drain = Some(self.drain);
        report.after = self.port.service().await.ok().map(|s| counts(&s));
        report.duration_ms = started.elapsed().as_millis() as u64;
        report
    }
}

/// Releases protection on every task of the service; returns how many.
async fn release_all<P: Port>(port: &P) -> Result<usize, PortError> {
    let arns: Vec<String> = port.tasks().await?.into_iter().map(|t| t.arn).collect();
    port.set_protection(&arns, false).await?;
    Ok(arns.len())
}

/// The victim's registrations: task IP + container port (awsvpc) or instance +
/// host port (bridge), in every target group of the service.
pub fn targets_of(task: &TaskView, svc: &ServiceView) -> Vec<Target> {
    svc.load_balancers
        .iter()
        .filter_map(|lb| {
            let (id, port) = match &task.private_ip {
                Some(ip) => (ip.clone(), lb.container_port),
                None => {
                    let host_port = task
                        .host_ports
                        .iter()
                        .find(|(c, p, _)| *c == lb.container_name && *p == lb.container_port)?
                        .2;
                    (task.ec2_instance_id.clone()?, host_port)
                }
            };
            Some(Target {
                target_group_arn: lb.target_group_arn.clone(),
                id,
                port,
            })
        })
        .collect()
}

fn counts(svc: &ServiceView) -> Counts {
    Counts {
        desired: svc.desired,
        running: svc.running,
        pending: svc.pending,
        asg_desired: None,
    }
}

fn step<T>(name: &str, t0: Instant, r: &Result<T, PortError>) -> Step {
    Step {
        name: name.to_string(),
        ok: r.is_ok(),
        duration_ms: t0.elapsed().as_millis() as u64,
        detail: r.as_ref().err().map(|e| e.to_string()).unwrap_or_default(),
    }
}

fn empty_report(s: &Settings, trigger: &Trigger) -> Report {
    Report {
        region: s.region.clone(),
        dry_run: s.dry_run,
        bounds: s.bounds.clone(),
        ..Report::new(
            FunctionKind::ScaleDown,
            ServiceRef::new(&s.cluster, &s.service),
            trigger.summary(),
            Utc::now(),
        )
    }
}

fn skip(report: Report, started: Instant, why: &str) -> Report {
    report.skipped(why, started.elapsed().as_millis() as u64)
}
