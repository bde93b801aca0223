//! Parts pushed chunk by chunk (CMAF chunks, ISO/IEC 23000-19 §7.3.2.3) into the store: the
//! producer side ([`StreamHandle::push_chunk`], [`StreamHandle::complete_part`]) and the lookup
//! the part route uses for a part that may still be growing (RFC 8216bis §6.2.6).

use std::sync::Arc;

use bytes::Bytes;

use super::{lock, Store, StreamHandle};
use crate::body::StoredBody;
use crate::error::EdgeError;
use crate::growing::GrowingPart;
use crate::media::Container;
use crate::stream::{PartDone, SegmentStart};

/// A part as the part route finds it.
pub(crate) enum FoundPart {
    Complete(Arc<StoredBody>),
    Growing(Arc<GrowingPart>),
}

impl Store {
    /// Part `index` of CMAF segment `media_sequence`: complete, or growing (its first chunk is
    /// in, its last is not).
    pub(crate) fn find_part(
        &self,
        app: &str,
        stream: &str,
        media_sequence: u64,
        index: u32,
    ) -> Option<FoundPart> {
        if let Some(b) = self.part(app, stream, media_sequence, index) {
            return Some(FoundPart::Complete(b));
        }
        let e = self.entry(app, stream)?;
        let core = lock(&e.core);
        let g = core.renditions.cmaf.growing.as_ref()?;
        ((g.media_sequence, g.index) == (media_sequence, index))
            .then(|| FoundPart::Growing(g.clone()))
    }
}

impl StreamHandle {
    /// Appends one CMAF chunk (its pieces, not copied) to the part being written in
    /// `container`: the next part, after the last one listed. Readers of that part (the one
    /// the preload hint names) get the chunk at once; the part is listed only when
    /// [`StreamHandle::complete_part`] closes it. Its bytes count towards the budgets from now.
    pub fn push_chunk(&self, container: Container, pieces: Vec<Bytes>) -> Result<(), EdgeError> {
        let store = &self.store;
        let len_bytes: u64 = pieces.iter().map(|b| b.len() as u64).sum();
        let max = store.inner.config.max_bytes_total;
        if store.bytes_held().saturating_add(len_bytes) > max {
            store.enforce_total_budget(len_bytes);
        }
        let mut core = lock(&self.entry.core);
        if !core.accepts(self.epoch) {
            return Err(EdgeError::NotPublishing);
        }
        let (added, dropped) = core.push_chunk(container, pieces);
        store.add_bytes(&self.entry, &core, container, added);
        store.release(&self.entry, &core, dropped.as_slice());
        Ok(())
    }

    /// Closes the part the chunks pushed since the last part make, and lists it (as
    /// [`StreamHandle::push_part`] with those bytes: the same `Bytes`, no copy). Requests
    /// streaming it end once they have its last byte.
    pub fn complete_part(&self, start: &SegmentStart, part: PartDone) -> Result<(), EdgeError> {
        let store = &self.store;
        if start.container == Container::Cmaf && start.init.is_none() {
            return Err(EdgeError::MissingInit);
        }
        let reports = store.ll_reports(&self.entry);
        let now = store.now();
        let mut core = lock(&self.entry.core);
        if !core.accepts(self.epoch) {
            return Err(EdgeError::NotPublishing);
        }
        core.set_reports(reports);
        let (added, dropped) = core.push_part_body(start, None, part, now.wall);
        store.add_bytes(&self.entry, &core, start.container, added);
        store.release(&self.entry, &core, dropped.as_slice());
        Ok(())
    }
}
