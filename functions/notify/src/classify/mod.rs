//! Deciding, per event, whether operators hear about it and what they read.
//!
//! Pure: no AWS calls, so every rule is tested with plain tests and golden files.
//! The two rules that need history (flapping and replays) are in `noise`.

mod alarm;
mod asg;
mod destination;
pub(crate) mod fmt;
mod review;
mod service;
mod task;

use crate::event::{Envelope, Incoming};
use crate::notice::Notice;
use crate::settings::Settings;

/// What to do with one event.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Send this email (after the noise checks).
    Notify(Box<Notice>),
    /// Ours, understood, and deliberately not emailed (expected, or noise).
    Drop { reason: String },
    /// Not about this service, or a shape notify does not handle.
    Ignore { reason: String },
}

impl Verdict {
    fn drop(reason: impl Into<String>) -> Self {
        Verdict::Drop {
            reason: reason.into(),
        }
    }
    fn ignore(reason: impl Into<String>) -> Self {
        Verdict::Ignore {
            reason: reason.into(),
        }
    }
}

/// Region and account for links and the footer: the event's, else the topic's.
#[derive(Debug, Clone)]
pub(crate) struct Place {
    pub region: String,
    pub account: String,
}

impl Place {
    fn of(envelope: &Envelope, settings: &Settings) -> Self {
        Place {
            region: envelope
                .region
                .clone()
                .unwrap_or_else(|| settings.region.clone()),
            account: envelope
                .account
                .clone()
                .unwrap_or_else(|| settings.account.clone()),
        }
    }

    fn footer(&self) -> String {
        format!("Account {}, region {}.", self.account, self.region)
    }
}

/// Classifies one decoded event.
pub fn classify(incoming: &Incoming, settings: &Settings) -> Verdict {
    match incoming {
        Incoming::Destination(d) => destination::classify(d, settings),
        Incoming::Alarm { envelope, change } => alarm::classify(envelope, change, settings),
        Incoming::Task { envelope, task } => task::classify(envelope, task, settings),
        Incoming::ServiceAction { envelope, action } => {
            service::classify(envelope, action, settings)
        }
        Incoming::Asg {
            envelope,
            action,
            successful,
            activity,
        } => asg::classify(envelope, *action, *successful, activity, settings),
        Incoming::Unknown { what } => Verdict::ignore(format!("not a notify event: {what}")),
    }
}
