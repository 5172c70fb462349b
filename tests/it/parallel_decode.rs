//! Decompression of several frames at once (`-T`): the same data for every thread count, whole
//! frames written in order, the first damaged frame reported and nothing after it written,
//! frames too large to hold streamed instead, damaged archives failing exactly as they do
//! frame by frame. The archive is 300 KB of generated text at `-1`
//! in frames of 64 KiB (5 frames), on the CPU twin.

use std::fs;
use std::sync::OnceLock;

use nngpu::format::listing::Listing;
use nngpu::format::{FRAME_HEADER_LEN, RECORD_LEN};
use nngpu::{Error, Options};

use super::util::{
    Rng, assert_fails, assert_ok, cpu, names_in, nngpu, pack, run, sh, temp_dir, text,
};

/// Bytes of every frame but the last.
const FRAME: usize = 64 << 10;

/// The input and its archive in frames of `FRAME` bytes, compressed once for all the tests.
fn sample() -> &'static (Vec<u8>, Vec<u8>) {
    static SAMPLE: OnceLock<(Vec<u8>, Vec<u8>)> = OnceLock::new();
    SAMPLE.get_or_init(|| {
        let data = text(300_000, 7);
        let options = Options {
            frame_size: Some(FRAME as u64),
            ..cpu(1)
        };
        let archive = nngpu::compress(&data, &options).expect("compression failed");
        (data, archive.bytes)
    })
}

/// Offsets in the sample's archive at which its frames start.
fn frame_offsets() -> Vec<usize> {
    let listing = Listing::of_archive(&sample().1).expect("the sample lists");
    listing.frames.iter().map(|f| f.offset as usize).collect()
}

/// The sample's archive with a byte of frame `frame`'s first payload changed.
fn damaged_payload(frame: usize) -> Vec<u8> {
    let mut archive = sample().1.clone();
    archive[frame_offsets()[frame] + FRAME_HEADER_LEN + RECORD_LEN + 10] ^= 0x20;
    archive
}

/// Decodes `archive` on the CPU twin with `threads` and `memory_limit`, recording progress.
fn decode(archive: &[u8], threads: usize, memory_limit: u64) -> (Result<Vec<u8>, Error>, Vec<u64>) {
    let options = Options {
        threads,
        memory_limit,
        ..cpu(1)
    };
    let mut seen = Vec::new();
    let result = nngpu::decompress_with_progress(archive, &options, &mut |done| seen.push(done));
    (result.map(|outcome| outcome.bytes), seen)
}

#[test]
fn every_thread_count_decodes_the_same_data() {
    let (data, archive) = sample();
    assert_eq!(frame_offsets().len(), 5);
    let dir = temp_dir();
    let d = dir.path();
    fs::write(d.join("in.nng"), archive).unwrap();
    for threads in ["1", "2", "4"] {
        let out = run(nngpu(d).args(["-d", "-c", "-T", threads, "in.nng"]));
        assert_ok(&out);
        assert!(out.stdout == *data, "-T {threads} decoded other data");
    }
}

#[test]
fn progress_rises_to_the_length() {
    let (data, archive) = sample();
    let (result, seen) = decode(archive, 2, 1 << 30);
    assert!(result.unwrap() == *data);
    assert!(seen.is_sorted(), "progress went back");
    assert_eq!(seen.last().copied(), Some(data.len() as u64));
}

#[test]
fn frames_too_large_to_hold_are_streamed() {
    let (data, archive) = sample();
    // The `-1` model (16.6 MiB) fits once; so many workers leave each a few kilobytes of
    // frame to hold: none (1000) or part of one (300).
    for threads in [1000, 300] {
        let (result, seen) = decode(archive, threads, 17 << 20);
        assert!(result.unwrap() == *data, "{threads} workers");
        assert!(seen.is_sorted(), "progress went back");
    }
}

#[test]
fn a_damaged_frame_stops_the_output_after_the_frames_before_it() {
    let (data, _) = sample();
    let dir = temp_dir();
    let d = dir.path();
    fs::write(d.join("x.nng"), damaged_payload(2)).unwrap();
    for threads in ["1", "2", "4"] {
        let out = run(nngpu(d).args(["-d", "-c", "-T", threads, "x.nng"]));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "-T {threads}: {stderr}");
        assert!(stderr.contains("corrupt archive"), "-T {threads}: {stderr}");
        assert!(
            out.stdout == data[..2 * FRAME],
            "-T {threads} wrote {} bytes, not the first two frames",
            out.stdout.len()
        );
        let out = run(nngpu(d).args(["-d", "-T", threads, "x.nng"]));
        assert_fails(&out, "corrupt archive");
        assert_eq!(names_in(d), ["x.nng"], "-T {threads} left an output behind");
    }
}

#[test]
fn the_first_damaged_frame_is_the_one_reported() {
    let mut archive = damaged_payload(1);
    // Frame 3's header CRC: an error of its own, found while frame 1 decodes.
    archive[frame_offsets()[3] + FRAME_HEADER_LEN - 1] ^= 0x01;
    for threads in [2, 4] {
        let (result, _) = decode(&archive, threads, 1 << 30);
        let err = result.unwrap_err().to_string();
        assert!(err.starts_with("corrupt archive"), "-T {threads}: {err}");
    }
}

#[test]
fn joined_multi_frame_archives_decode_to_joined_inputs() {
    let (data, archive) = sample();
    let dir = temp_dir();
    let d = dir.path();
    fs::write(d.join("a.nng"), archive).unwrap();
    fs::write(d.join("b.nng"), &archive[..frame_offsets()[2]]).unwrap();
    let bin = env!("CARGO_BIN_EXE_nngpu");
    for threads in ["1", "2"] {
        let out = sh(d, &format!("cat a.nng b.nng | '{bin}' -d -T {threads}"));
        assert_ok(&out);
        assert!(
            out.stdout == [&data[..], &data[..2 * FRAME]].concat(),
            "-T {threads}: the joined archives decode to something else"
        );
    }
}

#[test]
fn damaged_joined_archives_fail_as_one_by_one() {
    let texts: Vec<Vec<u8>> = (0..4)
        .map(|seed| text(300 + 50 * seed, seed as u64))
        .collect();
    let archive: Vec<u8> = texts.iter().flat_map(|t| pack(t, 1)).collect();
    let decode_stream = |bytes: &[u8], threads: usize| {
        let options = Options { threads, ..cpu(1) };
        let mut out = Vec::new();
        let result = nngpu::decompress_stream(&mut &bytes[..], &mut out, &options, &mut |_| {});
        (result.map(|_| ()).map_err(|e| e.to_string()), out)
    };
    let mut rng = Rng::new(11);
    for case in 0..100 {
        let mut bad = archive.clone();
        let at = (rng.next_u64() % bad.len() as u64) as usize;
        if case % 4 == 0 {
            bad.truncate(at);
        } else {
            bad[at] ^= 1 << (rng.next_u64() % 8);
        }
        let (one, written_one) = decode_stream(&bad, 1);
        let (two, written_two) = decode_stream(&bad, 2);
        assert_eq!(one, two, "case {case}: damage at byte {at}");
        // Whole frames only, and the ones the one-by-one run wrote first.
        assert!(written_one.starts_with(&written_two), "case {case}");
        let mut frames = 0;
        let mut len = 0;
        while len < written_two.len() {
            len += texts[frames].len();
            frames += 1;
        }
        assert_eq!(
            len,
            written_two.len(),
            "case {case}: part of a frame written"
        );
        assert!(two.is_err() || written_two == written_one, "case {case}");
    }
}
