//! The scale-in episode marker: the write-ahead record, kept in service tags,
//! of which step an episode is about to take.
//!
//! Service tags survive the Lambda (any invocation, from any alarm or the
//! reconcile schedule, can read them), need no extra resource, and ECS keeps
//! them with the service they describe. A tag value holds at most 256
//! characters, so the marker is one compact `k=v;k=v` value.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// The active scale-in episode (contract: `autoscaler:episode`).
pub const EPISODE_TAG: &str = "autoscaler:episode";
/// Written by scale-up, value = the episode id it asks to cancel.
pub const CANCEL_TAG: &str = "autoscaler:cancel";
/// Unix seconds of the last completed scale-in (the cooldown's start).
pub const LAST_SCALE_IN_TAG: &str = "autoscaler:last-scale-in";
/// `true` pauses every function.
pub const PAUSED_TAG: &str = "autoscaler:paused";
/// Idempotency key of the last alarm state change that started a scale-in.
pub const SCALE_IN_KEY_TAG: &str = "autoscaler:scale-in-key";

/// The step an episode is about to take (written before the step: write-ahead).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Protecting every task but the victim.
    Protecting,
    /// Deregistering the victim's targets.
    Deregistering,
    /// Telling the victim to drain and waiting until it has.
    Draining,
    /// About to lower desired by one (cancel is checked once more after this is written).
    Lowering,
    /// Desired lowered; waiting for the victim to reach STOPPED.
    Stopping,
    /// Victim stopped; releasing the protections.
    Releasing,
    /// Undoing the episode: re-register, undrain, release.
    RollingBack,
}

impl Phase {
    /// A scale-out may still cancel the episode and keep the task (desired is untouched).
    pub fn is_cancellable(self) -> bool {
        matches!(
            self,
            Phase::Protecting | Phase::Deregistering | Phase::Draining
        )
    }

    fn as_str(self) -> &'static str {
        match self {
            Phase::Protecting => "protecting",
            Phase::Deregistering => "deregistering",
            Phase::Draining => "draining",
            Phase::Lowering => "lowering",
            Phase::Stopping => "stopping",
            Phase::Releasing => "releasing",
            Phase::RollingBack => "rolling-back",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Phase {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            Phase::Protecting,
            Phase::Deregistering,
            Phase::Draining,
            Phase::Lowering,
            Phase::Stopping,
            Phase::Releasing,
            Phase::RollingBack,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
        .ok_or_else(|| format!("unknown phase {s:?}"))
    }
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
    /// The tag value (≤ 256 characters for any ECS task id).
    pub fn encode(&self) -> String {
        format!(
            "id={};phase={};victim={};from={};t0={};d0={};l0={}",
            self.episode_id,
            self.phase,
            self.victim,
            self.from,
            self.started,
            self.drain_started,
            self.lowered_at
        )
    }

    /// Parses a tag value written by [`Marker::encode`].
    pub fn decode(value: &str) -> Result<Self, String> {
        let fields: BTreeMap<&str, &str> = value
            .split(';')
            .filter_map(|kv| kv.split_once('='))
            .collect();
        let get = |k: &str| {
            fields
                .get(k)
                .copied()
                .ok_or_else(|| format!("episode marker lacks {k}: {value:?}"))
        };
        let int = |k: &str| -> Result<i64, String> {
            get(k)?
                .parse()
                .map_err(|_| format!("episode marker {k} is not a number: {value:?}"))
        };
        Ok(Self {
            episode_id: get("id")?.to_string(),
            phase: get("phase")?.parse()?,
            victim: get("victim")?.to_string(),
            from: i32::try_from(int("from")?).map_err(|e| e.to_string())?,
            started: int("t0")?,
            drain_started: int("d0").unwrap_or(0),
            lowered_at: int("l0").unwrap_or(0),
        })
    }

    /// The marker found in the service's tags, if any.
    pub fn from_tags(tags: &BTreeMap<String, String>) -> Option<Result<Self, String>> {
        tags.get(EPISODE_TAG).map(|v| Self::decode(v))
    }
}

/// True when scale-up asked to cancel this episode.
pub fn cancel_requested(tags: &BTreeMap<String, String>, episode_id: &str) -> bool {
    tags.get(CANCEL_TAG).is_some_and(|v| v == episode_id)
}

/// The idempotency key of one alarm state change, short enough for a tag value.
pub fn idempotency_key(alarm_name: &str, state_timestamp: &str) -> String {
    let key = format!("{alarm_name}@{state_timestamp}");
    if key.len() <= 256 {
        return key;
    }
    // FNV-1a: stable across builds, unlike std's RandomState.
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{}..#{hash:016x}", &key[..200])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_round_trips_and_fits_a_tag() {
        let m = Marker {
            episode_id: "sd-1763900000-0123abcd".into(),
            phase: Phase::Draining,
            victim: "0123456789abcdef0123456789abcdef".into(),
            from: 4,
            started: 1_763_900_000,
            drain_started: 1_763_900_002,
            lowered_at: 0,
        };
        let v = m.encode();
        assert!(v.len() <= 256, "{} chars", v.len());
        assert_eq!(Marker::decode(&v).unwrap(), m);
    }

    #[test]
    fn garbage_marker_is_an_error_not_a_panic() {
        assert!(Marker::decode("phase=draining").is_err());
        assert!(Marker::decode("id=x;phase=flying;victim=v;from=1;t0=0").is_err());
    }

    #[test]
    fn only_pre_lowering_phases_are_cancellable() {
        assert!(Phase::Draining.is_cancellable());
        assert!(!Phase::Lowering.is_cancellable());
        assert!(!Phase::Stopping.is_cancellable());
    }

    #[test]
    fn long_idempotency_keys_are_hashed_to_fit() {
        let k = idempotency_key(&"a".repeat(255), "2026-11-23T15:00:00.000+0000");
        assert!(k.len() <= 256);
        assert_ne!(
            k,
            idempotency_key(&"a".repeat(254), "2026-11-23T15:00:00.000+0000")
        );
    }
}
