//! Library round trips on the CPU twin: edge cases, random and repetitive data, the seed's
//! digit data and real text, and determinism.

use super::util::{Rng, alice, bits_per_byte, cpu, digits, pack, round_trip, unpack};
use nngpu::Options;
use nngpu::format::listing::Listing;
use nngpu::format::{FRAME_HEADER_LEN, RECORD_LEN};

/// An empty input's archive: a frame header and the frame's end record.
const SMALLEST_ARCHIVE: usize = FRAME_HEADER_LEN + RECORD_LEN;

#[test]
fn empty_input() {
    let archive = round_trip(b"", 1);
    assert_eq!(archive.len(), SMALLEST_ARCHIVE);
}

#[test]
fn one_byte() {
    for byte in [0u8, b'x', 0xFF] {
        // One block, stored raw: coding a byte takes at least the coder's 4-byte flush.
        let archive = round_trip(&[byte], 1);
        assert_eq!(archive.len(), SMALLEST_ARCHIVE + RECORD_LEN + 1);
    }
}

#[test]
fn all_byte_values() {
    let data: Vec<u8> = (0..=255).collect();
    round_trip(&data, 1);
    let reversed: Vec<u8> = (0..=255).rev().collect();
    round_trip(&reversed, 1);
}

#[test]
fn random_bytes_100k() {
    let data = Rng::new(0x5EED_0001).bytes(100_000);
    let archive = round_trip(&data, 1);
    // Random bytes cannot be compressed; the model must not cost much more than 8 bits/byte.
    let bpb = bits_per_byte(&archive, &data);
    assert!(bpb < 8.2, "random data took {bpb:.4} bits/byte");
}

/// Measured 174 bytes (0.0070 bits/byte): near the coder's bound, and never refused by the
/// container's ratio limit, which is derived from that bound.
#[test]
fn long_run_of_one_byte() {
    let data = vec![b'a'; 200_000];
    let archive = round_trip(&data, 1);
    let bpb = bits_per_byte(&archive, &data);
    assert!(bpb < 0.02, "200 KB of 'a' took {bpb:.4} bits/byte");
}

#[test]
fn levels_are_recorded_and_clamped() {
    let data = &alice()[..200];
    for level in 1..=9 {
        let archive = round_trip(data, level);
        assert_eq!(archive[6], level, "preset byte of a level-{level} archive");
    }
    assert_eq!(pack(data, 0)[6], 1, "level 0 is clamped to 1");
    assert_eq!(pack(data, 200)[6], 9, "level 200 is clamped to 9");
}

/// The seed's digit data, in one stream: the model must learn to count. Measured on the CPU
/// twin (2-core x86-64), format version 3: level 1 in one stream 17,176 bytes (0.196
/// bits/byte); with the default stream schedule (up to 32 streams for 700 KB) 37,658 (xz -9e:
/// 6,984). Each stream counts through its own segment, so the width costs this file more than
/// text.
#[test]
fn seed_digits_below_a_quarter_bit_per_byte() {
    let data = digits();
    assert_eq!(data.len(), 700_000);
    assert_eq!(&data[..14], b"000000\n000001\n");
    assert_eq!(&data[data.len() - 7..], b"099999\n");
    let options = nngpu::Options {
        streams: Some(1),
        ..cpu(1)
    };
    let archive = nngpu::compress(&data, &options).unwrap().bytes;
    assert_eq!(unpack(&archive).unwrap(), data);
    let bpb = bits_per_byte(&archive, &data);
    eprintln!(
        "digits, level 1: {} bytes, {bpb:.4} bits/byte",
        archive.len()
    );
    assert!(bpb < 0.25, "digits took {bpb:.4} bits/byte at level 1");
}

/// 30 KB of "Alice in Wonderland" at level 1: measured 9,565 bytes, 2.55 bits/byte (format
/// version 1, the LSTM alone: 12,472 bytes, 3.33).
#[test]
fn text_slice() {
    let text = alice();
    assert_eq!(
        text.len(),
        148_481,
        "tests/data/alice29.txt is not the corpus file"
    );
    let data = &text[..30_000];
    let archive = round_trip(data, 1);
    let bpb = bits_per_byte(&archive, data);
    eprintln!(
        "alice29.txt[..30000], level 1: {} bytes, {bpb:.4} bits/byte",
        archive.len()
    );
    assert!(
        bpb < 2.9,
        "30 KB of text took {bpb:.4} bits/byte at level 1"
    );
}

#[test]
fn same_input_gives_identical_archives() {
    let text = &alice()[..8_000];
    let random = Rng::new(0x5EED_0002).bytes(3_000);
    let first = pack(text, 1);
    // Compressing something else in between must not leave state behind.
    let other = pack(&random, 1);
    assert_eq!(first, pack(text, 1), "text compressed twice differs");
    assert_eq!(
        other,
        pack(&random, 1),
        "random data compressed twice differs"
    );
    assert_eq!(pack(text, 4), pack(text, 4), "level 4 differs between runs");
    assert_eq!(unpack(&first).unwrap(), text);
}

#[test]
fn blocks_of_several_coders_are_the_same_on_any_number_of_threads() {
    // 96 streams: three coders a block, whose streams the mixing stage codes at once on as
    // many of rayon's threads as there are; 12 KB make 125-byte segments.
    let text = &alice()[..12_000];
    let options = Options {
        streams: Some(96),
        ..cpu(1)
    };
    let pool = |threads| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
    };
    let one = pool(1).install(|| nngpu::compress(text, &options).unwrap().bytes);
    let four = pool(4).install(|| nngpu::compress(text, &options).unwrap().bytes);
    assert!(one == four, "one thread and four wrote different archives");
    let back = pool(4).install(|| nngpu::decompress(&one, &options).unwrap().bytes);
    assert!(back == text, "decoded on four threads: other data");
    let back = pool(1).install(|| nngpu::decompress(&four, &options).unwrap().bytes);
    assert!(back == text, "decoded on one thread: other data");
}

#[test]
fn different_levels_give_different_archives() {
    let text = &alice()[..2_000];
    assert_ne!(pack(text, 1), pack(text, 2));
}

#[test]
fn many_streams_of_uneven_length_round_trip() {
    // 1,000 bytes in 7 streams are segments of 143 bytes and a last one of 142; 10 bytes in 7
    // streams are segments of 2 bytes, the last two empty; 3 bytes cannot have 64 streams and
    // get 3.
    for (len, streams, stored) in [(1000, 7, 7), (10, 7, 7), (3, 64, 3)] {
        let data = Rng::new(len as u64).bytes(len);
        let options = nngpu::Options {
            streams: Some(streams),
            ..cpu(1)
        };
        let archive = nngpu::compress(&data, &options).unwrap().bytes;
        let listing = Listing::of_archive(&archive).unwrap();
        assert_eq!(listing.frames[0].header.params.streams, stored);
        assert_eq!(listing.frames[0].blocks[0].streams, stored);
        assert_eq!(
            unpack(&archive).unwrap(),
            data,
            "{len} bytes in {streams} streams"
        );
    }
}

/// The decoder runs blocks of 256 streams or more in two alternating halves, narrower blocks
/// one whole step at a time (`MIN_STREAMS` in `src/codec/block/halves.rs`). Round trips
/// on both sides of that width: 20,000 bytes in 256 streams fill 254 segments of 79 bytes,
/// the last one of 13, so the last steps lose a stream of the second half; 1,500 bytes in 256
/// streams fill 250 segments of 6, the second half only partly; 30,001 bytes in 300 streams
/// fill 298 segments of 101, halves of 150 and 148 streams.
#[test]
fn decoding_in_halves_round_trips() {
    let text = alice();
    for (len, streams) in [(20_000, 255), (20_000, 256), (1_500, 256), (30_001, 300)] {
        let data = &text[..len];
        let options = nngpu::Options {
            streams: Some(streams),
            ..cpu(1)
        };
        let archive = nngpu::compress(data, &options).unwrap().bytes;
        let listing = Listing::of_archive(&archive).unwrap();
        let blocks = &listing.frames[0].blocks;
        assert!(
            blocks.iter().all(|b| !b.raw && b.streams == streams),
            "{len} bytes in {streams} streams: a raw block, or another width"
        );
        assert!(
            unpack(&archive).unwrap() == data,
            "{len} bytes in {streams} streams"
        );
    }
}

/// `auto` keeps inputs of few streams on the CPU twin (the GPU was measured slower there),
/// says so, and writes the same archive as the twin.
#[test]
fn auto_runs_few_streams_on_the_cpu_twin() {
    let data = &alice()[..2_000];
    let options = nngpu::Options {
        level: 1,
        ..nngpu::Options::default()
    };
    let outcome = nngpu::compress(data, &options).unwrap();
    assert!(
        outcome.backend.contains("integer twin") && outcome.backend.contains("chosen by auto"),
        "{}",
        outcome.backend
    );
    assert_eq!(outcome.bytes, pack(data, 1));
}
