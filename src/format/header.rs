//! The fixed 36-byte frame header: serialisation and the strict checks on parsing.

use super::{FORMAT_VERSION, FRAME_HEADER_LEN, FormatError, MAGIC};
use crate::model::params::ModelParams;
use crate::model::presets::{MAX_LEVEL, MIN_LEVEL};

/// Flag bit 0: every block carries a checksum of its data and the frame's end record an XXH64
/// of the frame's data.
const FLAG_CHECKSUMS: u8 = 1;
/// Offset of the header CRC32, which covers every byte before it.
const CRC_OFFSET: usize = FRAME_HEADER_LEN - 4;

/// The header of one frame: the model every block of the frame is coded with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// Preset level the encoder was run with (`MIN_LEVEL..=MAX_LEVEL`); informational only,
    /// since `params` holds every value the decoder uses.
    pub preset: u8,
    /// The model, exactly as the encoder trained it; `params.streams` is the most streams any
    /// block of the frame may use.
    pub params: ModelParams,
}

/// Reads fixed-size little-endian fields off the front of a slice.
pub(super) struct Cursor<'a>(pub(super) &'a [u8]);

impl Cursor<'_> {
    pub(super) fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }

    pub(super) fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|[b]| b)
    }

    pub(super) fn u16(&mut self) -> Option<u16> {
        self.take().map(u16::from_le_bytes)
    }

    pub(super) fn u32(&mut self) -> Option<u32> {
        self.take().map(u32::from_le_bytes)
    }

    pub(super) fn u64(&mut self) -> Option<u64> {
        self.take().map(u64::from_le_bytes)
    }
}

/// Every header field as stored, before any check.
struct RawHeader {
    version: u8,
    flags: u8,
    preset: u8,
    params: ModelParams,
    crc: u32,
}

impl RawHeader {
    /// `None` if `bytes` is shorter than the header.
    fn read(bytes: &[u8]) -> Option<Self> {
        let mut c = Cursor(bytes);
        c.take::<4>()?;
        let (version, flags, preset) = (c.u8()?, c.u8()?, c.u8()?);
        let (layers, cells, streams, window) = (c.u8()?, c.u16()?, c.u32()?, c.u16()?);
        let (learning_rate_q24, beta2_shift, mix_log2) = (c.u32()?, c.u8()?, c.u8()?);
        let (block_log2, lstm_stride, seed, crc) = (c.u8()?, c.u8()?, c.u64()?, c.u32()?);
        let params = ModelParams {
            layers,
            cells,
            streams,
            window,
            learning_rate_q24,
            beta2_shift,
            seed,
            mix_log2,
            block_log2,
            lstm_stride,
        };
        Some(Self {
            version,
            flags,
            preset,
            params,
            crc,
        })
    }
}

impl FrameHeader {
    /// The 36 header bytes, with the checksum flag set and the CRC filled in. Fields are
    /// written as given: a header that `parse` would reject (bad preset or params) is
    /// serialised faithfully, and rejected on reading.
    pub fn to_bytes(&self) -> [u8; FRAME_HEADER_LEN] {
        let p = &self.params;
        let body = MAGIC
            .into_iter()
            .chain([FORMAT_VERSION, FLAG_CHECKSUMS, self.preset, p.layers])
            .chain(p.cells.to_le_bytes())
            .chain(p.streams.to_le_bytes())
            .chain(p.window.to_le_bytes())
            .chain(p.learning_rate_q24.to_le_bytes())
            .chain([p.beta2_shift, p.mix_log2, p.block_log2, p.lstm_stride])
            .chain(p.seed.to_le_bytes());
        let mut out = [0u8; FRAME_HEADER_LEN];
        for (dst, src) in out.iter_mut().zip(body) {
            *dst = src;
        }
        let crc = crc32fast::hash(&out[..CRC_OFFSET]);
        out[CRC_OFFSET..].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Parses and checks the header at the start of `bytes` (later bytes are ignored). `Ok`
    /// guarantees: magic, version, CRC, and flags are as this version
    /// requires, the preset is in range and `params.validate()` passes. Nothing is allocated.
    pub fn parse(bytes: &[u8]) -> Result<FrameHeader, FormatError> {
        // Judge the magic on whatever is there first, so short foreign input is named as
        // foreign rather than as a truncated archive; past it, the magic is whole.
        let seen = bytes.len().min(MAGIC.len());
        if bytes.is_empty() || bytes.get(..seen) != MAGIC.get(..seen) {
            return Err(FormatError::NotNngpu);
        }
        let raw = RawHeader::read(bytes).ok_or(FormatError::Truncated("a frame header"))?;
        // The version comes before the CRC: a later version may lay its header out
        // differently, and "unsupported version" is the useful message for it.
        if raw.version != FORMAT_VERSION {
            return Err(FormatError::UnsupportedVersion(raw.version));
        }
        let computed = crc32fast::hash(&bytes[..CRC_OFFSET]);
        if computed != raw.crc {
            return Err(FormatError::HeaderChecksumMismatch {
                stored: raw.crc,
                computed,
            });
        }
        if raw.flags & !FLAG_CHECKSUMS != 0 {
            return Err(FormatError::ReservedFlags(raw.flags));
        }
        if raw.flags & FLAG_CHECKSUMS == 0 {
            return Err(FormatError::MissingContentChecksum);
        }
        if !(MIN_LEVEL..=MAX_LEVEL).contains(&raw.preset) {
            return Err(FormatError::BadPreset(raw.preset));
        }
        raw.params.validate().map_err(FormatError::InvalidParams)?;
        Ok(FrameHeader {
            preset: raw.preset,
            params: raw.params,
        })
    }
}
