//! The origin fleet (issue 18) end to end: a real `redis-server` and three `sluice` processes on
//! loopback, ffmpeg publishing. One scenario, in order (each step needs the state the one before
//! left): claim; a second publisher refused on another node; playlists, segments (and LL-HLS
//! blocking reloads, when the edge serves them) forwarded to the owner by every other node;
//! renewal; `FLUSHALL` mid-stream (the owner writes its claim and numbers back); release and a
//! clean continuation on another node (numbers continue, even after the flush); lease loss while
//! Redis is down and a new claim after it restarts; `kill -9` of the owner and recovery on
//! another node with numbers that only grow, while a third node, asked for the playlist during
//! the gap, holds the requests (never a 404). Leases are 2 s so the whole run stays short.

use std::time::{Duration, Instant};

use test_support::redis::RedisServer;

use super::support::*;

const STREAM: &str = "live/fleet";
const PLAYLIST: &str = "/live/fleet/index.m3u8";

fn node(redis: &RedisServer) -> Sluice {
    let url = format!("cluster.redis_url={}", redis.url());
    Sluice::start(&[
        "--set",
        &url,
        "--set",
        "cluster.lease_ms=2000",
        "--set",
        "cluster.renew_interval_ms=400",
        "--set",
        "cluster.lease_margin_ms=300",
        "--set",
        "cluster.owner_cache_ms=300",
        "--set",
        "cluster.registry_timeout_ms=500",
        "--set",
        "hls.grace_period_ms=60000",
    ])
}

fn media_sequence(playlist: &str) -> u64 {
    playlist
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no media sequence:\n{playlist}"))
}

/// Number of the last segment listed (`seg-N.ts`).
fn last_segment(playlist: &str) -> u64 {
    let uri = segment_uris(playlist).pop().expect("a segment");
    uri.trim_start_matches("seg-")
        .split('.')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("segment name {uri}"))
}

fn fleet_owner(s: &Sluice) -> Option<String> {
    let r = s.get("/api/fleet");
    assert_eq!(r.status, 200, "{}", r.text());
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    v["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["app"] == "live" && e["stream"] == "fleet")
        .map(|e| e["owner_url"].as_str().unwrap().to_string())
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("timed out waiting for: {what}");
}

/// Publishes to `s` until a node accepts (a refused ffmpeg exits at once); the claim of a dead
/// owner is only free once its lease expired.
fn publish_accepted(s: &Sluice, timeout: Duration) -> Proc {
    let deadline = Instant::now() + timeout;
    loop {
        let mut p = ffmpeg_publish(&s.rtmp(STREAM), 120, &[]);
        let probe = Instant::now() + Duration::from_secs(4);
        while Instant::now() < probe && p.0.try_wait().ok().flatten().is_none() {
            std::thread::sleep(Duration::from_millis(100));
        }
        if p.0.try_wait().ok().flatten().is_none() {
            return p;
        }
        assert!(
            Instant::now() < deadline,
            "no node accepted the publish; log:\n{}",
            s.log_text()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn refused(s: &Sluice, reason: &str) -> f64 {
    metric(
        &s.get("/metrics").text(),
        "sluice_publish_refused_total",
        &[reason],
    )
}

#[test]
fn three_nodes_one_owner_forwarding_failover_and_growing_numbers() {
    if !require("ffmpeg") || !test_support::require_tool("redis-server") {
        return;
    }
    let mut redis = RedisServer::start();
    let a = node(&redis);
    let mut b = node(&redis);
    let c = node(&redis);

    // Claim: A accepts the publish and every node's fleet view names A as the owner.
    let mut publisher = publish_accepted(&a, Duration::from_secs(20));
    let pl_a = a.wait_for_segments(PLAYLIST, 2, Duration::from_secs(30));
    for n in [&a, &b, &c] {
        assert_eq!(fleet_owner(n).as_deref(), Some(a.http("").as_str()));
    }

    // A second publisher of the live stream is refused on another node.
    let mut second = ffmpeg_publish(&b.rtmp(STREAM), 20, &[]);
    wait_until(
        "the second publisher is refused",
        Duration::from_secs(20),
        || second.0.try_wait().ok().flatten().is_some(),
    );
    assert!(refused(&b, "published_on_another_node") >= 1.0);

    // Forwarding: B and C answer A's playlist and segments with A's bytes and headers.
    let pl_b = b.wait_for_segments(PLAYLIST, 2, Duration::from_secs(10));
    assert!(media_sequence(&pl_b) >= media_sequence(&pl_a));
    let seg = segment_uris(&pl_b)[0].clone();
    let from_a = a.get(&format!("/live/fleet/{seg}"));
    let from_c = c.get(&format!("/live/fleet/{seg}"));
    assert_eq!(from_c.status, 200);
    assert_eq!(from_c.body, from_a.body, "forwarded segment differs");
    assert_eq!(
        from_c.header("cache-control"),
        from_a.header("cache-control")
    );
    assert_eq!(from_c.header("content-type"), Some("video/mp2t"));
    let pr = c.get(PLAYLIST);
    assert_eq!(
        pr.header("content-type"),
        Some("application/vnd.apple.mpegurl")
    );
    assert_eq!(c.get("/live/nothing/index.m3u8").status, 404);
    // A forwarded request is never forwarded again.
    let looped = http_request(
        &c.http(""),
        "GET",
        PLAYLIST,
        &[("x-sluice-forwarded", "test")],
    )
    .unwrap();
    assert_eq!(
        looped.status, 404,
        "C has no local copy and must not forward twice"
    );
    // LL-HLS blocking reload through a non-owner (when the edge advertises it): it waits at the
    // owner for the next segment.
    let cmaf = a.get("/live/fleet/cmaf.m3u8").text();
    if cmaf.contains("CAN-BLOCK-RELOAD=YES") {
        let next = media_sequence(&cmaf) + segment_uris(&cmaf).len() as u64;
        let r = b.get(&format!("/live/fleet/cmaf.m3u8?_HLS_msn={next}"));
        assert_eq!(r.status, 200);
        assert!(r.text().contains(&format!("seg-{next}.")), "{}", r.text());
    }
    // A part (LL-HLS, when the edge lists parts) through a non-owner: the owner's bytes.
    let cmaf = a.get("/live/fleet/cmaf.m3u8").text();
    let part = cmaf
        .lines()
        .filter(|l| l.starts_with("#EXT-X-PART:"))
        .filter_map(|l| l.split("URI=\"").nth(1)?.split('"').next())
        .next()
        .map(str::to_string);
    if let Some(part) = part {
        let path = format!("/live/fleet/{part}");
        let (from_a, from_c) = (a.get(&path), c.get(&path));
        assert_eq!(from_c.status, 200, "part {part} through C");
        assert_eq!(from_c.body, from_a.body, "forwarded part {part} differs");
    } else {
        eprintln!("fleet: the edge lists no parts; part forwarding not exercised");
    }

    // Renewal: several lease periods later A still owns it and the playlist advanced.
    let before = last_segment(&c.get(PLAYLIST).text());
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(fleet_owner(&c).as_deref(), Some(a.http("").as_str()));
    let after = c.get(PLAYLIST).text();
    assert!(
        last_segment(&after) > before,
        "playlist did not advance:\n{after}"
    );

    // The registry loses its data mid-stream: A's next renewal writes its claim, epoch and
    // numbers back (so the release below still hands B numbers that only grow), and another
    // node still refuses a second publisher.
    assert!(redis.flushall(), "FLUSHALL");
    wait_until(
        "A writes its claim back after FLUSHALL",
        Duration::from_secs(20),
        || fleet_owner(&c).as_deref() == Some(a.http("").as_str()),
    );
    assert!(
        metric(
            &a.get("/metrics").text(),
            "sluice_cluster_reasserted_total",
            &[]
        ) >= 1.0
    );
    assert!(
        publisher.0.try_wait().ok().flatten().is_none(),
        "A kept its publisher through the flush"
    );
    let last_on_a = last_segment(&a.get(PLAYLIST).text());

    // Release: the publisher leaves; the claim is deleted; a publish on B continues the
    // numbers exactly (a clean release), after a discontinuity.
    drop(publisher);
    wait_until("A releases the stream", Duration::from_secs(15), || {
        fleet_owner(&c).is_none()
    });
    let last_on_a = last_on_a.max(last_segment(&a.get(PLAYLIST).text()));
    let publisher = publish_accepted(&b, Duration::from_secs(20));
    let first_on_b = {
        let mut first = None;
        wait_until("B lists its first segment", Duration::from_secs(30), || {
            let r = b.get(PLAYLIST);
            if r.status == 200 && fleet_owner(&b).as_deref() == Some(b.http("").as_str()) {
                first = segment_uris(&r.text()).first().cloned();
            }
            first.is_some()
        });
        let pl = b.get(PLAYLIST).text();
        media_sequence(&pl)
    };
    assert!(
        first_on_b > last_on_a,
        "B started at {first_on_b}, A had listed {last_on_a}"
    );
    // Through A, which now forwards to B.
    let via_a = a.wait_for_segments(PLAYLIST, 1, Duration::from_secs(10));
    assert!(media_sequence(&via_a) >= first_on_b, "{via_a}");

    // Lease loss: Redis goes away; B stops the stream (the publisher is disconnected) and says
    // it is degraded; local serving goes on.
    redis.stop();
    let mut publisher = publisher;
    wait_until(
        "B drops its publisher after losing the lease",
        Duration::from_secs(20),
        || publisher.0.try_wait().ok().flatten().is_some(),
    );
    let ready = b.get("/readyz");
    assert_eq!(ready.status, 200);
    assert!(ready.text().starts_with("degraded:"), "{}", ready.text());
    let m = b.get("/metrics").text();
    assert!(
        metric(&m, "sluice_cluster_leases_lost_total", &[]) >= 1.0,
        "{m}"
    );
    assert!(metric(&m, "sluice_cluster_registry_errors_total", &[]) >= 1.0);
    assert_eq!(b.get(PLAYLIST).status, 200, "local copy still served");
    // New publishes are refused while the registry is down.
    let mut refused_pub = ffmpeg_publish(&c.rtmp(STREAM), 20, &[]);
    wait_until(
        "C refuses while Redis is down",
        Duration::from_secs(20),
        || refused_pub.0.try_wait().ok().flatten().is_some(),
    );
    assert!(refused(&c, "registry_unavailable") >= 1.0);

    // Redis is back (empty): B claims the stream again and continues its own numbers.
    redis.restart();
    let last_on_b = last_segment(&b.get(PLAYLIST).text());
    let publisher = publish_accepted(&b, Duration::from_secs(30));
    wait_until(
        "B lists a segment after the restart",
        Duration::from_secs(30),
        || last_segment(&b.get(PLAYLIST).text()) > last_on_b,
    );
    wait_until("B reports ready again", Duration::from_secs(10), || {
        b.get("/readyz").text() == "ready\n"
    });

    // kill -9 of the owner: C takes over once the lease expired; numbers only grow. Meanwhile A
    // is asked for the playlist over and over: the stream was live a moment ago, so A holds
    // each request until C answers (or 503s it at the bound), never a 404.
    let seen = last_segment(&c.get(PLAYLIST).text());
    drop(publisher);
    let _ = b.child.kill(); // SIGKILL
    let _ = b.child.wait();
    let started = Instant::now();
    // Two pollers: of A from the kill (the registry still names the dead owner), and of C (no
    // local copy: it never published the stream) from the lease's expiry (nobody owns the
    // stream; its publisher has not claimed it again yet). Neither may answer 404.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poll = |node: &Sluice| {
        let (stop, base) = (stop.clone(), node.http(""));
        std::thread::spawn(move || {
            let mut statuses = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match http_get(&base, PLAYLIST) {
                    Ok(r) => statuses.push(r.status),
                    Err(e) => panic!("{base} did not answer during the failover: {e}"),
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            statuses
        })
    };
    let from_kill = poll(&a);
    wait_until("B's lease expires", Duration::from_secs(20), || {
        fleet_owner(&a).is_none()
    });
    let from_expiry = poll(&c);
    let _publisher = publish_accepted(&c, Duration::from_secs(30));
    let pl_c = c.wait_for_segments(PLAYLIST, 1, Duration::from_secs(30));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for (what, poller) in [
        ("A, from the kill", from_kill),
        ("C, from the lease expiry", from_expiry),
    ] {
        let statuses = poller.join().expect("a poller");
        eprintln!("fleet: {what}: {statuses:?}");
        assert!(
            !statuses.contains(&404),
            "a 404 while the stream moved to C ({what}): {statuses:?}"
        );
        assert_eq!(
            statuses.last(),
            Some(&200),
            "{what}: no playlist at the end"
        );
    }
    eprintln!(
        "fleet: playlist on a new owner {:?} after kill -9 of the old one",
        started.elapsed()
    );
    assert!(
        media_sequence(&pl_c) > seen,
        "C resumed at {} after {seen} was seen:\n{pl_c}",
        media_sequence(&pl_c)
    );
    assert_eq!(fleet_owner(&a).as_deref(), Some(c.http("").as_str()));
    let via_a = a.wait_for_segments(PLAYLIST, 1, Duration::from_secs(10));
    assert!(media_sequence(&via_a) >= media_sequence(&pl_c));
}

/// The full test: hls.js in Chromium plays through the shipped fleet VCL (round robin
/// over three nodes) while the owner is killed and the publisher reconnects to another node;
/// playback goes on after a stall, with no fatal error. Paced by events, not wall time: the owner
/// is killed once the player has fetched several segments, and the verdict is read from the
/// player's own clock (playback advanced over the last stretch of the run, long after the
/// takeover).
#[test]
fn hlsjs_through_varnish_keeps_playing_when_the_owner_is_killed() {
    if !require("ffmpeg")
        || !require("varnishd")
        || !require("chromium")
        || !test_support::require_tool("redis-server")
        || node_modules().is_none()
    {
        return;
    }
    let redis = RedisServer::start();
    let mut a = node(&redis);
    let b = node(&redis);
    let c = node(&redis);
    let varnish = FleetVarnish::start([a.http_port, b.http_port, c.http_port]);
    let base = format!("http://127.0.0.1:{}", varnish.port);
    let publisher = publish_accepted(&a, Duration::from_secs(20));
    a.wait_for_segments(PLAYLIST, 3, Duration::from_secs(30));
    let url = format!("{base}{PLAYLIST}");
    let run_s = 60;
    let player = std::thread::spawn(move || play_in_browser(&url, run_s, None));
    // Every segment the player fetches through Varnish ends at the owner's edge (a non-owner
    // forwards it there); Varnish fetches each segment once. The first few are the player's
    // start-up buffer, the rest come one per segment duration while it plays.
    let segments_served = |s: &Sluice| {
        metric(
            &s.get("/metrics").text(),
            "sluice_http_requests_total",
            &["route=\"segment\"", "status=\"200\""],
        )
    };
    let before = segments_served(&a);
    wait_until(
        "the player fetched segments from the owner",
        Duration::from_secs(60),
        || segments_served(&a) >= before + 5.0,
    );
    drop(publisher);
    let _ = a.child.kill(); // SIGKILL
    let _ = a.child.wait();
    let killed = Instant::now();
    let _publisher = publish_accepted(&b, Duration::from_secs(30));
    b.wait_for_segments(PLAYLIST, 2, Duration::from_secs(30));
    eprintln!(
        "fleet browser: the new owner listed 2 segments {:?} after the kill",
        killed.elapsed()
    );
    let out = player.join().unwrap();
    let report = &out["report"];
    assert!(
        report["fatal"].as_array().is_some_and(|f| f.is_empty()),
        "fatal hls.js errors: {out}"
    );
    let samples = report["samples"].as_array().expect("samples");
    let at = |s: &serde_json::Value| {
        (
            s["t"].as_f64().unwrap_or(0.0),
            s["currentTime"].as_f64().unwrap_or(0.0),
        )
    };
    let (t_end, played_end) = samples.last().map(at).unwrap_or_default();
    // Playback over the last 15 s of the player's own clock: by then the takeover (the lease
    // expiry, the reconnect and the new owner's first segments) is long over, so a player that
    // kept going has advanced most of that; one that died has not moved.
    let (_, played_before) = samples
        .iter()
        .map(at)
        .rev()
        .find(|(t, _)| *t <= t_end - 15_000.0)
        .unwrap_or_default();
    eprintln!(
        "fleet browser: played {played_end:.1} s in all, {:.1} s in the last 15 s",
        played_end - played_before
    );
    assert!(
        played_before > 2.0,
        "did not play before the last stretch: {out}"
    );
    assert!(
        played_end - played_before > 8.0,
        "playback did not go on after the owner died ({played_before:.1} -> {played_end:.1}): {out}"
    );
}

/// varnishd with docker/varnish/fleet.vcl, its three backends pointed at the test's nodes.
struct FleetVarnish {
    port: u16,
    _proc: Proc,
}

impl FleetVarnish {
    fn start(ports: [u16; 3]) -> FleetVarnish {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("sluice-fleet-varnish-{port}"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut vcl =
            std::fs::read_to_string(repo_root().join("docker/varnish/fleet.vcl")).unwrap();
        for (i, p) in ports.iter().enumerate() {
            let n = i + 1;
            let from = format!(".host = \"sluice{n}\";\n    .port = \"8080\";");
            assert!(vcl.contains(&from), "fleet.vcl backend sluice{n} not found");
            vcl = vcl.replace(
                &from,
                &format!(".host = \"127.0.0.1\";\n    .port = \"{p}\";"),
            );
        }
        let vcl_path = dir.join("fleet.vcl");
        std::fs::write(&vcl_path, vcl).unwrap();
        let child = std::process::Command::new("varnishd")
            .args(["-F", "-n"])
            .arg(&dir)
            .args(["-a", &format!("127.0.0.1:{port}")])
            .arg("-f")
            .arg(&vcl_path)
            .args(["-s", "malloc,64m", "-p", "default_ttl=2"])
            .spawn()
            .expect("start varnishd");
        let v = FleetVarnish {
            port,
            _proc: Proc(child),
        };
        wait_until(
            "varnishd answers through a healthy node",
            Duration::from_secs(30),
            || {
                http_get(&format!("http://127.0.0.1:{port}"), "/healthz")
                    .is_ok_and(|r| r.status == 200)
            },
        );
        v
    }
}
