//! Damaged and foreign input: every flipped bit, every truncation, foreign files and trailing
//! bytes give an error (a clean exit status 1 with a message from the CLI), never a panic,
//! never wrong data and never a half-written output file. Most positions go through the
//! library, a handful through the binary.

use std::fs;
use std::panic::{AssertUnwindSafe, catch_unwind};

use super::util::{
    alice, assert_fails, cpu, names_in, nngpu, pack, run, run_with_stdin, short_text, temp_dir,
    unpack,
};
use nngpu::format::{FRAME_HEADER_LEN as HEADER_LEN, RECORD_LEN};

/// Where the sample's only block's payload starts.
const PAYLOAD: usize = HEADER_LEN + RECORD_LEN;

/// A few hundred bytes of text and their level-1 archive.
fn sample() -> (Vec<u8>, Vec<u8>) {
    let data = short_text();
    let archive = pack(&data, 1);
    (data, archive)
}

/// Decompresses `archive`, turning a panic into a test failure that names `what`.
fn try_unpack(archive: &[u8], what: &str) -> Result<Vec<u8>, String> {
    match catch_unwind(AssertUnwindSafe(|| unpack(archive))) {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(_) => panic!("decompression panicked on {what}"),
    }
}

/// Recomputes the CRCs of the frame header and the first block's record after an edit, so
/// the edit reaches the decoder.
fn fix_crc(archive: &mut [u8]) {
    let crc = crc32fast::hash(&archive[..HEADER_LEN - 4]);
    archive[HEADER_LEN - 4..HEADER_LEN].copy_from_slice(&crc.to_le_bytes());
    let crc = crc32fast::hash(&archive[HEADER_LEN..PAYLOAD - 4]);
    archive[PAYLOAD - 4..PAYLOAD].copy_from_slice(&crc.to_le_bytes());
}

/// Flips in the payload of a block the decoder runs in two halves (256 streams, on two
/// threads) are errors too, whichever thread meets the damage first: no panic, no hang.
#[test]
fn damage_in_a_block_decoded_in_halves_is_an_error() {
    let data = &alice()[..20_000];
    let options = nngpu::Options {
        streams: Some(256),
        ..cpu(1)
    };
    let archive = nngpu::compress(data, &options).unwrap().bytes;
    let payload_end = archive.len() - RECORD_LEN;
    for pos in (PAYLOAD..payload_end).step_by((payload_end - PAYLOAD) / 10) {
        let mut bad = archive.clone();
        bad[pos] ^= 0x10;
        let what = format!("a flip in byte {pos} of {}", archive.len());
        try_unpack(&bad, &what).expect_err(&format!("{what} was accepted"));
    }
}

/// Every single-bit flip in the header, the records and the payload is an error. That
/// includes the coder's final flush bytes: the decoder requires them to be exactly the
/// encoder's flush, so no flip there decodes, not even to the original data.
#[test]
fn every_bit_flip_is_detected() {
    let (_, archive) = sample();
    let payload_end = archive.len() - RECORD_LEN;
    assert!(
        payload_end > PAYLOAD + 100,
        "payload of {} bytes",
        payload_end - PAYLOAD
    );
    for pos in 0..archive.len() {
        for bit in 0..8 {
            let mut bad = archive.clone();
            bad[pos] ^= 1 << bit;
            let what = format!("a flip of bit {bit} of byte {pos} of {}", archive.len());
            let message = try_unpack(&bad, &what).expect_err(&format!("{what} was accepted"));
            assert!(!message.is_empty(), "{what}: empty message");
        }
    }
}

#[test]
fn every_truncation_is_detected() {
    let (_, archive) = sample();
    // (An empty file is not an archive at all: see `foreign_data_is_not_an_archive`.)
    for len in 1..archive.len() {
        let message = try_unpack(&archive[..len], &format!("a cut to {len} bytes"))
            .expect_err(&format!("a cut to {len} bytes was accepted"));
        assert!(message.contains("truncated"), "cut to {len}: {message}");
    }
}

#[test]
fn trailing_bytes_are_rejected() {
    let (_, archive) = sample();
    let tails: Vec<Vec<u8>> = vec![vec![0], b"garbage\n".to_vec(), vec![0xFF; 4096]];
    for tail in tails {
        let mut long = archive.clone();
        long.extend_from_slice(&tail);
        let message = try_unpack(&long, "trailing bytes").expect_err("trailing bytes accepted");
        let at = format!("trailing data at byte {}", archive.len());
        assert!(message.contains(&at), "{message}");
    }
    // A second archive after the first is no trailing garbage but a second frame.
    let (data, _) = sample();
    let twice = [archive.clone(), archive.clone()].concat();
    assert_eq!(
        try_unpack(&twice, "two frames").unwrap(),
        [data.clone(), data].concat()
    );
}

#[test]
fn foreign_data_is_not_an_archive() {
    let gzip = [
        0x1F, 0x8B, 0x08, 0x00, 0, 0, 0, 0, 0, 3, 0x4B, 0x4C, 0x4A, 6, 0,
    ];
    let png = [
        0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 0x0D,
    ];
    let zeros = [0u8; 100];
    for (name, bytes) in [
        (
            "text",
            &b"This is not an archive, just a line of text.\n"[..],
        ),
        ("gzip", &gzip[..]),
        ("png", &png[..]),
        ("zeros", &zeros[..]),
        ("one byte", &b"x"[..]),
    ] {
        let message = try_unpack(bytes, name).expect_err(&format!("{name} was accepted"));
        assert!(
            message.contains("not an nngpu archive"),
            "{name}: {message}"
        );
    }
    let message = try_unpack(b"", "empty input").expect_err("empty input was accepted");
    assert!(message.contains("not an nngpu archive"), "empty: {message}");
}

/// Header and record edits with recomputed CRCs get past the structural checks and reach the
/// decoder, which must then fail on the payload or a checksum.
#[test]
fn consistent_but_wrong_headers_fail_cleanly() {
    let (data, archive) = sample();
    type Edit = fn(&mut Vec<u8>);
    let edits: [(&str, Edit); 12] = [
        ("layers 1 -> 2", |a| a[7] = 2),
        ("cells 32 -> 40", |a| a[8] = 40),
        ("block streams 1 -> 2", |a| a[HEADER_LEN + 4] = 2),
        ("window 16 -> 15", |a| a[14] -= 1),
        ("window 16 -> 1", |a| a[14] = 1),
        ("learning rate + 1", |a| a[16] ^= 1),
        ("beta2 shift - 1", |a| a[20] -= 1),
        ("seed", |a| a[24] ^= 0x80),
        ("block length - 1", |a| a[HEADER_LEN + 8] -= 1),
        ("block length + 1", |a| a[HEADER_LEN + 8] += 1),
        ("block length + 5000", |a| {
            let at = HEADER_LEN + 8..HEADER_LEN + 12;
            let len = u32::from_le_bytes(a[at.clone()].try_into().unwrap()) + 5000;
            a[at].copy_from_slice(&len.to_le_bytes());
        }),
        ("block checksum", |a| a[HEADER_LEN + 16] ^= 1),
    ];
    assert_eq!(archive[7], 1, "sample is not a one-layer model");
    assert_eq!(
        archive[8..10],
        32u16.to_le_bytes(),
        "sample does not have 32 cells"
    );
    assert_eq!(
        archive[HEADER_LEN + 4..HEADER_LEN + 8],
        1u32.to_le_bytes(),
        "sample's block does not have one stream"
    );
    for (name, edit) in edits {
        let mut bad = archive.clone();
        edit(&mut bad);
        fix_crc(&mut bad);
        let message = try_unpack(&bad, name).expect_err(&format!("{name} was accepted"));
        assert!(!message.is_empty(), "{name}: empty message");
    }
    // The preset byte is informational: the explicit fields alone drive the decoder.
    let mut relabelled = archive.clone();
    relabelled[6] = 9;
    fix_crc(&mut relabelled);
    assert_eq!(try_unpack(&relabelled, "preset 1 -> 9").unwrap(), data);
}

#[test]
fn cli_reports_damage_and_writes_nothing() {
    let (_, archive) = sample();
    let dir = temp_dir();
    let last = archive.len() - 1;
    let payload_mid = (PAYLOAD + archive.len() - RECORD_LEN) / 2;
    for (pos, expected) in [
        (0, "not an nngpu archive"),
        (4, "unsupported format version"),
        (6, "header checksum mismatch"),
        (33, "header checksum mismatch"),
        (HEADER_LEN, "block record checksum mismatch"),
        (payload_mid, "corrupt archive"),
        (last - RECORD_LEN + 1, "checksum"),
        (last, "checksum"),
    ] {
        let mut bad = archive.clone();
        bad[pos] ^= 0x10;
        fs::write(dir.path().join("bad.nng"), &bad).unwrap();
        let output = run(nngpu(dir.path()).args(["decompress", "bad.nng"]));
        let stderr = assert_fails(&output, "nngpu: bad.nng: ");
        assert!(stderr.contains(expected), "byte {pos}: {stderr}");
        assert_eq!(
            names_in(dir.path()),
            ["bad.nng"],
            "byte {pos} left a file behind"
        );
    }
}

#[test]
fn cli_reports_truncation_and_writes_nothing() {
    let (_, archive) = sample();
    let dir = temp_dir();
    for len in [
        1,
        4,
        20,
        HEADER_LEN - 1,
        HEADER_LEN,
        HEADER_LEN + 10,
        archive.len() - 1,
    ] {
        fs::write(dir.path().join("cut.nng"), &archive[..len]).unwrap();
        let output = run(nngpu(dir.path()).args(["decompress", "cut.nng"]));
        assert_fails(&output, "truncated");
        assert_eq!(
            names_in(dir.path()),
            ["cut.nng"],
            "a cut to {len} left a file behind"
        );
    }
}

#[test]
fn cli_rejects_foreign_files_and_trailing_bytes() {
    let (_, archive) = sample();
    let dir = temp_dir();
    let gzip = [
        0x1F, 0x8B, 0x08, 0x00, 0, 0, 0, 0, 0, 3, 0x4B, 0x4C, 0x4A, 6, 0,
    ];
    for (bytes, expected) in [
        (
            &b"Just some text, not compressed at all.\n"[..],
            "not an nngpu archive",
        ),
        (&gzip[..], "not an nngpu archive"),
        (&b""[..], "not an nngpu archive"),
    ] {
        fs::write(dir.path().join("foreign.nng"), bytes).unwrap();
        let output = run(nngpu(dir.path()).args(["decompress", "foreign.nng"]));
        assert_fails(&output, expected);
        assert_eq!(names_in(dir.path()), ["foreign.nng"]);
    }
    let mut long = archive.clone();
    long.extend_from_slice(b"tail");
    fs::write(dir.path().join("long.nng"), &long).unwrap();
    let output = run(nngpu(dir.path()).args(["decompress", "long.nng"]));
    let at = format!("trailing data at byte {}", archive.len());
    assert_fails(&output, &at);
    // Standard input to standard output streams: the frame's data (every block of it checked)
    // is out before the garbage behind it is read, as with zstd; then the error and status 1.
    let output = run_with_stdin(nngpu(dir.path()).args(["decompress", "-c"]), &long);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("nngpu: (stdin): {at}")),
        "{stderr}"
    );
    assert_eq!(output.stdout, sample().0);
}

#[test]
fn failed_decompression_keeps_an_existing_output_even_with_force() {
    let (_, archive) = sample();
    let dir = temp_dir();
    let mut bad = archive.clone();
    bad[PAYLOAD + 3] ^= 0x01;
    fs::write(dir.path().join("x.nng"), &bad).unwrap();
    fs::write(dir.path().join("x"), b"earlier contents").unwrap();
    let output = run(nngpu(dir.path()).args(["decompress", "-f", "x.nng"]));
    assert_fails(&output, "corrupt archive");
    assert_eq!(fs::read(dir.path().join("x")).unwrap(), b"earlier contents");
    assert_eq!(names_in(dir.path()), ["x", "x.nng"]);
}
