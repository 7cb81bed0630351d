//! The scale-in episode as scale-down writes it ahead of each step, on top of
//! the shared episode state (`scaling::episode`): the marker
//! `autoscaler:episode=<id>/<phase>/<started>` that scale-up reads to decide on a
//! cancel, plus scale-down's details in `autoscaler:episode-<name>` tags.

use chrono::DateTime;
use scaling::episode::{self, ScaleInEpisode};
use std::collections::BTreeMap;

pub use scaling::episode::Phase;

/// Detail tags this module writes (removed with the marker at the end).
const VICTIM: &str = "victim";
const FROM: &str = "from";
const DRAIN_STARTED: &str = "d0";
const LOWERED_AT: &str = "l0";

/// The position of a phase in the episode (phases only move forward, except
/// to RollingBack).
pub fn rank(p: Phase) -> usize {
    Phase::ALL
        .iter()
        .position(|q| *q == p)
        .unwrap_or(usize::MAX)
}

/// What an interrupted invocation left for the next one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    pub episode_id: String,
    pub phase: Phase,
    /// The victim's task id (last ARN segment).
    pub victim: String,
    /// Desired count when the episode started; the lowering sets `from - 1` only
    /// while desired still equals `from` (so a replay never lowers twice).
    pub from: i32,
    /// Unix seconds the episode started.
    pub started: i64,
    /// Unix seconds the victim was deregistered (0 before): bounds the drain across invocations.
    pub drain_started: i64,
    /// Unix seconds desired was lowered (0 before): bounds the wait for STOPPED.
    pub lowered_at: i64,
}

impl Marker {
    /// The tags that record this marker, in one TagResource (tag-safe values only).
    pub fn to_tags(&self) -> Vec<(String, String)> {
        let mut ep = ScaleInEpisode::start(
            self.episode_id.clone(),
            DateTime::from_timestamp(self.started, 0).unwrap_or_default(),
        );
        ep.phase = self.phase;
        for (k, v) in [
            (VICTIM, self.victim.clone()),
            (FROM, self.from.to_string()),
            (DRAIN_STARTED, self.drain_started.to_string()),
            (LOWERED_AT, self.lowered_at.to_string()),
        ] {
            ep.details.insert(k.to_string(), v);
        }
        ep.to_tags()
    }

    /// The tag keys an ended episode removes (marker, details, cancel request).
    pub fn end_keys() -> Vec<String> {
        let mut keys = vec![episode::EPISODE.to_string(), episode::CANCEL.to_string()];
        keys.extend(
            [VICTIM, FROM, DRAIN_STARTED, LOWERED_AT]
                .iter()
                .map(|k| format!("{}{k}", episode::EPISODE_DETAIL_PREFIX)),
        );
        keys
    }

    /// The active episode in the service's tags: None when there is none,
    /// `Err` when a marker is there but cannot be read.
    pub fn from_tags(tags: &BTreeMap<String, String>) -> Option<Result<Self, String>> {
        let state = episode::EpisodeState::from_tags(tags);
        if let Some(raw) = state.unreadable_episode {
            return Some(Err(format!("unreadable episode marker {raw:?}")));
        }
        let ep = state.scale_in?;
        let int = |k: &str| ep.details.get(k).and_then(|v| v.parse::<i64>().ok());
        let (Some(victim), Some(from)) = (ep.details.get(VICTIM), int(FROM)) else {
            return Some(Err(format!(
                "episode {} lacks its victim or starting desired count",
                ep.id
            )));
        };
        Some(Ok(Self {
            episode_id: ep.id.clone(),
            phase: ep.phase,
            victim: victim.clone(),
            from: from as i32,
            started: ep.started_at.timestamp(),
            drain_started: int(DRAIN_STARTED).unwrap_or(0),
            lowered_at: int(LOWERED_AT).unwrap_or(0),
        }))
    }
}

/// True when scale-up asked to cancel this episode.
pub fn cancel_requested(tags: &BTreeMap<String, String>, episode_id: &str) -> bool {
    episode::EpisodeState::from_tags(tags).cancel_requested_for(episode_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marker() -> Marker {
        Marker {
            episode_id: "sd-1763900000-0a1b".into(),
            phase: Phase::Draining,
            victim: "0123456789abcdef0123456789abcdef".into(),
            from: 4,
            started: 1_763_900_000,
            drain_started: 1_763_900_002,
            lowered_at: 0,
        }
    }

    #[test]
    fn round_trips_through_tags_that_ecs_accepts() {
        let m = marker();
        let tags: BTreeMap<String, String> = m.to_tags().into_iter().collect();
        for (k, v) in &tags {
            assert!(v.len() <= 256 && k.len() <= 128, "{k}={v}");
            let ok = |c: char| c.is_ascii_alphanumeric() || " +-=._:/@".contains(c);
            assert!(v.chars().all(ok), "not tag-safe: {k}={v}");
        }
        assert_eq!(Marker::from_tags(&tags), Some(Ok(m)));
        for k in Marker::end_keys() {
            assert!(k.starts_with("autoscaler:"));
        }
    }

    #[test]
    fn scale_up_sees_our_draining_episode_as_cancellable() {
        let tags: BTreeMap<String, String> = marker().to_tags().into_iter().collect();
        let state = episode::EpisodeState::from_tags(&tags);
        assert_eq!(
            state.cancellable_episode().map(|e| e.id.as_str()),
            Some("sd-1763900000-0a1b")
        );
    }

    #[test]
    fn garbage_marker_is_an_error_not_a_panic() {
        let mut tags = BTreeMap::new();
        tags.insert(episode::EPISODE.to_string(), "garbage".to_string());
        assert!(matches!(Marker::from_tags(&tags), Some(Err(_))));
        tags.insert(episode::EPISODE.to_string(), "sd-1/draining/5".to_string());
        assert!(
            matches!(Marker::from_tags(&tags), Some(Err(_))),
            "no victim detail"
        );
        assert_eq!(Marker::from_tags(&BTreeMap::new()), None);
    }

    #[test]
    fn phases_rank_in_order() {
        assert!(rank(Phase::Draining) < rank(Phase::Lowering));
        assert!(rank(Phase::Verifying) < rank(Phase::Releasing));
    }
}
