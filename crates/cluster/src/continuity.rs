//! Playlist continuity across nodes: the numbers a stream's next owner continues from, stored with
//! the lease (RFC 8216bis §6.2.1: `EXT-X-MEDIA-SEQUENCE` and `EXT-X-DISCONTINUITY-SEQUENCE` of a
//! playlist URL never go back; §4.4.3.1 `EXT-X-TARGETDURATION` never changes; §4.4.3.7
//! `EXT-X-PART-INF` likewise), kept as a hash of plain integer fields.
//!
//! The owner writes the numbers after segments (asynchronously, fenced by its claim) and exactly
//! on release. A crash can lose the last writes, so a record not marked `clean` is resumed
//! *ahead*: every number plus `skip` (which must exceed the segments one node can publish within
//! a lease), so no number, and no segment or init URI, is ever reused for other bytes.

use std::collections::{BTreeMap, HashMap};

/// The numbers of one rendition (one media playlist, e.g. `ts` or `cmaf`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RenditionNumbers {
    pub next_media_sequence: u64,
    pub discontinuity_sequence: u64,
    pub next_init: u64,
}

/// What a stream's next owner continues from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Continuity {
    pub target_duration_s: u32,
    pub part_target_ms: u32,
    /// Per rendition name (`[A-Za-z0-9_-]`).
    pub renditions: BTreeMap<String, RenditionNumbers>,
    /// Written by a release: the numbers are exact, nothing was published after them.
    pub clean: bool,
}

const TARGET: &str = "target_duration_s";
const PART: &str = "part_target_ms";
const CLEAN: &str = "clean";

impl Continuity {
    /// Hash fields (`HSET` arguments).
    pub fn to_fields(&self) -> Vec<(String, String)> {
        let mut v = vec![
            (TARGET.to_string(), self.target_duration_s.to_string()),
            (PART.to_string(), self.part_target_ms.to_string()),
            (CLEAN.to_string(), u8::from(self.clean).to_string()),
        ];
        for (name, n) in &self.renditions {
            v.push((format!("r.{name}.msn"), n.next_media_sequence.to_string()));
            v.push((
                format!("r.{name}.dseq"),
                n.discontinuity_sequence.to_string(),
            ));
            v.push((format!("r.{name}.init"), n.next_init.to_string()));
        }
        v
    }

    /// Reads a hash back; `None` when it holds no numbers (never published). Unknown and
    /// malformed fields are ignored (a malformed number reads as absent).
    pub fn from_fields(fields: &HashMap<String, String>) -> Option<Self> {
        let num = |k: &str| fields.get(k).and_then(|v| v.parse::<u64>().ok());
        let target_duration_s = u32::try_from(num(TARGET)?).ok()?;
        let mut c = Continuity {
            target_duration_s,
            part_target_ms: num(PART).and_then(|v| u32::try_from(v).ok()).unwrap_or(0),
            renditions: BTreeMap::new(),
            clean: num(CLEAN) == Some(1),
        };
        for key in fields.keys() {
            let Some(name) = key.strip_prefix("r.").and_then(|k| k.strip_suffix(".msn")) else {
                continue;
            };
            let get = |what: &str| num(&format!("r.{name}.{what}")).unwrap_or(0);
            c.renditions.insert(
                name.to_string(),
                RenditionNumbers {
                    next_media_sequence: get("msn"),
                    discontinuity_sequence: get("dseq"),
                    next_init: get("init"),
                },
            );
        }
        Some(c)
    }

    /// The numbers a new owner starts from: exact after a clean release, else every number
    /// `skip` ahead (numbers only grow; a forward jump across a discontinuity is allowed).
    pub fn resume(&self, skip: u64) -> Continuity {
        let skip = if self.clean { 0 } else { skip };
        let mut c = self.clone();
        for n in c.renditions.values_mut() {
            n.next_media_sequence = n.next_media_sequence.saturating_add(skip);
            n.discontinuity_sequence = n.discontinuity_sequence.saturating_add(skip);
            n.next_init = n.next_init.saturating_add(skip);
        }
        c.clean = false;
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(clean: bool) -> Continuity {
        let mut r = BTreeMap::new();
        r.insert(
            "ts".to_string(),
            RenditionNumbers {
                next_media_sequence: 41,
                discontinuity_sequence: 2,
                next_init: 0,
            },
        );
        r.insert(
            "cmaf".to_string(),
            RenditionNumbers {
                next_media_sequence: 41,
                discontinuity_sequence: 2,
                next_init: 3,
            },
        );
        Continuity {
            target_duration_s: 2,
            part_target_ms: 500,
            renditions: r,
            clean,
        }
    }

    #[test]
    fn fields_round_trip() {
        for clean in [false, true] {
            let c = sample(clean);
            let fields: HashMap<_, _> = c.to_fields().into_iter().collect();
            assert_eq!(Continuity::from_fields(&fields), Some(c));
        }
        assert_eq!(Continuity::from_fields(&HashMap::new()), None);
    }

    #[test]
    fn resume_skips_ahead_unless_clean() {
        let exact = sample(true).resume(16);
        assert_eq!(exact.renditions["ts"].next_media_sequence, 41);
        assert!(!exact.clean, "the resumed numbers are not a release record");
        let ahead = sample(false).resume(16);
        assert_eq!(ahead.renditions["ts"].next_media_sequence, 57);
        assert_eq!(ahead.renditions["cmaf"].next_init, 19);
        assert_eq!(ahead.renditions["cmaf"].discontinuity_sequence, 18);
        assert_eq!(ahead.target_duration_s, 2);
    }
}
