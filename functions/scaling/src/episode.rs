//! Episode state, kept in the ECS service's own tags (prefix `autoscaler:`).
//!
//! Why tags and not a table: the state is a handful of short values that belong
//! to one service; DescribeServices returns them with the service in the same
//! call (`include=TAGS`), so the hot path reads service and state in one round
//! trip; they need no extra resource, IAM scope beyond the service, or cleanup;
//! and an operator sees and edits them in the console (`autoscaler:paused`).
//! The price is that TagResource is a last-writer-wins merge per key, not a
//! conditional write. That is enough here because every scaling function has
//! reserved concurrency 1 (each writer is serialised with itself), the two
//! functions write disjoint keys, and the only cross-function write is the
//! cancel request, which only scale-up writes and only scale-down clears.
//!
//! | tag | written by | value |
//! |---|---|---|
//! | `autoscaler:paused` | operator | `true` pauses scale-up and scale-down (report skipped, no action) |
//! | `autoscaler:last-scale-out` | scale-up | unix seconds of the last scale-out |
//! | `autoscaler:last-scale-in` | scale-down | unix seconds of the last completed scale-in |
//! | `autoscaler:last-scale-in-rollback` | scale-down | unix seconds of the last scale-in rolled back after a fault (back-off) |
//! | `autoscaler:scale-out-keys` | scale-up | recent idempotency keys `<hash>-<target>`, `.`-separated, newest first |
//! | `autoscaler:scale-in-keys` | scale-down | same, for scale-in |
//! | `autoscaler:episode` | scale-down | active scale-in episode `<id>/<phase>/<started unix>` |
//! | `autoscaler:episode-<name>` | scale-down | episode details (victim task ARN, target...) |
//! | `autoscaler:cancel` | scale-up | `<episode id>`: scale-out asks scale-down to abandon that episode |
//!
//! ECS tag values allow letters, digits, spaces and `+ - = . _ : / @`, at most
//! 256 characters: every encoding here keeps to that.

use crate::aws::ecs::Ecs;
use crate::error::AwsError;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::fmt;

/// Prefix of every tag the autoscaler owns.
pub const PREFIX: &str = "autoscaler:";
/// `true` pauses every function for this service.
pub const PAUSED: &str = "autoscaler:paused";
/// Unix seconds of the last scale-out (scale-out cooldown; scale-in cooldown too).
pub const LAST_SCALE_OUT: &str = "autoscaler:last-scale-out";
/// Unix seconds of the last completed scale-in (scale-in cooldown).
pub const LAST_SCALE_IN: &str = "autoscaler:last-scale-in";
/// Unix seconds of the last scale-in rolled back after a fault: the next
/// attempt waits a scale-in cooldown, instead of deregistering and draining a
/// task on every schedule tick while the fault lasts.
pub const LAST_SCALE_IN_ROLLBACK: &str = "autoscaler:last-scale-in-rollback";
/// Recent scale-out idempotency keys.
pub const SCALE_OUT_KEYS: &str = "autoscaler:scale-out-keys";
/// Recent scale-in idempotency keys.
pub const SCALE_IN_KEYS: &str = "autoscaler:scale-in-keys";
/// The active scale-in episode marker.
pub const EPISODE: &str = "autoscaler:episode";
/// Prefix of the active episode's detail tags.
pub const EPISODE_DETAIL_PREFIX: &str = "autoscaler:episode-";
/// The cancel request: the id of the scale-in episode scale-up wants abandoned.
pub const CANCEL: &str = "autoscaler:cancel";

/// How many recent keys each direction keeps: enough to absorb redelivery
/// (CloudWatch, Lambda async and EventBridge retries arrive within minutes),
/// small enough for one 256-character tag (8 × ≤ 21 characters).
const KEYS_KEPT: usize = 8;

/// Idempotency key of one alarm state change: a 16-hex-digit FNV-1a hash of the
/// alarm name and the state timestamp (alarm names can be 255 characters, too
/// long for a tag value, and may hold characters tags do not allow).
pub fn alarm_key(alarm_name: &str, state_timestamp: DateTime<Utc>) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let input = format!("{alarm_name}\n{}", state_timestamp.timestamp_millis());
    for b in input.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// One recorded action: which alarm change caused it and the desired count it set.
/// Recording the target lets a redelivered event finish an interrupted action
/// (desired below the target) instead of repeating or dropping it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionKey {
    pub key: String,
    pub target: i32,
}

fn parse_keys(v: Option<&String>) -> Vec<ActionKey> {
    v.map(|v| {
        v.split('.')
            .filter_map(|k| {
                let (key, target) = k.split_once('-')?;
                Some(ActionKey {
                    key: key.to_string(),
                    target: target.parse().ok()?,
                })
            })
            .collect()
    })
    .unwrap_or_default()
}

fn encode_keys(keys: &[ActionKey]) -> String {
    keys.iter()
        .map(|k| format!("{}-{}", k.key, k.target))
        .collect::<Vec<_>>()
        .join(".")
}

/// Steps of a scale-in episode, in order (docs/scale-down.md, "The steps").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Protecting every other task from ECS's own victim choice.
    Protecting,
    /// Written only by the earlier design, which deregistered the victim itself
    /// first; scale-down resumes it as `Draining`.
    Deregistering,
    /// The victim is told to drain (its connections close once idle); desired
    /// is not lowered yet.
    Draining,
    /// Lowering desired by one; ECS then deregisters and stops the victim.
    Lowering,
    /// Waiting for the victim to reach STOPPED (ECS deregisters it, the ALB
    /// drains it, ECS sends SIGTERM).
    Verifying,
    /// Releasing the other tasks' protection.
    Releasing,
    /// Undoing the steps done so far.
    RollingBack,
}

impl Phase {
    /// All phases, in order.
    pub const ALL: [Phase; 7] = [
        Phase::Protecting,
        Phase::Deregistering,
        Phase::Draining,
        Phase::Lowering,
        Phase::Verifying,
        Phase::Releasing,
        Phase::RollingBack,
    ];

    /// The name stored in the marker.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Protecting => "protecting",
            Phase::Deregistering => "deregistering",
            Phase::Draining => "draining",
            Phase::Lowering => "lowering",
            Phase::Verifying => "verifying",
            Phase::Releasing => "releasing",
            Phase::RollingBack => "rolling-back",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Phase> {
        Phase::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// A scale-out can still keep the victim: the desired count has not been
    /// lowered yet, so re-registering the task and releasing protections undoes
    /// the episode. From `Lowering` on, ECS is already stopping the task.
    pub fn is_cancellable(self) -> bool {
        matches!(
            self,
            Phase::Protecting | Phase::Deregistering | Phase::Draining
        )
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The active scale-in episode (marker tag plus detail tags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScaleInEpisode {
    /// Stable across the invocations that finish it; also the report's `episode_id`.
    pub id: String,
    pub phase: Phase,
    pub started_at: DateTime<Utc>,
    /// Free-form details keyed by short names (`victim`, `target-group`...), each
    /// stored as `autoscaler:episode-<name>`; names and values must be tag-safe.
    pub details: BTreeMap<String, String>,
}

impl ScaleInEpisode {
    /// A new episode in its first phase.
    pub fn start(id: String, now: DateTime<Utc>) -> Self {
        ScaleInEpisode {
            id,
            phase: Phase::Protecting,
            started_at: now,
            details: BTreeMap::new(),
        }
    }

    /// The marker value `<id>/<phase>/<started unix>`.
    pub fn marker(&self) -> String {
        format!("{}/{}/{}", self.id, self.phase, self.started_at.timestamp())
    }

    /// Tags that record this episode (marker and details) in one TagResource.
    pub fn to_tags(&self) -> Vec<(String, String)> {
        let mut tags = vec![(EPISODE.to_string(), self.marker())];
        tags.extend(
            self.details
                .iter()
                .map(|(k, v)| (format!("{EPISODE_DETAIL_PREFIX}{k}"), v.clone())),
        );
        tags
    }

    fn from_tags(tags: &BTreeMap<String, String>) -> Option<Self> {
        let marker = tags.get(EPISODE)?;
        let mut parts = marker.splitn(3, '/');
        let (id, phase, started) = (parts.next()?, parts.next()?, parts.next()?);
        Some(ScaleInEpisode {
            id: id.to_string(),
            phase: Phase::parse(phase)?,
            started_at: DateTime::from_timestamp(started.parse().ok()?, 0)?,
            details: tags
                .iter()
                .filter_map(|(k, v)| {
                    Some((
                        k.strip_prefix(EPISODE_DETAIL_PREFIX)?.to_string(),
                        v.clone(),
                    ))
                })
                .collect(),
        })
    }
}

/// Tag keys to remove when an episode ends: the marker, its details and any
/// cancel request.
pub fn episode_end_keys(tags: &BTreeMap<String, String>) -> Vec<String> {
    tags.keys()
        .filter(|k| {
            k.as_str() == EPISODE || k.as_str() == CANCEL || k.starts_with(EPISODE_DETAIL_PREFIX)
        })
        .cloned()
        .collect()
}

/// A new episode id: `<kind>-<unix seconds>-<4 hex digits>`, tag-safe and unique
/// enough for one service's episodes (they are serialised).
pub fn new_episode_id(kind: &str, now: DateTime<Utc>) -> String {
    let salt = (now.timestamp_subsec_nanos() ^ std::process::id().rotate_left(16)) & 0xffff;
    format!("{kind}-{}-{salt:04x}", now.timestamp())
}

/// Episode state read from the service's tags.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EpisodeState {
    pub paused: bool,
    pub last_scale_out: Option<DateTime<Utc>>,
    pub last_scale_in: Option<DateTime<Utc>>,
    pub last_scale_in_rollback: Option<DateTime<Utc>>,
    /// Newest first.
    pub scale_out_keys: Vec<ActionKey>,
    /// Newest first.
    pub scale_in_keys: Vec<ActionKey>,
    /// The active scale-in episode, if any. A marker that does not parse is
    /// kept as `unreadable_episode` so nobody mistakes it for "no episode".
    pub scale_in: Option<ScaleInEpisode>,
    /// The raw marker when it is present but unreadable.
    pub unreadable_episode: Option<String>,
    /// Episode id in `autoscaler:cancel`, when scale-up asked for a cancel.
    pub cancel_requested: Option<String>,
}

fn unix_tag(tags: &BTreeMap<String, String>, key: &str) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(tags.get(key)?.trim().parse().ok()?, 0)
}

impl EpisodeState {
    /// Reads the `autoscaler:*` tags (others are ignored).
    pub fn from_tags(tags: &BTreeMap<String, String>) -> Self {
        let scale_in = ScaleInEpisode::from_tags(tags);
        EpisodeState {
            paused: tags
                .get(PAUSED)
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("true")),
            last_scale_out: unix_tag(tags, LAST_SCALE_OUT),
            last_scale_in: unix_tag(tags, LAST_SCALE_IN),
            last_scale_in_rollback: unix_tag(tags, LAST_SCALE_IN_ROLLBACK),
            scale_out_keys: parse_keys(tags.get(SCALE_OUT_KEYS)),
            scale_in_keys: parse_keys(tags.get(SCALE_IN_KEYS)),
            unreadable_episode: match scale_in {
                None => tags.get(EPISODE).cloned(),
                Some(_) => None,
            },
            scale_in,
            cancel_requested: tags.get(CANCEL).cloned(),
        }
    }

    /// Whether a scale-in episode is under way (readable or not).
    pub fn scale_in_active(&self) -> bool {
        self.scale_in.is_some() || self.unreadable_episode.is_some()
    }

    /// The scale-out recorded for this key, if any.
    pub fn scale_out_done(&self, key: &str) -> Option<&ActionKey> {
        self.scale_out_keys.iter().find(|k| k.key == key)
    }

    /// The scale-in recorded for this key, if any.
    pub fn scale_in_done(&self, key: &str) -> Option<&ActionKey> {
        self.scale_in_keys.iter().find(|k| k.key == key)
    }

    /// Tags that record a scale-out before it is applied: its key and target
    /// (idempotency) and the time (cooldown). Written first, so a crash between
    /// this and UpdateService is finished by the redelivered event.
    pub fn record_scale_out(
        &self,
        key: &str,
        target: i32,
        now: DateTime<Utc>,
    ) -> Vec<(String, String)> {
        vec![
            (LAST_SCALE_OUT.to_string(), now.timestamp().to_string()),
            (
                SCALE_OUT_KEYS.to_string(),
                push_key(&self.scale_out_keys, key, target),
            ),
        ]
    }

    /// Tags that record a scale-in decision (key and target), written when the
    /// episode starts. `LAST_SCALE_IN` is written by [`EpisodeState::record_scale_in_done`].
    pub fn record_scale_in(&self, key: &str, target: i32) -> Vec<(String, String)> {
        vec![(
            SCALE_IN_KEYS.to_string(),
            push_key(&self.scale_in_keys, key, target),
        )]
    }

    /// Tag that starts the scale-in cooldown when an episode completes.
    pub fn record_scale_in_done(now: DateTime<Utc>) -> Vec<(String, String)> {
        vec![(LAST_SCALE_IN.to_string(), now.timestamp().to_string())]
    }

    /// Tag that starts the back-off after a scale-in rolled back on a fault.
    pub fn record_scale_in_rolled_back(now: DateTime<Utc>) -> Vec<(String, String)> {
        vec![(
            LAST_SCALE_IN_ROLLBACK.to_string(),
            now.timestamp().to_string(),
        )]
    }

    /// Scale-down's check, between steps and before lowering desired: has
    /// scale-up asked to cancel this episode?
    pub fn cancel_requested_for(&self, episode_id: &str) -> bool {
        self.cancel_requested.as_deref() == Some(episode_id)
    }

    /// The episode a scale-out should ask to cancel: an active scale-in in a
    /// cancellable phase that has no cancel request yet. Pure; see [`request_cancel`].
    pub fn cancellable_episode(&self) -> Option<&ScaleInEpisode> {
        self.scale_in
            .as_ref()
            .filter(|e| e.phase.is_cancellable() && !self.cancel_requested_for(&e.id))
    }
}

fn push_key(keys: &[ActionKey], key: &str, target: i32) -> String {
    let mut out = vec![ActionKey {
        key: key.to_string(),
        target,
    }];
    out.extend(
        keys.iter()
            .filter(|k| k.key != key)
            .take(KEYS_KEPT - 1)
            .cloned(),
    );
    encode_keys(&out)
}

/// The cancel hook ("one episode at a time", docs/invariants.md: a scale-out
/// during a drain cancels the drain and keeps the task). When the service has a scale-in episode in a
/// cancellable phase, writes `autoscaler:cancel=<episode id>` and returns the
/// id, for the report. Scale-down checks the request between its steps and
/// before lowering desired ([`EpisodeState::cancel_requested_for`]), then undoes
/// its steps and clears the episode tags ([`episode_end_keys`]). Scale-up calls
/// this after its own UpdateService, so the new desired count already includes
/// the task being kept.
pub async fn request_cancel(
    ecs: &Ecs,
    service_arn: &str,
    state: &EpisodeState,
) -> Result<Option<String>, AwsError> {
    let Some(episode) = state.cancellable_episode() else {
        return Ok(None);
    };
    ecs.tag(service_arn, &[(CANCEL.to_string(), episode.id.clone())])
        .await?;
    Ok(Some(episode.id.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn apply(t: &mut BTreeMap<String, String>, writes: Vec<(String, String)>) {
        t.extend(writes);
    }

    #[test]
    fn empty_tags_mean_no_state() {
        let s = EpisodeState::from_tags(&tags(&[("team", "web")]));
        assert_eq!(s, EpisodeState::default());
        assert!(!s.scale_in_active());
    }

    #[test]
    fn paused_cooldowns_and_keys_round_trip() {
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let mut t = tags(&[(PAUSED, "TRUE")]);
        let s = EpisodeState::from_tags(&t);
        assert!(s.paused);
        let key = alarm_key("visits-api-cpu-high", now);
        apply(&mut t, s.record_scale_out(&key, 3, now));
        let s = EpisodeState::from_tags(&t);
        assert_eq!(s.last_scale_out, Some(now));
        assert_eq!(s.scale_out_done(&key).map(|k| k.target), Some(3));
        assert!(s.scale_out_done(&alarm_key("other", now)).is_none());
    }

    #[test]
    fn keys_are_bounded_and_tag_safe() {
        let now = Utc::now();
        let mut t = BTreeMap::new();
        for i in 0..20 {
            let s = EpisodeState::from_tags(&t);
            let key = alarm_key(&"x".repeat(255), now + chrono::Duration::seconds(i));
            apply(&mut t, s.record_scale_out(&key, 1000 + i as i32, now));
        }
        let v = &t[SCALE_OUT_KEYS];
        assert!(v.len() <= 256, "{}", v.len());
        assert!(v
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-=._:/@ ".contains(c)));
        assert_eq!(EpisodeState::from_tags(&t).scale_out_keys.len(), KEYS_KEPT);
        assert_eq!(EpisodeState::from_tags(&t).scale_out_keys[0].target, 1019);
    }

    #[test]
    fn episode_marker_round_trips_and_cancel_is_detected() {
        let now = DateTime::from_timestamp(1_700_000_100, 0).unwrap();
        let mut ep = ScaleInEpisode::start(new_episode_id("in", now), now);
        ep.phase = Phase::Draining;
        ep.details.insert(
            "victim".into(),
            "arn:aws:ecs:us-east-1:123456789012:task/visits/abc".into(),
        );
        let mut t = BTreeMap::new();
        apply(&mut t, ep.to_tags());
        let s = EpisodeState::from_tags(&t);
        assert_eq!(s.scale_in.as_ref(), Some(&ep));
        assert_eq!(
            s.cancellable_episode().map(|e| e.id.as_str()),
            Some(ep.id.as_str())
        );
        t.insert(CANCEL.into(), ep.id.clone());
        let s = EpisodeState::from_tags(&t);
        assert!(s.cancel_requested_for(&ep.id));
        assert!(s.cancellable_episode().is_none(), "already requested");
        let mut end = episode_end_keys(&t);
        end.sort();
        assert_eq!(end, vec![CANCEL, EPISODE, "autoscaler:episode-victim"]);
    }

    #[test]
    fn late_phases_are_not_cancellable() {
        for p in Phase::ALL {
            assert_eq!(Phase::parse(p.as_str()), Some(p));
        }
        assert!(!Phase::Lowering.is_cancellable());
        assert!(Phase::Draining.is_cancellable());
    }

    #[test]
    fn unreadable_marker_still_blocks() {
        let s = EpisodeState::from_tags(&tags(&[(EPISODE, "garbage")]));
        assert!(s.scale_in.is_none());
        assert!(s.scale_in_active());
    }
}
