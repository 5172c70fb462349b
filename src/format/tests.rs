//! The format's layout and strictness, on archives assembled by hand.

use super::*;
use crate::model::params::ModelParams;

fn params() -> ModelParams {
    ModelParams {
        layers: 2,
        cells: 96,
        streams: 8,
        window: 20,
        learning_rate_q24: 67_108,
        beta2_shift: 13,
        seed: 0x6E6E_6770_7531,
        mix_log2: 24,
        block_log2: 16,
        lstm_stride: 1,
    }
}

fn header() -> FrameHeader {
    FrameHeader {
        preset: 5,
        params: params(),
    }
}

fn coded(original_len: u32, stored_len: u32, streams: u32) -> BlockHeader {
    BlockHeader {
        kind: BlockKind::Coded { streams },
        stride: 1,
        original_len,
        stored_len,
        checksum: 0xDEAD_BEEF,
    }
}

/// A frame of a coded block (300 bytes of payload for 1234 bytes), a raw block of 10 bytes,
/// and its end record.
fn sample_frame() -> Vec<u8> {
    let mut out = header().to_bytes().to_vec();
    out.extend(Record::Block(coded(1234, 300, 8)).to_bytes());
    out.extend((0..300u32).map(|i| (i * 13 % 256) as u8));
    let raw = BlockHeader {
        kind: BlockKind::Raw { streams: 2 },
        stride: 1,
        original_len: 10,
        stored_len: 10,
        checksum: block_checksum(b"0123456789"),
    };
    out.extend(Record::Block(raw).to_bytes());
    out.extend(b"0123456789");
    let end = FrameEnd {
        original_len: 1244,
        content_hash: 42,
    };
    out.extend(Record::End(end).to_bytes());
    out
}

/// Reads every frame and record of `bytes`: the records in order, or the first error.
fn read_all(bytes: &[u8]) -> Result<Vec<Record>, FormatError> {
    let mut reader = ArchiveReader::new(bytes);
    let mut records = Vec::new();
    let mut payload = Vec::new();
    while reader.next_frame()?.is_some() {
        loop {
            let record = reader.next_record()?;
            records.push(record);
            match record {
                Record::Block(_) => reader.read_payload(&mut payload)?,
                Record::End(_) => break,
            }
        }
    }
    assert_eq!(reader.offset(), bytes.len() as u64);
    Ok(records)
}

/// Recomputes the CRC of the 36-byte header or 24-byte record ending at `end`.
fn reseal(bytes: &mut [u8], end: usize) {
    let crc = crc32fast::hash(&bytes[end - FRAME_HEADER_LEN.min(end)..end - 4]);
    bytes[end - 4..end].copy_from_slice(&crc.to_le_bytes());
}

fn reseal_record(bytes: &mut [u8], start: usize) {
    let crc = crc32fast::hash(&bytes[start..start + RECORD_LEN - 4]);
    bytes[start + RECORD_LEN - 4..start + RECORD_LEN].copy_from_slice(&crc.to_le_bytes());
}

#[test]
fn frames_read_back_and_concatenate() {
    let one = sample_frame();
    let records = read_all(&one).unwrap();
    assert_eq!(records.len(), 3);
    assert_eq!(records[0], Record::Block(coded(1234, 300, 8)));
    let mut two = one.clone();
    two.extend_from_slice(&one);
    assert_eq!(read_all(&two).unwrap().len(), 6);
}

#[test]
fn layout_matches_the_specification() {
    let h = FrameHeader {
        preset: 9,
        params: ModelParams {
            layers: 3,
            cells: 0x0208,
            streams: 0x0001_0000,
            window: 0x0040,
            learning_rate_q24: 0x0012_3456,
            beta2_shift: 20,
            seed: 0x1122_3344_5566_7788,
            mix_log2: 27,
            block_log2: 20,
            lstm_stride: 7,
        },
    };
    let b = h.to_bytes();
    assert_eq!(b[0..4], [0x89, 0x4E, 0x4E, 0x47]);
    assert_eq!(b[4..8], [9, 1, 9, 3]);
    assert_eq!(b[8..10], [0x08, 0x02]);
    assert_eq!(b[10..14], [0x00, 0x00, 0x01, 0x00]);
    assert_eq!(b[14..16], [0x40, 0x00]);
    assert_eq!(b[16..20], [0x56, 0x34, 0x12, 0x00]);
    assert_eq!(b[20..24], [20, 27, 20, 7]);
    assert_eq!(b[24..32], 0x1122_3344_5566_7788u64.to_le_bytes());
    assert_eq!(b[32..36], crc32fast::hash(&b[..32]).to_le_bytes());
    assert_eq!(FrameHeader::parse(&b), Ok(h));

    let r = Record::Block(BlockHeader {
        stride: 6,
        ..coded(0x0001_0000, 0x0203, 5)
    })
    .to_bytes();
    assert_eq!(r[0..4], [0, 6, 0, 0]);
    assert_eq!(r[4..8], 5u32.to_le_bytes());
    assert_eq!(r[8..12], 0x0001_0000u32.to_le_bytes());
    assert_eq!(r[12..16], 0x0203u32.to_le_bytes());
    assert_eq!(r[16..20], 0xDEAD_BEEFu32.to_le_bytes());
    assert_eq!(r[20..24], crc32fast::hash(&r[..20]).to_le_bytes());
    let end = FrameEnd {
        original_len: 0x0102_0304_0506,
        content_hash: 0x1122_3344_5566_7788,
    };
    let e = Record::End(end).to_bytes();
    assert_eq!(e[0..4], [0xFF, 0, 0, 0]);
    assert_eq!(e[4..12], 0x0102_0304_0506u64.to_le_bytes());
    assert_eq!(e[12..20], 0x1122_3344_5566_7788u64.to_le_bytes());
    assert_eq!(Record::parse(&e, &params()), Ok(Record::End(end)));
}

#[test]
fn every_bit_flip_in_a_header_or_record_is_detected() {
    let bytes = sample_frame();
    let payload = FRAME_HEADER_LEN + RECORD_LEN..FRAME_HEADER_LEN + RECORD_LEN + 300;
    for bit in 0..bytes.len() * 8 {
        if payload.contains(&(bit / 8))
            || (bytes.len() - RECORD_LEN - 10..bytes.len() - RECORD_LEN).contains(&(bit / 8))
        {
            continue;
        }
        let mut bad = bytes.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        assert!(read_all(&bad).is_err(), "flip of bit {bit} accepted");
    }
}

#[test]
fn every_truncation_is_detected() {
    let bytes = sample_frame();
    for len in 1..bytes.len() {
        let err = read_all(&bytes[..len]).unwrap_err();
        assert!(matches!(err, FormatError::Truncated(_)), "len {len}: {err}");
    }
}

#[test]
fn trailing_bytes_are_rejected() {
    let mut bytes = sample_frame();
    let end = bytes.len() as u64;
    bytes.push(0);
    assert_eq!(
        read_all(&bytes),
        Err(FormatError::TrailingGarbage { offset: end })
    );
    bytes.pop();
    bytes.extend_from_slice(&MAGIC[..2]);
    assert!(matches!(read_all(&bytes), Err(FormatError::Truncated(_))));
}

#[test]
fn each_field_check_names_its_problem() {
    let edited = |at: usize, value: u8| {
        let mut b = sample_frame();
        b[at] = value;
        reseal(&mut b, FRAME_HEADER_LEN);
        read_all(&b)
    };
    assert_eq!(edited(4, 2), Err(FormatError::UnsupportedVersion(2)));
    assert_eq!(edited(5, 0x81), Err(FormatError::ReservedFlags(0x81)));
    assert_eq!(edited(5, 0), Err(FormatError::MissingContentChecksum));
    assert!(matches!(edited(23, 0), Err(FormatError::InvalidParams(_))));
    assert_eq!(edited(6, 0), Err(FormatError::BadPreset(0)));
    assert_eq!(edited(6, 10), Err(FormatError::BadPreset(10)));
    for (at, value, field) in [
        (7, 0, "layers"),
        (8, 9, "cells"),
        (20, 3, "beta2"),
        (21, 31, "mixing"),
        (22, 27, "block"),
        (22, 9, "block"),
    ] {
        assert!(
            matches!(edited(at, value), Err(FormatError::InvalidParams(m)) if m.contains(field)),
            "{field}"
        );
    }
    let mut bytes = sample_frame();
    bytes[32] ^= 0xFF;
    let stored = u32::from_le_bytes(bytes[32..36].try_into().unwrap());
    let computed = crc32fast::hash(&bytes[..32]);
    assert_eq!(
        read_all(&bytes),
        Err(FormatError::HeaderChecksumMismatch { stored, computed })
    );
}

#[test]
fn block_records_are_checked_against_the_frame() {
    let p = params();
    let check = |b: BlockHeader| Record::parse(&Record::Block(b).to_bytes(), &p);
    assert!(check(coded(1234, 300, 8)).is_ok());
    let bad = |b: BlockHeader| matches!(check(b), Err(FormatError::BadBlock(_)));
    assert!(bad(coded(1234, 300, 9)), "more streams than the frame's");
    assert!(bad(coded(5, 4, 6)), "more streams than bytes");
    assert!(bad(coded(1234, 300, 0)), "no streams");
    assert!(bad(coded(0, 0, 1)), "empty block");
    assert!(bad(coded(65_537, 3000, 1)), "longer than 2^block_log2");
    assert!(bad(coded(1234, 1234, 1)), "a coded block as long as raw");
    assert!(bad(coded(1234, 3, 1)), "shorter than the flush");
    let raw = |original_len, stored_len| BlockHeader {
        kind: BlockKind::Raw { streams: 1 },
        stride: 1,
        original_len,
        stored_len,
        checksum: 0,
    };
    assert!(check(raw(100, 100)).is_ok());
    assert!(bad(raw(100, 99)));
    let mut streams = Record::Block(raw(100, 100)).to_bytes();
    streams[4] = 0;
    reseal_record(&mut streams, 0);
    assert!(matches!(
        Record::parse(&streams, &p),
        Err(FormatError::BadBlock(_))
    ));
    let mut kind = Record::Block(raw(100, 100)).to_bytes();
    kind[0] = 2;
    reseal_record(&mut kind, 0);
    assert_eq!(Record::parse(&kind, &p), Err(FormatError::BadRecordKind(2)));
    let mut reserved = Record::Block(raw(100, 100)).to_bytes();
    reserved[2] = 1;
    reseal_record(&mut reserved, 0);
    assert_eq!(
        Record::parse(&reserved, &p),
        Err(FormatError::ReservedBytes(vec![1, 0]))
    );
    // The stride: 1..=the header's.
    for (stride, ok) in [(0, false), (1, true), (p.lstm_stride + 1, false)] {
        let mut record = Record::Block(raw(100, 100)).to_bytes();
        record[1] = stride;
        reseal_record(&mut record, 0);
        let parsed = Record::parse(&record, &p);
        assert_eq!(parsed.is_ok(), ok, "stride {stride}: {parsed:?}");
    }
}

#[test]
fn bomb_limit() {
    let mut p = params();
    p.block_log2 = 26;
    for stored_len in [4u32, 300, 1 << 12] {
        let limit = (u64::from(stored_len) + 16) * 2900;
        let len = limit.min(1 << 26) as u32;
        let parsed = Record::parse(&Record::Block(coded(len, stored_len, 1)).to_bytes(), &p);
        assert!(parsed.is_ok(), "{stored_len}");
        if limit < 1 << 26 {
            let parsed =
                Record::parse(&Record::Block(coded(len + 1, stored_len, 1)).to_bytes(), &p);
            assert!(matches!(parsed, Err(FormatError::OriginalTooLarge { .. })));
        }
    }
}

#[test]
fn the_end_record_must_add_up() {
    let mut bytes = sample_frame();
    let end = bytes.len() - RECORD_LEN;
    bytes[end + 4] ^= 1;
    reseal_record(&mut bytes, end);
    assert!(matches!(
        read_all(&bytes),
        Err(FormatError::FrameLengthMismatch { .. })
    ));
}

#[test]
fn foreign_data_is_rejected() {
    assert_eq!(read_all(&[]), Err(FormatError::NotNngpu));
    assert!(matches!(
        read_all(&[0x89, b'N', b'N']),
        Err(FormatError::Truncated(_))
    ));
    let gzip = [0x1F, 0x8B, 0x08, 0x00, 0, 0, 0, 0, 0, 3];
    assert_eq!(read_all(&gzip), Err(FormatError::NotNngpu));
    let png = [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
    assert_eq!(read_all(&png), Err(FormatError::NotNngpu));
    let mut state = 0x1234_5678u64;
    for len in 0..200 {
        let random: Vec<u8> = (0..len)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1);
                (state >> 56) as u8
            })
            .collect();
        let err = read_all(&random).unwrap_err();
        assert!(
            matches!(err, FormatError::NotNngpu | FormatError::Truncated(_)),
            "{err}"
        );
    }
}
