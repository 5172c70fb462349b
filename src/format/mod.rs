//! The container format (version `FORMAT_VERSION`): the `.nng` file layout, written and read
//! apart from the codec.
//!
//! An archive is one or more frames, one after another. A frame is a 36-byte header (the
//! model, protected by its own CRC32), then blocks, each a 24-byte record (kind, streams,
//! lengths, a checksum of the block's data, its own CRC32) and its payload, then a 24-byte
//! end record (the frame's length and the XXH64 of its data). Frames are independent: each
//! starts from the initial model, so concatenated archives are an archive of the concatenated
//! inputs. The reader (`reader`) is strict: every reserved bit must be zero, every field in
//! range, every record where the structure puts it. `FORMAT.md` at the crate root is the
//! byte-level specification.

mod block;
mod coders;
mod header;
pub mod listing;
mod reader;
mod segments;

pub use block::{BlockHeader, BlockKind, FrameEnd, MIN_CODED_LEN, Record, block_checksum};
pub use coders::{Coders, CodersError, MAX_CODERS};
pub use header::FrameHeader;
pub use reader::ArchiveReader;
pub use segments::Segments;

use crate::model::presets::{MAX_LEVEL, MIN_LEVEL};

/// First four bytes of every frame. The high first byte keeps text tools from mistaking an
/// archive for text, as in PNG's signature.
pub const MAGIC: [u8; 4] = [0x89, b'N', b'N', b'G'];
/// The format version this build writes and the only one it reads.
pub const FORMAT_VERSION: u8 = 9;
/// Length of a frame header, CRC included.
pub const FRAME_HEADER_LEN: usize = 36;
/// Length of a block record and of a frame's end record, CRC included.
pub const RECORD_LEN: usize = 24;

/// Why a byte stream is not a valid archive of this version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// The input ends inside a frame.
    #[error("truncated archive: the input ends inside {0}")]
    Truncated(&'static str),
    /// The input does not start with [`MAGIC`].
    #[error("not an nngpu archive (bad magic)")]
    NotNngpu,
    /// Bytes after a complete frame do not start another frame.
    #[error("trailing data at byte {offset} is not an nngpu frame")]
    TrailingGarbage {
        /// Offset of the first byte after the last complete frame.
        offset: u64,
    },
    /// The version byte is not [`FORMAT_VERSION`].
    #[error("unsupported format version {0} (this build reads version {FORMAT_VERSION})")]
    UnsupportedVersion(u8),
    /// The stored frame-header CRC32 does not match the header bytes.
    #[error("header checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    HeaderChecksumMismatch {
        /// CRC32 stored in the header.
        stored: u32,
        /// CRC32 of the header bytes as read.
        computed: u32,
    },
    /// The stored CRC32 of a block or end record does not match its bytes.
    #[error("block record checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    RecordChecksumMismatch {
        /// CRC32 stored in the record.
        stored: u32,
        /// CRC32 of the record bytes as read.
        computed: u32,
    },
    /// Flag bits reserved in this version are set.
    #[error("reserved flag bits set (flags byte {0:#04x})")]
    ReservedFlags(u8),
    /// The checksum flag is clear; this version always carries the checksums.
    #[error("checksum flag is clear (version {FORMAT_VERSION} requires the checksums)")]
    MissingContentChecksum,
    /// Reserved bytes of a header or record are not zero.
    #[error("reserved bytes are not zero: {0:02x?}")]
    ReservedBytes(Vec<u8>),
    /// The preset level is outside `MIN_LEVEL..=MAX_LEVEL` (1..=9).
    #[error("preset level {0} not in {MIN_LEVEL}..={MAX_LEVEL}")]
    BadPreset(u8),
    /// The model parameters fail `ModelParams::validate`.
    #[error("invalid model parameters: {0}")]
    InvalidParams(String),
    /// A record's kind byte is neither a block's nor the end's.
    #[error("unknown record kind {0:#04x}")]
    BadRecordKind(u8),
    /// A block record's fields are out of range.
    #[error("invalid block: {0}")]
    BadBlock(String),
    /// A coded block declares more original bytes than its payload could honestly code.
    #[error(
        "block length {original_len} exceeds the limit {limit} for a payload of \
         {payload_len} bytes (corrupt or malicious record)"
    )]
    OriginalTooLarge {
        /// Declared original length of the block.
        original_len: u64,
        /// Declared payload length of the block.
        payload_len: u64,
        /// Largest original length allowed for that payload.
        limit: u64,
    },
    /// A frame's end record declares another length than its blocks add up to.
    #[error("frame length mismatch: the end record says {declared} bytes, the blocks {blocks}")]
    FrameLengthMismatch {
        /// Length in the end record.
        declared: u64,
        /// Sum of the blocks' lengths.
        blocks: u64,
    },
    /// Reading the input failed.
    #[error("cannot read: {0}")]
    Read(String),
}

/// XXH64 with seed 0: the checksum of a frame's data (and, truncated, of a block's).
pub fn content_hash(data: &[u8]) -> u64 {
    xxhash_rust::xxh64::xxh64(data, 0)
}

#[cfg(test)]
mod tests;
