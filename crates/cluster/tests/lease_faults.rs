//! Fault tests of the lease logic alone against a real `redis-server` (started per test on a free
//! loopback port): racing claims, renewal after expiry, a stale owner's release and save, epochs
//! that only grow, and the sans-IO lease losing its claim on time while the registry is down.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cluster::{
    ClaimOutcome, ClaimToken, Continuity, Lease, LeaseTiming, Lookup, LossReason, Registry,
    RegistryConfig, RenditionNumbers, RenewOutcome, Renewal,
};
use test_support::redis::RedisServer;

fn registry(url: &str) -> Registry {
    Registry::new(RegistryConfig {
        url: url.to_string(),
        op_timeout: Duration::from_millis(1000),
        retention: Duration::from_secs(600),
        recent: RECENT,
    })
    .unwrap()
}

fn redis() -> Option<RedisServer> {
    test_support::require_tool("redis-server").then(RedisServer::start)
}

const LEASE: Duration = Duration::from_secs(10);
/// The recently-live window of the test registries.
const RECENT: Duration = Duration::from_millis(600);

fn numbers(msn: u64) -> Continuity {
    Continuity {
        target_duration_s: 2,
        part_target_ms: 500,
        renditions: [(
            "ts".to_string(),
            RenditionNumbers {
                next_media_sequence: msn,
                discontinuity_sequence: 0,
                next_init: 0,
            },
        )]
        .into(),
        clean: false,
    }
}

async fn renew(
    r: &Registry,
    token: &ClaimToken,
    lease: Duration,
    c: Option<&Continuity>,
) -> Renewal {
    let url = format!("http://{}", token.node_id);
    r.renew("live", "race", token, &url, lease, c)
        .await
        .unwrap()
}

async fn claim(r: &Registry, node: &str, lease: Duration) -> ClaimOutcome {
    r.claim("live", "race", node, &format!("http://{node}"), lease)
        .await
        .unwrap()
}

fn granted(o: &ClaimOutcome) -> Option<&ClaimToken> {
    match o {
        ClaimOutcome::Granted { token, .. } => Some(token),
        ClaimOutcome::Held { .. } => None,
    }
}

#[tokio::test]
async fn two_nodes_racing_to_claim_exactly_one_wins() {
    let Some(server) = redis() else { return };
    for round in 0..20 {
        let stream = format!("race{round}");
        let (a, b) = (
            Arc::new(registry(&server.url())),
            Arc::new(registry(&server.url())),
        );
        let mut tasks = Vec::new();
        for i in 0..8 {
            let (r, node) = if i % 2 == 0 {
                (a.clone(), "node-a")
            } else {
                (b.clone(), "node-b")
            };
            let stream = stream.clone();
            tasks.push(tokio::spawn(async move {
                r.claim("live", &stream, node, "http://x", LEASE)
                    .await
                    .unwrap()
            }));
        }
        let mut winners = Vec::new();
        for t in tasks {
            if let ClaimOutcome::Granted { token, .. } = t.await.unwrap() {
                winners.push(token);
            }
        }
        // A node may re-take its own claim (a restart of the same node id): so every grant
        // belongs to one node, and the owner at the end is that node's last grant.
        assert!(!winners.is_empty(), "round {round}: nobody won");
        assert!(
            winners.iter().all(|w| w.node_id == winners[0].node_id),
            "round {round}: two nodes were granted the stream: {winners:?}"
        );
        let owner = a.owner("live", &stream).await.unwrap().unwrap();
        assert_eq!(owner.token.node_id, winners[0].node_id);
        assert_eq!(
            owner.token.epoch,
            winners.iter().map(|w| w.epoch).max().unwrap()
        );
    }
}

#[tokio::test]
async fn a_renewal_after_expiry_fails() {
    let Some(server) = redis() else { return };
    let a = registry(&server.url());
    let b = registry(&server.url());
    let short = Duration::from_millis(150);
    let token = granted(&claim(&a, "node-a", short).await).cloned().unwrap();
    assert_eq!(renew(&a, &token, short, None).await, Renewal::Renewed);
    // Let the registry expire the key (the expiry is the registry's, not ours).
    while a.owner("live", "race").await.unwrap().is_some() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        renew(&a, &token, LEASE, None).await,
        Renewal::NotOwner,
        "renewing an expired claim must fail (its epoch counter is still there)"
    );
    let b_token = granted(&claim(&b, "node-b", LEASE).await).cloned().unwrap();
    assert!(b_token.epoch > token.epoch);
    assert_eq!(
        renew(&a, &token, LEASE, Some(&numbers(1))).await,
        Renewal::NotOwner,
        "the old owner must not extend the new owner's claim"
    );
    assert_eq!(
        a.owner("live", "race").await.unwrap().unwrap().token,
        b_token
    );
}

#[tokio::test]
async fn a_stale_owner_neither_releases_nor_overwrites_the_new_claim() {
    let Some(server) = redis() else { return };
    let a = registry(&server.url());
    let b = registry(&server.url());
    let short = Duration::from_millis(150);
    let stale = granted(&claim(&a, "node-a", short).await).cloned().unwrap();
    assert_eq!(
        renew(&a, &stale, short, Some(&numbers(10))).await,
        Renewal::Renewed
    );
    while a.owner("live", "race").await.unwrap().is_some() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ClaimOutcome::Granted { token, continuity } = claim(&b, "node-b", LEASE).await else {
        panic!("node-b could not claim an expired stream");
    };
    assert_eq!(
        continuity,
        Some(numbers(10)),
        "the new owner reads the numbers"
    );
    assert_eq!(
        renew(&a, &stale, LEASE, Some(&numbers(3))).await,
        Renewal::NotOwner
    );
    assert!(
        !a.release("live", "race", &stale, Some(&numbers(3)))
            .await
            .unwrap(),
        "a stale release must be refused"
    );
    let owner = a.owner("live", "race").await.unwrap().unwrap();
    assert_eq!(owner.token, token, "the new owner's claim survived");
    assert_eq!(owner.url, "http://node-b");
    // The new owner releases cleanly; the next claim reads exact numbers.
    assert!(b
        .release("live", "race", &token, Some(&numbers(12)))
        .await
        .unwrap());
    let ClaimOutcome::Granted { continuity, .. } = claim(&a, "node-a", LEASE).await else {
        panic!("released stream not claimable");
    };
    let c = continuity.unwrap();
    assert!(c.clean);
    assert_eq!(c.renditions["ts"].next_media_sequence, 12);
}

#[tokio::test]
async fn epochs_only_grow_and_a_live_claim_is_refused() {
    let Some(server) = redis() else { return };
    let a = registry(&server.url());
    let b = registry(&server.url());
    let mut last = 0;
    for i in 0..10 {
        let (r, node) = if i % 2 == 0 {
            (&a, "node-a")
        } else {
            (&b, "node-b")
        };
        let token = granted(&claim(r, node, LEASE).await).cloned().unwrap();
        assert!(token.epoch > last, "epoch {} after {last}", token.epoch);
        last = token.epoch;
        let (other, other_node) = if i % 2 == 0 {
            (&b, "node-b")
        } else {
            (&a, "node-a")
        };
        match claim(other, other_node, LEASE).await {
            ClaimOutcome::Held { by } => assert_eq!(by, Some(token.clone())),
            o => panic!("a live claim was taken: {o:?}"),
        }
        assert!(r.release("live", "race", &token, None).await.unwrap());
    }
}

/// The sans-IO lease driven against the real registry: the server is killed, renewals get no
/// answer, and the lease is lost at grant + lease - margin on the node's own clock, before the
/// registry could have handed the stream to anyone else.
#[tokio::test]
async fn the_lease_is_lost_on_time_while_the_registry_is_down() {
    let Some(mut server) = redis() else { return };
    let r = registry(&server.url());
    let timing = LeaseTiming::new(
        Duration::from_millis(1500),
        Duration::from_millis(300),
        Duration::from_millis(200),
    )
    .unwrap();
    let sent = Instant::now();
    let token = granted(&claim(&r, "node-a", timing.lease).await)
        .cloned()
        .unwrap();
    let mut lease = Lease::granted(token.clone(), timing, sent);
    server.stop();
    let lost = loop {
        let now = Instant::now();
        if let Some(reason) = lease.handle_timeout(now) {
            break reason;
        }
        if lease.poll_renew(now) {
            let url = "http://node-a";
            let outcome = match r
                .renew("live", "race", lease.token(), url, timing.lease, None)
                .await
            {
                Ok(Renewal::Renewed | Renewal::Reasserted) => RenewOutcome::Renewed,
                Ok(Renewal::NotOwner) => RenewOutcome::NotOwner,
                Err(_) => RenewOutcome::Unreachable,
            };
            lease.handle_renewed(now, outcome);
        }
        let wake = lease.poll_timeout().unwrap();
        tokio::time::sleep_until(wake.into()).await;
    };
    assert_eq!(lost, LossReason::Expired);
    assert!(!lease.is_held(Instant::now()));
    assert!(Instant::now() >= sent + timing.lease - timing.margin);
    // Back up (empty, like a restarted Redis without persistence): a node that lost its lease
    // never renews it again, so the stream is free for any node's claim.
    server.restart();
    assert!(!lease.poll_renew(Instant::now() + timing.lease));
    let b = registry(&server.url());
    let mut claimed = None;
    for _ in 0..50 {
        match b
            .claim("live", "race", "node-b", "http://node-b", LEASE)
            .await
        {
            Ok(o) => {
                claimed = Some(o);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    assert!(
        matches!(claimed, Some(ClaimOutcome::Granted { .. })),
        "{claimed:?}"
    );
}

/// `FLUSHALL` (or a restart without persistence) while an owner holds a stream: its next renewal
/// writes the claim, the epoch counter and the latest numbers back, so another node can neither
/// take the live stream nor start its numbers over.
#[tokio::test]
async fn an_owner_writes_its_claim_and_numbers_back_after_the_registry_lost_its_data() {
    let Some(server) = redis() else { return };
    let a = registry(&server.url());
    let b = registry(&server.url());
    let token = granted(&claim(&a, "node-a", LEASE).await).cloned().unwrap();
    assert_eq!(
        renew(&a, &token, LEASE, Some(&numbers(40))).await,
        Renewal::Renewed
    );
    let client = redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("FLUSHALL").query_async(&mut conn).await.unwrap();
    assert_eq!(a.lookup("live", "race").await.unwrap(), Lookup::Unknown);
    assert_eq!(
        renew(&a, &token, LEASE, Some(&numbers(41))).await,
        Renewal::Reasserted
    );
    let owner = b
        .owner("live", "race")
        .await
        .unwrap()
        .expect("an owner again");
    assert_eq!(owner.token, token);
    assert_eq!(owner.url, "http://node-a");
    match claim(&b, "node-b", LEASE).await {
        ClaimOutcome::Held { by } => assert_eq!(by, Some(token.clone())),
        o => panic!("a live stream was taken after the data loss: {o:?}"),
    }
    assert_eq!(
        renew(&a, &token, LEASE, Some(&numbers(42))).await,
        Renewal::Renewed
    );
    assert!(a
        .release("live", "race", &token, Some(&numbers(43)))
        .await
        .unwrap());
    let ClaimOutcome::Granted {
        token: next,
        continuity,
    } = claim(&b, "node-b", LEASE).await
    else {
        panic!("released stream not claimable");
    };
    assert!(
        next.epoch > token.epoch,
        "epochs only grow: {next} after {token}"
    );
    assert_eq!(continuity.unwrap().renditions["ts"].next_media_sequence, 43);
}

/// The lookup tells a stream that was live recently (a crashed owner, a publisher that left)
/// from one nobody knows, for the `recent` window only.
#[tokio::test]
async fn a_released_or_expired_stream_is_recent_for_a_while_then_unknown() {
    let Some(server) = redis() else { return };
    let a = registry(&server.url());
    assert_eq!(a.lookup("live", "race").await.unwrap(), Lookup::Unknown);
    let token = granted(&claim(&a, "node-a", LEASE).await).cloned().unwrap();
    assert!(matches!(
        a.lookup("live", "race").await.unwrap(),
        Lookup::Owned(o) if o.token == token
    ));
    assert!(a.release("live", "race", &token, None).await.unwrap());
    assert_eq!(a.lookup("live", "race").await.unwrap(), Lookup::Recent);
    // An owner that vanished: the claim expires, then the tombstone `recent` later.
    let short = Duration::from_millis(200);
    let t2 = granted(&claim(&a, "node-a", short).await).cloned().unwrap();
    assert!(t2.epoch > token.epoch);
    let mut seen_recent = false;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match a.lookup("live", "race").await.unwrap() {
            Lookup::Owned(_) => assert!(!seen_recent, "an owner after the claim expired"),
            Lookup::Recent => seen_recent = true,
            Lookup::Unknown => break,
        }
        assert!(Instant::now() < deadline, "the tombstone never expired");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        seen_recent,
        "no recently-live window between expiry and unknown"
    );
}
