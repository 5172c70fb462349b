//! Golden archives: a committed input and its archive for the current format version. The
//! archive must decode to the input, and compressing the input must still give exactly the
//! archive's bytes, so any change to the bits an encoder writes fails here unless the format
//! version is bumped (and the golden archive regenerated, under its new name).
//!
//! Regenerate with `NNGPU_REGENERATE_GOLDEN=1 cargo test --release golden`.

use std::path::PathBuf;

use nngpu::format::FORMAT_VERSION;

use super::util::{cpu, unpack};

/// The committed input: 4 KB of "Alice's Adventures in Wonderland" (public domain).
fn input_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/alice-4k.txt")
}

/// The golden archive of the current version for `case`: named after the version, so a bump
/// shows in the tree.
fn archive_path(case: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(format!("tests/golden/v{FORMAT_VERSION}-{case}.nng"))
}

/// The golden cases: level 1 in the schedule's one stream; in 13 streams, which guards the
/// bits of the streams' shared mixing stage and of the learning rates' width scaling too (the
/// LSTM's, and the mixers', which only blocks of more than 8 streams slow); in 96 streams,
/// whose blocks have three coders (`format::Coders`); and in 5 streams at an LSTM stride of 3,
/// the LSTM on every third byte of each (`codec::block`).
const CASES: [(&str, Option<u32>, Option<u8>); 4] = [
    ("level1", None, None),
    ("level1-13streams", Some(13), None),
    ("level1-96streams", Some(96), None),
    ("level1-5streams-stride3", Some(5), Some(3)),
];

const HOW_TO_REGENERATE: &str = "If the change to the archive's bits is intended, bump \
    FORMAT_VERSION in src/format/mod.rs (and FORMAT.md), then write the new golden archive with \
    `NNGPU_REGENERATE_GOLDEN=1 cargo test --release golden` and commit it; keep the old \
    version's file only while this build still decodes it.";

#[test]
fn golden_archive_decodes_and_compression_reproduces_it() {
    for (case, streams, stride) in CASES {
        check(case, streams, stride);
    }
}

fn check(case: &str, streams: Option<u32>, stride: Option<u8>) {
    let input = std::fs::read(input_path()).expect("tests/golden/alice-4k.txt");
    let options = nngpu::Options {
        streams,
        stride,
        ..cpu(1)
    };
    let fresh = nngpu::compress(&input, &options).unwrap().bytes;
    let path = archive_path(case);
    if std::env::var("NNGPU_REGENERATE_GOLDEN").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &fresh).expect("cannot write the golden archive");
        eprintln!("wrote {} ({} bytes)", path.display(), fresh.len());
    }
    let golden = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {} ({e}): no golden archive for format version {FORMAT_VERSION}. \
             {HOW_TO_REGENERATE}",
            path.display()
        )
    });
    match unpack(&golden) {
        Ok(data) => assert!(
            data == input,
            "{} decodes to different data. {HOW_TO_REGENERATE}",
            path.display()
        ),
        Err(e) => panic!(
            "{} no longer decodes: {e}. {HOW_TO_REGENERATE}",
            path.display()
        ),
    }
    assert!(
        fresh == golden,
        "compressing tests/golden/alice-4k.txt at level 1 ({case}) no longer gives {} ({} bytes \
         now, {} committed, first difference at byte {:?}). {HOW_TO_REGENERATE}",
        path.display(),
        fresh.len(),
        golden.len(),
        fresh.iter().zip(&golden).position(|(a, b)| a != b)
    );
}
