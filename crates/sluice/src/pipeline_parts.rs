//! CMAF parts and chunks of one publish handed to the edge: each chunk (ISO/IEC 23000-19
//! §7.3.2.3) as soon as the remuxer writes it, so the part the preload hint names streams while
//! it grows (RFC 8216bis §6.2.6), then the part's close; or a part whole when it was not
//! streamed. No copies: the edge keeps the remuxer's `Bytes`.

use super::PublishSink;

impl PublishSink {
    /// LL-HLS: a CMAF part goes to the edge the moment the remuxer made it (nothing once a
    /// fleet claim is lost, as for segments).
    pub(super) fn push_cmaf_part(
        &mut self,
        part: hls_edge::NewPart,
        discontinuity: bool,
        arrival_ms: u64,
    ) {
        let held = self
            .fleet
            .as_ref()
            .is_none_or(crate::fleet::FleetClaim::may_publish);
        let Some(h) = self.handle.as_ref().filter(|_| held) else {
            return;
        };
        let len = part.bytes.len();
        let start = hls_edge::SegmentStart {
            container: hls_edge::Container::Cmaf,
            init: self.cmaf_init.clone(),
            discontinuity,
            arrival_unix_ms: arrival_ms,
        };
        match h.push_part(&start, part) {
            Ok(()) => self.cmaf_part_bytes += len,
            Err(e) => {
                tracing::debug!(app = %self.key.0, stream = %self.key.1, error = %e, "part not listed")
            }
        }
    }

    /// A CMAF chunk of the part being written: to the edge at once, so a request for the
    /// hinted part streams it (RFC 8216bis §6.2.6). If one of a part's chunks is refused, the
    /// part goes whole when it closes (the edge gives up the growing one).
    pub(super) fn push_cmaf_chunk(&mut self, c: remux::Chunk) {
        let held = (self.fleet.as_ref()).is_none_or(crate::fleet::FleetClaim::may_publish);
        let Some(h) = self.handle.as_ref().filter(|_| held) else {
            return;
        };
        let first = self.cmaf_chunk_part != Some((c.segment_sequence, c.part_index));
        if first {
            self.cmaf_chunk_part = Some((c.segment_sequence, c.part_index));
            self.cmaf_chunks_pushed = true;
        }
        if !self.cmaf_chunks_pushed {
            return;
        }
        if let Err(e) = h.push_chunk(hls_edge::Container::Cmaf, c.bytes) {
            self.cmaf_chunks_pushed = false;
            tracing::debug!(app = %self.key.0, stream = %self.key.1, error = %e, "chunk not taken");
        }
    }

    pub(super) fn complete_cmaf_part(
        &mut self,
        done: hls_edge::PartDone,
        len: usize,
        discontinuity: bool,
        arrival_ms: u64,
    ) {
        let held = (self.fleet.as_ref()).is_none_or(crate::fleet::FleetClaim::may_publish);
        let Some(h) = self.handle.as_ref().filter(|_| held) else {
            return;
        };
        let start = hls_edge::SegmentStart {
            container: hls_edge::Container::Cmaf,
            init: self.cmaf_init.clone(),
            discontinuity,
            arrival_unix_ms: arrival_ms,
        };
        match h.complete_part(&start, done) {
            Ok(()) => self.cmaf_part_bytes += len,
            Err(e) => {
                tracing::debug!(app = %self.key.0, stream = %self.key.1, error = %e, "part not listed")
            }
        }
    }
}
