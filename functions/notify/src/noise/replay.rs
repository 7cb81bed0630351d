//! Replay dedup: a bounded ring of event-id fingerprints, stored as topic tags.
//!
//! Layout: `notify:seen-0` .. `notify:seen-7` each hold up to [`PER_SLOT`]
//! fingerprints (12 hex characters, space-separated: 246 of the 256 characters a tag
//! value may have); `notify:seen-head` names the slot being filled. When it is full
//! the next slot is cleared and reused, so the oldest fingerprints go first.
//!
//! The fingerprint is recorded after the publish succeeds: a crash in between
//! sends a duplicate email on retry rather than losing one. Two notify invocations
//! racing on the same slot can lose one fingerprint (a later replay of that event
//! would email again); the SAM template gives notify reserved concurrency 1, which
//! rules that out.

use std::collections::BTreeMap;

/// Tag key prefix of the slots.
pub const SLOT_PREFIX: &str = "notify:seen-";
/// Tag key naming the slot being filled.
pub const HEAD_TAG: &str = "notify:seen-head";
/// Number of slots.
pub const SLOTS: usize = 8;
/// Fingerprints per slot: 19 × 12 hex + 18 spaces = 246 ≤ 256.
pub const PER_SLOT: usize = 19;

/// A stable 48-bit fingerprint of a dedup key, as 12 hex characters (FNV-1a; std's
/// hasher is not guaranteed stable across Rust releases, and these outlive a build).
pub fn fingerprint(key: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{:012x}", h >> 16)
}

/// The ring, decoded from the topic's tags.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ReplayRing {
    slots: Vec<Vec<String>>,
    head: usize,
}

impl ReplayRing {
    /// Decodes the ring; tags that are missing or garbled count as empty, so a
    /// hand-edited tag can cost a duplicate email but never an error.
    pub fn from_tags(tags: &BTreeMap<String, String>) -> Self {
        let slots = (0..SLOTS)
            .map(|i| {
                tags.get(&format!("{SLOT_PREFIX}{i}"))
                    .map(|v| {
                        v.split_whitespace()
                            .filter(|f| f.len() == 12 && f.bytes().all(|b| b.is_ascii_hexdigit()))
                            .take(PER_SLOT)
                            .map(String::from)
                            .collect()
                    })
                    .unwrap_or_default()
            })
            .collect();
        let head = tags
            .get(HEAD_TAG)
            .and_then(|h| h.parse::<usize>().ok())
            .filter(|h| *h < SLOTS)
            .unwrap_or(0);
        ReplayRing { slots, head }
    }

    /// True when the fingerprint was recorded (and not yet evicted).
    pub fn contains(&self, fp: &str) -> bool {
        self.slots.iter().any(|s| s.iter().any(|f| f == fp))
    }

    /// Records a fingerprint; returns the tags to write (the changed slot and the head).
    pub fn insert(&mut self, fp: &str) -> Vec<(String, String)> {
        if self.slots[self.head].len() >= PER_SLOT {
            self.head = (self.head + 1) % SLOTS;
            self.slots[self.head].clear();
        }
        self.slots[self.head].push(fp.to_string());
        vec![
            (
                format!("{SLOT_PREFIX}{}", self.head),
                self.slots[self.head].join(" "),
            ),
            (HEAD_TAG.to_string(), self.head.to_string()),
        ]
    }

    /// How many fingerprints the ring holds.
    pub fn len(&self) -> usize {
        self.slots.iter().map(Vec::len).sum()
    }

    /// True when it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(tags: &mut BTreeMap<String, String>, writes: Vec<(String, String)>) {
        for (k, v) in writes {
            assert!(v.len() <= 256, "tag value too long: {}", v.len());
            tags.insert(k, v);
        }
    }

    #[test]
    fn remembers_and_evicts_oldest_first() {
        let mut tags = BTreeMap::new();
        let capacity = SLOTS * PER_SLOT;
        for i in 0..capacity + PER_SLOT {
            let mut ring = ReplayRing::from_tags(&tags);
            let fp = fingerprint(&format!("event-{i}"));
            assert!(!ring.contains(&fp));
            apply(&mut tags, ring.insert(&fp));
            assert!(ReplayRing::from_tags(&tags).contains(&fp));
        }
        assert!(tags.len() <= SLOTS + 1);
        let ring = ReplayRing::from_tags(&tags);
        // The first slot's worth was evicted when the ring wrapped; the latest are kept.
        assert!(!ring.contains(&fingerprint("event-0")));
        assert!(ring.contains(&fingerprint(&format!("event-{}", capacity + PER_SLOT - 1))));
        assert!(ring.len() <= capacity);
        assert!(ring.len() > capacity - PER_SLOT);
    }

    #[test]
    fn garbled_tags_are_empty_not_errors() {
        let tags = BTreeMap::from([
            (HEAD_TAG.to_string(), "99".to_string()),
            (
                format!("{SLOT_PREFIX}0"),
                "zz not-hex 0123456789ab".to_string(),
            ),
        ]);
        let ring = ReplayRing::from_tags(&tags);
        assert_eq!(ring.len(), 1);
        assert!(ring.contains("0123456789ab"));
    }

    #[test]
    fn fingerprint_is_stable() {
        assert_eq!(fingerprint("abc"), fingerprint("abc"));
        assert_ne!(fingerprint("abc"), fingerprint("abd"));
        assert_eq!(fingerprint("x").len(), 12);
    }
}
