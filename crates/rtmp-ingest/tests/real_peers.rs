//! Real publishers (ffmpeg, GStreamer rtmp2sink/rtmpsink) against `server::serve` on 127.0.0.1:0.
//! A missing tool is a recorded skip (`test_support`), or a failure when `CI` is set.

use std::collections::{HashMap, HashSet};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rtmp_ingest::flv_tag::{AudioCodec, Codec, TagInfo, VideoCodec};
use rtmp_ingest::{
    server, CloseReason, IngestConfig, IngestHandler, IngestTag, MediaSink, PublishRefusal,
    PublishRequest, PublishSummary, TagKind,
};
use tokio_util::sync::CancellationToken;

#[derive(Clone, Default)]
struct Recorded {
    params: Vec<(String, String)>,
    app: String,
    tags: Vec<(TagKind, u32, Option<TagInfo>, usize)>,
    closed: Vec<PublishSummary>,
}

#[derive(Default)]
struct Recorder {
    live: Mutex<HashSet<String>>,
    streams: Mutex<HashMap<String, Arc<Mutex<Recorded>>>>,
    refused: Mutex<Vec<String>>,
    kicks: Mutex<HashMap<String, CancellationToken>>,
}

struct Sink {
    name: String,
    rec: Arc<Mutex<Recorded>>,
    handler: Arc<Recorder>,
}

struct Handler(Arc<Recorder>);

impl IngestHandler for Handler {
    type Sink = Sink;
    type PlayGuard = ();
    async fn authorize_play(
        &self,
        _request: rtmp_ingest::PlayRequest,
    ) -> Result<rtmp_ingest::PlayAccepted<()>, rtmp_ingest::PlayRefusal> {
        Err(rtmp_ingest::PlayRefusal::NotFound("no such stream".into()))
    }
    async fn authorize(&self, request: PublishRequest) -> Result<Sink, PublishRefusal> {
        if !self.0.live.lock().unwrap().insert(request.stream.clone()) {
            self.0.refused.lock().unwrap().push(request.stream.clone());
            return Err(PublishRefusal::BadName(
                "stream is already being published".into(),
            ));
        }
        self.0
            .kicks
            .lock()
            .unwrap()
            .insert(request.stream.clone(), request.kick.clone());
        let rec = Arc::new(Mutex::new(Recorded {
            params: request.params,
            app: request.app,
            ..Recorded::default()
        }));
        self.0
            .streams
            .lock()
            .unwrap()
            .insert(request.stream.clone(), rec.clone());
        Ok(Sink {
            name: request.stream,
            rec,
            handler: self.0.clone(),
        })
    }
}

impl MediaSink for Sink {
    fn on_tag(&mut self, tag: IngestTag) {
        self.rec.lock().unwrap().tags.push((
            tag.kind,
            tag.timestamp_ms,
            tag.info,
            tag.payload.len(),
        ));
    }
    fn on_close(self, summary: PublishSummary) {
        self.handler.live.lock().unwrap().remove(&self.name);
        self.rec.lock().unwrap().closed.push(summary);
    }
}

fn have_tool(tool: &str, probe: &[&str]) -> bool {
    test_support::require_command(tool, probe)
}

async fn start() -> (
    u16,
    Arc<Recorder>,
    CancellationToken,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let rec = Arc::new(Recorder::default());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(server::serve(
        listener,
        IngestConfig::default(),
        Arc::new(Handler(rec.clone())),
        shutdown.clone(),
    ));
    (port, rec, shutdown, task)
}

async fn run(cmd: &'static str, args: Vec<String>) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        Command::new(cmd)
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn ffmpeg_args(port: u16, path: &str, seconds: u32, extra: &[&str]) -> Vec<String> {
    let realtime = extra.contains(&"-re");
    let extra: Vec<&str> = extra.iter().copied().filter(|a| *a != "-re").collect();
    let mut a: Vec<String> = if realtime {
        vec!["-re".to_string()]
    } else {
        Vec::new()
    };
    a.extend(
        [
            "-hide_banner",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=25",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-bf",
            "2",
            "-g",
            "50",
            "-c:a",
            "aac",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    a.extend(["-t".to_string(), seconds.to_string()]);
    a.extend(extra.iter().map(|s| s.to_string()));
    a.extend([
        "-f".to_string(),
        "flv".to_string(),
        format!("rtmp://127.0.0.1:{port}/{path}"),
    ]);
    a
}

async fn wait_closed(rec: &Arc<Recorder>, name: &str) -> Arc<Mutex<Recorded>> {
    for _ in 0..100 {
        if let Some(r) = rec.streams.lock().unwrap().get(name).cloned() {
            if !r.lock().unwrap().closed.is_empty() {
                return r;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("stream {name} was not closed");
}

/// Checks order and plausibility; returns the video timestamps.
fn check_stream(r: &Recorded, min_video: usize, want_audio: bool) -> Vec<u32> {
    let video: Vec<_> = r.tags.iter().filter(|t| t.0 == TagKind::Video).collect();
    let audio: Vec<_> = r
        .tags
        .iter()
        .filter(|t| t.0 == TagKind::Audio && t.3 > 0)
        .collect();
    assert!(video.len() >= min_video, "{} video tags", video.len());
    let first_v = video[0].2.expect("video info");
    assert!(
        first_v.is_sequence_header && first_v.codec == Codec::Video(VideoCodec::Avc),
        "{first_v:?}"
    );
    assert!(video[1].2.unwrap().is_keyframe, "first frame is a keyframe");
    if want_audio {
        let first_a = audio.first().expect("audio tags").2.expect("audio info");
        assert!(
            first_a.is_sequence_header && first_a.codec == Codec::Audio(AudioCodec::Aac),
            "{first_a:?}"
        );
        let a_ts: Vec<u32> = audio.iter().map(|t| t.1).collect();
        assert!(
            a_ts.windows(2).all(|w| w[1] >= w[0]),
            "audio timestamps monotonic"
        );
    }
    let v_ts: Vec<u32> = video.iter().map(|t| t.1).collect();
    assert!(
        v_ts.windows(2).all(|w| w[1] >= w[0]),
        "video timestamps monotonic: {v_ts:?}"
    );
    let closed = &r.closed;
    assert_eq!(closed.len(), 1, "on_close exactly once");
    assert!(
        matches!(
            closed[0].reason,
            CloseReason::Unpublished | CloseReason::Disconnected
        ),
        "{:?}",
        closed[0].reason
    );
    v_ts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_publish() {
    if !have_tool("ffmpeg", &["-version"]) {
        return;
    }
    let (port, rec, shutdown, task) = start().await;
    let out = run("ffmpeg", ffmpeg_args(port, "live/test?key=secret", 4, &[])).await;
    assert!(
        out.status.success(),
        "ffmpeg failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = wait_closed(&rec, "test").await;
    let r = r.lock().unwrap().clone();
    assert_eq!(r.app, "live");
    assert_eq!(r.params, vec![("key".to_string(), "secret".to_string())]);
    assert_eq!(r.tags[0].0, TagKind::Script, "onMetaData first");
    let v_ts = check_stream(&r, 95, true);
    let steps: Vec<u32> = v_ts[1..].windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        steps.iter().all(|d| *d == 40 || *d == 0),
        "25 fps DTS steps as sent: {steps:?}"
    );
    eprintln!(
        "ffmpeg: {} tags, summary {:?}",
        r.tags.len(),
        r.closed[0].video_tags
    );
    shutdown.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_timestamps_cross_the_extended_boundary() {
    if !have_tool("ffmpeg", &["-version"]) {
        return;
    }
    let (port, rec, shutdown, task) = start().await;
    let out = run(
        "ffmpeg",
        ffmpeg_args(port, "live/ext", 3, &["-output_ts_offset", "16777"]),
    )
    .await;
    assert!(
        out.status.success(),
        "ffmpeg failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = wait_closed(&rec, "ext").await;
    let r = r.lock().unwrap().clone();
    let v_ts = check_stream(&r, 70, true);
    assert!(
        v_ts[1] >= 16_776_000 && *v_ts.last().unwrap() > 0xFF_FFFF,
        "crosses 2^24 ms: {:?}",
        (v_ts[1], v_ts.last())
    );
    assert!(
        v_ts[1..].windows(2).all(|w| w[1] - w[0] <= 40),
        "continuous across 0xFFFFFF"
    );
    shutdown.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_publisher_to_the_same_name_is_refused() {
    if !have_tool("ffmpeg", &["-version"]) {
        return;
    }
    let (port, rec, shutdown, task) = start().await;
    let first = tokio::spawn(run("ffmpeg", ffmpeg_args(port, "live/dup", 4, &["-re"])));
    let mut live = false;
    for _ in 0..100 {
        live = rec.live.lock().unwrap().contains("dup");
        if live {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(live, "first publisher went live");
    let second = run("ffmpeg", ffmpeg_args(port, "live/dup", 1, &[])).await;
    eprintln!(
        "second publisher: {:?} {}",
        second.status,
        String::from_utf8_lossy(&second.stderr)
    );
    assert!(!second.status.success(), "second publisher must be refused");
    assert_eq!(rec.refused.lock().unwrap().as_slice(), ["dup".to_string()]);
    let first = first.await.unwrap();
    assert!(
        first.status.success(),
        "first publisher unharmed: {}",
        String::from_utf8_lossy(&first.stderr)
    );
    let r = wait_closed(&rec, "dup").await;
    check_stream(&r.lock().unwrap(), 95, true);
    shutdown.cancel();
    task.await.unwrap().unwrap();
}

async fn gst(sink: &str, name: &str) {
    if !have_tool("gst-inspect-1.0", &[sink]) || !have_tool("gst-inspect-1.0", &["x264enc"]) {
        return;
    }
    // A choice between two encoders, not a requirement: probe without the gate.
    let has_avenc_aac = Command::new("gst-inspect-1.0")
        .arg("avenc_aac")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let aac = if has_avenc_aac {
        "avenc_aac"
    } else {
        "voaacenc"
    };
    let (port, rec, shutdown, task) = start().await;
    let pipeline = format!(
        "videotestsrc num-buffers=100 ! video/x-raw,framerate=25/1 ! x264enc ! h264parse ! flvmux name=m streamable=true ! \
         {sink} location=rtmp://127.0.0.1:{port}/live/{name} \
         audiotestsrc num-buffers=150 ! audioconvert ! {aac} ! aacparse ! m."
    );
    let args: Vec<String> = std::iter::once("-q".to_string())
        .chain(pipeline.split_whitespace().map(str::to_owned))
        .collect();
    let out = run("gst-launch-1.0", args).await;
    assert!(
        out.status.success(),
        "gst-launch failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let r = wait_closed(&rec, name).await;
    let r = r.lock().unwrap().clone();
    check_stream(&r, 95, true);
    shutdown.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gstreamer_rtmp2sink() {
    gst("rtmp2sink", "gst2").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gstreamer_rtmpsink() {
    gst("rtmpsink", "gst1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kick_and_shutdown_close_the_publish() {
    if !have_tool("ffmpeg", &["-version"]) {
        return;
    }
    let (port, rec, shutdown, task) = start().await;
    let kicked = tokio::spawn(run(
        "ffmpeg",
        ffmpeg_args(port, "live/kickme", 20, &["-re"]),
    ));
    let stopped = tokio::spawn(run(
        "ffmpeg",
        ffmpeg_args(port, "live/stopme", 20, &["-re"]),
    ));
    for _ in 0..100 {
        if rec.live.lock().unwrap().len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let kick = rec
        .kicks
        .lock()
        .unwrap()
        .get("kickme")
        .cloned()
        .expect("kick token");
    kick.cancel();
    let r = wait_closed(&rec, "kickme").await;
    let closed = r.lock().unwrap().closed.clone();
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0].reason, CloseReason::Kicked);
    assert!(closed[0].video_tags > 0);
    let _ = kicked.await;
    let other = rec
        .streams
        .lock()
        .unwrap()
        .get("stopme")
        .cloned()
        .expect("stopme live");
    assert!(
        other.lock().unwrap().closed.is_empty(),
        "the other publisher is untouched by the kick"
    );
    shutdown.cancel();
    task.await.unwrap().unwrap();
    let closed = other.lock().unwrap().closed.clone();
    assert_eq!(closed.len(), 1, "on_close once, before serve returns");
    assert_eq!(closed[0].reason, CloseReason::Shutdown);
    let _ = stopped.await;
}
