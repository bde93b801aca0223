//! The fMP4 writer fed with arbitrary sample tables: it must never panic, the chunk's box sizes
//! must add up, and every trun data_offset must point at that track's bytes in the mdat.
#![no_main]
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use remux::fmp4::{write_fragment, write_init, Fragment, Sample, SampleEntry, TrackConfig};

fn take<const N: usize>(d: &mut &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    let n = N.min(d.len());
    out[..n].copy_from_slice(&d[..n]);
    *d = &d[n..];
    out
}

/// (type, body) of the boxes that exactly tile `d`.
fn children(mut d: &[u8]) -> Vec<([u8; 4], &[u8])> {
    let mut out = Vec::new();
    while !d.is_empty() {
        let size = u32::from_be_bytes(d[0..4].try_into().unwrap()) as usize;
        assert!(size >= 8 && size <= d.len());
        out.push((d[4..8].try_into().unwrap(), &d[8..size]));
        d = &d[size..];
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let mut d = data;
    let [tracks] = take::<1>(&mut d);
    let tracks = usize::from(tracks % 4);
    let mut tables: Vec<(u32, u64, Vec<Sample>)> = Vec::new();
    let pool = Bytes::from(vec![0xAB; 4096]);
    for t in 0..tracks {
        let [n] = take::<1>(&mut d);
        let base = u64::from_be_bytes(take::<8>(&mut d));
        let mut samples = Vec::new();
        for _ in 0..n % 32 {
            let [len_hi, len_lo, pieces, flags] = take::<4>(&mut d);
            let duration = u32::from_be_bytes(take::<4>(&mut d));
            let cts = i32::from_be_bytes(take::<4>(&mut d));
            let len = usize::from(u16::from_be_bytes([len_hi, len_lo])) % 4096;
            let mut data = Vec::new();
            let k = usize::from(pieces % 4).max(1);
            for i in 0..k {
                data.push(pool.slice(i * len / k..(i + 1) * len / k));
            }
            samples.push(Sample { data, duration, composition_offset: cts, is_sync: flags & 1 == 1 });
        }
        tables.push((t as u32 + 1, base, samples));
    }
    let frags: Vec<Fragment<'_>> = tables
        .iter()
        .map(|(id, base, s)| Fragment { track_id: *id, base_media_decode_time: *base, samples: s })
        .collect();
    let chunk = write_fragment(u32::from_be_bytes(take::<4>(&mut d)), &frags);
    let total: usize = chunk.iter().map(Bytes::len).sum();
    let head = &chunk[0];
    let moof = u32::from_be_bytes(head[0..4].try_into().unwrap()) as usize;
    let mdat = u32::from_be_bytes(head[moof..moof + 4].try_into().unwrap()) as usize;
    assert_eq!(moof + mdat, total);
    assert_eq!(head.len(), moof + 8);
    let media: usize = tables.iter().flat_map(|t| &t.2).flat_map(|s| &s.data).map(Bytes::len).sum();
    assert_eq!(mdat, media + 8);
    // Each trun's data_offset: moof + 8 + the bytes of the runs before it.
    let trafs: Vec<&[u8]> = children(&head[8..moof]).into_iter().filter(|(t, _)| t == b"traf").map(|(_, b)| b).collect();
    assert_eq!(trafs.len(), tables.len());
    let mut before = 0usize;
    for (traf, (_, _, samples)) in trafs.iter().zip(&tables) {
        let trun = children(traf).into_iter().find(|(t, _)| t == b"trun").unwrap().1;
        let off = i32::from_be_bytes(trun[8..12].try_into().unwrap()) as usize;
        assert_eq!(off, moof + 8 + before);
        before += samples.iter().flat_map(|s| &s.data).map(Bytes::len).sum::<usize>();
    }
    let _ = write_init(&[TrackConfig {
        track_id: 1,
        timescale: 90_000,
        entry: SampleEntry::Hevc { hvcc: Bytes::copy_from_slice(d), width: 1, height: 1 },
        language: None,
    }]);
});
