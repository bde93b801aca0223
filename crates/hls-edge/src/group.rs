//! Groups of renditions and their multivariant playlists (RFC 8216bis draft-pantos-hls-rfc8216bis
//! §4.4.6.2 `EXT-X-STREAM-INF`, §4.4.6.3 `EXT-X-I-FRAME-STREAM-INF`, §6.2.4
//! variant streams), plus the sibling list LL-HLS needs for `EXT-X-RENDITION-REPORT`
//! (§4.4.5.4).
//!
//! A group is named `app/NAME`; its members are ordinary streams of the store:
//! * **Suffix groups** (`EdgeConfig::variant_suffixes`, e.g. `_hi`, `_mid`, `_lo`): the
//!   publishes `app/NAME_hi`, `app/NAME_mid`... are the renditions of `app/NAME`.
//! * **Multitrack groups**: the binary writes video track `K` of a multitrack publish, video
//!   only, to `app/NAME~vK` ([`track_stream_name`]) and audio track `K`, audio only, to
//!   `app/NAME~aK`; the audio renditions form one `EXT-X-MEDIA:TYPE=AUDIO` group (§4.4.6.1)
//!   that every video variant names with `AUDIO=`. The binary refuses publish names of those
//!   forms, so they cannot collide with a real publish, and they fit the `/{app}/{stream}/{file}`
//!   routes.
//!
//! While a group has members, `/{app}/NAME/index.m3u8` is its multivariant playlist (each
//! member's `index.m3u8`, i.e. its primary container) and `/{app}/NAME/cmaf.m3u8` the CMAF one
//! (each member's `cmaf.m3u8`); a stream actually published as `NAME` is shadowed meanwhile.
//!
//! ```text
//! #EXTM3U
//! #EXT-X-VERSION:3                      (6 for the CMAF one, as its media playlists)
//! #EXT-X-STREAM-INF:BANDWIDTH=3100000,AVERAGE-BANDWIDTH=2900000,CODECS="avc1.64001f,mp4a.40.2",RESOLUTION=1280x720,FRAME-RATE=30.000
//! ../cam_mid/index.m3u8                 first: the start rendition (see below)
//! #EXT-X-STREAM-INF:BANDWIDTH=6200000,...
//! ../cam_hi/index.m3u8                  then the others, highest bandwidth first
//! ...
//! #EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=120000,CODECS="avc1.64001f",RESOLUTION=1280x720,URI="../cam_mid/iframes.m3u8"
//! ...                                   one per member with keyframe ranges, same order
//! ```
//!
//! Decisions (see also `docs/ARCHITECTURE.md`):
//! * Membership: a rendition is listed once its playlist lists a segment, while it is live or
//!   in its grace period (so a reconnect within the grace period keeps it listed); ended
//!   renditions are listed only when no member is live (then the players find `ENDLIST`), and a
//!   removed one leaves. The group goes when its last member leaves.
//! * Rendering happens once per change of what the playlist says (members, codecs, resolution,
//!   frame rate, bandwidths rounded up to two significant digits so it does not change with
//!   every segment), into `Bytes` plus a gzip copy, with an ETag, like the media playlists.
//! * `BANDWIDTH` is the member's peak segment bitrate measured from the segments stored (in a
//!   suffix group the audio is muxed in every rendition; in a multitrack group the bitrate of
//!   the largest audio rendition is added, as the variant plays with it), `AVERAGE-BANDWIDTH`
//!   the average over its listed segments.
//! * Order: the first listed variant is the start rendition players use before they measured
//!   anything (hls.js, AVPlayer): the median bandwidth one (the middle of a three-step ladder,
//!   the lower of two), then the rest highest first, so a player starts on a safe middle and the
//!   list reads top-down otherwise.
//! * Numbering and alignment: media sequence numbers stay per rendition (they only ever grow,
//!   across reconnects, and are never re-assigned). Renditions published at the same time by
//!   one encoder start at the same number and so line up; alignment is judged by media time:
//!   the producer reports each segment's first timestamp ([`crate::StreamHandle::
//!   report_segment_start`]), and a segment whose start differs by more than one frame from a
//!   sibling's segment of the same number and container is counted as misaligned (log line,
//!   `sluice_hls_rendition_misaligned_total{app,group,rendition}`, API). This presumes the
//!   renditions share one timeline (one encoder's ladder, or one multitrack publish).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use bytes::Bytes;
use serde::Serialize;

use crate::body::RenderedPlaylist;
use crate::media::{Bandwidth, Container, PerContainer, StreamInfo};
use crate::stream::{StreamState, StreamSummary};

/// Marker between a multitrack publish's name and a video track id in a rendition's stream name.
pub const TRACK_MARKER: &str = "~v";
/// Marker between a multitrack publish's name and an audio track id (`NAME~aK`, an
/// `EXT-X-MEDIA:TYPE=AUDIO` rendition of the group).
pub const AUDIO_TRACK_MARKER: &str = "~a";
/// `GROUP-ID` of a multitrack publish's audio renditions.
pub const AUDIO_GROUP_ID: &str = "audio";

/// Segment starts remembered per member and container, to compare with siblings.
const ALIGNMENT_HISTORY: usize = 16;

/// The stream name of video track `track_id` of the multitrack publish `stream`: `NAME~vK`.
pub fn track_stream_name(stream: &str, track_id: u8) -> String {
    format!("{stream}{TRACK_MARKER}{track_id}")
}

/// The stream name of audio track `track_id` of the multitrack publish `stream`: `NAME~aK`.
pub fn audio_track_stream_name(stream: &str, track_id: u8) -> String {
    format!("{stream}{AUDIO_TRACK_MARKER}{track_id}")
}

/// True for names of the form `NAME~vK` or `NAME~aK` (K a canonical decimal 0..=255): reserved
/// for the renditions of multitrack publishes; the binary refuses publishes with such names.
pub fn is_track_stream_name(stream: &str) -> bool {
    parse_track_name(stream).is_some() || parse_audio_track_name(stream).is_some()
}

fn parse_track_name(stream: &str) -> Option<(&str, u8)> {
    parse_marked(stream, TRACK_MARKER)
}

fn parse_audio_track_name(stream: &str) -> Option<(&str, u8)> {
    parse_marked(stream, AUDIO_TRACK_MARKER)
}

fn parse_marked<'a>(stream: &'a str, marker: &str) -> Option<(&'a str, u8)> {
    let at = stream.rfind(marker)?;
    let (name, digits) = (&stream[..at], &stream[at + marker.len()..]);
    let canonical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits.len() == 1 || !digits.starts_with('0'));
    if name.is_empty() || !canonical {
        return None;
    }
    Some((name, digits.parse().ok()?))
}

/// How a group was formed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupKind {
    /// Separate publishes named `NAME` + one of `hls.variant_suffixes`.
    Suffix,
    /// The video tracks of one multitrack publish (`NAME~vK`).
    Multitrack,
}

/// What a multivariant playlist says about one member, compared to decide whether to re-render.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct MemberMedia {
    pub info: StreamInfo,
    pub bandwidth: Bandwidth,
    /// Of its I-frame playlist; zero when it has none.
    pub iframe_bandwidth: Bandwidth,
}

/// One member as the group sees it, taken from its stream summary after each change.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct MemberSnapshot {
    pub state: StreamState,
    pub target_duration_s: u32,
    pub primary: Option<Container>,
    /// `Some` when that container's playlist lists a segment.
    pub media: PerContainer<Option<MemberMedia>>,
}

impl MemberSnapshot {
    /// `None` when the stream is removed or lists nothing yet (not a member).
    pub fn from_summary(s: Option<&StreamSummary>) -> Option<Self> {
        let s = s?;
        let media = s.containers.map(|_, r| {
            (r.segments > 0).then(|| MemberMedia {
                info: r.info.clone(),
                bandwidth: Bandwidth {
                    peak_bps: round_up_2_digits(r.bandwidth.peak_bps),
                    average_bps: round_up_2_digits(r.bandwidth.average_bps),
                },
                iframe_bandwidth: Bandwidth {
                    peak_bps: round_up_2_digits(r.iframe_bandwidth.peak_bps),
                    average_bps: round_up_2_digits(r.iframe_bandwidth.average_bps),
                },
            })
        });
        if media.ts.is_none() && media.cmaf.is_none() {
            return None;
        }
        Some(Self {
            state: s.state,
            target_duration_s: s.target_duration_s.unwrap_or(1),
            primary: s.primary_container,
            media,
        })
    }

    fn primary_media(&self) -> Option<(Container, &MemberMedia)> {
        let c = self.primary?;
        Some((c, self.media[c].as_ref()?))
    }
}

/// Rounds up to two significant decimal digits (3_140_000 -> 3_200_000): a bandwidth that
/// only moves a little does not change the playlist.
pub(crate) fn round_up_2_digits(v: u64) -> u64 {
    let mut scale = 1u64;
    while v / scale >= 100 {
        scale *= 10;
    }
    v.div_ceil(scale).saturating_mul(scale)
}

/// One rendition of a group, as [`render_multivariant`] lists it.
pub(crate) struct Variant<'a> {
    pub stream: &'a str,
    pub media: &'a MemberMedia,
}

/// Orders variants: the median bandwidth first, then the others highest bandwidth first (ties
/// by name).
pub(crate) fn order_variants(v: &mut [Variant<'_>]) {
    v.sort_by(|a, b| {
        (b.media.bandwidth.peak_bps, a.stream).cmp(&(a.media.bandwidth.peak_bps, b.stream))
    });
    if !v.is_empty() {
        let median = v.len() / 2;
        v[..=median].rotate_right(1);
    }
}

/// The multivariant playlist text for `file` (`index.m3u8` or `cmaf.m3u8`) listing `variants`
/// in the order given, with `audio` as their `EXT-X-MEDIA` audio group (lowest track first).
pub(crate) fn render_multivariant(
    file: &str,
    cmaf: bool,
    variants: &[Variant<'_>],
    audio: &[AudioRendition<'_>],
) -> String {
    let mut s = String::with_capacity(64 + (variants.len() + audio.len()) * 160);
    let version = if cmaf { 6 } else { 3 };
    let _ = write!(s, "#EXTM3U\n#EXT-X-VERSION:{version}\n");
    write_audio_media(&mut s, file, audio);
    // A variant's BANDWIDTH covers its largest audio rendition too (§4.4.6.2), and CODECS
    // lists every codec of the variant including its audio group's.
    let audio_peak = audio
        .iter()
        .map(|a| a.media.bandwidth.peak_bps)
        .max()
        .unwrap_or(0);
    let audio_avg = audio
        .iter()
        .map(|a| a.media.bandwidth.average_bps)
        .max()
        .unwrap_or(0);
    let mut audio_codecs: Vec<&str> = Vec::new();
    for a in audio {
        for c in a.media.info.codecs.as_deref().unwrap_or("").split(',') {
            if !c.is_empty() && !audio_codecs.contains(&c) {
                audio_codecs.push(c);
            }
        }
    }
    for v in variants {
        let bw = v.media.bandwidth;
        let peak = bw.peak_bps.saturating_add(audio_peak);
        let _ = write!(s, "#EXT-X-STREAM-INF:BANDWIDTH={}", peak.max(1));
        if bw.average_bps > 0 {
            let avg = bw.average_bps.saturating_add(audio_avg);
            let _ = write!(s, ",AVERAGE-BANDWIDTH={}", avg.min(peak));
        }
        let mut codecs: Vec<&str> = v.media.info.codecs.as_deref().map_or(Vec::new(), |c| {
            c.split(',').filter(|c| !c.is_empty()).collect()
        });
        for c in &audio_codecs {
            if !codecs.contains(c) {
                codecs.push(c);
            }
        }
        if !codecs.is_empty() {
            let _ = write!(s, ",CODECS=\"{}\"", codecs.join(","));
        }
        if let Some(video) = &v.media.info.video {
            if video.width > 0 && video.height > 0 {
                let _ = write!(s, ",RESOLUTION={}x{}", video.width, video.height);
            }
            if let Some(fps) = video.frame_rate.filter(|f| f.is_finite() && *f > 0.0) {
                let _ = write!(s, ",FRAME-RATE={fps:.3}");
            }
        }
        if !audio.is_empty() {
            let _ = write!(s, ",AUDIO=\"{AUDIO_GROUP_ID}\"");
        }
        let _ = write!(s, "\n../{}/{file}\n", v.stream);
    }
    // I-frame streams (§4.4.6.3), in the same order, for the members that have one.
    let iframes = crate::iframes::iframe_playlist_name(cmaf.then_some(Container::Cmaf));
    for v in variants {
        let bw = v.media.iframe_bandwidth;
        let Some(video) = v.media.info.video.as_ref().filter(|_| bw.peak_bps > 0) else {
            continue;
        };
        let _ = write!(s, "#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH={}", bw.peak_bps);
        if bw.average_bps > 0 {
            let _ = write!(s, ",AVERAGE-BANDWIDTH={}", bw.average_bps.min(bw.peak_bps));
        }
        if let Some(codecs) = &v.media.info.codecs {
            let video_codecs = crate::iframes::video_codecs(codecs);
            if !video_codecs.is_empty() {
                let _ = write!(s, ",CODECS=\"{video_codecs}\"");
            }
        }
        if video.width > 0 && video.height > 0 {
            let _ = write!(s, ",RESOLUTION={}x{}", video.width, video.height);
        }
        let _ = writeln!(s, ",URI=\"../{}/{iframes}\"", v.stream);
    }
    s
}

/// An audio rendition of a multitrack group, as `EXT-X-MEDIA:TYPE=AUDIO` lists it.
pub(crate) struct AudioRendition<'a> {
    pub stream: &'a str,
    pub track_id: u8,
    pub media: &'a MemberMedia,
}

/// The `EXT-X-MEDIA` lines of the audio group (RFC 8216bis §4.4.6.1), lowest track id first;
/// the first is `DEFAULT=YES`.
fn write_audio_media(s: &mut String, file: &str, audio: &[AudioRendition<'_>]) {
    for (i, a) in audio.iter().enumerate() {
        let info = a.media.info.audio.as_ref();
        let name = info
            .and_then(|x| x.name.clone())
            .unwrap_or_else(|| format!("Audio {}", a.track_id));
        let _ = write!(
            s,
            "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"{AUDIO_GROUP_ID}\",NAME=\"{}\"",
            name.replace(['"', '\n', '\r'], "")
        );
        if let Some(lang) = info.and_then(|x| x.language.as_deref()) {
            let _ = write!(s, ",LANGUAGE=\"{}\"", lang.replace(['"', '\n', '\r'], ""));
        }
        let default = if i == 0 { "YES" } else { "NO" };
        let _ = write!(s, ",DEFAULT={default},AUTOSELECT=YES");
        if let Some(ch) = info.map(|x| x.channels).filter(|c| *c > 0) {
            let _ = write!(s, ",CHANNELS=\"{ch}\"");
        }
        let _ = writeln!(s, ",URI=\"../{}/{file}\"", a.stream);
    }
}

/// A sibling rendition for LL-HLS `EXT-X-RENDITION-REPORT` (RFC 8216bis §4.4.5.4).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RenditionReport {
    /// The sibling's media playlist, relative to the asking rendition's media playlist
    /// (`../NAME_lo/cmaf.m3u8`), the same URI the multivariant playlist lists.
    pub uri: String,
    /// Media sequence number of the sibling's last listed segment (`LAST-MSN`).
    pub last_msn: u64,
}

/// What the API shows about one member.
#[derive(Clone, Debug, Serialize)]
pub struct GroupMemberSummary {
    pub stream: String,
    pub state: StreamState,
    /// Listed in the multivariant playlist right now.
    pub listed: bool,
    /// Position in `index.m3u8` (0 = the start rendition).
    pub position: Option<usize>,
    pub primary_container: Option<Container>,
    pub bandwidth: Bandwidth,
    pub info: StreamInfo,
    /// Segments whose start was compared with a sibling's segment of the same number.
    pub segments_compared: u64,
    /// Of those, the ones more than one frame apart.
    pub segments_misaligned: u64,
}

/// What the API shows about one group.
#[derive(Clone, Debug, Serialize)]
pub struct GroupSummary {
    pub app: String,
    pub name: String,
    pub kind: GroupKind,
    pub renditions: Vec<GroupMemberSummary>,
}

#[derive(Default)]
struct Member {
    snapshot: Option<MemberSnapshot>,
    /// Last listed media sequence number per container.
    last_msn: PerContainer<Option<u64>>,
    /// (media sequence, first timestamp 90 kHz) of recent segments per container.
    starts: PerContainer<VecDeque<(u64, u64)>>,
    compared: u64,
    misaligned: u64,
    misaligned_metric: Option<metrics::Counter>,
}

struct Group {
    app: String,
    name: String,
    kind: GroupKind,
    members: BTreeMap<String, Member>,
    /// `index.m3u8` (ts slot) and `cmaf.m3u8` (cmaf slot) as rendered.
    rendered: PerContainer<Option<Arc<RenderedPlaylist>>>,
    /// Stream names in `index.m3u8` order.
    order: Vec<String>,
    version: u64,
    life_id: u64,
}

impl Group {
    /// Members listed now: live or in grace; if none is, the ended ones.
    fn listed(&self) -> impl Iterator<Item = (&String, &MemberSnapshot)> {
        let any_live = self.members.values().any(|m| {
            m.snapshot
                .as_ref()
                .is_some_and(|s| s.state != StreamState::Ended)
        });
        self.members.iter().filter_map(move |(name, m)| {
            let s = m.snapshot.as_ref()?;
            (!any_live || s.state != StreamState::Ended).then_some((name, s))
        })
    }

    fn render(&mut self, wall: SystemTime) {
        self.version += 1;
        let listed: Vec<_> = self.listed().collect();
        let ended = listed.iter().all(|(_, s)| s.state == StreamState::Ended);
        let td = listed
            .iter()
            .map(|(_, s)| s.target_duration_s)
            .max()
            .unwrap_or(1);
        let max_age = crate::routes::playlist_max_age_s(td, ended);
        // Audio renditions (`NAME~aK`) form the audio group; the others are the variants.
        let is_audio = |n: &str| parse_audio_track_name(n).is_some();
        let audio_of = |c: Option<Container>| {
            let mut v: Vec<AudioRendition<'_>> = listed
                .iter()
                .filter_map(|(n, s)| {
                    let (_, track_id) = parse_audio_track_name(n)?;
                    let media = match c {
                        None => s.primary_media()?.1,
                        Some(c) => s.media[c].as_ref()?,
                    };
                    Some(AudioRendition {
                        stream: n,
                        track_id,
                        media,
                    })
                })
                .collect();
            v.sort_by_key(|a| a.track_id);
            v
        };
        let (audio_index, audio_cmaf) = (audio_of(None), audio_of(Some(Container::Cmaf)));
        let mut index: Vec<Variant<'_>> = listed
            .iter()
            .filter(|(n, _)| !is_audio(n))
            .filter_map(|(n, s)| {
                Some(Variant {
                    stream: n,
                    media: s.primary_media()?.1,
                })
            })
            .collect();
        order_variants(&mut index);
        let mut cmaf: Vec<Variant<'_>> = listed
            .iter()
            .filter(|(n, _)| !is_audio(n))
            .filter_map(|(n, s)| {
                Some(Variant {
                    stream: n,
                    media: s.media.cmaf.as_ref()?,
                })
            })
            .collect();
        order_variants(&mut cmaf);
        let (life, version) = (self.life_id, self.version);
        let make = |text: String, slot: &str| {
            let tag = format!("{life:x}-g{slot}{version:x}");
            Arc::new(RenderedPlaylist::new(
                Bytes::from(text),
                &tag,
                wall,
                max_age,
            ))
        };
        let order: Vec<String> = index.iter().map(|v| v.stream.to_string()).collect();
        let ts = (!index.is_empty()).then(|| {
            make(
                render_multivariant("index.m3u8", false, &index, &audio_index),
                "i",
            )
        });
        let cm = (!cmaf.is_empty()).then(|| {
            make(
                render_multivariant("cmaf.m3u8", true, &cmaf, &audio_cmaf),
                "c",
            )
        });
        self.order = order;
        self.rendered = PerContainer { ts, cmaf: cm };
    }
}

/// Every group of a store. Lock order: a stream's `core` is never held while this is locked.
pub(crate) struct Groups {
    suffixes: Vec<String>,
    map: RwLock<HashMap<String, Group>>,
}

fn group_key(app: &str, name: &str) -> String {
    format!("{app}/{name}")
}

impl Groups {
    pub fn new(suffixes: &[String]) -> Self {
        let mut suffixes: Vec<String> =
            suffixes.iter().filter(|s| !s.is_empty()).cloned().collect();
        // Longest first: `_hi` must not claim `cam_xhi` from `_xhi`.
        suffixes.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Self {
            suffixes,
            map: RwLock::new(HashMap::new()),
        }
    }

    /// The group `stream` belongs to, if any: `(NAME, kind)`.
    pub fn group_of<'a>(&self, stream: &'a str) -> Option<(&'a str, GroupKind)> {
        if let Some((name, _)) = parse_track_name(stream).or_else(|| parse_audio_track_name(stream))
        {
            return Some((name, GroupKind::Multitrack));
        }
        self.suffixes.iter().find_map(|suf| {
            let name = stream.strip_suffix(suf.as_str())?;
            (!name.is_empty()).then_some((name, GroupKind::Suffix))
        })
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Group>> {
        self.map.write().unwrap_or_else(|e| e.into_inner())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Group>> {
        self.map.read().unwrap_or_else(|e| e.into_inner())
    }

    /// A member's state after a change (`None`: it lists nothing or was removed). Re-renders
    /// the group's playlists if what they say changed.
    pub fn update(
        &self,
        app: &str,
        stream: &str,
        summary: Option<&StreamSummary>,
        wall: SystemTime,
        wall_ms: u64,
    ) {
        let Some((name, kind)) = self.group_of(stream) else {
            return;
        };
        let snapshot = MemberSnapshot::from_summary(summary);
        let last_msn = summary.map(|s| {
            s.containers
                .map(|_, r| (r.segments > 0).then(|| r.media_sequence + r.segments as u64 - 1))
        });
        let key = group_key(app, name);
        let mut map = self.write();
        let group = match map.get_mut(&key) {
            Some(g) => g,
            None if snapshot.is_none() => return,
            None => map.entry(key.clone()).or_insert_with(|| Group {
                app: app.to_string(),
                name: name.to_string(),
                kind,
                members: BTreeMap::new(),
                rendered: PerContainer::default(),
                order: Vec::new(),
                version: 0,
                life_id: wall_ms,
            }),
        };
        let member = group.members.entry(stream.to_string()).or_default();
        if let Some(l) = last_msn {
            member.last_msn = l;
        }
        let changed = member.snapshot != snapshot;
        let joined = snapshot.is_some();
        if member.snapshot.is_some() != joined {
            tracing::info!(
                app,
                group = name,
                rendition = stream,
                joined,
                "group membership changed"
            );
        }
        member.snapshot = snapshot;
        if summary.is_none() {
            group.members.remove(stream);
        }
        if group.members.values().all(|m| m.snapshot.is_none()) {
            map.remove(&key);
            return;
        }
        if changed {
            group.render(wall);
        }
    }

    /// The multivariant playlist of group `app/name` (`None`: `index.m3u8`).
    pub fn playlist(
        &self,
        app: &str,
        name: &str,
        container: Option<Container>,
    ) -> Option<Arc<RenderedPlaylist>> {
        let map = self.read();
        if map.is_empty() {
            return None;
        }
        let g = map.get(&group_key(app, name))?;
        g.rendered[container.unwrap_or(Container::Ts)].clone()
    }

    /// The producer's first timestamp of segment `media_sequence` of `stream`'s `container`;
    /// compared with its siblings' segment of the same number.
    pub fn report_segment_start(
        &self,
        app: &str,
        stream: &str,
        container: Container,
        media_sequence: u64,
        start_90k: u64,
    ) {
        let Some((name, _)) = self.group_of(stream) else {
            return;
        };
        let mut map = self.write();
        let Some(g) = map.get_mut(&group_key(app, name)) else {
            return;
        };
        let frame_90k = |m: &Member| {
            m.snapshot
                .as_ref()
                .and_then(|s| s.media[container].as_ref())
                .and_then(|m| m.info.video.as_ref()?.frame_rate)
                .filter(|f| *f >= 1.0)
                .map_or(3_000, |f| (90_000.0 / f).ceil() as u64)
        };
        let mut worst: Option<(String, u64)> = None;
        let mut tolerance = g.members.get(stream).map_or(3_000, frame_90k);
        for (sib, m) in &g.members {
            if sib == stream {
                continue;
            }
            let Some(&(_, their)) = m.starts[container]
                .iter()
                .find(|(n, _)| *n == media_sequence)
            else {
                continue;
            };
            tolerance = tolerance.max(frame_90k(m));
            let diff = their.abs_diff(start_90k);
            if worst.as_ref().is_none_or(|(_, d)| diff > *d) {
                worst = Some((sib.clone(), diff));
            }
        }
        let Some(member) = g.members.get_mut(stream) else {
            return;
        };
        let q = &mut member.starts[container];
        q.retain(|(n, _)| *n != media_sequence);
        q.push_back((media_sequence, start_90k));
        while q.len() > ALIGNMENT_HISTORY {
            q.pop_front();
        }
        let Some((sibling, diff)) = worst else {
            return;
        };
        member.compared += 1;
        if diff > tolerance {
            member.misaligned += 1;
            let counter = member.misaligned_metric.get_or_insert_with(|| {
                metrics::counter!("sluice_hls_rendition_misaligned_total", "app" => app.to_string(), "group" => name.to_string(), "rendition" => stream.to_string())
            });
            counter.increment(1);
            // The first one, then one in 100: a misaligned encoder misaligns every segment.
            if member.misaligned % 100 == 1 {
                tracing::warn!(
                    app,
                    group = name,
                    rendition = stream,
                    sibling = %sibling,
                    container = %container,
                    media_sequence,
                    offset_ms = diff / 90,
                    misaligned_segments = member.misaligned,
                    "rendition not aligned with its group: segments of the same number start at different media times (the encoder must force keyframes at the same times in every rendition)"
                );
            }
        }
    }

    /// The siblings of `stream` in its group that have a `container` playlist, for
    /// `EXT-X-RENDITION-REPORT`.
    pub fn rendition_reports(
        &self,
        app: &str,
        stream: &str,
        container: Container,
    ) -> Vec<RenditionReport> {
        let Some((name, _)) = self.group_of(stream) else {
            return Vec::new();
        };
        let map = self.read();
        let Some(g) = map.get(&group_key(app, name)) else {
            return Vec::new();
        };
        let file = match container {
            Container::Ts => "index.m3u8",
            Container::Cmaf => "cmaf.m3u8",
        };
        let listed: Vec<&String> = g.listed().map(|(n, _)| n).collect();
        listed
            .into_iter()
            .filter(|n| n.as_str() != stream)
            .filter_map(|n| {
                let m = g.members.get(n)?;
                Some(RenditionReport {
                    uri: format!("../{n}/{file}"),
                    last_msn: m.last_msn[container]?,
                })
            })
            .collect()
    }

    /// Every group, sorted by name.
    pub fn summaries(&self) -> Vec<GroupSummary> {
        let map = self.read();
        let mut v: Vec<GroupSummary> = map.values().map(summary).collect();
        v.sort_by(|a, b| (&a.app, &a.name).cmp(&(&b.app, &b.name)));
        v
    }

    pub fn summary(&self, app: &str, name: &str) -> Option<GroupSummary> {
        self.read().get(&group_key(app, name)).map(summary)
    }
}

fn summary(g: &Group) -> GroupSummary {
    let listed: Vec<&String> = g.listed().map(|(n, _)| n).collect();
    let renditions = g
        .members
        .iter()
        .filter_map(|(n, m)| {
            let s = m.snapshot.as_ref()?;
            let media = s.primary_media().map(|(_, m)| m);
            Some(GroupMemberSummary {
                stream: n.clone(),
                state: s.state,
                listed: listed.contains(&n),
                position: g.order.iter().position(|o| o == n),
                primary_container: s.primary,
                bandwidth: media.map(|m| m.bandwidth).unwrap_or_default(),
                info: media.map(|m| m.info.clone()).unwrap_or_default(),
                segments_compared: m.compared,
                segments_misaligned: m.misaligned,
            })
        })
        .collect();
    GroupSummary {
        app: g.app.clone(),
        name: g.name.clone(),
        kind: g.kind,
        renditions,
    }
}

#[cfg(test)]
#[path = "group_tests.rs"]
mod tests;
