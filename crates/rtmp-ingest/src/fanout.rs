//! The channel between a stream's fan-out and one player's connection actor: the sans-IO
//! [`PlayQueue`] (bounded in media time and bytes, slow-consumer drop order) behind a mutex,
//! plus a wakeup. The publisher side never waits: [`PlayerFeed::push`] queues, drops or reports
//! an overflow and returns; the player's actor drains at the pace its socket accepts.
//!
//! ```text
//!  publisher task ── PlayerFeed::push(&tag) ─► [PlayQueue] ─► PlayerInbox::drain ─► Session::send_media
//!                    (shares the tag Bytes)      Mutex          (player's task, woken by Notify)
//! ```

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use crate::play::{PlayQueue, PlayQueueLimits, PushOutcome};
use crate::IngestTag;

/// Stream events for a player, delivered after the tags queued before them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    /// The publisher left (`Play.UnpublishNotify`).
    PublisherLeft,
    /// A publisher is back within the grace period (`Play.PublishNotify`).
    PublisherReturned,
    /// The stream is gone for good (`Play.Stop`, then close).
    Ended(String),
}

#[derive(Debug)]
struct State {
    queue: PlayQueue,
    notices: VecDeque<Notice>,
    /// The inbox was dropped (the player left).
    closed: bool,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    notify: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The fan-out's end: one per player.
#[derive(Clone, Debug)]
pub struct PlayerFeed {
    shared: Arc<Shared>,
}

/// The player actor's end.
#[derive(Debug)]
pub struct PlayerInbox {
    shared: Arc<Shared>,
}

/// A connected pair.
pub fn player_channel(limits: PlayQueueLimits) -> (PlayerFeed, PlayerInbox) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            queue: PlayQueue::new(limits),
            notices: VecDeque::new(),
            closed: false,
        }),
        notify: Notify::new(),
    });
    (
        PlayerFeed {
            shared: shared.clone(),
        },
        PlayerInbox { shared },
    )
}

impl PlayerFeed {
    /// Offers a tag (never blocks, never copies the payload). `Overflow` also when the player is
    /// gone: the caller should forget this feed.
    pub fn push(&self, tag: &IngestTag) -> PushOutcome {
        let mut st = self.shared.lock();
        if st.closed {
            return PushOutcome::Overflow;
        }
        let was_empty = st.queue.is_empty();
        let outcome = st.queue.push(tag);
        drop(st);
        // One wakeup per batch: the actor drains everything queued when it runs.
        if (outcome == PushOutcome::Queued && was_empty) || outcome == PushOutcome::Overflow {
            self.shared.notify.notify_one();
        }
        outcome
    }

    pub fn notice(&self, notice: Notice) {
        self.shared.lock().notices.push_back(notice);
        self.shared.notify.notify_one();
    }

    /// The player left.
    pub fn is_closed(&self) -> bool {
        self.shared.lock().closed
    }

    /// Tags dropped by the slow-consumer policy.
    pub fn dropped(&self) -> u64 {
        self.shared.lock().queue.dropped()
    }
}

/// What [`PlayerInbox::drain`] found.
#[derive(Debug, Default)]
pub struct Drained {
    pub tags: Vec<IngestTag>,
    pub notices: Vec<Notice>,
    /// The queue went over a hard cap: disconnect the player.
    pub overflowed: bool,
}

impl PlayerInbox {
    /// Resolves when something was queued since the last drain (cancel-safe).
    pub async fn changed(&self) {
        self.shared.notify.notified().await;
    }

    /// Takes everything queued.
    pub fn drain(&self, into: &mut Drained) {
        let mut st = self.shared.lock();
        while let Some(t) = st.queue.pop() {
            into.tags.push(t);
        }
        into.notices.extend(st.notices.drain(..));
        into.overflowed = st.queue.overflowed();
    }

    /// Tags dropped by the slow-consumer policy.
    pub fn dropped(&self) -> u64 {
        self.shared.lock().queue.dropped()
    }
}

impl Drop for PlayerInbox {
    fn drop(&mut self) {
        let mut st = self.shared.lock();
        st.closed = true;
        while st.queue.pop().is_some() {}
    }
}
