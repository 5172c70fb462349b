//! The fixed 52-byte frame header: serialisation and the strict checks on parsing.

use super::{FORMAT_VERSION, FormatError, HEADER_LEN, MAGIC};
use crate::model::params::ModelParams;
use crate::model::presets::{MAX_LEVEL, MIN_LEVEL};

/// Flag bit 0: the frame ends with an XXH64 of the original data.
const FLAG_CONTENT_CHECKSUM: u8 = 1;
/// Offset of the header CRC32, which covers every byte before it.
const CRC_OFFSET: usize = HEADER_LEN - 4;
/// Payload bytes granted on top of the real ones by the bomb limit, so tiny inputs (whose
/// payload is mostly the coder's flush) always fit.
const BOMB_SLACK_BYTES: u64 = 16;
/// Most original bytes one payload byte may stand for. The coder's probabilities are 12-bit
/// and never 0 or 1, so each coded bit narrows the interval to at most 4095/4096 of itself and
/// costs at least log2(4096/4095) ≈ 0.000352 bits: a byte (8 bits) at least 0.00282 bits, so an
/// honest payload byte codes at most about 2839 bytes.
const BOMB_RATIO: u64 = 2900;
/// Largest original length a v2 frame may declare (1 TiB).
pub const MAX_ORIGINAL_LEN: u64 = 1 << 40;

/// The header of one frame: what the decoder needs before it reads the payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// Preset level the encoder was run with (`MIN_LEVEL..=MAX_LEVEL`); informational only,
    /// since `params` holds every value the decoder uses.
    pub preset: u8,
    /// The model, exactly as the encoder trained it.
    pub params: ModelParams,
    /// Length of the original data in bytes.
    pub original_len: u64,
    /// Length of the arithmetic-coded payload in bytes.
    pub payload_len: u64,
}

/// Reads fixed-size little-endian fields off the front of a slice.
struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|[b]| b)
    }

    fn u16(&mut self) -> Option<u16> {
        self.take().map(u16::from_le_bytes)
    }

    fn u32(&mut self) -> Option<u32> {
        self.take().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Option<u64> {
        self.take().map(u64::from_le_bytes)
    }
}

/// Every header field as stored, before any check.
struct RawHeader {
    magic: [u8; 4],
    version: u8,
    flags: u8,
    preset: u8,
    params: ModelParams,
    reserved: [u8; 2],
    original_len: u64,
    payload_len: u64,
    crc: u32,
}

impl RawHeader {
    /// `None` if `bytes` is shorter than the header.
    fn read(bytes: &[u8]) -> Option<Self> {
        let mut c = Cursor(bytes);
        let (magic, version, flags, preset) = (c.take()?, c.u8()?, c.u8()?, c.u8()?);
        let (layers, cells, streams, window) = (c.u8()?, c.u16()?, c.u32()?, c.u16()?);
        let (learning_rate_q24, beta2_shift, mix_log2) = (c.u32()?, c.u8()?, c.u8()?);
        let reserved = c.take()?;
        let seed = c.u64()?;
        let params = ModelParams {
            layers,
            cells,
            streams,
            window,
            learning_rate_q24,
            beta2_shift,
            seed,
            mix_log2,
        };
        let (original_len, payload_len, crc) = (c.u64()?, c.u64()?, c.u32()?);
        Some(Self {
            magic,
            version,
            flags,
            preset,
            params,
            reserved,
            original_len,
            payload_len,
            crc,
        })
    }
}

/// CRC32 of the header bytes in front of the stored CRC.
fn header_crc(bytes: &[u8]) -> Option<u32> {
    bytes.get(..CRC_OFFSET).map(crc32fast::hash)
}

/// The largest original length a frame with `payload_len` payload bytes may declare.
fn original_len_limit(payload_len: u64) -> u64 {
    payload_len
        .saturating_add(BOMB_SLACK_BYTES)
        .saturating_mul(BOMB_RATIO)
        .min(MAX_ORIGINAL_LEN)
}

impl FrameHeader {
    /// The 52 header bytes, with the content-checksum flag set and the CRC filled in. Fields
    /// are written as given: a header that `parse` would reject (bad preset or params) is
    /// serialised faithfully, and rejected on reading.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let p = &self.params;
        let body = MAGIC
            .into_iter()
            .chain([FORMAT_VERSION, FLAG_CONTENT_CHECKSUM, self.preset, p.layers])
            .chain(p.cells.to_le_bytes())
            .chain(p.streams.to_le_bytes())
            .chain(p.window.to_le_bytes())
            .chain(p.learning_rate_q24.to_le_bytes())
            .chain([p.beta2_shift, p.mix_log2, 0, 0])
            .chain(p.seed.to_le_bytes())
            .chain(self.original_len.to_le_bytes())
            .chain(self.payload_len.to_le_bytes());
        let mut out = [0u8; HEADER_LEN];
        for (dst, src) in out.iter_mut().zip(body) {
            *dst = src;
        }
        let crc = header_crc(&out).unwrap_or_default();
        for (dst, src) in out.iter_mut().skip(CRC_OFFSET).zip(crc.to_le_bytes()) {
            *dst = src;
        }
        out
    }

    /// Parses and checks the header at the start of `bytes` (later bytes are ignored). `Ok`
    /// guarantees: magic, version, CRC, flags and reserved bytes are as v2 requires, the
    /// preset is in range, `params.validate()` passes, and `original_len` is within the
    /// decompression-bomb limit for `payload_len`. Nothing is allocated.
    pub fn parse(bytes: &[u8]) -> Result<FrameHeader, FormatError> {
        // Judge the magic on whatever is there first, so short foreign input is named as
        // foreign rather than as a truncated archive.
        let seen = bytes.len().min(MAGIC.len());
        if bytes.is_empty() || bytes.get(..seen) != MAGIC.get(..seen) {
            return Err(FormatError::NotNngpu);
        }
        let truncated = || FormatError::Truncated {
            needed: HEADER_LEN as u64,
            got: bytes.len() as u64,
        };
        let raw = RawHeader::read(bytes).ok_or_else(truncated)?;
        if raw.magic != MAGIC {
            return Err(FormatError::NotNngpu);
        }
        // The version comes before the CRC: a later version may lay its header out
        // differently, and "unsupported version" is the useful message for it.
        if raw.version != FORMAT_VERSION {
            return Err(FormatError::UnsupportedVersion(raw.version));
        }
        let computed = header_crc(bytes).ok_or_else(truncated)?;
        if computed != raw.crc {
            return Err(FormatError::HeaderChecksumMismatch {
                stored: raw.crc,
                computed,
            });
        }
        if raw.flags & !FLAG_CONTENT_CHECKSUM != 0 {
            return Err(FormatError::ReservedFlags(raw.flags));
        }
        if raw.flags & FLAG_CONTENT_CHECKSUM == 0 {
            return Err(FormatError::MissingContentChecksum);
        }
        if raw.reserved != [0; 2] {
            return Err(FormatError::ReservedBytes(raw.reserved));
        }
        if !(MIN_LEVEL..=MAX_LEVEL).contains(&raw.preset) {
            return Err(FormatError::BadPreset(raw.preset));
        }
        raw.params.validate().map_err(FormatError::InvalidParams)?;
        let limit = original_len_limit(raw.payload_len);
        if raw.original_len > limit {
            return Err(FormatError::OriginalTooLarge {
                original_len: raw.original_len,
                payload_len: raw.payload_len,
                limit,
            });
        }
        // Streams beyond the data's length would be empty; the writer never stores them, and
        // a reader that allowed them would size its model state by a number nothing bounds.
        if u64::from(raw.params.streams) > raw.original_len.max(1) {
            return Err(FormatError::InvalidParams(format!(
                "{} streams for {} bytes of data",
                raw.params.streams, raw.original_len
            )));
        }
        Ok(FrameHeader {
            preset: raw.preset,
            params: raw.params,
            original_len: raw.original_len,
            payload_len: raw.payload_len,
        })
    }
}
