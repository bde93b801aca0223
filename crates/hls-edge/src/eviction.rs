//! The store-wide eviction order for the total byte budget (RFC 8216bis §6.2.2: bodies out of the
//! playlist may go before listed ones): each rendition's first candidate, kept sorted, so
//! enforcing the budget costs O(log renditions) per body dropped instead of a scan of every
//! stream.
//!
//! Every change to a stream's core is followed (under that core's lock) by
//! [`EvictionIndex::update`], so the index is exact except between a reader's `first()` and its
//! taking the core lock; the reader re-checks there.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Weak};

use crate::media::Container;
use crate::store::StreamEntry;
use crate::stream::{Candidate, StreamCore};

type Key = (u64, Container);

#[derive(Default)]
pub(crate) struct EvictionIndex {
    order: BTreeSet<(Candidate, Key)>,
    current: HashMap<Key, (Candidate, Weak<StreamEntry>)>,
}

impl EvictionIndex {
    /// Records the candidates of `entry` (whose core is `core`, locked by the caller).
    pub fn update(&mut self, entry: &Arc<StreamEntry>, core: &StreamCore) {
        for c in Container::ALL {
            let key = (entry.id, c);
            let new = core.renditions[c].eviction_candidate();
            let old = self.current.get(&key).map(|(cand, _)| *cand);
            if old == new {
                continue;
            }
            if let Some(old) = old {
                self.order.remove(&(old, key));
                self.current.remove(&key);
            }
            if let Some(new) = new {
                self.order.insert((new, key));
                self.current.insert(key, (new, Arc::downgrade(entry)));
            }
        }
    }

    /// The body to give up first: its candidate, stream id, container and stream.
    pub fn first(&self) -> Option<(Candidate, Key, Weak<StreamEntry>)> {
        let (cand, key) = self.order.first()?;
        let (_, weak) = self.current.get(key)?;
        Some((*cand, *key, weak.clone()))
    }

    /// Forgets a stream that is gone.
    pub fn remove_entry(&mut self, id: u64) {
        for c in Container::ALL {
            if let Some((cand, _)) = self.current.remove(&(id, c)) {
                self.order.remove(&(cand, (id, c)));
            }
        }
    }
}
