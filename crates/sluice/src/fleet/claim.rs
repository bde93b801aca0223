//! A node's claim on one stream: granted by the registry, renewed by a task that runs the
//! `cluster::Lease` state machine, saved with the playlist's numbers after every segment, and
//! released (with the exact numbers, marked clean) when the publisher leaves. A lost claim
//! disconnects the publisher and stops its segments from being listed at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cluster::{ClaimOutcome, Continuity, Lease, RenditionNumbers, RenewOutcome, Renewal};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{lock, Fleet, StreamKey};

/// What the sink and the HTTP router may read about a claim.
pub(super) struct Held {
    /// The lease's believed expiry on this node's clock (updated by each renewal).
    valid_until: Mutex<Instant>,
    lost: AtomicBool,
}

impl Held {
    /// Checked per segment: the deadline itself, not only the renew task's verdict, so a task
    /// stuck on a slow registry cannot stretch the belief.
    pub fn is_held(&self) -> bool {
        !self.lost.load(Ordering::Acquire) && Instant::now() < *lock(&self.valid_until)
    }
}

/// Why a claim was refused.
#[derive(Debug)]
pub enum ClaimRefusal {
    /// Another node holds the stream (a live publisher there).
    OwnedElsewhere,
    /// The registry could not be reached: refuse rather than risk two owners.
    RegistryUnavailable,
}

impl ClaimRefusal {
    pub fn label(&self) -> &'static str {
        match self {
            ClaimRefusal::OwnedElsewhere => "published_on_another_node",
            ClaimRefusal::RegistryUnavailable => "registry_unavailable",
        }
    }
}

/// Held by the publish sink for the life of the publish; dropping it releases the claim.
pub struct FleetClaim {
    held: Arc<Held>,
    progress: watch::Sender<Option<Continuity>>,
    release: CancellationToken,
    /// Numbers to continue from (the stream was published before, here or elsewhere).
    pub resume: Option<hls_edge::Resume>,
}

impl FleetClaim {
    /// May this publish still list segments?
    pub fn may_publish(&self) -> bool {
        self.held.is_held()
    }

    /// The playlist's numbers after a listed segment: saved to the registry (asynchronously,
    /// fenced by the claim; the latest value wins).
    pub fn progress(&self, point: hls_edge::Resume) {
        self.progress.send_replace(Some(to_continuity(&point)));
    }
}

impl Drop for FleetClaim {
    fn drop(&mut self) {
        self.release.cancel();
    }
}

fn to_continuity(p: &hls_edge::Resume) -> Continuity {
    Continuity {
        target_duration_s: p.target_duration_s,
        part_target_ms: p.part_target_ms,
        renditions: p
            .renditions
            .iter()
            .map(|(c, n)| {
                (
                    c.name().to_string(),
                    RenditionNumbers {
                        next_media_sequence: n.next_media_sequence,
                        discontinuity_sequence: n.discontinuity_sequence,
                        next_init: n.next_init,
                    },
                )
            })
            .collect(),
        clean: false,
    }
}

fn to_resume(c: &Continuity) -> hls_edge::Resume {
    let numbers = |name: &str| {
        c.renditions
            .get(name)
            .map(|n| hls_edge::Continuation {
                next_media_sequence: n.next_media_sequence,
                discontinuity_sequence: n.discontinuity_sequence,
                next_init: n.next_init,
            })
            .unwrap_or_default()
    };
    hls_edge::Resume {
        target_duration_s: c.target_duration_s,
        part_target_ms: c.part_target_ms,
        renditions: hls_edge::PerContainer {
            ts: numbers(hls_edge::Container::Ts.name()),
            cmaf: numbers(hls_edge::Container::Cmaf.name()),
        },
    }
}

impl Fleet {
    /// Claims `app/stream` for a publish; `kick` disconnects the publisher if the claim is lost.
    pub async fn claim(
        self: &Arc<Self>,
        app: &str,
        stream: &str,
        kick: CancellationToken,
    ) -> Result<FleetClaim, ClaimRefusal> {
        let sent = Instant::now();
        let outcome = self
            .registry
            .claim(
                app,
                stream,
                &self.node_id,
                &self.advertise_url,
                self.timing.lease,
            )
            .await;
        let key: StreamKey = (app.to_string(), stream.to_string());
        self.owners.invalidate(&key);
        let (token, continuity) = match outcome {
            Ok(ClaimOutcome::Granted { token, continuity }) => {
                self.note_ok();
                (token, continuity)
            }
            Ok(ClaimOutcome::Held { by }) => {
                self.note_ok();
                let owner = by.map(|t| t.node_id);
                tracing::info!(
                    app,
                    stream,
                    ?owner,
                    "stream is published on another node of the fleet"
                );
                return Err(ClaimRefusal::OwnedElsewhere);
            }
            Err(e) => {
                self.note_error(&e);
                return Err(ClaimRefusal::RegistryUnavailable);
            }
        };
        let lease = Lease::granted(token.clone(), self.timing, sent);
        let held = Arc::new(Held {
            valid_until: Mutex::new(lease.valid_until()),
            lost: AtomicBool::new(false),
        });
        lock(&self.held).insert(key.clone(), held.clone());
        let resume = continuity
            .as_ref()
            .map(|c| to_resume(&c.resume(self.cfg.resume_skip_segments)));
        metrics::counter!("sluice_cluster_claims_total").increment(1);
        tracing::info!(app, stream, epoch = token.epoch, resumed = ?continuity.as_ref().map(|c| c.clean),
            "claimed the stream in the fleet registry");
        let (progress, progress_rx) = watch::channel(None);
        let release = CancellationToken::new();
        tokio::spawn(run_lease(
            self.clone(),
            key,
            lease,
            held.clone(),
            progress_rx,
            release.clone(),
            kick,
        ));
        Ok(FleetClaim {
            held,
            progress,
            release,
            resume,
        })
    }

    fn forget(&self, key: &StreamKey, held: &Arc<Held>) {
        let mut map = lock(&self.held);
        if map.get(key).is_some_and(|h| Arc::ptr_eq(h, held)) {
            map.remove(key);
        }
        drop(map);
        self.owners.invalidate(key);
    }
}

/// The lease driver: sleeps until the lease's next deadline, renews, saves progress, releases.
/// It makes no decision of its own: [`Lease`] does.
async fn run_lease(
    fleet: Arc<Fleet>,
    key: StreamKey,
    mut lease: Lease,
    held: Arc<Held>,
    mut progress: watch::Receiver<Option<Continuity>>,
    release: CancellationToken,
    kick: CancellationToken,
) {
    let (app, stream) = (key.0.as_str(), key.1.as_str());
    let registry = fleet.registry.clone();
    let mut progress_open = true;
    loop {
        let wake = lease
            .poll_timeout()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
        tokio::select! {
            _ = release.cancelled() => {
                let latest = progress.borrow_and_update().clone();
                if lease.release(Instant::now()) {
                    match registry.release(app, stream, lease.token(), latest.as_ref()).await {
                        Ok(true) => {
                            fleet.note_ok();
                            tracing::info!(app, stream, epoch = lease.token().epoch, "released the stream");
                        }
                        Ok(false) => {
                            fleet.note_ok();
                            tracing::warn!(app, stream, "release refused: the claim had already moved on");
                        }
                        Err(e) => fleet.note_error(&e),
                    }
                }
                fleet.forget(&key, &held);
                return;
            }
            changed = progress.changed(), if progress_open => {
                if changed.is_err() {
                    progress_open = false;
                    continue;
                }
                // New numbers: saved at once with a renewal (fenced like one), so a renewal
                // that is due anyway is not sent twice.
                let now = Instant::now();
                if !lease.is_held(now) || !lease.renew_now() {
                    continue;
                }
                renew(&fleet, &key, &mut lease, &held, &mut progress, now).await;
            }
            _ = tokio::time::sleep_until(wake.into()) => {
                let now = Instant::now();
                if lease.poll_renew(now) {
                    renew(&fleet, &key, &mut lease, &held, &mut progress, now).await;
                }
            }
        }
        if let Some(reason) = lease.handle_timeout(Instant::now()) {
            held.lost.store(true, Ordering::Release);
            metrics::counter!("sluice_cluster_leases_lost_total", "reason" => reason.label())
                .increment(1);
            tracing::warn!(app, stream, epoch = lease.token().epoch, reason = reason.label(),
                "lost the stream's lease: no more segments are listed here; disconnecting the publisher");
            kick.cancel();
            fleet.forget(&key, &held);
            return;
        }
    }
}

/// One renewal sent at `now` (the lease has marked it in flight), carrying the latest numbers.
async fn renew(
    fleet: &Fleet,
    key: &StreamKey,
    lease: &mut Lease,
    held: &Held,
    progress: &mut watch::Receiver<Option<Continuity>>,
    now: Instant,
) {
    let (app, stream) = (key.0.as_str(), key.1.as_str());
    let latest = progress.borrow_and_update().clone();
    let answer = fleet
        .registry
        .renew(
            app,
            stream,
            lease.token(),
            &fleet.advertise_url,
            fleet.timing.lease,
            latest.as_ref(),
        )
        .await;
    let outcome = match answer {
        Ok(Renewal::Renewed) => {
            fleet.note_ok();
            RenewOutcome::Renewed
        }
        Ok(Renewal::Reasserted) => {
            fleet.note_ok();
            metrics::counter!("sluice_cluster_reasserted_total").increment(1);
            tracing::warn!(app, stream, epoch = lease.token().epoch,
                "the registry had lost this stream's claim and numbers (FLUSHALL or a restart without persistence): wrote them back");
            RenewOutcome::Renewed
        }
        Ok(Renewal::NotOwner) => {
            fleet.note_ok();
            RenewOutcome::NotOwner
        }
        Err(e) => {
            fleet.note_error(&e);
            RenewOutcome::Unreachable
        }
    };
    lease.handle_renewed(now, outcome);
    *lock(&held.valid_until) = lease.valid_until();
    metrics::counter!("sluice_cluster_renewals_total", "outcome" => match outcome {
        RenewOutcome::Renewed => "renewed",
        RenewOutcome::NotOwner => "not_owner",
        RenewOutcome::Unreachable => "unreachable",
    })
    .increment(1);
}
