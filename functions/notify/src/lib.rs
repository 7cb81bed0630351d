//! The notify function: turns scaling reports, function failures, alarm changes,
//! ECS and Auto Scaling events into operator emails through SNS, without noise.
//!
//! Pipeline: [`event::parse`] -> [`classify::classify`] (pure rules) -> noise
//! control ([`noise`]: replays, flapping) -> [`render::render`] -> [`sns::publish`].

pub mod classify;
pub mod event;
pub mod links;
pub mod noise;
pub mod notice;
pub mod render;
pub mod settings;
pub mod sns;
pub mod spot;
pub mod subject;

use classify::Verdict;
use lambda_runtime::Diagnostic;
use noise::flap::{self, FlapVerdict};
use noise::replay::{fingerprint, ReplayRing};
use notice::Severity;
use scaling::error::Classify;
use serde::Serialize;
use serde_json::Value;
use settings::Settings;
use tracing::{info, warn};

/// Clients and settings, built once per cold start.
#[derive(Debug, Clone)]
pub struct Deps {
    pub sns: aws_sdk_sns::Client,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    /// Reads the service's stopped tasks to count a Spot interruption wave.
    pub ecs: aws_sdk_ecs::Client,
    pub settings: Settings,
}

impl Deps {
    /// Clients from one shared SDK config.
    pub fn new(config: &aws_config::SdkConfig, settings: Settings) -> Self {
        Deps {
            sns: aws_sdk_sns::Client::new(config),
            cloudwatch: aws_sdk_cloudwatch::Client::new(config),
            ecs: aws_sdk_ecs::Client::new(config),
            settings,
        }
    }
}

/// What notify did with one event (the function's result, visible in its logs
/// and to `cargo lambda invoke`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "action")]
pub enum Handled {
    /// An email went out.
    Published {
        message_id: String,
        subject: String,
        severity: Severity,
        /// False when the replay ring could not be updated after the publish
        /// (a redelivery of this event would email again).
        dedup_recorded: bool,
    },
    /// Ours, understood, and deliberately not emailed.
    Dropped { reason: String },
    /// Not about this service, or not a shape notify handles.
    Ignored { reason: String },
}

/// Why an invocation failed. `BadEvent` is final (the same bytes fail the same
/// way); the AWS ones are worth Lambda's retry.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error(transparent)]
    BadEvent(#[from] event::ParseError),
    #[error("publishing to SNS: {0}")]
    Publish(Box<sns::SnsError>),
    #[error("reading the replay ring from the topic's tags: {0}")]
    ReplayState(Box<sns::SnsError>),
    #[error("reading the alarm history of {alarm}: {source}")]
    AlarmHistory {
        alarm: String,
        source: Box<aws_sdk_cloudwatch::Error>,
    },
}

impl Classify for NotifyError {
    /// `BadEvent` (the same bytes fail the same way) or `Aws.<what>` (worth a retry).
    fn kind(&self) -> String {
        match self {
            NotifyError::BadEvent(_) => "BadEvent",
            NotifyError::Publish(_) => "Aws.SnsPublish",
            NotifyError::ReplayState(_) => "Aws.SnsTags",
            NotifyError::AlarmHistory { .. } => "Aws.AlarmHistory",
        }
        .into()
    }

    fn retryable(&self) -> bool {
        !matches!(self, NotifyError::BadEvent(_))
    }
}

impl From<NotifyError> for Diagnostic {
    fn from(e: NotifyError) -> Self {
        scaling::error::diagnostic(&e)
    }
}

/// Parses and classifies an event without any AWS call (golden tests use this).
pub fn prepare(event: Value, settings: &Settings) -> Result<Verdict, NotifyError> {
    let incoming = event::parse(event)?;
    Ok(classify::classify(&incoming, settings))
}

/// Handles one invocation.
pub async fn handle(event: Value, deps: &Deps) -> Result<Handled, NotifyError> {
    let s = &deps.settings;
    let mut notice = match prepare(event, s)? {
        Verdict::Ignore { reason } => {
            warn!(%reason, "ignored event");
            return Ok(Handled::Ignored { reason });
        }
        Verdict::Drop { reason } => {
            info!(%reason, "dropped event");
            return Ok(Handled::Dropped { reason });
        }
        Verdict::Notify(n) => *n,
    };
    if notice.severity < s.min_severity {
        let reason = format!(
            "severity {} is below NOTIFY_MIN_SEVERITY {}",
            notice.severity, s.min_severity
        );
        info!(%reason, "dropped event");
        return Ok(Handled::Dropped { reason });
    }
    let replay = match &notice.dedup_key {
        None => None,
        Some(key) => {
            let tags = sns::topic_tags(&deps.sns, &s.topic_arn)
                .await
                .map_err(|e| NotifyError::ReplayState(Box::new(e)))?;
            let ring = ReplayRing::from_tags(&tags);
            let fp = fingerprint(key);
            if ring.contains(&fp) {
                let reason = format!("replay of event {key}: already emailed");
                info!(%reason, "dropped event");
                return Ok(Handled::Dropped { reason });
            }
            Some((ring, fp))
        }
    };
    if notice.kind == "task" && spot::is_spot_stop(notice.detail.as_deref()) {
        count_spot_wave(&mut notice, deps).await;
    }
    if let Some(alarm) = notice.alarm.clone() {
        let history = flap::history(
            &deps.cloudwatch,
            &alarm.name,
            alarm.state_time,
            s.flap.window,
        )
        .await
        .map_err(|source| NotifyError::AlarmHistory {
            alarm: alarm.name.clone(),
            source: Box::new(source),
        })?;
        match flap::judge(&history, alarm.state_time, s.flap) {
            FlapVerdict::Normal => {}
            FlapVerdict::Digest { earlier } => {
                notice = flap::digest(notice, &earlier, s.flap, alarm.state_time);
            }
            FlapVerdict::Muted { count } => {
                let reason = format!(
                    "alarm {} is flapping ({count} changes in the window): the digest went out already",
                    alarm.name
                );
                info!(%reason, "dropped event");
                return Ok(Handled::Dropped { reason });
            }
        }
    }
    let msg = render::render(&notice);
    let message_id = sns::publish(&deps.sns, &s.topic_arn, &msg)
        .await
        .map_err(|e| NotifyError::Publish(Box::new(e)))?;
    info!(%message_id, subject = %msg.subject, severity = %notice.severity, "published");
    let dedup_recorded = match replay {
        None => true,
        Some((mut ring, fp)) => {
            let writes = ring.insert(&fp);
            match sns::set_topic_tags(&deps.sns, &s.topic_arn, &writes).await {
                Ok(()) => true,
                Err(e) => {
                    // The email is out; failing now would make Lambda retry and send it
                    // again. The result says the fingerprint is missing.
                    warn!(error = %e, "could not record the event in the replay ring");
                    false
                }
            }
        }
    };
    Ok(Handled::Published {
        message_id,
        subject: msg.subject,
        severity: notice.severity,
        dedup_recorded,
    })
}

/// A Spot interruption's email says how many of the service's tasks the wave hit (subject
/// and "Why"). A failed count is said in the email, never a reason not to send it.
async fn count_spot_wave(notice: &mut notice::Notice, deps: &Deps) {
    let s = &deps.settings;
    let wave = spot::wave(&deps.ecs, &s.cluster, &s.service, chrono::Utc::now())
        .await
        .map_err(|e| e.to_string());
    if let Ok(w) = &wave {
        let code = notice.detail.clone().unwrap_or_default();
        notice.detail = Some(format!(
            "{code}, {} task{} hit",
            w.tasks,
            if w.tasks == 1 { "" } else { "s" }
        ));
    }
    let line = spot::line(&wave, &s.service);
    match notice.sections.first_mut() {
        Some(why) => why.lines.push(line),
        None => notice
            .sections
            .push(notice::Section::new("Why", vec![line])),
    }
}
