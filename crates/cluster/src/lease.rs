//! The ownership lease as a sans-IO state machine: what a node that holds a claim on a stream
//! must do and believe, given the time and the registry's answers. No IO, no clock: the driver
//! passes `now` in (the single-instance lock pattern of the Redis `SET` documentation, "Patterns":
//! a unique value per holder, refreshed and released only by compare-and-set; plus a fencing
//! token per claim, M. Kleppmann, "How to do distributed locking", 2016).
//!
//! ```text
//!  claim answered ──▶ Held ──renew due──▶ (driver sends renew, remembers when it SENT it)
//!                      ▲  │                     │ Renewed: valid until sent + lease - margin
//!                      └──┘◀────────────────────┘ Error: keep the old deadline, retry
//!                         │ NotOwner, or now >= valid_until
//!                         ▼
//!                        Lost (terminal: the node stops publishing the stream at once)
//! ```
//!
//! The deadline is always counted from the moment a request was *sent*, never from when its
//! answer arrived, so a slow answer can only shorten this node's belief, never stretch it past
//! the registry's own expiry. The margin covers clock rate differences between this node and the
//! registry (the registry expires the key `lease` after it processed the command, which is after
//! we sent it).

use std::time::{Duration, Instant};

use crate::token::ClaimToken;

/// Lease timing, validated by [`LeaseTiming::new`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseTiming {
    /// Expiry the registry gives the key (`PX`).
    pub lease: Duration,
    /// How often a holder renews.
    pub renew_every: Duration,
    /// Subtracted from the lease on the holder's own clock.
    pub margin: Duration,
}

impl LeaseTiming {
    /// `None` unless `renew_every + margin < lease` (a holder must be able to renew at least once
    /// before it believes the lease is gone) and the margin is below the lease.
    pub fn new(lease: Duration, renew_every: Duration, margin: Duration) -> Option<Self> {
        (!renew_every.is_zero() && renew_every + margin < lease).then_some(Self {
            lease,
            renew_every,
            margin,
        })
    }

    /// How long a claim or renewal sent at `sent` is believed on this node.
    fn believed_until(&self, sent: Instant) -> Instant {
        sent + (self.lease - self.margin)
    }
}

/// What the registry answered to a renewal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RenewOutcome {
    /// The key still held our value and its expiry was reset.
    Renewed,
    /// The key is gone or holds another claim: someone else may own the stream now.
    NotOwner,
    /// No answer (timeout, connection refused, ...): nothing is known, the old deadline stands.
    Unreachable,
}

/// Why a lease was lost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LossReason {
    /// The registry said the key is no longer ours.
    NotOwner,
    /// No renewal succeeded before the believed expiry (partition, registry down).
    Expired,
}

impl LossReason {
    pub fn label(self) -> &'static str {
        match self {
            LossReason::NotOwner => "not_owner",
            LossReason::Expired => "expired",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Held,
    Lost(LossReason),
    Released,
}

/// One held claim.
#[derive(Clone, Debug)]
pub struct Lease {
    token: ClaimToken,
    timing: LeaseTiming,
    valid_until: Instant,
    next_renew_at: Instant,
    /// A renewal has been sent and not answered yet.
    renew_in_flight: bool,
    state: State,
}

impl Lease {
    /// A claim the registry granted; `sent` is when the claim command was sent.
    pub fn granted(token: ClaimToken, timing: LeaseTiming, sent: Instant) -> Self {
        Self {
            token,
            timing,
            valid_until: timing.believed_until(sent),
            next_renew_at: sent + timing.renew_every,
            renew_in_flight: false,
            state: State::Held,
        }
    }

    pub fn token(&self) -> &ClaimToken {
        &self.token
    }

    /// True while this node may publish the stream.
    pub fn is_held(&self, now: Instant) -> bool {
        self.state == State::Held && now < self.valid_until
    }

    /// The instant this node stops believing it holds the lease (unless renewed before).
    pub fn valid_until(&self) -> Instant {
        self.valid_until
    }

    /// Whether the driver should send a renewal now. Marks it in flight.
    pub fn poll_renew(&mut self, now: Instant) -> bool {
        if self.state != State::Held || self.renew_in_flight || now < self.next_renew_at {
            return false;
        }
        self.renew_in_flight = true;
        true
    }

    /// A renewal out of schedule (the holder has new numbers to save with it): true, marking it
    /// in flight, unless the lease is not held or a renewal is already in flight.
    pub fn renew_now(&mut self) -> bool {
        if self.state != State::Held || self.renew_in_flight {
            return false;
        }
        self.renew_in_flight = true;
        true
    }

    /// The registry's answer to a renewal sent at `sent`.
    pub fn handle_renewed(&mut self, sent: Instant, outcome: RenewOutcome) {
        self.renew_in_flight = false;
        if self.state != State::Held {
            return;
        }
        match outcome {
            RenewOutcome::Renewed => {
                self.valid_until = self.valid_until.max(self.timing.believed_until(sent));
                self.next_renew_at = sent + self.timing.renew_every;
            }
            RenewOutcome::NotOwner => self.state = State::Lost(LossReason::NotOwner),
            RenewOutcome::Unreachable => {
                // Retry soon, but not in a tight loop: a quarter of the renew interval.
                self.next_renew_at = sent + self.timing.renew_every / 4;
            }
        }
    }

    /// Checks the deadline; returns the loss the first time it is noticed.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<LossReason> {
        match self.state {
            State::Held if now >= self.valid_until => {
                self.state = State::Lost(LossReason::Expired);
                Some(LossReason::Expired)
            }
            State::Lost(r) => Some(r),
            _ => None,
        }
    }

    /// The lease is lost, if it is.
    pub fn lost(&self) -> Option<LossReason> {
        match self.state {
            State::Lost(r) => Some(r),
            _ => None,
        }
    }

    /// The next instant the driver must wake up: the renewal or the believed expiry.
    pub fn poll_timeout(&self) -> Option<Instant> {
        (self.state == State::Held).then(|| {
            if self.renew_in_flight {
                self.valid_until
            } else {
                self.next_renew_at.min(self.valid_until)
            }
        })
    }

    /// The holder gives the lease up (its publisher left). Returns whether a release should be
    /// sent to the registry (only when it may still be ours).
    pub fn release(&mut self, now: Instant) -> bool {
        let send = self.is_held(now);
        self.state = State::Released;
        send
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timing() -> LeaseTiming {
        LeaseTiming::new(
            Duration::from_millis(2000),
            Duration::from_millis(500),
            Duration::from_millis(200),
        )
        .unwrap()
    }

    fn lease(t0: Instant) -> Lease {
        Lease::granted(ClaimToken::new("a", 7), timing(), t0)
    }

    #[test]
    fn timing_must_leave_room_to_renew() {
        let ms = Duration::from_millis;
        assert!(LeaseTiming::new(ms(2000), ms(1800), ms(200)).is_none());
        assert!(LeaseTiming::new(ms(2000), ms(0), ms(200)).is_none());
        assert!(LeaseTiming::new(ms(2000), ms(1799), ms(200)).is_some());
    }

    #[test]
    fn renewals_extend_from_when_they_were_sent() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut l = lease(t0);
        assert_eq!(l.valid_until(), t0 + ms(1800));
        assert!(!l.poll_renew(t0 + ms(499)));
        assert!(l.poll_renew(t0 + ms(500)));
        assert!(
            !l.poll_renew(t0 + ms(501)),
            "one renewal in flight at a time"
        );
        assert!(!l.renew_now(), "not even out of schedule");
        // The answer arrives late: the deadline still counts from the send.
        l.handle_renewed(t0 + ms(500), RenewOutcome::Renewed);
        assert_eq!(l.valid_until(), t0 + ms(2300));
        assert!(l.is_held(t0 + ms(2299)));
        assert_eq!(l.handle_timeout(t0 + ms(2299)), None);
        // Out of schedule (new numbers): counts from its own send, and moves the next one.
        assert!(l.renew_now());
        l.handle_renewed(t0 + ms(700), RenewOutcome::Renewed);
        assert_eq!(l.valid_until(), t0 + ms(2500));
        assert!(!l.poll_renew(t0 + ms(1199)));
        assert!(l.poll_renew(t0 + ms(1200)));
    }

    #[test]
    fn unanswered_renewals_lose_the_lease_on_time() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut l = lease(t0);
        let mut now = t0;
        while now < t0 + ms(3000) {
            if l.poll_renew(now) {
                l.handle_renewed(now, RenewOutcome::Unreachable);
            }
            if l.handle_timeout(now).is_some() {
                break;
            }
            now += ms(10);
        }
        assert_eq!(now, t0 + ms(1800), "lost exactly at grant + lease - margin");
        assert_eq!(l.lost(), Some(LossReason::Expired));
        assert!(!l.is_held(now));
        assert!(
            !l.poll_renew(now + ms(1000)),
            "a lost lease is never renewed"
        );
        // A late success cannot resurrect it.
        l.handle_renewed(now, RenewOutcome::Renewed);
        assert!(!l.is_held(now));
    }

    #[test]
    fn not_owner_is_lost_at_once() {
        let t0 = Instant::now();
        let mut l = lease(t0);
        assert!(l.poll_renew(t0 + Duration::from_millis(500)));
        l.handle_renewed(t0 + Duration::from_millis(500), RenewOutcome::NotOwner);
        assert_eq!(l.lost(), Some(LossReason::NotOwner));
        assert!(!l.is_held(t0 + Duration::from_millis(600)));
        assert_eq!(l.poll_timeout(), None);
    }

    #[test]
    fn release_is_sent_only_while_held() {
        let t0 = Instant::now();
        let mut l = lease(t0);
        assert!(l.release(t0));
        let mut l = lease(t0);
        assert!(!l.release(t0 + Duration::from_secs(5)));
    }
}
