//! Remuxer settings: segment and part targets (RFC 8216bis §4.4.3.1, §4.4.3.7), the containers
//! written, and the bounds on every per-stream buffer.

/// Remuxer settings. `Default` gives the values documented on each field.
#[derive(Clone, Debug)]
pub struct RemuxConfig {
    /// Segment target: cut at the first keyframe at or after this. Default 2000.
    pub target_duration_ms: u32,
    /// LL-HLS part target (`PART-TARGET`): no part is longer. Default 333.
    pub part_target_ms: u32,
    /// Containers written (`hls.containers`). Default both; TS only carries H.264/AAC/MP3.
    pub containers: Containers,
    /// A forward step above, or a backward step below, the stream's latest timestamp by more than
    /// this is a discontinuity. Default 3000 (interleaving differs by ~100 ms; 3 s still tolerates
    /// very low frame rates). Forward jumps larger than the playlist target duration are also
    /// treated as jumps, so no segment can outgrow EXT-X-TARGETDURATION through a gap.
    pub max_timestamp_jump_ms: u32,
    /// A track stepping back by more than this below its own previous DTS is a discontinuity;
    /// smaller steps are absorbed (DTS nudged to previous + 1 tick). Default 500.
    pub backward_tolerance_ms: u32,
    /// Pin EXT-X-TARGETDURATION (publisher reconnecting to an existing playlist). Default None.
    pub fixed_target_duration_s: Option<u32>,
    /// An open segment reaching this size is force-cut. Default 32 MiB.
    pub max_segment_bytes: usize,
    /// Frames larger than this are dropped with an error. Default 8 MiB.
    pub max_frame_bytes: usize,
    /// Frames with more NAL units are dropped with an error. Default 1024.
    pub max_nal_units_per_frame: usize,
    /// Maximum gap between PCRs on the PCR PID while frames are dense enough. Default 40.
    pub pcr_interval_ms: u32,
    /// AAC/MP3 frames grouped into one audio PES. Default 14 (about 300 ms of 48 kHz AAC, as
    /// nginx-rtmp's `hls_max_audio_delay`; hls.js, ffmpeg and Safari accept multi-frame audio
    /// PES). Each PES costs a header and, on average, half a TS packet of stuffing.
    pub audio_frames_per_pes: usize,
    /// How long (media time) to wait for a missing sequence header before the first segment
    /// declares the tracks. Default 1000.
    pub track_wait_ms: u32,
    /// Maximum tags buffered during that wait. Default 512.
    pub track_wait_max_tags: usize,
    /// Maximum payload bytes buffered during that wait. Default 8 MiB.
    pub track_wait_max_bytes: usize,
    /// The video track written: `None` is the default track (track 0, else the lowest id);
    /// `Some(id)` writes that Enhanced RTMP track instead (one remuxer per video track of a
    /// multitrack publish makes one rendition each; audio stays the default track). Default None.
    pub video_track: Option<u8>,
    /// The audio track written, as `video_track` (`None`: the default audio track). Default None.
    pub audio_track: Option<u8>,
    /// Which media are written. Default [`MediaSelection::Both`].
    pub media: MediaSelection,
}

/// Which media a remuxer writes: the renditions of a multitrack publish with an audio group are
/// video-only (`EXT-X-STREAM-INF` with `AUDIO=`) and audio-only (`EXT-X-MEDIA:TYPE=AUDIO`,
/// RFC 8216bis §4.4.6.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MediaSelection {
    /// Video and audio muxed (the default).
    #[default]
    Both,
    /// Video only: audio tags are ignored.
    VideoOnly,
    /// Audio only. The selected video track's keyframes still decide where segments start and
    /// end (the first audio frame at or after each keyframe is the only place a segment may
    /// begin), so segment N covers the same media time as segment N of the video renditions
    /// cut on those keyframes, within one audio frame; without video, every audio frame is one.
    AudioOnly,
}

impl Default for RemuxConfig {
    fn default() -> Self {
        RemuxConfig {
            target_duration_ms: 2000,
            part_target_ms: 333,
            containers: Containers::default(),
            max_timestamp_jump_ms: 3000,
            backward_tolerance_ms: 500,
            fixed_target_duration_s: None,
            max_segment_bytes: 32 << 20,
            max_frame_bytes: 8 << 20,
            max_nal_units_per_frame: 1024,
            pcr_interval_ms: 40,
            audio_frames_per_pes: 14,
            track_wait_ms: 1000,
            track_wait_max_tags: 512,
            track_wait_max_bytes: 8 << 20,
            video_track: None,
            audio_track: None,
            media: MediaSelection::Both,
        }
    }
}

/// Which containers a stream is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Containers {
    /// MPEG-TS (`index.m3u8` for H.264 / AAC / MP3 streams).
    pub ts: bool,
    /// fMP4 / CMAF (`cmaf.m3u8`, and `index.m3u8` for every other codec).
    pub cmaf: bool,
}

impl Default for Containers {
    fn default() -> Self {
        Containers {
            ts: true,
            cmaf: true,
        }
    }
}
