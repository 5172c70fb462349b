//! Library round trips on the CPU twin: edge cases, random and repetitive data, the seed's
//! digit data and real text, and determinism.

use super::util::{Rng, alice, bits_per_byte, cpu, digits, pack, round_trip, unpack};
use nngpu::format::HEADER_LEN;

/// Header (52 bytes) plus the coder's 4-byte flush plus the 8-byte trailer.
const SMALLEST_ARCHIVE: usize = HEADER_LEN + 4 + 8;

#[test]
fn empty_input() {
    let archive = round_trip(b"", 1);
    assert_eq!(archive.len(), SMALLEST_ARCHIVE);
}

#[test]
fn one_byte() {
    for byte in [0u8, b'x', 0xFF] {
        let archive = round_trip(&[byte], 1);
        assert!(
            archive.len() <= SMALLEST_ARCHIVE + 2,
            "{} bytes",
            archive.len()
        );
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

#[test]
fn long_run_of_one_byte() {
    let data = vec![b'a'; 200_000];
    let archive = round_trip(&data, 1);
    let bpb = bits_per_byte(&archive, &data);
    assert!(bpb < 0.05, "200 KB of 'a' took {bpb:.4} bits/byte");
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

/// The seed's digit data. Measured on the CPU twin (2-core x86-64): level 1 reaches only
/// 0.664 bits/byte (58,114 bytes), so this uses level 2, the cheapest level under 0.25:
/// 20,644 bytes, 0.236 bits/byte, about 20 s each way (level 3: 13,546 bytes, 0.155; xz -9e:
/// 6,984 bytes).
#[test]
fn seed_digits_below_a_quarter_bit_per_byte() {
    let data = digits();
    assert_eq!(data.len(), 700_000);
    assert_eq!(&data[..14], b"000000\n000001\n");
    assert_eq!(&data[data.len() - 7..], b"099999\n");
    let archive = round_trip(&data, 2);
    let bpb = bits_per_byte(&archive, &data);
    eprintln!(
        "digits, level 2: {} bytes, {bpb:.4} bits/byte",
        archive.len()
    );
    assert!(bpb < 0.25, "digits took {bpb:.4} bits/byte at level 2");
}

/// 30 KB of "Alice in Wonderland" at level 1: measured 12,472 bytes, 3.33 bits/byte.
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
        bpb < 3.6,
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
        let header = nngpu::format::FrameHeader::parse(&archive).unwrap();
        assert_eq!(header.params.streams, stored);
        assert_eq!(
            unpack(&archive).unwrap(),
            data,
            "{len} bytes in {streams} streams"
        );
    }
}
