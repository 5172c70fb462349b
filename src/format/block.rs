//! The 24-byte records that follow a frame header: one per block, then the frame's end.

use super::header::Cursor;
use super::{FormatError, RECORD_LEN};
use crate::model::params::ModelParams;

/// Kind byte of a block whose payload is arithmetic-coded.
const KIND_CODED: u8 = 0;
/// Kind byte of a block stored as it is (coding would not have made it smaller).
const KIND_RAW: u8 = 1;
/// Kind byte of the record that ends a frame.
const KIND_END: u8 = 0xFF;
/// Offset of the record's CRC32, which covers every byte before it.
const CRC_OFFSET: usize = RECORD_LEN - 4;
/// Payload bytes granted on top of the real ones by the bomb limit, so tiny blocks (whose
/// payload is mostly the coder's 4-byte flush) always fit.
const BOMB_SLACK_BYTES: u64 = 16;
/// Most original bytes one payload byte may stand for. The coder's probabilities are 12-bit
/// and never 0 or 1, so each coded bit narrows the interval to at most 4095/4096 of itself and
/// costs at least log2(4096/4095) ≈ 0.000352 bits: a byte (8 bits) at least 0.00282 bits, so an
/// honest payload byte codes at most about 2839 bytes.
const BOMB_RATIO: u64 = 2900;
/// Shortest coded payload: the coder's flush.
pub const MIN_CODED_LEN: u32 = 4;

/// How a block's bytes are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockKind {
    /// Arithmetic-coded in this many parallel streams.
    Coded {
        /// Streams the block is cut into, `1..=` the frame's streams and the block's length.
        streams: u32,
    },
    /// Stored as it is; the model still runs over it in this many streams, as over any block,
    /// so that the blocks after it see the same model in encoder and decoder.
    Raw {
        /// Streams the model ran the block in, with the same limits as a coded block's.
        streams: u32,
    },
}

/// One block's record: what the decoder needs before it reads the block's payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockHeader {
    /// Coded or raw.
    pub kind: BlockKind,
    /// Bytes of each stream per LSTM step (`codec::block`), `1..=` the frame's
    /// `lstm_stride`.
    pub stride: u8,
    /// Bytes of original data the block holds, `1..=2^block_log2`.
    pub original_len: u32,
    /// Bytes of payload that follow the record: the original length for a raw block, fewer
    /// for a coded one.
    pub stored_len: u32,
    /// `block_checksum` of the block's original data.
    pub checksum: u32,
}

/// The record that ends a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameEnd {
    /// Bytes of original data in the whole frame: the sum of its blocks' lengths.
    pub original_len: u64,
    /// XXH64 (seed 0) of the frame's original data.
    pub content_hash: u64,
}

/// A record as read: a block, or the frame's end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Record {
    /// A block; its payload follows.
    Block(BlockHeader),
    /// The end of the frame.
    End(FrameEnd),
}

/// The checksum a block record carries: the low 32 bits of the XXH64 (seed 0) of its data.
pub fn block_checksum(data: &[u8]) -> u32 {
    super::content_hash(data) as u32
}

/// The largest original length a coded block with `stored_len` payload bytes may declare.
fn original_len_limit(stored_len: u32) -> u64 {
    (u64::from(stored_len) + BOMB_SLACK_BYTES) * BOMB_RATIO
}

impl Record {
    /// The 24 record bytes, CRC filled in. Fields are written as given: a record that `parse`
    /// would reject is serialised faithfully, and rejected on reading.
    pub fn to_bytes(&self) -> [u8; RECORD_LEN] {
        let mut out = [0u8; RECORD_LEN];
        match self {
            Record::Block(b) => {
                let (kind, streams) = match b.kind {
                    BlockKind::Coded { streams } => (KIND_CODED, streams),
                    BlockKind::Raw { streams } => (KIND_RAW, streams),
                };
                out[0] = kind;
                out[1] = b.stride;
                out[4..8].copy_from_slice(&streams.to_le_bytes());
                out[8..12].copy_from_slice(&b.original_len.to_le_bytes());
                out[12..16].copy_from_slice(&b.stored_len.to_le_bytes());
                out[16..20].copy_from_slice(&b.checksum.to_le_bytes());
            }
            Record::End(end) => {
                out[0] = KIND_END;
                out[4..12].copy_from_slice(&end.original_len.to_le_bytes());
                out[12..20].copy_from_slice(&end.content_hash.to_le_bytes());
            }
        }
        let crc = crc32fast::hash(&out[..CRC_OFFSET]);
        out[CRC_OFFSET..].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Parses and checks a record of a frame whose model is `params`. `Ok` guarantees the CRC
    /// matches, reserved bytes are zero, and for a block: its length is within
    /// `1..=2^block_log2`, it uses `1..=params.streams` streams (no more than its bytes) and a
    /// stride of `1..=params.lstm_stride`, a
    /// raw block stores exactly its length, a coded block stores at least
    /// `MIN_CODED_LEN` and fewer bytes than its length, and its length is within the
    /// decompression-bomb limit for what it stores. Nothing is allocated.
    pub fn parse(bytes: &[u8; RECORD_LEN], params: &ModelParams) -> Result<Record, FormatError> {
        let computed = crc32fast::hash(&bytes[..CRC_OFFSET]);
        let mut c = Cursor(bytes);
        let (kind, stride, reserved) = (c.u8(), c.u8(), c.take::<2>());
        let stored_crc = u32::from_le_bytes(bytes[CRC_OFFSET..].try_into().unwrap_or_default());
        if computed != stored_crc {
            return Err(FormatError::RecordChecksumMismatch {
                stored: stored_crc,
                computed,
            });
        }
        let (Some(kind), Some(stride), Some(reserved)) = (kind, stride, reserved) else {
            return Err(FormatError::Truncated("a block record"));
        };
        if kind == KIND_END && stride != 0 {
            return Err(FormatError::ReservedBytes(vec![stride]));
        }
        if reserved != [0; 2] {
            return Err(FormatError::ReservedBytes(reserved.to_vec()));
        }
        if kind == KIND_END {
            let (Some(original_len), Some(content_hash)) = (c.u64(), c.u64()) else {
                return Err(FormatError::Truncated("a frame's end record"));
            };
            return Ok(Record::End(FrameEnd {
                original_len,
                content_hash,
            }));
        }
        let fields = (c.u32(), c.u32(), c.u32(), c.u32());
        let (Some(streams), Some(original_len), Some(stored_len), Some(checksum)) = fields else {
            return Err(FormatError::Truncated("a block record"));
        };
        let bad = |why: String| Err(FormatError::BadBlock(why));
        let most = 1u64 << params.block_log2;
        if original_len == 0 || u64::from(original_len) > most {
            return bad(format!("{original_len} bytes, not in 1..={most}"));
        }
        if kind != KIND_RAW && kind != KIND_CODED {
            return Err(FormatError::BadRecordKind(kind));
        }
        if streams == 0 || streams > params.streams || streams > original_len {
            return bad(format!(
                "{streams} streams for {original_len} bytes (the frame allows {})",
                params.streams
            ));
        }
        if stride == 0 || stride > params.lstm_stride {
            return bad(format!(
                "an LSTM stride of {stride} (the frame allows 1..={})",
                params.lstm_stride
            ));
        }
        let kind = match kind {
            KIND_RAW if stored_len != original_len => {
                return bad(format!(
                    "a raw block of {original_len} bytes stores {stored_len}"
                ));
            }
            KIND_RAW => BlockKind::Raw { streams },
            _ => {
                if !(MIN_CODED_LEN..original_len).contains(&stored_len) {
                    return bad(format!(
                        "{original_len} bytes coded in {stored_len} (a coded block stores at \
                         least {MIN_CODED_LEN} bytes and fewer than its length)"
                    ));
                }
                let limit = original_len_limit(stored_len);
                if u64::from(original_len) > limit {
                    return Err(FormatError::OriginalTooLarge {
                        original_len: u64::from(original_len),
                        payload_len: u64::from(stored_len),
                        limit,
                    });
                }
                BlockKind::Coded { streams }
            }
        };
        Ok(Record::Block(BlockHeader {
            kind,
            stride,
            original_len,
            stored_len,
            checksum,
        }))
    }
}
