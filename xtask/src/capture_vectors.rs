//! `cargo xtask capture-vectors`: records what real RTMP publishers send, the handshake (RTMP
//! §5.2) and the chunk stream that follows (RTMP §5.3), into `crates/rtmp-ingest/testdata/`.
//!
//! The recorder is the project's own sans-IO [`Session`] over one blocking TCP connection: it
//! answers the handshake with fixed random bytes ([`test_support::rtmp::capture_random`], which
//! the golden tests use again, so C2 can be checked on replay), accepts the publish and records
//! every byte the client sends until it closes. Each publisher encodes about two seconds of
//! low-resolution lavfi / test-source video and a sine tone, so every file stays small.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rtmp_ingest::session::{Session, SessionEvent};
use rtmp_ingest::IngestConfig;

/// Largest recording kept: a vector is a golden input, not a media file.
const MAX_RECORDING_BYTES: usize = 96 * 1024;
/// How long a publisher may take to connect, and to finish once connected.
const PUBLISHER_DEADLINE: Duration = Duration::from_secs(60);

/// One publisher: the file it is recorded to and the command line (`{url}` is replaced by the
/// recorder's `rtmp://127.0.0.1:PORT/live/...` URL).
struct Publisher {
    file: &'static str,
    program: String,
    args: Vec<String>,
}

fn split(line: &str) -> Vec<String> {
    line.split_whitespace().map(str::to_owned).collect()
}

fn publishers(ffmpeg9: Option<String>) -> Vec<Publisher> {
    // Bit-exact, single-threaded encodes at 10 fps: the same command gives the same tags.
    let ffmpeg_common = "-hide_banner -loglevel error -fflags +bitexact \
        -f lavfi -i testsrc=size=160x90:rate=10 -f lavfi -i sine=frequency=440:sample_rate=44100 \
        -t 2 -threads 1 -g 10 -flags:v +bitexact -flags:a +bitexact";
    let gst_video = "videotestsrc num-buffers=20 ! video/x-raw,width=160,height=90,framerate=10/1 \
        ! x264enc bitrate=64 key-int-max=10 speed-preset=ultrafast threads=1 ! h264parse \
        ! flvmux name=m streamable=true";
    let gst_audio = "audiotestsrc num-buffers=86 ! audio/x-raw,rate=44100,channels=1 \
        ! audioconvert ! avenc_aac ! aacparse ! m.";
    let mut out = vec![
        Publisher {
            file: "ffmpeg-5.1-h264-aac.rtmp",
            program: "ffmpeg".into(),
            args: split(&format!(
                "{ffmpeg_common} -c:v libx264 -preset ultrafast -b:v 64k -c:a aac -b:a 32k \
                 -f flv {{url}}/ffmpeg?key=secret"
            )),
        },
        Publisher {
            file: "gstreamer-rtmp2sink-h264-aac.rtmp",
            program: "gst-launch-1.0".into(),
            args: split(&format!(
                "-q {gst_video} ! rtmp2sink location={{url}}/gst2 {gst_audio}"
            )),
        },
        Publisher {
            file: "librtmp-gstreamer-rtmpsink-h264-aac.rtmp",
            program: "gst-launch-1.0".into(),
            args: split(&format!(
                "-q {gst_video} ! rtmpsink location={{url}}/librtmp {gst_audio}"
            )),
        },
    ];
    if let Some(ffmpeg9) = ffmpeg9 {
        out.push(Publisher {
            file: "ffmpeg-9-hevc-opus-enhanced.rtmp",
            program: ffmpeg9,
            args: split(&format!(
                "{ffmpeg_common} -c:v libx265 -preset ultrafast -b:v 64k \
                 -x265-params log-level=none:pools=1:frame-threads=1 \
                 -c:a libopus -b:a 32k -ar 48000 -f flv {{url}}/ffmpeg9"
            )),
        });
    }
    out
}

pub fn run(root: &Path) -> Result<()> {
    let dir = root.join("crates/rtmp-ingest/testdata");
    std::fs::create_dir_all(&dir)?;
    let ffmpeg9 = test_support::find_ffmpeg9().map(|p| p.to_string_lossy().into_owned());
    if ffmpeg9.is_none() {
        eprintln!(
            "xtask: FFmpeg 9 not found ($FFMPEG9 or imageio_ffmpeg): its vector is not re-recorded"
        );
    }
    for p in publishers(ffmpeg9) {
        let bytes = capture(&p).with_context(|| format!("recording {}", p.file))?;
        std::fs::write(dir.join(p.file), &bytes)?;
        eprintln!("xtask: wrote {} ({} bytes)", p.file, bytes.len());
    }
    Ok(())
}

/// Runs one publisher against the recorder; returns what it sent.
fn capture(p: &Publisher) -> Result<Vec<u8>> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let url = format!("rtmp://{}/live", listener.local_addr()?);
    let args: Vec<String> = p.args.iter().map(|a| a.replace("{url}", &url)).collect();
    eprintln!("xtask: $ {} {}", p.program, args.join(" "));
    let mut child = Command::new(&p.program)
        .args(&args)
        .stdin(Stdio::null())
        .spawn()
        .with_context(|| format!("could not start {}", p.program))?;
    let recorded = accept(&listener, &mut child).and_then(record);
    let status = wait(&mut child)?;
    let recorded = recorded?;
    if !status.success() {
        bail!("{} exited with {status}", p.program);
    }
    Ok(recorded)
}

fn accept(listener: &TcpListener, child: &mut std::process::Child) -> Result<TcpStream> {
    listener.set_nonblocking(true)?;
    let deadline = Instant::now() + PUBLISHER_DEADLINE;
    loop {
        match listener.accept() {
            Ok((sock, _)) => {
                sock.set_nonblocking(false)?;
                return Ok(sock);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => return Err(e.into()),
        }
        if let Some(status) = child.try_wait()? {
            bail!("publisher exited with {status} before connecting");
        }
        if Instant::now() > deadline {
            bail!("publisher never connected");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Serves one publish with the project's own session, recording the client's bytes.
pub(crate) fn record(mut sock: TcpStream) -> Result<Vec<u8>> {
    sock.set_read_timeout(Some(PUBLISHER_DEADLINE))?;
    let mut session = Session::with_random(
        1,
        Arc::new(IngestConfig::default()),
        Instant::now(),
        test_support::rtmp::capture_random(),
    );
    let mut recorded = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match sock.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            // A publisher that resets after its last message has still sent everything.
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) => return Err(e).context("reading from the publisher"),
        };
        let keep = n.min(MAX_RECORDING_BYTES.saturating_sub(recorded.len()));
        recorded.extend_from_slice(&buf[..keep]);
        session
            .handle_input(Instant::now(), &buf[..n])
            .context("the session refused the publisher's bytes")?;
        let mut close = false;
        while let Some(ev) = session.poll_event() {
            match ev {
                SessionEvent::PublishRequested(_) => session.accept_publish(Instant::now())?,
                SessionEvent::CloseRequested { reason } => {
                    eprintln!("xtask: session closes: {reason}");
                    close = true;
                }
                _ => {}
            }
        }
        while let Some(out) = session.poll_transmit() {
            sock.write_all(&out)?;
        }
        if close {
            break;
        }
    }
    if recorded.len() >= MAX_RECORDING_BYTES {
        eprintln!("xtask: recording truncated at {MAX_RECORDING_BYTES} bytes");
    }
    Ok(recorded)
}

fn wait(child: &mut std::process::Child) -> Result<std::process::ExitStatus> {
    let deadline = Instant::now() + PUBLISHER_DEADLINE;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!("publisher did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
