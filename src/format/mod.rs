//! Container format v2: the `.nng` file layout, written and parsed apart from the codec.
//!
//! A v2 file is exactly one frame: a 52-byte header (protected by its own CRC32), the
//! arithmetic-coded payload, and an XXH64 of the original data. The parser is strict: every
//! reserved bit must be zero, every field must be in range, and nothing may follow the
//! trailer. Concatenated frames are left to a later format version. `FORMAT.md` at the crate
//! root is the byte-level specification.

mod header;
pub mod listing;

pub use header::{FrameHeader, MAX_ORIGINAL_LEN};

use crate::model::presets::{MAX_LEVEL, MIN_LEVEL};

/// First four bytes of every archive. The high first byte keeps text tools from mistaking an
/// archive for text, as in PNG's signature.
pub const MAGIC: [u8; 4] = [0x89, b'N', b'N', b'G'];
/// The format version this build writes and the only one it reads.
pub const FORMAT_VERSION: u8 = 2;
/// Length of the frame header, CRC included.
pub const HEADER_LEN: usize = 52;
/// Length of the content-checksum trailer.
const TRAILER_LEN: usize = 8;

/// Why a byte string is not a valid v2 archive, or does not match its content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// The input ends before the frame does.
    #[error("truncated archive: need {needed} bytes, got {got}")]
    Truncated {
        /// Bytes the frame needs (saturated at `u64::MAX`).
        needed: u64,
        /// Bytes present.
        got: u64,
    },
    /// The input does not start with [`MAGIC`].
    #[error("not an nngpu archive (bad magic)")]
    NotNngpu,
    /// The version byte is not [`FORMAT_VERSION`].
    #[error("unsupported format version {0} (this build reads version {FORMAT_VERSION})")]
    UnsupportedVersion(u8),
    /// The stored header CRC32 does not match the header bytes.
    #[error("header checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    HeaderChecksumMismatch {
        /// CRC32 stored in the header.
        stored: u32,
        /// CRC32 of the header bytes as read.
        computed: u32,
    },
    /// Flag bits reserved in v2 are set.
    #[error("reserved flag bits set (flags byte {0:#04x})")]
    ReservedFlags(u8),
    /// The content-checksum flag is clear; v2 always carries the checksum.
    #[error("content checksum flag is clear (version 2 requires the checksum)")]
    MissingContentChecksum,
    /// The reserved header bytes 22..24 are not zero.
    #[error("reserved header bytes are not zero: {0:02x?}")]
    ReservedBytes([u8; 2]),
    /// The preset level is outside `MIN_LEVEL..=MAX_LEVEL` (1..=9).
    #[error("preset level {0} not in {MIN_LEVEL}..={MAX_LEVEL}")]
    BadPreset(u8),
    /// The model parameters fail `ModelParams::validate`.
    #[error("invalid model parameters: {0}")]
    InvalidParams(String),
    /// The declared original length exceeds what the payload could honestly code.
    #[error(
        "original length {original_len} exceeds the limit {limit} for a payload of \
         {payload_len} bytes (corrupt or malicious header)"
    )]
    OriginalTooLarge {
        /// Declared original length.
        original_len: u64,
        /// Declared payload length.
        payload_len: u64,
        /// Largest original length allowed for that payload.
        limit: u64,
    },
    /// Bytes follow the content-checksum trailer.
    #[error("{extra} trailing bytes after the archive (version 1 holds exactly one frame)")]
    TrailingBytes {
        /// Bytes after the end of the frame.
        extra: u64,
    },
    /// The decoded data has a different length than the header declares.
    #[error("decoded length mismatch: header says {expected} bytes, got {got}")]
    ContentLengthMismatch {
        /// Length from the header.
        expected: u64,
        /// Length of the decoded data.
        got: u64,
    },
    /// The decoded data does not hash to the stored checksum.
    #[error("content checksum mismatch: stored {expected:#018x}, decoded data {got:#018x}")]
    ContentChecksumMismatch {
        /// XXH64 stored in the trailer.
        expected: u64,
        /// XXH64 of the decoded data.
        got: u64,
    },
}

/// One parsed frame, borrowing its payload from the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The checked header.
    pub header: FrameHeader,
    /// Exactly `header.payload_len` bytes of arithmetic-coder output.
    pub payload: &'a [u8],
    /// XXH64 (seed 0) of the original data, as stored in the trailer.
    pub content_hash: u64,
}

/// XXH64 with seed 0: the content checksum stored in every frame's trailer.
pub fn content_hash(data: &[u8]) -> u64 {
    xxhash_rust::xxh64::xxh64(data, 0)
}

/// Serialises one complete v2 archive: `header` (with the content-checksum flag set), then
/// `payload`, then `content_hash`. `header.payload_len` must equal `payload.len()`;
/// `parse_frame` accepts the result whenever it accepts the header.
pub fn write_frame(header: &FrameHeader, payload: &[u8], content_hash: u64) -> Vec<u8> {
    debug_assert_eq!(
        header.payload_len,
        payload.len() as u64,
        "payload length mismatch"
    );
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len() + TRAILER_LEN);
    out.extend_from_slice(&header.to_bytes());
    out.extend_from_slice(payload);
    out.extend_from_slice(&content_hash.to_le_bytes());
    out
}

/// Parses a complete v2 archive. `Ok` guarantees everything [`FrameHeader::parse`] does, and
/// that `bytes` holds exactly the header, `payload_len` payload bytes and the trailer, nothing
/// more. Nothing is allocated, whatever the header declares.
pub fn parse_frame(bytes: &[u8]) -> Result<Frame<'_>, FormatError> {
    let header = FrameHeader::parse(bytes)?;
    let got = bytes.len() as u64;
    let needed = (HEADER_LEN as u64)
        .saturating_add(header.payload_len)
        .saturating_add(TRAILER_LEN as u64);
    if got < needed {
        return Err(FormatError::Truncated { needed, got });
    }
    if got > needed {
        return Err(FormatError::TrailingBytes {
            extra: got - needed,
        });
    }
    // got == needed now, so the payload length fits in usize and both splits succeed.
    let truncated = || FormatError::Truncated { needed, got };
    let rest = bytes.get(HEADER_LEN..).ok_or_else(truncated)?;
    let (payload, trailer) = rest
        .split_last_chunk::<TRAILER_LEN>()
        .ok_or_else(truncated)?;
    Ok(Frame {
        header,
        payload,
        content_hash: u64::from_le_bytes(*trailer),
    })
}

/// Checks decoded `data` against `frame`: its length must equal the header's original length
/// and its XXH64 the stored checksum.
pub fn check_content(frame: &Frame<'_>, data: &[u8]) -> Result<(), FormatError> {
    let got = data.len() as u64;
    if got != frame.header.original_len {
        return Err(FormatError::ContentLengthMismatch {
            expected: frame.header.original_len,
            got,
        });
    }
    let got = content_hash(data);
    if got != frame.content_hash {
        return Err(FormatError::ContentChecksumMismatch {
            expected: frame.content_hash,
            got,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::params::ModelParams;

    fn sample_header(payload_len: u64) -> FrameHeader {
        FrameHeader {
            preset: 5,
            params: ModelParams {
                layers: 2,
                cells: 96,
                streams: 8,
                window: 20,
                learning_rate_q24: 67_108,
                beta2_shift: 13,
                seed: 0x6E6E_6770_7531,
                mix_log2: 24,
            },
            original_len: 1234,
            payload_len,
        }
    }

    fn sample_frame() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        let data: Vec<u8> = (0..1234u32).map(|i| (i * 7 % 251) as u8).collect();
        let payload: Vec<u8> = (0..300u32).map(|i| (i * 13 % 256) as u8).collect();
        let header = sample_header(payload.len() as u64);
        (
            write_frame(&header, &payload, content_hash(&data)),
            payload,
            data,
        )
    }

    /// Recomputes the header CRC after a test edits a field, so the field check is reached.
    fn reseal(bytes: &mut [u8]) {
        let crc = crc32fast::hash(&bytes[..HEADER_LEN - 4]);
        bytes[HEADER_LEN - 4..HEADER_LEN].copy_from_slice(&crc.to_le_bytes());
    }

    fn edited(edit: impl FnOnce(&mut Vec<u8>)) -> Result<(), FormatError> {
        let (mut bytes, ..) = sample_frame();
        edit(&mut bytes);
        reseal(&mut bytes);
        parse_frame(&bytes).map(|_| ())
    }

    #[test]
    fn round_trip() {
        let (bytes, payload, data) = sample_frame();
        let frame = parse_frame(&bytes).unwrap();
        assert_eq!(frame.header, sample_header(payload.len() as u64));
        assert_eq!(frame.payload, &payload[..]);
        assert_eq!(frame.content_hash, content_hash(&data));
        assert_eq!(check_content(&frame, &data), Ok(()));
        let mut wrong = data.clone();
        wrong[17] ^= 1;
        assert!(matches!(
            check_content(&frame, &wrong),
            Err(FormatError::ContentChecksumMismatch { .. })
        ));
        assert_eq!(
            check_content(&frame, &data[1..]),
            Err(FormatError::ContentLengthMismatch {
                expected: 1234,
                got: 1233
            })
        );
        assert_eq!(FrameHeader::parse(&bytes), Ok(frame.header));
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
            },
            original_len: 0x01_0203_0405,
            payload_len: 0x0A0B_0C0D,
        };
        let b = h.to_bytes();
        assert_eq!(b[0..4], [0x89, 0x4E, 0x4E, 0x47]);
        assert_eq!(b[4..8], [2, 1, 9, 3]);
        assert_eq!(b[8..10], [0x08, 0x02]);
        assert_eq!(b[10..14], [0x00, 0x00, 0x01, 0x00]);
        assert_eq!(b[14..16], [0x40, 0x00]);
        assert_eq!(b[16..20], [0x56, 0x34, 0x12, 0x00]);
        assert_eq!(b[20..24], [20, 27, 0, 0]);
        assert_eq!(b[24..32], 0x1122_3344_5566_7788u64.to_le_bytes());
        assert_eq!(b[32..40], 0x01_0203_0405u64.to_le_bytes());
        assert_eq!(b[40..48], 0x0A0B_0C0Du64.to_le_bytes());
        assert_eq!(b[48..52], crc32fast::hash(&b[..48]).to_le_bytes());
        assert_eq!(FrameHeader::parse(&b), Ok(h));
    }

    #[test]
    fn every_header_bit_flip_is_detected() {
        let (bytes, ..) = sample_frame();
        for bit in 0..HEADER_LEN * 8 {
            let mut bad = bytes.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(parse_frame(&bad).is_err(), "flip of bit {bit} accepted");
        }
    }

    #[test]
    fn every_truncation_is_detected() {
        let (bytes, ..) = sample_frame();
        for len in 1..bytes.len() {
            let err = parse_frame(&bytes[..len]).unwrap_err();
            assert!(
                matches!(err, FormatError::Truncated { .. }),
                "len {len}: {err}"
            );
        }
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        let (mut bytes, ..) = sample_frame();
        bytes.push(0);
        assert_eq!(
            parse_frame(&bytes),
            Err(FormatError::TrailingBytes { extra: 1 })
        );
        let (second, ..) = sample_frame();
        bytes.pop();
        bytes.extend_from_slice(&second);
        assert!(matches!(
            parse_frame(&bytes),
            Err(FormatError::TrailingBytes { .. })
        ));
    }

    #[test]
    fn each_field_check_names_its_problem() {
        let v = |b: &mut Vec<u8>| b[4] = 1;
        assert_eq!(edited(v), Err(FormatError::UnsupportedVersion(1)));
        assert_eq!(
            edited(|b| b[5] = 0x81),
            Err(FormatError::ReservedFlags(0x81))
        );
        assert_eq!(
            edited(|b| b[5] = 0),
            Err(FormatError::MissingContentChecksum)
        );
        assert_eq!(
            edited(|b| b[23] = 7),
            Err(FormatError::ReservedBytes([0, 7]))
        );
        assert!(
            matches!(edited(|b| b[21] = 31), Err(FormatError::InvalidParams(m)) if m.contains("mixing"))
        );
        assert_eq!(edited(|b| b[6] = 0), Err(FormatError::BadPreset(0)));
        assert_eq!(edited(|b| b[6] = 10), Err(FormatError::BadPreset(10)));
        assert!(
            matches!(edited(|b| b[7] = 0), Err(FormatError::InvalidParams(m)) if m.contains("layers"))
        );
        assert!(
            matches!(edited(|b| b[8] = 9), Err(FormatError::InvalidParams(m)) if m.contains("cells"))
        );
        assert!(
            matches!(edited(|b| b[20] = 3), Err(FormatError::InvalidParams(m)) if m.contains("beta2"))
        );
        let (mut bytes, ..) = sample_frame();
        bytes[48] ^= 0xFF;
        let stored = u32::from_le_bytes(bytes[48..52].try_into().unwrap());
        let computed = crc32fast::hash(&bytes[..48]);
        assert_eq!(
            parse_frame(&bytes),
            Err(FormatError::HeaderChecksumMismatch { stored, computed })
        );
        let shown = FormatError::HeaderChecksumMismatch {
            stored: 1,
            computed: 2,
        }
        .to_string();
        assert!(
            shown.contains("0x00000001") && shown.contains("0x00000002"),
            "{shown}"
        );
    }

    #[test]
    fn more_streams_than_bytes_are_rejected() {
        let mut h = sample_header(300);
        h.params.streams = 1234;
        assert_eq!(FrameHeader::parse(&h.to_bytes()), Ok(h));
        h.params.streams = 1235;
        assert!(matches!(
            FrameHeader::parse(&h.to_bytes()),
            Err(FormatError::InvalidParams(_))
        ));
        h.original_len = 0;
        h.params.streams = 1;
        assert_eq!(FrameHeader::parse(&h.to_bytes()), Ok(h));
        h.params.streams = 2;
        assert!(matches!(
            FrameHeader::parse(&h.to_bytes()),
            Err(FormatError::InvalidParams(_))
        ));
    }

    #[test]
    fn bomb_limit() {
        for payload_len in [0u64, 4, 300, 1 << 20] {
            let limit = (payload_len + 16) * 2900;
            let mut h = sample_header(payload_len);
            h.original_len = limit;
            assert_eq!(FrameHeader::parse(&h.to_bytes()), Ok(h));
            h.original_len = limit + 1;
            assert_eq!(
                FrameHeader::parse(&h.to_bytes()),
                Err(FormatError::OriginalTooLarge {
                    original_len: limit + 1,
                    payload_len,
                    limit
                })
            );
        }
        let mut h = sample_header(u64::MAX);
        h.original_len = MAX_ORIGINAL_LEN;
        assert_eq!(FrameHeader::parse(&h.to_bytes()), Ok(h));
        h.original_len = MAX_ORIGINAL_LEN + 1;
        assert!(matches!(
            FrameHeader::parse(&h.to_bytes()),
            Err(FormatError::OriginalTooLarge {
                limit: MAX_ORIGINAL_LEN,
                ..
            })
        ));
        h.original_len = u64::MAX;
        assert!(FrameHeader::parse(&h.to_bytes()).is_err());
    }

    #[test]
    fn huge_payload_length_is_truncation_not_allocation() {
        // write_frame would refuse the mismatched payload, so assemble the bytes by hand.
        let mut bytes = sample_header(u64::MAX).to_bytes().to_vec();
        bytes.extend_from_slice(&[0; 100]);
        assert_eq!(
            parse_frame(&bytes),
            Err(FormatError::Truncated {
                needed: u64::MAX,
                got: bytes.len() as u64
            })
        );
    }

    #[test]
    fn foreign_data_is_rejected() {
        assert_eq!(parse_frame(&[]), Err(FormatError::NotNngpu));
        assert_eq!(
            parse_frame(&[0x89, b'N', b'N']),
            Err(FormatError::Truncated { needed: 52, got: 3 })
        );
        let gzip = [0x1F, 0x8B, 0x08, 0x00, 0, 0, 0, 0, 0, 3];
        assert_eq!(parse_frame(&gzip), Err(FormatError::NotNngpu));
        let png = [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
        assert_eq!(parse_frame(&png), Err(FormatError::NotNngpu));
        assert_eq!(parse_frame(b"x"), Err(FormatError::NotNngpu));
        assert_eq!(
            FormatError::NotNngpu.to_string(),
            "not an nngpu archive (bad magic)"
        );
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
            let err = parse_frame(&random).unwrap_err();
            assert!(
                matches!(err, FormatError::NotNngpu | FormatError::Truncated { .. }),
                "{err}"
            );
        }
    }
}
