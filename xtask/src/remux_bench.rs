//! In-process remux throughput: the parsed FLV tags pushed through `remux::Remuxer` on one
//! thread, looped with rebased timestamps, outputs drained as they come; once per container
//! choice (`ts`, `cmaf`, both), with TS and fMP4 bytes per FLV byte (init segments included). Runs inside a release
//! build of xtask (`bench` re-executes itself with `XTASK_BENCH_REMUX_ONLY=1`) because the
//! workspace's dev profile leaves workspace crates unoptimised.
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use remux::{Container, Containers, FlvTag, RemuxConfig, RemuxOutput, Remuxer, TagKind};

use crate::flv::Media;

pub struct RemuxResult {
    pub flv_bytes: u64,
    pub ts_bytes: u64,
    pub cmaf_bytes: u64,
    pub segments: u64,
    pub seconds: f64,
}

pub fn measure(media: &Media, min_time: Duration, containers: Containers) -> Result<RemuxResult> {
    let mut r = Remuxer::new(RemuxConfig {
        containers,
        ..RemuxConfig::default()
    });
    let (mut flv_bytes, mut ts_bytes, mut segments) = (0u64, 0u64, 0u64);
    let cmaf_bytes = std::cell::Cell::new(0u64);
    let mut lap = 0u64;
    let push_lap = |r: &mut Remuxer,
                    lap: u64,
                    count: bool,
                    flv: &mut u64,
                    ts: &mut u64,
                    segs: &mut u64|
     -> Result<()> {
        let base = lap * media.loop_duration_ms as u64;
        if lap == 0 {
            if let Some(m) = &media.metadata {
                r.push(
                    FlvTag {
                        kind: TagKind::Script,
                        timestamp_ms: 0,
                        payload: m.clone(),
                    },
                    0,
                )
                .context("remux push")?;
            }
        }
        for t in &media.tags {
            let ts_ms = (base + t.timestamp_ms as u64) as u32;
            let kind = if t.kind == 8 {
                TagKind::Audio
            } else {
                TagKind::Video
            };
            r.push(
                FlvTag {
                    kind,
                    timestamp_ms: ts_ms,
                    payload: t.payload.clone(),
                },
                ts_ms as u64,
            )
            .context("remux push")?;
            while let Some(o) = r.poll_output() {
                match (&o, count) {
                    (RemuxOutput::Segment(s), true) if s.container == Container::Ts => {
                        *ts += s.len as u64;
                        *segs += 1;
                    }
                    (RemuxOutput::Segment(s), true) => {
                        cmaf_bytes.set(cmaf_bytes.get() + s.len as u64);
                        if !containers.ts {
                            *segs += 1;
                        }
                    }
                    (RemuxOutput::Init(i), true) => {
                        cmaf_bytes.set(cmaf_bytes.get() + i.bytes.len() as u64)
                    }
                    _ => {}
                }
            }
            if count {
                *flv += t.payload.len() as u64;
            }
        }
        Ok(())
    };
    // One untimed lap warms caches and gets past the codec-config wait.
    let (mut a, mut b, mut c) = (0, 0, 0);
    push_lap(&mut r, lap, false, &mut a, &mut b, &mut c)?;
    lap += 1;
    let start = Instant::now();
    while start.elapsed() < min_time {
        push_lap(
            &mut r,
            lap,
            true,
            &mut flv_bytes,
            &mut ts_bytes,
            &mut segments,
        )?;
        lap += 1;
    }
    let seconds = start.elapsed().as_secs_f64();
    r.finish();
    while r.poll_output().is_some() {}
    Ok(RemuxResult {
        flv_bytes,
        ts_bytes,
        cmaf_bytes: cmaf_bytes.get(),
        segments,
        seconds,
    })
}

/// Entry point of the release re-execution: prints one machine-readable line.
pub fn print(root: &std::path::Path) -> Result<()> {
    let media = crate::flv::load(&crate::flv::ensure_source(root)?)?;
    let only = |ts, cmaf| Containers { ts, cmaf };
    let r = measure(&media, Duration::from_secs(3), only(true, false))?;
    let c = measure(&media, Duration::from_secs(3), only(false, true))?;
    let b = measure(&media, Duration::from_secs(3), only(true, true))?;
    println!(
        "remux flv_bytes={} ts_bytes={} segments={} seconds={:.6} cmaf_flv_bytes={} cmaf_bytes={} cmaf_seconds={:.6} both_flv_bytes={} both_seconds={:.6}",
        r.flv_bytes, r.ts_bytes, r.segments, r.seconds, c.flv_bytes, c.cmaf_bytes, c.seconds, b.flv_bytes, b.seconds
    );
    Ok(())
}
