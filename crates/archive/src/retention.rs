//! Retention decisions, as pure functions of what exists and the limits: which closed
//! recordings to delete (by age, then oldest first until under the byte cap), and which DVR log
//! gives up its oldest segment when the DVR disk cap is reached.

/// A closed recording, as retention sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordingAge {
    pub id: String,
    pub closed_unix_ms: u64,
    pub bytes: u64,
}

/// Ids to delete: every recording closed more than `max_age_ms` ago (0: no age limit), then the
/// oldest others until the total of the rest is at most `max_bytes` (0: no byte limit).
/// `open_bytes` (recordings still being written) counts toward the total but is never deleted.
pub fn recordings_to_delete(
    closed: &[RecordingAge],
    open_bytes: u64,
    now_unix_ms: u64,
    max_age_ms: u64,
    max_bytes: u64,
) -> Vec<String> {
    let mut sorted: Vec<&RecordingAge> = closed.iter().collect();
    sorted.sort_by_key(|r| (r.closed_unix_ms, r.id.clone()));
    let mut total: u64 = open_bytes + sorted.iter().map(|r| r.bytes).sum::<u64>();
    let mut out = Vec::new();
    for r in sorted {
        let too_old = max_age_ms > 0 && now_unix_ms.saturating_sub(r.closed_unix_ms) > max_age_ms;
        let too_big = max_bytes > 0 && total > max_bytes;
        if too_old || too_big {
            total -= r.bytes;
            out.push(r.id.clone());
        }
    }
    out
}

/// Of the DVR logs (their oldest segment's wall-clock time), the one whose oldest segment goes
/// first when the disk cap is reached: the oldest data across all streams.
pub fn dvr_victim<K: Clone>(oldest: impl IntoIterator<Item = (K, Option<u64>)>) -> Option<K> {
    oldest
        .into_iter()
        .filter_map(|(k, t)| t.map(|t| (t, k)))
        .min_by_key(|(t, _)| *t)
        .map(|(_, k)| k)
}
